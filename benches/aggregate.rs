//! The grouped-aggregate benchmark of the engine issue: a view
//! `SELECT k, count(*), sum(v), min(v), max(v) ... GROUP BY k` over N rows with K keys, engine
//! only, in this process: rows are generated into Arrow batches before the clock starts, then
//! pushed through the view's dataflow, one epoch per `--epoch-rows` rows, each epoch closed as
//! every view's epoch is (`dataflow::actor::close_epoch`: barrier, view rows and operator state
//! written to the store, one commit).
//!
//! Two inputs:
//! - **append-only**: a source (inserts only; min/max keep one value per group);
//! - **retracting**: a table's stream (min/max keep a multiset); from the third epoch on each
//!   epoch also retracts the rows inserted two epochs before, so it carries twice the changes.
//!
//! Rows/s counts changes (insertions and retractions) pushed; "per core" divides by this
//! process's CPU time in the timed interval. After the timed load, one more epoch of a single
//! new row (into group 0, a value no row had) is timed on its own, with the store writes its
//! commit made: what a small change costs once the state is large (a group's min/max state
//! should not be rewritten whole for one row).
//!
//! Run: `cargo bench --bench aggregate -- [--rows N] [--keys K] [--epoch-rows E]
//! [--workers W] [append-only|retracting]` (default: 10,000,000 rows, 100,000 keys, 1,000,000
//! rows per epoch, one worker, both inputs).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::Lcg;
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use weir::dataflow::ChangeBatch;
use weir::dataflow::actor::close_epoch;
use weir::dataflow::graph::Dataflow;
use weir::dataflow::view_rows::ViewRows;
use weir::db::{Database, DbConfig};
use weir::sql::parse::parse;
use weir::state::{StateStore, StoreKind, WriteBatch};

const ROWS_DEFAULT: usize = 10_000_000;
const KEYS_DEFAULT: u64 = 100_000;
/// Rows per epoch: about what one default barrier interval (1 s) holds at the target rate.
const EPOCH_ROWS_DEFAULT: usize = 1_000_000;
/// Rows per batch pushed, the size a reader hands the views.
const BATCH_ROWS: usize = 8_192;
/// Values of `v` are drawn from `0..VALUE_RANGE`.
const VALUE_RANGE: u64 = 1_000_000;
const AGGREGATES: &str = "k, count(*) AS n, sum(v) AS total, min(v) AS lo, max(v) AS hi";

struct Args {
    rows: usize,
    keys: u64,
    epoch_rows: usize,
    /// Workers the view's dataflow runs on.
    workers: usize,
    inputs: Vec<String>,
}

fn args() -> Args {
    let mut args = Args {
        rows: ROWS_DEFAULT,
        keys: KEYS_DEFAULT,
        epoch_rows: EPOCH_ROWS_DEFAULT,
        workers: 1,
        inputs: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{name} N"))
        };
        match arg.as_str() {
            "--bench" => {}
            "--rows" => args.rows = number("--rows") as usize,
            "--keys" => args.keys = number("--keys"),
            "--epoch-rows" => args.epoch_rows = number("--epoch-rows") as usize,
            "--workers" => args.workers = number("--workers") as usize,
            "append-only" | "retracting" => args.inputs.push(arg),
            other => panic!("unknown argument {other}"),
        }
    }
    if args.inputs.is_empty() {
        args.inputs = vec!["append-only".into(), "retracting".into()];
    }
    args
}

/// The input rows `(k, v)` as batches of `BATCH_ROWS`, grouped into epochs.
fn epochs(args: &Args) -> Vec<Vec<RecordBatch>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]));
    let mut rng = Lcg(7);
    let mut out = Vec::new();
    let mut left = args.rows;
    while left > 0 {
        let mut epoch = Vec::new();
        let mut in_epoch = args.epoch_rows.min(left);
        left -= in_epoch;
        while in_epoch > 0 {
            let n = in_epoch.min(BATCH_ROWS);
            in_epoch -= n;
            let k: Int64Array = (0..n).map(|_| (rng.next() % args.keys) as i64).collect();
            let v: Int64Array = (0..n).map(|_| (rng.next() % VALUE_RANGE) as i64).collect();
            epoch.push(
                RecordBatch::try_new(schema.clone(), vec![Arc::new(k), Arc::new(v)]).unwrap(),
            );
        }
        out.push(epoch);
    }
    out
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

async fn run(input: &str, epochs: &[Vec<RecordBatch>], workers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(DbConfig {
        data_dir: dir.path().join("data"),
        barrier_interval_ms: 3_600_000,
        workers,
        state_cache_mb: weir::dataflow::state_cache::STATE_CACHE_MB_DEFAULT,
        store: Some(StoreKind::DEFAULT),
        init_password: None,
    })
    .await
    .unwrap();
    let create = match input {
        "append-only" => "CREATE SOURCE t (k BIGINT, v BIGINT) FORMAT JSON",
        _ => "CREATE TABLE t (id BIGINT PRIMARY KEY, k BIGINT, v BIGINT)",
    };
    for stmt in parse(create).unwrap() {
        db.execute(stmt, &[]).await.unwrap();
    }
    let plan = db
        .plan_dataflow(&format!("SELECT {AGGREGATES} FROM t GROUP BY k"))
        .await
        .unwrap();
    let mut dataflow = plan.dataflow;
    let store = StoreKind::DEFAULT
        .open(&dir.path().join("bench-store"))
        .unwrap();
    let rows = ViewRows::new(1, plan.schema.clone(), plan.key.clone(), plan.append_only).unwrap();
    // A table's stream has an id column first; the view reads k and v.
    let shape = |batch: &RecordBatch| -> RecordBatch {
        if input == "append-only" {
            return batch.clone();
        }
        let ids: Int64Array = (0..batch.num_rows() as i64).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let mut columns = vec![Arc::new(ids) as _];
        columns.extend(batch.columns().iter().cloned());
        RecordBatch::try_new(schema, columns).unwrap()
    };
    let epochs: Vec<Vec<ChangeBatch>> = epochs
        .iter()
        .enumerate()
        .map(|(i, epoch)| {
            let mut changes: Vec<ChangeBatch> = epoch
                .iter()
                .map(|b| ChangeBatch::inserts(shape(b)))
                .collect();
            if input == "retracting" && i >= 2 {
                for b in &epochs[i - 2] {
                    let retract = shape(b);
                    let n = retract.num_rows();
                    changes.push(ChangeBatch::new(retract, vec![-1; n]));
                }
            }
            changes
        })
        .collect();
    let changes: usize = epochs.iter().flatten().map(|c| c.len()).sum();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let mut view_changes = 0;
    for epoch in &epochs {
        let mut outputs = Vec::new();
        for batch in epoch {
            outputs.extend(dataflow.push(0, batch).unwrap());
        }
        let mut batch = WriteBatch::default();
        let delta =
            close_epoch(1, &mut dataflow, &rows, outputs, store.as_ref(), &mut batch).unwrap();
        view_changes += delta.len();
        store.commit(batch).unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let (one_row_ms, one_row_writes) = one_row_epoch(input, &mut dataflow, &rows, store.as_ref());
    println!(
        "| {input} | {changes} | {} | {:.2} | {:.0} | {:.0} | {view_changes} | {one_row_ms:.1} ms, {one_row_writes} writes |",
        epochs.len(),
        seconds,
        changes as f64 / seconds,
        changes as f64 / cpu,
    );
}

/// Times one epoch of a single new row (group 0, a value above every generated one) after the
/// load: milliseconds from the push to the end of its commit, and the store writes it made.
fn one_row_epoch(
    input: &str,
    dataflow: &mut Dataflow,
    rows: &ViewRows,
    store: &dyn StateStore,
) -> (f64, usize) {
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut fields = Vec::new();
    if input != "append-only" {
        fields.push(Field::new("id", DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from(vec![-1])));
    }
    fields.push(Field::new("k", DataType::Int64, true));
    fields.push(Field::new("v", DataType::Int64, true));
    columns.push(Arc::new(Int64Array::from(vec![0])));
    columns.push(Arc::new(Int64Array::from(vec![VALUE_RANGE as i64])));
    let row = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let started = Instant::now();
    let outputs = dataflow.push(0, &ChangeBatch::inserts(row)).unwrap();
    let mut batch = WriteBatch::default();
    close_epoch(1, dataflow, rows, outputs, store, &mut batch).unwrap();
    let writes = batch.len();
    store.commit(batch).unwrap();
    (started.elapsed().as_secs_f64() * 1e3, writes)
}

#[tokio::main]
async fn main() {
    let args = args();
    println!(
        "`SELECT {AGGREGATES} FROM t GROUP BY k`: {} rows, {} keys, {} rows per epoch, {} workers",
        args.rows, args.keys, args.epoch_rows, args.workers
    );
    println!();
    println!(
        "| input | changes | epochs | seconds | changes/s | per core | view changes | next epoch of one row |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let epochs = epochs(&args);
    for input in &args.inputs {
        run(input, &epochs, args.workers).await;
    }
}
