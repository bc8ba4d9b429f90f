//! The Postgres catalog functions clients call while introspecting: `format_type`,
//! `pg_get_indexdef`, `pg_get_viewdef`, `pg_table_is_visible`, `has_table_privilege` ... and
//! the `regclass` / `regtype` conversions [`super::rewrite`] turns casts into.
//!
//! Each is a row-at-a-time function over [`ScalarValue`]s: catalog queries touch a handful
//! of rows, and one small body per function reads better than vectorized kernels would.

use std::cell::OnceCell;
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use super::{Snapshot, types};
use crate::catalog::Catalog;
use crate::error::{ErrorKind, WeirError};

/// What a function body can reach: the catalog, snapshotted once per call.
pub struct Call<'a> {
    pub(super) catalog: &'a Catalog,
    snapshot: OnceCell<Snapshot>,
}

impl Call<'_> {
    pub(super) fn snap(&self) -> &Snapshot {
        self.snapshot.get_or_init(|| Snapshot::take(self.catalog))
    }
}

type Body = fn(&Call, &[ScalarValue]) -> DfResult<ScalarValue>;

/// A catalog function: name, accepted argument counts, result type and body.
struct PgFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: Body,
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for PgFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}
impl PartialEq for PgFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for PgFunction {}
impl std::hash::Hash for PgFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let call = Call {
            catalog: &self.catalog,
            snapshot: OnceCell::new(),
        };
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        if rows == 0 {
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&self.returns),
            ));
        }
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let values = arrays
                .iter()
                .map(|a| ScalarValue::try_from_array(a, row))
                .collect::<DfResult<Vec<_>>>()?;
            let value = (self.body)(&call, &values)?;
            out.push(if value.is_null() {
                ScalarValue::try_from(&self.returns)?
            } else {
                value.cast_to(&self.returns)?
            });
        }
        if all_scalar {
            return Ok(ColumnarValue::Scalar(out.pop().expect("one row")));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

/// Registers every catalog function on `ctx`.
pub fn register(ctx: &SessionContext, catalog: &Arc<Catalog>) {
    let text = DataType::Utf8;
    let oid = DataType::UInt32;
    let boolean = DataType::Boolean;
    let defs: Vec<(&'static str, &[usize], DataType, Body)> = vec![
        ("pg_get_userbyid", &[1], text.clone(), |c, a| {
            // Postgres's text for an oid that is no role.
            Ok(utf8(&as_oid(&a[0]).map_or_else(String::new, |o| {
                c.snap()
                    .roles
                    .iter()
                    .find(|r| r.oid == o)
                    .map_or_else(|| format!("unknown (OID={o})"), |r| r.name.clone())
            })))
        }),
        ("pg_table_is_visible", &[1], boolean.clone(), |c, a| {
            // Visible: on the search path (pg_catalog, public), as Postgres defines it.
            Ok(ScalarValue::Boolean(as_oid(&a[0]).map(|o| {
                c.snap()
                    .by_oid(o)
                    .is_some_and(|r| r.namespace != super::INFORMATION_SCHEMA_NAMESPACE)
            })))
        }),
        ("pg_type_is_visible", &[1], boolean.clone(), always_true),
        ("pg_function_is_visible", &[1], boolean.clone(), always_true),
        (
            "pg_collation_is_visible",
            &[1],
            boolean.clone(),
            always_true,
        ),
        ("pg_opclass_is_visible", &[1], boolean.clone(), always_true),
        ("format_type", &[2], text.clone(), |_, a| {
            Ok(match as_oid(&a[0]) {
                Some(oid) => ScalarValue::Utf8(Some(
                    types::format_type(oid, as_i64(&a[1]).map(|m| m as i32))
                        .unwrap_or_else(|| "???".into()),
                )),
                None => ScalarValue::Null,
            })
        }),
        // Weir has no column defaults or partial indexes: what is stored is printed as is.
        (
            "pg_get_expr",
            &[2, 3],
            text.clone(),
            |_, a| Ok(a[0].clone()),
        ),
        ("pg_get_indexdef", &[1, 3], text.clone(), |c, a| {
            let Some(rel) = as_oid(&a[0]).and_then(|o| c.snap().by_oid(o)) else {
                return Ok(ScalarValue::Null);
            };
            let column = a.get(1).and_then(as_i64).unwrap_or(0);
            Ok(match column {
                0 => utf8(&rel.index_def()),
                n => match rel.key.get(n as usize - 1) {
                    Some(&k) => utf8(&crate::sql::parse::quote_ident(rel.columns[k].name())),
                    None => utf8(""),
                },
            })
        }),
        ("pg_get_constraintdef", &[1, 2], text.clone(), |c, a| {
            Ok(as_oid(&a[0])
                .and_then(|o| c.snap().by_oid(o))
                .filter(|r| r.has_primary_key())
                .map_or(ScalarValue::Null, |r| utf8(&r.constraint_def())))
        }),
        ("pg_get_viewdef", &[1, 2], text.clone(), |c, a| {
            let snap = c.snap();
            let rel = match &a[0] {
                ScalarValue::Utf8(Some(name)) if as_oid(&a[0]).is_none() => snap.by_name(name),
                other => as_oid(other).and_then(|o| snap.by_oid(o)),
            };
            Ok(rel
                .and_then(|r| r.definition.as_deref())
                .map_or(ScalarValue::Null, |d| utf8(&format!(" {d};"))))
        }),
        // Weir keeps no comments.
        ("obj_description", &[1, 2], text.clone(), null_text),
        ("col_description", &[2], text.clone(), null_text),
        ("shobj_description", &[2], text.clone(), null_text),
        ("pg_get_serial_sequence", &[2], text.clone(), null_text),
        (
            "pg_get_statisticsobjdef_columns",
            &[1],
            text.clone(),
            null_text,
        ),
        ("pg_get_triggerdef", &[1, 2], text.clone(), null_text),
        ("pg_get_ruledef", &[1, 2], text.clone(), null_text),
        ("pg_get_partkeydef", &[1], text.clone(), null_text),
        ("pg_get_function_result", &[1], text.clone(), null_text),
        ("pg_get_function_arguments", &[1], text.clone(), null_text),
        (
            "pg_get_function_identity_arguments",
            &[1],
            text.clone(),
            null_text,
        ),
        (
            "pg_relation_is_publishable",
            &[1],
            boolean.clone(),
            |_, _| Ok(ScalarValue::Boolean(Some(false))),
        ),
        ("pg_encoding_to_char", &[1], text.clone(), |_, _| {
            Ok(utf8("UTF8"))
        }),
        // Weir does not measure relations' sizes yet: unknown, so NULL (psql's `\dt+` shows
        // an empty Size).
        ("pg_table_size", &[1], DataType::Int64, null_text),
        ("pg_relation_size", &[1, 2], DataType::Int64, null_text),
        ("pg_total_relation_size", &[1], DataType::Int64, null_text),
        ("pg_indexes_size", &[1], DataType::Int64, null_text),
        ("pg_tablespace_location", &[1], text.clone(), |_, _| {
            Ok(utf8(""))
        }),
        ("pg_size_pretty", &[1], text.clone(), |_, a| {
            Ok(as_i64(&a[0]).map_or(ScalarValue::Null, |bytes| utf8(&size_pretty(bytes))))
        }),
        (
            "current_schemas",
            &[1],
            DataType::new_list(text.clone(), true),
            |_, a| {
                let mut schemas = vec![];
                if matches!(a[0], ScalarValue::Boolean(Some(true))) {
                    schemas.push(utf8("pg_catalog"));
                }
                schemas.push(utf8("public"));
                Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                    &schemas,
                    &DataType::Utf8,
                )))
            },
        ),
        ("current_setting", &[1, 2], text.clone(), |_, a| {
            let name = as_text(&a[0]).unwrap_or_default();
            match crate::config::pg_setting(&name) {
                Some(value) => Ok(utf8(value)),
                None if matches!(a.get(1), Some(ScalarValue::Boolean(Some(true)))) => {
                    Ok(ScalarValue::Null)
                }
                None => Err(external(WeirError::new(
                    ErrorKind::UndefinedObject,
                    format!("unrecognized configuration parameter \"{name}\""),
                ))),
            }
        }),
        ("pg_backend_pid", &[0], DataType::Int32, |_, _| {
            Ok(ScalarValue::Int32(Some(std::process::id() as i32)))
        }),
        ("to_regtype", &[1], oid.clone(), |_, a| {
            Ok(ScalarValue::UInt32(
                as_text(&a[0]).and_then(|n| types::oid_by_name(&n)),
            ))
        }),
        ("to_regclass", &[1], oid.clone(), |c, a| {
            Ok(ScalarValue::UInt32(
                as_text(&a[0]).and_then(|n| c.snap().by_name(&n).map(|r| r.oid)),
            ))
        }),
        // Bounds are int8 (Postgres: int4) so they feed `generate_series` directly.
        ("array_upper", &[2], DataType::Int64, |_, a| {
            Ok(ScalarValue::Int64(
                array_len(&a[0]).filter(|&n| n > 0 && as_i64(&a[1]) == Some(1)),
            ))
        }),
        ("array_lower", &[2], DataType::Int64, |_, a| {
            Ok(ScalarValue::Int64(
                array_len(&a[0])
                    .filter(|&n| n > 0 && as_i64(&a[1]) == Some(1))
                    .map(|_| 1),
            ))
        }),
        // Weir has no partitioned tables: a relation is its own only ancestor.
        ("pg_partition_ancestors", &[1], oid.clone(), |_, a| {
            Ok(a[0].clone())
        }),
        (
            "json_build_object",
            &[0, 2, 4, 6, 8, 10, 12, 14, 16],
            text.clone(),
            |_, a| {
                let mut object = serde_json::Map::new();
                for pair in a.chunks(2) {
                    let key = as_text(&pair[0]).unwrap_or_default();
                    object.insert(key, to_json(&pair[1]));
                }
                Ok(utf8(&serde_json::Value::Object(object).to_string()))
            },
        ),
        // `_pg_expandarray(a)`: each element `x` with its 1-based position `n` (`rewrite`
        // wraps it in `unnest`).
        ("_pg_expandarray", &[1], expanded_array_type(), |_, a| {
            let Some(values) = list_values(&a[0]) else {
                return Ok(ScalarValue::Null);
            };
            let elements = datafusion::arrow::compute::cast(&values, &DataType::Int64)?;
            let positions = Arc::new(datafusion::arrow::array::Int64Array::from_iter_values(
                1..=elements.len() as i64,
            ));
            let DataType::List(item) = expanded_array_type() else {
                unreachable!("list type")
            };
            let DataType::Struct(fields) = item.data_type() else {
                unreachable!("struct type")
            };
            let pairs = datafusion::arrow::array::StructArray::try_new(
                fields.clone(),
                vec![elements, positions],
                None,
            )?;
            Ok(
                datafusion::common::utils::SingleRowListArrayBuilder::new(Arc::new(pairs))
                    .build_list_scalar(),
            )
        }),
        // `x = ANY($1)` (see `rewrite`): `$1` bound as an array, or as its text form.
        (
            "pg_text_array",
            &[1],
            DataType::new_list(text.clone(), true),
            |_, a| {
                let items: Vec<ScalarValue> = match &a[0] {
                    v if list_values(v).is_some() => {
                        let values = list_values(v).expect("checked");
                        let texts = datafusion::arrow::compute::cast(&values, &DataType::Utf8)?;
                        (0..texts.len())
                            .map(|i| ScalarValue::try_from_array(&texts, i))
                            .collect::<DfResult<_>>()?
                    }
                    v => match as_text(v) {
                        Some(text) => types::parse_text_array(&text)
                            .ok_or_else(|| {
                                external(WeirError::new(
                                    ErrorKind::InvalidText,
                                    format!("malformed array literal: \"{text}\""),
                                ))
                            })?
                            .into_iter()
                            .map(ScalarValue::Utf8)
                            .collect(),
                        None => return Ok(ScalarValue::Null),
                    },
                };
                Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                    &items,
                    &DataType::Utf8,
                )))
            },
        ),
        // `'name'::regclass` and friends (see `rewrite`).
        ("regclassin", &[1], oid.clone(), |c, a| {
            let Some(name) = as_text(&a[0]) else {
                return Ok(ScalarValue::Null);
            };
            if let Ok(n) = name.trim().parse::<u32>() {
                return Ok(ScalarValue::UInt32(Some(n)));
            }
            match c.snap().by_name(&name) {
                Some(r) => Ok(ScalarValue::UInt32(Some(r.oid))),
                None => Err(external(WeirError::new(
                    ErrorKind::UndefinedTable,
                    format!("relation \"{name}\" does not exist"),
                ))),
            }
        }),
        ("regclassout", &[1], text.clone(), |c, a| {
            Ok(as_oid(&a[0]).map_or(ScalarValue::Null, |o| {
                utf8(&c.snap().relations.iter().find(|r| r.oid == o).map_or_else(
                    || o.to_string(),
                    |r| crate::sql::parse::quote_ident(&r.name),
                ))
            }))
        }),
        ("regtypein", &[1], oid.clone(), |_, a| {
            let Some(name) = as_text(&a[0]) else {
                return Ok(ScalarValue::Null);
            };
            match name
                .trim()
                .parse::<u32>()
                .ok()
                .or_else(|| types::oid_by_name(&name))
            {
                Some(oid) => Ok(ScalarValue::UInt32(Some(oid))),
                None => Err(external(WeirError::new(
                    ErrorKind::UndefinedObject,
                    format!("type \"{name}\" does not exist"),
                ))),
            }
        }),
        ("regtypeout", &[1], text.clone(), |c, a| {
            Ok(as_oid(&a[0]).map_or(ScalarValue::Null, |o| {
                let row_type = c.snap().relations.iter().find(|r| r.row_type_oid() == o);
                utf8(&match row_type {
                    Some(r) => r.name.clone(),
                    None => types::format_type(o, None).unwrap_or_else(|| o.to_string()),
                })
            }))
        }),
        (
            "regtypearrayout",
            &[1],
            DataType::new_list(text.clone(), true),
            |_, a| {
                let Some(values) = list_values(&a[0]) else {
                    return Ok(ScalarValue::Null);
                };
                let oids = datafusion::arrow::compute::cast(&values, &DataType::UInt32)?;
                let names = (0..oids.len())
                    .map(|i| {
                        let oid = ScalarValue::try_from_array(&oids, i)?;
                        Ok(as_oid(&oid).map_or(ScalarValue::Utf8(None), |o| {
                            utf8(&types::format_type(o, None).unwrap_or_else(|| o.to_string()))
                        }))
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                    &names,
                    &DataType::Utf8,
                )))
            },
        ),
        ("regnamespaceout", &[1], text.clone(), |_, a| {
            Ok(as_oid(&a[0]).map_or(ScalarValue::Null, |o| {
                utf8(match o {
                    super::PG_CATALOG_NAMESPACE => "pg_catalog",
                    super::PUBLIC_NAMESPACE => "public",
                    super::INFORMATION_SCHEMA_NAMESPACE => "information_schema",
                    _ => "-",
                })
            }))
        }),
    ];
    for (name, arities, returns, body) in defs {
        let signatures = arities
            .iter()
            .map(|&n| {
                if n == 0 {
                    TypeSignature::Nullary
                } else {
                    TypeSignature::Any(n)
                }
            })
            .collect();
        ctx.register_udf(ScalarUDF::new_from_impl(PgFunction {
            name,
            signature: Signature::one_of(signatures, Volatility::Stable),
            returns,
            body,
            catalog: catalog.clone(),
        }));
    }
    use super::privilege_functions::{
        has_column_privilege, has_database_or_schema_privilege, has_table_privilege,
    };
    let privilege_functions: [(&'static str, Body); 8] = [
        ("has_table_privilege", has_table_privilege),
        ("has_schema_privilege", has_database_or_schema_privilege),
        ("has_database_privilege", has_database_or_schema_privilege),
        ("has_column_privilege", has_column_privilege),
        // Weir has no function, sequence or type privileges: everyone has them.
        ("has_any_column_privilege", has_table_privilege),
        ("has_function_privilege", always_true),
        ("has_sequence_privilege", always_true),
        ("has_type_privilege", always_true),
    ];
    for (name, body) in privilege_functions {
        ctx.register_udf(ScalarUDF::new_from_impl(PgFunction {
            name,
            signature: Signature::one_of(
                (2..=4).map(TypeSignature::Any).collect(),
                Volatility::Stable,
            ),
            returns: DataType::Boolean,
            body,
            catalog: catalog.clone(),
        }));
    }
}

/// `_pg_expandarray`'s result: a list of `(x, n)` pairs.
fn expanded_array_type() -> DataType {
    use datafusion::arrow::datatypes::{Field, Fields};
    let pair = Fields::from(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("n", DataType::Int64, false),
    ]);
    DataType::new_list(DataType::Struct(pair), true)
}

/// Bytes as Postgres's `pg_size_pretty` prints them: `N bytes` below 10 kB, then the largest
/// of kB, MB, GB, TB that keeps the number under 20480 half-units, rounded half away from 0.
fn size_pretty(bytes: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    if bytes.abs() < LIMIT {
        return format!("{bytes} bytes");
    }
    let mut halves = bytes >> 9; // half-kB: one extra bit for rounding
    for unit in ["kB", "MB", "GB", "TB"] {
        if halves.abs() < LIMIT * 2 - 1 || unit == "TB" {
            return format!("{} {unit}", (halves + halves.signum()) / 2);
        }
        halves >>= 10;
    }
    unreachable!("TB returns")
}

fn always_true(_: &Call, _: &[ScalarValue]) -> DfResult<ScalarValue> {
    Ok(ScalarValue::Boolean(Some(true)))
}

fn null_text(_: &Call, _: &[ScalarValue]) -> DfResult<ScalarValue> {
    Ok(ScalarValue::Null)
}

fn utf8(s: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(s.to_string()))
}

pub(super) fn external(e: WeirError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// A value as JSON: numbers and booleans as themselves, everything else as its text.
fn to_json(v: &ScalarValue) -> serde_json::Value {
    use serde_json::Value as J;
    if v.is_null() {
        return J::Null;
    }
    match v {
        ScalarValue::Boolean(Some(b)) => J::Bool(*b),
        _ if v.data_type().is_integer() => as_i64(v).map_or(J::Null, J::from),
        _ => as_text(v).map_or(J::Null, J::String),
    }
}

pub(super) fn as_oid(v: &ScalarValue) -> Option<u32> {
    match v.cast_to(&DataType::UInt32).ok()? {
        ScalarValue::UInt32(o) => o,
        _ => None,
    }
}

fn as_i64(v: &ScalarValue) -> Option<i64> {
    match v.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(o) => o,
        _ => None,
    }
}

pub(super) fn as_text(v: &ScalarValue) -> Option<String> {
    if v.is_null() {
        return None;
    }
    match v.cast_to(&DataType::Utf8).ok()? {
        ScalarValue::Utf8(s) => s,
        _ => None,
    }
}

fn array_len(v: &ScalarValue) -> Option<i64> {
    list_values(v).map(|values| values.len() as i64)
}

/// The elements of an array value (a list, or one of the catalogs' vectors).
fn list_values(v: &ScalarValue) -> Option<datafusion::arrow::array::ArrayRef> {
    match v {
        ScalarValue::List(l) if !l.is_null(0) => Some(l.value(0)),
        ScalarValue::LargeList(l) if !l.is_null(0) => Some(l.value(0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_print_as_postgres_prints_them() {
        use super::size_pretty;
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(1_000_000), "977 kB");
        assert_eq!(size_pretty(123_456_789), "118 MB");
        assert_eq!(size_pretty(-20_000), "-20 kB");
    }
}
