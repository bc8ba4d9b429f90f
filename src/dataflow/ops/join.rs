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
//!
//! Attached to the store (`dataflow::state_cache`), each side reads through: a restore loads
//! nothing, a key not in memory has its rows read (one prefix scan) when a row with that key
//! arrives on either side, and at a checkpoint over budget each side forgets the keys written
//! longest ago.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;
use hashbrown::{HashMap, HashSet};

use super::key_cache::{KEY_FIXED_BYTES, KeyCache};
use super::key_index::KeyIndex;
use super::row_errors::{self, OnRowError};
use super::{Operator, StateScope};
use crate::dataflow::ChangeBatch;
use crate::dataflow::batch::batch_from_columns;
use crate::dataflow::state_cache::StateReader;
use crate::error::{Result, WeirError};
use crate::formats::RowCodec;
use crate::state::WriteBatch;

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;

/// One side's rows with one join key: row bytes → multiplicity.
type Bucket = HashMap<Box<[u8]>, i64>;

/// A stored join-state entry, borrowed from its store key and value: (key, row, multiplicity).
type StoredRow<'a> = (&'a [u8], &'a [u8], i64);

/// Bytes one row of a bucket takes in memory besides its own bytes: the map entry (boxed
/// row pointer and length, multiplicity, control byte) and the row's allocation.
const ROW_ENTRY_BYTES: usize = 48;

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
    /// Set when the side reads through the state cache.
    cache: Option<KeyCache>,
    /// Bytes of the rows in memory, [`ROW_ENTRY_BYTES`] each included.
    row_bytes: usize,
    /// Reused per batch: the keys to read from the store, and key indices.
    to_load: Vec<u32>,
    scratch: Vec<u32>,
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
            cache: None,
            row_bytes: 0,
            to_load: Vec::new(),
            scratch: Vec::new(),
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
                    self.row_bytes -= row.len() + ROW_ENTRY_BYTES;
                }
            }
            None => {
                bucket.insert(row.into(), w);
                self.row_bytes += row.len() + ROW_ENTRY_BYTES;
            }
        }
        self.log_unsaved(k, row);
    }

    /// Each row's key index into `out` when this side has rows with the row's key, reading
    /// keys not in memory from the store.
    fn probe(
        &mut self,
        side_no: u8,
        columns: &[ArrayRef],
        rows: usize,
        out: &mut Vec<Option<u32>>,
    ) -> Result<()> {
        if !self.cache.as_ref().is_some_and(KeyCache::store_may_hold) {
            // Every key this side has is in memory.
            return self.index.find(columns, rows, out);
        }
        let mut keys = std::mem::take(&mut self.scratch);
        self.index.assign(columns, rows, &mut keys)?;
        self.grow();
        let read = self.read_through(side_no, &keys);
        // Keys the store has no rows for either leave again: probing adds no key.
        let cache = self.cache.as_mut().expect("reading through");
        for &k in &self.to_load {
            if self.buckets[k as usize].is_empty() {
                self.index.remove(k);
                cache.forget(k);
            }
        }
        out.clear();
        out.extend(
            keys.iter()
                .map(|&k| (!self.buckets[k as usize].is_empty()).then_some(k)),
        );
        self.scratch = keys;
        read
    }

    /// Reads from the store the rows of the keys among `keys` (indices, in memory) that are
    /// not in memory yet; leaves them in `to_load`.
    fn read_through(&mut self, side_no: u8, keys: &[u32]) -> Result<()> {
        let Some(cache) = &mut self.cache else {
            return Ok(());
        };
        cache.admit(keys, &mut self.to_load);
        if self.to_load.is_empty() {
            return Ok(());
        }
        let reader = &cache.reader;
        let mut stored = Vec::new();
        self.index.for_each_encoded(&self.to_load, |k, key| {
            stored.push((k, reader.scan(&state_key_prefix(side_no, key))?));
            Ok(())
        })?;
        let skip = reader.prefix().len();
        for (k, pairs) in stored {
            let bucket = &mut self.buckets[k as usize];
            for (full_key, value) in &pairs {
                let (_, _, row) = stored_key(&full_key[skip..])?;
                bucket.insert(row.into(), stored_count(value)?);
                self.row_bytes += row.len() + ROW_ENTRY_BYTES;
            }
        }
        Ok(())
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
            let mut suffix = state_key_prefix(side_no, &key_bytes[&k]);
            suffix.extend_from_slice(row);
            match self.buckets[k as usize].get(row) {
                Some(count) => batch.put(scope.key(&suffix), count.to_le_bytes().to_vec()),
                None => batch.delete(scope.key(&suffix)),
            }
        }
        for k in keys {
            if self.buckets[k as usize].is_empty() {
                self.index.remove(k);
                if let Some(cache) = &mut self.cache {
                    cache.forget(k);
                }
            } else if let Some(cache) = &mut self.cache {
                cache.stamp(k);
            }
        }
        self.unsaved_keys.clear();
        self.unsaved_bytes.clear();
        self.unsaved_ends.clear();
        self.evict();
        Ok(())
    }

    /// At the end of a checkpoint: when the cache is over budget, forgets the keys written
    /// longest ago. Their rows are in the checkpoint's batch, committed before any more input
    /// arrives.
    fn evict(&mut self) {
        let Some(cache) = &mut self.cache else {
            return;
        };
        let evicted = cache.after_checkpoint(key_bytes(cache, self.row_bytes));
        if evicted.is_empty() {
            return;
        }
        for &k in &evicted {
            let bucket = std::mem::take(&mut self.buckets[k as usize]);
            self.row_bytes -= bucket
                .keys()
                .map(|row| row.len() + ROW_ENTRY_BYTES)
                .sum::<usize>();
            self.index.remove(k);
            cache.forget(k);
        }
        cache.report(key_bytes(cache, self.row_bytes));
        tracing::debug!(
            keys = evicted.len(),
            "join state over budget: keys forgotten"
        );
    }

    /// Empties the side for a restore: the store holds its committed state.
    fn restored(&mut self) {
        self.index.clear();
        self.buckets.clear();
        self.unsaved_keys.clear();
        self.unsaved_bytes.clear();
        self.unsaved_ends.clear();
        self.row_bytes = 0;
        if let Some(cache) = &mut self.cache {
            cache.restored();
        }
    }

    fn grow(&mut self) {
        self.buckets
            .resize_with(self.index.slots(), Bucket::default);
        if let Some(cache) = &mut self.cache {
            cache.grow(self.index.slots());
        }
    }
}

pub struct Join {
    sides: [Side; 2],
    filter: Option<Arc<dyn PhysicalExpr>>,
    output_schema: SchemaRef,
    /// Reused per batch: each row's key index on this side, and its match on the other.
    assigned: Vec<u32>,
    found: Vec<Option<u32>>,
    /// With `on_error = 'skip'`: where the rows a key or the filter fails on go.
    on_row_error: OnRowError,
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
            on_row_error: None,
        })
    }

    /// Skips (and records) the rows a join key or the filter fails on instead of failing.
    pub fn on_row_error(mut self, skip: OnRowError) -> Self {
        self.on_row_error = skip;
        self
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
                let skip = self.on_row_error.as_deref();
                let (joined, masks) = row_errors::evaluate(std::slice::from_ref(f), joined, skip)?;
                let mask = masks[0]
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
        let (this, other) = if input == 0 { (0, 1) } else { (1, 0) };
        let skip = self.on_row_error.as_deref();
        let batch = row_errors::drop_failing(&self.sides[this].keys, batch, skip)?;
        let n = batch.len();
        let (key_cols, valid) = self.sides[this].key_columns(&batch)?;
        let is_valid = |i: usize| valid.as_ref().is_none_or(|v| v.is_valid(i));

        // Match against the other side.
        let mut found = std::mem::take(&mut self.found);
        self.sides[other].probe(other as u8, &key_cols, n, &mut found)?;
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
        side.read_through(this as u8, &assigned)?;
        for (i, &k) in assigned.iter().enumerate() {
            if is_valid(i) {
                side.absorb(k, rows.row(i).data(), batch.weights[i]);
            }
        }
        if let Some(cache) = &mut side.cache {
            cache.report(key_bytes(cache, side.row_bytes));
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
            side.restored();
        }
        // Per side: the stored (key, row, multiplicity) triples (none when reading through).
        let mut stored: [Vec<StoredRow>; 2] = Default::default();
        for (full_key, value) in &pairs {
            let (side_no, key, row) = stored_key(&full_key[scope.prefix.len()..])?;
            stored
                .get_mut(side_no)
                .ok_or_else(corrupt)?
                .push((key, row, stored_count(value)?));
        }
        for (side, triples) in self.sides.iter_mut().zip(stored) {
            let keys: Vec<&[u8]> = triples.iter().map(|t| t.0).collect();
            let mut indices = Vec::new();
            side.index.assign_encoded(&keys, &mut indices)?;
            side.grow();
            for ((_, row, count), k) in triples.into_iter().zip(indices) {
                side.buckets[k as usize].insert(row.into(), count);
                side.row_bytes += row.len() + ROW_ENTRY_BYTES;
            }
        }
        Ok(())
    }

    fn attach(&mut self, state: StateReader) {
        let [left, right] = &mut self.sides;
        right.cache = Some(KeyCache::new(state.sibling()));
        left.cache = Some(KeyCache::new(state));
        left.grow();
        right.grow();
    }

    fn reads_through(&self) -> bool {
        self.sides[0].cache.is_some()
    }

    fn partitioned(&self) -> bool {
        true
    }

    fn vnodes(&self, input: usize, batch: &ChangeBatch, out: &mut Vec<u16>) -> Result<()> {
        let side = &self.sides[input];
        match side.key_columns(batch) {
            Ok((columns, _)) => side.index.vnodes(&columns, batch.len(), out),
            Err(_) if self.on_row_error.is_some() => {
                row_errors::route_passing(&side.keys, batch, out, |kept, out| {
                    let (columns, _) = side.key_columns(kept)?;
                    side.index.vnodes(&columns, kept.len(), out)
                })
            }
            Err(e) => Err(e),
        }
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

/// Estimated bytes a key of a side takes in memory, its rows included: the mean over the
/// side's keys in memory.
fn key_bytes(cache: &KeyCache, row_bytes: usize) -> usize {
    KEY_FIXED_BYTES + row_bytes / cache.resident_keys().max(1)
}

/// The start of the stored key (without the operator prefix) of side `side_no`'s rows with
/// join key `key` (row-format bytes): every such row's key begins with it.
fn state_key_prefix(side_no: u8, key: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(5 + key.len());
    prefix.push(side_no);
    prefix.extend_from_slice(&(key.len() as u32).to_be_bytes());
    prefix.extend_from_slice(key);
    prefix
}

/// A stored entry's multiplicity.
fn stored_count(value: &[u8]) -> Result<i64> {
    let bytes = value
        .try_into()
        .map_err(|_| WeirError::internal("corrupt join state"))?;
    Ok(i64::from_le_bytes(bytes))
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
