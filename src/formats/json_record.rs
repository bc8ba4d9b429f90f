//! JSON records as Postgres would read them, before Arrow's decoder sees them: a JSON or JSONB
//! column holds any JSON value (an object, array, number or boolean is kept as its JSON text; a
//! string is taken as the text itself, which is how Weir writes JSON columns), and a number in a
//! TIMESTAMP column is epoch milliseconds (Kafka's convention), not microseconds. A number
//! with a fraction in an integer column makes the record skipped (and counted), where Arrow's
//! decoder would truncate it: `{"id": 2.9}` is not id 2. An integral one (`2.0`, `1e3`) is
//! that integer. A key that names no column but matches one when ASCII case is ignored fills
//! that column (`{"userId": 1}` fills `userid`, which is what an unquoted `userId` in CREATE
//! SOURCE names), unless the record has the exact key too; two keys matching one column only
//! in case make the record skipped, as it is ambiguous.

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

/// What records of one schema need before Arrow's decoder takes them.
pub struct Normalizer {
    /// The columns whose values need rewriting.
    fixes: Vec<(String, Fix)>,
    /// Every column's name, in schema order (records usually list their keys in that order).
    names: Vec<String>,
    /// Every fix is `Fix::Integer`: a record without a fraction anywhere needs none.
    integers_only: bool,
}

/// What [`Normalizer::normalize`] makes of a record.
pub enum Normalized {
    /// Decode the record as it is.
    AsIs,
    /// Decode this instead.
    Rewritten(Vec<u8>),
    /// Skip the record (it is counted as skipped).
    Rejected,
}

impl Normalizer {
    pub fn new(schema: &SchemaRef) -> Normalizer {
        let fixes: Vec<(String, Fix)> = schema
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
        let names = schema.fields().iter().map(|f| f.name().clone()).collect();
        let integers_only = fixes.iter().all(|(_, fix)| matches!(fix, Fix::Integer));
        Normalizer {
            fixes,
            names,
            integers_only,
        }
    }

    /// What to decode for `record`: as it is when nothing needs changing (or when it is not
    /// a JSON object: the decoder then rejects it, and it is skipped and counted).
    pub fn normalize(&self, record: &[u8]) -> Normalized {
        let inexact_keys = self.has_inexact_key(record);
        if !inexact_keys && self.integers_only && !has_non_integer_number(record) {
            return Normalized::AsIs; // the common case, found without parsing the record
        }
        let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(record) else {
            return Normalized::AsIs;
        };
        let mut changed = false;
        if inexact_keys {
            match self.fold_keys(&mut object) {
                Some(folded) => changed = folded,
                None => return Normalized::Rejected,
            }
        }
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
            return Normalized::AsIs;
        }
        match serde_json::to_vec(&Value::Object(object)) {
            Ok(text) => Normalized::Rewritten(text),
            Err(_) => Normalized::AsIs,
        }
    }

    /// Whether a top-level key of `record` is not exactly a column's name (or has an escape,
    /// which only a parse can compare). One pass over the bytes, no allocation.
    fn has_inexact_key(&self, record: &[u8]) -> bool {
        let mut expected = 0; // the column the next key most likely names
        top_level_keys(record).any(|key| {
            let Some(key) = key else {
                return true; // escaped
            };
            if self
                .names
                .get(expected)
                .is_some_and(|n| n.as_bytes() == key)
            {
                expected += 1;
                return false;
            }
            match self.names.iter().position(|n| n.as_bytes() == key) {
                Some(i) => {
                    expected = i + 1;
                    false
                }
                None => self
                    .names
                    .iter()
                    .any(|n| n.as_bytes().eq_ignore_ascii_case(key)),
            }
        })
    }

    /// Renames each key of `object` that matches a column only when case is ignored to that
    /// column's name, when the object has no exact key for it. Whether anything changed; None
    /// when two keys match one column that way (ambiguous: the record is skipped).
    fn fold_keys(&self, object: &mut serde_json::Map<String, Value>) -> Option<bool> {
        let mut renames: Vec<(String, &String)> = Vec::new();
        for key in object.keys() {
            if self.names.iter().any(|n| n == key) {
                continue;
            }
            let Some(name) = self.names.iter().find(|n| n.eq_ignore_ascii_case(key)) else {
                continue;
            };
            if object.contains_key(name.as_str()) {
                continue; // the exact key wins; this one is ignored as any unknown key is
            }
            if renames.iter().any(|(_, n)| *n == name) {
                return None;
            }
            renames.push((key.clone(), name));
        }
        for (key, name) in &renames {
            if let Some(value) = object.remove(key) {
                object.insert((*name).clone(), value);
            }
        }
        Some(!renames.is_empty())
    }
}

/// The top-level keys of a JSON object's text, in order: each as its bytes between the quotes,
/// or None when it has an escape. One pass, no recursion; text that is not an object has none.
fn top_level_keys(record: &[u8]) -> impl Iterator<Item = Option<&[u8]>> + '_ {
    let mut depth = 0usize;
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < record.len() {
            let b = record[i];
            i += 1;
            match b {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.saturating_sub(1),
                b'"' => {
                    let start = i;
                    let mut escaped = false;
                    while i < record.len() && record[i] != b'"' {
                        if record[i] == b'\\' {
                            escaped = true;
                            i += 1;
                        }
                        i += 1;
                    }
                    let end = i.min(record.len());
                    i += 1;
                    if depth != 1 {
                        continue;
                    }
                    let mut next = i;
                    while next < record.len() && record[next].is_ascii_whitespace() {
                        next += 1;
                    }
                    if record.get(next) == Some(&b':') {
                        return Some((!escaped).then(|| &record[start..end]));
                    }
                }
                _ => {}
            }
        }
        None
    })
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

    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{
        DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
    };

    use crate::formats::{Decoded, Format, decode_records};

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

    fn ids(decoded: &Decoded) -> Vec<i64> {
        decoded
            .batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    fn users(decoded: &Decoded) -> Vec<Option<&str>> {
        decoded.batch.column(1).as_string::<i32>().iter().collect()
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
        assert_eq!(ids(&decoded), &[1, 2, 3, 4, 5]);
        let users = users(&decoded);
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

    #[test]
    fn a_key_differing_only_in_case_fills_its_column() {
        let values: Vec<&[u8]> = vec![
            br#"{"ID":1,"User":"ann"}"#,
            br#"{"id":2,"Id":99}"#,
            br#"{"iD":3,"Id":4}"#,
            br#"{"id":5,"us\u0065r":"bob"}"#,
            br#"{"Nested":{"ID":7},"id":6}"#,
        ];
        let decoded = decode_records(Format::Json, &schema(), &values).unwrap();
        // The exact key wins over a folded one; two folded keys for one column are ambiguous.
        assert_eq!(decoded.kept, vec![0, 1, 3, 4]);
        assert_eq!(decoded.skipped, 1);
        assert_eq!(ids(&decoded), &[1, 2, 5, 6]);
        let users = users(&decoded);
        assert_eq!(users, vec![Some("ann"), None, Some("bob"), None]);
    }
}
