//! EXPLAIN CREATE MATERIALIZED VIEW output, as a reviewed snapshot (`cargo insta review`).

mod common;

use common::WeirServer;

async fn explain(client: &tokio_postgres::Client, query: &str) -> String {
    let rows = client
        .query(
            &format!("EXPLAIN CREATE MATERIALIZED VIEW v AS {query}"),
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn explain_prints_the_dataflow() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), 50).await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE SOURCE clicks (user_id BIGINT, url TEXT, ts TIMESTAMP) FORMAT JSON;
             CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT, country TEXT);",
        )
        .await
        .unwrap();
    insta::assert_snapshot!(
        "aggregate",
        explain(
            &client,
            "SELECT user_id, count(*) AS n, max(url) AS last_url FROM clicks GROUP BY user_id"
        )
        .await
    );
    insta::assert_snapshot!(
        "filter_project",
        explain(
            &client,
            "SELECT url, user_id * 2 AS twice FROM clicks WHERE url <> '/home'"
        )
        .await
    );
    insta::assert_snapshot!(
        "join_aggregate",
        explain(
            &client,
            "SELECT u.country, count(*) AS clicks FROM clicks c JOIN users u ON c.user_id = u.id GROUP BY u.country HAVING count(*) > 1"
        )
        .await
    );
    insta::assert_snapshot!(
        "table_key",
        explain(&client, "SELECT id, name FROM users WHERE country = 'NZ'").await
    );
}
