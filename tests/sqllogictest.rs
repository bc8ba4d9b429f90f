//! Runs every `sql-tests/*.slt` and `sql-tests/nexmark/*.slt` file over the Postgres wire against a real Weir server (one
//! server per file, fresh data directory), then checks every materialized view the file left
//! behind against a batch recompute: the view's query run as an ad-hoc SELECT over the same
//! inputs must return exactly the view's rows. A view that emits on window close holds only
//! the windows the watermark has closed: each of its rows must be one of the recompute's.
//!
//! `cargo test --test sqllogictest -- <filter>` runs the files whose name contains `filter`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{WeirServer, rows};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

/// A test failure message: SQLSTATE and text, so `statement error` lines can match either.
#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for DbError {}

#[derive(Clone)]
struct CreatedView {
    name: String,
    query: String,
    /// EMIT ON WINDOW CLOSE: the view holds only the closed windows.
    emits_closed_windows: bool,
}

struct WeirDb {
    client: tokio_postgres::Client,
    /// Each materialized view created (the latest per name).
    views: Arc<Mutex<Vec<CreatedView>>>,
}

fn describe(e: tokio_postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(db) => DbError(format!("{}: {}", db.code().code(), db.message())),
        None => DbError(e.to_string()),
    }
}

#[async_trait]
impl AsyncDB for WeirDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let messages = self.client.simple_query(sql).await.map_err(describe)?;
        if let Ok(statements) = weir::sql::parse::parse(sql) {
            for stmt in statements {
                if let weir::sql::parse::Statement::Standard(s) = stmt
                    && let datafusion::sql::sqlparser::ast::Statement::CreateView(v) = *s
                    && v.materialized
                {
                    let name = v.name.to_string().to_ascii_lowercase();
                    let mut views = self.views.lock().unwrap();
                    let known = views.iter().any(|c| c.name == name);
                    // A re-created name checks its latest query; an IF NOT EXISTS
                    // that found the view changed nothing.
                    if !(v.if_not_exists && known) {
                        views.retain(|c| c.name != name);
                        views.push(CreatedView {
                            name,
                            query: v.query.to_string(),
                            emits_closed_windows: weir::sql::view_options::ViewOptions::parse(
                                &v.options,
                            )
                            .is_ok_and(|o| o.emit_on_window_close),
                        });
                    }
                }
            }
        }
        let mut out_rows = Vec::new();
        let mut width = 0;
        let mut saw_rows = false;
        for message in messages {
            match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    width = row.len();
                    out_rows.push(
                        (0..row.len())
                            .map(|i| row.get(i).unwrap_or("NULL").to_string())
                            .collect(),
                    );
                }
                tokio_postgres::SimpleQueryMessage::RowDescription(desc) => {
                    width = desc.len();
                    saw_rows = true;
                }
                _ => {}
            }
        }
        if saw_rows || !out_rows.is_empty() {
            Ok(DBOutput::Rows {
                types: vec![DefaultColumnType::Any; width],
                rows: out_rows,
            })
        } else {
            Ok(DBOutput::StatementComplete(0))
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "weir"
    }
}

/// Every view left at the end of a file equals its query recomputed in batch.
async fn check_views_against_recompute(
    server: &WeirServer,
    views: &[CreatedView],
) -> Result<(), String> {
    let client = server.connect().await;
    client
        .simple_query("FLUSH")
        .await
        .map_err(|e| format!("FLUSH: {e}"))?;
    let existing = rows(&client, "SHOW MATERIALIZED VIEWS")
        .await
        .map_err(|e| e.to_string())?;
    let existing: Vec<&str> = existing.iter().map(|r| r[0].as_str()).collect();
    for CreatedView {
        name,
        query,
        emits_closed_windows,
    } in views
    {
        if !existing.contains(&name.as_str()) {
            continue;
        }
        let view_rows = rows(&client, &format!("SELECT * FROM {name}"))
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        let batch_rows = rows(&client, query)
            .await
            .map_err(|e| format!("recompute of {name}: {e}"))?;
        if *emits_closed_windows {
            if let Some(row) = view_rows.iter().find(|r| !batch_rows.contains(r)) {
                return Err(format!(
                    "window {row:?} of {name} (emitted on window close) is not in a batch recompute of its query\n  query: {query}\n  batch: {batch_rows:?}"
                ));
            }
        } else if view_rows != batch_rows {
            return Err(format!(
                "view {name} differs from a batch recompute of its query\n  query: {query}\n  view:  {view_rows:?}\n  batch: {batch_rows:?}"
            ));
        }
    }
    Ok(())
}

async fn run_file(path: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = WeirServer::start(&dir.path().join("data"), 50).await;
    let views = Arc::new(Mutex::new(Vec::new()));
    let port = server.port;
    let views_for_conn = views.clone();
    let mut runner = sqllogictest::Runner::new(move || {
        let views = views_for_conn.clone();
        async move {
            let conn_str = format!("host=127.0.0.1 port={port} user=weir dbname=weir");
            let (client, connection) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
                .await
                .map_err(describe)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(WeirDb { client, views })
        }
    });
    runner.with_column_validator(sqllogictest::default_column_validator);
    let result = runner
        .run_file_async(path)
        .await
        .map_err(|e| format!("{e}\nserver log:\n{}", server.log()));
    runner.shutdown_async().await;
    result?;
    let views = views.lock().unwrap().clone();
    check_views_against_recompute(&server, &views).await
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql-tests");
    let mut files: Vec<PathBuf> = [root.clone(), root.join("nexmark")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).expect("sql-tests directory"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .filter(|p| {
            filter
                .as_ref()
                .is_none_or(|f| p.to_string_lossy().contains(f.as_str()))
        })
        .collect();
    files.sort();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .to_string_lossy()
            .to_string();
        match runtime.block_on(run_file(file)) {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n{e}\n");
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
