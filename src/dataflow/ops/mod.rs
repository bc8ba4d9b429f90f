//! The operators. Each file holds one; [`Operator`] is the small trait they share: one required
//! method (`process`), and hooks with defaults for barriers, state and EXPLAIN.

mod aggregate;
mod filter;
mod join;
mod key_cache;
mod key_index;
mod project;
pub mod row_errors;
#[cfg(test)]
mod test_support;

pub use aggregate::{AggKind, AggSpec, Aggregate};
pub use filter::Filter;
pub use join::Join;
pub use project::Project;

use crate::dataflow::ChangeBatch;
use crate::dataflow::state_cache::StateReader;
use crate::error::Result;
use crate::state::WriteBatch;

/// The first byte of a state entry that belongs to the operator as a whole (say, its
/// watermark), not to one key: every worker gets it on restore. No row-format key starts
/// with it (their first byte is a null marker, 0 to 2).
pub const OPERATOR_WIDE_STATE: u8 = 0xff;

/// Where an operator keeps its durable state: the store prefix that belongs to it alone.
pub struct StateScope<'a> {
    pub prefix: &'a [u8],
}

impl StateScope<'_> {
    pub fn key(&self, suffix: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + suffix.len());
        k.extend_from_slice(self.prefix);
        k.extend_from_slice(suffix);
        k
    }
}

pub trait Operator: Send {
    /// Consumes changes arriving on input `input` (0, or 0/1 for a join) and returns the
    /// changes they cause downstream (possibly none until the barrier).
    fn process(&mut self, input: usize, batch: ChangeBatch) -> Result<Vec<ChangeBatch>>;

    /// At a barrier: returns output held back until the end of the epoch.
    fn barrier(&mut self) -> Result<Vec<ChangeBatch>> {
        Ok(Vec::new())
    }

    /// Writes the state changed since the last checkpoint into the epoch's batch.
    fn checkpoint(&mut self, _scope: &StateScope, _batch: &mut WriteBatch) -> Result<()> {
        Ok(())
    }

    /// Loads state written by `checkpoint` (start-up). `pairs` are the full keys under the
    /// operator's prefix and their values.
    fn restore(&mut self, _scope: &StateScope, _pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        Ok(())
    }

    /// Gives the operator its way back to its committed state and its share of the memory
    /// budget (`dataflow::state_cache`), before any input. An operator that can then reads
    /// through ([`Operator::reads_through`]); any other ignores it.
    fn attach(&mut self, _state: StateReader) {}

    /// Whether the operator keeps only part of its keyed state in memory and reads the rest
    /// from the store as keys arrive: a restore then hands it only its operator-wide entries.
    fn reads_through(&self) -> bool {
        false
    }

    /// Whether each row must reach the worker that owns its key's vnode (a stateful
    /// operator): the view's exchange then routes its input by [`Operator::vnodes`].
    fn partitioned(&self) -> bool {
        false
    }

    /// Each row's vnode (`dataflow::vnode`) of `batch` arriving on input `input`, into `out`.
    /// Called only when [`Operator::partitioned`].
    fn vnodes(&self, _input: usize, _batch: &ChangeBatch, _out: &mut Vec<u16>) -> Result<()> {
        Ok(())
    }

    /// The vnode of each stored state entry, given by its key without the operator's prefix:
    /// a worker restoring state keeps the entries of its vnodes.
    fn state_vnodes(&self, _suffixes: &[&[u8]], _out: &mut Vec<u16>) -> Result<()> {
        Ok(())
    }

    /// A watermark on column `column` of input `input` (microseconds of a timestamp): no row
    /// below it there will be counted any more. Returns the watermarks that follow on the
    /// operator's output columns (none by default: the watermark stops here).
    fn watermark(
        &mut self,
        _input: usize,
        _column: usize,
        _value: i64,
    ) -> Result<Vec<(usize, i64)>> {
        Ok(Vec::new())
    }

    /// Tells the operator it is the copy on worker `worker` of `workers` (before any input).
    fn place(&mut self, _worker: usize, _workers: usize) {}

    /// One line for EXPLAIN.
    fn describe(&self) -> String;
}
