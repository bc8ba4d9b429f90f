//! The Postgres wire front door (pgwire): sessions, the simple and extended query protocols
//! (with suspended portals), cursors, COPY FROM STDIN and TO STDOUT, cancel requests,
//! statement_timeout, and errors as proper ErrorResponses. Every frontend message is checked
//! as bytes before pgwire decodes it (`wire.rs`).
//!
//! Each statement goes: text → [`crate::sql::parse`] → session statements handled here
//! (SET, SHOW var, BEGIN, DECLARE / FETCH / CLOSE, COPY ...) → everything else to
//! [`Database::execute`] → rows encoded in the format the client asked for.

pub mod accept;
mod auth;
mod copy;
mod copy_out;
mod cursor;
mod describe;
mod encode;
mod numeric;
mod params;
mod session;
mod tls;
mod transaction;
mod wire;

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast;
use futures::{Sink, SinkExt, stream};
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_describe_response};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, DescribeStatementResponse, QueryResponse, Response,
    Tag as PgTag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, DEFAULT_NAME, PgWireServerHandlers,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::{Describe, TARGET_TYPE_BYTE_PORTAL};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::ParameterStatus;
use tokio::net::TcpListener;

use crate::db::{Database, Output, Tag};
use crate::error::{Result, WeirError};
use crate::sql::parse::{self, Statement};

pub use auth::{AuthMethod, check_exposure};
pub use copy::PendingCopy;
pub use describe::{Prepared, WeirParser};
pub use tls::{Tls, load as load_tls};

/// How the Postgres listener admits clients (`--pg-auth`, `--tls-*`, `--pg-max-connections`).
pub struct PgListenerOptions {
    pub auth: AuthMethod,
    /// TLS offered to clients that ask for it (an SSLRequest); None: refused, plain only.
    pub tls: Option<Tls>,
    /// Refuse clients that did not negotiate TLS.
    pub tls_required: bool,
    /// Sessions open at once, over every role.
    pub max_connections: usize,
    /// Statements that take at least this long are logged at info (None: never).
    pub log_slow_statements: Option<std::time::Duration>,
    /// How long a client has to finish its start-up and log in.
    pub authentication_timeout: std::time::Duration,
}

impl Default for PgListenerOptions {
    fn default() -> Self {
        PgListenerOptions {
            auth: AuthMethod::Trust,
            tls: None,
            tls_required: false,
            max_connections: crate::config::PG_MAX_CONNECTIONS_DEFAULT,
            log_slow_statements: Some(std::time::Duration::from_millis(
                crate::config::LOG_SLOW_STATEMENTS_MS_DEFAULT,
            )),
            authentication_timeout: std::time::Duration::from_millis(
                crate::config::AUTHENTICATION_TIMEOUT_MS_DEFAULT,
            ),
        }
    }
}

/// Serves the Postgres protocol on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    db: Arc<Database>,
    options: PgListenerOptions,
) -> std::io::Result<()> {
    let handler = Arc::new(Handler::new(db.clone(), options)?);
    let handlers = Arc::new(Handlers {
        cancel: Arc::new(DefaultCancelHandler::new(handler.connections.clone())),
        handler,
    });
    let mut acceptor = accept::Acceptor::new(listener, "postgres");
    loop {
        let (socket, _) = acceptor.accept().await;
        let handlers = handlers.clone();
        let db = db.clone();
        tokio::spawn(async move {
            db.listeners.pg.connection_opened();
            if let Err(e) = wire::serve(socket, handlers).await {
                tracing::debug!("connection ended: {e}");
            }
            db.listeners.pg.connection_closed();
        });
    }
}

/// One line per statement at debug, and at info when it took at least `slow` (Postgres's
/// log_min_duration_statement). The text is cut at [`STATEMENT_LOG_CHARS_MAX`] characters.
fn log_statement(
    sql: &str,
    elapsed: std::time::Duration,
    failed: bool,
    slow: Option<std::time::Duration>,
) {
    let text = match sql.char_indices().nth(STATEMENT_LOG_CHARS_MAX) {
        Some((cut, _)) => &sql[..cut],
        None => sql,
    };
    let elapsed_ms = elapsed.as_secs_f64() * 1e3;
    let user = crate::auth::current_user();
    if slow.is_some_and(|limit| elapsed >= limit) {
        tracing::info!(elapsed_ms, failed, %user, statement = text.trim(), "slow statement");
    } else {
        tracing::debug!(elapsed_ms, failed, %user, statement = text.trim(), "statement");
    }
}

/// Longest statement text a log line carries, in characters.
const STATEMENT_LOG_CHARS_MAX: usize = 1000;

struct Handlers {
    handler: Arc<Handler>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handler.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handler.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.handler.clone()
    }
    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.handler.clone()
    }
    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Per-server state shared by all connections.
pub struct Handler {
    db: Arc<Database>,
    parser: Arc<WeirParser>,
    /// COPY FROM STDIN in progress, by connection.
    copies: Mutex<HashMap<SocketAddr, PendingCopy>>,
    /// What start-up reports in ParameterStatus.
    parameters: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
    /// Each session's cancel handle, by (pid, secret key), for CancelRequests.
    connections: Arc<ConnectionManager>,
    options: PgListenerOptions,
    scram: auth::Scram,
    /// Open sessions per role (connection limits).
    sessions: Arc<auth::Sessions>,
}

impl Handler {
    fn new(db: Arc<Database>, options: PgListenerOptions) -> std::io::Result<Self> {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = crate::config::SERVER_VERSION.to_string();
        let setting = |name| {
            crate::config::pg_setting(name)
                .unwrap_or_default()
                .to_string()
        };
        parameters.date_style = setting("DateStyle");
        parameters.time_zone = setting("TimeZone");
        let cert_pem = options.tls.as_ref().map(|tls| tls.cert_pem.as_slice());
        let scram = auth::Scram::new(db.catalog.clone(), cert_pem)
            .map_err(|e| std::io::Error::other(format!("SCRAM channel binding: {e}")))?;
        Ok(Handler {
            parser: Arc::new(WeirParser { db: db.clone() }),
            db,
            copies: Mutex::new(HashMap::new()),
            parameters,
            pids: RandomPidSecretKeyGenerator::default(),
            connections: Arc::new(ConnectionManager::new()),
            options,
            scram,
            sessions: Default::default(),
        })
    }

    /// Runs one statement for a client and turns the outcome into a wire response, within the
    /// session's statement_timeout. A panic while running it (a bug, never expected) becomes
    /// an XX000 error for this statement only: the session and the server go on.
    async fn run<C>(
        &self,
        client: &mut C,
        sql: &str,
        stmt: Statement,
        params: &[ScalarValue],
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::FutureExt;
        let started = std::time::Instant::now();
        let activity = client
            .session_extensions()
            .get::<crate::db::sessions::SessionEntry>();
        // Marks the session idle again however the statement ends (a timeout returns early).
        let _active = activity
            .as_ref()
            .map(|entry| entry.info.statement_started(sql));
        let timeout = session::statement_timeout(client.metadata());
        let running =
            std::panic::AssertUnwindSafe(self.run_statement(client, stmt, params, format))
                .catch_unwind();
        let outcome = match timeout {
            Some(limit) => match tokio::time::timeout(limit, running).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Err(pg_error(
                        QUERY_CANCELED,
                        "canceling statement due to statement timeout",
                    ));
                }
            },
            None => running.await,
        };
        let result = match outcome {
            Ok(result) => result,
            Err(panic) => Err(wire_error(WeirError::from_panic(&*panic))),
        };
        self.db.listeners.pg.request(result.is_err());
        log_statement(
            sql,
            started.elapsed(),
            result.is_err(),
            self.options.log_slow_statements,
        );
        result
    }

    async fn run_statement<C>(
        &self,
        client: &mut C,
        stmt: Statement,
        params: &[ScalarValue],
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Statement::Standard(inner) = &stmt
            && let Some(response) = self
                .session_statement(client, inner, params, format)
                .await?
        {
            return Ok(response);
        }
        if client.transaction_status() != TransactionStatus::Idle {
            if let Some(what) = transaction::refusal(&stmt) {
                return Err(pg_error(
                    "25001",
                    format!(
                        "{what} cannot run inside a transaction block: it would take effect at \
                         once and ROLLBACK could not undo it; run it outside BEGIN ... COMMIT"
                    ),
                ));
            }
            if let Statement::Standard(inner) = &stmt
                && let ast::Statement::Insert(insert) = inner.as_ref()
            {
                // Checked now, written at COMMIT.
                let (target, batch) = self
                    .db
                    .insert_rows(insert.clone(), params)
                    .await
                    .map_err(wire_error)?;
                let n = batch.num_rows();
                transaction::of(client.session_extensions())
                    .lock()
                    .map_err(|_| poisoned())?
                    .buffer(target, batch)?;
                return Ok(Response::Execution(pg_tag(&Tag::with_rows("INSERT", n))));
            }
        }
        let read = is_read(&stmt);
        let output = if read {
            self.db.execute(stmt, params).await
        } else {
            // A write runs in its own task: a cancel or timeout stops the wait, never a write
            // half done.
            let backfilling = backfill_view(&stmt);
            let db = self.db.clone();
            let params = params.to_vec();
            let cancel = crate::dataflow::runtime::CancelFlag::default();
            let _cancel_on_drop = SetOnDrop(cancel.clone());
            let task = crate::auth::CURRENT_USER.scope(
                crate::auth::current_user(),
                crate::db::STATEMENT_CANCEL
                    .scope(cancel, async move { db.execute(stmt, &params).await }),
            );
            let mut task = tokio::spawn(task);
            let joined = match (
                backfilling,
                session::backfill_notice_interval(client.metadata()),
            ) {
                (Some(view), Some(every)) => {
                    self.notify_progress(client, &view, every, &mut task)
                        .await?
                }
                _ => task.await,
            };
            match joined {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(WeirError::from_panic(&*e.into_panic())),
                Err(e) => Err(WeirError::internal(format!("statement task failed: {e}"))),
            }
        };
        match output.map_err(wire_error)? {
            Output::Rows { schema, batches } => {
                rows_response(&schema, &batches, format).map_err(wire_error)
            }
            Output::Done(tag) => Ok(Response::Execution(pg_tag(&tag))),
        }
    }

    /// Waits for a CREATE MATERIALIZED VIEW of `view`, sending the client a NOTICE with its
    /// backfill's progress `every` so long while it runs (and has moved since the last one).
    async fn notify_progress<C, T>(
        &self,
        client: &mut C,
        view: &str,
        every: std::time::Duration,
        task: &mut tokio::task::JoinHandle<T>,
    ) -> PgWireResult<Result<T, tokio::task::JoinError>>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        let jobs = self.db.runtime.jobs();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut last_read = None;
        loop {
            tokio::select! {
                joined = &mut *task => return Ok(joined),
                _ = ticks.tick() => {
                    let progress = jobs
                        .lock()
                        .map_err(|_| poisoned())?
                        .values()
                        .find(|j| j.view == view)
                        .cloned();
                    let Some(job) = progress else { continue };
                    if last_read == Some(job.records_read) {
                        continue;
                    }
                    last_read = Some(job.records_read);
                    let notice = ErrorInfo::new(
                        "NOTICE".to_string(),
                        "00000".to_string(),
                        progress_message(&job, std::time::SystemTime::now()),
                    );
                    client
                        .send(PgWireBackendMessage::NoticeResponse(notice.into()))
                        .await?;
                }
            }
        }
    }

    /// Statements the wire layer answers itself: session variables, transaction blocks,
    /// cursors, COPY. None for everything else.
    async fn session_statement<C>(
        &self,
        client: &mut C,
        inner: &ast::Statement,
        params: &[ScalarValue],
        format: &Format,
    ) -> PgWireResult<Option<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let reported = |vars: &HashMap<String, String>| -> Vec<Option<String>> {
            session::REPORTED
                .iter()
                .map(|(name, _)| vars.get(*name).cloned())
                .collect()
        };
        if let ast::Statement::Deallocate { name, .. } = inner {
            // DEALLOCATE name: forget a statement prepared through the extended protocol.
            client.portal_store().rm_statement(&name.value);
            return Ok(Some(Response::Execution(PgTag::new("DEALLOCATE"))));
        }
        if let ast::Statement::Rollback {
            savepoint: Some(_), ..
        } = inner
            && transaction::of(client.session_extensions())
                .lock()
                .map_err(|_| poisoned())?
                .has_pending()
        {
            return Err(pg_error(
                "0A000",
                "ROLLBACK TO SAVEPOINT cannot undo part of a transaction block's writes yet; \
                 ROLLBACK the whole block",
            ));
        }
        let before = reported(client.metadata());
        if let Some(out) = session::handle(inner, client.metadata_mut()) {
            let after = reported(client.metadata());
            for ((old, new), (_, wire_name)) in before.iter().zip(&after).zip(session::REPORTED) {
                if let (true, Some(value)) = (old != new, new) {
                    client
                        .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                            wire_name.to_string(),
                            value.clone(),
                        )))
                        .await?;
                }
            }
            let status = client.transaction_status();
            return Ok(Some(match out.map_err(wire_error)? {
                session::SessionOutput::Tag(tag) => Response::Execution(pg_tag(&tag)),
                session::SessionOutput::Value { name, value } => {
                    let schema =
                        Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
                    let batch = datafusion::arrow::array::RecordBatch::try_new(
                        schema.clone(),
                        vec![Arc::new(datafusion::arrow::array::StringArray::from(vec![
                            value,
                        ]))],
                    )
                    .map_err(|e| wire_error(e.into()))?;
                    rows_response(&schema, &[batch], format).map_err(wire_error)?
                }
                session::SessionOutput::Begin => {
                    if status == TransactionStatus::Idle {
                        client.set_transaction_status(TransactionStatus::Transaction);
                    }
                    Response::TransactionStart(PgTag::new("BEGIN"))
                }
                session::SessionOutput::End { rollback } => {
                    // COMMIT of a failed block rolls it back, as Postgres reports.
                    let failed = status == TransactionStatus::Error;
                    let pending = {
                        let block = transaction::of(client.session_extensions());
                        let mut block = block.lock().map_err(|_| poisoned())?;
                        if rollback || failed {
                            block.discard();
                            None
                        } else {
                            block.take()?
                        }
                    };
                    // A COMMIT whose write fails wrote nothing; the block stays open, failed, for
                    // the client's ROLLBACK (as the E status pgwire then reports says).
                    if let Some((target, batch)) = pending {
                        // In its own task, as every write: a cancel never stops it half done.
                        let db = self.db.clone();
                        match tokio::spawn(async move { db.write_rows(&target, &batch).await })
                            .await
                        {
                            Ok(written) => written.map_err(wire_error)?,
                            Err(e) => return Err(wire_error(WeirError::internal(e.to_string()))),
                        };
                    }
                    cursor::of(client.session_extensions())
                        .lock()
                        .map_err(|_| poisoned())?
                        .end_transaction();
                    client.set_transaction_status(TransactionStatus::Idle);
                    let tag = if rollback || failed {
                        "ROLLBACK"
                    } else {
                        "COMMIT"
                    };
                    Response::TransactionEnd(PgTag::new(tag))
                }
            }));
        }
        let cursors = || cursor::of(client.session_extensions());
        match inner {
            ast::Statement::Declare { stmts } => {
                let declare = cursor::Declare::from_ast(stmts)?;
                declare
                    .check_transaction(client.transaction_status() != TransactionStatus::Idle)?;
                let query =
                    Statement::Standard(Box::new(ast::Statement::Query(declare.query.clone())));
                let Output::Rows { schema, batches } =
                    self.db.execute(query, params).await.map_err(wire_error)?
                else {
                    return Err(pg_error(
                        "42601",
                        "DECLARE CURSOR needs a query that returns rows",
                    ));
                };
                let table = cursors();
                table
                    .lock()
                    .map_err(|_| poisoned())?
                    .declare(&declare, &schema, &batches)?;
                Ok(Some(Response::Execution(PgTag::new("DECLARE CURSOR"))))
            }
            ast::Statement::Fetch {
                name, direction, ..
            } => {
                let count = cursor::Count::from_direction(direction)?;
                let table = cursors();
                let (rows, binary) = table
                    .lock()
                    .map_err(|_| poisoned())?
                    .fetch(&cursor::name(name), count)?;
                // A BINARY cursor answers in binary unless the client chose formats itself.
                let format = match format {
                    Format::UnifiedText if binary => &Format::UnifiedBinary,
                    other => other,
                };
                let mut response =
                    rows_response(&rows.schema(), &[rows], format).map_err(wire_error)?;
                if let Response::Query(q) = &mut response {
                    q.set_command_tag("FETCH");
                }
                Ok(Some(response))
            }
            ast::Statement::Close { cursor: target } => {
                let table = cursors();
                let mut table = table.lock().map_err(|_| poisoned())?;
                match target {
                    ast::CloseCursor::All => table.close_all(),
                    ast::CloseCursor::Specific { name } => table.close(&cursor::name(name))?,
                }
                Ok(Some(Response::Execution(PgTag::new("CLOSE CURSOR"))))
            }
            ast::Statement::Copy { .. } if copy_out::is_copy_out(inner) => {
                let plan = copy_out::plan(inner)?;
                let Output::Rows { schema, batches } = self
                    .db
                    .execute(plan.query, params)
                    .await
                    .map_err(wire_error)?
                else {
                    return Err(pg_error("42601", "COPY TO needs a query that returns rows"));
                };
                let rows = copy_out::send(client, &plan.format, &schema, &batches).await?;
                Ok(Some(Response::Execution(pg_tag(&Tag::with_rows(
                    "COPY", rows,
                )))))
            }
            ast::Statement::Copy { .. } => {
                let pending = copy::start(&self.db, inner).map_err(wire_error)?;
                let columns = pending.columns();
                self.copies
                    .lock()
                    .expect("copies lock")
                    .insert(client.socket_addr(), pending);
                Ok(Some(Response::CopyIn(CopyResponse::new(
                    0,
                    columns,
                    stream::empty(),
                ))))
            }
            _ => Ok(None),
        }
    }
}

/// SQLSTATE 57014.
const QUERY_CANCELED: &str = "57014";

/// An error the wire layer raises itself, with its SQLSTATE.
pub(crate) fn pg_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.into(),
    )))
}

fn poisoned() -> PgWireError {
    pg_error(
        "XX000",
        "the session's cursor table is unusable after an internal error",
    )
}

/// The view a statement creates with a backfill: a CREATE MATERIALIZED VIEW's name.
fn backfill_view(stmt: &Statement) -> Option<String> {
    match stmt {
        Statement::Standard(inner) => match inner.as_ref() {
            ast::Statement::CreateView(view) if view.materialized => {
                crate::db::object_name(&view.name).ok()
            }
            _ => None,
        },
        _ => None,
    }
}

/// A backfill progress NOTICE: `backfilling materialized view "v": 262144 of 600000 records
/// read (43%), about 3 s left`.
fn progress_message(
    job: &crate::dataflow::jobs::JobProgress,
    now: std::time::SystemTime,
) -> String {
    let percent = if job.records_total == 0 {
        100
    } else {
        job.records_read.saturating_mul(100) / job.records_total
    };
    let left = job
        .eta(now)
        .and_then(|eta| eta.duration_since(now).ok())
        .map(|d| format!(", about {} s left", d.as_secs().max(1)))
        .unwrap_or_default();
    format!(
        "backfilling materialized view \"{}\": {} of {} records read ({percent}%){left}",
        job.view, job.records_read, job.records_total
    )
}

/// Statements that only read: a cancel or timeout may stop them anywhere.
fn is_read(stmt: &Statement) -> bool {
    match stmt {
        Statement::Show(_) => true,
        Statement::Standard(s) => matches!(
            s.as_ref(),
            ast::Statement::Query(_) | ast::Statement::Explain { .. }
        ),
        _ => false,
    }
}

fn rows_response(
    schema: &SchemaRef,
    batches: &[datafusion::arrow::array::RecordBatch],
    format: &Format,
) -> Result<Response> {
    let fields = Arc::new(encode::fields(schema, format));
    let rows = encode::rows(fields.clone(), batches)?;
    Ok(Response::Query(QueryResponse::new(
        fields,
        stream::iter(rows),
    )))
}

fn pg_tag(tag: &Tag) -> PgTag {
    let t = PgTag::new(&tag.command);
    match tag.rows {
        Some(n) if tag.command == "INSERT" => t.with_oid(0).with_rows(n),
        Some(n) => t.with_rows(n),
        None => t,
    }
}

/// A Weir error as a Postgres ErrorResponse.
pub fn error_info(e: &WeirError) -> ErrorInfo {
    let mut info = ErrorInfo::new(
        "ERROR".to_string(),
        e.kind.sqlstate().to_string(),
        e.message.clone(),
    );
    info.detail = e.detail.clone();
    info.hint = e.hint.clone();
    info
}

fn wire_error(e: WeirError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&e)))
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = match parse::parse(query) {
            Ok(s) => s,
            Err(e) => {
                self.db.listeners.pg.request(true);
                return Ok(vec![Response::Error(Box::new(error_info(&e)))]);
            }
        };
        let mut responses = Vec::with_capacity(statements.len());
        for stmt in statements {
            if is_copy_out(&stmt) {
                // COPY TO writes its data straight to the client: what came before goes first.
                send_responses(client, std::mem::take(&mut responses)).await?;
            }
            match self
                .run(client, query, stmt, &[], &Format::UnifiedText)
                .await
            {
                Ok(r) => {
                    let copy = matches!(r, Response::CopyIn(_));
                    responses.push(r);
                    if copy {
                        break;
                    }
                }
                Err(e) => {
                    // Like Postgres: the rest of the query string is not run.
                    responses.push(Response::Error(Box::new(ErrorInfo::from(e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

fn is_copy_out(stmt: &Statement) -> bool {
    matches!(stmt, Statement::Standard(s) if copy_out::is_copy_out(s))
}

/// Sends the responses of earlier statements of a simple query now, in order, as pgwire
/// would after the last one (only rows and command tags come before a COPY TO).
async fn send_responses<C>(client: &mut C, responses: Vec<Response>) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    use pgwire::api::query::{send_execution_response, send_query_response};
    for response in responses {
        match response {
            Response::Query(q) => send_query_response(client, q, true).await?,
            Response::Execution(tag)
            | Response::TransactionStart(tag)
            | Response::TransactionEnd(tag) => send_execution_response(client, tag).await?,
            other => {
                return Err(pg_error(
                    "0A000",
                    format!("COPY TO cannot follow {other:?} in one query string"),
                ));
            }
        }
    }
    Ok(())
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = WeirParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// Describe of a portal also answers for a cursor of that name (psycopg describes the
    /// cursor it has just declared to learn its columns).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        if message.target_type == TARGET_TYPE_BYTE_PORTAL
            && client.portal_store().get_portal(name).is_none()
        {
            let schema = cursor::of(client.session_extensions())
                .lock()
                .map_err(|_| poisoned())?
                .schema(name);
            if let Some(schema) = schema {
                let fields = encode::fields(&schema, &Format::UnifiedText);
                return send_describe_response(client, &DescribePortalResponse::new(fields)).await;
            }
        }
        self._on_describe(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let Some(stmt) = prepared.stmt.clone() else {
            return Ok(Response::EmptyQuery);
        };
        let types: Vec<Type> = portal
            .statement
            .parameter_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.clone()
                    .or_else(|| prepared.param_types.get(i).cloned())
                    .unwrap_or(Type::TEXT)
            })
            .chain(
                prepared
                    .param_types
                    .iter()
                    .skip(portal.statement.parameter_types.len())
                    .cloned(),
            )
            .collect();
        let values = params::read(portal, &types).map_err(wire_error)?;
        self.run(
            client,
            &prepared.sql,
            stmt,
            &values,
            &portal.result_column_format,
        )
        .await
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        stmt: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let types = stmt.statement.param_types.clone();
        let fields = self.parser.get_result_schema(&stmt.statement, None)?;
        Ok(DescribeStatementResponse::new(types, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let fields = self.parser.get_result_schema(
            &portal.statement.statement,
            Some(&portal.result_column_format),
        )?;
        Ok(DescribePortalResponse::new(fields))
    }
}

/// Sets its flag when dropped: when a statement's wait ends early (a cancel request or
/// statement_timeout drops it), the statement's task learns it was canceled.
struct SetOnDrop(crate::dataflow::runtime::CancelFlag);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
