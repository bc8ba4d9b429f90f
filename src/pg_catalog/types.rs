//! Postgres data types as clients see them: the rows of `pg_type`, the Arrow type → Postgres
//! type mapping used by `pg_attribute` and `information_schema.columns`, and `format_type`.
//!
//! Oids are Postgres 15's own, so drivers that hard-code them (pgJDBC, psycopg, node-postgres)
//! agree with what the catalog says.

use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};

/// One built-in type: what `pg_type` and `format_type` need.
pub struct PgType {
    pub oid: u32,
    pub name: &'static str,
    /// The oid of the array type whose elements are this type (0: none).
    pub array_oid: u32,
    /// Bytes of a value, -1 for variable length.
    pub len: i16,
    /// `typcategory`: B boolean, N numeric, S string, D date/time, T timespan, U user, ...
    pub category: char,
    /// The SQL-standard spelling `format_type` returns.
    pub sql_name: &'static str,
}

const fn t(
    oid: u32,
    name: &'static str,
    array_oid: u32,
    len: i16,
    category: char,
    sql_name: &'static str,
) -> PgType {
    PgType {
        oid,
        name,
        array_oid,
        len,
        category,
        sql_name,
    }
}

/// The built-in scalar types Weir knows (array types are derived from `array_oid`).
pub const TYPES: &[PgType] = &[
    t(16, "bool", 1000, 1, 'B', "boolean"),
    t(17, "bytea", 1001, -1, 'U', "bytea"),
    t(18, "char", 1002, 1, 'Z', "\"char\""),
    t(19, "name", 1003, 64, 'S', "name"),
    t(20, "int8", 1016, 8, 'N', "bigint"),
    t(21, "int2", 1005, 2, 'N', "smallint"),
    t(22, "int2vector", 1006, -1, 'A', "int2vector"),
    t(23, "int4", 1007, 4, 'N', "integer"),
    t(24, "regproc", 1008, 4, 'N', "regproc"),
    t(25, "text", 1009, -1, 'S', "text"),
    t(26, "oid", 1028, 4, 'N', "oid"),
    t(30, "oidvector", 1013, -1, 'A', "oidvector"),
    t(114, "json", 199, -1, 'U', "json"),
    t(700, "float4", 1021, 4, 'N', "real"),
    t(701, "float8", 1022, 8, 'N', "double precision"),
    t(705, "unknown", 0, -2, 'X', "unknown"),
    t(1033, "aclitem", 1034, 12, 'U', "aclitem"),
    t(1042, "bpchar", 1014, -1, 'S', "character"),
    t(1043, "varchar", 1015, -1, 'S', "character varying"),
    t(1082, "date", 1182, 4, 'D', "date"),
    t(1083, "time", 1183, 8, 'D', "time without time zone"),
    t(
        1114,
        "timestamp",
        1115,
        8,
        'D',
        "timestamp without time zone",
    ),
    t(
        1184,
        "timestamptz",
        1185,
        8,
        'D',
        "timestamp with time zone",
    ),
    t(1186, "interval", 1187, 16, 'T', "interval"),
    t(1266, "timetz", 1270, 12, 'D', "time with time zone"),
    t(1700, "numeric", 1231, -1, 'N', "numeric"),
    t(2205, "regclass", 2210, 4, 'N', "regclass"),
    t(2206, "regtype", 2211, 4, 'N', "regtype"),
    t(2249, "record", 2287, -1, 'P', "record"),
    t(2275, "cstring", 1263, -2, 'P', "cstring"),
    t(2276, "any", 0, 4, 'P', "\"any\""),
    t(2277, "anyarray", 0, -1, 'P', "anyarray"),
    t(2279, "trigger", 0, 4, 'P', "trigger"),
    t(2281, "internal", 0, 8, 'P', "internal"),
    t(2283, "anyelement", 0, 4, 'P', "anyelement"),
    t(3838, "event_trigger", 0, 4, 'P', "event_trigger"),
    t(2278, "void", 0, 4, 'P', "void"),
    t(2950, "uuid", 2951, 16, 'U', "uuid"),
    t(3802, "jsonb", 3807, -1, 'U', "jsonb"),
    t(4089, "regnamespace", 4090, 4, 'N', "regnamespace"),
];

/// `typtypmod` / `atttypmod` when a type has no modifier.
pub const NO_TYPMOD: i32 = -1;
/// Postgres stores varlena type modifiers offset by the 4-byte length header.
const VARHDRSZ: i32 = 4;

pub fn by_oid(oid: u32) -> Option<&'static PgType> {
    TYPES.iter().find(|t| t.oid == oid)
}

/// The element type of array type `oid`.
pub fn element_of(array_oid: u32) -> Option<&'static PgType> {
    TYPES
        .iter()
        .find(|t| t.array_oid == array_oid && array_oid != 0)
}

/// A type's oid from its name as a user writes it (`int4`, `integer`, `text[]`,
/// `pg_catalog.varchar`, `character varying`).
pub fn oid_by_name(name: &str) -> Option<u32> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    if let Some(element) = name.strip_suffix("[]") {
        return oid_by_name(element).and_then(|oid| by_oid(oid).map(|t| t.array_oid));
    }
    let alias = match name {
        "int" | "integer" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" | "double" => "float8",
        "boolean" => "bool",
        "decimal" => "numeric",
        "character varying" => "varchar",
        "character" => "bpchar",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "time with time zone" => "timetz",
        other => other,
    };
    if let Some(t) = TYPES.iter().find(|t| t.name == alias) {
        return Some(t.oid);
    }
    // `_int4` names the array type.
    let element = alias.strip_prefix('_')?;
    TYPES
        .iter()
        .find(|t| t.name == element)
        .map(|t| t.array_oid)
}

/// The Postgres type oid and type modifier a column of Arrow type `data_type` has.
pub fn pg_type_of(data_type: &DataType) -> (u32, i32) {
    let oid = match data_type {
        DataType::Boolean => 16,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => 21,
        DataType::Int32 | DataType::UInt16 => 23,
        DataType::Int64 | DataType::UInt64 => 20,
        DataType::UInt32 => 26,
        DataType::Float16 | DataType::Float32 => 700,
        DataType::Float64 => 701,
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            return (1700, ((*p as i32) << 16 | (*s as i32 & 0xffff)) + VARHDRSZ);
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 25,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => 17,
        DataType::Date32 | DataType::Date64 => 1082,
        DataType::Time32(_) | DataType::Time64(_) => 1083,
        DataType::Timestamp(_, None) => 1114,
        DataType::Timestamp(_, Some(_)) => 1184,
        DataType::Interval(IntervalUnit::MonthDayNano)
        | DataType::Interval(_)
        | DataType::Duration(TimeUnit::Microsecond)
        | DataType::Duration(_) => 1186,
        DataType::LargeList(f) if f.data_type() == &DataType::Int16 => 22,
        DataType::LargeList(f) if f.data_type() == &DataType::UInt32 => 30,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            let (element, _) = pg_type_of(f.data_type());
            return (by_oid(element).map_or(1009, |t| t.array_oid), NO_TYPMOD);
        }
        _ => 25,
    };
    (oid, NO_TYPMOD)
}

/// The Postgres type oid and modifier of a column: json / jsonb / uuid as its metadata says
/// (they are stored as text), otherwise by its Arrow type.
pub fn pg_type_of_field(field: &datafusion::arrow::datatypes::Field) -> (u32, i32) {
    match field
        .metadata()
        .get(crate::sql::parse::PG_TYPE_METADATA)
        .map(String::as_str)
    {
        Some("json") => (114, NO_TYPMOD),
        Some("jsonb") => (3802, NO_TYPMOD),
        Some("uuid") => (2950, NO_TYPMOD),
        _ => pg_type_of(field.data_type()),
    }
}

/// `format_type(oid, typmod)`: the SQL spelling of a type, `numeric(10,2)`, `integer[]` ...
pub fn format_type(oid: u32, typmod: Option<i32>) -> Option<String> {
    if let Some(element) = element_of(oid) {
        return format_type(element.oid, typmod).map(|s| format!("{s}[]"));
    }
    let t = by_oid(oid)?;
    let typmod = typmod.filter(|&m| m >= 0);
    Some(match (t.oid, typmod) {
        (1700, Some(m)) => {
            let m = m - VARHDRSZ;
            format!("numeric({},{})", (m >> 16) & 0xffff, m & 0xffff)
        }
        (1042 | 1043, Some(m)) => format!("{}({})", t.sql_name, m - VARHDRSZ),
        _ => t.sql_name.to_string(),
    })
}

/// Numeric precision and scale of a column, for `information_schema.columns`.
pub fn numeric_precision_scale(data_type: &DataType) -> (Option<i32>, Option<i32>) {
    match data_type {
        DataType::Int16 | DataType::Int8 | DataType::UInt8 => (Some(16), Some(0)),
        DataType::Int32 | DataType::UInt16 => (Some(32), Some(0)),
        DataType::Int64 | DataType::UInt64 => (Some(64), Some(0)),
        DataType::Float32 => (Some(24), None),
        DataType::Float64 => (Some(53), None),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            (Some(*p as i32), Some(*s as i32))
        }
        _ => (None, None),
    }
}

/// The elements of an array in Postgres's text form, `{a,"b c",NULL}` (unquoted `NULL` is
/// the null value); None when `text` is not such an array.
pub fn parse_text_array(text: &str) -> Option<Vec<Option<String>>> {
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let item = |text: String, quoted: bool| {
        let text = if quoted {
            text
        } else {
            text.trim().to_string()
        };
        (quoted || !text.eq_ignore_ascii_case("NULL")).then_some(text)
    };
    let mut items = Vec::new();
    let (mut current, mut quoted, mut was_quoted) = (String::new(), false, false);
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                if !quoted && current.trim().is_empty() {
                    current.clear(); // whitespace before the opening quote
                }
                quoted = !quoted;
                was_quoted = true;
            }
            c if c.is_whitespace() && !quoted && was_quoted => {} // after the closing quote
            '\\' if quoted => current.extend(chars.next()),
            ',' if !quoted => {
                items.push(item(std::mem::take(&mut current), was_quoted));
                was_quoted = false;
            }
            c => current.push(c),
        }
    }
    if !body.is_empty() {
        items.push(item(current, was_quoted));
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_arrays_parse() {
        let parsed = parse_text_array(r#"{r, "p q",NULL,"NULL","a\"b"}"#).unwrap();
        assert_eq!(
            parsed,
            vec![
                Some("r".to_string()),
                Some("p q".to_string()),
                None,
                Some("NULL".to_string()),
                Some("a\"b".to_string())
            ]
        );
        assert_eq!(
            parse_text_array("{}").unwrap(),
            Vec::<Option<String>>::new()
        );
        assert!(parse_text_array("r,p").is_none());
    }

    #[test]
    fn names_and_formats_round_trip() {
        assert_eq!(oid_by_name("integer"), Some(23));
        assert_eq!(oid_by_name("pg_catalog.text"), Some(25));
        assert_eq!(oid_by_name("int4[]"), Some(1007));
        assert_eq!(oid_by_name("_text"), Some(1009));
        assert_eq!(oid_by_name("nonsense"), None);
        let (oid, typmod) = pg_type_of(&DataType::Decimal128(10, 2));
        assert_eq!(format_type(oid, Some(typmod)).unwrap(), "numeric(10,2)");
        assert_eq!(format_type(1007, None).unwrap(), "integer[]");
        assert_eq!(
            format_type(1114, Some(-1)).unwrap(),
            "timestamp without time zone"
        );
    }
}
