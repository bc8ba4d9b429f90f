//! The Nexmark benchmark: each query Weir maintains, over N events, in two modes.
//!
//! - **engine**: the events are generated into Arrow batches before the clock starts; the
//!   clock runs while the view's dataflow consumes them, one epoch per `--epoch-events` events:
//!   operators, the barrier, the view's rows and operator state written into the store and
//!   committed (`dataflow::actor::close_epoch`, what every epoch of a view does). No decoding,
//!   no log. In this process.
//! - **e2e**: a release `weir` server with its Kafka listener; the view is created over empty
//!   sources, then the events (JSON, one file per kind, from `weir nexmark`'s writer) are
//!   produced with kcat (librdkafka, acks=all) and the clock stops when the FLUSH after the last
//!   acknowledged record returns, i.e. when the view has caught up with everything produced.
//!
//! Events are counted as Nexmark counts them: all N events of the sequence (1 person, 3
//! auctions and 46 bids in every 50), whichever kinds the query reads. "per core" divides by
//! the CPU time (user + system) the process doing the work spent in the timed interval: this
//! process in engine mode, the server in e2e mode (kcat's own CPU is not counted). Peak RSS is
//! the high-water mark over the timed interval (engine mode: including the input batches, whose
//! size is printed beside it).
//!
//! The queries are the `sql-tests/nexmark/qN.slt` files (the statements between the "The
//! query" and "End of the query" comments), so the benchmark runs what the tests check.
//!
//! Run: `cargo bench --bench nexmark -- [q0 q5u ...] [--events N] [--mode engine|e2e|both]
//! [--epoch-events N] [--store sled|fjall] [--workers N]` (default: every query, 10,000,000
//! events, both modes, the default store).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::WeirServer;
use weir::dataflow::ChangeBatch;
use weir::dataflow::actor::close_epoch;
use weir::dataflow::view_rows::ViewRows;
use weir::db::{Database, DbConfig, Output};
use weir::formats::Format;
use weir::sources::nexmark::{BATCH_EVENTS_MAX, Generator, Kind, Sequence, write_files};
use weir::sql::parse::parse;
use weir::state::{StoreKind, WriteBatch};

const EVENTS_DEFAULT: u64 = 10_000_000;
/// Events per epoch in engine mode: about what one barrier interval holds at the target rates.
const EPOCH_EVENTS_DEFAULT: u64 = 100_000;

/// The Nexmark queries Weir cannot maintain yet, and what each needs.
const NOT_YET: &[(&str, &str)] = &[
    ("q5", "HOP windows (event-time issue)"),
    ("q6", "window function over a ROWS frame (SQL issue)"),
    (
        "q8",
        "a semi join, which the optimizer makes of its join (SQL issue)",
    ),
    ("q9", "row_number() Top-N (SQL issue)"),
    ("q11", "SESSION windows (event-time issue)"),
    ("q12", "processing-time windows (event-time issue)"),
    ("q15", "aggregate FILTER, count(DISTINCT) (SQL issue)"),
    ("q16", "several count(DISTINCT) (SQL issue)"),
    ("q17", "aggregate FILTER (SQL issue)"),
    ("q18", "row_number() deduplication (SQL issue)"),
    ("q19", "row_number() Top-N (SQL issue)"),
];

struct Args {
    queries: Vec<String>,
    events: u64,
    engine: bool,
    e2e: bool,
    epoch_events: u64,
    store: StoreKind,
    /// Workers per view (engine and e2e).
    workers: usize,
}

fn args() -> Args {
    let mut args = Args {
        queries: Vec::new(),
        events: EVENTS_DEFAULT,
        engine: true,
        e2e: true,
        epoch_events: EPOCH_EVENTS_DEFAULT,
        store: StoreKind::DEFAULT,
        workers: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match arg.as_str() {
            "--bench" => {}
            "--events" => {
                args.events = value("--events")
                    .replace('_', "")
                    .parse()
                    .expect("--events N")
            }
            "--epoch-events" => {
                args.epoch_events = value("--epoch-events").parse().expect("--epoch-events N")
            }
            "--mode" => match value("--mode").as_str() {
                "engine" => args.e2e = false,
                "e2e" => args.engine = false,
                "both" => {}
                other => panic!("--mode engine|e2e|both, not {other}"),
            },
            "--store" => {
                let name = value("--store");
                args.store = StoreKind::parse(&name).expect("--store sled|fjall");
                // The e2e server takes the same backend.
                unsafe { std::env::set_var("WEIR_TEST_STORE", &name) };
            }
            "--workers" => args.workers = value("--workers").parse().expect("--workers N"),
            q if !q.starts_with('-') => args.queries.push(q.to_string()),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// A query as the benchmark runs it: set-up statements (a side table), then the view.
struct Query {
    name: String,
    setup: Vec<String>,
    view_sql: String,
    /// The view's SELECT.
    select: String,
}

/// Reads the queries from `sql-tests/nexmark/qN.slt`.
fn queries() -> Vec<Query> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests/nexmark");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("sql-tests/nexmark") {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if !name.starts_with('q') {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (_, rest) = text.split_once("# The query").expect("query start marker");
        let (body, _) = rest
            .split_once("# End of the query")
            .expect("query end marker");
        let mut statements: Vec<String> = body
            .split("statement ok\n")
            .skip(1)
            .map(|s| s.trim().to_string())
            .collect();
        let view_sql = statements.pop().expect("a view");
        let select = view_sql
            .split_once(" AS ")
            .map(|(_, q)| q.to_string())
            .expect("CREATE MATERIALIZED VIEW name AS query");
        out.push(Query {
            name,
            setup: statements,
            view_sql,
            select,
        });
    }
    out.sort_by_key(|q| {
        q.name[1..]
            .trim_end_matches('u')
            .parse::<u32>()
            .unwrap_or(99)
    });
    out
}

fn source_sql(kind: Kind, from_topic: bool) -> String {
    let cols: Vec<String> = kind
        .columns()
        .iter()
        .map(|(n, t)| format!("{n} {t}"))
        .collect();
    let topic = if from_topic {
        format!(" FROM TOPIC {}", kind.name())
    } else {
        String::new()
    };
    format!(
        "CREATE SOURCE {} ({}){topic} FORMAT JSON",
        kind.name(),
        cols.join(", ")
    )
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat (utime, stime), counted from the state field (3).
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf only reads a constant of the system.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Peak resident set (VmHWM) of a process, in MB.
fn peak_rss_mb(pid: &str) -> f64 {
    common::status_kib(pid, "VmHWM") as f64 / 1024.0
}

struct Measured {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_mb: f64,
    note: String,
}

/// The events of `kinds` as batches, cut into epochs of `epoch_events` events of the sequence.
fn epochs_of_events(
    inputs: &[(usize, Kind)],
    events: u64,
    epoch_events: u64,
) -> (Vec<Vec<(usize, ChangeBatch)>>, usize) {
    let sequence = Sequence {
        events: Some(events),
        ..Sequence::default()
    };
    let mut generators: Vec<(usize, Kind, Generator)> = inputs
        .iter()
        .map(|&(i, k)| (i, k, Generator::new(k, &sequence, 0, 1)))
        .collect();
    let (mut epochs, mut bytes) = (Vec::new(), 0);
    let mut start = 0;
    while start < events {
        let end = (start + epoch_events).min(events);
        let mut epoch = Vec::new();
        for (input, kind, generator) in &mut generators {
            let mut want = Sequence::count_of(*kind, end) - Sequence::count_of(*kind, start);
            while want > 0 {
                let Some((batch, _)) = generator
                    .next_batch((want as usize).min(BATCH_EVENTS_MAX))
                    .unwrap()
                else {
                    break;
                };
                want -= batch.num_rows() as u64;
                bytes += batch.get_array_memory_size();
                epoch.push((*input, ChangeBatch::inserts(batch)));
            }
        }
        epochs.push(epoch);
        start = end;
    }
    (epochs, bytes)
}

async fn engine(
    query: &Query,
    events: u64,
    epoch_events: u64,
    store_kind: StoreKind,
    workers: usize,
) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(DbConfig {
        data_dir: dir.path().join("data"),
        barrier_interval_ms: 3_600_000,
        workers,
        state_cache_mb: weir::dataflow::state_cache::STATE_CACHE_MB_DEFAULT,
        store: Some(store_kind),
        init_password: None,
    })
    .await
    .unwrap();
    let run = async |sql: &str| {
        let mut out = Vec::new();
        for stmt in parse(sql).unwrap() {
            out.push(
                db.execute(stmt, &[])
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}")),
            );
        }
        out
    };
    for kind in Kind::ALL {
        run(&source_sql(kind, false)).await;
    }
    for stmt in &query.setup {
        run(stmt).await;
    }
    let plan = db.plan_dataflow(&query.select).await.unwrap();
    let mut dataflow = plan.dataflow;
    // Inputs that are not event streams (q13's side table) are pushed whole in the first epoch.
    let mut streams = Vec::new();
    let mut tables = Vec::new();
    for (i, name) in plan.inputs.iter().enumerate() {
        match Kind::parse(name) {
            Ok(kind) => streams.push((i, kind)),
            Err(_) => {
                for output in run(&format!("SELECT * FROM {name}")).await {
                    if let Output::Rows { batches, .. } = output {
                        tables.extend(batches.into_iter().map(|b| (i, ChangeBatch::inserts(b))));
                    }
                }
            }
        }
    }
    let (mut epochs, input_bytes) = epochs_of_events(&streams, events, epoch_events);
    if let Some(first) = epochs.first_mut() {
        first.splice(0..0, tables);
    }
    let store = store_kind.open(&dir.path().join("bench-store")).unwrap();
    let rows = ViewRows::new(1, plan.schema.clone(), plan.key.clone(), plan.append_only).unwrap();
    let me = std::process::id().to_string();
    common::reset_peak_rss("self");
    let cpu = cpu_seconds(&me);
    let started = Instant::now();
    let mut view_changes = 0;
    for epoch in epochs {
        let mut outputs = Vec::new();
        for (input, batch) in &epoch {
            outputs.extend(dataflow.push(*input, batch).unwrap());
        }
        drop(epoch);
        let mut batch = WriteBatch::default();
        let delta =
            close_epoch(1, &mut dataflow, &rows, outputs, store.as_ref(), &mut batch).unwrap();
        view_changes += delta.len();
        store.commit(batch).unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    Measured {
        seconds,
        cpu_seconds: cpu_seconds(&me) - cpu,
        peak_rss_mb: peak_rss_mb(&me),
        note: format!(
            "input {:.0} MB; {view_changes} view changes",
            input_bytes as f64 / 1e6
        ),
    }
}

/// Writes the event files once per run (before any clock starts).
fn event_files(events: u64, cache: &mut HashMap<u64, (tempfile::TempDir, PathBuf)>) -> PathBuf {
    cache
        .entry(events)
        .or_insert_with(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("events");
            let sequence = Sequence {
                events: Some(events),
                ..Sequence::default()
            };
            write_files(&path, &sequence, Format::Json).unwrap();
            (dir, path)
        })
        .1
        .clone()
}

async fn end_to_end(query: &Query, files: &Path) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_kafka(&dir.path().join("data"), 1000).await;
    let sql = server.connect().await;
    for kind in Kind::ALL {
        sql.batch_execute(&format!(
            "CREATE TOPIC {} WITH (partitions = 1); {}",
            kind.name(),
            source_sql(kind, true)
        ))
        .await
        .unwrap();
    }
    for stmt in &query.setup {
        sql.batch_execute(stmt).await.unwrap();
    }
    sql.batch_execute(&query.view_sql).await.unwrap();
    // The event streams the view reads, from its plan: only those are produced.
    let explain = common::rows(&sql, &format!("EXPLAIN {}", query.view_sql))
        .await
        .unwrap();
    let read: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| {
            explain.iter().any(|line| {
                line[0]
                    .trim_start_matches(['-', '>', ' '])
                    .starts_with(&format!("Input: {}", k.name()))
            })
        })
        .collect();
    let pid = server.pid().to_string();
    let cpu = cpu_seconds(&pid);
    let started = Instant::now();
    let producers: Vec<_> = read
        .iter()
        .map(|kind| {
            server
                .kcat_producer(kind.name(), &files.join(format!("{}.json", kind.name())))
                .spawn()
                .expect("run kcat (./test.sh installs it)")
        })
        .collect();
    for mut p in producers {
        assert!(p.wait().unwrap().success(), "kcat failed");
    }
    sql.batch_execute("FLUSH").await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let cpu_used = cpu_seconds(&pid) - cpu;
    let kinds: Vec<&str> = read.iter().map(|k| k.name()).collect();
    Measured {
        seconds,
        cpu_seconds: cpu_used,
        peak_rss_mb: peak_rss_mb(&pid),
        note: format!("produced {}", kinds.join("+")),
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    // The e2e server runs the same number of workers per view.
    unsafe { std::env::set_var("WEIR_TEST_WORKERS", args.workers.to_string()) };
    let all = queries();
    let chosen: Vec<&Query> = all
        .iter()
        .filter(|q| args.queries.is_empty() || args.queries.contains(&q.name))
        .collect();
    println!(
        "Nexmark, {} events, epoch of {} events in engine mode, {} store, {} workers per view; {} cores on this machine",
        args.events,
        args.epoch_events,
        args.store.name(),
        args.workers,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!(
        "| query | mode | events | seconds | events/s | events/s per core | peak RSS MB | note |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut files = HashMap::new();
    let report = |q: &Query, mode: &str, m: Measured| {
        let events = args.events as f64;
        println!(
            "| {} | {mode} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {} |",
            q.name,
            args.events,
            m.seconds,
            events / m.seconds,
            events / m.cpu_seconds.max(0.01),
            m.peak_rss_mb,
            m.note
        );
    };
    for q in &chosen {
        if args.engine {
            report(
                q,
                "engine",
                engine(q, args.events, args.epoch_events, args.store, args.workers).await,
            );
        }
        if args.e2e {
            let path = event_files(args.events, &mut files);
            report(q, "e2e", end_to_end(q, &path).await);
        }
    }
    for (name, reason) in NOT_YET {
        if args.queries.is_empty() || args.queries.iter().any(|q| q == name) {
            println!("| {name} | not yet | | | | | | needs {reason} |");
        }
    }
}
