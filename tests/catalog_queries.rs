//! Every statement real clients send on connect and while introspecting (captured from a real
//! PostgreSQL 15 in `tests/pg-clients/*.sql`: psql's `\d` family and tab completion, pgJDBC,
//! psqlODBC, psycopg 2 and 3, SQLAlchemy, node-postgres, pgcli) runs against a real Weir
//! holding the objects those clients looked at. Each must succeed; the client tests
//! (`tests/clients.rs`) check the answers through the clients themselves.

mod common;

use common::WeirServer;

/// The objects the captures introspect: `orders` (a table with a primary key), `t` (psql's
/// `\d t`), a source and a materialized view.
const FIXTURE: &str = "
    CREATE TABLE orders (id INT PRIMARY KEY, customer TEXT, amount NUMERIC(10,2), ts TIMESTAMP);
    INSERT INTO orders VALUES (1, 'ann', 10.50, '2026-01-01 10:00:00'), (2, 'bob', 3.25, NULL);
    CREATE TABLE t (id INT PRIMARY KEY, v TEXT);
    CREATE SOURCE clicks (user_id BIGINT, url TEXT) FORMAT JSON;
    CREATE MATERIALIZED VIEW spend AS SELECT customer, sum(amount) AS total FROM orders GROUP BY customer;
    FLUSH;
";

/// One captured statement: which file, the SQL, and its bound parameters (as text).
struct Captured {
    file: String,
    sql: String,
    params: Vec<String>,
}

/// Splits a capture file into statements: each follows a `-- [pid ...] statement` or
/// `execute` header, and may be followed by a `--   parameters: $1 = '...'` line.
fn parse_capture(file: &str, text: &str) -> Vec<Captured> {
    let mut out: Vec<Captured> = Vec::new();
    let mut current: Option<String> = None;
    let finish = |current: &mut Option<String>, out: &mut Vec<Captured>| {
        if let Some(sql) = current.take() {
            let sql = sql.trim().to_string();
            if !sql.is_empty() {
                out.push(Captured {
                    file: file.to_string(),
                    sql,
                    params: Vec::new(),
                });
            }
        }
    };
    for line in text.lines() {
        if let Some(header) = line.strip_prefix("-- [") {
            finish(&mut current, &mut out);
            if header.contains("] statement") || header.contains("] execute") {
                current = Some(String::new());
            }
        } else if let Some(params) = line.strip_prefix("--   parameters: ") {
            finish(&mut current, &mut out);
            if let Some(last) = out.last_mut() {
                last.params = parse_params(params);
            }
        } else if let Some(sql) = current.as_mut() {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    finish(&mut current, &mut out);
    out
}

/// `$1 = 'a', $2 = 'b''c'` → `["a", "b'c"]`.
fn parse_params(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("= '") {
        let mut value = String::new();
        let mut chars = rest[start + 3..].char_indices().peekable();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|&(_, c)| c) == Some('\'') {
                    chars.next();
                    value.push('\'');
                    continue;
                }
                end = start + 3 + i + 1;
                break;
            }
            value.push(c);
        }
        values.push(value);
        rest = &rest[end..];
    }
    values
}

/// The statement with `$n` replaced by its value as a string literal.
fn bind(c: &Captured) -> String {
    let mut sql = c.sql.clone();
    for (i, value) in c.params.iter().enumerate().rev() {
        sql = sql.replace(
            &format!("${}", i + 1),
            &format!("'{}'", value.replace('\'', "''")),
        );
    }
    sql
}

#[tokio::test]
async fn every_captured_client_statement_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), 50).await;
    let client = server.connect().await;
    client.batch_execute(FIXTURE).await.unwrap();

    let captures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pg-clients");
    let mut files: Vec<_> = std::fs::read_dir(captures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for stmt in parse_capture(&name, &text) {
            let sql = bind(&stmt);
            ran += 1;
            let lower = sql.to_ascii_lowercase();
            let result = if lower.starts_with("copy") && lower.contains("to stdout") {
                // COPY TO answers with a copy stream, not rows.
                match client.copy_out(sql.as_str()).await {
                    Ok(stream) => {
                        use futures::TryStreamExt;
                        stream.try_collect::<Vec<_>>().await.map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            } else {
                client.simple_query(&sql).await.map(|_| ())
            };
            if let Err(e) = result {
                let message = e
                    .as_db_error()
                    .map(|d| format!("{}: {}", d.code().code(), d.message()))
                    .unwrap_or_else(|| e.to_string());
                failures.push(format!("[{}] {message}\n    {}", stmt.file, sql.trim()));
                // A failed statement inside BEGIN would poison what follows in Postgres; Weir
                // has no aborted state, but be explicit so each statement is judged alone.
                let _ = client.simple_query("ROLLBACK").await;
            }
        }
    }
    assert!(ran > 200, "the captures hold more statements than {ran}");
    assert!(
        failures.is_empty(),
        "{} of {ran} captured client statements failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
