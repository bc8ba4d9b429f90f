//! The real Postgres clients people and BI tools use, each doing its normal workflow against a
//! real Weir that holds a source, a keyed table and a materialized view
//! (`tests/clients/fixture.sql`): connect, list tables and views, list columns with their types
//! and keys, read a view, a parameterized query, a prepared statement run more than 5 times.
//!
//! One test per client; each starts its own server. `./test.sh` installs the clients (Debian
//! packages, the test virtualenv, an npm cache). Under `CI=true` a missing client fails its test;
//! elsewhere the test is skipped with the reason printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::WeirServer;

const FIXTURE: &str = include_str!("clients/fixture.sql");

/// The folder of the client scripts.
fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// A server holding the fixture; the data directory lives as long as the value.
struct Weir {
    server: WeirServer,
    dir: tempfile::TempDir,
}

async fn weir_with_fixture() -> Weir {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), 50).await;
    let client = server.connect().await;
    let sql: String = FIXTURE
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if let Err(e) = client.simple_query(statement).await {
            panic!("fixture statement failed: {statement}\n{e:?}");
        }
    }
    Weir { server, dir }
}

/// Whether a client the test needs is here. `check` says what is missing, if anything.
fn have(client: &str, check: Result<(), String>) -> bool {
    match check {
        Ok(()) => true,
        Err(missing) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{client} is missing under CI ({missing}); ./test.sh installs it")
        }
        Err(missing) => {
            eprintln!(
                "SKIPPED: {client} is not installed ({missing}); run ./test.sh to install it"
            );
            false
        }
    }
}

/// `program args...` runs and exits 0.
fn runs(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {program}: {e}")),
    }
}

/// The test virtualenv's python (made by ./test.sh).
fn python() -> String {
    std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir-test-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// `python` can import every module in `modules`.
fn python_has(modules: &str) -> Result<(), String> {
    runs(&python(), &["-c", &format!("import {modules}")])
}

/// Runs a client, asserts it exits 0 and returns its stdout; on failure the message holds the
/// client's stdout and stderr and the tail of the server's log.
fn run_client(weir: &Weir, what: &str, command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {what} ({command:?}): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let log = weir.server.log();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        panic!(
            "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log (last lines)\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    stdout
}

/// Runs one of the Python client scripts with the server's port.
fn run_python(weir: &Weir, script: &str) -> String {
    let out = run_client(
        weir,
        script,
        Command::new(python())
            .arg(scripts().join(script))
            .arg(weir.server.port.to_string()),
    );
    assert!(
        out.lines().any(|l| l.trim() == "ok"),
        "{script} did not finish with ok:\n{out}"
    );
    out
}

// ---------------------------------------------------------------------------------------------
// psql 15

/// psql connecting to the server, with no start-up file, stopping at the first error.
fn psql_command(weir: &Weir) -> Command {
    let mut command = Command::new("psql");
    command
        .args(["-X", "-h", "127.0.0.1", "-p"])
        .arg(weir.server.port.to_string())
        .args(["-U", "weir", "-d", "weir"])
        .args(["-v", "ON_ERROR_STOP=1", "-P", "pager=off"])
        .env("PGCONNECT_TIMEOUT", "10")
        .current_dir(weir.dir.path());
    command
}

/// Runs psql with each of `commands` as one `-c`; asserts it succeeds and returns its stdout.
fn psql(weir: &Weir, commands: &[&str]) -> String {
    let mut command = psql_command(weir);
    for c in commands {
        command.args(["-c", c]);
    }
    run_client(weir, &format!("psql {}", commands.join(" ")), &mut command)
}

/// The rows of psql's aligned tables in `out`, cells trimmed (header rows included).
fn cells(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| l.contains('|'))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

/// `out` has a table row starting with `row` (the cells after it are not checked).
fn assert_row(out: &str, row: &[&str]) {
    assert!(
        cells(out)
            .iter()
            .any(|r| r.len() >= row.len() && r.iter().zip(row).all(|(a, b)| a == b)),
        "no row {row:?} in psql output:\n{out}"
    );
}

fn assert_no_row_named(out: &str, column: usize, name: &str) {
    assert!(
        !cells(out)
            .iter()
            .any(|r| r.get(column).map(String::as_str) == Some(name)),
        "{name} should not be listed:\n{out}"
    );
}

#[tokio::test]
async fn psql_15_meta_commands() {
    if !have("psql", runs("psql", &["--version"])) {
        return;
    }
    let weir = weir_with_fixture().await;

    // \d: every relation, with its kind (sources and tables are tables).
    let d = psql(&weir, &["\\d"]);
    assert!(d.contains("List of relations"), "{d}");
    assert_row(&d, &["Schema", "Name", "Type", "Owner"]);
    assert_row(&d, &["public", "clicks", "table"]);
    assert_row(&d, &["public", "users", "table"]);
    assert_row(&d, &["public", "per_user", "materialized view"]);
    assert_no_row_named(&d, 1, "users_pkey");
    assert_no_row_named(&d, 1, "pg_class");

    let dt = psql(&weir, &["\\dt"]);
    assert_row(&dt, &["public", "clicks", "table"]);
    assert_row(&dt, &["public", "users", "table"]);
    assert_no_row_named(&dt, 1, "per_user");

    let dm = psql(&weir, &["\\dm"]);
    assert_row(&dm, &["public", "per_user", "materialized view"]);
    assert_no_row_named(&dm, 1, "users");

    // No plain views: psql says so (on stderr) and exits 0.
    let dv = psql_command(&weir).args(["-c", "\\dv"]).output().unwrap();
    let dv_text = format!(
        "{}{}",
        String::from_utf8_lossy(&dv.stdout),
        String::from_utf8_lossy(&dv.stderr)
    );
    assert!(dv.status.success(), "\\dv failed: {dv_text}");
    assert!(
        dv_text.contains("Did not find any relations."),
        "\\dv: {dv_text}"
    );

    // \d name: columns with types, nullability, and the primary key of the table.
    let users = psql(&weir, &["\\d users"]);
    assert!(users.contains("Table \"public.users\""), "{users}");
    assert_row(
        &users,
        &["Column", "Type", "Collation", "Nullable", "Default"],
    );
    assert_row(&users, &["id", "bigint", "", "not null", ""]);
    assert_row(&users, &["name", "text", "", "", ""]);
    assert_row(&users, &["score", "double precision", "", "", ""]);
    assert_row(&users, &["active", "boolean", "", "", ""]);
    assert!(users.contains("Indexes:"), "{users}");
    assert!(
        users
            .lines()
            .any(|l| l.trim() == "\"users_pkey\" PRIMARY KEY, btree (id)"),
        "no primary key line in:\n{users}"
    );

    let clicks = psql(&weir, &["\\d clicks"]);
    assert!(clicks.contains("Table \"public.clicks\""), "{clicks}");
    assert_row(&clicks, &["user_id", "bigint", "", "", ""]);
    assert_row(&clicks, &["url", "text", "", "", ""]);
    assert_row(&clicks, &["ts", "timestamp without time zone", "", "", ""]);
    assert!(
        !clicks.contains("PRIMARY KEY"),
        "a source has no key:\n{clicks}"
    );

    let view = psql(&weir, &["\\d per_user"]);
    assert!(
        view.contains("Materialized view \"public.per_user\""),
        "{view}"
    );
    assert_row(&view, &["user_id", "bigint"]);
    assert_row(&view, &["n", "bigint"]);
    assert_row(&view, &["last_url", "text"]);
    assert_row(&view, &["last_ts", "timestamp without time zone"]);

    // Schemas, databases, roles.
    let dn = psql(&weir, &["\\dn"]);
    assert!(dn.contains("List of schemas"), "{dn}");
    assert_row(&dn, &["public"]);
    assert_no_row_named(&dn, 0, "pg_catalog");
    assert_no_row_named(&dn, 0, "information_schema");

    let l = psql(&weir, &["\\l"]);
    assert!(l.contains("List of databases"), "{l}");
    assert_row(&l, &["weir"]);
    assert!(
        cells(&l)
            .iter()
            .any(|r| r.first().map(String::as_str) == Some("weir")
                && r.get(2).map(String::as_str) == Some("UTF8")),
        "database weir in UTF8:\n{l}"
    );

    let du = psql(&weir, &["\\du"]);
    assert!(du.contains("List of roles"), "{du}");
    assert_row(&du, &["weir"]);

    // Expanded display.
    let x = psql(
        &weir,
        &["\\x on", "SELECT * FROM per_user WHERE user_id = 1"],
    );
    assert!(x.contains("-[ RECORD 1 ]"), "{x}");
    assert_row(&x, &["user_id", "1"]);
    assert_row(&x, &["n", "2"]);
    assert_row(&x, &["last_url", "/c"]);
    assert_row(&x, &["last_ts", "2026-01-01 00:00:03"]);

    // \copy from a file into the source, then out of the table and of a query over the view.
    std::fs::write(
        weir.dir.path().join("more_clicks.tsv"),
        "3\t/d\t2026-01-01 00:00:04\n1\t/e\t2026-01-01 00:00:05\n",
    )
    .unwrap();
    let copied = psql(&weir, &["\\copy clicks from 'more_clicks.tsv'", "FLUSH"]);
    assert!(copied.contains("COPY 2"), "{copied}");
    let after = psql(
        &weir,
        &["SELECT user_id, n, last_url FROM per_user ORDER BY user_id"],
    );
    assert_row(&after, &["1", "3", "/e"]);
    assert_row(&after, &["3", "1", "/d"]);

    let out = psql(&weir, &["\\copy users to 'users.tsv'"]);
    assert!(out.contains("COPY 2"), "{out}");
    let mut lines: Vec<String> = std::fs::read_to_string(weir.dir.path().join("users.tsv"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(lines, ["1\tann\t1.5\tt", "2\tbob\t2.5\tf"]);

    psql(
        &weir,
        &[
            "\\copy (SELECT user_id, n FROM per_user ORDER BY user_id) to 'per_user.csv' with (format csv, header)",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(weir.dir.path().join("per_user.csv")).unwrap(),
        "user_id,n\n1,3\n2,1\n3,1\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Python drivers and the libraries built on them

#[tokio::test]
async fn psycopg2_and_psycopg3_workflow() {
    if !have("psycopg and psycopg2", python_has("psycopg, psycopg2")) {
        return;
    }
    let weir = weir_with_fixture().await;
    run_python(&weir, "psycopg_workflow.py");
}

#[tokio::test]
async fn sqlalchemy_inspector_and_pandas() {
    if !have(
        "SQLAlchemy 2 and pandas",
        python_has("sqlalchemy, pandas, psycopg, psycopg2"),
    ) {
        return;
    }
    let weir = weir_with_fixture().await;
    run_python(&weir, "sqlalchemy_check.py");
}

#[tokio::test]
async fn pgcli_completion_refresh() {
    if !have("pgcli", python_has("pgcli.pgexecute")) {
        return;
    }
    let weir = weir_with_fixture().await;
    run_python(&weir, "pgcli_check.py");
}

/// psqlODBC's driver library, from WEIR_TEST_ODBC_DRIVER or where Debian puts it.
fn odbc_driver() -> String {
    std::env::var("WEIR_TEST_ODBC_DRIVER")
        .unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so".to_string())
}

#[tokio::test]
async fn psqlodbc_through_pyodbc() {
    let driver = odbc_driver();
    let check = python_has("pyodbc").and_then(|()| {
        if Path::new(&driver).exists() {
            Ok(())
        } else {
            Err(format!("no {driver} (Debian odbc-postgresql)"))
        }
    });
    if !have("psqlODBC and pyodbc", check) {
        return;
    }
    let weir = weir_with_fixture().await;
    let out = run_client(
        &weir,
        "odbc_check.py",
        Command::new(python())
            .arg(scripts().join("odbc_check.py"))
            .arg(weir.server.port.to_string())
            .arg(&driver),
    );
    assert!(out.lines().any(|l| l.trim() == "ok"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// pgJDBC (DBeaver, Metabase, Tableau's and most Java tools' driver)

fn jdbc_jar() -> String {
    std::env::var("WEIR_TEST_JDBC_JAR").unwrap_or_else(|_| "/usr/share/java/postgresql.jar".into())
}

#[tokio::test]
async fn pgjdbc_metadata_and_prepared_statements() {
    let jar = jdbc_jar();
    let check = runs("java", &["-version"])
        .and_then(|()| runs("javac", &["-version"]))
        .and_then(|()| {
            if Path::new(&jar).exists() {
                Ok(())
            } else {
                Err(format!("no {jar} (Debian libpostgresql-jdbc-java)"))
            }
        });
    if !have("java and pgJDBC", check) {
        return;
    }
    let weir = weir_with_fixture().await;
    let out = run_client(
        &weir,
        "JdbcCheck.java",
        Command::new("java")
            .args(["-cp", &jar])
            .arg(scripts().join("JdbcCheck.java"))
            .arg(weir.server.port.to_string()),
    );
    assert!(out.lines().any(|l| l.trim() == "ok"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// node-postgres

/// The node_modules folder holding `pg`, from WEIR_TEST_NODE_MODULES or test.sh's cache.
fn node_modules() -> String {
    std::env::var("WEIR_TEST_NODE_MODULES").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir-test-node/node_modules",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

#[tokio::test]
async fn node_postgres() {
    let modules = node_modules();
    let check = runs("node", &["--version"]).and_then(|()| {
        if Path::new(&modules).join("pg").exists() {
            Ok(())
        } else {
            Err(format!("no pg in {modules}"))
        }
    });
    if !have("node and pg", check) {
        return;
    }
    let weir = weir_with_fixture().await;
    let out = run_client(
        &weir,
        "node_check.js",
        Command::new("node")
            .arg(scripts().join("node_check.js"))
            .arg(weir.server.port.to_string())
            .env("NODE_PATH", &modules),
    );
    assert!(out.lines().any(|l| l.trim() == "ok"), "{out}");
}
