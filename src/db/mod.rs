//! The database: the one place that knows every stage and wires them together.
//!
//! [`Database::execute`] shows a statement's whole life: parsed statement in, then DDL goes to
//! the catalog, topics and dataflow runtime; writes go to the log; reads go to serving (a
//! point lookup, or DataFusion over committed state); an [`Output`] comes back for the wire.

mod access;
mod ddl;
pub use ddl::pg_column_name;
mod dml;
pub mod listeners;
pub mod sessions;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::logical_expr::{LogicalPlan, ScalarUDF, Volatility, create_udf};
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::physical_plan::ColumnarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;

use crate::auth::privileges::{Object, Privilege};
use crate::catalog::{Catalog, Entry, ItemKind};
use crate::config;
use crate::dataflow::runtime::{CancelFlag, EpochLock, Runtime};
use crate::dataflow::state_cache::StateCache;
use crate::error::{ErrorKind, Result, WeirError};
use crate::pg_catalog;
use crate::serving::lookup::PointLookup;
use crate::serving::providers::{ReadContext, WeirSchema};
use crate::sources::generator::GeneratorHandle;
use crate::sql::parse::{ShowKind, Statement};
use crate::sql::roles::RoleStatement;
use crate::state::{StateStore, StoreKind};
use crate::topics::TopicStore;

tokio::task_local! {
    /// The cancel flag of the statement this task runs, when a client can cancel it: the wire
    /// layer runs each write in a task of its own (so a cancel never leaves a write half done)
    /// and sets the flag when the client stops waiting; a CREATE MATERIALIZED VIEW's backfill
    /// polls it.
    pub static STATEMENT_CANCEL: CancelFlag;
}

/// The running statement's cancel flag (a flag nobody sets outside a cancellable statement).
fn statement_cancel() -> CancelFlag {
    STATEMENT_CANCEL
        .try_with(|flag| flag.clone())
        .unwrap_or_default()
}

/// What a statement returns to the client.
#[derive(Debug)]
pub enum Output {
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// A command tag (`CREATE SOURCE`, `INSERT 0 3` ...).
    Done(Tag),
}

/// A command completion tag, Postgres style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub command: String,
    pub rows: Option<usize>,
}

impl Tag {
    pub fn new(command: &str) -> Tag {
        Tag {
            command: command.into(),
            rows: None,
        }
    }
    pub fn with_rows(command: &str, rows: usize) -> Tag {
        Tag {
            command: command.into(),
            rows: Some(rows),
        }
    }
}

/// Start-up settings.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub data_dir: PathBuf,
    pub barrier_interval_ms: u64,
    /// Worker threads each view's dataflow runs on (`--workers`).
    pub workers: usize,
    /// Operator state kept in memory over every view, in MiB (`--state-cache-mb`).
    pub state_cache_mb: usize,
    /// The state store's backend; `None`: the one the data directory already holds, else
    /// [`StoreKind::DEFAULT`].
    pub store: Option<StoreKind>,
    /// The bootstrap superuser's password, set when a new data directory is created
    /// (`--init-password`); ignored afterwards (ALTER USER changes it).
    pub init_password: Option<String>,
}

pub struct Database {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) topics: Arc<TopicStore>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) runtime: Runtime,
    pub(crate) ctx: SessionContext,
    /// Round-robin partition choice for INSERT / COPY into multi-partition sources.
    pub(crate) next_partition: std::sync::atomic::AtomicU32,
    /// DDL runs one statement at a time: ids, name checks and dependency checks see a catalog
    /// no other CREATE or DROP is changing.
    pub(crate) ddl: tokio::sync::Mutex<()>,
    /// Held shared while a query reads, so all the views it reads are at one epoch.
    pub(crate) epoch_lock: EpochLock,
    /// Worker threads per view dataflow.
    pub(crate) workers: usize,
    /// The running generators of generated sources, by source name.
    pub(crate) generators: std::sync::Mutex<std::collections::HashMap<String, GeneratorHandle>>,
    /// Connection and request counters of the listeners (read by `/metrics`).
    pub listeners: Arc<listeners::Listeners>,
    /// The open Postgres sessions (read by `weir_sessions`).
    pub sessions: Arc<sessions::SessionList>,
}

impl Database {
    /// Opens (or creates) the database in `config.data_dir` and brings every view back to its
    /// last committed epoch.
    pub async fn open(config: DbConfig) -> Result<Arc<Database>> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| WeirError::io(&format!("create {}", config.data_dir.display()), e))?;
        let kind = store_kind(&config.data_dir, config.store)?;
        let store = kind.open(&store_dir(&config.data_dir, kind))?;
        let topics = Arc::new(TopicStore::open(&config.data_dir.join("topics"))?);
        let catalog = Arc::new(Catalog::open(
            store.clone(),
            config.init_password.as_deref(),
        )?);
        let epoch_lock: EpochLock = Default::default();
        let sessions: Arc<sessions::SessionList> = Default::default();
        let listeners: Arc<listeners::Listeners> = Default::default();
        let runtime = Runtime::start(
            store.clone(),
            StateCache::with_mb(config.state_cache_mb),
            Duration::from_millis(config.barrier_interval_ms.max(1)),
            epoch_lock.clone(),
        )?;
        let ctx = session_context(ReadContext {
            catalog: catalog.clone(),
            topics: topics.clone(),
            store: store.clone(),
            skipped: runtime.skipped_records(),
            jobs: runtime.jobs(),
            sessions: sessions.clone(),
            listeners: listeners.clone(),
        })?;
        let db = Arc::new(Database {
            store,
            topics,
            catalog,
            runtime,
            ctx,
            next_partition: Default::default(),
            ddl: Default::default(),
            epoch_lock,
            workers: config.workers.max(1),
            generators: Default::default(),
            listeners,
            sessions,
        });
        db.recover().await?;
        db.runtime.begin_epochs();
        spawn_retention(db.topics.clone());
        Ok(db)
    }

    /// Replays the catalog: every object is rebuilt from its stored statement, tables reload
    /// their contents from their changelog, views restore their state and offsets.
    async fn recover(&self) -> Result<()> {
        for item in self.catalog.load_items()? {
            let stmts = crate::sql::parse::parse(&item.create_sql)?;
            let Some(stmt) = stmts.into_iter().next() else {
                continue;
            };
            self.create_object(stmt, Some(item.clone()))
                .await
                .map_err(|e| {
                    WeirError::internal(format!(
                        "cannot restore {} \"{}\": {}",
                        item.kind.noun(),
                        item.name,
                        e.message
                    ))
                })?;
        }
        Ok(())
    }

    /// Runs one statement. `params` are the bound values of `$n` placeholders.
    pub async fn execute(&self, stmt: Statement, params: &[ScalarValue]) -> Result<Output> {
        let _ddl = if is_ddl(&stmt) {
            Some(self.ddl.lock().await)
        } else {
            None
        };
        self.authorize(&stmt)?;
        let made = self.may_create(&stmt);
        let output = match stmt {
            Statement::CreateTopic {
                name,
                options,
                if_not_exists,
            } => self.create_topic(&name, &options, if_not_exists),
            Statement::DropTopic { name, if_exists } => self.drop_topic(&name, if_exists),
            Statement::CreateSource(_) | Statement::CreateSink(_) => {
                self.create_object(stmt, None).await
            }
            Statement::DropSink { name, if_exists } => {
                self.drop_relations(ItemKind::Sink, &[name], if_exists, false)
                    .await
            }
            Statement::DropSource {
                name,
                if_exists,
                cascade,
            } => {
                self.drop_relations(ItemKind::Source, &[name], if_exists, cascade)
                    .await
            }
            Statement::Show(kind) => self.show(kind),
            Statement::Role(role) => {
                self.check_role_change(&role)?;
                let renamed = match &role {
                    RoleStatement::Rename { name, to } => Some((name.clone(), to.clone())),
                    _ => None,
                };
                let acting = crate::auth::current_user();
                let tag = crate::auth::ddl::execute(&self.catalog.roles, role, &acting, || {
                    Ok(pg_catalog::oid_of_id(self.catalog.next_id()?))
                })?;
                if let Some((from, to)) = renamed {
                    self.catalog.privileges.rename_role(&from, &to)?;
                }
                Ok(Output::Done(Tag::new(tag)))
            }
            Statement::Grant(grant) => self.grant(grant),
            Statement::Owner(change) => self.change_owner(change).await,
            Statement::Flush => {
                self.runtime.flush().await?;
                Ok(Output::Done(Tag::new("FLUSH")))
            }
            Statement::Standard(stmt) => self.execute_standard(*stmt, params).await,
        }?;
        self.record_created(&made)?;
        Ok(output)
    }

    async fn execute_standard(
        &self,
        stmt: ast::Statement,
        params: &[ScalarValue],
    ) -> Result<Output> {
        match stmt {
            ast::Statement::Query(ref query) => {
                if let Some(lookup) = PointLookup::recognise(query, &self.catalog)
                    && self
                        .require(
                            &Object::Relation(lookup.view.item.name.clone()),
                            Privilege::Select,
                        )
                        .is_ok()
                    && let Some(batch) = lookup.execute(self.store.as_ref(), params)?
                {
                    return Ok(Output::Rows {
                        schema: batch.schema(),
                        batches: vec![batch],
                    });
                }
                let plan = self.plan(&stmt).await?;
                self.check_reads(&plan)?;
                self.run_query(plan, params).await
            }
            ast::Statement::CreateTable(_) | ast::Statement::CreateView(_) => {
                self.create_object(Statement::Standard(Box::new(stmt)), None)
                    .await
            }
            ast::Statement::Insert(insert) => self.insert(insert, params).await,
            ast::Statement::Update(update) => self.update(update, params).await,
            ast::Statement::Delete(delete) => self.delete(delete, params).await,
            ast::Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => {
                let kind = match object_type {
                    ast::ObjectType::MaterializedView | ast::ObjectType::View => {
                        ItemKind::MaterializedView
                    }
                    ast::ObjectType::Table => ItemKind::Table,
                    other => {
                        return Err(WeirError::unsupported(format!(
                            "DROP {other} is not supported"
                        )));
                    }
                };
                let names = names.iter().map(object_name).collect::<Result<Vec<_>>>()?;
                self.drop_relations(kind, &names, if_exists, cascade).await
            }
            ast::Statement::Explain { statement, .. } => self.explain(*statement).await,
            other => Err(WeirError::unsupported(format!(
                "statement is not supported: {}",
                first_words(&other.to_string())
            ))),
        }
    }

    /// Binds a query with DataFusion: names resolved against the catalog, types checked.
    pub async fn plan(&self, stmt: &ast::Statement) -> Result<LogicalPlan> {
        let state = self.ctx.state();
        let mut stmt = stmt.clone();
        crate::sql::windows::rewrite(&mut stmt)?;
        pg_catalog::rewrite::rewrite(&mut stmt);
        let plan = state
            .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
            .await?;
        Ok(plan)
    }

    /// Runs a bound query over committed state.
    pub async fn run_query(&self, plan: LogicalPlan, params: &[ScalarValue]) -> Result<Output> {
        let plan = bind_params(plan, params)?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        // Every view the query reads comes from one snapshot, taken between two commits (so it
        // holds only fsynced epochs), and views read together agree. Commits wait for the
        // snapshot to be taken, not for the query (sled's snapshots hold them, see `state`).
        let snapshot = {
            let _between_commits = self.epoch_lock.read().await;
            self.store.snapshot()
        };
        let batches = crate::serving::providers::with_snapshot(snapshot, async {
            self.ctx.execute_logical_plan(plan).await?.collect().await
        })
        .await?;
        Ok(Output::Rows { schema, batches })
    }

    fn show(&self, kind: ShowKind) -> Result<Output> {
        let (header, rows): (&str, Vec<(String, String)>) = match kind {
            ShowKind::Topics => (
                "partitions",
                self.topics
                    .list()
                    .iter()
                    .map(|t| (t.name().to_string(), t.partitions().to_string()))
                    .collect(),
            ),
            ShowKind::Sources
            | ShowKind::Tables
            | ShowKind::MaterializedViews
            | ShowKind::Sinks => {
                let want = match kind {
                    ShowKind::Sources => ItemKind::Source,
                    ShowKind::Tables => ItemKind::Table,
                    ShowKind::Sinks => ItemKind::Sink,
                    _ => ItemKind::MaterializedView,
                };
                let rows = self
                    .catalog
                    .entries()
                    .into_iter()
                    .filter(|e| e.item().kind == want)
                    .map(|e| {
                        let detail = match &e {
                            Entry::Source(s) => s.topic.clone(),
                            Entry::Table(t) => t.topic.clone(),
                            Entry::View(v) => v.item.depends_on.join(", "),
                            Entry::Sink(s) => s.topic.clone(),
                        };
                        (e.item().name.clone(), detail)
                    })
                    .collect();
                (
                    if want == ItemKind::MaterializedView {
                        "inputs"
                    } else {
                        "topic"
                    },
                    rows,
                )
            }
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new(header, DataType::Utf8, false),
        ]));
        let names = StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()));
        let details = StringArray::from_iter_values(rows.iter().map(|r| r.1.as_str()));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(names), Arc::new(details)])?;
        Ok(Output::Rows {
            schema,
            batches: vec![batch],
        })
    }

    /// The data directory layout, for messages.
    pub fn describe_dir(dir: &Path) -> String {
        let stores: Vec<String> = [StoreKind::Sled, StoreKind::Fjall]
            .into_iter()
            .map(|k| store_dir(dir, k))
            .filter(|d| d.exists())
            .map(|d| d.display().to_string())
            .collect();
        format!(
            "store in {}, topics in {}",
            stores.join(", "),
            dir.join("topics").display()
        )
    }
}

/// Where a store of `kind` lives in a data directory (sled keeps the original `store/`).
fn store_dir(data_dir: &Path, kind: StoreKind) -> PathBuf {
    match kind {
        StoreKind::Sled => data_dir.join("store"),
        StoreKind::Fjall => data_dir.join("store-fjall"),
    }
}

/// The backend to open: a data directory keeps the one it was created with.
fn store_kind(data_dir: &Path, wanted: Option<StoreKind>) -> Result<StoreKind> {
    let existing = [StoreKind::Sled, StoreKind::Fjall]
        .into_iter()
        .find(|&k| store_dir(data_dir, k).exists());
    match (existing, wanted) {
        (Some(have), Some(want)) if have != want => Err(WeirError::new(
            ErrorKind::InvalidParameter,
            format!(
                "{} holds a {} store, not {}",
                data_dir.display(),
                have.name(),
                want.name()
            ),
        )
        .with_hint(format!(
            "start with --store {} (a store is not converted), or use another --data-dir",
            have.name()
        ))),
        (Some(have), _) => Ok(have),
        (None, want) => Ok(want.unwrap_or(StoreKind::DEFAULT)),
    }
}

/// Applies topic retention every [`config::RETENTION_CHECK_INTERVAL_SECS`], off the async
/// threads (it deletes files).
fn spawn_retention(topics: Arc<TopicStore>) {
    tokio::spawn(async move {
        let period = Duration::from_secs(config::RETENTION_CHECK_INTERVAL_SECS);
        let mut ticks = tokio::time::interval(period);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            let topics = topics.clone();
            match tokio::task::spawn_blocking(move || topics.apply_retention()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(deleted)) => tracing::info!(deleted, "retention deleted topic segments"),
                Ok(Err(e)) => tracing::warn!("retention failed: {e}"),
                Err(e) => tracing::warn!("retention task failed: {e}"),
            }
        }
    });
}

/// Statements that change the catalog or the set of topics.
fn is_ddl(stmt: &Statement) -> bool {
    match stmt {
        Statement::CreateTopic { .. }
        | Statement::DropTopic { .. }
        | Statement::CreateSource(_)
        | Statement::DropSource { .. }
        | Statement::CreateSink(_)
        | Statement::DropSink { .. }
        | Statement::Role(_)
        | Statement::Grant(_)
        | Statement::Owner(_) => true,
        Statement::Standard(s) => matches!(
            s.as_ref(),
            ast::Statement::CreateTable(_)
                | ast::Statement::CreateView(_)
                | ast::Statement::Drop { .. }
        ),
        Statement::Show(_) | Statement::Flush => false,
    }
}

/// Replaces `$n` placeholders with bound values, each cast to the type the plan expects.
pub fn bind_params(plan: LogicalPlan, params: &[ScalarValue]) -> Result<LogicalPlan> {
    if params.is_empty() {
        return Ok(plan);
    }
    let types = plan.get_parameter_types()?;
    let mut values = Vec::with_capacity(params.len());
    for (i, value) in params.iter().enumerate() {
        let expected = types.get(&format!("${}", i + 1)).cloned().flatten();
        let value = match expected {
            Some(t) if t != value.data_type() => value.cast_to(&t).map_err(|_| {
                WeirError::new(
                    ErrorKind::InvalidText,
                    format!("invalid input syntax for type {t}: \"{value}\""),
                )
            })?,
            _ => value.clone(),
        };
        values.push(value);
    }
    Ok(plan.with_param_values(ParamValues::from(values))?)
}

pub(crate) fn object_name(name: &ast::ObjectName) -> Result<String> {
    let last = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .ok_or_else(|| WeirError::syntax("expected a name"))?;
    Ok(crate::sql::parse::normalize_ident(last))
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// One DataFusion session for every query: Postgres-ish settings, Weir's catalog as the
/// `public` schema of catalog `weir`, and a few Postgres functions clients call on connect.
fn session_context(read: ReadContext) -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema("weir", "public")
        .with_create_default_catalog_and_schema(true)
        .with_target_partitions(1);
    // `1.005` is NUMERIC in Postgres, not a float: keep its exact digits.
    let mut config = config;
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    // sum(bigint) is NUMERIC, decided before type coercion; then integer overflow and float
    // division by zero are errors, as in Postgres.
    let mut analyzer_rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> =
        vec![Arc::new(crate::sql::numeric_sum::NumericSum)];
    analyzer_rules.extend(Analyzer::new().rules);
    analyzer_rules.push(Arc::new(crate::sql::checked::CheckedArithmetic));
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_analyzer_rules(analyzer_rules)
        .build();
    let ctx = SessionContext::new_with_state(state);
    let catalog = ctx
        .catalog("weir")
        .ok_or_else(|| WeirError::internal("default catalog missing"))?;
    // Postgres's system catalogs, for clients that introspect (pg_catalog.rs).
    catalog.register_schema(
        "pg_catalog",
        Arc::new(pg_catalog::SystemSchema::pg_catalog(read.catalog.clone())),
    )?;
    catalog.register_schema(
        "information_schema",
        Arc::new(pg_catalog::SystemSchema::information_schema(
            read.catalog.clone(),
        )),
    )?;
    pg_catalog::functions::register(&ctx, &read.catalog);
    catalog.register_schema("public", Arc::new(WeirSchema { ctx: read }))?;
    for (name, value) in [
        ("version", format!("PostgreSQL {}", config::SERVER_VERSION)),
        ("current_schema", "public".to_string()),
        ("current_database", "weir".to_string()),
    ] {
        ctx.register_udf(constant_text_udf(name, value));
    }
    // `current_user` and the like: the rewrite passes the session's role as the argument.
    for name in ["current_user", "session_user", "user", "current_role"] {
        ctx.register_udf(create_udf(
            name,
            vec![DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| Ok(args[0].clone())),
        ));
    }
    Ok(ctx)
}

fn constant_text_udf(name: &str, value: String) -> ScalarUDF {
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                value.clone(),
            ))))
        }),
    )
}
