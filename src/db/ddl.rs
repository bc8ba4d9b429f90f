//! DDL: topics, sources, tables and materialized views — creating, restoring and dropping.
//!
//! `create_object` serves both a user's CREATE and start-up (with the stored item), so a
//! restored object is built by exactly the code that first built it.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::sql::sqlparser::ast;

use super::{Database, Output, Tag, object_name};
use crate::auth::privileges::Object;
use crate::catalog::checks::ColumnChecks;
use crate::catalog::{
    CatalogItem, Entry, ItemKind, SinkDef, SourceDef, TableData, TableDef, ViewDef,
};
use crate::dataflow::actor::{InputSource, ViewFlow};
use crate::dataflow::ops::row_errors::OnRowError;
use crate::dataflow::topic_sink::{CommittedEnds, SinkMode, TopicSink};
use crate::dataflow::view_rows::ViewRows;
use crate::error::{ErrorKind, Result, WeirError};
use crate::sources::generator::{self, GeneratorHandle, NexmarkOptions};
use crate::sources::reader::{Decoding, EventTime};
use crate::sql::event_time::WatermarkDef;
use crate::sql::parse::{self, Statement};
use crate::sql::stream_plan::{StreamPlan, StreamProps, check_deterministic, plan_stream};
use crate::sql::view_options::ViewOptions;
use crate::state::WriteBatch;
use crate::topics::TopicConfig;
use std::sync::atomic::AtomicBool;

/// Prefix of the internal topics holding table changelogs.
const TABLE_TOPIC_PREFIX: &str = "_weir.table.";

impl Database {
    pub(super) fn create_topic(
        &self,
        name: &str,
        options: &[(String, String)],
        if_not_exists: bool,
    ) -> Result<Output> {
        let mut config = TopicConfig::default();
        for (key, value) in options {
            config.set(key, value).map_err(|message| {
                WeirError::new(ErrorKind::InvalidParameter, message).with_hint(
                    "topic options: partitions, retention, retention_bytes, segment_bytes, cleanup_policy",
                )
            })?;
        }
        if if_not_exists && self.topics.topic(name).is_some() {
            return Ok(Output::Done(Tag::new("CREATE TOPIC")));
        }
        self.topics.create_topic(name, config)?;
        Ok(Output::Done(Tag::new("CREATE TOPIC")))
    }

    pub(crate) fn drop_topic(&self, name: &str, if_exists: bool) -> Result<Output> {
        if self.topics.topic(name).is_none() && if_exists {
            return Ok(Output::Done(Tag::new("DROP TOPIC")));
        }
        self.require_owner(&Object::Topic(name.to_string()))?;
        let users = self.catalog.topic_users(name);
        if !users.is_empty() {
            return Err(WeirError::new(
                ErrorKind::DependentObjects,
                format!("cannot drop topic {name} because other objects depend on it"),
            )
            .with_hint(format!("{} reads it; drop that first", users.join(", "))));
        }
        self.topics.drop_topic(name)?;
        self.forget_topic(name)?;
        Ok(Output::Done(Tag::new("DROP TOPIC")))
    }

    /// CREATE SOURCE / TABLE / MATERIALIZED VIEW, or (with `restored`) rebuilding one at start-up.
    pub(super) async fn create_object(
        &self,
        stmt: Statement,
        restored: Option<CatalogItem>,
    ) -> Result<Output> {
        match stmt {
            Statement::CreateSource(create) => {
                if self.catalog.get(&create.name).is_some()
                    && create.if_not_exists
                    && restored.is_none()
                {
                    return Ok(Output::Done(Tag::new("CREATE SOURCE")));
                }
                if restored.is_none() {
                    self.catalog.ensure_free(&create.name)?;
                }
                let schema = columns_schema(&create.columns);
                let event_time = create
                    .watermark
                    .as_ref()
                    .map(|w| event_time(&create.columns, w))
                    .transpose()?;
                let (topic, owns_topic) = match (&create.topic, &restored) {
                    (_, Some(item)) => (
                        create.topic.clone().unwrap_or(create.name.clone()),
                        item.owns_topic,
                    ),
                    (_, None) if let Some(generator) = &create.generator => {
                        self.create_generated_topic(&create.name, generator).await?;
                        (create.name.clone(), true)
                    }
                    (Some(t), None) => {
                        self.topics.topic(t).ok_or_else(|| {
                            WeirError::new(
                                ErrorKind::UndefinedTable,
                                format!("topic \"{t}\" does not exist"),
                            )
                            .with_hint(format!(
                                "CREATE TOPIC {t} first, or leave out FROM TOPIC to create one"
                            ))
                        })?;
                        (t.clone(), false)
                    }
                    (None, None) => match self.topics.topic(&create.name) {
                        Some(_) => (create.name.clone(), false),
                        None => {
                            self.topics.create_topic(&create.name, Default::default())?;
                            (create.name.clone(), true)
                        }
                    },
                };
                let persist = restored.is_none();
                let item = match restored {
                    Some(item) => item,
                    None => CatalogItem {
                        id: self.catalog.next_id()?,
                        name: create.name.clone(),
                        kind: ItemKind::Source,
                        create_sql: {
                            let mut c = create.clone();
                            c.topic = Some(topic.clone());
                            c.to_sql()
                        },
                        depends_on: vec![],
                        owns_topic,
                    },
                };
                let def = SourceDef {
                    item,
                    schema,
                    topic: topic.clone(),
                    format: create.format,
                    generator: create.generator.clone(),
                    event_time,
                };
                self.catalog.insert(Entry::Source(Arc::new(def)), persist)?;
                if let Some(generator) = create.generator
                    && (!generator.fills_at_create() || !persist)
                {
                    let topic = self.topics.topic(&topic).ok_or_else(|| {
                        WeirError::internal(format!("the topic of source {} is gone", create.name))
                    })?;
                    let handle = GeneratorHandle::spawn(&create.name, topic, generator);
                    self.generators
                        .lock()
                        .expect("generators lock")
                        .insert(create.name.clone(), handle);
                }
                Ok(Output::Done(Tag::new("CREATE SOURCE")))
            }
            Statement::CreateSink(create) => self.create_sink(create, restored).await,
            Statement::Standard(stmt) => match *stmt {
                ast::Statement::CreateTable(create) => self.create_table(create, restored).await,
                ast::Statement::CreateView(view) => self.create_view(view, restored).await,
                other => Err(WeirError::internal(format!("not a CREATE: {other}"))),
            },
            _ => Err(WeirError::internal("not a CREATE")),
        }
    }

    /// The topic of a new generated source; a bounded generator without a rate limit fills it
    /// here, before the source exists (if that fails, the topic goes again).
    async fn create_generated_topic(&self, name: &str, generator: &NexmarkOptions) -> Result<()> {
        let config = TopicConfig {
            partitions: generator.partitions,
            ..TopicConfig::default()
        };
        let topic = self.topics.create_topic(name, config).map_err(|e| {
            WeirError::from(e).with_hint("a generated source writes a new topic of its own name; drop the topic or name the source differently")
        })?;
        if !generator.fills_at_create() {
            return Ok(());
        }
        let options = generator.clone();
        let filled = tokio::task::spawn_blocking(move || {
            generator::fill(&topic, &options, &AtomicBool::new(false))
        })
        .await
        .map_err(|e| WeirError::internal(format!("generator: {e}")))
        .and_then(|r| r);
        if let Err(e) = filled {
            self.topics.drop_topic(name)?;
            return Err(e);
        }
        Ok(())
    }

    async fn create_table(
        &self,
        create: ast::CreateTable,
        restored: Option<CatalogItem>,
    ) -> Result<Output> {
        let name = object_name(&create.name)?;
        if restored.is_none() {
            if create.if_not_exists && self.catalog.get(&name).is_some() {
                return Ok(Output::Done(Tag::new("CREATE TABLE")));
            }
            self.catalog.ensure_free(&name)?;
        }
        if create.query.is_some() {
            return Err(
                WeirError::unsupported("CREATE TABLE ... AS is not supported")
                    .with_hint("use CREATE MATERIALIZED VIEW ... AS"),
            );
        }
        let mut columns = parse::columns(&create.columns)?;
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let checks = ColumnChecks::from_create(&create, &names, restored.is_none())?;
        for constraint in &create.constraints {
            if let ast::TableConstraint::PrimaryKey(pk) = constraint {
                for col in &pk.columns {
                    let col_name = col.column.expr.to_string().to_ascii_lowercase();
                    let c = columns
                        .iter_mut()
                        .find(|c| c.name == col_name)
                        .ok_or_else(|| {
                            WeirError::new(
                                ErrorKind::UndefinedColumn,
                                format!("column \"{col_name}\" named in key does not exist"),
                            )
                        })?;
                    c.primary_key = true;
                }
            }
        }
        let primary_key: Vec<usize> = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.primary_key)
            .map(|(i, _)| i)
            .collect();
        if primary_key.is_empty() {
            return Err(WeirError::unsupported("a table needs a PRIMARY KEY")
                .with_hint("for append-only data use CREATE SOURCE; for a table add PRIMARY KEY to its key column(s)"));
        }
        let schema = columns_schema(&columns);
        let topic_name = format!("{TABLE_TOPIC_PREFIX}{name}");
        let topic = match self.topics.topic(&topic_name) {
            Some(t) if restored.is_some() => t,
            Some(_) => {
                // No table owns it (the name is free): the leftover of a crash between creating
                // the topic and committing the table, or between dropping them, or of a dropped
                // table whose changelog a source still reads. Start afresh unless one does.
                let users = self.catalog.topic_users(&topic_name);
                if !users.is_empty() {
                    return Err(WeirError::new(
                        ErrorKind::DependentObjects,
                        format!("the changelog topic {topic_name} of an earlier table {name} is still read"),
                    )
                    .with_hint(format!("{} reads it; drop that first", users.join(", "))));
                }
                self.topics.drop_topic(&topic_name)?;
                self.topics.create_topic(&topic_name, Default::default())?
            }
            None => self.topics.create_topic(&topic_name, Default::default())?,
        };
        let data = TableData::new(&name, schema.clone(), primary_key.clone())?;
        data.replay(&topic)?;
        let persist = restored.is_none();
        let item = match restored {
            Some(item) => item,
            None => CatalogItem {
                id: self.catalog.next_id()?,
                name: name.clone(),
                kind: ItemKind::Table,
                create_sql: ast::Statement::CreateTable(create).to_string(),
                depends_on: vec![],
                owns_topic: true,
            },
        };
        let def = TableDef {
            item,
            schema,
            primary_key,
            topic: topic_name,
            data,
            write_lock: Default::default(),
            checks,
        };
        self.catalog.insert(Entry::Table(Arc::new(def)), persist)?;
        Ok(Output::Done(Tag::new("CREATE TABLE")))
    }

    /// Plans a view's query into a dataflow and renames columns the way Postgres names them.
    /// A new view (not `restoring` one from the catalog) must be deterministic.
    async fn plan_view(
        &self,
        query: &ast::Query,
        restoring: bool,
        emit_on_window_close: bool,
        on_row_error: OnRowError,
    ) -> Result<(StreamPlan, Vec<String>)> {
        let plan = self
            .plan(&ast::Statement::Query(Box::new(query.clone())))
            .await?;
        if !restoring {
            check_deterministic(&plan)?;
            self.check_reads(&plan)?;
        }
        let optimized = self.ctx.state().optimize(&plan)?;
        let catalog = self.catalog.clone();
        let relation = move |name: &str| match catalog.get(name) {
            Some(Entry::Table(t)) => StreamProps {
                key: Some(t.primary_key.clone()),
                append_only: false,
                watermarks: Vec::new(),
            },
            Some(Entry::View(v)) => StreamProps {
                key: Some(v.key.clone()),
                append_only: v.append_only,
                watermarks: Vec::new(),
            },
            Some(Entry::Source(s)) => StreamProps {
                key: None,
                append_only: true,
                watermarks: s.event_time.iter().map(|t| t.column).collect(),
            },
            _ => StreamProps::default(),
        };
        let mut stream = plan_stream(
            &optimized,
            &relation,
            self.workers,
            emit_on_window_close,
            on_row_error,
        )?;
        let names: Vec<String> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| pg_column_name(f.name()))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            if !seen.insert(n.clone()) {
                return Err(WeirError::new(
                    ErrorKind::DuplicateColumn,
                    format!("column \"{n}\" specified more than once"),
                )
                .with_hint("give the columns distinct names with AS"));
            }
        }
        let fields: Vec<Field> = stream
            .schema
            .fields()
            .iter()
            .zip(&names)
            .map(|(f, n)| f.as_ref().clone().with_name(n))
            .collect();
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        stream.schema = schema.clone();
        stream.dataflow.output_schema = schema;
        let inputs = stream.inputs.clone();
        Ok((stream, inputs))
    }

    /// Plans `query` (a SELECT) into a view's dataflow exactly as CREATE MATERIALIZED VIEW
    /// does, without running it: the Nexmark benchmark's engine-only mode drives it over
    /// batches in memory.
    pub async fn plan_dataflow(&self, query: &str) -> Result<StreamPlan> {
        let mut stmts = parse::parse(query)?;
        match (stmts.pop(), stmts.is_empty()) {
            (Some(Statement::Standard(stmt)), true) => match *stmt {
                ast::Statement::Query(q) => Ok(self.plan_view(&q, false, false, None).await?.0),
                _ => Err(WeirError::syntax("expected a query")),
            },
            _ => Err(WeirError::syntax("expected one query")),
        }
    }

    async fn create_view(
        &self,
        view: ast::CreateView,
        restored: Option<CatalogItem>,
    ) -> Result<Output> {
        if !view.materialized {
            return Err(
                WeirError::unsupported("CREATE VIEW is not supported").with_hint(
                    "use CREATE MATERIALIZED VIEW: Weir keeps it up to date incrementally",
                ),
            );
        }
        if view.or_replace {
            return Err(WeirError::unsupported(
                "CREATE OR REPLACE MATERIALIZED VIEW is not supported",
            ));
        }
        let name = object_name(&view.name)?;
        if restored.is_none() {
            if view.if_not_exists && self.catalog.get(&name).is_some() {
                return Ok(Output::Done(Tag::new("CREATE MATERIALIZED VIEW")));
            }
            self.catalog.ensure_free(&name)?;
        }
        let options = ViewOptions::parse(&view.options)?;
        let skipped = options.on_row_error();
        let (stream, inputs) = self
            .plan_view(
                &view.query,
                restored.is_some(),
                options.emit_on_window_close,
                skipped.clone(),
            )
            .await?;
        let mut depends_on: Vec<String> = inputs.clone();
        depends_on.sort();
        depends_on.dedup();
        let mut sources = Vec::with_capacity(inputs.len());
        for input in &inputs {
            sources.push(self.input_source(input)?);
        }
        let restoring = restored.is_some();
        let item = match restored {
            Some(item) => item,
            None => CatalogItem {
                id: self.catalog.next_id()?,
                name: name.clone(),
                kind: ItemKind::MaterializedView,
                create_sql: ast::Statement::CreateView(view.clone()).to_string(),
                depends_on,
                owns_topic: false,
            },
        };
        let rows = Arc::new(ViewRows::new(
            item.id,
            stream.schema.clone(),
            stream.key.clone(),
            stream.append_only,
        )?);
        let flow = ViewFlow {
            id: item.id,
            name: name.clone(),
            dataflow: stream.dataflow,
            inputs: sources,
            rows: rows.clone(),
        };
        let def = ViewDef {
            item: item.clone(),
            schema: stream.schema,
            key: stream.key,
            append_only: stream.append_only,
            rows,
            skipped,
        };
        if restoring {
            self.runtime.restore_view(flow).await?;
            self.catalog.insert(Entry::View(Arc::new(def)), false)?;
        } else {
            // The catalog entry is committed with the view's backfill epoch: the view exists
            // exactly when its complete first contents do.
            let mut batch = WriteBatch::default();
            batch.put(
                crate::state::keys::catalog_key(&name),
                serde_json::to_vec(&item).map_err(|e| WeirError::internal(e.to_string()))?,
            );
            self.runtime
                .add_view(flow, batch, super::statement_cancel())
                .await?;
            self.catalog.insert(Entry::View(Arc::new(def)), false)?;
        }
        Ok(Output::Done(Tag::new("CREATE MATERIALIZED VIEW")))
    }

    async fn create_sink(
        &self,
        create: parse::CreateSink,
        restored: Option<CatalogItem>,
    ) -> Result<Output> {
        if restored.is_none() {
            if create.if_not_exists && self.catalog.get(&create.name).is_some() {
                return Ok(Output::Done(Tag::new("CREATE SINK")));
            }
            self.catalog.ensure_free(&create.name)?;
        }
        let view = match self.catalog.get(&create.view) {
            Some(Entry::View(v)) => v,
            Some(other) => {
                return Err(WeirError::new(
                    ErrorKind::WrongObjectType,
                    format!(
                        "\"{}\" is a {}, not a materialized view",
                        create.view,
                        other.item().kind.noun()
                    ),
                )
                .with_hint("a sink writes the changes of a materialized view"));
            }
            None => return Err(WeirError::undefined_table(&create.view)),
        };
        if create.upsert && view.key.is_empty() {
            return Err(WeirError::unsupported(format!(
                "materialized view \"{}\" has no key to upsert by",
                create.view
            ))
            .with_hint("upsert sinks need a view with GROUP BY (its key); use mode = 'append'"));
        }
        if restored.is_none() {
            let writers = self.catalog.topic_users(&create.topic);
            if !writers.is_empty() || create.topic.starts_with(TABLE_TOPIC_PREFIX) {
                return Err(WeirError::new(
                    ErrorKind::WrongObjectType,
                    format!("topic \"{}\" cannot take a sink", create.topic),
                )
                .with_detail(format!(
                    "it is used by {}",
                    if writers.is_empty() {
                        "a table".to_string()
                    } else {
                        writers.join(", ")
                    }
                ))
                .with_hint(
                    "a sink's topic is written by that sink alone; give the sink its own topic",
                ));
            }
        }
        let (topic, created) = match self.topics.topic(&create.topic) {
            Some(t) => (t, false),
            None if restored.is_none() => (
                self.topics
                    .create_topic(&create.topic, Default::default())?,
                true,
            ),
            None => return Err(WeirError::undefined_table(&create.topic)),
        };
        let restoring = restored.is_some();
        let item = match restored {
            Some(item) => item,
            None => CatalogItem {
                id: self.catalog.next_id()?,
                name: create.name.clone(),
                kind: ItemKind::Sink,
                create_sql: create.to_sql(),
                depends_on: vec![create.view.clone()],
                owns_topic: created,
            },
        };
        // Until its first epoch commits, consumers see what the topic held before the sink.
        let before = (0..topic.partitions())
            .map(|p| topic.end_offset(p))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let committed: CommittedEnds = Arc::new(std::sync::RwLock::new(before));
        let mode = if create.upsert {
            SinkMode::Upsert
        } else {
            SinkMode::Append
        };
        let sink = TopicSink::new(
            item.id,
            create.name.clone(),
            view.item.id,
            topic,
            mode,
            view.key.clone(),
            view.schema.clone(),
            !restoring,
            committed.clone(),
        );
        let mut extra = WriteBatch::default();
        if !restoring {
            extra.put(
                crate::state::keys::catalog_key(&create.name),
                serde_json::to_vec(&item).map_err(|e| WeirError::internal(e.to_string()))?,
            );
        }
        if let Err(e) = self.runtime.add_sink(sink, restoring, extra).await {
            if created {
                let _ = self.topics.drop_topic(&create.topic);
            }
            return Err(e);
        }
        let def = SinkDef {
            item,
            view: create.view,
            topic: create.topic,
            upsert: create.upsert,
            committed,
        };
        self.catalog.insert(Entry::Sink(Arc::new(def)), false)?;
        Ok(Output::Done(Tag::new("CREATE SINK")))
    }

    fn input_source(&self, name: &str) -> Result<InputSource> {
        let topic = |t: &str| {
            self.topics
                .topic(t)
                .ok_or_else(|| WeirError::undefined_table(t))
        };
        Ok(match self.catalog.get(name) {
            Some(Entry::Source(s)) => InputSource::Topic {
                topic: topic(&s.topic)?,
                decoding: Decoding::Rows {
                    format: s.format,
                    schema: s.schema.clone(),
                    event_time: s.event_time,
                },
            },
            Some(Entry::Table(t)) => InputSource::Topic {
                topic: topic(&t.topic)?,
                decoding: Decoding::Changelog {
                    schema: t.schema.clone(),
                },
            },
            Some(Entry::View(v)) => InputSource::View { view_id: v.item.id },
            Some(Entry::Sink(_)) => {
                return Err(WeirError::new(
                    ErrorKind::WrongObjectType,
                    format!("\"{name}\" is a sink, not a relation"),
                ));
            }
            None => return Err(WeirError::undefined_table(name)),
        })
    }

    /// DROP SOURCE / TABLE / MATERIALIZED VIEW of one or more names, with CASCADE dropping
    /// dependent views first. Every name is checked before anything is dropped, so a DROP
    /// that fails drops nothing.
    pub(super) async fn drop_relations(
        &self,
        kind: ItemKind,
        names: &[String],
        if_exists: bool,
        cascade: bool,
    ) -> Result<Output> {
        for name in names {
            self.check_drop(kind, name, if_exists, cascade, names)?;
        }
        for name in names {
            if self.catalog.get(name).is_some() {
                self.drop_with_dependents(name).await?;
            }
        }
        Ok(Output::Done(Tag::new(match kind {
            ItemKind::Source => "DROP SOURCE",
            ItemKind::Table => "DROP TABLE",
            ItemKind::MaterializedView => "DROP MATERIALIZED VIEW",
            ItemKind::Sink => "DROP SINK",
        })))
    }

    /// Whether `name` may be dropped as a `kind`; dependents listed in `dropping` too are fine.
    fn check_drop(
        &self,
        kind: ItemKind,
        name: &str,
        if_exists: bool,
        cascade: bool,
        dropping: &[String],
    ) -> Result<()> {
        let Some(entry) = self.catalog.get(name) else {
            if if_exists {
                return Ok(());
            }
            return Err(WeirError::new(
                ErrorKind::UndefinedTable,
                format!("{} \"{name}\" does not exist", kind.noun()),
            ));
        };
        if entry.item().kind != kind {
            return Err(WeirError::new(
                ErrorKind::WrongObjectType,
                format!("\"{name}\" is not a {}", kind.noun()),
            )
            .with_hint(format!(
                "use DROP {}",
                entry.item().kind.noun().to_uppercase()
            )));
        }
        let dependents: Vec<String> = self
            .catalog
            .dependents(name)
            .into_iter()
            .filter(|d| !dropping.contains(d))
            .map(|d| match self.catalog.get(&d) {
                Some(e) => format!("{} {d}", e.item().kind.noun()),
                None => d,
            })
            .collect();
        if !dependents.is_empty() && !cascade {
            return Err(WeirError::new(
                ErrorKind::DependentObjects,
                format!(
                    "cannot drop {} {name} because other objects depend on it",
                    kind.noun()
                ),
            )
            .with_detail(format!(
                "{} depends on {} {name}",
                dependents.join(", "),
                kind.noun()
            ))
            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
        }
        Ok(())
    }

    /// Drops `name` and, first, every view that reads it (checks are done).
    async fn drop_with_dependents(&self, name: &str) -> Result<()> {
        for dependent in self.catalog.dependents(name) {
            Box::pin(self.drop_with_dependents(&dependent)).await?;
        }
        let Some(entry) = self.catalog.get(name) else {
            return Ok(());
        };
        let mut batch = WriteBatch::default();
        self.catalog.remove(name, &mut batch);
        match &entry {
            Entry::View(v) => self.runtime.drop_view(v.item.id, batch).await?,
            Entry::Sink(s) => {
                self.runtime.drop_sink(s.item.id, batch).await?;
                self.drop_owned_topic(s.item.owns_topic, &s.topic)?;
            }
            Entry::Source(s) => {
                self.store.commit(batch)?;
                // Its generator (if any) stops before its topic goes.
                drop(
                    self.generators
                        .lock()
                        .expect("generators lock")
                        .remove(name),
                );
                self.drop_owned_topic(s.item.owns_topic, &s.topic)?;
            }
            Entry::Table(t) => {
                self.store.commit(batch)?;
                self.drop_owned_topic(true, &t.topic)?;
            }
        }
        Ok(())
    }

    /// Deletes the topic of a dropped source, sink or table when it created the topic and nothing in the
    /// catalog (already without the dropped object) still reads it: a topic another source reads
    /// stays, unowned, like one made with CREATE TOPIC.
    fn drop_owned_topic(&self, owns_topic: bool, topic: &str) -> Result<()> {
        if owns_topic && self.catalog.topic_users(topic).is_empty() {
            self.topics.drop_topic(topic)?;
            self.forget_topic(topic)?;
        }
        Ok(())
    }

    /// EXPLAIN CREATE MATERIALIZED VIEW prints the dataflow; EXPLAIN of a query prints
    /// DataFusion's logical plan.
    pub(super) async fn explain(&self, stmt: ast::Statement) -> Result<Output> {
        let text = match &stmt {
            ast::Statement::CreateView(view) if view.materialized => {
                let options = ViewOptions::parse(&view.options)?;
                let (stream, _) = self
                    .plan_view(
                        &view.query,
                        false,
                        options.emit_on_window_close,
                        options.on_row_error(),
                    )
                    .await?;
                let mut text = stream.dataflow.explain();
                if !stream.key.is_empty() {
                    let names: Vec<&str> = stream
                        .key
                        .iter()
                        .map(|&k| stream.schema.field(k).name().as_str())
                        .collect();
                    text.push_str(&format!("Key: {}\n", names.join(", ")));
                }
                text
            }
            ast::Statement::Query(_) => {
                let plan = self.plan(&stmt).await?;
                self.check_reads(&plan)?;
                let optimized = self.ctx.state().optimize(&plan)?;
                format!("{}\n", optimized.display_indent())
            }
            other => {
                return Err(WeirError::unsupported(format!(
                    "EXPLAIN of this statement is not supported: {}",
                    super::first_words(&other.to_string())
                )));
            }
        };
        let schema = Arc::new(Schema::new(vec![Field::new(
            "QUERY PLAN",
            DataType::Utf8,
            false,
        )]));
        let lines = StringArray::from(text.lines().collect::<Vec<_>>());
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(lines)])?;
        Ok(Output::Rows {
            schema,
            batches: vec![batch],
        })
    }
}

fn columns_schema(columns: &[parse::Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns.iter().map(parse::Column::field).collect::<Vec<_>>(),
    ))
}

/// The name Postgres gives an output column: a bare function call is named after its
/// function (`count(*)` → `count`); every other name is kept as is.
pub fn pg_column_name(name: &str) -> String {
    if let Some((func, _)) = name.split_once('(')
        && !func.is_empty()
        && func.chars().all(|c| c.is_alphanumeric() || c == '_')
    {
        return func.to_ascii_lowercase();
    }
    name.to_string()
}

/// A source's `WATERMARK FOR` checked against its columns: a TIMESTAMP column.
fn event_time(columns: &[parse::Column], watermark: &WatermarkDef) -> Result<EventTime> {
    let column = columns
        .iter()
        .position(|c| c.name == watermark.column)
        .ok_or_else(|| {
            WeirError::new(
                ErrorKind::UndefinedColumn,
                format!("column \"{}\" does not exist", watermark.column),
            )
            .with_hint("WATERMARK FOR names one of the source's columns")
        })?;
    if !matches!(
        columns[column].data_type,
        DataType::Timestamp(TimeUnit::Microsecond, _)
    ) {
        return Err(WeirError::new(
            ErrorKind::DatatypeMismatch,
            format!(
                "WATERMARK FOR column \"{}\" is {}, not a timestamp",
                watermark.column, columns[column].sql_type
            ),
        )
        .with_hint("event time is a TIMESTAMP or TIMESTAMPTZ column"));
    }
    Ok(EventTime {
        column,
        delay_micros: watermark.delay_micros,
    })
}
