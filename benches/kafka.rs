//! Kafka benchmark with a real client (librdkafka via confluent-kafka, from the virtualenv
//! `./test.sh` makes) against a release `weir` with `--barrier-interval-ms 10`:
//! - produce throughput, acks=all, 100-byte records, batched by the client, one partition;
//! - produce → visible in a view: a record produced (acks=all) until a point lookup on a view
//!   over its topic returns it, p50 / p99.
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

    // Throughput.
    let out = Command::new(python())
        .args([
            script(),
            "throughput",
            &server.bootstrap(),
            "firehose",
            &records.to_string(),
            "100",
        ])
        .output()
        .expect("run the producer (./test.sh installs the virtualenv)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    let count: f64 = parts.next().unwrap().parse().unwrap();
    let seconds: f64 = parts.next().unwrap().parse().unwrap();
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
        "| librdkafka produce, acks=all, 100-byte records, 1 partition, {count:.0} records | {:.0} records/s ({:.1} MB/s) |",
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
