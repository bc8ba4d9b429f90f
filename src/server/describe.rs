//! Parse and Describe for the extended protocol: a statement is parsed once into a
//! [`Prepared`] with its parameter types and result columns (for a FETCH, the columns of the
//! cursor it reads; for a DECLARE, the parameters of the cursor's query).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast;
use pgwire::api::portal::Format;
use pgwire::api::results::FieldInfo;
use pgwire::api::stmt::QueryParser;
use pgwire::api::{ClientInfo, SessionExtensions, Type};
use pgwire::error::PgWireResult;

use super::{cursor, encode, pg_error, poisoned, wire_error};
use crate::db::Database;
use crate::error::{Result, WeirError};
use crate::sql::parse::{self, ShowKind, Statement};

/// A statement prepared by Parse: parsed once, with its parameter and result types.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub(super) stmt: Option<Statement>,
    /// The SQL text given to Parse, for the statement log.
    pub(super) sql: Arc<str>,
    pub(super) param_types: Vec<Type>,
    /// Result columns, when the statement returns rows.
    pub(super) schema: Option<SchemaRef>,
}

pub struct WeirParser {
    pub(super) db: Arc<Database>,
}

#[async_trait]
impl QueryParser for WeirParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
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
        let (param_types, schema) =
            describe(&self.db, &stmt, types, client.session_extensions()).await?;
        Ok(Some(Prepared {
            stmt: Some(stmt),
            sql: sql.into(),
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
    session: &SessionExtensions,
) -> PgWireResult<(Vec<Type>, Option<SchemaRef>)> {
    if let Statement::Standard(inner) = stmt {
        match inner.as_ref() {
            ast::Statement::Fetch { name, .. } => {
                let name = cursor::name(name);
                let schema = cursor::of(session)
                    .lock()
                    .map_err(|_| poisoned())?
                    .schema(&name)
                    .ok_or_else(|| {
                        pg_error("34000", format!("cursor \"{name}\" does not exist"))
                    })?;
                return Ok((vec![], Some(schema)));
            }
            ast::Statement::Declare { stmts } => {
                let declare = cursor::Declare::from_ast(stmts)?;
                let query = ast::Statement::Query(declare.query);
                let plan = db.plan(&query).await.map_err(wire_error)?;
                let inferred = plan
                    .get_parameter_types()
                    .map_err(|e| wire_error(e.into()))?;
                return Ok((merge_parameter_types(inferred, client_types), None));
            }
            _ => {}
        }
    }
    describe_statement(db, stmt, client_types)
        .await
        .map_err(wire_error)
}

async fn describe_statement(
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
            ast::Statement::ShowVariable { variable } => text(&super::session::var_name(variable)),
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
