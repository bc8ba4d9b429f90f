//! The recovery benchmark of the state issue: how soon a release `weir` serves again after
//! `kill -9`, with a large topic history and a large view.
//!
//! Set-up: a source `events (k, v, pad)` gets `--history-mb` MiB of rows over COPY (the `pad`
//! text makes up `--row-bytes` per row), and a view `SELECT k, count(*), sum(v)::bigint, min(v),
//! max(v) ... GROUP BY k` over `--keys` keys is built over all of it. Then, `--restarts`
//! times: a few more rows are copied in and flushed, the server is killed with SIGKILL and
//! started again over the same data directory, and three times are taken from the start:
//! - **listener**: the server's Postgres listener is open (its log line);
//! - **first lookup**: a point lookup on the view answers with the right row;
//! - **first epoch**: one new row copied in after the lookup is in the view (its FLUSH
//!   returned): an epoch has committed, so every view has loaded its operator state.
//!
//! The server's own log gives two more: how long the process took from its first log line to
//! its listener line, and how long the view's thread took to load its operator state
//! (`operator state loaded`, logged by builds that load it there).
//!
//! After each restart the view is checked whole: `sum(n)` equals the rows ingested, and every
//! probed key's count and sum equal what was generated for it.
//!
//! Run: `cargo bench --bench recovery -- [--keys K] [--history-mb M] [--row-bytes B]
//! [--restarts R] [--verbose]` (default: 1,000,000 keys, 1,024 MiB, 200 bytes, 3 restarts;
//! `--verbose` prints each start's log). `WEIR_TEST_BIN=<binary>` measures another build.
//! Prints a Markdown table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Lcg, WeirServer, copy_text, dir_bytes};

const KEYS_DEFAULT: u64 = 1_000_000;
const HISTORY_MIB_DEFAULT: u64 = 1024;
const ROW_BYTES_DEFAULT: usize = 200;
const RESTARTS_DEFAULT: usize = 3;
/// Rows per COPY statement.
const COPY_CHUNK_ROWS: usize = 100_000;
/// Rows copied in (and flushed) before each kill.
const ROWS_BEFORE_KILL: usize = 10_000;
/// Keys whose count and sum are tracked and looked up.
const PROBES: u64 = 16;
/// Values of `v` are drawn from `0..VALUE_RANGE`.
const VALUE_RANGE: u64 = 1_000_000;
/// Pause between two attempts at the first lookup.
const LOOKUP_RETRY: Duration = Duration::from_millis(2);
/// Barrier interval of the server (the default a user gets).
const BARRIER_INTERVAL_MS: u64 = 1000;

struct Args {
    keys: u64,
    history_mib: u64,
    row_bytes: usize,
    restarts: usize,
    verbose: bool,
}

fn args() -> Args {
    let mut args = Args {
        keys: KEYS_DEFAULT,
        history_mib: HISTORY_MIB_DEFAULT,
        row_bytes: ROW_BYTES_DEFAULT,
        restarts: RESTARTS_DEFAULT,
        verbose: false,
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
            "--keys" => args.keys = number("--keys"),
            "--history-mb" => args.history_mib = number("--history-mb"),
            "--row-bytes" => args.row_bytes = number("--row-bytes") as usize,
            "--restarts" => args.restarts = number("--restarts") as usize,
            "--verbose" => args.verbose = true,
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// Generates rows and remembers, for the probed keys, the count and sum they should have.
struct Rows {
    rng: Lcg,
    keys: u64,
    pad: String,
    total: u64,
    /// Per probed key: (count, sum of v).
    probes: Vec<(i64, i64)>,
}

impl Rows {
    /// `n` rows as COPY text.
    fn chunk(&mut self, n: usize) -> String {
        let mut out = String::with_capacity(n * (self.pad.len() + 24));
        for _ in 0..n {
            let k = self.rng.next() % self.keys;
            let v = self.rng.next() % VALUE_RANGE;
            if k < PROBES {
                let probe = &mut self.probes[k as usize];
                probe.0 += 1;
                probe.1 += v as i64;
            }
            out.push_str(&format!("{k}\t{v}\t{}\n", self.pad));
        }
        self.total += n as u64;
        out
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// The timestamp of a log line (`2026-12-02T17:39:27.101004Z ...`, maybe inside colour
/// codes), in seconds since midnight.
fn line_time(line: &str) -> Option<f64> {
    let at = line.find('T')?;
    let mut parts = line.get(at + 1..at + 16)?.split(':'); // HH:MM:SS.ffffff
    let mut next = || -> Option<f64> { parts.next()?.parse().ok() };
    Some(next()? * 3600.0 + next()? * 60.0 + next()?)
}

/// `line` without its terminal colour codes (`ESC [ … m`).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// From one start's log: (its first line to its listener line, the operator state's load
/// time as the view logged it).
fn log_times(log: &str) -> (Option<Duration>, Option<Duration>) {
    let log = &plain(log);
    let first = log.lines().next().and_then(line_time);
    let listener = log
        .lines()
        .find(|l| l.contains("postgres listener on"))
        .and_then(line_time);
    let startup = first
        .zip(listener)
        .map(|(a, b)| Duration::from_secs_f64((b - a).max(0.0)));
    let loaded = log
        .lines()
        .filter_map(|l| {
            let at = l.find("elapsed_ms=")? + "elapsed_ms=".len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .map(Duration::from_millis);
    (startup, loaded)
}

/// The probed key's (count, sum) as the view has it, if it answers.
async fn lookup(client: &tokio_postgres::Client, k: i64) -> Option<(i64, i64)> {
    let rows = client
        .query("SELECT n, total FROM agg WHERE k = $1", &[&k])
        .await
        .ok()?;
    rows.first()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
}

/// Checks the whole view against what was generated.
async fn check(client: &tokio_postgres::Client, rows: &Rows) {
    let sum: i64 = client
        .query_one("SELECT sum(n)::bigint FROM agg", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum as u64, rows.total, "sum(n) over the view");
    for (k, expected) in rows.probes.iter().enumerate() {
        let got = lookup(client, k as i64).await.unwrap_or_default();
        assert_eq!(&got, expected, "key {k}");
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = WeirServer::start(&data, BARRIER_INTERVAL_MS).await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE SOURCE events (k BIGINT, v BIGINT, pad TEXT) FORMAT CSV")
        .await
        .unwrap();
    let mut rows = Rows {
        rng: Lcg(11),
        keys: args.keys,
        pad: "x".repeat(args.row_bytes.saturating_sub(16)),
        total: 0,
        probes: vec![(0, 0); PROBES as usize],
    };
    let history_bytes = args.history_mib * 1024 * 1024;
    let started = Instant::now();
    while dir_bytes(&data.join("topics")) < history_bytes {
        copy_text(
            &client,
            "COPY events FROM STDIN",
            rows.chunk(COPY_CHUNK_ROWS),
        )
        .await;
    }
    let ingest = started.elapsed();
    let started = Instant::now();
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW agg AS SELECT k, count(*) AS n, sum(v)::bigint AS total, \
             min(v) AS lo, max(v) AS hi FROM events GROUP BY k",
        )
        .await
        .unwrap();
    let build = started.elapsed();
    check(&client, &rows).await;
    drop(client);
    println!(
        "history: {} rows, {} of topic segments (copied in {:.1} s); view over {} keys \
         built in {:.1} s\n",
        rows.total,
        mib(dir_bytes(&data.join("topics"))),
        ingest.as_secs_f64(),
        args.keys,
        build.as_secs_f64()
    );
    println!(
        "| restart | topic history | state store | listener | first lookup | first epoch | \
         process start → listener (log) | state load (log) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for restart in 1..=args.restarts {
        let client = server.connect().await;
        copy_text(
            &client,
            "COPY events FROM STDIN",
            rows.chunk(ROWS_BEFORE_KILL),
        )
        .await;
        client.batch_execute("FLUSH").await.unwrap();
        drop(client);
        let (topics, store) = (
            dir_bytes(&data.join("topics")),
            dir_bytes(&data) - dir_bytes(&data.join("topics")),
        );
        server.kill();
        let log_len = server.log().len();
        let started = Instant::now();
        server.restart().await;
        let listener = started.elapsed();
        let client = server.connect().await;
        let probe = (restart as u64 % PROBES) as usize;
        while lookup(&client, probe as i64).await != Some(rows.probes[probe]) {
            tokio::time::sleep(LOOKUP_RETRY).await;
        }
        let first_lookup = started.elapsed();
        copy_text(&client, "COPY events FROM STDIN", rows.chunk(1)).await;
        client.batch_execute("FLUSH").await.unwrap();
        let first_epoch = started.elapsed();
        check(&client, &rows).await;
        let log = server.log();
        let this_start = &log[log_len.min(log.len())..];
        if args.verbose {
            println!("{this_start}");
        }
        let (startup, loaded) = log_times(this_start);
        let or_dash = |d: Option<Duration>| d.map_or("–".to_string(), ms);
        println!(
            "| {restart} | {} | {} | {} | {} | {} | {} | {} |",
            mib(topics),
            mib(store),
            ms(listener),
            ms(first_lookup),
            ms(first_epoch),
            or_dash(startup),
            or_dash(loaded)
        );
    }
}
