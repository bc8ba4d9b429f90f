//! The `pg_catalog` tables: their columns (Postgres 15's names and types) and their rows,
//! computed from a [`Snapshot`] of Weir's catalog each time a query scans one.
//!
//! Tables Weir has nothing to put in (triggers, policies, publications ...) are present and
//! empty, so the queries psql and drivers send plan and return no rows instead of failing.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;

use super::types::{self, NO_TYPMOD, TYPES};
use super::{
    CURRENT_ROLE, DATABASE_NAME, DATABASE_OID, INFORMATION_SCHEMA_NAMESPACE, PG_CATALOG_NAMESPACE,
    PUBLIC_NAMESPACE, ROLE_OID, RelInfo, Snapshot,
};

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
    "pg_auth_members",
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

/// The Arrow schema of a table from its column list.
pub fn schema_of(columns: &str) -> SchemaRef {
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

/// Builds a table's batch from rows of values (any numeric width; cast per column).
pub fn to_batch(schema: &SchemaRef, rows: Vec<Vec<ScalarValue>>) -> DfResult<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let values = rows
            .iter()
            .map(|row| typed(row.get(i).unwrap_or(&ScalarValue::Null), field.data_type()))
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
        return ScalarValue::try_from(data_type);
    }
    match (value, data_type) {
        (ScalarValue::List(_), _) if value.data_type() != *data_type => value.cast_to(data_type),
        _ if value.data_type() == *data_type => Ok(value.clone()),
        _ => value.cast_to(data_type),
    }
}

// Value constructors, to keep the row lists below readable.
fn oid(v: u32) -> ScalarValue {
    ScalarValue::UInt32(Some(v))
}
fn s(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_string()))
}
fn b(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}
fn i(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}
const NULL: ScalarValue = ScalarValue::Null;
fn i16_list(values: impl IntoIterator<Item = i64>) -> ScalarValue {
    let values: Vec<ScalarValue> = values
        .into_iter()
        .map(|v| ScalarValue::Int16(Some(v as i16)))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int16))
}
fn oid_list(values: impl IntoIterator<Item = u32>) -> ScalarValue {
    let values: Vec<ScalarValue> = values.into_iter().map(oid).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::UInt32))
}

/// The rows of catalog table `name`. `session` lists the functions for `pg_proc`.
pub fn rows(name: &str, snap: &Snapshot, session: &dyn Session) -> Vec<Vec<ScalarValue>> {
    match name {
        "pg_am" => vec![
            vec![oid(2), s("heap"), s("heap_tableam_handler"), s("t")],
            vec![oid(403), s("btree"), s("bthandler"), s("i")],
            vec![oid(405), s("hash"), s("hashhandler"), s("i")],
        ],
        "pg_attribute" => snap.relations.iter().flat_map(attribute_rows).collect(),
        "pg_authid" | "pg_roles" | "pg_user" => vec![role_row(name)],
        "pg_class" => snap.relations.iter().flat_map(class_rows).collect(),
        "pg_collation" => [(100, "default", "d"), (950, "C", "c"), (951, "POSIX", "c")]
            .into_iter()
            .map(|(o, n, p)| {
                vec![
                    oid(o),
                    s(n),
                    oid(PG_CATALOG_NAMESPACE),
                    oid(ROLE_OID),
                    s(p),
                    b(true),
                    i(-1),
                    if p == "c" { s(n) } else { NULL },
                    if p == "c" { s(n) } else { NULL },
                    NULL,
                    NULL,
                ]
            })
            .collect(),
        "pg_constraint" => snap.relations.iter().filter_map(constraint_row).collect(),
        "pg_database" => vec![vec![
            oid(DATABASE_OID),
            s(DATABASE_NAME),
            oid(ROLE_OID),
            i(6),
            s("c"),
            b(false),
            b(true),
            i(-1),
            i(0),
            i(1),
            oid(1663),
            s("C"),
            s("C"),
            NULL,
            NULL,
            NULL,
        ]],
        "pg_index" => snap.relations.iter().filter_map(index_row).collect(),
        "pg_indexes" => snap
            .relations
            .iter()
            .filter(|r| r.has_index())
            .map(|r| {
                vec![
                    s(r.namespace_name()),
                    s(&r.name),
                    s(&r.index_name()),
                    NULL,
                    s(&r.index_def()),
                ]
            })
            .collect(),
        "pg_matviews" | "pg_views" | "pg_tables" => snap
            .relations
            .iter()
            .filter(|r| match name {
                "pg_matviews" => r.kind == 'm',
                "pg_views" => r.kind == 'v',
                _ => r.kind == 'r',
            })
            .map(|r| {
                let (schema, rel) = (s(r.namespace_name()), s(&r.name));
                let def = r.definition.as_deref().map_or(NULL, s);
                match name {
                    "pg_matviews" => vec![
                        schema,
                        rel,
                        s(CURRENT_ROLE),
                        NULL,
                        b(r.has_index()),
                        b(true),
                        def,
                    ],
                    "pg_views" => vec![schema, rel, s(CURRENT_ROLE), def],
                    _ => vec![
                        schema,
                        rel,
                        s(CURRENT_ROLE),
                        NULL,
                        b(r.has_index()),
                        b(false),
                        b(false),
                        b(false),
                    ],
                }
            })
            .collect(),
        "pg_namespace" => [
            (PG_CATALOG_NAMESPACE, "pg_catalog"),
            (PUBLIC_NAMESPACE, "public"),
            (INFORMATION_SCHEMA_NAMESPACE, "information_schema"),
        ]
        .into_iter()
        .map(|(o, n)| vec![oid(o), s(n), oid(ROLE_OID), NULL])
        .collect(),
        "pg_proc" => proc_rows(session),
        "pg_settings" => super::SETTINGS
            .iter()
            .map(|(n, v, unit, vartype)| {
                vec![
                    s(n),
                    s(v),
                    unit.map_or(NULL, s),
                    s("Weir"),
                    s(""),
                    NULL,
                    s("internal"),
                    s(vartype),
                    s("default"),
                    NULL,
                    NULL,
                    NULL,
                    s(v),
                    s(v),
                    NULL,
                    NULL,
                    b(false),
                ]
            })
            .collect(),
        "pg_tablespace" => vec![
            vec![oid(1663), s("pg_default"), oid(ROLE_OID), NULL, NULL],
            vec![oid(1664), s("pg_global"), oid(ROLE_OID), NULL, NULL],
        ],
        "pg_type" => type_rows(snap),
        _ => {
            debug_assert!(ALWAYS_EMPTY.contains(&name), "no rows for {name}");
            Vec::new()
        }
    }
}

fn role_row(table: &str) -> Vec<ScalarValue> {
    let t = b(true);
    match table {
        // rolname, super, inherit, createrole, createdb, canlogin, replication, bypassrls, connlimit, password, validuntil
        "pg_authid" => vec![
            oid(ROLE_OID),
            s(CURRENT_ROLE),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t,
            i(-1),
            NULL,
            NULL,
        ],
        "pg_roles" => vec![
            s(CURRENT_ROLE),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            i(-1),
            s("********"),
            NULL,
            t,
            NULL,
            oid(ROLE_OID),
        ],
        _ => vec![
            s(CURRENT_ROLE),
            oid(ROLE_OID),
            t.clone(),
            t.clone(),
            t.clone(),
            t,
            s("********"),
            NULL,
            NULL,
        ],
    }
}

fn class_rows(r: &RelInfo) -> Vec<Vec<ScalarValue>> {
    let am = match r.kind {
        'r' | 'm' => 2,
        _ => 0,
    };
    let mut rows = vec![vec![
        oid(r.oid),
        s(&r.name),
        oid(r.namespace),
        oid(r.row_type_oid()),
        oid(0),
        oid(ROLE_OID),
        oid(am),
        oid(0),
        oid(0),
        i(0),
        ScalarValue::Float32(Some(-1.0)),
        i(0),
        oid(0),
        b(r.has_index()),
        b(false),
        s("p"),
        s(&r.kind.to_string()),
        i(r.columns.len() as i64),
        i(0),
        b(r.kind == 'v'),
        b(false),
        b(false),
        b(false),
        b(false),
        b(true),
        s(if r.kind == 'v' { "n" } else { "d" }),
        b(false),
        oid(0),
        i(0),
        i(0),
        NULL,
        NULL,
        NULL,
    ]];
    if r.has_index() {
        rows.push(vec![
            oid(r.index_oid()),
            s(&r.index_name()),
            oid(r.namespace),
            oid(0),
            oid(0),
            oid(ROLE_OID),
            oid(403),
            oid(0),
            oid(0),
            i(1),
            ScalarValue::Float32(Some(0.0)),
            i(0),
            oid(0),
            b(false),
            b(false),
            s("p"),
            s("i"),
            i(r.key.len() as i64),
            i(0),
            b(false),
            b(false),
            b(false),
            b(false),
            b(false),
            b(true),
            s("n"),
            b(false),
            oid(0),
            i(0),
            i(0),
            NULL,
            NULL,
            NULL,
        ]);
    }
    rows
}

/// The columns of a relation, then those of its key index (which Postgres lists too).
fn attribute_rows(r: &RelInfo) -> Vec<Vec<ScalarValue>> {
    let mut rows = column_rows(r, r.oid, r.columns.iter().enumerate().collect());
    if r.has_index() {
        let key = r.key.iter().map(|&k| (k, &r.columns[k])).collect();
        let mut index_rows = column_rows(r, r.index_oid(), key);
        for (n, row) in index_rows.iter_mut().enumerate() {
            row[5] = i(n as i64 + 1);
        }
        rows.extend(index_rows);
    }
    rows
}

/// `pg_attribute` rows of relation `attrelid` for `columns` (position in `r`, field).
fn column_rows(
    r: &RelInfo,
    attrelid: u32,
    columns: Vec<(usize, &datafusion::arrow::datatypes::FieldRef)>,
) -> Vec<Vec<ScalarValue>> {
    columns
        .into_iter()
        .map(|(n, field)| {
            let (type_oid, typmod) = types::pg_type_of(field.data_type());
            let t = types::by_oid(type_oid).or_else(|| types::element_of(type_oid));
            let len = if types::element_of(type_oid).is_some() {
                -1
            } else {
                t.map_or(-1, |t| t.len)
            };
            let is_text = matches!(type_oid, 25 | 1043 | 1042 | 19);
            let not_null = !field.is_nullable() || (r.primary && r.key.contains(&n));
            vec![
                oid(attrelid),
                s(field.name()),
                oid(type_oid),
                i(-1),
                i(len as i64),
                i(n as i64 + 1),
                i(i64::from(types::element_of(type_oid).is_some())),
                i(-1),
                i(typmod as i64),
                b((1..=8).contains(&len)),
                s("i"),
                s(if len < 0 { "x" } else { "p" }),
                s(""),
                b(not_null),
                b(false),
                b(false),
                s(""),
                s(""),
                b(false),
                b(true),
                i(0),
                oid(if is_text { 100 } else { 0 }),
                NULL,
                NULL,
                NULL,
                NULL,
            ]
        })
        .collect()
}

fn constraint_row(r: &RelInfo) -> Option<Vec<ScalarValue>> {
    if !r.has_primary_key() {
        return None;
    }
    Some(vec![
        oid(r.constraint_oid()),
        s(&r.index_name()),
        oid(r.namespace),
        s("p"),
        b(false),
        b(false),
        b(true),
        oid(r.oid),
        oid(0),
        oid(r.index_oid()),
        oid(0),
        oid(0),
        s(" "),
        s(" "),
        s(" "),
        b(true),
        i(0),
        b(true),
        i16_list(r.key_attnums()),
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
    ])
}

fn index_row(r: &RelInfo) -> Option<Vec<ScalarValue>> {
    if !r.has_index() {
        return None;
    }
    let n = r.key.len();
    Some(vec![
        oid(r.index_oid()),
        oid(r.oid),
        i(n as i64),
        i(n as i64),
        b(true),
        b(false),
        b(r.has_primary_key()),
        b(false),
        b(true),
        b(false),
        b(true),
        b(false),
        b(true),
        b(true),
        b(false),
        i16_list(r.key_attnums()),
        oid_list(vec![0; n]),
        oid_list(vec![0; n]),
        i16_list(vec![0; n]),
        NULL,
        NULL,
    ])
}

fn type_rows(snap: &Snapshot) -> Vec<Vec<ScalarValue>> {
    let mut rows = Vec::new();
    let base = |o: u32,
                name: &str,
                len: i16,
                typtype: &str,
                category: char,
                elem: u32,
                array: u32,
                relid: u32| {
        let (input, output) = if category == 'A' {
            ("array_in".to_string(), "array_out".to_string())
        } else {
            (format!("{name}in"), format!("{name}out"))
        };
        vec![
            oid(o),
            s(name),
            oid(PG_CATALOG_NAMESPACE),
            oid(ROLE_OID),
            i(len as i64),
            b((1..=8).contains(&len)),
            s(typtype),
            s(&category.to_string()),
            b(false),
            b(true),
            s(","),
            oid(relid),
            NULL,
            oid(elem),
            oid(array),
            s(&input),
            s(&output),
            NULL,
            NULL,
            NULL,
            NULL,
            NULL,
            s("i"),
            s(if len < 0 { "x" } else { "p" }),
            b(false),
            oid(0),
            i(NO_TYPMOD as i64),
            i(0),
            oid(if matches!(o, 25 | 1043 | 1042 | 19) {
                100
            } else {
                0
            }),
            NULL,
            NULL,
            NULL,
        ]
    };
    for t in TYPES {
        let typtype = if t.category == 'P' { "p" } else { "b" };
        rows.push(base(
            t.oid,
            t.name,
            t.len,
            typtype,
            t.category,
            0,
            t.array_oid,
            0,
        ));
        if t.array_oid != 0 {
            rows.push(base(
                t.array_oid,
                &format!("_{}", t.name),
                -1,
                "b",
                'A',
                t.oid,
                0,
                0,
            ));
        }
    }
    for r in &snap.relations {
        let mut row = base(r.row_type_oid(), &r.name, -1, "c", 'C', 0, 0, r.oid);
        row[2] = oid(r.namespace);
        rows.push(row);
    }
    rows
}

fn proc_rows(session: &dyn Session) -> Vec<Vec<ScalarValue>> {
    let mut names: Vec<(&str, &str)> = session
        .scalar_functions()
        .keys()
        .map(|n| (n.as_str(), "f"))
        .chain(
            session
                .aggregate_functions()
                .keys()
                .map(|n| (n.as_str(), "a")),
        )
        .chain(session.window_functions().keys().map(|n| (n.as_str(), "w")))
        .collect();
    names.sort();
    names
        .into_iter()
        .enumerate()
        .map(|(n, (name, kind))| {
            vec![
                oid(super::FUNCTION_OID_BASE + n as u32),
                s(name),
                oid(PG_CATALOG_NAMESPACE),
                oid(ROLE_OID),
                oid(12),
                ScalarValue::Float32(Some(1.0)),
                ScalarValue::Float32(Some(0.0)),
                oid(0),
                NULL,
                s(kind),
                b(false),
                b(false),
                b(false),
                b(false),
                s("i"),
                s("s"),
                i(0),
                i(0),
                oid(2249),
                oid_list([]),
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                s(name),
                NULL,
                NULL,
                NULL,
                NULL,
            ]
        })
        .collect()
}
