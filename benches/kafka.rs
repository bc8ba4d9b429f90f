//! Kafka benchmark with real librdkafka clients against a release `weir` with
//! `--barrier-interval-ms 10`:
//! - produce throughput with kcat (C, librdkafka; Debian package, `./test.sh` installs it):
//!   acks=all, 100-byte records from a file, batched by the client, one partition, timed from
//!   start to kcat's exit (all records acknowledged);
//! - produce → visible in a view: a record produced (acks=all) until a point lookup on a view
//!   over its topic returns it, p50 / p99 (confluent-kafka from the `./test.sh` virtualenv).
//!
//! Run: `cargo bench --bench kafka` (RECORDS=n to change the throughput run).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::WeirServer;

const LATENCY_SAMPLES: usize = 300;

fn python() -> String {
    std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir-test-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/benches/kafka_clients.py")
}

#[tokio::main]
async fn main() {
    let records: usize = std::env::var("RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_kafka(&dir.path().join("data"), 10).await;
    let sql = server.connect().await;
    sql.batch_execute(
        "CREATE TOPIC firehose WITH (partitions = 1);
         CREATE SOURCE firehose_rows (payload TEXT) FROM TOPIC firehose FORMAT CSV;
         CREATE TOPIC pings WITH (partitions = 1);
         CREATE SOURCE pings (id BIGINT) FROM TOPIC pings FORMAT JSON;
         CREATE MATERIALIZED VIEW seen AS SELECT id, count(*) AS n FROM pings GROUP BY id;",
    )
    .await
    .unwrap();

    // Throughput: kcat reads one record per line from a file.
    let input = dir.path().join("records.txt");
    std::fs::write(&input, format!("{}\n", "x".repeat(100)).repeat(records)).unwrap();
    let started = std::time::Instant::now();
    let out = server
        .kcat_producer("firehose", &input)
        .output()
        .expect("run kcat (./test.sh installs it)");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = records as f64;
    let end: i64 = sql
        .query_one("SELECT count(*) FROM firehose_rows", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(-1);
    assert_eq!(end as f64, count, "every produced record is in the topic");

    // Produce → visible in the view.
    let lookup = sql
        .prepare("SELECT n FROM seen WHERE id = $1")
        .await
        .unwrap();
    let mut producer = Command::new(python())
        .args([
            script(),
            "latency",
            &server.bootstrap(),
            "pings",
            &LATENCY_SAMPLES.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    for line in BufReader::new(producer.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let (id, sent) = line.split_once(' ').unwrap();
        let (id, sent): (i64, f64) = (id.parse().unwrap(), sent.parse().unwrap());
        loop {
            if !sql.query(&lookup, &[&id]).await.unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        latencies.push(Duration::from_secs_f64((now - sent).max(0.0)));
    }
    producer.wait().unwrap();
    latencies.sort();
    let pct =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;

    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| kcat (librdkafka) produce, acks=all, 100-byte records, 1 partition, {count:.0} records | {:.0} records/s ({:.1} MB/s) |",
        count / seconds,
        count * 100.0 / seconds / 1e6
    );
    println!(
        "| produce (acks=all) → visible in a view, barrier 10 ms, {} samples (p50 / p99) | {:.1} ms / {:.1} ms |",
        latencies.len(),
        pct(0.5),
        pct(0.99)
    );
}
