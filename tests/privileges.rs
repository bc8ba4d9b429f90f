//! Privileges on objects over the Postgres wire, end to end: owners, GRANT / REVOKE on tables,
//! sources, views, topics and the database, 42501 on every read and write a role may not make,
//! what the catalogs say about it (`has_table_privilege`, `information_schema.table_privileges`,
//! `pg_class.relacl`), roles that cannot be dropped while they hold something, and all of it
//! after a restart. (The Kafka face's checks are in tests/auth.rs.)

mod common;

use common::{WeirServer, first_column, sql_error};

async fn denied(client: &tokio_postgres::Client, sql: &str) -> String {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql}: not refused"),
        Err(e) => sql_error(&e),
    }
}

/// What `weir_sessions` shows `client` of the statements of `user`'s sessions.
async fn statements_of(client: &tokio_postgres::Client, user: &str) -> Vec<String> {
    let sql = format!("SELECT query FROM weir_sessions WHERE \"user\" = '{user}'");
    first_column(client, &sql).await
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_read_and_write_only_what_they_were_granted() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = WeirServer::start(&dir.path().join("data"), 50).await;
    let weir = server.connect().await;
    weir.batch_execute(
        "CREATE USER alice; CREATE USER bob; CREATE ROLE readers; GRANT readers TO bob;
         CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES (1, 'a'), (2, 'b');
         CREATE SOURCE clicks (user_id BIGINT) FORMAT JSON;
         CREATE MATERIALIZED VIEW per_id AS SELECT id, count(*) AS n FROM t GROUP BY id;
         FLUSH;",
    )
    .await
    .unwrap();
    let alice = server.connect_as("alice", None).await.unwrap();
    let bob = server.connect_as("bob", None).await.unwrap();

    // Nothing granted: every read and write is refused, naming the object, and the session
    // goes on.
    assert_eq!(
        denied(&alice, "SELECT * FROM t").await,
        "42501: permission denied for table t"
    );
    assert_eq!(
        denied(&alice, "SELECT n FROM per_id WHERE id = 1").await,
        "42501: permission denied for materialized view per_id"
    );
    assert_eq!(
        denied(&alice, "SELECT 1 WHERE EXISTS (SELECT 1 FROM t)").await,
        "42501: permission denied for table t"
    );
    assert_eq!(
        denied(&alice, "INSERT INTO t VALUES (3, 'c')").await,
        "42501: permission denied for table t"
    );
    assert_eq!(
        denied(&alice, "INSERT INTO clicks VALUES (1)").await,
        "42501: permission denied for source clicks"
    );
    assert_eq!(
        denied(&alice, "UPDATE t SET v = 'x'").await,
        "42501: permission denied for table t"
    );
    assert_eq!(
        denied(&alice, "DELETE FROM t WHERE id = 1").await,
        "42501: permission denied for table t"
    );
    assert_eq!(
        denied(&alice, "EXPLAIN SELECT * FROM t").await,
        "42501: permission denied for table t"
    );
    assert_eq!(
        denied(&alice, "CREATE TABLE mine (id BIGINT PRIMARY KEY)").await,
        "42501: permission denied for database weir"
    );
    assert_eq!(
        denied(&alice, "DROP TABLE t").await,
        "42501: must be owner of table t"
    );
    assert_eq!(
        denied(&alice, "GRANT SELECT ON t TO alice").await,
        "42501: must be owner of table t"
    );
    assert_eq!(
        denied(&alice, "DROP TOPIC clicks").await,
        "42501: must be owner of topic clicks"
    );
    // On its own connection: after a refused COPY FROM, tokio-postgres fails the next query
    // on the same connection with UnexpectedMessage (seen for any refused COPY, not only this
    // one; its CopyFail + Sync after the error gets a second ReadyForQuery, as Postgres sends).
    let e = server
        .connect_as("alice", None)
        .await
        .unwrap()
        .copy_in::<_, bytes::Bytes>("COPY t FROM STDIN")
        .await
        .err()
        .unwrap();
    assert_eq!(sql_error(&e), "42501: permission denied for table t");
    assert!(count(&alice, "SELECT count(*) FROM pg_class").await > 0);

    // SELECT to a role: its members read (point lookups too), and nothing more.
    weir.batch_execute("GRANT SELECT ON t, per_id TO readers")
        .await
        .unwrap();
    assert_eq!(count(&bob, "SELECT count(*) FROM t").await, 2);
    assert_eq!(count(&bob, "SELECT n FROM per_id WHERE id = 2").await, 1);
    assert_eq!(
        denied(&bob, "INSERT INTO t VALUES (3, 'c')").await,
        "42501: permission denied for table t"
    );
    assert_eq!(
        denied(&alice, "SELECT * FROM t").await,
        "42501: permission denied for table t"
    );
    // UPDATE alone updates every row; with a WHERE it also needs SELECT, as in Postgres.
    weir.batch_execute("GRANT UPDATE, DELETE ON t TO alice")
        .await
        .unwrap();
    alice.batch_execute("UPDATE t SET v = 'x'").await.unwrap();
    assert_eq!(
        denied(&alice, "DELETE FROM t WHERE id = 1").await,
        "42501: permission denied for table t"
    );
    weir.batch_execute("GRANT INSERT ON t TO PUBLIC")
        .await
        .unwrap();
    alice
        .batch_execute("INSERT INTO t VALUES (3, 'c')")
        .await
        .unwrap();
    bob.batch_execute("INSERT INTO t VALUES (4, 'd')")
        .await
        .unwrap();
    assert_eq!(
        count(&weir, "SELECT count(*) FROM t WHERE v = 'x'").await,
        2
    );

    // CREATE on the database: alice creates, owns and grants on her own objects.
    weir.batch_execute("GRANT CREATE ON DATABASE weir TO alice")
        .await
        .unwrap();
    assert_eq!(
        denied(
            &alice,
            "CREATE MATERIALIZED VIEW over_t AS SELECT count(*) AS n FROM t"
        )
        .await,
        "42501: permission denied for table t"
    );
    alice
        .batch_execute(
            "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT);
             INSERT INTO notes VALUES (1, 'mine');
             CREATE MATERIALIZED VIEW note_count AS SELECT count(*) AS n FROM notes;
             CREATE TOPIC alice_events;
             CREATE SOURCE alice_src (x BIGINT) FROM TOPIC alice_events FORMAT JSON;
             INSERT INTO alice_src VALUES (7);
             FLUSH;",
        )
        .await
        .unwrap();
    assert_eq!(count(&alice, "SELECT n FROM note_count").await, 1);
    assert_eq!(
        denied(&bob, "SELECT * FROM notes").await,
        "42501: permission denied for table notes"
    );
    // A superuser reads everything.
    assert_eq!(count(&weir, "SELECT count(*) FROM alice_src").await, 1);
    alice
        .batch_execute("GRANT SELECT ON MATERIALIZED VIEW note_count TO bob")
        .await
        .unwrap();
    // A view is read with its own privileges: bob reads note_count, not notes.
    assert_eq!(count(&bob, "SELECT n FROM note_count").await, 1);
    // A source over a topic needs SELECT on the topic.
    assert_eq!(
        denied(
            &alice,
            "CREATE SOURCE spy (user_id BIGINT) FROM TOPIC clicks FORMAT JSON"
        )
        .await,
        "42501: permission denied for topic clicks"
    );
    weir.batch_execute("GRANT SELECT ON TOPIC clicks TO alice")
        .await
        .unwrap();
    alice
        .batch_execute("CREATE SOURCE reader (user_id BIGINT) FROM TOPIC clicks FORMAT JSON")
        .await
        .unwrap();
    // ... and appending through it takes INSERT on the topic for the source's owner.
    assert_eq!(
        denied(&alice, "INSERT INTO reader VALUES (1)").await,
        "42501: permission denied for topic clicks"
    );
    weir.batch_execute("GRANT INSERT ON TOPIC clicks TO alice")
        .await
        .unwrap();
    alice
        .batch_execute("INSERT INTO reader VALUES (1)")
        .await
        .unwrap();

    // What the catalogs say.
    let has = |user: &str, table: &str, privilege: &str| {
        format!("SELECT has_table_privilege('{user}', '{table}', '{privilege}')")
    };
    for (user, table, privilege, expected) in [
        ("bob", "t", "SELECT", true),
        ("bob", "t", "UPDATE", false),
        ("bob", "t", "INSERT", true),
        ("alice", "notes", "DELETE", true),
        ("bob", "notes", "SELECT", false),
        ("bob", "note_count", "SELECT", true),
        ("bob", "pg_class", "SELECT", true),
        ("alice", "t", "select, delete", true),
    ] {
        let got: bool = weir
            .query_one(&has(user, table, privilege), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(got, expected, "{user} {privilege} on {table}");
    }
    let own: bool = bob
        .query_one("SELECT has_table_privilege('t', 'SELECT')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(own);
    let relacl: String = weir
        .query_one(
            "SELECT array_to_string(relacl, ',') FROM pg_class WHERE relname = 't'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        relacl,
        "weir=arwd/weir,alice=wd/weir,=a/weir,readers=r/weir"
    );
    let owner: String = weir
        .query_one(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'notes'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "alice");
    let rows = bob
        .query(
            "SELECT grantor, grantee, table_name, privilege_type, is_grantable \
             FROM information_schema.table_privileges ORDER BY table_name, grantee, privilege_type",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            (0..5)
                .map(|i| r.get::<_, String>(i))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        got,
        [
            "alice bob note_count SELECT NO",
            "weir readers per_id SELECT NO",
            "weir PUBLIC t INSERT NO",
            "weir readers t SELECT NO",
        ]
    );

    // Another role's statements are not shown, as in pg_stat_activity; a superuser sees them.
    let seen_by_bob = statements_of(&bob, "alice").await;
    assert!(!seen_by_bob.is_empty());
    assert!(
        seen_by_bob.iter().all(|q| q == "<insufficient privilege>"),
        "{seen_by_bob:?}"
    );
    let seen_by_weir = statements_of(&weir, "alice").await;
    assert!(
        seen_by_weir
            .iter()
            .any(|q| q == "INSERT INTO reader VALUES (1)"),
        "{seen_by_weir:?}"
    );

    // REVOKE takes it away again.
    weir.batch_execute("REVOKE SELECT ON t FROM readers")
        .await
        .unwrap();
    assert_eq!(
        denied(&bob, "SELECT * FROM t").await,
        "42501: permission denied for table t"
    );

    // A role that owns objects or holds privileges is not dropped; a rename keeps them.
    let e = denied(&weir, "DROP ROLE alice").await;
    assert_eq!(
        e,
        "2BP01: role \"alice\" cannot be dropped because some objects depend on it"
    );
    drop((alice, bob));
    weir.batch_execute("ALTER ROLE alice RENAME TO alicia")
        .await
        .unwrap();

    // All of it survives a restart.
    drop(weir);
    server.restart().await;
    let weir = server.connect().await;
    let alicia = server.connect_as("alicia", None).await.unwrap();
    let bob = server.connect_as("bob", None).await.unwrap();
    assert_eq!(count(&alicia, "SELECT count(*) FROM notes").await, 1);
    assert_eq!(count(&bob, "SELECT n FROM note_count").await, 1);
    assert_eq!(
        denied(&bob, "SELECT * FROM t").await,
        "42501: permission denied for table t"
    );
    assert_eq!(
        denied(&bob, "DROP MATERIALIZED VIEW note_count").await,
        "42501: must be owner of materialized view note_count"
    );
    alicia
        .batch_execute("DROP MATERIALIZED VIEW note_count; DROP TABLE notes")
        .await
        .unwrap();
    // A new object of a dropped one's name starts with no grants.
    weir.batch_execute("CREATE TABLE notes (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    assert_eq!(
        denied(&alicia, "SELECT * FROM notes").await,
        "42501: permission denied for table notes"
    );

    // Owners change with ALTER ... OWNER TO and REASSIGN OWNED, as in Postgres.
    weir.batch_execute(
        "CREATE TABLE handed (id BIGINT PRIMARY KEY); ALTER TABLE handed OWNER TO alicia",
    )
    .await
    .unwrap();
    assert_eq!(count(&alicia, "SELECT count(*) FROM handed").await, 0);
    assert_eq!(
        denied(&alicia, "ALTER TABLE handed OWNER TO bob").await,
        "42501: must be member of role \"bob\""
    );
    assert_eq!(
        denied(&bob, "ALTER TABLE handed OWNER TO bob").await,
        "42501: must be owner of table handed"
    );
    weir.batch_execute("REASSIGN OWNED BY alicia TO weir")
        .await
        .unwrap();
    let owners = first_column(
        &weir,
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname IN ('handed', 'alice_src')",
    )
    .await;
    assert_eq!(owners, ["weir", "weir"]);
    // Owning nothing and granted nothing, the role can go.
    drop(alicia);
    weir.batch_execute(
        "REVOKE ALL ON t FROM alicia; REVOKE ALL ON TOPIC clicks FROM alicia;
         REVOKE CREATE ON DATABASE weir FROM alicia; DROP ROLE alicia",
    )
    .await
    .unwrap();
}
