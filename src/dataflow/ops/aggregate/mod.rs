//! Hash aggregation that stays correct under retractions.
//!
//! Vectorized: a batch's group keys are row-encoded and looked up once each in the group table
//! (`groups`), which gives every group a dense index; each aggregate's typed accumulator
//! (`accumulators`) then applies the whole batch in one loop over those indices. count, sum
//! and avg are invertible (a retraction subtracts); min and max keep a multiset of the values
//! seen (`multiset`: value → multiplicity), so deleting the current minimum falls back to the
//! next one; over an append-only input (the planner knows, `StreamProps`) they keep only the
//! best value. Changes are absorbed as they arrive; at the barrier each touched group emits at
//! most a retraction of its previous output row and an insertion of its new one.
//!
//! State per group is written at each checkpoint under `<operator prefix><group key>`, for the
//! groups changed in the epoch only. The output row a group last emitted is not stored (the
//! view holds it): it is the row the stored state evaluates to, so it is computed again when a
//! group is loaded. A min/max multiset of more than
//! `multiset::INLINE_VALUES_MAX` values is kept outside it, one entry per value
//! (`multiset::value_key`), of which only the changed ones are written. With EMIT ON WINDOW
//! CLOSE (`window_close.rs`) a group is a window, emitted once when the watermark passes it.
//!
//! Attached to the store (`dataflow::state_cache`), a grouped aggregate without EMIT ON WINDOW
//! CLOSE reads through (`ops/key_cache.rs`): a restore loads nothing, a group not in memory is read
//! from the store when its first row arrives, and a checkpoint over the memory budget forgets
//! the groups written longest ago.

mod accumulators;
mod exact_float;
mod multiset;
#[cfg(test)]
mod tests;
mod window_close;

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;
use serde::{Deserialize, Serialize};

use super::key_cache::{KEY_FIXED_BYTES, KeyCache};
use super::key_index::KeyIndex;
use super::row_errors::{self, OnRowError};
use super::{Operator, StateScope};
use crate::dataflow::batch::batch_from_columns;
use crate::dataflow::state_cache::StateReader;
use crate::dataflow::{ChangeBatch, vnode};
use crate::error::{Result, WeirError};
use crate::formats::RowCodec;
use crate::state::WriteBatch;
use accumulators::{Acc, AccRef, GroupAccumulator, accumulator};
use multiset::{group_values_prefix, parse_value_key, value_key};
use window_close::{WATERMARK_SUFFIX, WindowClose};

/// Bytes one aggregate's running value takes in one group in memory (a sum with its count, a
/// small multiset's container), besides the group's [`KEY_FIXED_BYTES`], key and emitted row.
const ACCUMULATOR_BYTES: usize = 32;

/// Which aggregate function, with the representation its running value needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

/// One aggregate of the operator: function, argument and result type.
pub struct AggSpec {
    pub kind: AggKind,
    pub arg: Arc<dyn PhysicalExpr>,
    pub output_type: DataType,
    /// Display name for EXPLAIN.
    pub name: String,
}

/// A group's state as stored: its input row count and one [`Acc`] per aggregate. The row it
/// last emitted is what these evaluate to (a checkpoint follows the barrier that emitted it).
#[derive(Deserialize)]
struct GroupState {
    rows: i64,
    accs: Vec<Acc>,
}

/// [`GroupState`] borrowed from the operator, serialized to the same bytes.
#[derive(Serialize)]
struct GroupStateRef<'a> {
    rows: i64,
    accs: Vec<AccRef<'a>>,
}

pub struct Aggregate {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    aggs: Vec<AggSpec>,
    accumulators: Vec<Box<dyn GroupAccumulator>>,
    /// The input never retracts: min/max keep one value.
    append_only_input: bool,
    output_schema: SchemaRef,
    output_codec: RowCodec,
    /// The group of each key; a global aggregate (no GROUP BY) has one, index 0.
    groups: KeyIndex,
    /// By group index: the sum of the weights of the group's input rows.
    rows: Vec<i64>,
    /// By group index: the output row last emitted (row format; empty when none).
    emitted: Vec<Vec<u8>>,
    /// Groups changed since the last checkpoint, each once (`touched_mark` says which).
    touched: Vec<u32>,
    touched_mark: Vec<bool>,
    /// Each input row's group, for the batch being processed (kept to reuse its allocation).
    row_groups: Vec<u32>,
    /// Whether this copy holds the one group of a global aggregate: the worker owning the
    /// empty key's vnode does (the only copy when the view runs on one worker).
    owns_global: bool,
    /// EMIT ON WINDOW CLOSE: which group key is the window, and the watermark.
    close: Option<WindowClose>,
    /// Reading through the store: which groups are in memory (None: all of them are).
    cache: Option<KeyCache>,
    /// Estimated bytes a group takes in memory (see [`ACCUMULATOR_BYTES`]), from the groups
    /// last written.
    group_bytes: usize,
    /// Groups of the batch being processed to read from the store (kept for its allocation).
    to_load: Vec<u32>,
    /// With `on_error = 'skip'`: where skipped rows go, and every expression the aggregate
    /// evaluates (group keys, then arguments), which a row must pass to be counted.
    on_row_error: OnRowError,
    guarded: Vec<Arc<dyn PhysicalExpr>>,
}

impl Aggregate {
    pub fn new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        group_types: Vec<DataType>,
        aggs: Vec<AggSpec>,
        arg_types: Vec<DataType>,
        output_schema: SchemaRef,
        append_only_input: bool,
    ) -> Result<Self> {
        for spec in &aggs {
            let supported = match spec.kind {
                AggKind::Count | AggKind::Min | AggKind::Max => true,
                AggKind::Sum => matches!(
                    spec.output_type,
                    DataType::Int64
                        | DataType::UInt64
                        | DataType::Float64
                        | DataType::Decimal128(_, _)
                ),
                AggKind::Avg => spec.output_type == DataType::Float64,
            };
            if !supported {
                return Err(WeirError::unsupported(format!(
                    "{} returning {} in a materialized view is not supported yet",
                    spec.name, spec.output_type
                )));
            }
        }
        let accumulators = aggs
            .iter()
            .zip(&arg_types)
            .map(|(spec, t)| accumulator(spec.kind, t, &spec.output_type, append_only_input))
            .collect::<Result<_>>()?;
        let output_codec = RowCodec::for_schema(&output_schema)?;
        let mut op = Aggregate {
            group_exprs,
            aggs,
            accumulators,
            append_only_input,
            output_schema,
            output_codec,
            groups: KeyIndex::new(group_types)?,
            rows: Vec::new(),
            emitted: Vec::new(),
            touched: Vec::new(),
            touched_mark: Vec::new(),
            row_groups: Vec::new(),
            owns_global: true,
            close: None,
            cache: None,
            group_bytes: 0,
            to_load: Vec::new(),
            on_row_error: None,
            guarded: Vec::new(),
        };
        op.ensure_global_group();
        Ok(op)
    }

    /// Skips (and records) the rows a group key or argument fails on instead of failing.
    pub fn on_row_error(mut self, skip: OnRowError) -> Self {
        self.guarded = self.group_exprs.clone();
        self.guarded
            .extend(self.aggs.iter().map(|spec| spec.arg.clone()));
        self.on_row_error = skip;
        self
    }

    /// Emits each window once, when the watermark on group key `key` (the input's column
    /// `input_column`) passes it, instead of updating rows.
    pub fn emit_on_window_close(mut self, key: usize, input_column: usize) -> Self {
        self.close = Some(WindowClose::new(key, input_column));
        self
    }

    /// EMIT ON WINDOW CLOSE at the barrier: the row of each window the watermark has passed,
    /// once; those windows are then forgotten (their state deleted at the checkpoint).
    fn close_windows(&mut self) -> Result<Vec<ChangeBatch>> {
        let Some(close) = &self.close else {
            return Ok(Vec::new());
        };
        let Some(watermark) = close.watermark else {
            return Ok(Vec::new());
        };
        let live: Vec<u32> = (0..self.rows.len() as u32)
            .filter(|&g| self.rows[g as usize] > 0)
            .collect();
        if live.is_empty() {
            return Ok(Vec::new());
        }
        let windows = window_close::as_micros(&self.groups.columns(&live)?[close.key])?;
        let closed: Vec<u32> = live
            .iter()
            .enumerate()
            .filter(|&(i, _)| window_close::closed(windows.as_ref(), i, watermark))
            .map(|(_, &g)| g)
            .collect();
        if closed.is_empty() {
            return Ok(Vec::new());
        }
        let (rows, _) = self.output_rows(&closed)?;
        for &g in &closed {
            self.rows[g as usize] = 0;
            self.touch(g);
        }
        Ok(vec![ChangeBatch::inserts(rows)])
    }

    /// Forgets every group.
    fn clear(&mut self) {
        self.groups.clear();
        self.rows.clear();
        self.emitted.clear();
        self.touched.clear();
        self.touched_mark.clear();
        for acc in &mut self.accumulators {
            acc.resize(0);
        }
        if let Some(cache) = &mut self.cache {
            cache.clear();
        }
    }

    fn is_global(&self) -> bool {
        matches!(self.groups, KeyIndex::Global)
    }

    /// A global aggregate has its one row even over no input (count = 0).
    fn ensure_global_group(&mut self) {
        if self.is_global() && self.owns_global && self.rows.is_empty() {
            self.grow();
            self.touch(0);
        }
    }

    /// Gives every per-group vector a slot for each group index of the table.
    fn grow(&mut self) {
        let slots = self.groups.slots();
        if self.rows.len() < slots {
            self.rows.resize(slots, 0);
            self.emitted.resize_with(slots, Vec::new);
            self.touched_mark.resize(slots, false);
            for acc in &mut self.accumulators {
                acc.resize(slots);
            }
        }
        if let Some(cache) = &mut self.cache {
            cache.grow(slots);
        }
    }

    fn touch(&mut self, g: u32) {
        if !self.touched_mark[g as usize] {
            self.touched_mark[g as usize] = true;
            self.touched.push(g);
        }
    }

    /// Evaluates each aggregate's argument (its accumulator casts it to what it adds up).
    fn arguments(&self, batch: &ChangeBatch) -> Result<Vec<ArrayRef>> {
        let n = batch.len();
        self.aggs
            .iter()
            .map(|spec| Ok(spec.arg.evaluate(&batch.rows)?.into_array(n)?))
            .collect()
    }

    fn group_columns(&self, batch: &ChangeBatch) -> Result<Vec<ArrayRef>> {
        let n = batch.len();
        Ok(self
            .group_exprs
            .iter()
            .map(|e| e.evaluate(&batch.rows)?.into_array(n))
            .collect::<datafusion::error::Result<Vec<_>>>()?)
    }

    /// Finds (or creates) each input row's group into `row_groups`.
    fn assign_groups(&mut self, batch: &ChangeBatch) -> Result<()> {
        let columns = self.group_columns(batch)?;
        self.groups
            .assign(&columns, batch.len(), &mut self.row_groups)?;
        self.grow();
        Ok(())
    }

    /// Loads the value entries of min/max multisets (`pairs`, in key order, so each group's
    /// entries are together), after the group states they belong to.
    fn restore_values(&mut self, scope: &StateScope, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let entries = pairs
            .iter()
            .map(|(k, v)| parse_entry(&k[scope.prefix.len()..], v))
            .collect::<Result<Vec<_>>>()?;
        let mut group_keys: Vec<&[u8]> = entries.iter().map(|(e, _)| e.group).collect();
        group_keys.dedup();
        let mut groups = Vec::new();
        self.groups.assign_encoded(&group_keys, &mut groups)?;
        self.grow();
        let mut next = 0;
        for (entry, count) in &entries {
            if next == 0 || group_keys[next - 1] != entry.group {
                next += 1;
            }
            let acc = self
                .accumulators
                .get_mut(entry.aggregate as usize)
                .ok_or_else(|| WeirError::internal("min/max value entry of no aggregate"))?;
            acc.load_value(groups[next - 1] as usize, entry.value, *count)?;
        }
        Ok(())
    }

    /// Loads a group's stored state (`value`) into slot `i`. Returns whether an aggregate of it
    /// keeps its values as entries of their own, to load next.
    fn install(&mut self, i: usize, value: &[u8]) -> Result<bool> {
        let state: GroupState = postcard::from_bytes(value)
            .map_err(|e| WeirError::internal(format!("aggregate state decode: {e}")))?;
        if state.accs.len() != self.accumulators.len() {
            return Err(WeirError::internal(
                "aggregate state has a different number of aggregates",
            ));
        }
        let entries = state.accs.iter().any(|a| matches!(a, Acc::ExtremeEntries));
        self.rows[i] = state.rows;
        for (acc, s) in self.accumulators.iter_mut().zip(state.accs) {
            acc.load(i, s)?;
        }
        Ok(entries)
    }

    /// Reads from the store the groups among `groups` (the batch's) that are not in memory.
    fn read_through(&mut self, groups: &[u32]) -> Result<()> {
        let Some(cache) = &mut self.cache else {
            return Ok(());
        };
        let mut load = std::mem::take(&mut self.to_load);
        cache.admit(groups, &mut load);
        cache.report(self.group_bytes);
        let result = self.load_groups(&load);
        self.to_load = load;
        result
    }

    /// Loads each of `groups` (in memory, empty) from its committed state, if it has one.
    fn load_groups(&mut self, groups: &[u32]) -> Result<()> {
        let Some(cache) = &self.cache else {
            return Ok(());
        };
        if groups.is_empty() {
            return Ok(());
        }
        let reader = &cache.reader;
        let mut found = Vec::new();
        self.groups.for_each_encoded(groups, |g, key| {
            if let Some(state) = reader.get(key)? {
                found.push((g, key.to_vec(), state));
            }
            Ok(())
        })?;
        let loaded: Vec<u32> = found.iter().map(|(g, _, _)| *g).collect();
        for (g, key, state) in found {
            if !self.install(g as usize, &state)? {
                continue;
            }
            let reader = &self.cache.as_ref().expect("reading through").reader;
            let prefix_len = reader.prefix().len();
            let pairs = reader.scan(&group_values_prefix(&[], &key, 0))?;
            for (k, v) in &pairs {
                let (entry, count) = parse_entry(&k[prefix_len..], v)?;
                self.accumulators
                    .get_mut(entry.aggregate as usize)
                    .ok_or_else(|| WeirError::internal("min/max value entry of no aggregate"))?
                    .load_value(g as usize, entry.value, count)?;
            }
        }
        self.recompute_emitted(&loaded)
    }

    /// Sets the emitted row of each of `groups`, just loaded, to the row its state evaluates
    /// to: the row the view holds for it.
    fn recompute_emitted(&mut self, groups: &[u32]) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let (rows, live) = self.output_rows(groups)?;
        let encoded = self.output_codec.encode(rows.columns())?;
        for (i, &g) in live.iter().enumerate() {
            let emitted = &mut self.emitted[g as usize];
            emitted.clear();
            emitted.extend_from_slice(encoded.row(i).as_ref());
        }
        Ok(())
    }

    /// At the end of a checkpoint that wrote `written` groups (`written_bytes` of keys and
    /// rows): when the cache is over budget, forgets the groups written longest ago. Their
    /// state is in the checkpoint's batch, committed before any more input arrives.
    fn evict(&mut self, written: usize, written_bytes: usize) {
        let Some(cache) = &mut self.cache else {
            return;
        };
        if let Some(mean) = written_bytes.checked_div(written) {
            self.group_bytes = KEY_FIXED_BYTES + ACCUMULATOR_BYTES * self.accumulators.len() + mean;
        }
        let evicted = cache.after_checkpoint(self.group_bytes);
        if evicted.is_empty() {
            return;
        }
        for &g in &evicted {
            let i = g as usize;
            self.groups.remove(g);
            self.rows[i] = 0;
            self.emitted[i] = Vec::new();
            for acc in &mut self.accumulators {
                acc.reset(i);
            }
            cache.forget(g);
        }
        cache.report(self.group_bytes);
        tracing::debug!(
            groups = evicted.len(),
            "aggregate state over budget: groups forgotten"
        );
    }

    /// The current output row of each live group among `groups` (key columns, then one
    /// column per aggregate), and which groups those are.
    fn output_rows(&self, groups: &[u32]) -> Result<(RecordBatch, Vec<u32>)> {
        let live: Vec<u32> = groups
            .iter()
            .copied()
            .filter(|&g| self.is_global() || self.rows[g as usize] > 0)
            .collect();
        let mut columns = self.groups.columns(&live)?;
        for acc in &self.accumulators {
            columns.push(acc.evaluate(&live)?);
        }
        Ok((batch_from_columns(&self.output_schema, columns)?, live))
    }
}
impl Operator for Aggregate {
    fn process(&mut self, _input: usize, batch: ChangeBatch) -> Result<Vec<ChangeBatch>> {
        let batch = row_errors::drop_failing(&self.guarded, batch, self.on_row_error.as_deref())?;
        // Rows of windows already closed are late: dropped.
        let batch = match &self.close {
            Some(close) => {
                let keys = &self.group_columns(&batch)?[close.key];
                let open = close.open(keys)?;
                if open.true_count() < batch.len() {
                    batch.filter(&open)?
                } else {
                    batch
                }
            }
            None => batch,
        };
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.assign_groups(&batch)?;
        let groups = std::mem::take(&mut self.row_groups);
        if let Err(e) = self.read_through(&groups) {
            self.row_groups = groups;
            return Err(e);
        }
        for (&g, &w) in groups.iter().zip(&batch.weights) {
            self.rows[g as usize] += w;
            self.touch(g);
        }
        let arguments = self.arguments(&batch)?;
        let result = self
            .accumulators
            .iter_mut()
            .zip(&arguments)
            .try_for_each(|(acc, values)| acc.update(&groups, &batch.weights, values));
        self.row_groups = groups;
        result?;
        Ok(Vec::new())
    }

    fn barrier(&mut self) -> Result<Vec<ChangeBatch>> {
        if self.close.is_some() {
            return self.close_windows();
        }
        if self.touched.is_empty() {
            return Ok(Vec::new());
        }
        let (fresh, live) = self.output_rows(&self.touched)?;
        let fresh_rows = self.output_codec.encode(fresh.columns())?;
        // Compare each touched group's new row with the one it last emitted.
        let mut retracted: Vec<Vec<u8>> = Vec::new();
        let mut inserted: Vec<u32> = Vec::new();
        let mut next_live = 0;
        for &g in &self.touched {
            let new_row = if live.get(next_live) == Some(&g) {
                next_live += 1;
                Some(fresh_rows.row(next_live - 1))
            } else {
                None
            };
            let emitted = &mut self.emitted[g as usize];
            let new_bytes = new_row.as_ref().map(|r| r.as_ref()).unwrap_or(&[]);
            if emitted.as_slice() == new_bytes {
                continue; // no visible change
            }
            if !emitted.is_empty() {
                retracted.push(std::mem::take(emitted));
            }
            if new_row.is_some() {
                inserted.push((next_live - 1) as u32);
                emitted.extend_from_slice(new_bytes);
            }
        }
        if retracted.is_empty() && inserted.is_empty() {
            return Ok(Vec::new());
        }
        let columns = self
            .output_codec
            .decode(retracted.iter().map(|r| r.as_slice()))?;
        let old = batch_from_columns(&self.output_schema, columns)?;
        let new = take_record_batch(&fresh, &UInt32Array::from(inserted))?;
        let mut weights = vec![-1; old.num_rows()];
        weights.resize(old.num_rows() + new.num_rows(), 1);
        let rows = concat_batches(&self.output_schema, [&old, &new])?;
        Ok(vec![ChangeBatch::new(rows, weights)])
    }

    fn checkpoint(&mut self, scope: &StateScope, batch: &mut WriteBatch) -> Result<()> {
        if let Some(close) = &mut self.close
            && close.watermark != close.saved
            && let Some(w) = close.watermark
        {
            batch.put(scope.key(WATERMARK_SUFFIX), w.to_be_bytes().to_vec());
            close.saved = close.watermark;
        }
        let global = self.is_global();
        let touched = std::mem::take(&mut self.touched);
        let mut state_keys = Vec::with_capacity(touched.len());
        self.groups.for_each_encoded(&touched, |_, key| {
            state_keys.push(scope.key(key));
            Ok(())
        })?;
        let (mut written, mut written_bytes) = (0, 0);
        for (g, key) in touched.into_iter().zip(state_keys) {
            let i = g as usize;
            self.touched_mark[i] = false;
            let group = &key[scope.prefix.len()..];
            if self.rows[i] != 0 || global {
                if let Some(cache) = &mut self.cache {
                    cache.stamp(g);
                    written += 1;
                    written_bytes += group.len() + self.emitted[i].len();
                }
                for (a, acc) in self.accumulators.iter_mut().enumerate() {
                    acc.drain_changed(i, &mut |value, count| {
                        let entry = value_key(scope.prefix, group, a as u16, value);
                        if count == 0 {
                            batch.delete(entry);
                        } else {
                            batch.put(entry, count.to_le_bytes().to_vec());
                        }
                    })?;
                }
                let state = GroupStateRef {
                    rows: self.rows[i],
                    accs: self.accumulators.iter().map(|a| a.save(i)).collect(),
                };
                let bytes = postcard::to_stdvec(&state)
                    .map_err(|e| WeirError::internal(format!("aggregate state encode: {e}")))?;
                batch.put(key, bytes);
            } else {
                for (a, acc) in self.accumulators.iter_mut().enumerate() {
                    acc.drop_group(i, &mut |value| {
                        batch.delete(value_key(scope.prefix, group, a as u16, value))
                    });
                }
                batch.delete(key);
                self.groups.remove(g);
                self.emitted[i].clear();
                if let Some(cache) = &mut self.cache {
                    cache.forget(g);
                }
            }
        }
        self.evict(written, written_bytes);
        Ok(())
    }

    fn restore(&mut self, scope: &StateScope, mut pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        self.clear();
        if let Some(cache) = &mut self.cache {
            cache.restored();
        }
        let watermark_key = scope.key(WATERMARK_SUFFIX);
        if let Some(i) = pairs.iter().position(|(k, _)| *k == watermark_key) {
            let (_, value) = pairs.swap_remove(i);
            let bytes = value
                .try_into()
                .map_err(|_| WeirError::internal("corrupt aggregate watermark"))?;
            let w = i64::from_be_bytes(bytes);
            if let Some(close) = &mut self.close {
                close.watermark = Some(w);
                close.saved = Some(w);
            }
        }
        // Group states sort before the value entries of their min/max multisets.
        let values_from = pairs
            .iter()
            .position(|(k, _)| parse_value_key(&k[scope.prefix.len()..]).is_some())
            .unwrap_or(pairs.len());
        let (states, values) = pairs.split_at(values_from);
        let keys: Vec<&[u8]> = states
            .iter()
            .map(|(k, _)| &k[scope.prefix.len()..])
            .collect();
        let mut groups = Vec::new();
        self.groups.assign_encoded(&keys, &mut groups)?;
        self.grow();
        if let Some(cache) = &mut self.cache {
            cache.admit(&groups, &mut Vec::new());
        }
        for ((_, value), &g) in states.iter().zip(&groups) {
            self.install(g as usize, value)?;
        }
        self.restore_values(scope, values)?;
        self.recompute_emitted(&groups)?;
        self.ensure_global_group();
        Ok(())
    }

    fn watermark(&mut self, _input: usize, column: usize, value: i64) -> Result<Vec<(usize, i64)>> {
        if let Some(close) = &mut self.close
            && column == close.input_column
        {
            close.advance(value);
        }
        Ok(Vec::new())
    }

    fn attach(&mut self, state: StateReader) {
        if !self.is_global() && self.close.is_none() {
            self.cache = Some(KeyCache::new(state));
            self.group_bytes = KEY_FIXED_BYTES + ACCUMULATOR_BYTES * self.accumulators.len();
            self.grow();
        }
    }

    fn reads_through(&self) -> bool {
        self.cache.is_some()
    }

    fn partitioned(&self) -> bool {
        true
    }

    fn vnodes(&self, _input: usize, batch: &ChangeBatch, out: &mut Vec<u16>) -> Result<()> {
        match self.group_columns(batch) {
            Ok(columns) => self.groups.vnodes(&columns, batch.len(), out),
            Err(_) if self.on_row_error.is_some() => {
                row_errors::route_passing(&self.group_exprs, batch, out, |kept, out| {
                    let columns = self.group_columns(kept)?;
                    self.groups.vnodes(&columns, kept.len(), out)
                })
            }
            Err(e) => Err(e),
        }
    }

    fn state_vnodes(&self, suffixes: &[&[u8]], out: &mut Vec<u16>) -> Result<()> {
        // A value entry goes where its group goes.
        let groups = suffixes
            .iter()
            .map(|&suffix| match parse_value_key(suffix) {
                Some(entry) => Ok(entry?.group),
                None => Ok(suffix),
            })
            .collect::<Result<Vec<&[u8]>>>()?;
        self.groups.vnodes_encoded(&groups, out)
    }

    fn place(&mut self, worker: usize, workers: usize) {
        self.owns_global = vnode::owner(0, workers) == worker;
        self.clear();
        self.ensure_global_group();
    }

    fn describe(&self) -> String {
        let groups: Vec<String> = self.group_exprs.iter().map(|e| e.to_string()).collect();
        let aggs: Vec<&str> = self.aggs.iter().map(|a| a.name.as_str()).collect();
        let extremes = self
            .aggs
            .iter()
            .any(|a| matches!(a.kind, AggKind::Min | AggKind::Max));
        // Shown where it changes the state kept: min/max keep one value, not a multiset.
        let append_only = if self.append_only_input && extremes {
            ", input=append-only"
        } else {
            ""
        };
        let emit = match &self.close {
            Some(close) => format!(", emit on window close of {}", groups[close.key]),
            None => String::new(),
        };
        format!(
            "HashAggregate: group_by=[{}], aggs=[{}]{append_only}{emit}",
            groups.join(", "),
            aggs.join(", ")
        )
    }
}

/// A min/max value entry: its key after the operator's prefix, and its stored count.
fn parse_entry<'a>(suffix: &'a [u8], value: &[u8]) -> Result<(multiset::ValueEntry<'a>, i64)> {
    let entry = parse_value_key(suffix)
        .ok_or_else(|| WeirError::internal("aggregate state after its value entries"))??;
    let count = value
        .try_into()
        .map(i64::from_le_bytes)
        .map_err(|_| WeirError::internal("corrupt min/max value count"))?;
    Ok((entry, count))
}
