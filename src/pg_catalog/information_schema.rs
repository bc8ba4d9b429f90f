//! `information_schema`: the SQL-standard views over the same [`Snapshot`] as `pg_catalog`,
//! shaped as Postgres 15 shapes them (type names like `integer` and
//! `timestamp without time zone`, `YES` / `NO` flags).

use datafusion::common::ScalarValue;

use super::tables::{CatalogTable, Row};
use super::types;
use super::{DATABASE_NAME, OWNER_ROLE, Snapshot};
use crate::auth::privileges::{PUBLIC, Privilege};

/// `character_octet_length` of a `text` column: the largest value Postgres stores, 1 GiB.
const TEXT_OCTETS_MAX: i32 = 1_073_741_824;

const fn view(name: &'static str, oid: u32, columns: &'static str) -> CatalogTable {
    CatalogTable {
        name,
        oid,
        kind: 'v',
        columns,
    }
}

pub const VIEWS: &[CatalogTable] = &[
    view(
        "columns",
        13001,
        "table_catalog name, table_schema name, table_name name, column_name name, \
         ordinal_position int4, column_default text, is_nullable text, data_type text, \
         character_maximum_length int4, character_octet_length int4, numeric_precision int4, \
         numeric_precision_radix int4, numeric_scale int4, datetime_precision int4, \
         interval_type text, interval_precision int4, character_set_catalog name, \
         character_set_schema name, character_set_name name, collation_catalog name, \
         collation_schema name, collation_name name, domain_catalog name, \
         domain_schema name, domain_name name, udt_catalog name, udt_schema name, \
         udt_name name, scope_catalog name, scope_schema name, scope_name name, \
         maximum_cardinality int4, dtd_identifier name, is_self_referencing text, \
         is_identity text, identity_generation text, identity_start text, \
         identity_increment text, identity_maximum text, identity_minimum text, \
         identity_cycle text, is_generated text, generation_expression text, \
         is_updatable text",
    ),
    view(
        "key_column_usage",
        13002,
        "constraint_catalog name, constraint_schema name, constraint_name name, \
         table_catalog name, table_schema name, table_name name, column_name name, \
         ordinal_position int4, position_in_unique_constraint int4",
    ),
    view(
        "schemata",
        13003,
        "catalog_name name, schema_name name, schema_owner name, \
         default_character_set_catalog name, default_character_set_schema name, \
         default_character_set_name name, sql_path text",
    ),
    view(
        "table_constraints",
        13004,
        "constraint_catalog name, constraint_schema name, constraint_name name, \
         table_catalog name, table_schema name, table_name name, constraint_type text, \
         is_deferrable text, initially_deferred text, enforced text, nulls_distinct text",
    ),
    view(
        "tables",
        13005,
        "table_catalog name, table_schema name, table_name name, table_type text, \
         self_referencing_column_name name, reference_generation text, \
         user_defined_type_catalog name, user_defined_type_schema name, \
         user_defined_type_name name, is_insertable_into text, is_typed text, \
         commit_action text",
    ),
    view(
        "table_privileges",
        13007,
        "grantor name, grantee name, table_catalog name, table_schema name, table_name name, \
         privilege_type text, is_grantable text, with_hierarchy text",
    ),
    view(
        "views",
        13006,
        "table_catalog name, table_schema name, table_name name, view_definition text, \
         check_option text, is_updatable text, is_insertable_into text, \
         is_trigger_updatable text, is_trigger_deletable text, \
         is_trigger_insertable_into text",
    ),
];

fn s(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_string()))
}
fn yes_no(v: bool) -> ScalarValue {
    s(if v { "YES" } else { "NO" })
}
fn int(v: Option<i32>) -> ScalarValue {
    ScalarValue::Int32(v)
}

/// The rows of view `name`.
pub fn rows(name: &str, snap: &Snapshot) -> Vec<Row> {
    let db = || s(DATABASE_NAME);
    match name {
        "columns" => snap
            .relations
            .iter()
            .flat_map(|r| {
                r.columns.iter().enumerate().map(move |(n, f)| {
                    let (oid, _) = types::pg_type_of_field(f);
                    let (precision, scale) = types::numeric_precision_scale(f.data_type());
                    let element = types::element_of(oid);
                    let data_type = match element {
                        Some(_) => "ARRAY".to_string(),
                        None => types::format_type(oid, None).unwrap_or_else(|| "text".into()),
                    };
                    let udt = match element {
                        Some(e) => format!("_{}", e.name),
                        None => types::by_oid(oid).map_or("text", |t| t.name).to_string(),
                    };
                    let datetime = matches!(oid, 1082 | 1083 | 1114 | 1184 | 1186);
                    let radix = precision.map(|_| if oid == 1700 { 10 } else { 2 });
                    vec![
                        ("table_catalog", db()),
                        ("table_schema", s(r.namespace_name())),
                        ("table_name", s(&r.name)),
                        ("column_name", s(f.name())),
                        ("ordinal_position", int(Some(n as i32 + 1))),
                        (
                            "is_nullable",
                            yes_no(f.is_nullable() && !(r.primary && r.key.contains(&n))),
                        ),
                        ("data_type", s(&data_type)),
                        (
                            "character_octet_length",
                            int((oid == 25).then_some(TEXT_OCTETS_MAX)),
                        ),
                        ("numeric_precision", int(precision)),
                        ("numeric_precision_radix", int(radix)),
                        ("numeric_scale", int(scale)),
                        ("datetime_precision", int(datetime.then_some(6))),
                        ("udt_catalog", db()),
                        ("udt_schema", s("pg_catalog")),
                        ("udt_name", s(&udt)),
                        ("dtd_identifier", s(&(n + 1).to_string())),
                        ("is_self_referencing", s("NO")),
                        ("is_identity", s("NO")),
                        ("identity_cycle", s("NO")),
                        ("is_generated", s("NEVER")),
                        ("is_updatable", yes_no(r.kind == 'r')),
                    ]
                })
            })
            .collect(),
        "key_column_usage" => snap
            .relations
            .iter()
            .filter(|r| r.has_primary_key())
            .flat_map(|r| {
                r.key.iter().enumerate().map(move |(n, &col)| {
                    vec![
                        ("constraint_catalog", db()),
                        ("constraint_schema", s(r.namespace_name())),
                        ("constraint_name", s(&r.index_name())),
                        ("table_catalog", db()),
                        ("table_schema", s(r.namespace_name())),
                        ("table_name", s(&r.name)),
                        ("column_name", s(r.columns[col].name())),
                        ("ordinal_position", int(Some(n as i32 + 1))),
                    ]
                })
            })
            .collect(),
        "schemata" => ["information_schema", "pg_catalog", "public"]
            .into_iter()
            .map(|n| {
                vec![
                    ("catalog_name", db()),
                    ("schema_name", s(n)),
                    ("schema_owner", s(OWNER_ROLE)),
                ]
            })
            .collect(),
        "table_constraints" => snap
            .relations
            .iter()
            .filter(|r| r.has_primary_key())
            .map(|r| {
                vec![
                    ("constraint_catalog", db()),
                    ("constraint_schema", s(r.namespace_name())),
                    ("constraint_name", s(&r.index_name())),
                    ("table_catalog", db()),
                    ("table_schema", s(r.namespace_name())),
                    ("table_name", s(&r.name)),
                    ("constraint_type", s("PRIMARY KEY")),
                    ("is_deferrable", s("NO")),
                    ("initially_deferred", s("NO")),
                    ("enforced", s("YES")),
                ]
            })
            .collect(),
        "tables" => snap
            .relations
            .iter()
            .map(|r| {
                // Materialized views are listed as views (Postgres leaves them out; in Weir they
                // are what users query, so tools that browse information_schema must see them).
                let table_type = if r.kind == 'r' { "BASE TABLE" } else { "VIEW" };
                vec![
                    ("table_catalog", db()),
                    ("table_schema", s(r.namespace_name())),
                    ("table_name", s(&r.name)),
                    ("table_type", s(table_type)),
                    (
                        "is_insertable_into",
                        yes_no(r.kind == 'r' && r.namespace_name() == "public"),
                    ),
                    ("is_typed", s("NO")),
                ]
            })
            .collect(),
        // The privileges the session's role is grantor or grantee of (through the roles it
        // has the rights of), and PUBLIC's.
        "table_privileges" => snap
            .relations
            .iter()
            .filter(|r| r.namespace_name() == "public")
            .flat_map(|r| {
                r.acl
                    .privileges(r.object_kind)
                    .into_iter()
                    .filter(|(grantee, _)| {
                        grantee == PUBLIC
                            || snap.viewer_roles.contains(grantee)
                            || snap.viewer_roles.contains(&r.acl.owner)
                    })
                    .map(|(grantee, privilege)| {
                        let owner = grantee == r.acl.owner;
                        let grantee = if grantee == PUBLIC {
                            "PUBLIC"
                        } else {
                            &grantee
                        };
                        vec![
                            ("grantor", s(&r.acl.owner)),
                            ("grantee", s(grantee)),
                            ("table_catalog", db()),
                            ("table_schema", s(r.namespace_name())),
                            ("table_name", s(&r.name)),
                            ("privilege_type", s(privilege.keyword())),
                            ("is_grantable", yes_no(owner)),
                            ("with_hierarchy", yes_no(privilege == Privilege::Select)),
                        ]
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        "views" => snap
            .relations
            .iter()
            .filter(|r| r.kind == 'v' || r.kind == 'm')
            .map(|r| {
                vec![
                    ("table_catalog", db()),
                    ("table_schema", s(r.namespace_name())),
                    ("table_name", s(&r.name)),
                    (
                        "view_definition",
                        r.definition.as_deref().map_or(ScalarValue::Null, s),
                    ),
                    ("check_option", s("NONE")),
                    ("is_updatable", s("NO")),
                    ("is_insertable_into", s("NO")),
                    ("is_trigger_updatable", s("NO")),
                    ("is_trigger_deletable", s("NO")),
                    ("is_trigger_insertable_into", s("NO")),
                ]
            })
            .collect(),
        _ => Vec::new(),
    }
}
