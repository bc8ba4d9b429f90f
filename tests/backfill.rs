//! Backfills that do not stall the rest: while a new view catches up from a large history,
//! another view keeps committing epochs; a CREATE canceled (statement_timeout, or a cancel
//! request as psql's Ctrl-C sends) leaves no view and no job behind; a
//! crash in the middle of a backfill leaves nothing that stops the view from being created
//! again. Each finished view is checked against a batch recompute of its query.

mod common;

use std::time::{Duration, Instant};

use common::{WeirServer, rows};

/// Bids in the history the backfills read: enough that a backfill takes seconds.
const EVENTS: u64 = 600_000;
const WAIT_MAX: Duration = Duration::from_secs(300);
const BARRIER_INTERVAL_MS: u64 = 20;
const BIG_VIEW: &str =
    "SELECT auction, count(*) AS bids, max(price) AS top FROM bid GROUP BY auction";

/// A server over a fresh directory with the bid history, a table and a view over it.
async fn setup() -> (tempfile::TempDir, WeirServer, tokio_postgres::Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), BARRIER_INTERVAL_MS).await;
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE SOURCE bid WITH (connector = 'nexmark', kind = 'bid', events = {EVENTS}, \
             events_per_second = 0); \
             CREATE TABLE t (a BIGINT PRIMARY KEY); \
             CREATE MATERIALIZED VIEW total AS SELECT count(*) AS n, sum(a) AS s FROM t;"
        ))
        .await
        .unwrap();
    (dir, server, client)
}

type Running = tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>;

/// Starts `CREATE MATERIALIZED VIEW name AS BIG_VIEW` on a connection of its own; returns it
/// with the token that cancels it.
async fn create_big(
    server: &WeirServer,
    name: &str,
    setting: &str,
) -> (Running, tokio_postgres::CancelToken) {
    let client = server.connect().await;
    let token = client.cancel_token();
    let sql = format!("{setting} CREATE MATERIALIZED VIEW {name} AS {BIG_VIEW}");
    (
        tokio::spawn(async move { client.batch_execute(&sql).await }),
        token,
    )
}

async fn jobs(client: &tokio_postgres::Client) -> Vec<Vec<String>> {
    rows(
        client,
        "SELECT view, records_read <= records_total FROM weir_jobs",
    )
    .await
    .unwrap()
}

/// Waits until `view`'s backfill shows in weir_jobs.
async fn wait_for_job(client: &tokio_postgres::Client, view: &str) {
    let deadline = Instant::now() + WAIT_MAX;
    while !jobs(client).await.iter().any(|j| j[0] == view) {
        assert!(Instant::now() < deadline, "no weir_jobs row for {view}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The relation does not exist (42P01).
async fn assert_missing(client: &tokio_postgres::Client, name: &str) {
    match client
        .simple_query(&format!("SELECT 1 FROM {name} LIMIT 1"))
        .await
    {
        Ok(_) => panic!("{name} exists"),
        Err(e) => assert_eq!(e.code().map(|c| c.code()), Some("42P01"), "{e}"),
    }
}

/// The view equals the batch recompute of its query.
async fn assert_recomputed(client: &tokio_postgres::Client, view: &str) {
    let got = rows(client, &format!("SELECT auction, bids, top FROM {view}"))
        .await
        .unwrap();
    let want = rows(client, BIG_VIEW).await.unwrap();
    assert!(!want.is_empty());
    assert!(got == want, "{view} differs from a batch recompute");
}

#[tokio::test]
async fn other_views_commit_epochs_while_a_view_backfills() {
    let (_dir, server, client) = setup().await;
    let (create, _) = create_big(&server, "big", "").await;
    wait_for_job(&client, "big").await;
    for a in 1..=3 {
        client
            .batch_execute(&format!("INSERT INTO t VALUES ({a}); FLUSH;"))
            .await
            .unwrap();
        let total = rows(&client, "SELECT n, s FROM total").await.unwrap();
        assert_eq!(
            total,
            vec![vec![a.to_string(), (a * (a + 1) / 2).to_string()]]
        );
    }
    let running = jobs(&client).await;
    assert!(
        running == vec![vec!["big".to_string(), "t".to_string()]],
        "the backfill should still run after three epochs of the other view: {running:?}"
    );
    create.await.unwrap().unwrap();
    assert!(jobs(&client).await.is_empty());
    assert_recomputed(&client, "big").await;
}

#[tokio::test]
async fn a_create_canceled_by_statement_timeout_leaves_no_view_behind() {
    let (_dir, server, client) = setup().await;
    let (create, _) = create_big(&server, "big", "SET statement_timeout = '300ms';").await;
    assert_canceled_without_trace(&server, &client, create).await;
}

#[tokio::test]
async fn a_create_canceled_by_a_cancel_request_leaves_no_view_behind() {
    let (_dir, server, client) = setup().await;
    let (create, token) = create_big(&server, "big", "").await;
    wait_for_job(&client, "big").await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    assert_canceled_without_trace(&server, &client, create).await;
}

/// The CREATE failed with 57014, its backfill stops, the view does not exist, and creating it
/// again gives the batch recompute.
async fn assert_canceled_without_trace(
    server: &WeirServer,
    client: &tokio_postgres::Client,
    create: Running,
) {
    let err = create.await.unwrap().unwrap_err();
    assert_eq!(
        err.code().map(|c| c.code()),
        Some("57014"),
        "expected a cancel: {err}"
    );
    let deadline = Instant::now() + WAIT_MAX;
    while !jobs(client).await.is_empty() {
        assert!(Instant::now() < deadline, "the canceled backfill goes on");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_missing(client, "big").await;
    create_big(server, "big", "")
        .await
        .0
        .await
        .unwrap()
        .unwrap();
    assert_recomputed(client, "big").await;
}

#[tokio::test]
async fn a_crash_during_a_backfill_leaves_nothing_in_the_way() {
    let (_dir, mut server, client) = setup().await;
    let (create, _) = create_big(&server, "big", "").await;
    wait_for_job(&client, "big").await;
    server.restart().await;
    assert!(create.await.unwrap().is_err());
    let client = server.connect().await;
    assert!(jobs(&client).await.is_empty());
    assert_missing(&client, "big").await;
    create_big(&server, "big", "")
        .await
        .0
        .await
        .unwrap()
        .unwrap();
    assert_recomputed(&client, "big").await;
}

#[tokio::test]
async fn a_long_create_sends_its_progress_as_notices() {
    let (_dir, server, client) = setup().await;
    let conn_str = format!("host=127.0.0.1 port={} user=weir dbname=weir", server.port);
    let (creator, mut connection) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (notices_tx, mut notices) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = futures::StreamExt::next(&mut messages).await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                let _ = notices_tx.send(notice.message().to_string());
            }
        }
    });
    creator
        .batch_execute(&format!(
            "SET weir.backfill_notice_interval = '20ms'; CREATE MATERIALIZED VIEW big AS {BIG_VIEW}"
        ))
        .await
        .unwrap();
    let mut progress = Vec::new();
    while let Ok(notice) = notices.try_recv() {
        progress.push(notice);
    }
    assert!(
        !progress.is_empty(),
        "no progress notice during the backfill"
    );
    for notice in &progress {
        assert!(
            notice.starts_with("backfilling materialized view \"big\": ")
                && notice.contains(" records read ("),
            "{notice}"
        );
    }
    assert_recomputed(&client, "big").await;
}
