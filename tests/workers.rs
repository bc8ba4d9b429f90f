//! Results and state do not depend on the number of workers per view: a server restarted with
//! a different `--workers` hands each worker the state of the vnodes it now owns, and every
//! view (grouped by an integer and by a text key, global, joined, joined then grouped, and min/max
//! over groups of more than 256 distinct values, kept as one store entry per value) still
//! equals a batch recompute of its query, before and after more inserts, updates and deletes.

mod common;

use common::{WeirServer, rows};

const VIEWS: [(&str, &str); 6] = [
    (
        "per_key",
        "SELECT k, count(*) AS n, sum(v) AS total, min(v) AS lo, max(v) AS hi FROM events GROUP BY k",
    ),
    (
        "by_name",
        "SELECT name, count(*) AS n, max(v) AS hi FROM events GROUP BY name",
    ),
    (
        "overall",
        "SELECT count(*) AS n, sum(v) AS total, min(v) AS lo FROM events",
    ),
    (
        "joined",
        "SELECT e.id, e.v, a.balance FROM events e JOIN accounts a ON e.k = a.id",
    ),
    (
        "spread",
        "SELECT k % 3 AS part, min(id) AS first, max(id) AS last, count(*) AS n FROM events GROUP BY k % 3",
    ),
    (
        "per_account",
        "SELECT a.id, count(*) AS n, sum(e.v + a.balance) AS total FROM events e JOIN accounts a ON e.k = a.id GROUP BY a.id",
    ),
];

async fn check(server: &WeirServer, when: &str) {
    let client = server.connect().await;
    client.simple_query("FLUSH").await.unwrap();
    for (name, query) in VIEWS {
        let view = rows(&client, &format!("SELECT * FROM {name}"))
            .await
            .unwrap();
        let batch = rows(&client, query).await.unwrap();
        assert!(!view.is_empty(), "{when}: view {name} is empty");
        assert_eq!(
            view, batch,
            "{when}: view {name} differs from its recompute"
        );
    }
}

/// Inserts events `from..to` (keys cycle over 40, names over 7) and accounts for keys < 30.
async fn insert(server: &WeirServer, from: i64, to: i64) {
    let client = server.connect().await;
    let events: Vec<String> = (from..to)
        .map(|i| format!("({i}, {}, 'n{}', {})", i % 40, i % 7, (i * 37) % 101 - 50))
        .collect();
    client
        .simple_query(&format!("INSERT INTO events VALUES {}", events.join(", ")))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_survive_a_change_of_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = WeirServer::start_with_workers(&dir.path().join("data"), 20, 1).await;
    let client = server.connect().await;
    client
        .simple_query(
            "CREATE TABLE events (id BIGINT PRIMARY KEY, k BIGINT, name TEXT, v BIGINT); \
             CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT);",
        )
        .await
        .unwrap();
    let accounts: Vec<String> = (0..30).map(|i| format!("({i}, {})", i * 10)).collect();
    client
        .simple_query(&format!(
            "INSERT INTO accounts VALUES {}",
            accounts.join(", ")
        ))
        .await
        .unwrap();
    for (name, query) in VIEWS {
        client
            .simple_query(&format!("CREATE MATERIALIZED VIEW {name} AS {query}"))
            .await
            .unwrap();
    }
    insert(&server, 0, 400).await;
    check(&server, "1 worker").await;

    for (workers, round) in [(3, 1), (2, 2), (1, 3)] {
        server.workers = Some(workers);
        server.restart().await;
        check(&server, &format!("restarted with {workers} workers")).await;
        let client = server.connect().await;
        for change in [
            format!("UPDATE events SET v = v + {round} WHERE k = {}", round * 3),
            format!("DELETE FROM events WHERE k = {}", round * 5),
            format!(
                "UPDATE accounts SET balance = balance - 7 WHERE id = {}",
                round * 4
            ),
            format!("DELETE FROM accounts WHERE id = {}", round * 2 + 1),
        ] {
            client.simple_query(&change).await.unwrap();
        }
        insert(&server, 400 * round, 400 * round + 200).await;
        check(&server, &format!("changes with {workers} workers")).await;
    }
}
