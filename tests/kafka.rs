//! Weir topics are Kafka topics: real Kafka clients (librdkafka through confluent-kafka, and
//! kafka-python) produce and consume against a real Weir, and what they write shows up in
//! sources and views read over the Postgres wire. `./test.sh` installs the clients into a
//! virtualenv (`WEIR_TEST_PYTHON` points at its python).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{WeirServer, rows};

/// The `amount` field of each JSON record value, sorted.
fn amounts(values: &[String]) -> Vec<i64> {
    let mut out: Vec<i64> = values
        .iter()
        .map(|v| {
            serde_json::from_str::<serde_json::Value>(v).unwrap()["amount"]
                .as_i64()
                .unwrap()
        })
        .collect();
    out.sort();
    out
}

fn python() -> String {
    std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir-test-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// Runs tests/kafka/clients.py and returns its stdout lines.
fn client(args: &[&str]) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/clients.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run ./test.sh, which installs the Kafka clients",
                python()
            )
        });
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_clients_produce_and_consume_and_views_follow() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_kafka(&dir.path().join("data"), 50).await;
    let bootstrap = server.bootstrap();
    let sql = server.connect().await;
    sql.batch_execute(
        "CREATE TOPIC events WITH (partitions = 3);
         CREATE SOURCE events (user_id BIGINT, amount BIGINT) FROM TOPIC events FORMAT JSON;
         CREATE MATERIALIZED VIEW totals AS SELECT user_id, count(*) AS n, sum(amount) AS total FROM events GROUP BY user_id;",
    )
    .await
    .unwrap();

    // librdkafka with every compression codec, acks=all.
    let mut start = 0;
    for compression in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let acked = client(&[
            "produce-confluent",
            &bootstrap,
            "events",
            "200",
            compression,
            &start.to_string(),
        ]);
        assert_eq!(acked, vec!["200"], "{compression}");
        start += 200;
    }
    // kafka-python, acks=all.
    assert_eq!(
        client(&[
            "produce-python",
            &bootstrap,
            "events",
            "100",
            &start.to_string()
        ]),
        vec!["100"]
    );
    start += 100;
    // And a row through SQL: one namespace.
    sql.batch_execute(&format!("INSERT INTO events VALUES (3, {start})"))
        .await
        .unwrap();
    let total_records = start + 1;

    // The view over the topic equals a recompute, and holds every record.
    sql.batch_execute("FLUSH").await.unwrap();
    let view = rows(&sql, "SELECT user_id, n, total FROM totals")
        .await
        .unwrap();
    let batch = rows(
        &sql,
        "SELECT user_id, count(*), sum(amount) FROM events GROUP BY user_id",
    )
    .await
    .unwrap();
    assert_eq!(view, batch);
    let n: i64 = view.iter().map(|r| r[1].parse::<i64>().unwrap()).sum();
    assert_eq!(n, total_records as i64);
    let sum: i64 = view.iter().map(|r| r[2].parse::<i64>().unwrap()).sum();
    assert_eq!(sum, (0..total_records as i64).sum::<i64>());

    // Consumers read every record from the beginning, including the one INSERTed.
    for consumer in ["consume-confluent", "consume-python"] {
        let values = client(&[consumer, &bootstrap, "events", &total_records.to_string()]);
        assert_eq!(values.len(), total_records, "{consumer}");
        assert_eq!(
            amounts(&values),
            (0..total_records as i64).collect::<Vec<_>>(),
            "{consumer}"
        );
    }

    // A topic a Kafka client creates is a Weir topic.
    assert_eq!(
        client(&["create-topic", &bootstrap, "from_kafka", "2"]),
        vec!["created"]
    );
    let topics = rows(&sql, "SHOW TOPICS").await.unwrap();
    assert!(
        topics.contains(&vec!["from_kafka".to_string(), "2".to_string()]),
        "{topics:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_produce_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = WeirServer::start_with_kafka(&dir.path().join("data"), 50).await;
    let bootstrap = server.bootstrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/clients.py");
    let mut producer = Command::new(python())
        .args([script, "produce-until-error", &bootstrap, "crashy"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the producer");
    let mut acked: Vec<i64> = Vec::new();
    let mut lines = BufReader::new(producer.stdout.take().unwrap()).lines();
    // Kill Weir while the producer is sending, after 2000 acknowledgements.
    while acked.len() < 2000 {
        let line = lines.next().expect("producer output").unwrap();
        acked.push(line.parse().unwrap());
    }
    server.kill();
    for line in lines {
        acked.push(line.unwrap().parse().unwrap());
    }
    producer.wait().unwrap();
    server.restart().await;
    let bootstrap = server.bootstrap();
    // Read everything back: each acknowledged record exactly once.
    let values = client(&["consume-confluent", &bootstrap, "crashy", "1000000"]);
    let mut seen: std::collections::BTreeMap<i64, usize> = Default::default();
    for v in &values {
        let amount = serde_json::from_str::<serde_json::Value>(v).unwrap()["amount"]
            .as_i64()
            .unwrap();
        *seen.entry(amount).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "acknowledged record {id} must be present exactly once"
        );
    }
    assert!(seen.values().all(|&n| n == 1), "no record is present twice");
}

fn assignments(output: &str) -> Vec<Vec<i32>> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("assigned "))
        .map(|l| {
            l.split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().unwrap())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_splits_partitions_and_rebalances_when_one_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_kafka(&dir.path().join("data"), 50).await;
    let bootstrap = server.bootstrap();
    server
        .connect()
        .await
        .batch_execute("CREATE TOPIC shared WITH (partitions = 4)")
        .await
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/clients.py");
    let spawn = |stay: &str| {
        Command::new(python())
            .args([
                script,
                "group-assignments",
                &bootstrap,
                "shared",
                "pair",
                stay,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a consumer")
    };
    let first = spawn("5");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let second = spawn("10");
    let first = String::from_utf8(first.wait_with_output().unwrap().stdout).unwrap();
    let second = String::from_utf8(second.wait_with_output().unwrap().stdout).unwrap();
    let (a, b) = (assignments(&first), assignments(&second));
    // While both were in the group they split the four partitions between them.
    let a_half = a
        .iter()
        .find(|p| p.len() == 2)
        .unwrap_or_else(|| panic!("first: {a:?}"));
    let b_half = b
        .iter()
        .find(|p| p.len() == 2)
        .unwrap_or_else(|| panic!("second: {b:?}"));
    let mut union: Vec<i32> = a_half.iter().chain(b_half).copied().collect();
    union.sort();
    assert_eq!(union, vec![0, 1, 2, 3], "first {a:?}, second {b:?}");
    // After the first left, the second got everything.
    assert_eq!(b.last().unwrap(), &vec![0, 1, 2, 3], "second {b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = WeirServer::start_with_kafka(&dir.path().join("data"), 50).await;
    server
        .connect()
        .await
        .batch_execute("CREATE TOPIC progress WITH (partitions = 2)")
        .await
        .unwrap();
    assert_eq!(
        client(&[
            "produce-confluent",
            &server.bootstrap(),
            "progress",
            "50",
            "none",
            "0"
        ]),
        vec!["50"]
    );
    let first = client(&[
        "group-consume",
        &server.bootstrap(),
        "progress",
        "readers",
        "10",
    ]);
    assert_eq!(first.len(), 50);
    server.restart().await;
    assert_eq!(
        client(&[
            "produce-confluent",
            &server.bootstrap(),
            "progress",
            "10",
            "none",
            "50"
        ]),
        vec!["10"]
    );
    let second = client(&[
        "group-consume",
        &server.bootstrap(),
        "progress",
        "readers",
        "10",
    ]);
    assert_eq!(
        amounts(&second),
        (50..60).collect::<Vec<_>>(),
        "only the records after the committed offsets"
    );
    // weir_consumer_groups shows the committed offsets, and the lag once more records arrive.
    assert_eq!(
        client(&[
            "produce-confluent",
            &server.bootstrap(),
            "progress",
            "5",
            "none",
            "60"
        ]),
        vec!["5"]
    );
    let row = server
        .connect()
        .await
        .query_one(
            "SELECT count(*), sum(committed_offset)::BIGINT, sum(lag)::BIGINT FROM weir_consumer_groups \
             WHERE \"group\" = 'readers' AND topic = 'progress'",
            &[],
        )
        .await
        .unwrap();
    let (partitions, committed, lag): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((partitions, committed, lag), (2, 60, 5));
}

/// Applies a sink topic's records: append mode (op insert/delete) or upsert mode (key → last
/// value, tombstones delete). Returns the resulting rows as sorted `user_id,n,total` strings.
fn replay_sink(lines: &[String], upsert: bool) -> Vec<String> {
    let row = |v: &serde_json::Value| format!("{},{},{}", v["user_id"], v["n"], v["total"]);
    let mut rows: Vec<String> = Vec::new();
    let mut by_key: std::collections::BTreeMap<String, String> = Default::default();
    for line in lines {
        let (key, value) = line.split_once('\t').unwrap();
        if upsert {
            if value == "-" {
                by_key.remove(key);
            } else {
                by_key.insert(key.to_string(), row(&serde_json::from_str(value).unwrap()));
            }
        } else {
            let v: serde_json::Value = serde_json::from_str(value).unwrap();
            match v["op"].as_str().unwrap() {
                "insert" => rows.push(row(&v)),
                _ => {
                    let at = rows
                        .iter()
                        .position(|r| *r == row(&v))
                        .expect("a delete matches an earlier insert");
                    rows.remove(at);
                }
            }
        }
    }
    if upsert {
        rows = by_key.into_values().collect();
    }
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_let_kafka_consumers_follow_a_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = WeirServer::start_with_kafka(&dir.path().join("data"), 50).await;
    let sql = server.connect().await;
    sql.batch_execute(
        "CREATE TABLE events (id BIGINT PRIMARY KEY, user_id BIGINT, amount BIGINT);
         INSERT INTO events VALUES (1, 1, 10), (2, 1, 5), (3, 2, 7);
         CREATE MATERIALIZED VIEW totals AS SELECT user_id, count(*) AS n, sum(amount) AS total FROM events GROUP BY user_id;
         CREATE SINK totals_changes FROM totals INTO TOPIC totals_changes FORMAT JSON;
         CREATE SINK totals_latest FROM totals INTO TOPIC totals_latest FORMAT JSON WITH (mode = 'upsert');
         INSERT INTO events VALUES (4, 3, 1);
         UPDATE events SET amount = 100 WHERE id = 1;
         DELETE FROM events WHERE id = 3;
         FLUSH;",
    )
    .await
    .unwrap();
    let check = |server: &WeirServer, view: Vec<Vec<String>>| {
        let expected: Vec<String> = {
            let mut v: Vec<String> = view.iter().map(|r| r.join(",")).collect();
            v.sort();
            v
        };
        for (topic, upsert) in [("totals_changes", false), ("totals_latest", true)] {
            let lines = client(&["consume-keyed", &server.bootstrap(), topic]);
            assert_eq!(replay_sink(&lines, upsert), expected, "{topic}: {lines:?}");
        }
    };
    let view = rows(&sql, "SELECT user_id, n, total FROM totals")
        .await
        .unwrap();
    assert_eq!(view.len(), 2, "user 2 is gone: {view:?}");
    check(&server, view);
    // Nothing is written twice across a crash and restart.
    server.restart().await;
    let sql = server.connect().await;
    sql.batch_execute("INSERT INTO events VALUES (5, 1, 1); FLUSH")
        .await
        .unwrap();
    let view = rows(&sql, "SELECT user_id, n, total FROM totals")
        .await
        .unwrap();
    check(&server, view);
    let sinks = rows(&sql, "SHOW SINKS").await.unwrap();
    assert_eq!(sinks.len(), 2, "{sinks:?}");
    let err = sql
        .batch_execute("DROP MATERIALIZED VIEW totals")
        .await
        .unwrap_err();
    assert!(
        err.as_db_error()
            .unwrap()
            .detail()
            .unwrap_or("")
            .contains("sink totals_changes"),
        "{err:?}"
    );
    sql.batch_execute("DROP MATERIALIZED VIEW totals CASCADE")
        .await
        .unwrap();
    assert!(rows(&sql, "SHOW SINKS").await.unwrap().is_empty());
}

#[tokio::test]
async fn kcat_produces_and_consumes() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_kafka(&dir.path().join("data"), 50).await;
    let kcat = |args: &[&str], input: Option<&str>| {
        let mut child = Command::new("kcat")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kcat (./test.sh installs it from Debian)");
        if let Some(text) = input {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kcat {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let bootstrap = server.bootstrap();
    // Reads the whole topic, one line per record in kcat's `format`.
    let consume = |format: &str| {
        kcat(
            &[
                "-C",
                "-b",
                &bootstrap,
                "-t",
                "cat",
                "-o",
                "beginning",
                "-e",
                "-f",
                format,
            ],
            None,
        )
    };
    kcat(
        &[
            "-P",
            "-b",
            &bootstrap,
            "-t",
            "cat",
            "-K",
            ":",
            "-H",
            "trace=abc",
            "-H",
            "origin=kcat",
        ],
        Some("1:{\"user_id\": 1}\n2:{\"user_id\": 2}\n"),
    );
    // Keys, values and headers come back as produced.
    assert_eq!(
        consume("%k=%s %h\n"),
        "1={\"user_id\": 1} trace=abc,origin=kcat\n2={\"user_id\": 2} trace=abc,origin=kcat\n"
    );
    let sql = server.connect().await;
    sql.batch_execute("CREATE SOURCE cat (user_id BIGINT) FROM TOPIC cat FORMAT JSON")
        .await
        .unwrap();
    assert_eq!(
        rows(&sql, "SELECT user_id FROM cat").await.unwrap(),
        vec![vec!["1".to_string()], vec!["2".to_string()]]
    );
    // A record that is not JSON is skipped by views, counted, and stays in the topic.
    kcat(&["-P", "-b", &bootstrap, "-t", "cat"], Some("not json\n"));
    sql.batch_execute("CREATE MATERIALIZED VIEW cat_count AS SELECT count(*) AS n FROM cat")
        .await
        .unwrap();
    assert_eq!(
        rows(&sql, "SELECT n FROM cat_count").await.unwrap(),
        vec![vec!["2".to_string()]]
    );
    let skipped = rows(
        &sql,
        "SELECT topic, records_skipped FROM weir_skipped_records",
    )
    .await
    .unwrap();
    assert_eq!(skipped, vec![vec!["cat".to_string(), "1".to_string()]]);
    let out = consume("%s\n");
    assert!(out.ends_with("not json\n"), "{out}");

    // #12: one record nested 40,000 deep (80 KB) used to abort the server by stack overflow,
    // in the view's epoch and in a SELECT, and again after every restart. It is skipped and
    // counted like any record that does not decode.
    let bomb = format!(
        "{{\"user_id\": {}{}}}\n",
        "[".repeat(40_000),
        "]".repeat(40_000)
    );
    kcat(&["-P", "-b", &bootstrap, "-t", "cat"], Some(&bomb));
    kcat(
        &["-P", "-b", &bootstrap, "-t", "cat"],
        Some("{\"user_id\": 3}\n"),
    );
    sql.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&sql, "SELECT n FROM cat_count").await.unwrap(),
        vec![vec!["3".to_string()]]
    );
    assert_eq!(
        rows(&sql, "SELECT count(*) FROM cat").await.unwrap(),
        vec![vec!["3".to_string()]]
    );
    assert_eq!(
        rows(&sql, "SELECT records_skipped FROM weir_skipped_records")
            .await
            .unwrap(),
        vec![vec!["2".to_string()]]
    );

    // #11 bug 12: a key differing from the column only in case (`user_id` was declared
    // unquoted, so camel-cased producers send `User_Id`) fills the column; it used to give a
    // row of NULLs. Two such keys for one column are ambiguous: skipped and counted.
    kcat(
        &["-P", "-b", &bootstrap, "-t", "cat"],
        Some("{\"User_Id\": 4}\n{\"USER_ID\": 5, \"User_id\": 6}\n"),
    );
    sql.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(
            &sql,
            "SELECT user_id FROM cat WHERE user_id > 3 OR user_id IS NULL"
        )
        .await
        .unwrap(),
        vec![vec!["4".to_string()]]
    );
    assert_eq!(
        rows(&sql, "SELECT n FROM cat_count").await.unwrap(),
        vec![vec!["4".to_string()]]
    );
    assert_eq!(
        rows(&sql, "SELECT records_skipped FROM weir_skipped_records")
            .await
            .unwrap(),
        vec![vec!["3".to_string()]]
    );
}

/// A topic created by a Kafka client with retention limits deletes its old segments: clients
/// see the limits in DescribeConfigs, the log start move in ListOffsets, and a consumer that
/// asks for a deleted offset resets to the log start. A compacted topic keeps the latest
/// record of each key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments_and_clients_follow_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_kafka(&dir.path().join("data"), 50).await;
    let out = client(&["retention", &server.bootstrap(), "short"]);
    assert_eq!(
        out,
        vec![
            "retention.bytes 1",
            "retention.ms 604800000",
            "watermarks 2 3",
            "records 2=v2",
        ]
    );
    let out = client(&["compaction", &server.bootstrap(), "latest"]);
    assert_eq!(
        out,
        vec!["cleanup.policy compact", "records 1=k2:b,2=k1:c,3=k3:d"]
    );
    // SQL sees the same log: only the kept record.
    let pg = server.connect().await;
    pg.batch_execute("CREATE SOURCE short_rows (v TEXT) FROM TOPIC short FORMAT CSV")
        .await
        .unwrap();
    let rows = common::rows(&pg, "SELECT v FROM short_rows").await.unwrap();
    assert_eq!(rows, vec![vec!["v2"]]);
}

/// A request whose array count is absurd (a Metadata request claiming 2^31 - 1 topics in 4
/// bytes) is a bad request, not the end of the server: it must still serve the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_array_count_does_not_take_the_server_down() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_kafka(&dir.path().join("data"), 50).await;
    let bootstrap = server.bootstrap();
    let client_id = b"hostile";
    let mut payload = Vec::new();
    payload.extend_from_slice(&3i16.to_be_bytes()); // Metadata
    payload.extend_from_slice(&1i16.to_be_bytes()); // v1
    payload.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    payload.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    payload.extend_from_slice(client_id);
    payload.extend_from_slice(&i32::MAX.to_be_bytes()); // topics: "2^31 - 1 of them"
    let mut socket = std::net::TcpStream::connect(&bootstrap).unwrap();
    socket
        .write_all(&(payload.len() as i32).to_be_bytes())
        .unwrap();
    socket.write_all(&payload).unwrap();
    // The server answers or closes this connection; either way it lives on.
    let mut reply = Vec::new();
    let _ = socket.read_to_end(&mut reply);
    let topics = client(&["create-topic", &bootstrap, "after-the-attack", "1"]);
    assert_eq!(topics, vec!["created"]);
    let pg = server.connect().await;
    let rows = common::rows(&pg, "SHOW TOPICS").await.unwrap();
    assert!(rows.iter().any(|r| r[0] == "after-the-attack"), "{rows:?}");
}

/// A decompression bomb (one record of 32 MiB of one letter, a few kilobytes compressed) in
/// every codec: each is answered MESSAGE_TOO_LARGE (10) and not written, and the producer's
/// next record is. Before the bound, the bomb was acknowledged and written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_is_refused_and_nothing_of_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_kafka(&dir.path().join("data"), 50).await;
    let bootstrap = server.bootstrap();
    let bomb_bytes = (32 << 20).to_string();
    for compression in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("bomb_{compression}");
        assert_eq!(
            client(&["create-topic", &bootstrap, &topic, "1"]),
            vec!["created"]
        );
        let out = client(&["produce-bomb", &bootstrap, &topic, compression, &bomb_bytes]);
        assert_eq!(out, vec![format!("{compression} errors=[10, 0] end=1")]);
    }
    let pg = server.connect().await;
    pg.batch_execute("CREATE SOURCE bomb_rows (v TEXT) FROM TOPIC bomb_gzip FORMAT CSV")
        .await
        .unwrap();
    let rows = common::rows(&pg, "SELECT v FROM bomb_rows").await.unwrap();
    assert_eq!(rows, vec![vec!["small"]]);
}

/// Sends one request to the Kafka listener on a fresh connection and decodes the answer.
fn kafka_call<R: kafka_protocol::protocol::Request>(
    bootstrap: &str,
    version: i16,
    request: &R,
) -> R::Response {
    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
    use std::io::{Read, Write};
    let mut buf = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("weir-test")))
        .encode(&mut buf, R::header_version(version))
        .unwrap();
    request.encode(&mut buf, version).unwrap();
    let mut socket = std::net::TcpStream::connect(bootstrap).unwrap();
    socket.write_all(&(buf.len() as i32).to_be_bytes()).unwrap();
    socket.write_all(&buf).unwrap();
    let mut len = [0u8; 4];
    socket.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    socket.read_exact(&mut body).unwrap();
    let mut body = bytes::Bytes::from(body);
    ResponseHeader::decode(&mut body, R::Response::header_version(version)).unwrap();
    R::Response::decode(&mut body, version).unwrap()
}

/// Weir's internal topics (here a keyed table's changelog, which holds every past value of the
/// table) are not for Kafka clients: Metadata leaves them out, Produce, Fetch and ListOffsets
/// answer UNKNOWN_TOPIC_OR_PARTITION (3), and CreateTopics INVALID_TOPIC_EXCEPTION (17); asking
/// for or producing to a new `_weir.` name does not create it. Before, a client could read the
/// changelog and create `_weir.*` topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_clients_cannot_see_read_write_or_create_internal_topics() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        BrokerId, CreateTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest,
        ProduceRequest, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_kafka(&dir.path().join("data"), 50).await;
    let bootstrap = server.bootstrap();
    let pg = server.connect().await;
    pg.batch_execute(
        "CREATE TABLE accounts (id INT PRIMARY KEY, secret TEXT);
         INSERT INTO accounts VALUES (1, 'hunter2');
         CREATE TOPIC public_events",
    )
    .await
    .unwrap();
    let changelog = "_weir.table.accounts";
    let topics = common::rows(&pg, "SHOW TOPICS").await.unwrap();
    assert!(topics.iter().any(|r| r[0] == changelog), "{topics:?}");
    let name = |n: &str| TopicName(StrBytes::from_string(n.to_string()));
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

    let all = kafka_call(
        &bootstrap,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let listed: Vec<String> = all
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(listed, vec!["public_events"]);
    for wanted in [changelog, "_weir.auto"] {
        let one = kafka_call(
            &bootstrap,
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(name(wanted))),
                ]))
                .with_allow_auto_topic_creation(true),
        );
        assert_eq!(
            one.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "{wanted}"
        );
    }

    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        sequence: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        timestamp: 0,
        key: None,
        value: Some(bytes::Bytes::from_static(
            b"{\"op\":\"+\",\"row\":{\"id\":2}}",
        )),
        headers: Default::default(),
    };
    let mut batch = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    for target in [changelog, "_weir.new"] {
        let produced = kafka_call(
            &bootstrap,
            9,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(name(target))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch.clone().freeze())),
                        ]),
                ]),
        );
        assert_eq!(
            produced.responses[0].partition_responses[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "{target}"
        );
    }

    let fetched = kafka_call(
        &bootstrap,
        12,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name(changelog))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]),
    );
    let partition = &fetched.responses[0].partitions[0];
    assert_eq!(partition.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));

    let offsets = kafka_call(
        &bootstrap,
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name(changelog))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ]),
            ]),
    );
    assert_eq!(
        offsets.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    let created = kafka_call(
        &bootstrap,
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(name("_weir.mine"))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
    );
    assert_eq!(created.topics[0].error_code, 17);
    assert_eq!(
        created.topics[0].error_message.as_deref(),
        Some("topic names starting with '_weir.' are reserved for Weir's internal topics")
    );

    // Nothing was created, and the table kept its one row.
    let topics = common::rows(&pg, "SHOW TOPICS").await.unwrap();
    let names: Vec<&str> = topics.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, vec![changelog, "public_events"]);
    let rows = common::rows(&pg, "SELECT id, secret FROM accounts")
        .await
        .unwrap();
    assert_eq!(rows, vec![vec!["1", "hunter2"]]);
}

/// A Kafka connection that sends no request for `--kafka-connections-max-idle-ms` is closed
/// (Kafka's connections.max.idle.ms; #12 item 5: idle sockets were kept forever), and one that
/// keeps talking is not.
#[tokio::test]
async fn idle_kafka_connections_are_closed() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_kafka_and_args(
        &dir.path().join("data"),
        50,
        &["--kafka-connections-max-idle-ms", "300"],
    )
    .await;
    let port = server.kafka_port.unwrap();
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    // The server closes its end: the read sees the end of the stream, not the timeout.
    assert_eq!(idle.read(&mut byte).unwrap(), 0);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    // ApiVersions v0 (key 18), correlation id 7, client id "t": answered, so the connection
    // was open until it idled.
    let mut busy = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body: Vec<u8> = [
        &18i16.to_be_bytes()[..],
        &0i16.to_be_bytes(),
        &7i32.to_be_bytes(),
        &1i16.to_be_bytes(),
        b"t",
    ]
    .concat();
    busy.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
    busy.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    busy.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; i32::from_be_bytes(len) as usize];
    busy.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..4], &7i32.to_be_bytes(), "correlation id");
}
