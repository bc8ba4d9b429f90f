//! Crash safety through the front door: a writer inserts over the wire while the server is
//! killed with SIGKILL at several points. After each restart every acknowledged write is there
//! exactly once (an unacknowledged in-flight write may or may not be), and every view equals a
//! batch recompute of its query — nothing lost, nothing counted twice. A second test kills the
//! server with min/max multisets big enough to be kept as one store entry per value, and
//! checks that they reload (with another worker count too).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{WeirServer, rows};
use tokio::sync::Mutex;

const VIEWS: [(&str, &str); 3] = [
    (
        "per_key",
        "SELECT k, count(*) AS n, sum(v) AS total, min(v) AS lo, max(v) AS hi FROM events GROUP BY k",
    ),
    (
        "balances",
        "SELECT count(*) AS accounts, sum(balance) AS total FROM accounts",
    ),
    (
        "joined",
        "SELECT a.id, e.v + a.balance AS score FROM events e JOIN accounts a ON e.id = a.id",
    ),
];

/// What the writer has had acknowledged, and what it had in flight when the server died.
#[derive(Default)]
struct Acked {
    events: Vec<i64>,
    accounts: BTreeMap<i64, i64>,
    in_flight: Option<Op>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Event(i64),
    Account(i64, i64),
}

async fn write_until_error(
    server_port: u16,
    acked: Arc<Mutex<Acked>>,
    count: Arc<AtomicUsize>,
    start: i64,
) {
    let conn_str = format!("host=127.0.0.1 port={server_port} user=weir dbname=weir");
    let Ok((client, connection)) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls).await
    else {
        return;
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    for i in start.. {
        // Mostly events; every third op opens an account or changes a balance.
        let op = if i % 3 == 0 {
            Op::Account(i % 50, i)
        } else {
            Op::Event(i)
        };
        acked.lock().await.in_flight = Some(op);
        let sql = match op {
            Op::Event(id) => format!("INSERT INTO events VALUES ({id}, {}, {})", id % 7, id % 100),
            Op::Account(id, balance) => {
                let exists = acked.lock().await.accounts.contains_key(&id);
                if exists {
                    format!("UPDATE accounts SET balance = {balance} WHERE id = {id}")
                } else {
                    format!("INSERT INTO accounts VALUES ({id}, {balance})")
                }
            }
        };
        if client.simple_query(&sql).await.is_err() {
            return; // the server died: this op is in flight, unacknowledged
        }
        let mut a = acked.lock().await;
        match op {
            Op::Event(id) => a.events.push(id),
            Op::Account(id, balance) => {
                a.accounts.insert(id, balance);
            }
        }
        a.in_flight = None;
        drop(a);
        count.fetch_add(1, Ordering::SeqCst);
    }
}

async fn check(server: &WeirServer, acked: &Acked) {
    let client = server.connect().await;
    // Events: each acknowledged id exactly once; the in-flight one at most once.
    let ids = rows(&client, "SELECT id FROM events").await.unwrap();
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &ids {
        *counts.entry(r[0].parse().unwrap()).or_default() += 1;
    }
    for id in &acked.events {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "acknowledged event {id} must be present exactly once"
        );
    }
    let in_flight_event = match acked.in_flight {
        Some(Op::Event(id)) => Some(id),
        _ => None,
    };
    for (id, n) in &counts {
        assert_eq!(*n, 1, "event {id} present {n} times");
        assert!(
            acked.events.contains(id) || Some(*id) == in_flight_event,
            "event {id} was never written"
        );
    }
    // Accounts: the acknowledged state, or that plus the in-flight change.
    let accounts: BTreeMap<i64, i64> = rows(&client, "SELECT id, balance FROM accounts")
        .await
        .unwrap()
        .iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect();
    let mut with_in_flight = acked.accounts.clone();
    if let Some(Op::Account(id, balance)) = acked.in_flight {
        with_in_flight.insert(id, balance);
    }
    assert!(
        accounts == acked.accounts || accounts == with_in_flight,
        "accounts after restart: {accounts:?}"
    );
    // Views: equal to a batch recompute over the same inputs.
    client.simple_query("FLUSH").await.unwrap();
    for (name, query) in VIEWS {
        let view = rows(&client, &format!("SELECT * FROM {name}"))
            .await
            .unwrap();
        let batch = rows(&client, query).await.unwrap();
        assert_eq!(view, batch, "view {name} differs from its recompute");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_views_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = WeirServer::start(&dir.path().join("data"), 20).await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TOPIC events WITH (partitions = 3)")
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE SOURCE events (id BIGINT, k BIGINT, v BIGINT) FROM TOPIC events FORMAT JSON",
        )
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT)")
        .await
        .unwrap();
    for (name, query) in VIEWS {
        client
            .batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {query}"))
            .await
            .unwrap();
    }
    drop(client);

    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut next_id = 1;
    // Kill points: after this many more acknowledged writes in each round.
    for kill_after in [40, 75, 130, 20] {
        let count = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(write_until_error(
            server.port,
            acked.clone(),
            count.clone(),
            next_id,
        ));
        while count.load(Ordering::SeqCst) < kill_after {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        server.kill();
        writer.await.unwrap();
        server.restart().await;
        let mut a = acked.lock().await;
        check(&server, &a).await;
        // Settle the in-flight op: whatever the restarted server holds is now the truth.
        if let Some(op) = a.in_flight.take() {
            let client = server.connect().await;
            match op {
                Op::Event(id) => {
                    if !rows(&client, &format!("SELECT id FROM events WHERE id = {id}"))
                        .await
                        .unwrap()
                        .is_empty()
                    {
                        a.events.push(id);
                    }
                }
                Op::Account(id, _) => {
                    let r = rows(
                        &client,
                        &format!("SELECT balance FROM accounts WHERE id = {id}"),
                    )
                    .await
                    .unwrap();
                    if let Some(row) = r.first() {
                        a.accounts.insert(id, row[0].parse().unwrap());
                    }
                }
            }
        }
        next_id += 1000;
    }
    let a = acked.lock().await;
    assert!(
        a.events.len() > 150,
        "the writer made progress: {} events",
        a.events.len()
    );
}

/// min/max kept per value (groups of more than 256 distinct values, integers and text):
/// after each kill -9 the views reload their entries, and deletes and updates of the
/// extremes move the answers as a recompute does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_max_value_entries_reload_after_kill_9() {
    const SPREAD: [(&str, &str); 2] = [
        (
            "spread",
            "SELECT g, count(*) AS n, min(x) AS lo, max(x) AS hi, min(name) AS first_name, max(name) AS last_name FROM t GROUP BY g",
        ),
        (
            "spread_all",
            "SELECT count(*) AS n, min(x) AS lo, max(x) AS hi, max(name) AS last_name FROM t",
        ),
    ];
    async fn check_spread(server: &WeirServer, when: &str) {
        let client = server.connect().await;
        client.simple_query("FLUSH").await.unwrap();
        for (name, query) in SPREAD {
            let view = rows(&client, &format!("SELECT * FROM {name}"))
                .await
                .unwrap();
            let batch = rows(&client, query).await.unwrap();
            assert_eq!(
                view, batch,
                "{when}: view {name} differs from its recompute"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = WeirServer::start_with_workers(&dir.path().join("data"), 20, 1).await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, g BIGINT, x BIGINT, name TEXT)")
        .await
        .unwrap();
    for (name, query) in SPREAD {
        client
            .batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {query}"))
            .await
            .unwrap();
    }
    let values: Vec<String> = (0..1200i64)
        .map(|i| {
            format!(
                "({i}, {}, {}, 'n{:05}')",
                i % 2,
                (i * 7919) % 100_003,
                (i * 31) % 1201
            )
        })
        .collect();
    client
        .batch_execute(&format!("INSERT INTO t VALUES {}", values.join(", ")))
        .await
        .unwrap();
    client.batch_execute("FLUSH").await.unwrap();
    drop(client);
    server.kill();
    server.restart().await;
    check_spread(&server, "restarted after the load").await;

    let changes = [
        vec![
            "DELETE FROM t WHERE x > 99000 OR x < 1000",
            "UPDATE t SET x = x + 200000 WHERE id % 97 = 0",
            "UPDATE t SET name = 'a' WHERE id = 5",
        ],
        vec![
            "DELETE FROM t WHERE x > 200000",
            "DELETE FROM t WHERE name < 'n00100' OR name > 'n01100'",
        ],
    ];
    for (round, statements) in changes.iter().enumerate() {
        let client = server.connect().await;
        for sql in statements {
            client.batch_execute(sql).await.unwrap();
        }
        client.batch_execute("FLUSH").await.unwrap();
        drop(client);
        check_spread(&server, &format!("round {round}")).await;
        server.kill();
        server.workers = Some(3 - round);
        server.restart().await;
        check_spread(
            &server,
            &format!("round {round}, restarted with {} workers", 3 - round),
        )
        .await;
    }
}
