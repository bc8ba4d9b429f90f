//! Watermarks survive restarts: a view that emits on window close, killed with SIGKILL and
//! restarted (with another number of workers), neither emits a closed window again nor lets a
//! late row into it, and closes the next windows when the watermark passes them.

mod common;

use common::{WeirServer, rows};

async fn insert(server: &WeirServer, values: &str) {
    let client = server.connect().await;
    client
        .simple_query(&format!("INSERT INTO clicks VALUES {values}"))
        .await
        .unwrap();
    client.simple_query("FLUSH").await.unwrap();
}

async fn windows(server: &WeirServer) -> Vec<Vec<String>> {
    let client = server.connect().await;
    rows(&client, "SELECT window_start, n, users FROM per_10s")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_windows_stay_closed_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = WeirServer::start_with_workers(&dir.path().join("data"), 20, 1).await;
    let client = server.connect().await;
    client
        .simple_query(
            "CREATE TOPIC clicks WITH (partitions = 2); \
             CREATE SOURCE clicks (user_id INT, ts TIMESTAMP, \
               WATERMARK FOR ts AS ts - INTERVAL '1 second') FORMAT JSON; \
             CREATE MATERIALIZED VIEW per_10s AS SELECT window_start, count(*) AS n, \
               sum(user_id) AS users FROM TUMBLE(clicks, ts, INTERVAL '10 seconds') \
               GROUP BY window_start EMIT ON WINDOW CLOSE;",
        )
        .await
        .unwrap();
    // Two partitions, each INSERT into the next: the watermark is the smaller of theirs, none
    // until both have rows.
    insert(
        &server,
        "(1, '2026-03-01 00:00:01'), (2, '2026-03-01 00:00:12')",
    )
    .await;
    insert(
        &server,
        "(3, '2026-03-01 00:00:14'), (4, '2026-03-01 00:00:15')",
    )
    .await;
    let first = windows(&server).await;
    assert_eq!(first, [["2026-03-01 00:00:00", "1", "1"]], "{first:?}");

    server.kill();
    server.workers = Some(2);
    server.restart().await;
    assert_eq!(windows(&server).await, first, "after a restart");
    // Each INSERT goes to the next partition, from 0 again after a restart. A late row for
    // the closed window (dropped), then rows that move both partitions past 00:00:20.
    insert(
        &server,
        "(5, '2026-03-01 00:00:03'), (6, '2026-03-01 00:00:16')",
    )
    .await;
    insert(
        &server,
        "(7, '2026-03-01 00:00:31'), (8, '2026-03-01 00:00:32')",
    )
    .await;
    insert(&server, "(9, '2026-03-01 00:00:33')").await;
    let second = windows(&server).await;
    assert_eq!(
        second,
        [
            ["2026-03-01 00:00:00", "1", "1"],
            ["2026-03-01 00:00:10", "4", "15"]
        ],
        "{second:?}"
    );

    server.kill();
    server.workers = Some(1);
    server.restart().await;
    // Partition 0 reaches 00:00:46 (its late row dropped); partition 1 still holds the
    // watermark at 00:00:31 until it reaches 00:00:47.
    insert(
        &server,
        "(10, '2026-03-01 00:00:19'), (11, '2026-03-01 00:00:45'), (12, '2026-03-01 00:00:46')",
    )
    .await;
    assert_eq!(
        windows(&server).await,
        second,
        "partition 1 holds the watermark"
    );
    insert(&server, "(13, '2026-03-01 00:00:47')").await;
    let third = windows(&server).await;
    assert_eq!(
        third,
        [
            ["2026-03-01 00:00:00", "1", "1"],
            ["2026-03-01 00:00:10", "4", "15"],
            ["2026-03-01 00:00:30", "3", "24"]
        ],
        "{third:?}"
    );
}
