//! Sinks into topics: each committed epoch's changes of a view, written to a topic so that
//! Kafka consumers can follow the view.
//!
//! - Append mode: one JSON record per change, the row plus `"op": "insert" | "delete"`.
//! - Upsert mode (views with a key): the record key is the view key as JSON, the value the row;
//!   a key that is deleted becomes a tombstone (empty value).
//!
//! Exactly once per committed epoch: the records are appended *before* the epoch's store commit,
//! and the topic's end offsets go into that same commit. After a crash the topic is cut back to
//! the committed end offsets, and the replayed epoch writes its records again, once. Kafka
//! consumers read a sink topic only up to the committed end offsets, so they never see records
//! that are then taken back.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::ChangeBatch;
use crate::error::{Result, WeirError};
use crate::formats::{self, Format};
use crate::state::{StateStore, WriteBatch};
use crate::topics::{Record, Topic};

/// How a sink writes changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SinkMode {
    Append,
    Upsert,
}

pub struct TopicSink {
    pub id: u64,
    pub name: String,
    pub view_id: u64,
    pub topic: Arc<Topic>,
    pub mode: SinkMode,
    /// The view's key columns (upsert mode keys records by them).
    pub key: Vec<usize>,
    pub schema: SchemaRef,
    /// A new sink first writes the view's current rows, then its changes.
    pub snapshot_pending: bool,
    /// The topic's end offsets as of the last committed epoch: what Kafka consumers may read.
    pub committed: CommittedEnds,
    /// End offsets written in the current epoch, committed with it.
    written: std::sync::Mutex<Option<Vec<u64>>>,
}

/// A sink topic's readable end offsets, shared with the Kafka fetch path.
pub type CommittedEnds = Arc<std::sync::RwLock<Vec<u64>>>;

impl TopicSink {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        name: String,
        view_id: u64,
        topic: Arc<Topic>,
        mode: SinkMode,
        key: Vec<usize>,
        schema: SchemaRef,
        snapshot_pending: bool,
        committed: CommittedEnds,
    ) -> Self {
        TopicSink {
            id,
            name,
            view_id,
            topic,
            mode,
            key,
            schema,
            snapshot_pending,
            committed,
            written: Default::default(),
        }
    }

    /// The epoch was committed: its records become readable.
    pub fn publish(&self) {
        if let Some(ends) = self.written.lock().expect("sink lock").take() {
            *self.committed.write().expect("sink lock") = ends;
        }
    }
}

/// Store key of a sink's committed topic end offsets.
pub fn offsets_key(sink_id: u64) -> Vec<u8> {
    let mut k = vec![crate::state::keys::SINK_OFFSETS];
    k.extend_from_slice(&sink_id.to_be_bytes());
    k
}

impl TopicSink {
    /// Appends the records for `changes` and adds the topic's new end offsets to `batch`.
    pub fn write(&self, changes: &ChangeBatch, batch: &mut WriteBatch) -> Result<()> {
        let records = match self.mode {
            SinkMode::Append => self.append_records(changes)?,
            SinkMode::Upsert => self.upsert_records(changes)?,
        };
        let partitions = self.topic.partitions();
        let mut per_partition: Vec<Vec<Record>> = vec![Vec::new(); partitions as usize];
        for record in records {
            let p = match &record.key {
                Some(k) => (crc32fast::hash(k) % partitions) as usize,
                None => 0,
            };
            per_partition[p].push(record);
        }
        let mut ends = Vec::with_capacity(partitions as usize);
        for (p, records) in per_partition.iter().enumerate() {
            if !records.is_empty() {
                self.topic.append(p as u32, records)?;
            }
            ends.push(self.topic.end_offset(p as u32)?);
        }
        batch.put(
            offsets_key(self.id),
            serde_json::to_vec(&ends).map_err(|e| WeirError::internal(e.to_string()))?,
        );
        *self.written.lock().expect("sink lock") = Some(ends);
        Ok(())
    }

    /// Cuts the topic back to the end offsets of the last committed epoch (start-up, or after
    /// an epoch whose commit failed).
    pub fn rewind(&self, store: &dyn StateStore) -> Result<()> {
        let Some(bytes) = store.get(&offsets_key(self.id))? else {
            return Ok(());
        };
        let ends: Vec<u64> = serde_json::from_slice(&bytes)
            .map_err(|e| WeirError::internal(format!("corrupt sink offsets: {e}")))?;
        *self.written.lock().expect("sink lock") = None;
        *self.committed.write().expect("sink lock") = ends.clone();
        for (p, end) in ends.into_iter().enumerate() {
            if self.topic.end_offset(p as u32)? > end {
                tracing::info!(
                    sink = self.name,
                    partition = p,
                    end,
                    "cutting uncommitted sink records"
                );
                self.topic.truncate(p as u32, end)?;
            }
        }
        Ok(())
    }

    /// Rows repeated by their multiplicity, with "op" per row.
    fn expanded(&self, changes: &ChangeBatch) -> Result<(RecordBatch, Vec<bool>)> {
        let mut indices = Vec::new();
        let mut inserts = Vec::new();
        for (i, &w) in changes.weights.iter().enumerate() {
            for _ in 0..w.unsigned_abs() {
                indices.push(i as u32);
                inserts.push(w > 0);
            }
        }
        let rows = take_record_batch(&changes.rows, &UInt32Array::from(indices))?;
        Ok((rows, inserts))
    }

    fn append_records(&self, changes: &ChangeBatch) -> Result<Vec<Record>> {
        let (rows, inserts) = self.expanded(changes)?;
        let ops: ArrayRef = Arc::new(StringArray::from_iter_values(
            inserts.iter().map(|&i| if i { "insert" } else { "delete" }),
        ));
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("op", DataType::Utf8, false));
        let mut columns = rows.columns().to_vec();
        columns.push(ops);
        let with_op = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        Ok(Record::unkeyed_now(formats::encode_rows(
            Format::Json,
            &with_op,
        )?))
    }

    fn upsert_records(&self, changes: &ChangeBatch) -> Result<Vec<Record>> {
        let (rows, inserts) = self.expanded(changes)?;
        let keys = formats::encode_rows(Format::Json, &rows.project(&self.key)?)?;
        let values = formats::encode_rows(Format::Json, &rows)?;
        let inserted: HashSet<&Bytes> = keys
            .iter()
            .zip(&inserts)
            .filter(|(_, i)| **i)
            .map(|(k, _)| k)
            .collect();
        let now = Record::unkeyed_now(vec![Bytes::new()])
            .pop()
            .map(|r| r.timestamp_ms)
            .unwrap_or(0);
        let mut out = Vec::with_capacity(keys.len());
        for ((key, value), insert) in keys.iter().zip(values).zip(&inserts) {
            if *insert {
                out.push(Record {
                    key: Some(key.clone()),
                    value,
                    timestamp_ms: now,
                    headers: Vec::new(),
                });
            } else if !inserted.contains(key) {
                out.push(Record {
                    key: Some(key.clone()),
                    value: Bytes::new(),
                    timestamp_ms: now,
                    headers: Vec::new(),
                });
            }
        }
        // Tombstones first, then values: a consumer applying them in order ends at the view.
        out.sort_by_key(|r| !r.value.is_empty());
        Ok(out)
    }
}
