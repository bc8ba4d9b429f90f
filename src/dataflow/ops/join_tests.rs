//! The join reading through the store gives the same changes as one holding every key.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::physical_expr::expressions::Column;

use super::Join;
use crate::dataflow::ChangeBatch;
use crate::dataflow::ops::Operator;
use crate::dataflow::ops::test_support::{
    PREFIX, attach, commit_checkpoint, int_rows, restore_wide, temp_store,
};
use crate::dataflow::state_cache::StateCache;
use crate::state::StateStore;
/// Join keys of the test's rows.
const KEYS: i64 = 20;

fn side_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

/// `(k, v) JOIN (k, v) ON k = k`.
fn join() -> Join {
    let key = || vec![Arc::new(Column::new("k", 0)) as _];
    let fields = ["lk", "lv", "rk", "rv"]
        .map(|n| Field::new(n, DataType::Int64, true))
        .to_vec();
    Join::new(
        key(),
        key(),
        vec![DataType::Int64],
        &side_schema(),
        &side_schema(),
        None,
        Arc::new(Schema::new(fields)),
    )
    .unwrap()
}

fn changes(rows: &[(i64, i64, i64)]) -> ChangeBatch {
    let k: Int64Array = rows.iter().map(|r| Some(r.0)).collect();
    let v: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
    let batch = RecordBatch::try_new(side_schema(), vec![Arc::new(k), Arc::new(v)]).unwrap();
    ChangeBatch::new(batch, rows.iter().map(|r| r.2).collect())
}

/// Epoch `e`'s input on `side`: inserts over some of the keys, and deletes of the side's
/// inserts of the epoch before.
fn input(side: i64, e: i64) -> ChangeBatch {
    let rows_of = |e: i64, w: i64| {
        (0..12).map(move |i| {
            (
                (e * 7 + i * (side + 2)) % KEYS,
                side * 1000 + e * 100 + i,
                w,
            )
        })
    };
    let mut rows: Vec<_> = rows_of(e, 1).collect();
    if e > 0 {
        rows.extend(rows_of(e - 1, -1).take(5));
    }
    changes(&rows)
}

/// The epoch's output, consolidated: joined row → summed weight (zeros dropped).
fn epoch(op: &mut Join, store: &dyn StateStore, e: i64) -> BTreeMap<Vec<i64>, i64> {
    let mut out = op.process(0, input(0, e)).unwrap();
    out.extend(op.process(1, input(1, e)).unwrap());
    commit_checkpoint(op, store);
    let mut rows = BTreeMap::new();
    for (row, w) in int_rows(&out) {
        *rows.entry(row).or_insert(0) += w;
    }
    rows.retain(|_, w| *w != 0);
    rows
}

fn resident_rows(op: &Join) -> usize {
    op.sides
        .iter()
        .flat_map(|s| &s.buckets)
        .map(|b| b.len())
        .sum()
}

#[test]
fn reading_through_gives_the_changes_of_holding_everything() {
    let (_dir, store) = temp_store();
    let (_reference_dir, reference_store) = temp_store();
    // No memory at all: every key is forgotten at each checkpoint and read back.
    let cache = StateCache::with_mb(0);
    let mut reference = join();
    let mut op = join();
    attach(&mut op, &store, &cache);
    assert!(op.reads_through());
    let mut joined = 0;
    for e in 0..8 {
        let want = epoch(&mut reference, reference_store.as_ref(), e);
        joined += want.len();
        assert_eq!(epoch(&mut op, store.as_ref(), e), want, "epoch {e}");
        assert_eq!(resident_rows(&op), 0, "all evicted");
        if e == 4 {
            // A restart: a new copy restored from its operator-wide entries only.
            op = join();
            attach(&mut op, &store, &cache);
            restore_wide(&mut op, store.as_ref());
        }
    }
    assert!(joined > 100, "the epochs join rows ({joined})");
    // What the store holds is what the reference holds.
    assert_eq!(
        store.scan_prefix(PREFIX).unwrap(),
        reference_store.scan_prefix(PREFIX).unwrap()
    );
    assert_eq!(cache.used_bytes(), 0, "an empty copy reports nothing");
}

#[test]
fn a_budget_that_fits_everything_reads_nothing_back() {
    let (_dir, store) = temp_store();
    let cache = StateCache::with_mb(64);
    let mut op = join();
    attach(&mut op, &store, &cache);
    for e in 0..4 {
        epoch(&mut op, store.as_ref(), e);
    }
    let stored = store.scan_prefix(PREFIX).unwrap().len();
    assert_eq!(resident_rows(&op), stored, "every row stays in memory");
    assert!(cache.used_bytes() > 0);
    drop(op);
    assert_eq!(
        cache.used_bytes(),
        0,
        "a dropped operator gives its share back"
    );
}
