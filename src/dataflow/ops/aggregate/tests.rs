//! The aggregate reading through the store, or restored from it, gives the same changes as one
//! holding every group.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::physical_expr::expressions::Column;

use super::{AggKind, AggSpec, Aggregate};
use crate::dataflow::ChangeBatch;
use crate::dataflow::ops::test_support::{
    PREFIX, attach, commit_checkpoint, int_rows, restore_wide, temp_store,
};
use crate::dataflow::ops::{Operator, StateScope};
use crate::dataflow::state_cache::StateCache;
use crate::state::StateStore;

/// `SELECT k, count(*), sum(v), min(v), max(v) FROM (k, v) GROUP BY k`, min/max over a
/// retracting input (multisets).
fn aggregate() -> Aggregate {
    let column = |name: &str, i: usize| Arc::new(Column::new(name, i)) as _;
    let spec = |kind, name: &str| AggSpec {
        kind,
        arg: column("v", 1),
        output_type: DataType::Int64,
        name: name.into(),
    };
    let fields = ["k", "count", "sum", "min", "max"]
        .map(|n| Field::new(n, DataType::Int64, true))
        .to_vec();
    Aggregate::new(
        vec![column("k", 0)],
        vec![DataType::Int64],
        vec![
            spec(AggKind::Count, "count(v)"),
            spec(AggKind::Sum, "sum(v)"),
            spec(AggKind::Min, "min(v)"),
            spec(AggKind::Max, "max(v)"),
        ],
        vec![DataType::Int64; 4],
        Arc::new(Schema::new(fields)),
        false,
    )
    .unwrap()
}

fn changes(rows: &[(i64, i64, i64)]) -> ChangeBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]));
    let k: Int64Array = rows.iter().map(|r| Some(r.0)).collect();
    let v: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
    let batch = RecordBatch::try_new(schema, vec![Arc::new(k), Arc::new(v)]).unwrap();
    ChangeBatch::new(batch, rows.iter().map(|r| r.2).collect())
}

/// The epoch's output as sorted (row, weight) pairs.
fn epoch(op: &mut Aggregate, store: &dyn StateStore, input: &ChangeBatch) -> Vec<Vec<i64>> {
    let mut out = op.process(0, input.clone()).unwrap();
    out.extend(op.barrier().unwrap());
    commit_checkpoint(op, store);
    let mut rows: Vec<Vec<i64>> = int_rows(&out)
        .into_iter()
        .map(|(mut row, w)| {
            row.push(w);
            row
        })
        .collect();
    rows.sort();
    rows
}

/// Epoch `e`'s input: inserts over 40 keys, deletes of earlier inserts, and a hot key 7 that
/// gathers more distinct values than a multiset keeps inline (its values go to entries).
fn input(e: i64) -> ChangeBatch {
    let mut rows = Vec::new();
    for i in 0..60 {
        rows.push(((e * 13 + i) % 40, e * 100 + i, 1));
    }
    if e > 0 {
        for i in 0..20 {
            rows.push((((e - 1) * 13 + i) % 40, (e - 1) * 100 + i, -1));
        }
    }
    for i in 0..100 {
        rows.push((7, 10_000 + e * 100 + i, 1));
    }
    changes(&rows)
}

#[test]
fn reading_through_gives_the_changes_of_holding_everything() {
    let (_dir, store) = temp_store();
    let (_reference_dir, reference_store) = temp_store();
    // No memory at all: every group is forgotten at each checkpoint and read back.
    let cache = StateCache::with_mb(0);
    let mut reference = aggregate();
    let mut op = aggregate();
    attach(&mut op, &store, &cache);
    assert!(op.reads_through());
    for e in 0..8 {
        let batch = input(e);
        let want = epoch(&mut reference, reference_store.as_ref(), &batch);
        assert_eq!(epoch(&mut op, store.as_ref(), &batch), want, "epoch {e}");
        assert_eq!(
            op.rows.iter().filter(|&&r| r != 0).count(),
            0,
            "all evicted"
        );
        if e == 4 {
            // A restart: a new copy restored from its operator-wide entries only.
            op = aggregate();
            attach(&mut op, &store, &cache);
            restore_wide(&mut op, store.as_ref());
        }
    }
    assert!(cache.used_bytes() == 0, "an empty copy reports nothing");
}

#[test]
fn a_budget_that_fits_everything_reads_nothing_back() {
    let (_dir, store) = temp_store();
    let cache = StateCache::with_mb(64);
    let mut op = aggregate();
    attach(&mut op, &store, &cache);
    for e in 0..4 {
        epoch(&mut op, store.as_ref(), &input(e));
    }
    let live = op.rows.iter().filter(|&&r| r != 0).count();
    assert_eq!(live, 40, "every group stays in memory");
    assert!(cache.used_bytes() > 0);
    drop(op);
    assert_eq!(
        cache.used_bytes(),
        0,
        "a dropped operator gives its share back"
    );
}

#[test]
fn a_full_restore_retracts_the_rows_emitted_before_it() {
    let (_dir, store) = temp_store();
    let (_reference_dir, reference_store) = temp_store();
    let mut reference = aggregate();
    let mut op = aggregate();
    for e in 0..6 {
        let batch = input(e);
        let want = epoch(&mut reference, reference_store.as_ref(), &batch);
        assert_eq!(epoch(&mut op, store.as_ref(), &batch), want, "epoch {e}");
        if e == 2 {
            // A restart without the cache: every stored group is loaded, and the rows it
            // emitted are computed from its state (they are not stored).
            op = aggregate();
            let pairs = store.scan_prefix(PREFIX).unwrap();
            op.restore(&StateScope { prefix: PREFIX }, pairs).unwrap();
        }
    }
}
