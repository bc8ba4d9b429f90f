//! Postgres protocol features over real clients: suspended portals (Execute with a row limit),
//! cursors (DECLARE / FETCH / CLOSE), COPY TO STDOUT, cancel requests, statement_timeout,
//! start-up ParameterStatus, binary values of every type, pipeline error recovery,
//! malformed messages sent over a raw socket, and a listener out of file descriptors.

mod common;

use common::WeirServer;
use tokio_postgres::error::SqlState;

async fn setup() -> (tempfile::TempDir, WeirServer, tokio_postgres::Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), 50).await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, item TEXT, qty INT);
             INSERT INTO orders VALUES (1, 'apple', 3), (2, 'pear', 1), (3, 'fig', 7), (4, 'kiwi', 2), (5, 'plum', 5);",
        )
        .await
        .unwrap();
    (dir, server, client)
}

#[tokio::test]
async fn execute_with_max_rows_suspends_the_portal() {
    let (_dir, _server, mut client) = setup().await;
    let tx = client.transaction().await.unwrap();
    let stmt = tx
        .prepare("SELECT id, item FROM orders ORDER BY id")
        .await
        .unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let mut chunks = Vec::new();
    loop {
        let rows = tx.query_portal(&portal, 2).await.unwrap();
        if rows.is_empty() {
            break;
        }
        chunks.push(rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>());
    }
    assert_eq!(chunks, vec![vec![1, 2], vec![3, 4], vec![5]]);
    tx.commit().await.unwrap();
}

/// The test virtualenv's Python (./test.sh installs psycopg 3 and psycopg2 into it).
fn python() -> String {
    std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir-test-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// Runs a Python script with `port` as its argument and returns what it printed.
fn run_python(script: &str, port: u16) -> String {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python ({e}); run ./test.sh, which installs psycopg")
        });
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn cursors_declare_fetch_close() {
    let (_dir, _server, client) = setup().await;
    client
        .batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT id FROM orders ORDER BY id")
        .await
        .unwrap();
    let ids = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<i64>>();
    assert_eq!(
        ids(client.query("FETCH 2 FROM c", &[]).await.unwrap()),
        vec![1, 2]
    );
    assert_eq!(
        ids(client.query("FETCH NEXT c", &[]).await.unwrap()),
        vec![3]
    );
    assert_eq!(
        ids(client.query("FETCH FORWARD ALL IN c", &[]).await.unwrap()),
        vec![4, 5]
    );
    assert!(client.query("FETCH c", &[]).await.unwrap().is_empty());
    // The simple protocol too, with the command tag Postgres gives.
    client
        .batch_execute("DECLARE d NO SCROLL CURSOR WITH HOLD FOR SELECT item FROM orders WHERE qty > 2 ORDER BY item")
        .await
        .unwrap();
    let messages = client.simple_query("FETCH ALL FROM d").await.unwrap();
    let items: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(items, vec!["apple", "fig", "plum"]);
    assert!(matches!(
        messages.last(),
        Some(tokio_postgres::SimpleQueryMessage::CommandComplete(3))
    ));
    // COMMIT ends the block: the cursor without HOLD goes, the one WITH HOLD stays (it was
    // read to its end, so a FETCH now returns no rows); CLOSE ALL ends it.
    client.batch_execute("COMMIT").await.unwrap();
    let err = client.batch_execute("FETCH 1 FROM c").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_CURSOR_NAME));
    let after = client.simple_query("FETCH 1 FROM d").await.unwrap();
    assert!(matches!(
        after.last(),
        Some(tokio_postgres::SimpleQueryMessage::CommandComplete(0))
    ));
    client.batch_execute("CLOSE ALL").await.unwrap();
    for sql in ["FETCH 1 FROM c", "FETCH 1 FROM d", "CLOSE nope"] {
        let err = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::INVALID_CURSOR_NAME), "{sql}");
    }
    let err = client.batch_execute("FETCH 1 FROM x").await.unwrap_err();
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "cursor \"x\" does not exist"
    );
    // Without HOLD, outside a block: refused as in Postgres.
    let err = client
        .batch_execute("DECLARE e CURSOR FOR SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::NO_ACTIVE_SQL_TRANSACTION));
    assert_eq!(client.query("SELECT 1", &[]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn psycopg_server_side_cursor() {
    let (_dir, server, _client) = setup().await;
    let out = run_python(
        r#"
import sys, psycopg
with psycopg.connect(f"host=127.0.0.1 port={sys.argv[1]} user=weir dbname=weir") as conn:
    for binary in (False, True):
        with conn.cursor(name="ssc", binary=binary) as cur:
            cur.execute("select id, item from orders where qty > %s order by id", (1,))
            first = cur.fetchone()
            two = cur.fetchmany(2)
            rest = cur.fetchall()
            print(first, two, rest, [d.name for d in cur.description])
    conn.commit()
    try:
        conn.execute("FETCH 1 FROM nope")
    except psycopg.errors.InvalidCursorName as e:
        print("34000", e.sqlstate)
    conn.rollback()
"#,
        server.port,
    );
    let lines: Vec<&str> = out.lines().collect();
    let expected = "(1, 'apple') [(3, 'fig'), (4, 'kiwi')] [(5, 'plum')] ['id', 'item']";
    assert_eq!(lines, vec![expected, expected, "34000 34000"]);
}

#[tokio::test]
async fn copy_to_stdout_text_and_csv() {
    use futures::TryStreamExt;
    let (dir, server, client) = setup().await;
    client
        .batch_execute(
            "INSERT INTO orders VALUES (6, E'tab\\there\\nnew \\\\ line', NULL), (7, 'a,\"b\"', 0)",
        )
        .await
        .unwrap();
    let copy = |sql: &'static str| {
        let client = &client;
        async move {
            let stream = client.copy_out(sql).await.unwrap();
            let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
            String::from_utf8(chunks.concat()).unwrap()
        }
    };
    assert_eq!(
        copy("COPY (SELECT id, item, qty FROM orders WHERE id >= 5 ORDER BY id) TO STDOUT").await,
        "5\tplum\t5\n6\ttab\\there\\nnew \\\\ line\t\\N\n7\ta,\"b\"\t0\n"
    );
    assert_eq!(
        copy("COPY (SELECT id, item, qty FROM orders WHERE id >= 6 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER true)").await,
        "id,item,qty\n6,\"tab\there\nnew \\ line\",\n7,\"a,\"\"b\"\"\",0\n"
    );
    let all = copy("COPY orders TO STDOUT CSV HEADER").await;
    // A header, seven rows, one of them with a quoted line break inside.
    assert_eq!(all.lines().count(), 9, "{all}");
    assert!(all.starts_with("id,item,qty\n"), "{all}");
    // psql's \copy to a client-side file, through COPY ... TO STDOUT.
    let file = dir.path().join("out.csv");
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-U",
            "weir",
            "-d",
            "weir",
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
        ])
        .arg(format!(
            "\\copy (SELECT id, item FROM orders WHERE id <= 3 ORDER BY id) to '{}' csv header",
            file.display()
        ))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "COPY 3");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "id,item\n1,apple\n2,pear\n3,fig\n"
    );
    let err = client
        .batch_execute("COPY orders TO '/tmp/x'")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED));
}

/// A query that keeps the server busy for a long time: 10^11 rows generated and summed.
const SLOW_QUERY: &str = "SELECT sum(value) FROM generate_series(1, 100000000000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_stops_a_running_query() {
    let (_dir, _server, client) = setup().await;
    let token = client.cancel_token();
    let client = std::sync::Arc::new(client);
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.simple_query(SLOW_QUERY).await }
    });
    // Cancel until the query has failed: a cancel that arrives before the query starts finds
    // nothing to cancel, like in Postgres.
    let err = loop {
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
        if running.is_finished() {
            break running.await.unwrap().unwrap_err();
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "canceling statement due to user request"
    );
    let row = client
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 5);
}

#[tokio::test]
async fn statement_timeout_cancels_slow_statements() {
    let (_dir, _server, client) = setup().await;
    for (set, shown) in [("50", "50ms"), ("'50ms'", "50ms"), ("'1s'", "1s")] {
        client
            .batch_execute(&format!("SET statement_timeout = {set}"))
            .await
            .unwrap();
        let row = client
            .query_one("SHOW statement_timeout", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), shown);
    }
    client
        .batch_execute("SET statement_timeout = 50")
        .await
        .unwrap();
    for extended in [false, true] {
        let err = if extended {
            client.query(SLOW_QUERY, &[]).await.unwrap_err()
        } else {
            client.simple_query(SLOW_QUERY).await.unwrap_err()
        };
        assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
        assert_eq!(
            err.as_db_error().unwrap().message(),
            "canceling statement due to statement timeout"
        );
    }
    // Quick statements run; 0 turns the timeout off.
    assert_eq!(
        client
            .query("SELECT id FROM orders", &[])
            .await
            .unwrap()
            .len(),
        5
    );
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();
    let row = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "0");
    let err = client
        .batch_execute("SET statement_timeout = 'soon'")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));
}

#[tokio::test]
async fn startup_reports_parameter_status() {
    let (_dir, server, _client) = setup().await;
    let out = run_python(
        r#"
import sys, psycopg
conn = psycopg.connect(f"host=127.0.0.1 port={sys.argv[1]} user=weir dbname=weir application_name=pgtest")
for name in ["server_version", "server_encoding", "client_encoding", "DateStyle", "TimeZone",
             "integer_datetimes", "standard_conforming_strings", "application_name"]:
    print(f"{name}={conn.info.parameter_status(name)}")
conn.execute("SET application_name = 'renamed'")
print(f"after_set={conn.info.parameter_status('application_name')}")
"#,
        server.port,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "server_version=15.0 (Weir 0.1.0)",
            "server_encoding=UTF8",
            "client_encoding=UTF8",
            "DateStyle=ISO, MDY",
            "TimeZone=UTC",
            "integer_datetimes=on",
            "standard_conforming_strings=on",
            "application_name=pgtest",
            "after_set=renamed",
        ]
    );
}

#[tokio::test]
async fn pipeline_error_skips_to_sync_and_the_session_goes_on() {
    let (_dir, server, client) = setup().await;
    // tokio-postgres pipelines futures polled together: the failing one errs, the others run.
    let (a, b, c) = tokio::join!(
        client.query_one("SELECT count(*) FROM orders", &[]),
        client.query_one("SELECT * FROM missing_table", &[]),
        client.query_one("SELECT max(id) FROM orders", &[]),
    );
    assert_eq!(a.unwrap().get::<_, i64>(0), 5);
    assert_eq!(b.unwrap_err().code(), Some(&SqlState::UNDEFINED_TABLE));
    assert_eq!(c.unwrap().get::<_, i64>(0), 5);
    // psycopg 3 pipeline mode sends everything before one Sync: after the error the rest of
    // the pipeline is skipped, and the connection works after it. psycopg may raise the error
    // while queueing the third query (when the error already arrived) or at the pipeline's
    // end; either way the third query must not have run.
    let out = run_python(
        r#"
import sys, psycopg
with psycopg.connect(f"host=127.0.0.1 port={sys.argv[1]} user=weir dbname=weir", autocommit=True) as conn:
    c3 = None
    try:
        with conn.pipeline():
            c1 = conn.execute("select count(*) from orders")
            conn.execute("select * from missing_table")
            c3 = conn.execute("select 3")
    except psycopg.errors.UndefinedTable:
        print("undefined_table")
    print(c1.fetchone()[0])
    try:
        if c3 is None:
            raise psycopg.errors.PipelineAborted("raised before the third query was queued")
        c3.fetchone()
    except psycopg.Error as e:
        print("skipped")
    print(conn.execute("select max(qty) from orders").fetchone()[0])
"#,
        server.port,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["undefined_table", "5", "skipped", "7"]
    );
}

/// Any value's raw binary bytes, to check encodings tokio-postgres has no Rust type for.
#[derive(Debug, PartialEq)]
struct Raw(Vec<u8>);

impl<'a> tokio_postgres::types::FromSql<'a> for Raw {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
}

#[tokio::test]
async fn binary_results_and_parameters_of_every_type() {
    use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
    use rust_decimal::Decimal;
    use tokio_postgres::types::Type;
    let (_dir, server, client) = setup().await;
    client
        .batch_execute(
            "CREATE TABLE every (k BIGINT PRIMARY KEY, i2 SMALLINT, i4 INT, f4 REAL, f8 DOUBLE PRECISION, \
             n NUMERIC(12, 3), big NUMERIC, b BOOLEAN, t TEXT, v VARCHAR, by BYTEA, d DATE, tm TIME, ts TIMESTAMP, tz TIMESTAMPTZ)",
        )
        .await
        .unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
    let time = NaiveTime::from_hms_micro_opt(3, 4, 5, 500_000).unwrap();
    let ts = date.and_time(time);
    let tz = Utc.from_utc_datetime(&ts);
    let n: Decimal = "-1234.567".parse().unwrap();
    let big: Decimal = "98765432109876.5".parse().unwrap();
    // tokio-postgres sends every parameter in binary.
    client
        .execute(
            "INSERT INTO every VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            &[&1i64, &-2i16, &40000i32, &1.5f32, &-2.25f64, &n, &big, &true, &"tëxt", &"v", &vec![0u8, 1, 255], &date, &time, &ts, &tz],
        )
        .await
        .unwrap();
    let row = client
        .query_one("SELECT * FROM every WHERE k = $1", &[&1i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i16>("i2"), -2);
    assert_eq!(row.get::<_, i32>("i4"), 40000);
    assert_eq!(row.get::<_, f32>("f4"), 1.5);
    assert_eq!(row.get::<_, f64>("f8"), -2.25);
    assert_eq!(row.get::<_, Decimal>("n"), n);
    assert_eq!(row.get::<_, Decimal>("big").normalize(), big);
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, &str>("t"), "tëxt");
    assert_eq!(row.get::<_, &str>("v"), "v");
    assert_eq!(row.get::<_, Vec<u8>>("by"), vec![0, 1, 255]);
    assert_eq!(row.get::<_, NaiveDate>("d"), date);
    assert_eq!(row.get::<_, NaiveTime>("tm"), time);
    assert_eq!(row.get::<_, chrono::NaiveDateTime>("ts"), ts);
    assert_eq!(row.get::<_, chrono::DateTime<Utc>>("tz"), tz);

    // Intervals and arrays (Arrow lists), and array parameters.
    let stmt = client
        .prepare_typed(
            "SELECT INTERVAL '1 month 2 days 3 hours 500 milliseconds' AS iv, make_array(1, 2, 3) AS ints, \
             make_array('a', NULL, 'c d') AS texts, make_array(1.5, 2.5) AS nums, $1::BIGINT[] AS param",
            &[Type::INT8_ARRAY],
        )
        .await
        .unwrap();
    let row = client
        .query_one(&stmt, &[&vec![Some(7i64), None]])
        .await
        .unwrap();
    assert_eq!(row.columns()[0].type_(), &Type::INTERVAL);
    let mut interval = (10_800_500_000i64).to_be_bytes().to_vec();
    interval.extend(2i32.to_be_bytes());
    interval.extend(1i32.to_be_bytes());
    assert_eq!(row.get::<_, Raw>("iv"), Raw(interval));
    assert_eq!(row.get::<_, Vec<i64>>("ints"), vec![1, 2, 3]);
    assert_eq!(
        row.get::<_, Vec<Option<String>>>("texts"),
        vec![Some("a".into()), None, Some("c d".into())]
    );
    assert_eq!(
        row.get::<_, Vec<Decimal>>("nums"),
        vec!["1.5".parse::<Decimal>().unwrap(), "2.5".parse().unwrap()]
    );
    assert_eq!(row.get::<_, Vec<Option<i64>>>("param"), vec![Some(7), None]);

    // psycopg 3 binary cursors read the same values, and text results agree.
    let out = run_python(
        r#"
import sys, psycopg
with psycopg.connect(f"host=127.0.0.1 port={sys.argv[1]} user=weir dbname=weir") as conn:
    q = "SELECT i2, i4, f4, f8, n, b, t, by, d, tm, ts, tz, INTERVAL '1 day 2 hours' AS iv, make_array(1, 2) AS arr FROM every"
    for binary in (True, False):
        row = conn.cursor(binary=binary).execute(q).fetchone()
        print(repr(row))
"#,
        server.port,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], lines[1], "binary and text results differ");
    assert_eq!(
        lines[0],
        "(-2, 40000, 1.5, -2.25, Decimal('-1234.567'), True, 'tëxt', b'\\x00\\x01\\xff', \
         datetime.date(2026, 1, 2), datetime.time(3, 4, 5, 500000), \
         datetime.datetime(2026, 1, 2, 3, 4, 5, 500000), \
         datetime.datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=datetime.timezone.utc), \
         datetime.timedelta(days=1, seconds=7200), [1, 2])"
    );
}

/// json, jsonb and uuid columns are stored as text but keep their Postgres types: clients see
/// them described as such, read them in binary, and the catalog names them.
#[tokio::test]
async fn json_jsonb_and_uuid_keep_their_types() {
    use tokio_postgres::types::Type;
    let (_dir, server, client) = setup().await;
    client
        .batch_execute(
            "CREATE TABLE docs (id BIGINT PRIMARY KEY, j JSON, jb JSONB, u UUID);
             INSERT INTO docs VALUES (1, '{\"a\": [1, 2]}', '{\"b\": true}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
             CREATE MATERIALIZED VIEW docs_by_u AS SELECT u, jb FROM docs;
             FLUSH;",
        )
        .await
        .unwrap();
    let stmt = client.prepare("SELECT j, jb, u FROM docs").await.unwrap();
    let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(types, vec![Type::JSON, Type::JSONB, Type::UUID]);
    let view = client.prepare("SELECT u, jb FROM docs_by_u").await.unwrap();
    let types: Vec<Type> = view.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(
        types,
        vec![Type::UUID, Type::JSONB],
        "a view keeps the types"
    );

    let catalog = common::rows(
        &client,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = 'docs'::regclass AND attnum > 1 ORDER BY attnum",
    )
    .await
    .unwrap();
    assert_eq!(catalog, vec![vec!["json"], vec!["jsonb"], vec!["uuid"]]);

    // psycopg 3 decodes each by its type, in binary and in text alike.
    let out = run_python(
        r#"
import sys, psycopg
with psycopg.connect(f"host=127.0.0.1 port={sys.argv[1]} user=weir dbname=weir") as conn:
    for binary in (True, False):
        print(repr(conn.cursor(binary=binary).execute("SELECT j, jb, u FROM docs").fetchone()))
"#,
        server.port,
    );
    let expected = "({'a': [1, 2]}, {'b': True}, UUID('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'))";
    assert_eq!(out.lines().collect::<Vec<_>>(), vec![expected, expected]);
}

/// A raw Postgres connection, past start-up: for messages no driver sends.
struct RawSession(std::net::TcpStream);

/// What came back: each message's type, and for an ErrorResponse its severity, SQLSTATE and
/// message; "EOF" when the server closed the connection.
type Replies = Vec<String>;

impl RawSession {
    fn open(port: u16) -> RawSession {
        let socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut body = 196608i32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0weir\0database\0weir\0\0");
        let mut session = RawSession(socket);
        let mut packet = (body.len() as i32 + 4).to_be_bytes().to_vec();
        packet.extend(body);
        session.send(&packet);
        assert_eq!(session.replies().last().map(String::as_str), Some("Z"));
        session
    }

    fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.0.write_all(bytes).unwrap();
    }

    /// Reads up to a ReadyForQuery or the end of the connection.
    fn replies(&mut self) -> Replies {
        use std::io::Read;
        let mut out = Vec::new();
        loop {
            let mut header = [0u8; 5];
            if self.0.read_exact(&mut header).is_err() {
                out.push("EOF".to_string());
                return out;
            }
            let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let mut body = vec![0u8; len as usize - 4];
            self.0.read_exact(&mut body).unwrap();
            match header[0] {
                b'E' => {
                    let field = |tag: u8| {
                        body.split(|&b| b == 0)
                            .find(|f| f.first() == Some(&tag))
                            .map(|f| String::from_utf8_lossy(&f[1..]).to_string())
                            .unwrap_or_default()
                    };
                    out.push(format!("E {} {} {}", field(b'S'), field(b'C'), field(b'M')));
                }
                b'Z' => {
                    out.push("Z".to_string());
                    return out;
                }
                kind => out.push((kind as char).to_string()),
            }
        }
    }
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Bind of the unnamed statement with these parameter format codes, parameter lengths (each
/// value that many '7's) and result format codes.
fn bind(formats: &[i16], lengths: &[i32], results: &[i16]) -> Vec<u8> {
    let mut body = b"\0\0".to_vec();
    body.extend((formats.len() as i16).to_be_bytes());
    formats.iter().for_each(|f| body.extend(f.to_be_bytes()));
    body.extend((lengths.len() as i16).to_be_bytes());
    for &len in lengths {
        body.extend(len.to_be_bytes());
        body.extend(std::iter::repeat_n(b'7', len.max(0) as usize));
    }
    body.extend((results.len() as i16).to_be_bytes());
    results.iter().for_each(|f| body.extend(f.to_be_bytes()));
    frame(b'B', &body)
}

/// Malformed and invalid messages get Postgres's ErrorResponse, never a dropped connection or a
/// silently changed value: a truncated Bind (pgwire used to panic on it, closing the connection
/// without a word) is FATAL 08P01; invalid UTF-8 is 22021 (it used to become U+FFFD); a Bind
/// with extra parameters, a negative length other than -1 or a format code other than 0/1 is
/// refused (they used to be accepted) and the session goes on.
#[tokio::test]
async fn malformed_messages_get_postgres_errors() {
    let (_dir, server, _client) = setup().await;
    let port = server.port;
    let sync = frame(b'S', b"");
    let execute = frame(b'E', b"\0\0\0\0\0");
    let parse = frame(b'P', b"\0SELECT $1::int AS v\0\0\0");
    let query = |sql: &str| frame(b'Q', format!("{sql}\0").as_bytes());
    tokio::task::spawn_blocking(move || {
        // A Bind whose fields run past its length: FATAL, and the connection closes.
        for tail in [&b""[..], &sync[..]] {
            let mut s = RawSession::open(port);
            s.send(&[b"B\0\0\0\x06\0\0", tail].concat());
            assert_eq!(
                s.replies(),
                vec!["E FATAL 08P01 insufficient data left in message", "EOF"]
            );
        }
        let mut s = RawSession::open(port);
        let ok = vec!["1", "2", "D", "C", "Z"];
        s.send(&[&parse[..], &bind(&[0], &[1], &[]), &execute, &sync].concat());
        assert_eq!(s.replies(), ok);
        let utf8 = "E ERROR 22021 invalid byte sequence for encoding \"UTF8\": 0xff";
        s.send(&frame(b'Q', b"SELECT 'caf\xff'\0"));
        assert_eq!(s.replies(), vec![utf8, "Z"]);
        s.send(&[&frame(b'P', b"\0SELECT '\xff'\0\0\0")[..], &sync].concat());
        assert_eq!(s.replies(), vec![utf8, "Z"]);
        for (bad, error) in [
            (
                bind(&[0], &[1, 1], &[]),
                "E ERROR 08P01 bind message supplies 2 parameters, but prepared statement \"\" requires 1",
            ),
            (
                bind(&[0], &[-5], &[]),
                "E ERROR 08P01 bind message has an invalid length (-5) for parameter 1",
            ),
            (
                bind(&[7], &[1], &[]),
                "E ERROR 22023 unsupported format code: 7",
            ),
            (
                bind(&[0], &[1], &[7]),
                "E ERROR 22023 unsupported format code: 7",
            ),
        ] {
            s.send(&[&parse[..], &bad, &execute, &sync].concat());
            assert_eq!(s.replies(), vec!["1", error, "Z"]);
            // The session goes on.
            s.send(&[&parse[..], &bind(&[0], &[1], &[]), &execute, &sync].concat());
            assert_eq!(s.replies(), ok);
        }
        s.send(&query("SELECT 1"));
        assert_eq!(s.replies(), vec!["T", "D", "C", "Z"]);
    })
    .await
    .unwrap();
}

/// The soft limit on open files of process `pid` (prlimit, from util-linux).
fn soft_nofile(pid: u32) -> u64 {
    let out = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            "--nofile",
            "--output",
            "SOFT",
            "--noheadings",
        ])
        .output()
        .expect("run prlimit");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a limit")
}

fn set_soft_nofile(pid: u32, limit: u64) {
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={limit}:")])
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit --nofile={limit}:");
}

/// Out of file descriptors, the listener waits between accepts instead of spinning on them
/// (#12 item 5: it spun at 100% CPU and logged 47 MB/s): one warning, not thousands, and the
/// server takes connections again once descriptors are free.
#[tokio::test]
async fn a_listener_out_of_descriptors_backs_off_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), 50).await;
    let session = server.connect().await;
    let pid = server.pid();
    let original = soft_nofile(pid);
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    set_soft_nofile(pid, open + 2);
    // The kernel completes each handshake; the server accepts two, then accept fails (EMFILE).
    let held: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    // Long enough for a spinning loop to fail thousands of times; the backoff tries ~7.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let warnings = server.log().matches("accept failed").count();
    assert!(
        (1..=2).contains(&warnings),
        "{warnings} accept warnings; log: {}",
        server.log()
    );
    drop(held);
    set_soft_nofile(pid, original);
    let again = server.connect().await;
    let one: i64 = again.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    session.simple_query("SELECT 1").await.unwrap();
}
