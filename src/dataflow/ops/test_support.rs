//! What the operators' read-through tests share: a store in a temporary directory, a reader
//! over it, an epoch's checkpoint committed, a restart from the operator-wide entries only,
//! and changes as integer rows.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;

use super::{OPERATOR_WIDE_STATE, Operator, StateScope};
use crate::dataflow::ChangeBatch;
use crate::dataflow::state_cache::{StateCache, StateReader};
use crate::state::{StateStore, StoreKind, WriteBatch};

/// The operator's key prefix in the tests' stores.
pub const PREFIX: &[u8] = b"op/";

/// A fjall store in a directory removed when the returned guard drops.
pub fn temp_store() -> (tempfile::TempDir, Arc<dyn StateStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreKind::Fjall.open(dir.path()).unwrap();
    (dir, store)
}

/// Attaches `op` to `store` under [`PREFIX`] with a share of `cache`.
pub fn attach(op: &mut dyn Operator, store: &Arc<dyn StateStore>, cache: &Arc<StateCache>) {
    op.attach(StateReader::new(
        store.clone(),
        PREFIX.to_vec(),
        cache.clone(),
    ));
}

/// Checkpoints `op` and commits its writes.
pub fn commit_checkpoint(op: &mut dyn Operator, store: &dyn StateStore) {
    let mut batch = WriteBatch::default();
    op.checkpoint(&StateScope { prefix: PREFIX }, &mut batch)
        .unwrap();
    store.commit(batch).unwrap();
}

/// Restores `op` as a restart does for an operator that reads through: from its
/// operator-wide entries only.
pub fn restore_wide(op: &mut dyn Operator, store: &dyn StateStore) {
    let mut wide = PREFIX.to_vec();
    wide.push(OPERATOR_WIDE_STATE);
    let pairs = store.scan_prefix(&wide).unwrap();
    op.restore(&StateScope { prefix: PREFIX }, pairs).unwrap();
}

/// Each change of `out` (all columns Int64) as (row, weight).
pub fn int_rows(out: &[ChangeBatch]) -> Vec<(Vec<i64>, i64)> {
    let mut rows = Vec::new();
    for change in out {
        for (i, &w) in change.weights.iter().enumerate() {
            let row = change
                .rows
                .columns()
                .iter()
                .map(|c| c.as_primitive::<Int64Type>().value(i))
                .collect();
            rows.push((row, w));
        }
    }
    rows
}
