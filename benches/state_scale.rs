//! The state-larger-than-memory benchmark of the state issue: how a release `weir`'s memory
//! and speed follow the number of keys of a grouped view, under a `--state-cache-mb` budget.
//!
//! For each key count K of `--keys` (a fresh server and data directory each): a source
//! `events (k, v)` gets K × `--rows-per-key` rows over COPY (every key the same number of
//! times, in a scattered order), then `SELECT k, count(*), sum(v), min(v), max(v) ... GROUP BY
//! k` is built over them and timed. The server's peak RSS is reset just before the CREATE
//! (`/proc/<pid>/clear_refs`) and read after it (`VmHWM`), so the figure is the build's, not
//! the ingest's. Then `--update-rows` rows over random keys are copied in and FLUSHed
//! (the view keeps updating: most of its groups must come back from the store), and the
//! view is checked: `sum(n)` equals every row ingested and 16 probed keys have the right count
//! and sum.
//!
//! Run: `cargo bench --bench state_scale -- [--keys 1000000,10000000] [--rows-per-key R]
//! [--update-rows U] [--state-cache-mb M]` (default: 1,000,000 keys, 2 rows per key, 100,000
//! update rows, the server's default budget). `WEIR_TEST_BIN=<binary>` measures another build.
//! Prints a Markdown table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{Lcg, WeirServer, copy_text, dir_bytes, reset_peak_rss, status_kib};

const KEYS_DEFAULT: u64 = 1_000_000;
const ROWS_PER_KEY_DEFAULT: u64 = 2;
const UPDATE_ROWS_DEFAULT: u64 = 100_000;
/// Rows per COPY statement.
const COPY_CHUNK_ROWS: u64 = 500_000;
/// Keys whose count and sum are checked after the update.
const PROBES: u64 = 16;
/// Values of `v` are drawn from `0..VALUE_RANGE`.
const VALUE_RANGE: u64 = 1_000_000;
/// Barrier interval of the server (the default a user gets).
const BARRIER_INTERVAL_MS: u64 = 1000;
/// Multiplier that scatters row i's key over the key space: a prime, so coprime with any
/// key count below it, and every key comes up once per `keys` rows.
const SCATTER: u128 = 2_654_435_761;

struct Args {
    keys: Vec<u64>,
    rows_per_key: u64,
    update_rows: u64,
    state_cache_mb: Option<u64>,
}

fn args() -> Args {
    let mut args = Args {
        keys: vec![KEYS_DEFAULT],
        rows_per_key: ROWS_PER_KEY_DEFAULT,
        update_rows: UPDATE_ROWS_DEFAULT,
        state_cache_mb: None,
    };
    let mut it = std::env::args().skip(1);
    let parse = |v: &str| -> u64 { v.replace('_', "").parse().expect("a number") };
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--bench" => {}
            "--keys" => args.keys = value().split(',').map(parse).collect(),
            "--rows-per-key" => args.rows_per_key = parse(&value()),
            "--update-rows" => args.update_rows = parse(&value()),
            "--state-cache-mb" => args.state_cache_mb = Some(parse(&value())),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// What the probed keys should hold: (count, sum of v).
struct Probes(Vec<(i64, i64)>);

impl Probes {
    fn add(&mut self, k: u64, v: u64) {
        if let Some(p) = self.0.get_mut(k as usize) {
            p.0 += 1;
            p.1 += v as i64;
        }
    }
}

/// Copies CSV `k,v` lines into the source.
async fn copy(client: &tokio_postgres::Client, text: String) {
    copy_text(client, "COPY events FROM STDIN WITH (FORMAT csv)", text).await;
}

fn mib(kib: u64) -> String {
    format!("{} MiB", kib / 1024)
}

async fn measure(args: &Args, keys: u64) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let budget = args.state_cache_mb.map(|m| m.to_string());
    let flags: Vec<&str> = match &budget {
        Some(m) => vec!["--state-cache-mb", m],
        None => Vec::new(),
    };
    let server = WeirServer::start_with_args(&data, BARRIER_INTERVAL_MS, &flags).await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE SOURCE events (k BIGINT, v BIGINT) FORMAT CSV")
        .await
        .unwrap();
    let mut probes = Probes(vec![(0, 0); PROBES as usize]);
    let mut rng = Lcg(7);
    let rows = keys * args.rows_per_key;
    let started = Instant::now();
    let mut i = 0;
    while i < rows {
        let n = COPY_CHUNK_ROWS.min(rows - i);
        let mut text = String::with_capacity(n as usize * 16);
        for row in i..i + n {
            let k = ((row % keys) as u128 * SCATTER % keys as u128) as u64;
            let v = rng.next() % VALUE_RANGE;
            probes.add(k, v);
            text.push_str(&format!("{k},{v}\n"));
        }
        copy(&client, text).await;
        i += n;
    }
    let ingest = started.elapsed();
    let pid = server.pid().to_string();
    reset_peak_rss(&pid);
    let before = status_kib(&pid, "VmRSS");
    let started = Instant::now();
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW agg AS SELECT k, count(*) AS n, sum(v)::bigint AS total, \
             min(v) AS lo, max(v) AS hi FROM events GROUP BY k",
        )
        .await
        .unwrap();
    let build = started.elapsed();
    let peak = status_kib(&pid, "VmHWM");
    let after = status_kib(&pid, "VmRSS");
    let mut text = String::new();
    for _ in 0..args.update_rows {
        let k = rng.next() % keys;
        let v = rng.next() % VALUE_RANGE;
        probes.add(k, v);
        text.push_str(&format!("{k},{v}\n"));
    }
    copy(&client, text).await;
    let started = Instant::now();
    client.batch_execute("FLUSH").await.unwrap();
    let update = started.elapsed();
    let total: i64 = client
        .query_one("SELECT sum(n)::bigint FROM agg", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        total as u64,
        rows + args.update_rows,
        "sum(n) over the view"
    );
    for (k, want) in probes.0.iter().enumerate() {
        let row = client
            .query_one("SELECT n, total FROM agg WHERE k = $1", &[&(k as i64)])
            .await
            .unwrap();
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, i64>(1)),
            *want,
            "key {k}"
        );
    }
    println!(
        "| {keys} | {rows} | {:.1} s | {:.1} s | {:.0} | {} | {} | {} | {} ms | {} |",
        ingest.as_secs_f64(),
        build.as_secs_f64(),
        rows as f64 / build.as_secs_f64(),
        mib(before),
        mib(peak),
        mib(after),
        update.as_millis(),
        mib((dir_bytes(&data) - dir_bytes(&data.join("topics"))) / 1024),
    );
}

#[tokio::main]
async fn main() {
    let args = args();
    println!(
        "--state-cache-mb {}, {} rows per key, {} update rows\n",
        args.state_cache_mb
            .map_or("(default)".to_string(), |m| m.to_string()),
        args.rows_per_key,
        args.update_rows
    );
    println!(
        "| keys | rows | ingest | build | build rows/s | RSS before | peak RSS (build) | RSS \
         after | update epoch | store |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &keys in &args.keys {
        measure(&args, keys).await;
    }
}
