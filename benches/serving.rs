//! End-to-end benchmark through the front door: a release `weir` server on loopback, driven by
//! tokio-postgres. Measures
//! - COPY ingest into a source (rows/s, durable when acknowledged),
//! - single-row INSERT latency (each one fsynced),
//! - backfill of a GROUP BY view over everything ingested,
//! - incremental update: rows inserted → visible in the view after FLUSH,
//! - point-lookup latency on the view's key (prepared statement, binary results),
//! - FLUSH latency alone, and while another client reads the whole view over and over (a
//!   read must not hold commits back).
//!
//! Run: `cargo bench --bench serving` (ROWS=n to change the ingest size). Prints a Markdown
//! table; the README shows the latest one.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Lcg, WeirServer};
use futures::SinkExt;

const COPY_CHUNK_ROWS: usize = 50_000;
const KEYS: u64 = 100_000;
const LOOKUPS: usize = 20_000;
const INSERTS: usize = 500;
/// FLUSHes timed alone.
const FLUSHES: usize = 50;
/// Full scans of the view another client makes while FLUSHes are timed beside them.
const SCANS: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), 1000).await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE SOURCE events (user_id BIGINT, amount BIGINT, url TEXT) FORMAT CSV")
        .await
        .unwrap();

    // COPY ingest.
    let mut rng = Lcg(42);
    let started = Instant::now();
    let mut sent = 0;
    while sent < rows {
        let n = COPY_CHUNK_ROWS.min(rows - sent);
        let mut chunk = String::with_capacity(n * 24);
        for _ in 0..n {
            let user = rng.next() % KEYS;
            chunk.push_str(&format!(
                "{user}\t{}\t/p/{}\n",
                rng.next() % 1000,
                user % 50
            ));
        }
        let sink = client.copy_in("COPY events FROM STDIN").await.unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(chunk)).await.unwrap();
        sink.finish().await.unwrap();
        sent += n;
    }
    let copy_secs = started.elapsed().as_secs_f64();

    // Backfill a view over everything.
    let started = Instant::now();
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW per_user AS SELECT user_id, count(*) AS n, sum(amount) AS total, max(url) AS last FROM events GROUP BY user_id",
        )
        .await
        .unwrap();
    let backfill_secs = started.elapsed().as_secs_f64();

    // Single-row INSERT latency (each acknowledged after fsync).
    let insert = client
        .prepare("INSERT INTO events VALUES ($1, $2, '/x')")
        .await
        .unwrap();
    let mut insert_lat = Vec::with_capacity(INSERTS);
    for i in 0..INSERTS {
        let t = Instant::now();
        client
            .execute(&insert, &[&((i as u64 % KEYS) as i64), &1i64])
            .await
            .unwrap();
        insert_lat.push(t.elapsed());
    }
    insert_lat.sort();

    // Incremental: those inserts reach the view at the next epoch.
    let started = Instant::now();
    client.batch_execute("FLUSH").await.unwrap();
    let flush_ms = started.elapsed().as_secs_f64() * 1e3;

    // Point lookups on the view's key.
    let lookup = client
        .prepare("SELECT n, total, last FROM per_user WHERE user_id = $1")
        .await
        .unwrap();
    let mut lookup_lat = Vec::with_capacity(LOOKUPS);
    let mut found = 0;
    let started = Instant::now();
    for _ in 0..LOOKUPS {
        let key = (rng.next() % KEYS) as i64;
        let t = Instant::now();
        let r = client.query(&lookup, &[&key]).await.unwrap();
        lookup_lat.push(t.elapsed());
        found += r.len();
    }
    let lookup_secs = started.elapsed().as_secs_f64();
    lookup_lat.sort();
    assert!(
        found > LOOKUPS * 9 / 10,
        "lookups found their keys ({found} of {LOOKUPS})"
    );

    // One insert then FLUSH, alone, then while another client scans the whole view in a loop.
    let mut flush_alone = Vec::new();
    while flush_alone.len() < FLUSHES {
        flush_alone.push(time_flush(&client, &insert).await);
    }
    flush_alone.sort();
    let reader = server.connect().await;
    let scans_done = Arc::new(AtomicUsize::new(0));
    let scanning = {
        let scans_done = scans_done.clone();
        tokio::spawn(async move {
            let mut scans = Vec::new();
            while scans.len() < SCANS {
                let t = Instant::now();
                let rows = reader.query("SELECT * FROM per_user", &[]).await.unwrap();
                assert!(rows.len() as u64 > KEYS * 9 / 10, "the scan read the view");
                scans.push(t.elapsed());
                scans_done.fetch_add(1, Ordering::Relaxed);
            }
            scans
        })
    };
    let mut flush_beside_scans = Vec::new();
    while scans_done.load(Ordering::Relaxed) < SCANS {
        flush_beside_scans.push(time_flush(&client, &insert).await);
    }
    flush_beside_scans.sort();
    let mut scans = scanning.await.unwrap();
    scans.sort();

    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| COPY ingest, {rows} rows (CSV text, fsynced) | {:.0} rows/s |",
        rows as f64 / copy_secs
    );
    println!(
        "| backfill of a 4-aggregate GROUP BY view over {rows} rows, {KEYS} keys | {backfill_secs:.2} s ({:.0} rows/s) |",
        rows as f64 / backfill_secs
    );
    println!(
        "| single-row INSERT, acknowledged after fsync (p50 / p99) | {} / {} |",
        micros(percentile(&insert_lat, 0.5)),
        micros(percentile(&insert_lat, 0.99))
    );
    println!("| FLUSH after {INSERTS} inserts (epoch with them committed) | {flush_ms:.1} ms |");
    println!(
        "| point lookup on the view key, prepared, over loopback (p50 / p99) | {} / {} |",
        micros(percentile(&lookup_lat, 0.5)),
        micros(percentile(&lookup_lat, 0.99))
    );
    println!(
        "| point lookups, one client, sequential | {:.0} lookups/s |",
        LOOKUPS as f64 / lookup_secs
    );
    println!(
        "| FLUSH after one insert, alone (p50 / p99 of {FLUSHES}) | {} / {} |",
        micros(percentile(&flush_alone, 0.5)),
        micros(percentile(&flush_alone, 0.99))
    );
    println!(
        "| same, while another client reads the whole view ({SCANS} scans, p50 {}): {} FLUSHes (p50 / p99 / max) | {} / {} / {} |",
        micros(percentile(&scans, 0.5)),
        flush_beside_scans.len(),
        micros(percentile(&flush_beside_scans, 0.5)),
        micros(percentile(&flush_beside_scans, 0.99)),
        micros(percentile(&flush_beside_scans, 1.0))
    );
}

/// One insert, then the time FLUSH takes to commit it.
async fn time_flush(
    client: &tokio_postgres::Client,
    insert: &tokio_postgres::Statement,
) -> Duration {
    client.execute(insert, &[&1i64, &1i64]).await.unwrap();
    let t = Instant::now();
    client.batch_execute("FLUSH").await.unwrap();
    t.elapsed()
}
