//! Inner equi-join with keyed state on both sides.
//!
//! Each side keeps, per join key, the multiset of its rows with that key (row bytes →
//! multiplicity). Keys go through a [`KeyIndex`] (one lookup per row, a dense index per key,
//! an i64 for one integer-like key column), so a bucket is found without allocating. A change
//! on one side is matched against the other side's state (weights multiply), then added to its
//! own side's state. Processing the two sides one after the other gives exactly ΔL⋈R + L'⋈ΔR,
//! the change of L⋈R. Rows with a NULL in the key never match, as in SQL. A residual
//! (non-equi) condition filters the output.
//!
//! State is written at checkpoint as `<side byte><key len u32><key><row> → multiplicity`, for
//! the (key, row) pairs changed in the epoch, which each side logs into one byte arena.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;
use hashbrown::{HashMap, HashSet};

use super::key_index::KeyIndex;
use super::{Operator, StateScope};
use crate::dataflow::ChangeBatch;
use crate::dataflow::batch::batch_from_columns;
use crate::error::{Result, WeirError};
use crate::formats::RowCodec;
use crate::state::WriteBatch;

/// One side's rows with one join key: row bytes → multiplicity.
type Bucket = HashMap<Box<[u8]>, i64>;

/// A stored join-state entry, borrowed from its store key and value: (key, row, multiplicity).
type StoredRow<'a> = (&'a [u8], &'a [u8], i64);

struct Side {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    row_codec: RowCodec,
    index: KeyIndex,
    /// By key index.
    buckets: Vec<Bucket>,
    /// The (key index, row) pairs changed since the last checkpoint, possibly repeated: key
    /// indices, and the rows' bytes end to end in `unsaved_bytes` (ending at `unsaved_ends`).
    unsaved_keys: Vec<u32>,
    unsaved_bytes: Vec<u8>,
    unsaved_ends: Vec<usize>,
}

impl Side {
    fn new(
        keys: Vec<Arc<dyn PhysicalExpr>>,
        key_types: &[DataType],
        schema: &SchemaRef,
    ) -> Result<Self> {
        Ok(Side {
            keys,
            row_codec: RowCodec::for_schema(schema)?,
            index: KeyIndex::new(key_types.to_vec())?,
            buckets: Vec::new(),
            unsaved_keys: Vec::new(),
            unsaved_bytes: Vec::new(),
            unsaved_ends: Vec::new(),
        })
    }

    fn key_columns(&self, batch: &ChangeBatch) -> Result<(Vec<ArrayRef>, Option<NullBuffer>)> {
        let n = batch.len();
        let columns = self
            .keys
            .iter()
            .map(|e| e.evaluate(&batch.rows)?.into_array(n))
            .collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
        // A row matches only when every key column is non-NULL.
        let valid = columns.iter().fold(None, |acc: Option<NullBuffer>, c| {
            NullBuffer::union(acc.as_ref(), c.logical_nulls().as_ref())
        });
        Ok((columns, valid))
    }

    fn log_unsaved(&mut self, key: u32, row: &[u8]) {
        self.unsaved_keys.push(key);
        self.unsaved_bytes.extend_from_slice(row);
        self.unsaved_ends.push(self.unsaved_bytes.len());
    }

    /// Adds `w` to `row`'s multiplicity under key `k`.
    fn absorb(&mut self, k: u32, row: &[u8], w: i64) {
        let bucket = &mut self.buckets[k as usize];
        match bucket.get_mut(row) {
            Some(count) => {
                *count += w;
                if *count == 0 {
                    bucket.remove(row);
                }
            }
            None => {
                bucket.insert(row.into(), w);
            }
        }
        self.log_unsaved(k, row);
    }

    fn checkpoint(
        &mut self,
        side_no: u8,
        scope: &StateScope,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let mut starts = std::iter::once(0).chain(self.unsaved_ends.iter().copied());
        let mut changed: HashSet<(u32, &[u8])> = HashSet::new();
        for (&k, &end) in self.unsaved_keys.iter().zip(&self.unsaved_ends) {
            let start = starts.next().expect("one start per end");
            changed.insert((k, &self.unsaved_bytes[start..end]));
        }
        let mut keys: Vec<u32> = changed.iter().map(|&(k, _)| k).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut key_bytes: HashMap<u32, Vec<u8>> = HashMap::with_capacity(keys.len());
        self.index.for_each_encoded(&keys, |k, bytes| {
            key_bytes.insert(k, bytes.to_vec());
            Ok(())
        })?;
        for (k, row) in changed {
            let key = &key_bytes[&k];
            let mut suffix = Vec::with_capacity(5 + key.len() + row.len());
            suffix.push(side_no);
            suffix.extend_from_slice(&(key.len() as u32).to_be_bytes());
            suffix.extend_from_slice(key);
            suffix.extend_from_slice(row);
            match self.buckets[k as usize].get(row) {
                Some(count) => batch.put(scope.key(&suffix), count.to_le_bytes().to_vec()),
                None => batch.delete(scope.key(&suffix)),
            }
        }
        for k in keys {
            if self.buckets[k as usize].is_empty() {
                self.index.remove(k);
            }
        }
        self.unsaved_keys.clear();
        self.unsaved_bytes.clear();
        self.unsaved_ends.clear();
        Ok(())
    }

    fn clear(&mut self) {
        self.index.clear();
        self.buckets.clear();
        self.unsaved_keys.clear();
        self.unsaved_bytes.clear();
        self.unsaved_ends.clear();
    }

    fn grow(&mut self) {
        self.buckets
            .resize_with(self.index.slots(), Bucket::default);
    }
}

pub struct Join {
    sides: [Side; 2],
    filter: Option<Arc<dyn PhysicalExpr>>,
    output_schema: SchemaRef,
    /// Reused per batch: each row's key index on this side, and its match on the other.
    assigned: Vec<u32>,
    found: Vec<Option<u32>>,
}

impl Join {
    pub fn new(
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        key_types: Vec<DataType>,
        left_schema: &SchemaRef,
        right_schema: &SchemaRef,
        filter: Option<Arc<dyn PhysicalExpr>>,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        Ok(Join {
            sides: [
                Side::new(left_keys, &key_types, left_schema)?,
                Side::new(right_keys, &key_types, right_schema)?,
            ],
            filter,
            output_schema,
            assigned: Vec::new(),
            found: Vec::new(),
        })
    }

    /// The joined rows for row `this_idx[i]` of `batch` with `other_rows[i]`, filtered.
    fn joined(
        &self,
        this: usize,
        batch: &ChangeBatch,
        this_idx: &[u32],
        other_rows: Vec<&[u8]>,
        weights: Vec<i64>,
    ) -> Result<ChangeBatch> {
        let this_part = batch.take(this_idx)?;
        let other_cols = self.sides[1 - this].row_codec.decode(other_rows)?;
        let mut columns: Vec<ArrayRef> = Vec::new();
        if this == 0 {
            columns.extend(this_part.rows.columns().iter().cloned());
            columns.extend(other_cols);
        } else {
            columns.extend(other_cols);
            columns.extend(this_part.rows.columns().iter().cloned());
        }
        let joined = ChangeBatch::new(batch_from_columns(&self.output_schema, columns)?, weights);
        match &self.filter {
            Some(f) => {
                let mask = f.evaluate(&joined.rows)?.into_array(joined.len())?;
                let mask = mask
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| WeirError::internal("join filter is not boolean"))?;
                joined.filter(mask)
            }
            None => Ok(joined),
        }
    }
}

impl Operator for Join {
    fn process(&mut self, input: usize, batch: ChangeBatch) -> Result<Vec<ChangeBatch>> {
        let n = batch.len();
        let (this, other) = if input == 0 { (0, 1) } else { (1, 0) };
        let (key_cols, valid) = self.sides[this].key_columns(&batch)?;
        let is_valid = |i: usize| valid.as_ref().is_none_or(|v| v.is_valid(i));

        // Match against the other side.
        let mut found = std::mem::take(&mut self.found);
        self.sides[other].index.find(&key_cols, n, &mut found)?;
        let mut this_idx: Vec<u32> = Vec::new();
        let mut other_rows: Vec<&[u8]> = Vec::new();
        let mut weights: Vec<i64> = Vec::new();
        for (i, k) in found.iter().enumerate() {
            let Some(k) = *k else { continue };
            if !is_valid(i) {
                continue;
            }
            for (row, w) in &self.sides[other].buckets[k as usize] {
                this_idx.push(i as u32);
                other_rows.push(row);
                weights.push(batch.weights[i] * w);
            }
        }
        let mut out = Vec::new();
        if !this_idx.is_empty() {
            let joined = self.joined(this, &batch, &this_idx, other_rows, weights)?;
            if !joined.is_empty() {
                out.push(joined);
            }
        }
        self.found = found;

        // Then absorb into this side.
        let rows = self.sides[this].row_codec.encode(batch.rows.columns())?;
        let mut assigned = std::mem::take(&mut self.assigned);
        let side = &mut self.sides[this];
        side.index.assign(&key_cols, n, &mut assigned)?;
        side.grow();
        for (i, &k) in assigned.iter().enumerate() {
            if is_valid(i) {
                side.absorb(k, rows.row(i).data(), batch.weights[i]);
            }
        }
        self.assigned = assigned;
        Ok(out)
    }

    fn checkpoint(&mut self, scope: &StateScope, batch: &mut WriteBatch) -> Result<()> {
        for (side_no, side) in self.sides.iter_mut().enumerate() {
            side.checkpoint(side_no as u8, scope, batch)?;
        }
        Ok(())
    }

    fn restore(&mut self, scope: &StateScope, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let corrupt = || WeirError::internal("corrupt join state");
        for side in &mut self.sides {
            side.clear();
        }
        // Per side: the stored (key, row, multiplicity) triples.
        let mut stored: [Vec<StoredRow>; 2] = Default::default();
        for (full_key, value) in &pairs {
            let (side_no, key, row) = stored_key(&full_key[scope.prefix.len()..])?;
            let count = i64::from_le_bytes(value.as_slice().try_into().map_err(|_| corrupt())?);
            stored
                .get_mut(side_no)
                .ok_or_else(corrupt)?
                .push((key, row, count));
        }
        for (side, triples) in self.sides.iter_mut().zip(stored) {
            let keys: Vec<&[u8]> = triples.iter().map(|t| t.0).collect();
            let mut indices = Vec::new();
            side.index.assign_encoded(&keys, &mut indices)?;
            side.grow();
            for ((_, row, count), k) in triples.into_iter().zip(indices) {
                side.buckets[k as usize].insert(row.into(), count);
            }
        }
        Ok(())
    }

    fn partitioned(&self) -> bool {
        true
    }

    fn vnodes(&self, input: usize, batch: &ChangeBatch, out: &mut Vec<u16>) -> Result<()> {
        let side = &self.sides[input];
        let (columns, _) = side.key_columns(batch)?;
        side.index.vnodes(&columns, batch.len(), out)
    }

    fn state_vnodes(&self, suffixes: &[&[u8]], out: &mut Vec<u16>) -> Result<()> {
        let keys = suffixes
            .iter()
            .map(|k| stored_key(k).map(|(_, key, _)| key))
            .collect::<Result<Vec<_>>>()?;
        // Both sides have the same key types, so either side's index gives the vnodes.
        self.sides[0].index.vnodes_encoded(&keys, out)
    }

    fn describe(&self) -> String {
        let l: Vec<String> = self.sides[0].keys.iter().map(|e| e.to_string()).collect();
        let r: Vec<String> = self.sides[1].keys.iter().map(|e| e.to_string()).collect();
        let on: Vec<String> = l
            .iter()
            .zip(&r)
            .map(|(a, b)| format!("{a} = {b}"))
            .collect();
        match &self.filter {
            Some(f) => format!("HashJoin: on=[{}], filter={f}", on.join(", ")),
            None => format!("HashJoin: on=[{}]", on.join(", ")),
        }
    }
}

/// A stored entry's key (without the operator prefix) split into its side, join key and row.
fn stored_key(k: &[u8]) -> Result<(usize, &[u8], &[u8])> {
    let corrupt = || WeirError::internal("corrupt join state");
    let side_no = *k.first().ok_or_else(corrupt)? as usize;
    let key_len = u32::from_be_bytes(
        k.get(1..5)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    ) as usize;
    let key = k.get(5..5 + key_len).ok_or_else(corrupt)?;
    Ok((side_no, key, &k[5 + key_len..]))
}
