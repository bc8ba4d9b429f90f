//! The Postgres protocol as tokio-postgres speaks it: extended query with parameters,
//! binary results, Describe, prepared statements reused, errors with SQLSTATEs that leave the
//! session usable, session variables.

mod common;

use common::WeirServer;
use tokio_postgres::error::SqlState;

async fn setup() -> (tempfile::TempDir, WeirServer, tokio_postgres::Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), 50).await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE SOURCE clicks (user_id BIGINT, url TEXT, ts TIMESTAMP) FORMAT JSON;
             INSERT INTO clicks VALUES (1, '/a', '2026-01-01 00:00:01'), (2, '/b', '2026-01-01 00:00:02'), (1, '/c', '2026-01-01 00:00:03');
             CREATE MATERIALIZED VIEW per_user AS SELECT user_id, count(*) AS n, max(url) AS last_url FROM clicks GROUP BY user_id;",
        )
        .await
        .unwrap();
    (dir, server, client)
}

#[tokio::test]
async fn point_lookup_with_parameters_and_binary_results() {
    let (_dir, _server, client) = setup().await;
    let stmt = client
        .prepare("SELECT n, last_url FROM per_user WHERE user_id = $1")
        .await
        .unwrap();
    assert_eq!(stmt.params(), &[tokio_postgres::types::Type::INT8]);
    for _ in 0..6 {
        let rows = client.query(&stmt, &[&1i64]).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i64>("n"), 2);
        assert_eq!(rows[0].get::<_, &str>("last_url"), "/c");
    }
    let none = client.query(&stmt, &[&99i64]).await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn parameterized_insert_and_general_query() {
    let (_dir, _server, client) = setup().await;
    let n = client
        .execute(
            "INSERT INTO clicks VALUES ($1, $2, '2026-01-02 00:00:00')",
            &[&3i64, &"/x"],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    client.batch_execute("FLUSH").await.unwrap();
    let rows = client
        .query(
            "SELECT user_id, n FROM per_user WHERE n >= $1 ORDER BY user_id",
            &[&1i64],
        )
        .await
        .unwrap();
    let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, 2), (2, 1), (3, 1)]);
}

#[tokio::test]
async fn binary_values_of_each_type() {
    let (_dir, _server, client) = setup().await;
    let row = client
        .query_one(
            "SELECT CAST(1 AS SMALLINT) AS a, CAST(2 AS INT) AS b, CAST(3 AS BIGINT) AS c, CAST(1.5 AS DOUBLE PRECISION) AS d, \
             CAST(2.5 AS REAL) AS e, 'txt' AS f, true AS g",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i16>("a"), 1);
    assert_eq!(row.get::<_, i32>("b"), 2);
    assert_eq!(row.get::<_, i64>("c"), 3);
    assert_eq!(row.get::<_, f64>("d"), 1.5);
    assert_eq!(row.get::<_, f32>("e"), 2.5);
    assert_eq!(row.get::<_, &str>("f"), "txt");
    assert!(row.get::<_, bool>("g"));
}

#[tokio::test]
async fn errors_carry_sqlstate_and_the_session_goes_on() {
    let (_dir, _server, client) = setup().await;
    let cases = [
        ("SELECT * FROM nope", SqlState::UNDEFINED_TABLE),
        ("SELECT nocol FROM clicks", SqlState::UNDEFINED_COLUMN),
        ("SELEC 1", SqlState::SYNTAX_ERROR),
        (
            "INSERT INTO clicks VALUES ('x', '/a', '2026-01-01')",
            SqlState::INVALID_TEXT_REPRESENTATION,
        ),
        (
            "CREATE SOURCE clicks (a BIGINT) FORMAT JSON",
            SqlState::DUPLICATE_TABLE,
        ),
        (
            "INSERT INTO per_user VALUES (1, 1, 'x')",
            SqlState::WRONG_OBJECT_TYPE,
        ),
        (
            "CREATE MATERIALIZED VIEW w AS SELECT c.user_id FROM clicks c LEFT JOIN clicks d ON c.user_id = d.user_id",
            SqlState::FEATURE_NOT_SUPPORTED,
        ),
        (
            "DROP SOURCE clicks",
            SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
        ),
    ];
    for (sql, code) in cases {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(err.code(), Some(&code), "{sql}: {err:?}");
        // Also through the extended protocol.
        let err = client.query(sql, &[]).await.expect_err(sql);
        assert_eq!(err.code(), Some(&code), "{sql} (extended): {err:?}");
        let ok = client
            .query_one("SELECT n FROM per_user WHERE user_id = 2", &[])
            .await
            .unwrap();
        assert_eq!(ok.get::<_, i64>(0), 1);
    }
}

#[tokio::test]
async fn session_variables_and_version() {
    let (_dir, _server, client) = setup().await;
    client
        .batch_execute("SET application_name = 'weir-test'; SET extra_float_digits = 3")
        .await
        .unwrap();
    let row = client
        .query_one("SHOW application_name", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "weir-test");
    let row = client.query_one("SHOW TimeZone", &[]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "UTC");
    let row = client.query_one("SELECT version()", &[]).await.unwrap();
    assert!(row.get::<_, &str>(0).starts_with("PostgreSQL 15"));
    client
        .batch_execute("BEGIN; SELECT 1; COMMIT")
        .await
        .unwrap();
}

#[tokio::test]
async fn copy_from_stdin_text_and_csv() {
    use futures::SinkExt;
    let (_dir, _server, client) = setup().await;
    let sink = client.copy_in("COPY clicks FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"5\t/t1\t2026-01-03 00:00:00\n5\t/t2\t2026-01-03 00:00:01\n",
    ))
    .await
    .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    let sink = client
        .copy_in("COPY clicks FROM STDIN WITH (FORMAT csv)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"6,\"/c,1\",2026-01-03 00:00:02\n",
    ))
    .await
    .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1);
    // A bad value rejects the whole COPY; nothing of it is written.
    let sink = client.copy_in("COPY clicks FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"7\t/ok\t2026-01-03 00:00:00\nx\t/bad\t2026-01-03 00:00:00\n",
    ))
    .await
    .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_TEXT_REPRESENTATION));
    client.batch_execute("FLUSH").await.unwrap();
    let rows = client
        .query(
            "SELECT user_id, n FROM per_user WHERE user_id >= 5 ORDER BY user_id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(5, 2), (6, 1)]);
}

#[tokio::test]
async fn parameterized_update_and_delete() {
    let (_dir, _server, client) = setup().await;
    client
        .batch_execute("CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner TEXT, balance BIGINT)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO accounts VALUES ($1, $2, $3)")
        .await
        .unwrap();
    for (id, owner, balance) in [(1i64, "ann", 10i64), (2, "bob", 20), (3, "cy", 30)] {
        client
            .execute(&insert, &[&id, &owner, &balance])
            .await
            .unwrap();
    }
    let update = client
        .prepare("UPDATE accounts SET balance = $1 WHERE id = $2")
        .await
        .unwrap();
    assert_eq!(
        update.params(),
        &[
            tokio_postgres::types::Type::INT8,
            tokio_postgres::types::Type::INT8
        ]
    );
    assert_eq!(client.execute(&update, &[&99i64, &2i64]).await.unwrap(), 1);
    assert_eq!(
        client
            .execute("DELETE FROM accounts WHERE owner = $1", &[&"cy"])
            .await
            .unwrap(),
        1
    );
    let rows = client
        .query("SELECT id, balance FROM accounts ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, 10), (2, 99)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_two_views_sees_one_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), 5).await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE SOURCE ticks (v BIGINT) FORMAT JSON;
             CREATE MATERIALIZED VIEW tick_count AS SELECT count(*) AS n FROM ticks;
             CREATE MATERIALIZED VIEW tick_sum AS SELECT sum(v) AS s FROM ticks;",
        )
        .await
        .unwrap();
    let writer = server.connect().await;
    let writing = tokio::spawn(async move {
        for _ in 0..300 {
            writer
                .batch_execute("INSERT INTO ticks VALUES (1)")
                .await
                .unwrap();
        }
    });
    // Every tick is 1, so the two views agree exactly when read at the same epoch.
    for _ in 0..300 {
        let row = client
            .query_one(
                "SELECT (c.n - coalesce(s.s, 0))::bigint FROM tick_count c CROSS JOIN tick_sum s",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 0);
    }
    writing.await.unwrap();
}

/// `SELECT count(*) FROM clicks` as a number.
async fn clicks(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM clicks", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_transaction_block_writes_at_commit_and_rollback_undoes_it() {
    use futures::SinkExt;
    let (_dir, _server, mut client) = setup().await;
    assert_eq!(clicks(&client).await, 3);

    // ROLLBACK drops what the block inserted (parameterized, as drivers send it) and copied.
    let tx = client.transaction().await.unwrap();
    let n = tx
        .execute(
            "INSERT INTO clicks VALUES ($1, '/r', '2026-01-05 00:00:00')",
            &[&7i64],
        )
        .await
        .unwrap();
    assert_eq!(n, 1, "the row count comes when the INSERT runs");
    let sink = tx.copy_in("COPY clicks FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"7\t/r2\t2026-01-05 00:00:01\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1);
    tx.rollback().await.unwrap();
    assert_eq!(
        clicks(&client).await,
        3,
        "ROLLBACK undid the block's writes"
    );

    // COMMIT writes them all.
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(
        "INSERT INTO clicks VALUES (8, '/c1', '2026-01-05 00:00:00'); \
         INSERT INTO clicks VALUES (8, '/c2', '2026-01-05 00:00:01')",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(clicks(&client).await, 5);
    client.batch_execute("FLUSH").await.unwrap();
    let n: i64 = client
        .query_one("SELECT n FROM per_user WHERE user_id = 8", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    // What a block cannot undo is refused in it: UPDATE, DELETE, DDL (25001), and rows for a
    // second relation (0A000, so COMMIT stays one atomic append). The failed block rolls back.
    client
        .batch_execute("CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance INT)")
        .await
        .unwrap();
    for (sql, code) in [
        (
            "UPDATE accounts SET balance = 1",
            SqlState::ACTIVE_SQL_TRANSACTION,
        ),
        ("DELETE FROM accounts", SqlState::ACTIVE_SQL_TRANSACTION),
        (
            "CREATE SOURCE later (a INT) FORMAT JSON",
            SqlState::ACTIVE_SQL_TRANSACTION,
        ),
        ("DROP TABLE accounts", SqlState::ACTIVE_SQL_TRANSACTION),
        (
            "INSERT INTO accounts VALUES (1, 10)",
            SqlState::FEATURE_NOT_SUPPORTED,
        ),
    ] {
        client
            .batch_execute("BEGIN; INSERT INTO clicks VALUES (9, '/x', '2026-01-05 00:00:00')")
            .await
            .unwrap();
        let err = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(err.code(), Some(&code), "{sql}: {err:?}");
        let tag = client.simple_query("COMMIT").await.unwrap();
        assert!(
            matches!(
                &tag[0],
                tokio_postgres::SimpleQueryMessage::CommandComplete(_)
            ),
            "{tag:?}"
        );
        assert_eq!(
            clicks(&client).await,
            5,
            "{sql}: the failed block wrote nothing"
        );
    }
    let rows = client.query("SELECT id FROM accounts", &[]).await.unwrap();
    assert!(rows.is_empty());

    // A table's key check runs at COMMIT: a duplicate fails it, nothing is written, and the
    // block stays failed until ROLLBACK; the session goes on.
    client
        .batch_execute("INSERT INTO accounts VALUES (1, 10)")
        .await
        .unwrap();
    client
        .batch_execute(
            "BEGIN; INSERT INTO accounts VALUES (2, 20); INSERT INTO accounts VALUES (1, 11)",
        )
        .await
        .unwrap();
    let err = client.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err:?}");
    client.batch_execute("ROLLBACK").await.unwrap();
    let balances: Vec<(i64, i32)> = client
        .query("SELECT id, balance FROM accounts ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(balances, vec![(1, 10)]);
    client
        .batch_execute("BEGIN; INSERT INTO accounts VALUES (2, 20); COMMIT")
        .await
        .unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    // ROLLBACK TO SAVEPOINT cannot undo part of the pending rows, so it is refused.
    client
        .batch_execute(
            "BEGIN; SAVEPOINT a; INSERT INTO clicks VALUES (9, '/s', '2026-01-05 00:00:00')",
        )
        .await
        .unwrap();
    let err = client
        .batch_execute("ROLLBACK TO SAVEPOINT a")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED));
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(clicks(&client).await, 5);

    // A block without writes still opens and closes (clients send them).
    client
        .batch_execute("BEGIN; SELECT 1; COMMIT")
        .await
        .unwrap();
    client.batch_execute("BEGIN; ROLLBACK").await.unwrap();
}
