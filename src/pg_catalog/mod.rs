//! Postgres's system catalogs as a live view of Weir's catalog, so psql, JDBC, ODBC, psycopg,
//! SQLAlchemy and BI tools can introspect Weir the way they introspect Postgres.
//!
//! - [`tables`] and [`rows`]: the `pg_catalog` tables and views (`pg_class`, `pg_attribute`,
//!   `pg_type` ...), their columns and their rows;
//! - [`information_schema`]: the SQL-standard views (`tables`, `columns`, `views` ...);
//! - [`functions`]: the catalog functions clients call (`format_type`, `pg_get_indexdef` ...);
//! - [`rewrite`]: turns Postgres-only syntax in client queries (`::regclass`, `OPERATOR(..)`,
//!   `COLLATE`, `pg_catalog.`-qualified functions) into what DataFusion plans, with
//!   [`subquery`] reshaping the correlated subqueries catalog queries are full of.
//!
//! Every scan takes a fresh [`Snapshot`] of the catalog, so what a client sees is always what
//! exists. Oids are derived from catalog ids ([`USER_OID_BASE`] + 4 × id), stable across
//! restarts: a relation, its key's index, its key constraint and its row type take four
//! consecutive oids.

pub mod functions;
pub mod information_schema;
mod privilege_functions;
pub mod rewrite;
mod rows;
mod subquery;
pub mod tables;
pub mod types;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::auth::privileges::{Acl, Object, ObjectKind};
use crate::catalog::{Catalog, Entry};
use tables::CatalogTable;

pub const PG_CATALOG_NAMESPACE: u32 = 11;
pub const PUBLIC_NAMESPACE: u32 = 2200;
pub const INFORMATION_SCHEMA_NAMESPACE: u32 = 13000;
/// The owner of every object (objects have no other owner yet): the bootstrap superuser.
pub const ROLE_OID: u32 = crate::auth::BOOTSTRAP_OID;
pub const OWNER_ROLE: &str = crate::auth::BOOTSTRAP_SUPERUSER;
pub const DATABASE_OID: u32 = 5;
pub const DATABASE_NAME: &str = "weir";
/// First oid of user relations (Postgres's `FirstNormalObjectId`).
pub const USER_OID_BASE: u32 = 16384;
/// Oids per user relation: the relation, its key index, its key constraint, its row type.
const OIDS_PER_RELATION: u32 = 4;
/// The oid of the catalog object (relation or role) with this id: ids are shared, so oids are
/// unique across both.
pub fn oid_of_id(id: u64) -> u32 {
    USER_OID_BASE + OIDS_PER_RELATION * id as u32
}
/// `pg_proc` oids: functions in name order from here (below [`USER_OID_BASE`]).
pub const FUNCTION_OID_BASE: u32 = 14000;

/// One relation as the catalogs describe it.
pub struct RelInfo {
    pub oid: u32,
    pub name: String,
    pub namespace: u32,
    /// `relkind`: `r` table or source, `m` materialized view, `v` view.
    pub kind: char,
    pub columns: Vec<FieldRef>,
    /// Key columns (0-based): a table's primary key, a view's GROUP BY key.
    pub key: Vec<usize>,
    /// Whether `key` is a primary key (tables); a view's key is a unique index only.
    pub primary: bool,
    /// A view's defining query.
    pub definition: Option<String>,
    /// Its owner and grants (system relations: the bootstrap superuser's, granting nothing).
    pub acl: crate::auth::privileges::Acl,
    /// What kind of object its privileges are for.
    pub object_kind: crate::auth::privileges::ObjectKind,
}

impl RelInfo {
    fn is_user(&self) -> bool {
        self.oid >= USER_OID_BASE
    }
    pub fn has_index(&self) -> bool {
        !self.key.is_empty()
    }
    pub fn has_primary_key(&self) -> bool {
        self.primary && self.has_index()
    }
    pub fn index_oid(&self) -> u32 {
        self.oid + 1
    }
    pub fn constraint_oid(&self) -> u32 {
        self.oid + 2
    }
    /// The oid of the relation's row type (0 for system relations, which have none here).
    pub fn row_type_oid(&self) -> u32 {
        if self.is_user() { self.oid + 3 } else { 0 }
    }
    pub fn index_name(&self) -> String {
        if self.primary {
            format!("{}_pkey", self.name)
        } else {
            format!("{}_key", self.name)
        }
    }
    pub fn namespace_name(&self) -> &'static str {
        match self.namespace {
            PG_CATALOG_NAMESPACE => "pg_catalog",
            INFORMATION_SCHEMA_NAMESPACE => "information_schema",
            _ => "public",
        }
    }
    /// 1-based column numbers of the key.
    pub fn key_attnums(&self) -> Vec<i64> {
        self.key.iter().map(|&k| k as i64 + 1).collect()
    }
    fn key_column_list(&self) -> String {
        self.key
            .iter()
            .map(|&k| crate::sql::parse::quote_ident(self.columns[k].name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
    pub fn index_def(&self) -> String {
        format!(
            "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
            crate::sql::parse::quote_ident(&self.index_name()),
            self.namespace_name(),
            crate::sql::parse::quote_ident(&self.name),
            self.key_column_list()
        )
    }
    pub fn constraint_def(&self) -> String {
        format!("PRIMARY KEY ({})", self.key_column_list())
    }
}

/// Every relation a client can see, at one moment.
pub struct Snapshot {
    pub relations: Vec<RelInfo>,
    pub roles: Vec<crate::auth::Role>,
    /// The roles whose rights the session's role has (itself included).
    pub viewer_roles: std::collections::BTreeSet<String>,
}

impl Snapshot {
    pub fn take(catalog: &Catalog) -> Snapshot {
        let mut relations: Vec<RelInfo> = catalog
            .entries()
            .into_iter()
            .filter(Entry::is_relation)
            .map(|entry| {
                let item = entry.item();
                let (kind, key, primary, definition) = match &entry {
                    Entry::Table(t) => ('r', t.primary_key.clone(), true, None),
                    Entry::View(v) => ('m', v.key.clone(), false, view_query(&item.create_sql)),
                    _ => ('r', Vec::new(), false, None),
                };
                RelInfo {
                    oid: oid_of_id(item.id),
                    name: item.name.clone(),
                    namespace: PUBLIC_NAMESPACE,
                    kind,
                    columns: entry.schema().fields().iter().cloned().collect(),
                    key,
                    primary,
                    definition,
                    acl: catalog.privileges.acl(&Object::Relation(item.name.clone())),
                    object_kind: ObjectKind::of(item.kind),
                }
            })
            .collect();
        let system = tables::PG_CATALOG_TABLES
            .iter()
            .map(|t| (t, PG_CATALOG_NAMESPACE))
            .chain(
                information_schema::VIEWS
                    .iter()
                    .map(|t| (t, INFORMATION_SCHEMA_NAMESPACE)),
            );
        for (t, namespace) in system {
            relations.push(RelInfo {
                oid: t.oid,
                name: t.name.to_string(),
                namespace,
                kind: t.kind,
                columns: t.schema().fields().iter().cloned().collect(),
                key: Vec::new(),
                primary: false,
                definition: None,
                acl: Acl::owned_by(crate::auth::BOOTSTRAP_SUPERUSER),
                object_kind: ObjectKind::Table,
            });
        }
        let roles = catalog.roles.all();
        let viewer = crate::auth::current_user();
        let viewer_roles = roles
            .iter()
            .filter(|r| catalog.roles.has_privileges_of(&viewer, &r.name))
            .map(|r| r.name.clone())
            .collect();
        Snapshot {
            relations,
            roles,
            viewer_roles,
        }
    }

    /// The relation with `oid`, or whose key index or constraint has it.
    pub fn by_oid(&self, oid: u32) -> Option<&RelInfo> {
        self.relations.iter().find(|r| {
            r.oid == oid || (r.has_index() && (r.index_oid() == oid || r.constraint_oid() == oid))
        })
    }

    /// A relation by name as `::regclass` reads it: `orders`, `public.orders`,
    /// `"Orders"`, `pg_catalog.pg_class`.
    pub fn by_name(&self, name: &str) -> Option<&RelInfo> {
        let parts = split_qualified(name);
        let (schema, rel) = match parts.as_slice() {
            [rel] => (None, rel.as_str()),
            [schema, rel] => (Some(schema.as_str()), rel.as_str()),
            [_, schema, rel] => (Some(schema.as_str()), rel.as_str()),
            _ => return None,
        };
        self.relations
            .iter()
            .filter(|r| schema.is_none_or(|s| s == r.namespace_name()))
            // Unqualified names search pg_catalog first, as Postgres does.
            .min_by_key(|r| (r.name != rel, r.namespace != PG_CATALOG_NAMESPACE))
            .filter(|r| r.name == rel)
    }
}

/// Splits `a."B".c` into its parts, folding unquoted parts to lower case.
fn split_qualified(name: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut chars = name.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                parts.last_mut().expect("part").push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(String::new()),
            c if quoted => parts.last_mut().expect("part").push(c),
            c => parts.last_mut().expect("part").push(c.to_ascii_lowercase()),
        }
    }
    parts
}

/// The SELECT of a `CREATE MATERIALIZED VIEW ... AS SELECT ...` statement.
fn view_query(create_sql: &str) -> Option<String> {
    let stmt = crate::sql::parse::parse(create_sql)
        .ok()?
        .into_iter()
        .next()?;
    match stmt {
        crate::sql::parse::Statement::Standard(s) => match *s {
            datafusion::sql::sqlparser::ast::Statement::CreateView(v) => Some(v.query.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// A schema of system relations (`pg_catalog` or `information_schema`).
pub struct SystemSchema {
    tables: &'static [CatalogTable],
    /// Whether this is `information_schema` (its rows come from `information_schema::rows`).
    /// Kept as a flag: comparing `tables` with `information_schema::VIEWS` by address is not
    /// reliable, since every use of a `const` may be a different copy (it was, in release builds).
    information_schema: bool,
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for SystemSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemSchema")
    }
}

impl SystemSchema {
    pub fn pg_catalog(catalog: Arc<Catalog>) -> SystemSchema {
        SystemSchema {
            tables: tables::PG_CATALOG_TABLES,
            information_schema: false,
            catalog,
        }
    }
    pub fn information_schema(catalog: Arc<Catalog>) -> SystemSchema {
        SystemSchema {
            tables: information_schema::VIEWS,
            information_schema: true,
            catalog,
        }
    }
    /// The table `name` of this schema, if there is one.
    pub fn get(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        let def = self.tables.iter().find(|t| t.name == name)?;
        Some(Arc::new(SystemTable {
            def,
            schema: def.schema(),
            catalog: self.catalog.clone(),
            information_schema: self.information_schema,
        }))
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.name.to_string()).collect()
    }
    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.get(name))
    }
    fn table_exist(&self, name: &str) -> bool {
        self.tables.iter().any(|t| t.name == name)
    }
}

/// One system table; its rows are computed from the catalog when scanned.
struct SystemTable {
    def: &'static CatalogTable,
    schema: SchemaRef,
    catalog: Arc<Catalog>,
    information_schema: bool,
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SystemTable({})", self.def.name)
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        if self.def.kind == 'v' {
            TableType::View
        } else {
            TableType::Base
        }
    }
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let snap = Snapshot::take(&self.catalog);
        let rows = if self.information_schema {
            information_schema::rows(self.def.name, &snap)
        } else {
            rows::rows(self.def.name, &snap, state)
        };
        let batch = tables::to_batch(&self.schema, rows)?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}
