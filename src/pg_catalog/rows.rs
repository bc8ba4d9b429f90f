//! The rows of the `pg_catalog` tables, computed from a [`Snapshot`]. Each row names its
//! columns; a column a row does not name is NULL (see [`super::tables::to_batch`]).

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;

use super::tables::{ALWAYS_EMPTY, Row};
use super::types::{self, NO_TYPMOD, TYPES};
use super::{
    DATABASE_NAME, DATABASE_OID, INFORMATION_SCHEMA_NAMESPACE, OWNER_ROLE, PG_CATALOG_NAMESPACE,
    PUBLIC_NAMESPACE, ROLE_OID, RelInfo, Snapshot,
};

/// `pg_collation.oid` of the default collation, which text columns carry.
const DEFAULT_COLLATION: u32 = 100;
/// `pg_am.oid` of the heap (tables) and btree (indexes) access methods.
const HEAP_AM: u32 = 2;
const BTREE_AM: u32 = 403;
/// `pg_tablespace.oid` of the default tablespace.
const DEFAULT_TABLESPACE: u32 = 1663;

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
fn f(v: f32) -> ScalarValue {
    ScalarValue::Float32(Some(v))
}
fn opt(v: Option<&str>) -> ScalarValue {
    v.map_or(ScalarValue::Null, s)
}
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
fn text_list(values: impl IntoIterator<Item = String>) -> ScalarValue {
    let values: Vec<ScalarValue> = values.into_iter().map(|v| s(&v)).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8))
}
fn is_text(type_oid: u32) -> bool {
    matches!(type_oid, 19 | 25 | 1042 | 1043)
}

/// The rows of catalog table `name`. `session` lists the functions for `pg_proc`.
pub fn rows(name: &str, snap: &Snapshot, session: &dyn Session) -> Vec<Row> {
    let user = || s(OWNER_ROLE);
    match name {
        "pg_am" => [
            (HEAP_AM, "heap", "heap_tableam_handler", "t"),
            (BTREE_AM, "btree", "bthandler", "i"),
            (405, "hash", "hashhandler", "i"),
        ]
        .into_iter()
        .map(|(o, n, handler, kind)| {
            vec![
                ("oid", oid(o)),
                ("amname", s(n)),
                ("amhandler", s(handler)),
                ("amtype", s(kind)),
            ]
        })
        .collect(),
        "pg_attribute" => snap.relations.iter().flat_map(attribute_rows).collect(),
        "pg_authid" | "pg_roles" | "pg_user" => {
            let columns = super::tables::PG_CATALOG_TABLES
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.schema());
            let has = |column: &str| columns.as_ref().is_some_and(|c| c.index_of(column).is_ok());
            snap.roles
                .iter()
                // pg_user: the roles that may log in.
                .filter(|r| name != "pg_user" || r.login)
                .map(|r| role_row(r).into_iter().filter(|(c, _)| has(c)).collect())
                .collect()
        }
        "pg_auth_members" => {
            let oid_of = |name: &str| snap.roles.iter().find(|r| r.name == name).map(|r| r.oid);
            snap.roles
                .iter()
                .flat_map(|member| {
                    member.member_of.iter().filter_map(move |role| {
                        Some(vec![
                            ("roleid", oid(oid_of(role)?)),
                            ("member", oid(member.oid)),
                            ("grantor", oid(ROLE_OID)),
                            ("admin_option", b(false)),
                        ])
                    })
                })
                .collect()
        }
        "pg_class" => snap
            .relations
            .iter()
            .flat_map(|r| class_rows(r, snap))
            .collect(),
        "pg_collation" => [
            (DEFAULT_COLLATION, "default", "d"),
            (950, "C", "c"),
            (951, "POSIX", "c"),
        ]
        .into_iter()
        .map(|(o, n, provider)| {
            let locale = (provider == "c").then_some(n);
            vec![
                ("oid", oid(o)),
                ("collname", s(n)),
                ("collnamespace", oid(PG_CATALOG_NAMESPACE)),
                ("collowner", oid(ROLE_OID)),
                ("collprovider", s(provider)),
                ("collisdeterministic", b(true)),
                ("collencoding", i(-1)),
                ("collcollate", opt(locale)),
                ("collctype", opt(locale)),
            ]
        })
        .collect(),
        "pg_constraint" => snap.relations.iter().filter_map(constraint_row).collect(),
        "pg_database" => vec![vec![
            ("oid", oid(DATABASE_OID)),
            ("datname", s(DATABASE_NAME)),
            ("datdba", oid(ROLE_OID)),
            ("encoding", i(6)), // UTF8
            ("datlocprovider", s("c")),
            ("datistemplate", b(false)),
            ("datallowconn", b(true)),
            ("datconnlimit", i(-1)),
            ("dattablespace", oid(DEFAULT_TABLESPACE)),
            ("datcollate", s("C")),
            ("datctype", s("C")),
        ]],
        "pg_index" => snap.relations.iter().filter_map(index_row).collect(),
        "pg_indexes" => snap
            .relations
            .iter()
            .filter(|r| r.has_index())
            .map(|r| {
                vec![
                    ("schemaname", s(r.namespace_name())),
                    ("tablename", s(&r.name)),
                    ("indexname", s(&r.index_name())),
                    ("indexdef", s(&r.index_def())),
                ]
            })
            .collect(),
        "pg_matviews" => (snap.relations.iter().filter(|r| r.kind == 'm'))
            .map(|r| {
                vec![
                    ("schemaname", s(r.namespace_name())),
                    ("matviewname", s(&r.name)),
                    ("matviewowner", user()),
                    ("hasindexes", b(r.has_index())),
                    ("ispopulated", b(true)),
                    ("definition", opt(r.definition.as_deref())),
                ]
            })
            .collect(),
        "pg_views" => (snap.relations.iter().filter(|r| r.kind == 'v'))
            .map(|r| {
                vec![
                    ("schemaname", s(r.namespace_name())),
                    ("viewname", s(&r.name)),
                    ("viewowner", user()),
                    ("definition", opt(r.definition.as_deref())),
                ]
            })
            .collect(),
        "pg_tables" => (snap.relations.iter().filter(|r| r.kind == 'r'))
            .map(|r| {
                vec![
                    ("schemaname", s(r.namespace_name())),
                    ("tablename", s(&r.name)),
                    ("tableowner", user()),
                    ("hasindexes", b(r.has_index())),
                    ("hasrules", b(false)),
                    ("hastriggers", b(false)),
                    ("rowsecurity", b(false)),
                ]
            })
            .collect(),
        "pg_namespace" => [
            (PG_CATALOG_NAMESPACE, "pg_catalog"),
            (PUBLIC_NAMESPACE, "public"),
            (INFORMATION_SCHEMA_NAMESPACE, "information_schema"),
        ]
        .into_iter()
        .map(|(o, n)| {
            vec![
                ("oid", oid(o)),
                ("nspname", s(n)),
                ("nspowner", oid(ROLE_OID)),
            ]
        })
        .collect(),
        "pg_proc" => proc_rows(session),
        "pg_settings" => crate::config::PG_SETTINGS
            .iter()
            .map(|(n, v, unit, vartype)| {
                vec![
                    ("name", s(n)),
                    ("setting", s(v)),
                    ("unit", opt(*unit)),
                    ("category", s("Weir")),
                    ("short_desc", s("")),
                    ("context", s("internal")),
                    ("vartype", s(vartype)),
                    ("source", s("default")),
                    ("boot_val", s(v)),
                    ("reset_val", s(v)),
                    ("pending_restart", b(false)),
                ]
            })
            .collect(),
        "pg_tablespace" => [(DEFAULT_TABLESPACE, "pg_default"), (1664, "pg_global")]
            .into_iter()
            .map(|(o, n)| {
                vec![
                    ("oid", oid(o)),
                    ("spcname", s(n)),
                    ("spcowner", oid(ROLE_OID)),
                ]
            })
            .collect(),
        "pg_type" => type_rows(snap),
        _ => {
            debug_assert!(ALWAYS_EMPTY.contains(&name), "no rows for {name}");
            Vec::new()
        }
    }
}

/// One role: the columns of `pg_authid`, `pg_roles` and `pg_user` together (each table takes the
/// ones it has). The verifier itself is never shown, in `pg_authid` either: `********` when the
/// role has a password, as `pg_roles` shows it.
fn role_row(r: &crate::auth::Role) -> Row {
    let password = || opt(r.password.as_ref().map(|_| "********"));
    vec![
        ("oid", oid(r.oid)),
        ("rolname", s(&r.name)),
        ("rolsuper", b(r.superuser)),
        ("rolinherit", b(r.inherit)),
        ("rolcreaterole", b(r.create_role)),
        ("rolcreatedb", b(r.create_db)),
        ("rolcanlogin", b(r.login)),
        ("rolreplication", b(false)),
        ("rolbypassrls", b(r.superuser)),
        ("rolconnlimit", i(r.connection_limit.into())),
        ("rolpassword", password()),
        ("usename", s(&r.name)),
        ("usesysid", oid(r.oid)),
        ("usecreatedb", b(r.create_db)),
        ("usesuper", b(r.superuser)),
        ("userepl", b(false)),
        ("usebypassrls", b(r.superuser)),
        ("passwd", password()),
    ]
}

/// A relation, and its key index when it has one.
fn class_rows(r: &RelInfo, snap: &Snapshot) -> Vec<Row> {
    let owner = snap
        .roles
        .iter()
        .find(|role| role.name == r.acl.owner)
        .map_or(ROLE_OID, |role| role.oid);
    // NULL until something is granted, as in Postgres (`\dp` shows it empty).
    let acl = if r.acl.grants.is_empty() {
        ScalarValue::Null
    } else {
        text_list(r.acl.items(r.object_kind))
    };
    let class = |o: u32, name: String, kind: &str, am: u32, natts: usize, has_index: bool| {
        vec![
            ("oid", oid(o)),
            ("relname", s(&name)),
            ("relnamespace", oid(r.namespace)),
            (
                "reltype",
                oid(if kind == "i" { 0 } else { r.row_type_oid() }),
            ),
            ("reloftype", oid(0)),
            ("relowner", oid(owner)),
            ("relam", oid(am)),
            ("relfilenode", oid(0)),
            ("reltablespace", oid(0)),
            ("relpages", i(0)),
            ("reltuples", f(-1.0)),
            ("relallvisible", i(0)),
            ("reltoastrelid", oid(0)),
            ("relhasindex", b(has_index)),
            ("relisshared", b(false)),
            ("relpersistence", s("p")),
            ("relkind", s(kind)),
            ("relnatts", i(natts as i64)),
            ("relchecks", i(0)),
            ("relhasrules", b(kind == "v")),
            ("relhastriggers", b(false)),
            ("relhassubclass", b(false)),
            ("relrowsecurity", b(false)),
            ("relforcerowsecurity", b(false)),
            ("relispopulated", b(true)),
            (
                "relreplident",
                s(if kind == "r" || kind == "m" { "d" } else { "n" }),
            ),
            ("relispartition", b(false)),
            ("relrewrite", oid(0)),
            ("relfrozenxid", i(0)),
            ("relminmxid", i(0)),
            (
                "relacl",
                if kind == "i" {
                    ScalarValue::Null
                } else {
                    acl.clone()
                },
            ),
        ]
    };
    let am = if matches!(r.kind, 'r' | 'm') {
        HEAP_AM
    } else {
        0
    };
    let kind = r.kind.to_string();
    let mut rows = vec![class(
        r.oid,
        r.name.clone(),
        &kind,
        am,
        r.columns.len(),
        r.has_index(),
    )];
    if r.has_index() {
        rows.push(class(
            r.index_oid(),
            r.index_name(),
            "i",
            BTREE_AM,
            r.key.len(),
            false,
        ));
    }
    rows
}

/// The columns of a relation, then those of its key index (which Postgres lists too).
fn attribute_rows(r: &RelInfo) -> Vec<Row> {
    let columns = r.columns.iter().enumerate();
    let mut rows: Vec<Row> = columns
        .map(|(n, field)| column_row(r, r.oid, n, field, n))
        .collect();
    if r.has_index() {
        for (position, &k) in r.key.iter().enumerate() {
            rows.push(column_row(r, r.index_oid(), k, &r.columns[k], position));
        }
    }
    rows
}

/// Column `n` of `r` as the `position`-th (0-based) column of relation `attrelid`.
fn column_row(r: &RelInfo, attrelid: u32, n: usize, field: &FieldRef, position: usize) -> Row {
    let (type_oid, typmod) = types::pg_type_of_field(field);
    let array = types::element_of(type_oid).is_some();
    let len = match types::by_oid(type_oid) {
        Some(t) if !array => t.len,
        _ => -1,
    };
    vec![
        ("attrelid", oid(attrelid)),
        ("attname", s(field.name())),
        ("atttypid", oid(type_oid)),
        ("attstattarget", i(-1)),
        ("attlen", i(len as i64)),
        ("attnum", i(position as i64 + 1)),
        ("attndims", i(i64::from(array))),
        ("attcacheoff", i(-1)),
        ("atttypmod", i(typmod as i64)),
        ("attbyval", b((1..=8).contains(&len))),
        ("attalign", s("i")),
        ("attstorage", s(if len < 0 { "x" } else { "p" })),
        ("attcompression", s("")),
        (
            "attnotnull",
            b(!field.is_nullable() || (r.primary && r.key.contains(&n))),
        ),
        ("atthasdef", b(false)),
        ("atthasmissing", b(false)),
        ("attidentity", s("")),
        ("attgenerated", s("")),
        ("attisdropped", b(false)),
        ("attislocal", b(true)),
        ("attinhcount", i(0)),
        (
            "attcollation",
            oid(if is_text(type_oid) {
                DEFAULT_COLLATION
            } else {
                0
            }),
        ),
    ]
}

fn constraint_row(r: &RelInfo) -> Option<Row> {
    if !r.has_primary_key() {
        return None;
    }
    Some(vec![
        ("oid", oid(r.constraint_oid())),
        ("conname", s(&r.index_name())),
        ("connamespace", oid(r.namespace)),
        ("contype", s("p")),
        ("condeferrable", b(false)),
        ("condeferred", b(false)),
        ("convalidated", b(true)),
        ("conrelid", oid(r.oid)),
        ("contypid", oid(0)),
        ("conindid", oid(r.index_oid())),
        ("conparentid", oid(0)),
        ("confrelid", oid(0)),
        ("confupdtype", s(" ")),
        ("confdeltype", s(" ")),
        ("confmatchtype", s(" ")),
        ("conislocal", b(true)),
        ("coninhcount", i(0)),
        ("connoinherit", b(true)),
        ("conkey", i16_list(r.key_attnums())),
    ])
}

fn index_row(r: &RelInfo) -> Option<Row> {
    if !r.has_index() {
        return None;
    }
    let n = r.key.len();
    Some(vec![
        ("indexrelid", oid(r.index_oid())),
        ("indrelid", oid(r.oid)),
        ("indnatts", i(n as i64)),
        ("indnkeyatts", i(n as i64)),
        ("indisunique", b(true)),
        ("indnullsnotdistinct", b(false)),
        ("indisprimary", b(r.has_primary_key())),
        ("indisexclusion", b(false)),
        ("indimmediate", b(true)),
        ("indisclustered", b(false)),
        ("indisvalid", b(true)),
        ("indcheckxmin", b(false)),
        ("indisready", b(true)),
        ("indislive", b(true)),
        ("indisreplident", b(false)),
        ("indkey", i16_list(r.key_attnums())),
        ("indcollation", oid_list(vec![0; n])),
        ("indclass", oid_list(vec![0; n])),
        ("indoption", i16_list(vec![0; n])),
    ])
}

/// The built-in types, their array types, and each relation's row type.
fn type_rows(snap: &Snapshot) -> Vec<Row> {
    struct T<'a> {
        oid: u32,
        name: &'a str,
        len: i16,
        typtype: &'a str,
        category: char,
        element: u32,
        array: u32,
        relid: u32,
        namespace: u32,
    }
    let row = |t: T| -> Row {
        let (input, output) = if t.category == 'A' {
            ("array_in".to_string(), "array_out".to_string())
        } else {
            (format!("{}in", t.name), format!("{}out", t.name))
        };
        vec![
            ("oid", oid(t.oid)),
            ("typname", s(t.name)),
            ("typnamespace", oid(t.namespace)),
            ("typowner", oid(ROLE_OID)),
            ("typlen", i(t.len as i64)),
            ("typbyval", b((1..=8).contains(&t.len))),
            ("typtype", s(t.typtype)),
            ("typcategory", s(&t.category.to_string())),
            ("typispreferred", b(false)),
            ("typisdefined", b(true)),
            ("typdelim", s(",")),
            ("typrelid", oid(t.relid)),
            ("typelem", oid(t.element)),
            ("typarray", oid(t.array)),
            ("typinput", s(&input)),
            ("typoutput", s(&output)),
            ("typalign", s("i")),
            ("typstorage", s(if t.len < 0 { "x" } else { "p" })),
            ("typnotnull", b(false)),
            ("typbasetype", oid(0)),
            ("typtypmod", i(NO_TYPMOD as i64)),
            ("typndims", i(0)),
            (
                "typcollation",
                oid(if is_text(t.oid) { DEFAULT_COLLATION } else { 0 }),
            ),
        ]
    };
    let mut rows = Vec::new();
    for t in TYPES {
        rows.push(row(T {
            oid: t.oid,
            name: t.name,
            len: t.len,
            typtype: if t.category == 'P' { "p" } else { "b" },
            category: t.category,
            element: 0,
            array: t.array_oid,
            relid: 0,
            namespace: PG_CATALOG_NAMESPACE,
        }));
        if t.array_oid != 0 {
            rows.push(row(T {
                oid: t.array_oid,
                name: &format!("_{}", t.name),
                len: -1,
                typtype: "b",
                category: 'A',
                element: t.oid,
                array: 0,
                relid: 0,
                namespace: PG_CATALOG_NAMESPACE,
            }));
        }
    }
    for r in snap.relations.iter().filter(|r| r.row_type_oid() != 0) {
        rows.push(row(T {
            oid: r.row_type_oid(),
            name: &r.name,
            len: -1,
            typtype: "c",
            category: 'C',
            element: 0,
            array: 0,
            relid: r.oid,
            namespace: r.namespace,
        }));
    }
    rows
}

/// Every function the query engine has, in name order, as a `pg_catalog` function.
fn proc_rows(session: &dyn Session) -> Vec<Row> {
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
                ("oid", oid(super::FUNCTION_OID_BASE + n as u32)),
                ("proname", s(name)),
                ("pronamespace", oid(PG_CATALOG_NAMESPACE)),
                ("proowner", oid(ROLE_OID)),
                ("prolang", oid(12)), // internal
                ("procost", f(1.0)),
                ("prorows", f(0.0)),
                ("provariadic", oid(0)),
                ("prokind", s(kind)),
                ("prosecdef", b(false)),
                ("proleakproof", b(false)),
                ("proisstrict", b(false)),
                ("proretset", b(false)),
                ("provolatile", s("i")),
                ("proparallel", s("s")),
                ("pronargs", i(0)),
                ("pronargdefaults", i(0)),
                ("prorettype", oid(2249)), // record: Weir does not describe signatures
                ("proargtypes", oid_list([])),
                ("prosrc", s(name)),
            ]
        })
        .collect()
}
