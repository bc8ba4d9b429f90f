//! The Postgres wire front door (pgwire): sessions, the simple and extended query protocols,
//! COPY FROM STDIN, and errors as proper ErrorResponses.
//!
//! Each statement goes: text → [`crate::sql::parse`] → session statements handled here
//! (SET, SHOW var, BEGIN ...) → everything else to [`Database::execute`] → rows encoded in the
//! format the client asked for.

mod copy;
mod encode;
mod session;

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast;
use futures::{Sink, stream};
use pgwire::api::auth::{self, StartupHandler};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response, Tag as PgTag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::{
    ClientInfo, PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;

use crate::db::{Database, Output, Tag};
use crate::error::{ErrorKind, Result, WeirError};
use crate::sql::parse::{self, ShowKind, Statement};

pub use copy::PendingCopy;

/// Serves the Postgres protocol on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, db: Arc<Database>) {
    let handlers = Arc::new(Handlers {
        handler: Arc::new(Handler::new(db)),
    });
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let handlers = handlers.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

struct Handlers {
    handler: Arc<Handler>,
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
}

/// Per-server state shared by all connections.
pub struct Handler {
    db: Arc<Database>,
    parser: Arc<WeirParser>,
    /// COPY FROM STDIN in progress, by connection.
    copies: Mutex<HashMap<SocketAddr, PendingCopy>>,
    /// What start-up reports in ParameterStatus.
    parameters: auth::DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
}

/// Start-up: every local user is trusted (Weir listens on loopback by default); the
/// ParameterStatus messages report the same server version as `SELECT version()`.
#[async_trait]
impl StartupHandler for Handler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            auth::protocol_negotiation(client, startup).await?;
            auth::save_startup_parameters_to_metadata(client, startup);
            let (pid, secret_key) = self.pids.generate(client);
            client.set_pid_and_secret_key(pid, secret_key);
            auth::finish_authentication(client, &self.parameters).await?;
        }
        Ok(())
    }
}

impl Handler {
    fn new(db: Arc<Database>) -> Self {
        let mut parameters = auth::DefaultServerParameterProvider::default();
        parameters.server_version = crate::config::SERVER_VERSION.to_string();
        Handler {
            parser: Arc::new(WeirParser { db: db.clone() }),
            db,
            copies: Mutex::new(HashMap::new()),
            parameters,
            pids: RandomPidSecretKeyGenerator::default(),
        }
    }

    /// Runs one statement for a client and turns the outcome into a wire response. A panic
    /// while running it (a bug, never expected) becomes an XX000 error for this statement
    /// only: the session and the server go on.
    async fn run<C: ClientInfo>(
        &self,
        client: &mut C,
        stmt: Statement,
        params: &[ScalarValue],
        format: &Format,
    ) -> Result<Response> {
        use futures::FutureExt;
        match std::panic::AssertUnwindSafe(self.run_statement(client, stmt, params, format))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => Err(WeirError::from_panic(&*panic)),
        }
    }

    async fn run_statement<C: ClientInfo>(
        &self,
        client: &mut C,
        stmt: Statement,
        params: &[ScalarValue],
        format: &Format,
    ) -> Result<Response> {
        if let Statement::Standard(inner) = &stmt {
            if let Some(out) = session::handle(inner, client.metadata_mut()) {
                return match out? {
                    session::SessionOutput::Tag(tag) => Ok(Response::Execution(pg_tag(&tag))),
                    session::SessionOutput::Value { name, value } => {
                        let schema =
                            Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
                        let batch = datafusion::arrow::array::RecordBatch::try_new(
                            schema.clone(),
                            vec![Arc::new(datafusion::arrow::array::StringArray::from(vec![
                                value,
                            ]))],
                        )?;
                        rows_response(&schema, &[batch], format)
                    }
                };
            }
            if let ast::Statement::Copy { .. } = inner.as_ref() {
                let pending = copy::start(&self.db, inner)?;
                let columns = pending.columns();
                self.copies
                    .lock()
                    .expect("copies lock")
                    .insert(client.socket_addr(), pending);
                return Ok(Response::CopyIn(CopyResponse::new(
                    0,
                    columns,
                    stream::empty(),
                )));
            }
        }
        match self.db.execute(stmt, params).await? {
            Output::Rows { schema, batches } => rows_response(&schema, &batches, format),
            Output::Done(tag) => Ok(Response::Execution(pg_tag(&tag))),
        }
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
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = match parse::parse(query) {
            Ok(s) => s,
            Err(e) => return Ok(vec![Response::Error(Box::new(error_info(&e)))]),
        };
        let mut responses = Vec::with_capacity(statements.len());
        for stmt in statements {
            match self.run(client, stmt, &[], &Format::UnifiedText).await {
                Ok(r) => {
                    let copy = matches!(r, Response::CopyIn(_));
                    responses.push(r);
                    if copy {
                        break;
                    }
                }
                Err(e) => {
                    // Like Postgres: the rest of the query string is not run.
                    responses.push(Response::Error(Box::new(error_info(&e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// A statement prepared by Parse: parsed once, with its parameter and result types.
#[derive(Debug, Clone)]
pub struct Prepared {
    stmt: Option<Statement>,
    param_types: Vec<Type>,
    /// Result columns, when the statement returns rows.
    schema: Option<SchemaRef>,
}

pub struct WeirParser {
    db: Arc<Database>,
}

#[async_trait]
impl QueryParser for WeirParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut stmts = parse::parse(sql).map_err(wire_error)?;
        if stmts.len() > 1 {
            return Err(wire_error(WeirError::syntax(
                "cannot insert multiple commands into a prepared statement",
            )));
        }
        let Some(stmt) = stmts.pop() else {
            return Ok(None);
        };
        let (param_types, schema) = describe(&self.db, &stmt, types).await.map_err(wire_error)?;
        Ok(Some(Prepared {
            stmt: Some(stmt),
            param_types,
            schema,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.clone())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(match &stmt.schema {
            Some(schema) => encode::fields(schema, format.unwrap_or(&Format::UnifiedBinary)),
            None => vec![],
        })
    }
}

/// Parameter types and result columns of a statement, for Describe.
async fn describe(
    db: &Database,
    stmt: &Statement,
    client_types: &[Option<Type>],
) -> Result<(Vec<Type>, Option<SchemaRef>)> {
    let text = |name: &str| {
        Some(Arc::new(Schema::new(vec![Field::new(
            name,
            DataType::Utf8,
            false,
        )])))
    };
    let schema = match stmt {
        Statement::Show(kind) => {
            let second = match kind {
                ShowKind::Topics => "partitions",
                ShowKind::MaterializedViews => "inputs",
                _ => "topic",
            };
            Some(Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new(second, DataType::Utf8, false),
            ])))
        }
        Statement::Standard(inner) => match inner.as_ref() {
            ast::Statement::ShowVariable { variable } => text(
                &variable
                    .iter()
                    .map(|v| v.value.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            ast::Statement::Explain { .. } => text("QUERY PLAN"),
            ast::Statement::Query(_) | ast::Statement::Insert(_) => {
                let plan = db.plan(inner).await?;
                let param_types = merge_parameter_types(plan.get_parameter_types()?, client_types);
                let schema = match inner.as_ref() {
                    ast::Statement::Query(_) => Some(Arc::new(plan.schema().as_arrow().clone())),
                    _ => None,
                };
                return Ok((param_types, schema));
            }
            ast::Statement::Update(_) | ast::Statement::Delete(_) => {
                let types = db.dml_parameter_types(inner).await?;
                return Ok((merge_parameter_types(types, client_types), None));
            }
            _ => None,
        },
        _ => None,
    };
    let params = client_types
        .iter()
        .map(|t| t.clone().unwrap_or(Type::TEXT))
        .collect();
    Ok((params, schema))
}

/// Parameter types for Describe: what the client declared, else what was inferred, else text.
fn merge_parameter_types(
    mut inferred: HashMap<String, Option<DataType>>,
    client_types: &[Option<Type>],
) -> Vec<Type> {
    let n = inferred.len().max(client_types.len());
    (0..n)
        .map(|i| {
            let client = client_types.get(i).cloned().flatten();
            let found = inferred
                .remove(&format!("${}", i + 1))
                .flatten()
                .map(|t| encode::pg_type(&t));
            client.or(found).unwrap_or(Type::TEXT)
        })
        .collect()
}

/// Reads bound parameters as ScalarValues of their declared types.
fn params(portal: &Portal<Prepared>, types: &[Type]) -> Result<Vec<ScalarValue>> {
    let bad =
        |e: PgWireError| WeirError::new(ErrorKind::InvalidText, format!("invalid parameter: {e}"));
    let mut out = Vec::with_capacity(portal.parameter_len());
    for i in 0..portal.parameter_len() {
        let t = types.get(i).cloned().unwrap_or(Type::TEXT);
        let v = match t {
            Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, &t).map_err(bad)?),
            Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, &t).map_err(bad)?),
            Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, &t).map_err(bad)?),
            Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, &t).map_err(bad)?),
            Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, &t).map_err(bad)?),
            Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, &t).map_err(bad)?),
            Type::NUMERIC => ScalarValue::Utf8(
                portal
                    .parameter::<rust_decimal::Decimal>(i, &t)
                    .map_err(bad)?
                    .map(|d| d.to_string()),
            ),
            Type::TIMESTAMP => ScalarValue::Utf8(
                portal
                    .parameter::<chrono::NaiveDateTime>(i, &t)
                    .map_err(bad)?
                    .map(|d| d.to_string()),
            ),
            Type::DATE => ScalarValue::Utf8(
                portal
                    .parameter::<chrono::NaiveDate>(i, &t)
                    .map_err(bad)?
                    .map(|d| d.to_string()),
            ),
            _ => ScalarValue::Utf8(portal.parameter::<String>(i, &Type::TEXT).map_err(bad)?),
        };
        out.push(v);
    }
    Ok(out)
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = WeirParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
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
        let values = params(portal, &types).map_err(wire_error)?;
        self.run(client, stmt, &values, &portal.result_column_format)
            .await
            .map_err(wire_error)
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
