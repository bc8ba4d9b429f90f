//! The catalog: every source, table and materialized view, by name.
//!
//! What is persisted is small: each object's id, kind, the statement that created it and the
//! names it depends on ([`CatalogItem`], JSON under the `c` prefix of the store). At start-up
//! `db.rs` replays those statements in id order, so the resolved definitions below (schemas,
//! keys, dataflows) are always derived by the same code that created them. Topics are not here:
//! the log ([`crate::topics`]) keeps its own metadata.

pub mod checks;
pub mod table;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Result, WeirError};
use crate::formats::Format;
use crate::sources::generator::NexmarkOptions;
use crate::sources::reader::EventTime;
use crate::state::{StateStore, WriteBatch, keys};
pub use table::TableData;

/// Names of Weir's system tables (served by `serving::providers`); users cannot take them.
pub const SYSTEM_TABLES: &[&str] = &[
    crate::serving::system_tables::SKIPPED_RECORDS_TABLE,
    crate::serving::system_tables::JOBS_TABLE,
    crate::serving::system_tables::VIEWS_TABLE,
    crate::serving::system_tables::SKIPPED_ROWS_TABLE,
    crate::serving::system_tables::TOPICS_TABLE,
    crate::serving::system_tables::CONSUMER_GROUPS_TABLE,
    crate::serving::system_tables::SESSIONS_TABLE,
    crate::serving::system_tables::LOGIN_FAILURES_TABLE,
];

/// The kinds of relation a user creates.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    Source,
    Table,
    MaterializedView,
    Sink,
}

impl ItemKind {
    pub fn noun(self) -> &'static str {
        match self {
            ItemKind::Source => "source",
            ItemKind::Table => "table",
            ItemKind::MaterializedView => "materialized view",
            ItemKind::Sink => "sink",
        }
    }
}

/// What the store keeps of one catalog object.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CatalogItem {
    pub id: u64,
    pub name: String,
    pub kind: ItemKind,
    /// The statement that created the object; replayed at start-up.
    pub create_sql: String,
    /// Relations this one reads (views only).
    pub depends_on: Vec<String>,
    /// Whether dropping the object drops its topic too (a source that created its topic, a
    /// table's changelog).
    #[serde(default)]
    pub owns_topic: bool,
}

/// A source: typed, append-only rows decoded from the records of a topic.
#[derive(Debug)]
pub struct SourceDef {
    pub item: CatalogItem,
    pub schema: SchemaRef,
    pub topic: String,
    pub format: Format,
    /// Set when a connector generates the source's records (its topic has no other writer).
    pub generator: Option<NexmarkOptions>,
    /// `WATERMARK FOR`: the event-time column and the watermark's delay.
    pub event_time: Option<EventTime>,
}

/// A keyed, mutable table; its changes are recorded in its changelog topic.
#[derive(Debug)]
pub struct TableDef {
    pub item: CatalogItem,
    pub schema: SchemaRef,
    pub primary_key: Vec<usize>,
    pub topic: String,
    /// Current contents (every acknowledged write), rebuilt from the changelog at start-up.
    pub data: TableData,
    /// Serializes INSERT / UPDATE / DELETE on the table across their async planning.
    pub write_lock: tokio::sync::Mutex<()>,
    /// NOT NULL and VARCHAR(n), checked on every write.
    pub checks: checks::ColumnChecks,
}

/// A materialized view; its dataflow lives in [`crate::dataflow`], its rows in the store.
#[derive(Debug)]
pub struct ViewDef {
    pub item: CatalogItem,
    pub schema: SchemaRef,
    /// Output columns that identify a row (the GROUP BY key); empty when the view has no key,
    /// in which case the whole row is the key.
    pub key: Vec<usize>,
    /// Its changes are insertions only (see `sql::stream_plan::StreamProps`).
    pub append_only: bool,
    /// Where its committed rows are read from.
    pub rows: Arc<crate::dataflow::view_rows::ViewRows>,
    /// With `on_error = 'skip'`: the rows it left out because an expression failed on them.
    pub skipped: Option<Arc<crate::dataflow::ops::row_errors::SkippedRows>>,
}

/// A sink: a view's changes written to a topic.
#[derive(Debug)]
pub struct SinkDef {
    pub item: CatalogItem,
    pub view: String,
    pub topic: String,
    pub upsert: bool,
    /// The topic's end offsets as of the last committed epoch (what consumers may read).
    pub committed: crate::dataflow::topic_sink::CommittedEnds,
}

/// One resolved catalog entry.
#[derive(Debug, Clone)]
pub enum Entry {
    Source(Arc<SourceDef>),
    Table(Arc<TableDef>),
    View(Arc<ViewDef>),
    Sink(Arc<SinkDef>),
}

impl Entry {
    pub fn item(&self) -> &CatalogItem {
        match self {
            Entry::Source(s) => &s.item,
            Entry::Table(t) => &t.item,
            Entry::View(v) => &v.item,
            Entry::Sink(s) => &s.item,
        }
    }

    /// Sources, tables and views are relations (they have rows); sinks are not.
    pub fn is_relation(&self) -> bool {
        !matches!(self, Entry::Sink(_))
    }
    pub fn schema(&self) -> SchemaRef {
        match self {
            Entry::Source(s) => s.schema.clone(),
            Entry::Table(t) => t.schema.clone(),
            Entry::View(v) => v.schema.clone(),
            Entry::Sink(_) => std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty()),
        }
    }
}

/// The live catalog: resolved entries in memory, items persisted in the store; the roles and
/// the privileges on objects.
pub struct Catalog {
    store: Arc<dyn StateStore>,
    entries: RwLock<BTreeMap<String, Entry>>,
    pub roles: crate::auth::Roles,
    pub privileges: crate::auth::privileges::Privileges,
}

impl Catalog {
    /// The catalog of `store`: its roles loaded (the bootstrap superuser created, with
    /// `init_password`, on a new store); entries are added as start-up replays them.
    pub fn open(store: Arc<dyn StateStore>, init_password: Option<&str>) -> Result<Self> {
        Ok(Catalog {
            roles: crate::auth::Roles::open(store.clone(), init_password)?,
            privileges: crate::auth::privileges::Privileges::open(store.clone())?,
            store,
            entries: RwLock::new(BTreeMap::new()),
        })
    }

    /// The persisted items, in creation order (what start-up replays).
    pub fn load_items(&self) -> Result<Vec<CatalogItem>> {
        let mut items = Vec::new();
        for (_, value) in self.store.scan_prefix(&keys::catalog_prefix())? {
            let item: CatalogItem = serde_json::from_slice(&value)
                .map_err(|e| WeirError::internal(format!("corrupt catalog entry: {e}")))?;
            items.push(item);
        }
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// Hands out a new object id, durably.
    pub fn next_id(&self) -> Result<u64> {
        let current = match self.store.get(keys::META_NEXT_ID)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| WeirError::internal("corrupt next id"))?,
            ),
            None => 1,
        };
        let mut batch = WriteBatch::default();
        batch.put(
            keys::META_NEXT_ID.to_vec(),
            (current + 1).to_be_bytes().to_vec(),
        );
        self.store.commit(batch)?;
        Ok(current)
    }

    pub fn get(&self, name: &str) -> Option<Entry> {
        self.entries
            .read()
            .expect("catalog lock")
            .get(name)
            .cloned()
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .read()
            .expect("catalog lock")
            .values()
            .cloned()
            .collect()
    }

    /// Fails with 42P07 when the name is taken.
    pub fn ensure_free(&self, name: &str) -> Result<()> {
        if SYSTEM_TABLES.contains(&name) {
            return Err(WeirError::new(
                ErrorKind::DuplicateTable,
                format!("relation \"{name}\" already exists"),
            )
            .with_hint("it is a Weir system table"));
        }
        if let Some(existing) = self.get(name) {
            return Err(WeirError::new(
                ErrorKind::DuplicateTable,
                format!("{} \"{name}\" already exists", existing.item().kind.noun()),
            ));
        }
        Ok(())
    }

    /// Adds an entry; `persist` is false while start-up replays what is already stored.
    pub fn insert(&self, entry: Entry, persist: bool) -> Result<()> {
        let item = entry.item().clone();
        if persist {
            let mut batch = WriteBatch::default();
            let json = serde_json::to_vec(&item)
                .map_err(|e| WeirError::internal(format!("catalog encode: {e}")))?;
            batch.put(keys::catalog_key(&item.name), json);
            self.store.commit(batch)?;
        }
        self.entries
            .write()
            .expect("catalog lock")
            .insert(item.name, entry);
        Ok(())
    }

    /// Removes an entry from memory; the caller adds the catalog key deletion to `batch`.
    pub fn remove(&self, name: &str, batch: &mut WriteBatch) {
        batch.delete(keys::catalog_key(name));
        self.privileges.forget(
            &crate::auth::privileges::Object::Relation(name.into()),
            batch,
        );
        self.entries.write().expect("catalog lock").remove(name);
    }

    /// The objects that read or write `topic`, as "kind name" (e.g. "source clicks"), sorted.
    pub fn topic_users(&self, topic: &str) -> Vec<String> {
        let mut users: Vec<String> = self
            .entries
            .read()
            .expect("catalog lock")
            .values()
            .filter(|e| match e {
                Entry::Source(s) => s.topic == topic,
                Entry::Table(t) => t.topic == topic,
                Entry::Sink(s) => s.topic == topic,
                Entry::View(_) => false,
            })
            .map(|e| format!("{} {}", e.item().kind.noun(), e.item().name))
            .collect();
        users.sort();
        users
    }

    /// The object that alone writes `topic`, when Weir writes it for one (a sink, or a
    /// generated source), as "sink \"s\"": INSERT, COPY and Kafka produce into it are refused.
    pub fn sole_writer(&self, topic: &str) -> Option<String> {
        self.entries
            .read()
            .expect("catalog lock")
            .values()
            .find_map(|e| match e {
                Entry::Sink(s) if s.topic == topic => Some(format!("sink \"{}\"", s.item.name)),
                Entry::Source(s) if s.topic == topic && s.generator.is_some() => {
                    Some(format!("generated source \"{}\"", s.item.name))
                }
                _ => None,
            })
    }

    /// How far a consumer may read `topic`'s partition: its committed end when a sink writes
    /// it (None: no sink, read to the log end).
    pub fn readable_end(&self, topic: &str, partition: u32) -> Option<u64> {
        self.entries
            .read()
            .expect("catalog lock")
            .values()
            .find_map(|e| match e {
                Entry::Sink(s) if s.topic == topic => Some(
                    s.committed
                        .read()
                        .expect("sink lock")
                        .get(partition as usize)
                        .copied()
                        .unwrap_or(0),
                ),
                _ => None,
            })
    }

    /// Names of the views that read `name` directly.
    pub fn dependents(&self, name: &str) -> Vec<String> {
        self.entries
            .read()
            .expect("catalog lock")
            .values()
            .filter(|e| e.item().depends_on.iter().any(|d| d == name))
            .map(|e| e.item().name.clone())
            .collect()
    }
}
