//! The `pg_catalog` tables: their columns (Postgres 15's names and types), and the Arrow
//! batches their rows ([`super::rows`]) become each time a query scans one.
//!
//! Tables Weir has nothing to put in (triggers, policies, publications ...) are present and
//! empty, so the queries psql and drivers send plan and return no rows instead of failing.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;

/// One catalog table: its name, oid, `relkind` and columns as `name type` pairs.
pub struct CatalogTable {
    pub name: &'static str,
    pub oid: u32,
    pub kind: char,
    pub columns: &'static str,
}

const fn table(name: &'static str, oid: u32, kind: char, columns: &'static str) -> CatalogTable {
    CatalogTable {
        name,
        oid,
        kind,
        columns,
    }
}

/// Every `pg_catalog` relation Weir serves. Oids of tables are Postgres's own; views get
/// oids of their own below 16384.
pub const PG_CATALOG_TABLES: &[CatalogTable] = &[
    table(
        "pg_am",
        2601,
        'r',
        "oid oid, amname name, amhandler text, amtype char",
    ),
    table(
        "pg_attrdef",
        2604,
        'r',
        "oid oid, adrelid oid, adnum int2, adbin text",
    ),
    table(
        "pg_attribute",
        1249,
        'r',
        "attrelid oid, attname name, atttypid oid, attstattarget int4, attlen int2, \
         attnum int2, attndims int4, attcacheoff int4, atttypmod int4, attbyval bool, \
         attalign char, attstorage char, attcompression char, attnotnull bool, \
         atthasdef bool, atthasmissing bool, attidentity char, attgenerated char, \
         attisdropped bool, attislocal bool, attinhcount int4, attcollation oid, \
         attacl text[], attoptions text[], attfdwoptions text[], attmissingval text",
    ),
    table(
        "pg_auth_members",
        1261,
        'r',
        "roleid oid, member oid, grantor oid, admin_option bool",
    ),
    table(
        "pg_authid",
        1260,
        'r',
        "oid oid, rolname name, rolsuper bool, rolinherit bool, rolcreaterole bool, \
         rolcreatedb bool, rolcanlogin bool, rolreplication bool, rolbypassrls bool, \
         rolconnlimit int4, rolpassword text, rolvaliduntil timestamptz",
    ),
    table(
        "pg_class",
        1259,
        'r',
        "oid oid, relname name, relnamespace oid, reltype oid, reloftype oid, relowner oid, \
         relam oid, relfilenode oid, reltablespace oid, relpages int4, reltuples float4, \
         relallvisible int4, reltoastrelid oid, relhasindex bool, relisshared bool, \
         relpersistence char, relkind char, relnatts int2, relchecks int2, relhasrules bool, \
         relhastriggers bool, relhassubclass bool, relrowsecurity bool, \
         relforcerowsecurity bool, relispopulated bool, relreplident char, \
         relispartition bool, relrewrite oid, relfrozenxid int4, relminmxid int4, \
         relacl text[], reloptions text[], relpartbound text",
    ),
    table(
        "pg_collation",
        3456,
        'r',
        "oid oid, collname name, collnamespace oid, collowner oid, collprovider char, \
         collisdeterministic bool, collencoding int4, collcollate text, collctype text, \
         colliculocale text, collversion text",
    ),
    table(
        "pg_constraint",
        2606,
        'r',
        "oid oid, conname name, connamespace oid, contype char, condeferrable bool, \
         condeferred bool, convalidated bool, conrelid oid, contypid oid, conindid oid, \
         conparentid oid, confrelid oid, confupdtype char, confdeltype char, \
         confmatchtype char, conislocal bool, coninhcount int4, connoinherit bool, \
         conkey int2[], confkey int2[], conpfeqop oid[], conppeqop oid[], conffeqop oid[], \
         confdelsetcols int2[], conexclop oid[], conbin text",
    ),
    table(
        "pg_database",
        1262,
        'r',
        "oid oid, datname name, datdba oid, encoding int4, datlocprovider char, \
         datistemplate bool, datallowconn bool, datconnlimit int4, datfrozenxid int4, \
         datminmxid int4, dattablespace oid, datcollate text, datctype text, \
         daticulocale text, datcollversion text, datacl text[]",
    ),
    table(
        "pg_depend",
        2608,
        'r',
        "classid oid, objid oid, objsubid int4, refclassid oid, refobjid oid, \
         refobjsubid int4, deptype char",
    ),
    table(
        "pg_description",
        2609,
        'r',
        "objoid oid, classoid oid, objsubid int4, description text",
    ),
    table(
        "pg_enum",
        3501,
        'r',
        "oid oid, enumtypid oid, enumsortorder float4, enumlabel name",
    ),
    table(
        "pg_extension",
        3079,
        'r',
        "oid oid, extname name, extowner oid, extnamespace oid, extrelocatable bool, \
         extversion text, extconfig oid[], extcondition text[]",
    ),
    table(
        "pg_index",
        2610,
        'r',
        "indexrelid oid, indrelid oid, indnatts int2, indnkeyatts int2, indisunique bool, \
         indnullsnotdistinct bool, indisprimary bool, indisexclusion bool, \
         indimmediate bool, indisclustered bool, indisvalid bool, indcheckxmin bool, \
         indisready bool, indislive bool, indisreplident bool, indkey int2vector, \
         indcollation oidvector, indclass oidvector, indoption int2vector, indexprs text, indpred text",
    ),
    table(
        "pg_inherits",
        2611,
        'r',
        "inhrelid oid, inhparent oid, inhseqno int4, inhdetachpending bool",
    ),
    table(
        "pg_namespace",
        2615,
        'r',
        "oid oid, nspname name, nspowner oid, nspacl text[]",
    ),
    table(
        "pg_opclass",
        2616,
        'r',
        "oid oid, opcmethod oid, opcname name, opcnamespace oid, opcowner oid, \
         opcfamily oid, opcintype oid, opcdefault bool, opckeytype oid",
    ),
    table(
        "pg_policy",
        3256,
        'r',
        "oid oid, polname name, polrelid oid, polcmd char, polpermissive bool, \
         polroles oid[], polqual text, polwithcheck text",
    ),
    table(
        "pg_proc",
        1255,
        'r',
        "oid oid, proname name, pronamespace oid, proowner oid, prolang oid, \
         procost float4, prorows float4, provariadic oid, prosupport text, prokind char, \
         prosecdef bool, proleakproof bool, proisstrict bool, proretset bool, \
         provolatile char, proparallel char, pronargs int2, pronargdefaults int2, \
         prorettype oid, proargtypes oidvector, proallargtypes oid[], proargmodes char[], \
         proargnames text[], proargdefaults text, protrftypes oid[], prosrc text, \
         probin text, prosqlbody text, proconfig text[], proacl text[]",
    ),
    table(
        "pg_publication",
        6104,
        'r',
        "oid oid, pubname name, pubowner oid, puballtables bool, pubinsert bool, \
         pubupdate bool, pubdelete bool, pubtruncate bool, pubviaroot bool",
    ),
    table(
        "pg_publication_namespace",
        6237,
        'r',
        "oid oid, pnpubid oid, pnnspid oid",
    ),
    table(
        "pg_publication_rel",
        6106,
        'r',
        "oid oid, prpubid oid, prrelid oid, prqual text, prattrs int2[]",
    ),
    table(
        "pg_rewrite",
        2618,
        'r',
        "oid oid, rulename name, ev_class oid, ev_type char, ev_enabled char, \
         is_instead bool, ev_qual text, ev_action text",
    ),
    table(
        "pg_sequence",
        2224,
        'r',
        "seqrelid oid, seqtypid oid, seqstart int8, seqincrement int8, seqmax int8, \
         seqmin int8, seqcache int8, seqcycle bool",
    ),
    table(
        "pg_shdescription",
        2396,
        'r',
        "objoid oid, classoid oid, description text",
    ),
    table(
        "pg_statistic_ext",
        3381,
        'r',
        "oid oid, stxrelid oid, stxname name, stxnamespace oid, stxowner oid, \
         stxstattarget int4, stxkeys int2[], stxkind char[], stxexprs text",
    ),
    table(
        "pg_tablespace",
        1213,
        'r',
        "oid oid, spcname name, spcowner oid, spcacl text[], spcoptions text[]",
    ),
    table(
        "pg_trigger",
        2620,
        'r',
        "oid oid, tgrelid oid, tgparentid oid, tgname name, tgfoid oid, tgtype int2, \
         tgenabled char, tgisinternal bool, tgconstrrelid oid, tgconstrindid oid, \
         tgconstraint oid, tgdeferrable bool, tginitdeferred bool, tgnargs int2, \
         tgattr int2[], tgargs text, tgqual text, tgoldtable name, tgnewtable name",
    ),
    table(
        "pg_type",
        1247,
        'r',
        "oid oid, typname name, typnamespace oid, typowner oid, typlen int2, \
         typbyval bool, typtype char, typcategory char, typispreferred bool, \
         typisdefined bool, typdelim char, typrelid oid, typsubscript text, typelem oid, \
         typarray oid, typinput text, typoutput text, typreceive text, typsend text, \
         typmodin text, typmodout text, typanalyze text, typalign char, typstorage char, \
         typnotnull bool, typbasetype oid, typtypmod int4, typndims int4, \
         typcollation oid, typdefaultbin text, typdefault text, typacl text[]",
    ),
    // Views.
    table(
        "pg_indexes",
        12001,
        'v',
        "schemaname name, tablename name, indexname name, tablespace name, indexdef text",
    ),
    table(
        "pg_matviews",
        12002,
        'v',
        "schemaname name, matviewname name, matviewowner name, tablespace name, \
         hasindexes bool, ispopulated bool, definition text",
    ),
    table(
        "pg_roles",
        12003,
        'v',
        "rolname name, rolsuper bool, rolinherit bool, rolcreaterole bool, \
         rolcreatedb bool, rolcanlogin bool, rolreplication bool, rolconnlimit int4, \
         rolpassword text, rolvaliduntil timestamptz, rolbypassrls bool, \
         rolconfig text[], oid oid",
    ),
    table(
        "pg_settings",
        12004,
        'v',
        "name text, setting text, unit text, category text, short_desc text, \
         extra_desc text, context text, vartype text, source text, min_val text, \
         max_val text, enumvals text[], boot_val text, reset_val text, sourcefile text, \
         sourceline int4, pending_restart bool",
    ),
    table(
        "pg_tables",
        12005,
        'v',
        "schemaname name, tablename name, tableowner name, tablespace name, \
         hasindexes bool, hasrules bool, hastriggers bool, rowsecurity bool",
    ),
    table(
        "pg_user",
        12006,
        'v',
        "usename name, usesysid oid, usecreatedb bool, usesuper bool, userepl bool, \
         usebypassrls bool, passwd text, valuntil timestamptz, useconfig text[]",
    ),
    table(
        "pg_views",
        12007,
        'v',
        "schemaname name, viewname name, viewowner name, definition text",
    ),
];

/// Catalog tables that never have rows in Weir (no triggers, policies, defaults ...).
pub const ALWAYS_EMPTY: &[&str] = &[
    "pg_attrdef",
    "pg_depend",
    "pg_description",
    "pg_enum",
    "pg_extension",
    "pg_inherits",
    "pg_opclass",
    "pg_policy",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_rewrite",
    "pg_sequence",
    "pg_shdescription",
    "pg_statistic_ext",
    "pg_trigger",
];

impl CatalogTable {
    /// The table's Arrow schema, parsed once from its column list.
    pub fn schema(&self) -> SchemaRef {
        static SCHEMAS: std::sync::LazyLock<std::collections::HashMap<&'static str, SchemaRef>> =
            std::sync::LazyLock::new(|| {
                PG_CATALOG_TABLES
                    .iter()
                    .chain(super::information_schema::VIEWS)
                    .map(|t| (t.columns, schema_of(t.columns)))
                    .collect()
            });
        SCHEMAS
            .get(self.columns)
            .cloned()
            .unwrap_or_else(|| schema_of(self.columns))
    }
}

/// The Arrow schema of a table from its column list.
fn schema_of(columns: &str) -> SchemaRef {
    let fields: Vec<Field> = columns
        .split(',')
        .map(|col| {
            let (name, ty) = col.trim().split_once(' ').expect("column spec: name type");
            Field::new(name, arrow_type(ty.trim()), true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn arrow_type(pg: &str) -> DataType {
    match pg {
        "oid" => DataType::UInt32,
        "name" | "text" | "char" => DataType::Utf8,
        "bool" => DataType::Boolean,
        "int2" => DataType::Int16,
        "int4" => DataType::Int32,
        "int8" => DataType::Int64,
        "float4" => DataType::Float32,
        "timestamptz" => DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into()),
        ),
        // Postgres's 0-based vectors; LargeList tells the wire encoder to send them as such.
        "int2vector" => DataType::LargeList(Arc::new(Field::new("item", DataType::Int16, true))),
        "oidvector" => DataType::LargeList(Arc::new(Field::new("item", DataType::UInt32, true))),
        list => match list.strip_suffix("[]") {
            Some(element) => DataType::new_list(arrow_type(element), true),
            None => unreachable!("unknown catalog column type {list}"),
        },
    }
}

/// One row of a catalog table: values by column name; the columns it does not name are NULL.
pub type Row = Vec<(&'static str, ScalarValue)>;

/// Builds a table's batch from its rows (numeric values of any width are cast per column).
pub fn to_batch(schema: &SchemaRef, rows: Vec<Row>) -> DfResult<RecordBatch> {
    for row in &rows {
        if let Some((name, _)) = row.iter().find(|(n, _)| schema.index_of(n).is_err()) {
            return Err(datafusion::error::DataFusionError::Internal(format!(
                "catalog row names a column \"{name}\" its table does not have"
            )));
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let values = rows
            .iter()
            .map(|row| {
                let value = row.iter().find(|(n, _)| n == field.name()).map(|(_, v)| v);
                typed(value.unwrap_or(&ScalarValue::Null), field.data_type())
            })
            .collect::<DfResult<Vec<_>>>()?;
        columns.push(if values.is_empty() {
            datafusion::arrow::array::new_empty_array(field.data_type())
        } else {
            ScalarValue::iter_to_array(values)?
        });
    }
    let options =
        datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

fn typed(value: &ScalarValue, data_type: &DataType) -> DfResult<ScalarValue> {
    if value.is_null() {
        ScalarValue::try_from(data_type)
    } else if value.data_type() == *data_type {
        Ok(value.clone())
    } else {
        value.cast_to(data_type)
    }
}
