//! Where a view's rows live: the `v` space of the store (layout in `state::keys`).
//!
//! A view with a key holds each key once (the planner only gives a view a key that is unique:
//! a GROUP BY key, a table's primary key), so it stores `<view id><pk> → row`: a change is one
//! put (or a delete when the key goes away), without reading anything first, and a point
//! lookup is one get. A view without a key may hold a row several times: it stores
//! `<view id><row> → multiplicity`, reading the count before changing it, unless its changes
//! are insertions only (over an append-only source): then each row is stored once per
//! insertion under the next row id, `<view id><row id> → row`, a put with nothing read (the
//! next id is written with the rows, `keys::next_row_id_key`). A full read is a prefix scan of
//! the view in every layout.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::Rows;
use hashbrown::HashSet;
use std::sync::Mutex;

use super::ChangeBatch;
use super::batch::batch_from_columns;
use crate::config::SCAN_BATCH_ROWS;
use crate::error::{Result, WeirError};
use crate::formats::RowCodec;
use crate::state::{KeyRange, StateStore, WriteBatch, keys};

/// How a view's rows are keyed in the store.
#[derive(Debug)]
enum Layout {
    /// `<pk> → row`.
    Keyed(RowCodec),
    /// `<row> → multiplicity`.
    Counted,
    /// `<row id> → row`; the next id, once read from the store (None before the first epoch).
    RowIds(Mutex<Option<u64>>),
}

#[derive(Debug)]
pub struct ViewRows {
    pub view_id: u64,
    pub schema: SchemaRef,
    pub key: Vec<usize>,
    layout: Layout,
    row_codec: RowCodec,
    /// Why the view stopped being maintained, once its dataflow failed.
    failure: std::sync::Mutex<Option<String>>,
}

impl ViewRows {
    /// `append_only`: the view's changes are insertions only (`StreamProps::append_only`).
    pub fn new(
        view_id: u64,
        schema: SchemaRef,
        key: Vec<usize>,
        append_only: bool,
    ) -> Result<Self> {
        let layout = if !key.is_empty() {
            Layout::Keyed(RowCodec::new(
                key.iter().map(|&i| schema.field(i).data_type().clone()),
            )?)
        } else if append_only {
            Layout::RowIds(Mutex::new(None))
        } else {
            Layout::Counted
        };
        let row_codec = RowCodec::for_schema(&schema)?;
        Ok(ViewRows {
            view_id,
            schema,
            key,
            layout,
            row_codec,
            failure: Default::default(),
        })
    }

    /// Applies an epoch's changes to the stored rows (into `batch`) and returns them
    /// consolidated: what downstream views and subscribers receive.
    pub fn apply(
        &self,
        changes: &[ChangeBatch],
        store: &dyn StateStore,
        batch: &mut WriteBatch,
    ) -> Result<ChangeBatch> {
        let all = ChangeBatch::concat(&self.schema, changes)?;
        if let Layout::RowIds(next) = &self.layout {
            // Insertions only: nothing to cancel out, so no consolidation either.
            if !all.is_empty() {
                self.append(&all, next, store, batch)?;
            }
            return Ok(all);
        }
        let delta = all.consolidate(&self.row_codec)?;
        if delta.is_empty() {
            return Ok(delta);
        }
        let rows = self.row_codec.encode(delta.rows.columns())?;
        match &self.layout {
            Layout::Keyed(codec) => self.apply_keyed(codec, &delta, &rows, batch)?,
            _ => self.apply_counted(&delta, &rows, store, batch)?,
        }
        Ok(delta)
    }

    /// An append-only unkeyed view's insertions: each row (as often as its weight) under the
    /// next row id, and the next id after them.
    fn append(
        &self,
        inserts: &ChangeBatch,
        next: &Mutex<Option<u64>>,
        store: &dyn StateStore,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let mut next = next.lock().expect("row id lock");
        let mut id = match *next {
            Some(id) => id,
            None => match store.get(&keys::next_row_id_key(self.view_id))? {
                Some(v) => u64::from_be_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| WeirError::internal("corrupt next row id"))?,
                ),
                None => 0,
            },
        };
        let rows = self.row_codec.encode(inserts.rows.columns())?;
        let prefix = keys::view_rows_prefix(self.view_id);
        for (i, &w) in inserts.weights.iter().enumerate() {
            if w <= 0 {
                return Err(WeirError::internal(format!(
                    "append-only view {} got a change of weight {w}",
                    self.view_id
                )));
            }
            for _ in 0..w {
                // `<view id><row id>`, built in the batch's buffer.
                batch.put_parts(&[&prefix, &id.to_be_bytes()], rows.row(i).data());
                id += 1;
            }
        }
        batch.put(
            keys::next_row_id_key(self.view_id),
            id.to_be_bytes().to_vec(),
        );
        // Ids given to an epoch that then fails to commit are skipped, never given twice.
        *next = Some(id);
        Ok(())
    }

    /// The columns whose encodings make up a stored row's key, in order (none when rows are
    /// stored under row ids).
    pub fn stored_key_columns(&self) -> Vec<usize> {
        match self.layout {
            Layout::Keyed(_) => self.key.clone(),
            Layout::Counted => (0..self.schema.fields().len()).collect(),
            Layout::RowIds(_) => Vec::new(),
        }
    }

    /// A keyed view's changes: each key's insertion is a put of its row; a retraction is a
    /// delete unless the same key is inserted again in the delta (an update: the put alone).
    fn apply_keyed(
        &self,
        codec: &RowCodec,
        delta: &ChangeBatch,
        rows: &Rows,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let columns: Vec<_> = self
            .key
            .iter()
            .map(|&i| delta.rows.column(i).clone())
            .collect();
        let pks = codec.encode(&columns)?;
        let mut inserted: HashSet<&[u8]> = HashSet::new();
        let prefix = keys::view_rows_prefix(self.view_id); // of `keys::view_row_key`
        for (i, &w) in delta.weights.iter().enumerate() {
            match w {
                1 => {
                    let pk = pks.row(i).data();
                    if !inserted.insert(pk) {
                        return Err(self.twice(pk));
                    }
                    batch.put_parts(&[&prefix, pk], rows.row(i).data());
                }
                -1 => {}
                w => {
                    return Err(WeirError::internal(format!(
                        "view {} changes a keyed row by {w}",
                        self.view_id
                    )));
                }
            }
        }
        for (i, &w) in delta.weights.iter().enumerate() {
            let pk = pks.row(i).data();
            if w == -1 && !inserted.contains(pk) {
                batch.delete(keys::view_row_key(self.view_id, pk));
            }
        }
        Ok(())
    }

    fn twice(&self, pk: &[u8]) -> WeirError {
        WeirError::internal(format!(
            "view {} would hold key {pk:?} twice in one epoch",
            self.view_id
        ))
    }

    /// An unkeyed view's changes: each row's stored count moves by its weight.
    fn apply_counted(
        &self,
        delta: &ChangeBatch,
        rows: &Rows,
        store: &dyn StateStore,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        for (i, &weight) in delta.weights.iter().enumerate() {
            let key = keys::view_row_key(self.view_id, rows.row(i).data());
            let old = match store.get(&key)? {
                Some(v) => decode_count(&v)?,
                None => 0,
            };
            let new = old + weight;
            if new < 0 {
                return Err(WeirError::internal(format!(
                    "view {} would hold a row {} times",
                    self.view_id, new
                )));
            }
            if new == 0 {
                batch.delete(key);
            } else {
                batch.put(key, new.to_le_bytes().to_vec());
            }
        }
        Ok(())
    }

    /// Marks the view failed: it is no longer maintained and reads report `reason`.
    pub fn set_failed(&self, reason: &str) {
        *self.failure.lock().expect("failure lock") = Some(reason.to_string());
    }

    /// Why the view failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("failure lock").clone()
    }

    /// Fails when the view is no longer maintained, so nobody reads stale rows unknowingly.
    pub fn check_readable(&self, name: &str) -> Result<()> {
        match self.failure() {
            None => Ok(()),
            Some(reason) => Err(WeirError::new(
                crate::error::ErrorKind::ObjectNotInPrerequisiteState,
                format!("materialized view \"{name}\" is not maintained any more: {reason}"),
            )
            .with_hint(
                "fix the cause, then DROP and CREATE the view again (WITH (on_error = 'skip') \
                 leaves out the rows an expression fails on); SELECT * FROM weir_views shows \
                 each view's state",
            )),
        }
    }

    /// Every committed row, each with its multiplicity as weight.
    pub fn scan(&self, store: &dyn StateStore) -> Result<ChangeBatch> {
        self.decode_pairs(store.scan_prefix(&keys::view_rows_prefix(self.view_id))?)
    }

    /// How many committed rows the view holds (each counted as often as it occurs), read from
    /// a snapshot a page at a time without decoding the rows (for `/metrics`).
    pub fn count(&self, store: &dyn StateStore) -> Result<u64> {
        let snapshot = store.snapshot();
        let mut range = KeyRange::prefix(&keys::view_rows_prefix(self.view_id));
        let mut rows = 0u64;
        loop {
            let page = snapshot.scan(&range, SCAN_BATCH_ROWS)?;
            let Some((last, _)) = page.last() else {
                return Ok(rows);
            };
            range.start = std::ops::Bound::Excluded(last.clone());
            for (_, v) in &page {
                let n = match self.layout {
                    Layout::Counted => u64::try_from(decode_count(v)?).unwrap_or(0),
                    _ => 1,
                };
                rows = rows.saturating_add(n);
            }
        }
    }

    /// The committed row whose key columns equal `key_columns` (one value each), if any.
    pub fn lookup(
        &self,
        store: &dyn StateStore,
        key_columns: &[datafusion::arrow::array::ArrayRef],
    ) -> Result<ChangeBatch> {
        let Layout::Keyed(codec) = &self.layout else {
            return Err(WeirError::internal("view has no key"));
        };
        let pk = codec.encode(key_columns)?;
        let key = keys::view_row_key(self.view_id, pk.row(0).data());
        let pairs = store.get(&key)?.map(|row| (key, row)).into_iter().collect();
        self.decode_pairs(pairs)
    }

    /// Stored pairs of this view (a scan's page) as rows with their multiplicities.
    pub fn decode_pairs(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<ChangeBatch> {
        let (weights, rows): (Vec<i64>, Vec<&[u8]>) = if !matches!(self.layout, Layout::Counted) {
            pairs.iter().map(|(_, row)| (1, row.as_slice())).unzip()
        } else {
            pairs
                .iter()
                .map(|(k, v)| Ok((decode_count(v)?, keys::view_row_suffix(k))))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .unzip()
        };
        let columns = self.row_codec.decode(rows)?;
        Ok(ChangeBatch::new(
            batch_from_columns(&self.schema, columns)?,
            weights,
        ))
    }

    /// Deletes every stored row of the view (DROP).
    pub fn delete_all(&self, store: &dyn StateStore, batch: &mut WriteBatch) -> Result<()> {
        for (k, _) in store.scan_prefix(&keys::view_rows_prefix(self.view_id))? {
            batch.delete(k);
        }
        Ok(())
    }
}

fn decode_count(v: &[u8]) -> Result<i64> {
    Ok(i64::from_le_bytes(v.try_into().map_err(|_| {
        WeirError::internal("corrupt view row count")
    })?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::state::StoreKind;

    fn inserts(schema: &SchemaRef, values: &[i64]) -> ChangeBatch {
        let column = Arc::new(Int64Array::from(values.to_vec()));
        ChangeBatch::inserts(RecordBatch::try_new(schema.clone(), vec![column]).unwrap())
    }

    #[test]
    fn an_append_only_view_keeps_every_insertion_under_its_own_row_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreKind::Fjall.open(dir.path()).unwrap();
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let view = ViewRows::new(7, schema.clone(), vec![], true).unwrap();
        let mut batch = WriteBatch::default();
        // A duplicate row, and a row with weight 2: four rows, nothing read from the store.
        let mut twice = inserts(&schema, &[9]);
        twice.weights = vec![2];
        view.apply(
            &[inserts(&schema, &[5, 5]), twice],
            store.as_ref(),
            &mut batch,
        )
        .unwrap();
        store.commit(batch).unwrap();
        // A new ViewRows (as after a restart) goes on from the stored next id.
        let reopened = ViewRows::new(7, schema.clone(), vec![], true).unwrap();
        let mut batch = WriteBatch::default();
        reopened
            .apply(&[inserts(&schema, &[5])], store.as_ref(), &mut batch)
            .unwrap();
        store.commit(batch).unwrap();
        let all = reopened.scan(store.as_ref()).unwrap();
        let values: Vec<i64> = all
            .rows
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(values, vec![5, 5, 9, 9, 5]);
        assert_eq!(all.weights, vec![1; 5]);
        assert_eq!(reopened.count(store.as_ref()).unwrap(), 5);
        // A retraction is not an append-only view's change.
        let mut retract = inserts(&schema, &[5]);
        retract.weights = vec![-1];
        let err = reopened
            .apply(&[retract], store.as_ref(), &mut WriteBatch::default())
            .unwrap_err();
        assert!(err.message.contains("weight -1"), "{}", err.message);
    }
}
