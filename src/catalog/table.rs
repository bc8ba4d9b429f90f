//! The contents of a keyed table and its changelog.
//!
//! A table's durable record is its changelog topic (one partition, so changes keep their
//! order): each record is `{"op": "+" | "-", "row": {...}}`. An INSERT/UPDATE/DELETE checks keys
//! against the current contents, appends its changes to the changelog (fsynced), then applies
//! them here. Views read the changelog like any source, with `-` as a retraction (weight −1).
//! The contents are rebuilt from the changelog at start-up.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{ErrorKind, Result, WeirError};
use crate::formats::{self, Format, RowCodec};
use crate::topics::{Record, Topic};

/// Current rows of a table, by primary key.
#[derive(Debug)]
pub struct TableData {
    schema: SchemaRef,
    primary_key: Vec<usize>,
    table_name: String,
    pk_codec: RowCodec,
    row_codec: RowCodec,
    /// pk bytes -> full row bytes. The mutex also serializes writers.
    rows: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

/// Holds the table's write lock: snapshot, decide, write, all without interleaving.
pub struct TableWriter<'a> {
    data: &'a TableData,
    rows: MutexGuard<'a, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl TableData {
    pub fn new(table_name: &str, schema: SchemaRef, primary_key: Vec<usize>) -> Result<Self> {
        let pk_types = primary_key
            .iter()
            .map(|&i| schema.field(i).data_type().clone());
        Ok(TableData {
            pk_codec: RowCodec::new(pk_types)?,
            row_codec: RowCodec::for_schema(&schema)?,
            schema,
            primary_key,
            table_name: table_name.to_string(),
            rows: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn writer(&self) -> TableWriter<'_> {
        TableWriter {
            data: self,
            rows: self.rows.lock().expect("table lock"),
        }
    }

    /// The current contents as one batch, in key order.
    pub fn snapshot(&self) -> Result<RecordBatch> {
        self.writer().snapshot()
    }

    /// Replays a changelog (start-up): applies every change without checks.
    pub fn replay(&self, topic: &Topic) -> Result<()> {
        let mut rows = self.rows.lock().expect("table lock");
        let mut offset = 0;
        loop {
            let records = topic.read(0, offset, crate::config::SOURCE_READ_RECORDS_MAX)?;
            let Some((last, _)) = records.last() else {
                break;
            };
            offset = last + 1;
            let values: Vec<&[u8]> = records.iter().map(|(_, r)| r.value.as_ref()).collect();
            let (batch, weights) = decode_changelog(&self.schema, &values)?;
            let pks = self.pk_codec.encode(&self.key_columns(&batch))?;
            let full = self.row_codec.encode(batch.columns())?;
            for (i, w) in weights.iter().enumerate() {
                if *w > 0 {
                    rows.insert(pks.row(i).as_ref().to_vec(), full.row(i).as_ref().to_vec());
                } else {
                    rows.remove(pks.row(i).as_ref());
                }
            }
        }
        Ok(())
    }

    fn key_columns(&self, batch: &RecordBatch) -> Vec<ArrayRef> {
        self.primary_key
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect()
    }

    fn duplicate_key_error(&self, batch: &RecordBatch, row: usize) -> WeirError {
        let names: Vec<&str> = self
            .primary_key
            .iter()
            .map(|&i| self.schema.field(i).name().as_str())
            .collect();
        let values: Vec<String> = self
            .primary_key
            .iter()
            .map(|&i| {
                datafusion::arrow::util::display::array_value_to_string(batch.column(i), row)
                    .unwrap_or_default()
            })
            .collect();
        WeirError::new(
            ErrorKind::UniqueViolation,
            format!(
                "duplicate key value violates unique constraint \"{}_pkey\"",
                self.table_name
            ),
        )
        .with_detail(format!(
            "Key ({})=({}) already exists.",
            names.join(", "),
            values.join(", ")
        ))
    }
}

impl TableWriter<'_> {
    pub fn snapshot(&self) -> Result<RecordBatch> {
        let columns = self
            .data
            .row_codec
            .decode(self.rows.values().map(|v| v.as_slice()))?;
        if columns.is_empty() {
            return Ok(RecordBatch::new_empty(self.data.schema.clone()));
        }
        Ok(RecordBatch::try_new(self.data.schema.clone(), columns)?)
    }

    /// Deletes the rows of `deletes` (matched by key) and inserts `inserts`, after checking that
    /// no key is NULL or duplicated; the changes are durable in `topic` before they apply here.
    /// Returns how many rows were inserted plus deleted... as the caller counts: the number of
    /// rows in `inserts` when given, else in `deletes`.
    pub fn write(
        &mut self,
        topic: &Topic,
        deletes: Option<&RecordBatch>,
        inserts: Option<&RecordBatch>,
    ) -> Result<()> {
        let data = self.data;
        let mut removed: HashSet<Vec<u8>> = HashSet::new();
        if let Some(deletes) = deletes {
            let pks = data.pk_codec.encode(&data.key_columns(deletes))?;
            for row in pks.iter() {
                removed.insert(row.as_ref().to_vec());
            }
        }
        let mut insert_pks = None;
        if let Some(inserts) = inserts {
            for &i in &data.primary_key {
                if inserts.column(i).null_count() > 0 {
                    let name = data.schema.field(i).name();
                    return Err(WeirError::new(
                        ErrorKind::NotNullViolation,
                        format!(
                            "null value in column \"{name}\" of relation \"{}\" violates not-null constraint",
                            data.table_name
                        ),
                    ));
                }
            }
            let pks = data.pk_codec.encode(&data.key_columns(inserts))?;
            let mut seen = HashSet::new();
            for (i, row) in pks.iter().enumerate() {
                let key = row.as_ref();
                let exists = self.rows.contains_key(key) && !removed.contains(key);
                if exists || !seen.insert(key.to_vec()) {
                    return Err(data.duplicate_key_error(inserts, i));
                }
            }
            insert_pks = Some(pks);
        }
        let mut records = Vec::new();
        if let Some(deletes) = deletes {
            records.extend(encode_changelog(&data.schema, "-", deletes)?);
        }
        if let Some(inserts) = inserts {
            records.extend(encode_changelog(&data.schema, "+", inserts)?);
        }
        if records.is_empty() {
            return Ok(());
        }
        topic.append(0, &Record::unkeyed_now(records))?;
        for key in removed {
            self.rows.remove(&key);
        }
        if let (Some(inserts), Some(pks)) = (inserts, insert_pks) {
            let full = data.row_codec.encode(inserts.columns())?;
            for (i, pk) in pks.iter().enumerate() {
                self.rows
                    .insert(pk.as_ref().to_vec(), full.row(i).as_ref().to_vec());
            }
        }
        Ok(())
    }
}

fn changelog_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("op", DataType::Utf8, false),
        Field::new("row", DataType::Struct(schema.fields().clone()), false),
    ]))
}

fn encode_changelog(schema: &SchemaRef, op: &str, batch: &RecordBatch) -> Result<Vec<Bytes>> {
    let ops: ArrayRef = Arc::new(StringArray::from(vec![op; batch.num_rows()]));
    let row: ArrayRef = Arc::new(StructArray::from(batch.clone()));
    let wrapped = RecordBatch::try_new(changelog_schema(schema), vec![ops, row])?;
    formats::encode_rows(Format::Json, &wrapped)
}

/// Decodes changelog records into rows and their weights (+1 insert, −1 delete).
pub fn decode_changelog(schema: &SchemaRef, values: &[&[u8]]) -> Result<(RecordBatch, Vec<i64>)> {
    let decoded = formats::decode_records(Format::Json, &changelog_schema(schema), values)?;
    let batch = decoded.batch;
    let ops = batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| WeirError::internal("changelog op is not text"))?;
    let weights = ops
        .iter()
        .map(|op| if op == Some("-") { -1 } else { 1 })
        .collect();
    let row = batch
        .column(1)
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| WeirError::internal("changelog row is not a struct"))?;
    let rows = RecordBatch::try_new(schema.clone(), row.columns().to_vec())?;
    Ok((rows, weights))
}
