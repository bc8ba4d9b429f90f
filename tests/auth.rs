//! Users, roles and authentication on the Postgres wire, end to end with real clients
//! (tokio-postgres, psql, psycopg): trust on loopback, SCRAM-SHA-256 passwords, role
//! attributes and membership, connection limits, TLS with a CA the test makes (verify-full,
//! channel binding), and the start-up refusals for unsafe settings. Then the same roles logging
//! in to the Kafka listener with SASL (SCRAM-SHA-256, and PLAIN over TLS) from librdkafka and
//! kafka-python.

mod common;

use std::path::Path;
use std::process::Command;

use common::{WeirServer, first_column, sql_error as code, weir_bin};
use tokio_postgres::error::SqlState;

async fn current_user(client: &tokio_postgres::Client) -> String {
    client
        .query_one("SELECT current_user, session_user", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn trust_admits_existing_login_roles_and_each_session_acts_as_its_role() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), 50).await;
    let weir = server.connect().await;
    assert_eq!(current_user(&weir).await, "weir");
    weir.batch_execute(
        "CREATE USER reader; CREATE ROLE no_login; CREATE ROLE staff; GRANT staff TO reader;
         CREATE USER one CONNECTION LIMIT 1",
    )
    .await
    .unwrap();

    let reader = server.connect_as("reader", None).await.unwrap();
    assert_eq!(current_user(&reader).await, "reader");
    let e = server.connect_as("nobody", None).await.err().unwrap();
    assert_eq!(code(&e), "28000: role \"nobody\" does not exist");
    let e = server.connect_as("no_login", None).await.err().unwrap();
    assert_eq!(
        code(&e),
        "28000: role \"no_login\" is not permitted to log in"
    );

    // A role without CREATEROLE manages no roles, but may set its own password.
    let e = reader.batch_execute("CREATE ROLE x").await.unwrap_err();
    assert_eq!(code(&e), "42501: permission denied to create role");
    let e = reader
        .batch_execute("ALTER ROLE staff LOGIN")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501: permission denied");
    reader
        .batch_execute("ALTER ROLE reader PASSWORD 'mine'")
        .await
        .unwrap();
    let e = reader.batch_execute("DROP ROLE staff").await.unwrap_err();
    assert_eq!(code(&e), "42501: permission denied to drop role");
    let e = weir.batch_execute("DROP ROLE weir").await.unwrap_err();
    assert_eq!(code(&e), "55006: current user cannot be dropped");
    // The session goes on after each refusal.
    assert_eq!(current_user(&reader).await, "reader");

    // CONNECTION LIMIT 1: a second session is refused until the first ends.
    let first = server.connect_as("one", None).await.unwrap();
    let e = server.connect_as("one", None).await.err().unwrap();
    assert_eq!(code(&e), "53300: too many connections for role \"one\"");
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match server.connect_as("one", None).await {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                assert_eq!(code(&e), "53300: too many connections for role \"one\"");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the ended session still counts: {e}"),
        }
    }
    // Roles are durable: the catalog shows them after a restart.
    let mut server = server;
    drop((weir, reader));
    server.restart().await;
    let weir = server.connect().await;
    let rows = weir
        .query(
            "SELECT r.rolname, m.rolname FROM pg_auth_members a \
             JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member",
            &[],
        )
        .await
        .unwrap();
    let pairs: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(pairs, [("staff".to_string(), "reader".to_string())]);
}

#[tokio::test]
async fn password_auth_runs_scram_and_refuses_every_wrong_login_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--pg-auth", "password", "--init-password", "s3cret"];
    let mut server = WeirServer::start_with_args(&dir.path().join("data"), 50, &args).await;
    let weir = server.connect_as("weir", Some("s3cret")).await.unwrap();
    weir.batch_execute("CREATE USER alice PASSWORD 'wonder'; CREATE USER nopass")
        .await
        .unwrap();
    let alice = server.connect_as("alice", Some("wonder")).await.unwrap();
    assert_eq!(current_user(&alice).await, "alice");
    for (user, password) in [
        ("alice", "wrong"),
        ("weir", ""),
        ("ghost", "wonder"),
        ("nopass", "anything"),
    ] {
        let e = server.connect_as(user, Some(password)).await.err().unwrap();
        assert_eq!(
            code(&e),
            format!("28P01: password authentication failed for user \"{user}\""),
        );
    }
    assert!(
        server
            .log()
            .contains("password authentication failed for user \"ghost\" from 127.0.0.1"),
        "{}",
        server.log()
    );
    // Each refusal is listed for superusers, and for no one else.
    let rows = weir
        .query(
            "SELECT listener, \"user\", reason, client_addr LIKE '127.0.0.1:%', \
             failed_at > now() - INTERVAL '1 minute' FROM weir_login_failures",
            &[],
        )
        .await
        .unwrap();
    let failures: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, bool>(3),
                r.get::<_, bool>(4)
            )
        })
        .collect();
    assert_eq!(
        failures,
        ["alice", "weir", "ghost", "nopass"]
            .map(|u| format!("pg {u} password authentication failed true true"))
    );
    let e = alice
        .query("SELECT * FROM weir_login_failures", &[])
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        "42501: permission denied for table weir_login_failures"
    );
    // psql and psycopg log in with SCRAM too.
    let psql = Command::new("psql")
        .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p"])
        .arg(server.port.to_string())
        .args(["-U", "alice", "-d", "weir", "-c", "SELECT current_user"])
        .env("PGPASSWORD", "wonder")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&psql.stdout).trim(),
        "alice",
        "{psql:?}"
    );
    let out = run_python(
        "import psycopg, sys\n\
         with psycopg.connect(host='127.0.0.1', port=sys.argv[1], user='alice', password='wonder', dbname='weir') as c:\n\
         \x20   print(c.execute('SELECT current_user').fetchone()[0])\n\
         try:\n\
         \x20   psycopg.connect(host='127.0.0.1', port=sys.argv[1], user='alice', password='no', dbname='weir')\n\
         except psycopg.OperationalError as e:\n\
         \x20   print('refused', 'password authentication failed' in str(e))\n",
        server.port,
    );
    assert_eq!(out, "alice\nrefused True\n");
    // A verifier given as the password (what psql's \password sends) is stored as given.
    let verifier = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$\
        Ce3wZiZ+yIBCjltccfRiqM0+XDsLE3qPdkEeZKe3hus=:k3q4nlLsA09ST5FLo9zNmfyXR+Ci1J4KmBK5JRVSxeI=";
    weir.batch_execute(&format!("ALTER USER alice PASSWORD '{verifier}'"))
        .await
        .unwrap();
    server.connect_as("alice", Some("secret")).await.unwrap();
    // The init password applies to a new data directory only.
    drop((weir, alice));
    server.args = ["--pg-auth", "password", "--init-password", "other"]
        .map(String::from)
        .to_vec();
    server.restart().await;
    server.connect_as("weir", Some("s3cret")).await.unwrap();
    let e = server
        .connect_as("weir", Some("other"))
        .await
        .err()
        .unwrap();
    assert_eq!(e.as_db_error().unwrap().code(), &SqlState::INVALID_PASSWORD);
}

/// Makes a CA and a server certificate for `localhost` / 127.0.0.1 signed by it, with openssl.
/// Makes a test CA and a server certificate in `dir`, and returns the server flags that use
/// them (with `extra` and the superuser's password, `s3cret`) and the CA's path.
fn tls_server_args(dir: &Path, extra: &[&str]) -> (Vec<String>, std::path::PathBuf) {
    make_certificates(dir);
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    args.extend(["--init-password".into(), "s3cret".into()]);
    args.extend(["--tls-cert".into(), path("server.pem")]);
    args.extend(["--tls-key".into(), path("server.key")]);
    (args, dir.join("ca.pem"))
}

fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=weir test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
}

#[tokio::test]
async fn tls_with_verify_full_and_channel_binding_and_plain_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key");
    let args = [
        "--pg-auth",
        "password",
        "--init-password",
        "s3cret",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--tls-require",
    ];
    let server = WeirServer::start_with_args(&dir.path().join("data"), 50, &args).await;
    let ca = dir.path().join("ca.pem");
    let psql = |sslmode: &str, extra: &str| {
        let conninfo = format!(
            "host=localhost port={} user=weir dbname=weir sslmode={sslmode} sslrootcert={} {extra}",
            server.port,
            ca.display()
        );
        Command::new("psql")
            .args(["-X", "-A", "-t", &conninfo, "-c", "SELECT current_user"])
            .env("PGPASSWORD", "s3cret")
            .output()
            .unwrap()
    };
    for (sslmode, extra) in [
        ("verify-full", ""),
        ("require", ""),
        ("verify-full", "channel_binding=require"),
    ] {
        let out = psql(sslmode, extra);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "weir",
            "sslmode={sslmode} {extra}: {out:?}"
        );
    }
    let out = psql("disable", "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("this server accepts only TLS connections"),
        "{stderr}"
    );
    let out = run_python(
        &format!(
            "import psycopg, sys\n\
             with psycopg.connect(host='localhost', port=sys.argv[1], user='weir', password='s3cret', dbname='weir', sslmode='verify-full', sslrootcert='{}') as c:\n\
             \x20   print(c.execute('SELECT current_user').fetchone()[0], c.pgconn.ssl_in_use)\n",
            ca.display()
        ),
        server.port,
    );
    assert_eq!(out, "weir True\n");
}

#[test]
fn unsafe_settings_refuse_to_start_and_say_how_to_fix_them() {
    let dir = tempfile::tempdir().unwrap();
    // The server's log when it refuses to start (`timeout`: a server that starts is stopped).
    let refused = |args: &[&str]| {
        let out = Command::new("timeout")
            .arg("60")
            .arg(weir_bin())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let log = refused(&[
        "--pg-addr",
        "0.0.0.0:0",
        "--kafka-addr",
        "off",
        "--http-addr",
        "off",
    ]);
    assert!(
        log.contains("refusing to listen on 0.0.0.0") && log.contains("--pg-auth password"),
        "{log}"
    );
    let log = refused(&[
        "--pg-addr",
        "127.0.0.1:0",
        "--pg-auth",
        "password",
        "--kafka-addr",
        "off",
        "--http-addr",
        "off",
    ]);
    assert!(
        log.contains("no role that may log in has a password"),
        "{log}"
    );
    // Kafka: trust only on loopback, and password only with a role that can use it.
    let log = refused(&["--kafka-addr", "0.0.0.0:0", "--http-addr", "off"]);
    assert!(
        log.contains("refusing to listen on 0.0.0.0:0 for Kafka clients")
            && log.contains("--kafka-auth password"),
        "{log}"
    );
    let log = refused(&[
        "--kafka-addr",
        "127.0.0.1:0",
        "--kafka-auth",
        "password",
        "--http-addr",
        "off",
    ]);
    assert!(log.contains("no Kafka client could connect"), "{log}");
    // Nor the HTTP listener.
    let log = refused(&["--kafka-addr", "off", "--http-addr", "0.0.0.0:0"]);
    assert!(
        log.contains("for HTTP clients without authentication") && log.contains("--http-auth"),
        "{log}"
    );
}

/// The test virtualenv's Python (./test.sh installs psycopg 3 and the Kafka clients into it).
fn python() -> String {
    std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir-test-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

fn run_python(script: &str, port: u16) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .output()
        .expect("run python");
    assert!(out.status.success(), "python failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs tests/kafka/auth_clients.py `roundtrip` and returns its one line of output.
fn kafka_roundtrip(
    lib: &str,
    server: &WeirServer,
    protocol: &str,
    mechanism: &str,
    login: (&str, &str),
    ca: Option<&Path>,
    topic: &str,
) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/auth_clients.py");
    let ca = ca.map_or("-".to_string(), |p| p.display().to_string());
    let bootstrap = format!("localhost:{}", server.kafka_port.unwrap());
    let out = Command::new(python())
        .args([script, "roundtrip", lib, &bootstrap, protocol, mechanism])
        .args([login.0, login.1, &ca, topic])
        .output()
        .expect("run python");
    assert!(out.status.success(), "auth_clients.py failed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_clients_log_in_with_sasl_scram_and_only_real_logins_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--kafka-auth", "password", "--init-password", "s3cret"];
    let server = WeirServer::start_with_kafka_and_args(&dir.path().join("data"), 50, &args).await;
    let sql = server.connect().await;
    sql.batch_execute(
        "CREATE USER alice PASSWORD 'alice-pw';
         CREATE ROLE nologin PASSWORD 'nologin-pw';
         CREATE TOPIC t_confluent; CREATE TOPIC t_python; CREATE TOPIC secret;",
    )
    .await
    .unwrap();
    let scram = "SCRAM-SHA-256";
    // A role that logs in still needs privileges on the topic: produce is INSERT.
    let got = kafka_roundtrip(
        "confluent",
        &server,
        "SASL_PLAINTEXT",
        scram,
        ("alice", "alice-pw"),
        None,
        "t_confluent",
    );
    assert!(
        got.starts_with("failed produce") && got.contains("TOPIC_AUTHORIZATION_FAILED"),
        "alice without a grant: {got}"
    );
    sql.batch_execute("GRANT SELECT, INSERT ON TOPIC t_confluent, t_python TO alice")
        .await
        .unwrap();
    // Metadata shows alice only the topics she has privileges on; reading another is refused.
    let as_alice = |command: &str, topic: &[&str]| {
        let bootstrap = format!("localhost:{}", server.kafka_port.unwrap());
        let out = Command::new(python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/kafka/auth_clients.py"
            ))
            .args([
                command,
                &bootstrap,
                "SASL_PLAINTEXT",
                scram,
                "alice",
                "alice-pw",
                "-",
            ])
            .args(topic)
            .output()
            .expect("run python");
        assert!(out.status.success(), "auth_clients.py failed: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(as_alice("topics", &[]), "t_confluent t_python");
    for topic in ["secret", "t_confluent"] {
        let got = kafka_roundtrip(
            "confluent",
            &server,
            "SASL_PLAINTEXT",
            scram,
            ("weir", "s3cret"),
            None,
            topic,
        );
        assert_eq!(got, "ok 3", "SCRAM as the superuser on {topic}");
    }
    // librdkafka does not hand the consumer the TOPIC_AUTHORIZATION_FAILED Weir answers its
    // Metadata and Fetch with (it keeps retrying): alice reads none of the 3 records.
    assert_eq!(as_alice("consume", &["secret"]), "ok 0");
    for (lib, topic) in [("confluent", "t_confluent"), ("python", "t_python")] {
        let got = kafka_roundtrip(
            lib,
            &server,
            "SASL_PLAINTEXT",
            scram,
            ("alice", "alice-pw"),
            None,
            topic,
        );
        assert_eq!(got, "ok 3", "{lib} SCRAM as alice");
    }
    // What the clients wrote is in the topic, read over the Postgres wire.
    sql.batch_execute(
        "CREATE SOURCE s (user_id BIGINT, amount BIGINT) FROM TOPIC t_confluent FORMAT JSON;
         CREATE MATERIALIZED VIEW n AS SELECT count(*) AS n FROM s; FLUSH;",
    )
    .await
    .unwrap();
    let n: i64 = sql.query_one("SELECT n FROM n", &[]).await.unwrap().get(0);
    assert_eq!(n, 6);

    // A wrong password, an unknown role and a role without LOGIN are refused alike; so is a
    // client that does not log in, and PLAIN without TLS.
    for (login, what) in [
        (("alice", "wrong-pw-7"), "a wrong password"),
        (("mallory", "alice-pw"), "an unknown role"),
        (("nologin", "nologin-pw"), "a role without LOGIN"),
    ] {
        let got = kafka_roundtrip(
            "confluent",
            &server,
            "SASL_PLAINTEXT",
            scram,
            login,
            None,
            "t_confluent",
        );
        assert!(got.starts_with("failed _AUTHENTICATION"), "{what}: {got}");
    }
    let got = kafka_roundtrip(
        "python",
        &server,
        "SASL_PLAINTEXT",
        scram,
        ("alice", "wrong"),
        None,
        "t_python",
    );
    assert!(
        got.starts_with("failed"),
        "kafka-python, a wrong password: {got}"
    );
    let got = kafka_roundtrip(
        "confluent",
        &server,
        "PLAINTEXT",
        scram,
        ("", ""),
        None,
        "t_confluent",
    );
    assert!(got.starts_with("failed"), "no login: {got}");
    let got = kafka_roundtrip(
        "confluent",
        &server,
        "SASL_PLAINTEXT",
        "PLAIN",
        ("alice", "alice-pw"),
        None,
        "t_confluent",
    );
    assert!(got.starts_with("failed"), "PLAIN without TLS: {got}");
    let log = server.log();
    assert!(
        log.contains("kafka SASL authentication failed") && !log.contains("wrong-pw-7"),
        "{log}"
    );
    let refused = first_column(
        &sql,
        "SELECT DISTINCT \"user\" FROM weir_login_failures WHERE listener = 'kafka'",
    )
    .await;
    assert!(
        ["alice", "mallory", "nologin"]
            .iter()
            .all(|u| refused.iter().any(|r| r == u)),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_over_tls_with_sasl_plain_and_scram_verifies_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (args, ca) = tls_server_args(dir.path(), &["--kafka-auth", "password", "--kafka-tls"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = WeirServer::start_with_kafka_and_args(&dir.path().join("data"), 50, &args).await;
    server
        .connect()
        .await
        .batch_execute(
            "CREATE USER bob PASSWORD 'bob-pw'; CREATE TOPIC t1; CREATE TOPIC t2;
             GRANT SELECT, INSERT ON TOPIC t1, t2 TO bob;",
        )
        .await
        .unwrap();
    let bob = ("bob", "bob-pw");
    for (lib, mechanism, topic) in [
        ("confluent", "PLAIN", "t1"),
        ("python", "PLAIN", "t2"),
        ("confluent", "SCRAM-SHA-256", "t1"),
        ("python", "SCRAM-SHA-256", "t2"),
    ] {
        let got = kafka_roundtrip(lib, &server, "SASL_SSL", mechanism, bob, Some(&ca), topic);
        assert_eq!(got, "ok 3", "{lib} {mechanism} over TLS");
    }
    let got = kafka_roundtrip(
        "confluent",
        &server,
        "SASL_SSL",
        "PLAIN",
        ("bob", "wrong"),
        Some(&ca),
        "t1",
    );
    assert!(
        got.starts_with("failed _AUTHENTICATION"),
        "PLAIN, a wrong password: {got}"
    );
    // TLS without a login is refused too; plaintext does not get through the TLS listener.
    let got = kafka_roundtrip("confluent", &server, "SSL", "PLAIN", bob, Some(&ca), "t1");
    assert!(got.starts_with("failed"), "TLS without SASL: {got}");
    let got = kafka_roundtrip(
        "confluent",
        &server,
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        bob,
        None,
        "t1",
    );
    assert!(
        got.starts_with("failed"),
        "plaintext to the TLS listener: {got}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_basic_logins_verifies_the_server_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (args, ca) = tls_server_args(dir.path(), &["--http-auth", "password", "--http-tls"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = WeirServer::start_with_http_and_args(&dir.path().join("data"), 50, &args).await;
    let port = server.http_port.unwrap();
    // curl's status code for a request (000 when no HTTP answer came back at all).
    let status = |scheme: &str, login: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .arg("--cacert")
            .arg(&ca)
            .args(["-u", login])
            .arg(format!("{scheme}://localhost:{port}/metrics"))
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(status("https", "weir:s3cret"), "200");
    assert_eq!(status("https", "weir:wrong"), "401");
    assert_eq!(status("http", "weir:s3cret"), "000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_logs_in_is_closed_after_the_authentication_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--pg-auth",
        "password",
        "--kafka-auth",
        "password",
        "--init-password",
        "s3cret",
        "--authentication-timeout-ms",
        "300",
    ];
    let server = WeirServer::start_with_kafka_and_args(&dir.path().join("data"), 50, &args).await;
    // A start-up packet for user weir (protocol 3.0), then silence instead of a password.
    let mut startup = Vec::new();
    let body = b"\0\x03\0\0user\0weir\0database\0weir\0\0";
    startup.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    startup.extend_from_slice(body);
    for (port, hello) in [
        (server.port, &[][..]),
        (server.port, &startup[..]),
        (server.kafka_port.unwrap(), &[][..]),
    ] {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        socket.write_all(hello).await.unwrap();
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            socket.read_to_end(&mut answer),
        )
        .await;
        assert!(
            matches!(closed, Ok(Ok(_))),
            "port {port}, {} bytes sent: not closed ({closed:?})",
            hello.len()
        );
    }
    // A client that does log in is not affected.
    let weir = server.connect_as("weir", Some("s3cret")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(current_user(&weir).await, "weir");
}
