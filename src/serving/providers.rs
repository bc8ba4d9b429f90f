//! DataFusion table providers over Weir's relations, and the schema provider that resolves
//! names against the live catalog, so a query always sees the current set of relations.
//!
//! Views are read from the store snapshot of the query being planned ([`with_snapshot`]), so
//! every view one query reads is at the same committed epoch, and commits need not wait for
//! the query (with fjall; see `state`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::streaming::StreamingTableExec;

use crate::catalog::{Catalog, Entry, SourceDef};
use crate::config::SOURCE_READ_RECORDS_MAX;
use crate::dataflow::ChangeBatch;
use crate::error::{Result, WeirError};
use crate::formats;
use crate::state::{StateStore, StoreSnapshot};
use crate::topics::TopicStore;

use super::key_range;
use super::view_scan::ViewScan;

tokio::task_local! {
    /// The store snapshot the query being planned reads its views from.
    static QUERY_SNAPSHOT: Arc<dyn StoreSnapshot>;
}

/// Plans (and runs) `query` reading views from `snapshot`.
pub async fn with_snapshot<F: std::future::Future>(
    snapshot: Arc<dyn StoreSnapshot>,
    query: F,
) -> F::Output {
    QUERY_SNAPSHOT.scope(snapshot, query).await
}

/// Everything a read needs to reach.
#[derive(Clone)]
pub struct ReadContext {
    pub catalog: Arc<Catalog>,
    pub topics: Arc<TopicStore>,
    pub store: Arc<dyn StateStore>,
    pub skipped: crate::dataflow::runtime::SkippedRecords,
    pub jobs: crate::dataflow::jobs::Jobs,
    pub sessions: Arc<crate::db::sessions::SessionList>,
    pub listeners: Arc<crate::db::listeners::Listeners>,
}

/// The `public` schema: every source, table and view of the catalog.
#[derive(Clone)]
pub struct WeirSchema {
    pub ctx: ReadContext,
}

impl std::fmt::Debug for WeirSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeirSchema")
    }
}

#[async_trait]
impl SchemaProvider for WeirSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ctx
            .catalog
            .entries()
            .iter()
            .filter(|e| e.is_relation())
            .map(|e| e.item().name.clone())
            .collect();
        names.extend(crate::catalog::SYSTEM_TABLES.iter().map(|t| t.to_string()));
        names
    }
    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        // As in Postgres, pg_catalog comes first on the search path: `FROM pg_type` works.
        let system = crate::pg_catalog::SystemSchema::pg_catalog(self.ctx.catalog.clone());
        if let Some(table) = system.get(name) {
            return Ok(Some(table));
        }
        if let Some(table) = super::system_tables::system_table(&self.ctx, name)? {
            return Ok(Some(table));
        }
        Ok(self
            .ctx
            .catalog
            .get(name)
            .filter(|e| e.is_relation())
            .map(|entry| {
                Arc::new(Relation {
                    entry,
                    ctx: self.ctx.clone(),
                }) as Arc<dyn TableProvider>
            }))
    }
    fn table_exist(&self, name: &str) -> bool {
        crate::pg_catalog::tables::PG_CATALOG_TABLES
            .iter()
            .any(|t| t.name == name)
            || crate::catalog::SYSTEM_TABLES.contains(&name)
            || self.ctx.catalog.get(name).is_some_and(|e| e.is_relation())
    }
}

/// One relation as a DataFusion table.
#[derive(Debug)]
struct Relation {
    entry: Entry,
    ctx: ReadContext,
}

impl std::fmt::Debug for ReadContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadContext")
    }
}

#[async_trait]
impl TableProvider for Relation {
    fn schema(&self) -> SchemaRef {
        self.entry.schema()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match &self.entry {
                Entry::View(view) if key_range::narrows(view, f) => {
                    TableProviderFilterPushDown::Inexact
                }
                _ => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let external = |e: WeirError| DataFusionError::External(Box::new(e));
        let batches = match &self.entry {
            Entry::View(view) => {
                view.rows
                    .check_readable(&view.item.name)
                    .map_err(external)?;
                let snapshot = QUERY_SNAPSHOT.try_with(Arc::clone).map_err(|_| {
                    external(WeirError::internal("a view was scanned outside a query"))
                })?;
                let range = key_range::key_range(view, filters).map_err(external)?;
                let scan = ViewScan::new(view.clone(), snapshot, range, limit);
                let exec = StreamingTableExec::try_new(
                    self.schema(),
                    vec![Arc::new(scan)],
                    projection,
                    [],
                    false,
                    limit,
                )?;
                return Ok(Arc::new(exec));
            }
            Entry::Table(table) => vec![table.data.snapshot().map_err(external)?],
            Entry::Source(source) => read_history(&self.ctx, source).map_err(external)?,
            Entry::Sink(s) => {
                return Err(external(WeirError::new(
                    crate::error::ErrorKind::WrongObjectType,
                    format!("\"{}\" is a sink, not a relation", s.item.name),
                )));
            }
        };
        let exec =
            MemorySourceConfig::try_new_exec(&[batches], self.schema(), projection.cloned())?;
        Ok(exec)
    }
}

/// A source's whole history: every record of its topic, decoded.
fn read_history(ctx: &ReadContext, source: &SourceDef) -> Result<Vec<RecordBatch>> {
    let topic = ctx
        .topics
        .topic(&source.topic)
        .ok_or_else(|| WeirError::undefined_table(&source.topic))?;
    let mut batches = Vec::new();
    for p in 0..topic.partitions() {
        let mut offset = 0;
        loop {
            let records = topic.read(p, offset, SOURCE_READ_RECORDS_MAX)?;
            let Some((last, _)) = records.last() else {
                break;
            };
            offset = last + 1;
            let values: Vec<&[u8]> = records.iter().map(|(_, r)| r.value.as_ref()).collect();
            batches.push(formats::decode_records(source.format, &source.schema, &values)?.batch);
        }
    }
    Ok(batches)
}

/// Turns a multiset (rows with multiplicities) into plain rows, repeating as needed.
pub fn expand(batch: &ChangeBatch) -> Result<RecordBatch> {
    if batch.weights.iter().all(|&w| w == 1) {
        return Ok(batch.rows.clone());
    }
    let mut indices = Vec::with_capacity(batch.len());
    for (i, &w) in batch.weights.iter().enumerate() {
        indices.extend(std::iter::repeat_n(i as u32, w.max(0) as usize));
    }
    Ok(take_record_batch(&batch.rows, &UInt32Array::from(indices))?)
}
