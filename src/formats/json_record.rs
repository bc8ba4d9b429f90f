//! JSON records as Postgres would read them, before Arrow's decoder sees them: a JSON or JSONB
//! column holds any JSON value (an object, array, number or boolean is kept as its JSON text; a
//! string is taken as the text itself, which is how Weir writes JSON columns), and a number in a
//! TIMESTAMP column is epoch milliseconds (Kafka's convention), not microseconds. A number
//! with a fraction in an integer column makes the record skipped (and counted), where Arrow's
//! decoder would truncate it: `{"id": 2.9}` is not id 2. An integral one (`2.0`, `1e3`) is
//! that integer.

use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};

/// Deepest nesting of arrays and objects a JSON record may have, in levels (serde_json's own
/// default, far beyond any real event). The decoders recurse per level, so a deeper record is
/// skipped and counted before any of them sees it.
pub const JSON_NESTING_MAX: usize = 128;

/// The bytes of `record` outside its strings, in order (a string shows as its closing
/// quote, so that what is on either side of it stays apart). One pass, no recursion.
fn outside_strings(record: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let (mut in_string, mut escaped) = (false, false);
    record.iter().copied().filter(move |&b| {
        if !in_string {
            in_string = b == b'"';
            return !in_string;
        }
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => {
                in_string = false;
                return true;
            }
            _ => {}
        }
        false
    })
}

/// Whether `record` nests arrays and objects deeper than [`JSON_NESTING_MAX`]. Brackets
/// inside strings do not count.
pub fn nests_too_deeply(record: &[u8]) -> bool {
    let mut depth = 0usize;
    for b in outside_strings(record) {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > JSON_NESTING_MAX {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}
use serde_json::Value;

/// What a column needs before decoding.
enum Fix {
    /// JSON / JSONB: a non-string value becomes its JSON text.
    JsonText,
    /// TIMESTAMP (microseconds): a number is epoch milliseconds.
    EpochMillis,
    /// A signed integer column: a number must be an integer.
    Integer,
}

/// The columns of `schema` that need rewriting in each record; empty when none do.
pub struct Normalizer {
    fixes: Vec<(String, Fix)>,
}

impl Normalizer {
    pub fn new(schema: &SchemaRef) -> Normalizer {
        let fixes = schema
            .fields()
            .iter()
            .filter_map(|f| {
                let declared = f.metadata().get(crate::sql::parse::PG_TYPE_METADATA);
                let fix = match (f.data_type(), declared.map(String::as_str)) {
                    (DataType::Utf8, Some("json" | "jsonb")) => Fix::JsonText,
                    (DataType::Timestamp(TimeUnit::Microsecond, _), _) => Fix::EpochMillis,
                    (DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64, _) => {
                        Fix::Integer
                    }
                    _ => return None,
                };
                Some((f.name().clone(), fix))
            })
            .collect();
        Normalizer { fixes }
    }

    /// Whether records need rewriting at all.
    pub fn is_needed(&self) -> bool {
        !self.fixes.is_empty()
    }

    /// `record` rewritten, or None to decode it as it is (nothing to change, or not a JSON
    /// object: the decoder then rejects it and it is skipped and counted).
    pub fn normalize(&self, record: &[u8]) -> Option<Vec<u8>> {
        let integers_only = self
            .fixes
            .iter()
            .all(|(_, fix)| matches!(fix, Fix::Integer));
        if integers_only && !has_non_integer_number(record) {
            return None; // the common case, found without parsing the record
        }
        let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(record) else {
            return None;
        };
        let mut changed = false;
        for (name, fix) in &self.fixes {
            let Some(value) = object.get_mut(name) else {
                continue;
            };
            let fixed = match (fix, &*value) {
                (_, Value::Null) | (Fix::JsonText, Value::String(_)) => continue,
                (Fix::JsonText, other) => Value::String(other.to_string()),
                (Fix::EpochMillis, Value::Number(n)) => match epoch_millis_to_micros(n) {
                    Some(micros) => Value::from(micros),
                    // Out of range: a value no TIMESTAMP takes, so the record is skipped.
                    None => Value::Bool(false),
                },
                (Fix::EpochMillis, _) => continue,
                (Fix::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => continue,
                (Fix::Integer, Value::Number(n)) => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < i64::MAX as f64 => {
                        Value::from(f as i64)
                    }
                    // A fraction or out of range: a value no integer column takes, so the
                    // record is skipped.
                    _ => Value::Bool(false),
                },
                (Fix::Integer, _) => continue,
            };
            *value = fixed;
            changed = true;
        }
        if !changed {
            return None;
        }
        serde_json::to_vec(&Value::Object(object)).ok()
    }
}

/// Whether `record` has a number with a fraction or an exponent (`2.9`, `1e3`) outside its
/// strings.
fn has_non_integer_number(record: &[u8]) -> bool {
    let mut in_number = false;
    for b in outside_strings(record) {
        match b {
            b'-' | b'0'..=b'9' => in_number = true,
            b'.' | b'e' | b'E' if in_number => return true,
            _ => in_number = false,
        }
    }
    false
}

fn epoch_millis_to_micros(n: &serde_json::Number) -> Option<i64> {
    match n.as_i64() {
        Some(ms) => ms.checked_mul(1000),
        None => {
            let micros = (n.as_f64()? * 1000.0).round();
            (micros.is_finite() && micros.abs() < i64::MAX as f64).then_some(micros as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{
        DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
    };

    use crate::formats::{Format, decode_records};

    fn schema() -> SchemaRef {
        let jsonb = Field::new("user", DataType::Utf8, true).with_metadata(
            [(
                crate::sql::parse::PG_TYPE_METADATA.to_string(),
                "jsonb".to_string(),
            )]
            .into(),
        );
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            jsonb,
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]))
    }

    #[test]
    fn a_jsonb_column_takes_any_json_value() {
        let values: Vec<&[u8]> = vec![
            br#"{"id":1,"user":{"name":"ann","tags":[1,2]}}"#,
            br#"{"id":2,"user":[true,null]}"#,
            br#"{"id":3,"user":42}"#,
            br#"{"id":4,"user":"{\"name\":\"bob\"}"}"#,
            br#"{"id":5,"user":null}"#,
        ];
        let decoded = decode_records(Format::Json, &schema(), &values).unwrap();
        assert_eq!(
            decoded.skipped, 0,
            "no record with a nested value is dropped"
        );
        let ids = decoded
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ids.values(), &[1, 2, 3, 4, 5]);
        let users: Vec<Option<&str>> = decoded.batch.column(1).as_string::<i32>().iter().collect();
        assert_eq!(
            users,
            vec![
                Some(r#"{"name":"ann","tags":[1,2]}"#),
                Some("[true,null]"),
                Some("42"),
                Some(r#"{"name":"bob"}"#),
                None,
            ]
        );
    }

    #[test]
    fn a_number_in_a_timestamp_column_is_epoch_milliseconds() {
        let values: Vec<&[u8]> = vec![
            br#"{"id":1,"ts":1767225600000}"#,
            br#"{"id":2,"ts":"2026-01-01T00:00:00"}"#,
            br#"{"id":3,"ts":1767225600000.5}"#,
            br#"{"id":4,"ts":9223372036854775807}"#,
        ];
        let decoded = decode_records(Format::Json, &schema(), &values).unwrap();
        // 2026-01-01 00:00:00 UTC, in microseconds; the out-of-range one is skipped, not wrapped.
        let ts = decoded
            .batch
            .column(2)
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(
            ts.values(),
            &[
                1_767_225_600_000_000,
                1_767_225_600_000_000,
                1_767_225_600_000_500
            ]
        );
        assert_eq!(decoded.skipped, 1);
        assert_eq!(decoded.kept, vec![0, 1, 2]);
    }
}
