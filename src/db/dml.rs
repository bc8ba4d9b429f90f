//! Writes: INSERT and COPY append to a source's topic or a table's changelog; UPDATE and
//! DELETE change a keyed table. A write returns only once it is durable in the log.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{CastOptions, cast_with_options, concat_batches};

/// Casts that fail on a value that does not fit (as Postgres does) instead of making it NULL.
const STRICT_CAST: CastOptions<'static> = CastOptions {
    safe: false,
    format_options: datafusion::arrow::util::display::FormatOptions::new(),
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;

use super::{Database, Output, Tag, bind_params, object_name};
use crate::auth::privileges::{Object, Privilege};
use crate::catalog::{Entry, SourceDef, TableDef};
use crate::error::{ErrorKind, Result, WeirError};
use crate::formats;
use crate::sql::parse::quote_ident;
use crate::topics::Record;

impl Database {
    /// The source or table a write goes to; views and unknown names are errors.
    pub(crate) fn write_target(&self, name: &str) -> Result<Entry> {
        match self.catalog.get(name) {
            Some(Entry::View(_)) => Err(WeirError::new(
                ErrorKind::WrongObjectType,
                format!("cannot change materialized view \"{name}\""),
            )
            .with_hint(
                "materialized views are maintained from their inputs; write to a source or table",
            )),
            Some(Entry::Sink(_)) => Err(WeirError::new(
                ErrorKind::WrongObjectType,
                format!("cannot write to sink \"{name}\""),
            )),
            Some(Entry::Source(s)) if let Some(writer) = self.catalog.sole_writer(&s.topic) => {
                Err(WeirError::new(
                    ErrorKind::WrongObjectType,
                    format!(
                        "cannot write to source \"{name}\": its topic \"{}\" is written by {writer}",
                        s.topic
                    ),
                ))
            }
            Some(entry) => Ok(entry),
            None => Err(WeirError::undefined_table(name)),
        }
    }

    pub(super) async fn insert(
        &self,
        insert: ast::Insert,
        params: &[ScalarValue],
    ) -> Result<Output> {
        let (target, batch) = self.insert_rows(insert, params).await?;
        let n = self.write_rows(&target, &batch).await?;
        Ok(Output::Done(Tag::with_rows("INSERT", n)))
    }

    /// The rows an INSERT would write and where, checked but not written (a transaction block
    /// keeps them until COMMIT).
    pub async fn insert_rows(
        &self,
        insert: ast::Insert,
        params: &[ScalarValue],
    ) -> Result<(Entry, RecordBatch)> {
        let ast::TableObject::TableName(name) = &insert.table else {
            return Err(WeirError::unsupported(
                "INSERT INTO a table function is not supported",
            ));
        };
        if insert.returning.is_some() || insert.on.is_some() {
            return Err(WeirError::unsupported(
                "INSERT ... RETURNING / ON CONFLICT is not supported",
            ));
        }
        let target = self.write_target(&object_name(name)?)?;
        self.require_write(&target, Privilege::Insert)?;
        let plan = self.plan(&ast::Statement::Insert(insert)).await?;
        self.check_reads(&plan)?;
        let plan = bind_params(plan, params)?;
        let LogicalPlan::Dml(dml) = plan else {
            return Err(WeirError::internal(
                "INSERT did not plan as a DML statement",
            ));
        };
        let batches = self
            .ctx
            .execute_logical_plan(dml.input.as_ref().clone())
            .await?
            .collect()
            .await?;
        let batch = conform(&target.schema(), &batches)?;
        Ok((target, batch))
    }

    /// Appends rows (already of the relation's schema) to a source or table; returns the count.
    pub(crate) async fn write_rows(&self, target: &Entry, batch: &RecordBatch) -> Result<usize> {
        if batch.num_rows() == 0 {
            return Ok(0);
        }
        match target {
            Entry::Source(source) => self.append_to_source(source, batch),
            Entry::Table(table) => {
                table.checks.check(&table.item.name, batch)?;
                let _guard = table.write_lock.lock().await;
                let topic = self.table_topic(table)?;
                table.data.writer().write(&topic, None, Some(batch))?;
                Ok(batch.num_rows())
            }
            Entry::View(_) | Entry::Sink(_) => Err(WeirError::internal(format!(
                "write to {}",
                target.item().name
            ))),
        }
    }

    fn append_to_source(&self, source: &SourceDef, batch: &RecordBatch) -> Result<usize> {
        let topic = self
            .topics
            .topic(&source.topic)
            .ok_or_else(|| WeirError::undefined_table(&source.topic))?;
        let records = Record::unkeyed_now(formats::encode_rows(source.format, batch)?);
        let partition = self.next_partition.fetch_add(1, Ordering::Relaxed) % topic.partitions();
        topic.append(partition, &records)?;
        Ok(records.len())
    }

    fn table_topic(&self, table: &TableDef) -> Result<Arc<crate::topics::Topic>> {
        self.topics
            .topic(&table.topic)
            .ok_or_else(|| WeirError::undefined_table(&table.topic))
    }

    pub(super) async fn update(
        &self,
        update: ast::Update,
        params: &[ScalarValue],
    ) -> Result<Output> {
        if update.from.is_some() || update.returning.is_some() || !update.table.joins.is_empty() {
            return Err(WeirError::unsupported(
                "UPDATE ... FROM / RETURNING is not supported",
            ));
        }
        let table = self.dml_table(&update.table.relation)?;
        self.require_change(&table, Privilege::Update, update.selection.is_some())?;
        let mut new_exprs: Vec<String> = table
            .schema
            .fields()
            .iter()
            .map(|f| quote_ident(f.name()))
            .collect();
        for assignment in &update.assignments {
            let ast::AssignmentTarget::ColumnName(col) = &assignment.target else {
                return Err(WeirError::unsupported(
                    "UPDATE of a column tuple is not supported",
                ));
            };
            let col = object_name(col)?;
            let i = table.schema.index_of(&col).map_err(|_| {
                WeirError::new(
                    ErrorKind::UndefinedColumn,
                    format!(
                        "column \"{col}\" of relation \"{}\" does not exist",
                        table.item.name
                    ),
                )
            })?;
            new_exprs[i] = format!("{}", assignment.value);
        }
        for (i, e) in new_exprs.iter_mut().enumerate() {
            *e = format!("{e} AS \"__weir_new_{i}\"");
        }
        let old_cols: Vec<String> = table
            .schema
            .fields()
            .iter()
            .map(|f| quote_ident(f.name()))
            .collect();
        let select = format!("{}, {}", old_cols.join(", "), new_exprs.join(", "));
        let _guard = table.write_lock.lock().await;
        let rows = self
            .select_from_table(&table, &select, update.selection.as_ref(), params)
            .await?;
        let width = table.schema.fields().len();
        let old = RecordBatch::try_new(table.schema.clone(), rows.columns()[..width].to_vec())?;
        let new_cols = rows.columns()[width..]
            .iter()
            .zip(table.schema.fields())
            .map(|(c, f)| cast_with_options(c, f.data_type(), &STRICT_CAST))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let new = RecordBatch::try_new(table.schema.clone(), new_cols)?;
        table.checks.check(&table.item.name, &new)?;
        if old.num_rows() > 0 {
            let topic = self.table_topic(&table)?;
            table.data.writer().write(&topic, Some(&old), Some(&new))?;
        }
        Ok(Output::Done(Tag::with_rows("UPDATE", old.num_rows())))
    }

    pub(super) async fn delete(
        &self,
        delete: ast::Delete,
        params: &[ScalarValue],
    ) -> Result<Output> {
        let from = match &delete.from {
            ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
        };
        if from.len() != 1
            || delete.using.is_some()
            || delete.returning.is_some()
            || !from[0].joins.is_empty()
        {
            return Err(WeirError::unsupported(
                "DELETE ... USING / RETURNING is not supported",
            ));
        }
        let table = self.dml_table(&from[0].relation)?;
        self.require_change(&table, Privilege::Delete, delete.selection.is_some())?;
        let _guard = table.write_lock.lock().await;
        let rows = self
            .select_from_table(&table, "*", delete.selection.as_ref(), params)
            .await?;
        let rows = RecordBatch::try_new(table.schema.clone(), rows.columns().to_vec())?;
        if rows.num_rows() > 0 {
            let topic = self.table_topic(&table)?;
            table.data.writer().write(&topic, Some(&rows), None)?;
        }
        Ok(Output::Done(Tag::with_rows("DELETE", rows.num_rows())))
    }

    /// The types of the `$n` parameters of an UPDATE or DELETE (for Describe): an assigned
    /// placeholder takes its column's type, the rest are inferred by planning the equivalent
    /// SELECT over the table.
    pub async fn dml_parameter_types(
        &self,
        stmt: &ast::Statement,
    ) -> Result<HashMap<String, Option<DataType>>> {
        let (relation, selection, values): (&ast::TableFactor, Option<&ast::Expr>, Vec<String>) =
            match stmt {
                ast::Statement::Update(u) => (
                    &u.table.relation,
                    u.selection.as_ref(),
                    u.assignments.iter().map(|a| a.value.to_string()).collect(),
                ),
                ast::Statement::Delete(d) => match &d.from {
                    ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t)
                        if t.len() == 1 =>
                    {
                        (&t[0].relation, d.selection.as_ref(), vec![])
                    }
                    _ => return Ok(HashMap::new()),
                },
                _ => return Ok(HashMap::new()),
            };
        let table = self.dml_table(relation)?;
        let mut types = HashMap::new();
        if let ast::Statement::Update(u) = stmt {
            for a in &u.assignments {
                if let (ast::AssignmentTarget::ColumnName(col), ast::Expr::Value(v)) =
                    (&a.target, &a.value)
                    && let ast::Value::Placeholder(p) = &v.value
                {
                    let column = object_name(col)?;
                    if let Ok(field) = table.schema.field_with_name(&column) {
                        types.insert(p.clone(), Some(field.data_type().clone()));
                    }
                }
            }
        }
        let select = if values.is_empty() {
            "*".to_string()
        } else {
            values.join(", ")
        };
        let filter = selection.map(|s| format!(" WHERE {s}")).unwrap_or_default();
        let sql = format!(
            "SELECT {select} FROM {}{filter}",
            quote_ident(&table.item.name)
        );
        if let Some(crate::sql::parse::Statement::Standard(query)) =
            crate::sql::parse::parse(&sql)?.pop()
        {
            for (name, t) in self.plan(&query).await?.get_parameter_types()? {
                let entry = types.entry(name).or_insert(None);
                if entry.is_none() {
                    *entry = t;
                }
            }
        }
        Ok(types)
    }

    /// UPDATE or DELETE on a table, and SELECT too when a WHERE reads its rows (as Postgres).
    fn require_change(&self, table: &TableDef, privilege: Privilege, filters: bool) -> Result<()> {
        let object = Object::Relation(table.item.name.clone());
        self.require(&object, privilege)?;
        if filters {
            self.require(&object, Privilege::Select)?;
        }
        Ok(())
    }

    fn dml_table(&self, relation: &ast::TableFactor) -> Result<Arc<TableDef>> {
        let ast::TableFactor::Table { name, .. } = relation else {
            return Err(WeirError::unsupported("UPDATE / DELETE needs a table name"));
        };
        let name = object_name(name)?;
        match self.write_target(&name)? {
            Entry::Table(t) => Ok(t),
            _ => Err(WeirError::new(ErrorKind::WrongObjectType, format!("cannot update or delete in source \"{name}\""))
                .with_hint("sources are append-only; use a table (CREATE TABLE ... PRIMARY KEY) for rows that change")),
        }
    }

    /// Evaluates `SELECT <select> FROM table WHERE <selection>` over the table's current
    /// contents. The caller holds the table's write lock, so nothing changes in between.
    async fn select_from_table(
        &self,
        table: &TableDef,
        select: &str,
        selection: Option<&ast::Expr>,
        params: &[ScalarValue],
    ) -> Result<RecordBatch> {
        let snapshot = table.data.snapshot()?;
        let ctx = SessionContext::new();
        let mem = MemTable::try_new(table.schema.clone(), vec![vec![snapshot]])?;
        ctx.register_table(table.item.name.as_str(), Arc::new(mem))?;
        let filter = selection.map(|s| format!(" WHERE {s}")).unwrap_or_default();
        let sql = format!(
            "SELECT {select} FROM {}{filter}",
            quote_ident(&table.item.name)
        );
        let Some(crate::sql::parse::Statement::Standard(stmt)) =
            crate::sql::parse::parse(&sql)?.pop()
        else {
            return Err(WeirError::internal(
                "UPDATE / DELETE did not plan as a query",
            ));
        };
        let plan = ctx
            .state()
            .statement_to_plan(DfStatement::Statement(stmt))
            .await?;
        let plan = bind_params(plan, params)?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
        Ok(concat_batches(&schema, &batches)?)
    }
}

/// One batch of exactly `schema` (names, types) from the batches a query produced.
pub(crate) fn conform(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let Some(first) = batches.first() else {
        return Ok(RecordBatch::new_empty(schema.clone()));
    };
    let all = concat_batches(&first.schema(), batches)?;
    let columns = all
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast_with_options(c, f.data_type(), &STRICT_CAST)
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
