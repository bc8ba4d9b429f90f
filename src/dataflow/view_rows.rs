//! Where a view's rows live: the `v` space of the store (layout in `state::keys`).
//!
//! A view with a key holds each key once (the planner only gives a view a key that is unique:
//! a GROUP BY key, a table's primary key), so it stores `<view id><pk> → row`: a change is one
//! put (or a delete when the key goes away), without reading anything first, and a point
//! lookup is one get. A view without a key may hold a row several times: it stores
//! `<view id><row> → multiplicity`, reading the count before changing it. A full read is a
//! prefix scan of the view either way.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::Rows;
use hashbrown::HashSet;

use super::ChangeBatch;
use super::batch::batch_from_columns;
use crate::config::SCAN_BATCH_ROWS;
use crate::error::{Result, WeirError};
use crate::formats::RowCodec;
use crate::state::{KeyRange, StateStore, WriteBatch, keys};

#[derive(Debug)]
pub struct ViewRows {
    pub view_id: u64,
    pub schema: SchemaRef,
    pub key: Vec<usize>,
    key_codec: Option<RowCodec>,
    row_codec: RowCodec,
    /// Why the view stopped being maintained, once its dataflow failed.
    failure: std::sync::Mutex<Option<String>>,
}

impl ViewRows {
    pub fn new(view_id: u64, schema: SchemaRef, key: Vec<usize>) -> Result<Self> {
        let key_codec = if key.is_empty() {
            None
        } else {
            Some(RowCodec::new(
                key.iter().map(|&i| schema.field(i).data_type().clone()),
            )?)
        };
        let row_codec = RowCodec::for_schema(&schema)?;
        Ok(ViewRows {
            view_id,
            schema,
            key,
            key_codec,
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
        let delta = all.consolidate(&self.row_codec)?;
        if delta.is_empty() {
            return Ok(delta);
        }
        let rows = self.row_codec.encode(delta.rows.columns())?;
        match &self.key_codec {
            Some(codec) => self.apply_keyed(codec, &delta, &rows, batch)?,
            None => self.apply_counted(&delta, &rows, store, batch)?,
        }
        Ok(delta)
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
        for (i, &w) in delta.weights.iter().enumerate() {
            match w {
                1 => {
                    let pk = pks.row(i).data();
                    if !inserted.insert(pk) {
                        return Err(self.twice(pk));
                    }
                    batch.put(
                        keys::view_row_key(self.view_id, pk),
                        rows.row(i).data().to_vec(),
                    );
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
                let n = match self.key_codec {
                    Some(_) => 1,
                    None => u64::try_from(decode_count(v)?).unwrap_or(0),
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
        let codec = self
            .key_codec
            .as_ref()
            .ok_or_else(|| WeirError::internal("view has no key"))?;
        let pk = codec.encode(key_columns)?;
        let key = keys::view_row_key(self.view_id, pk.row(0).data());
        let pairs = store.get(&key)?.map(|row| (key, row)).into_iter().collect();
        self.decode_pairs(pairs)
    }

    /// Stored pairs of this view (a scan's page) as rows with their multiplicities.
    pub fn decode_pairs(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<ChangeBatch> {
        let (weights, rows): (Vec<i64>, Vec<&[u8]>) = if self.key_codec.is_some() {
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
