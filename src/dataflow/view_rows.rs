//! Where a view's rows live: the `v` space of the store, one key per distinct row,
//! `<view id><pk len><pk><row> → multiplicity`. The pk is the view's key columns (the GROUP BY
//! key) in row format, empty when the view has no key; so a point lookup is a prefix scan of
//! one pk, and a full read is a prefix scan of the view.
//!
//! A view with a key holds each key once (the planner only gives a view a key that is unique:
//! a GROUP BY key, a table's primary key), so each of its rows has multiplicity 1 and a change
//! is a put or a delete, without reading the stored count first; a view without a key reads it.

use datafusion::arrow::datatypes::SchemaRef;

use super::ChangeBatch;
use super::batch::batch_from_columns;
use crate::error::{Result, WeirError};
use crate::formats::RowCodec;
use crate::state::{StateStore, WriteBatch, keys};

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
        let pks = match &self.key_codec {
            Some(codec) => {
                let cols: Vec<_> = self
                    .key
                    .iter()
                    .map(|&i| delta.rows.column(i).clone())
                    .collect();
                Some(codec.encode(&cols)?)
            }
            None => None,
        };
        for i in 0..delta.len() {
            let pk: &[u8] = pks.as_ref().map(|p| p.row(i).data()).unwrap_or(&[]);
            let key = keys::view_row_key(self.view_id, pk, rows.row(i).as_ref());
            let weight = delta.weights[i];
            if pks.is_some() {
                // A keyed row is there once or not at all: +1 stores it, −1 removes it.
                match weight {
                    1 => batch.put(key, 1i64.to_le_bytes().to_vec()),
                    -1 => batch.delete(key),
                    w => {
                        return Err(WeirError::internal(format!(
                            "view {} changes a keyed row by {w}",
                            self.view_id
                        )));
                    }
                }
                continue;
            }
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
        Ok(delta)
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
            .with_hint("fix the cause, then DROP and CREATE the view again")),
        }
    }

    /// Every committed row, each with its multiplicity as weight.
    pub fn scan(&self, store: &dyn StateStore) -> Result<ChangeBatch> {
        self.decode_pairs(store.scan_prefix(&keys::view_rows_prefix(self.view_id))?)
    }

    /// The committed rows whose key columns equal `key_columns` (one value each).
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
        let prefix = keys::view_pk_prefix(self.view_id, pk.row(0).as_ref());
        self.decode_pairs(store.scan_prefix(&prefix)?)
    }

    fn decode_pairs(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<ChangeBatch> {
        let mut weights = Vec::with_capacity(pairs.len());
        for (_, v) in &pairs {
            weights.push(decode_count(v)?);
        }
        let columns = self
            .row_codec
            .decode(pairs.iter().map(|(k, _)| keys::view_row_of_key(k)))?;
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
