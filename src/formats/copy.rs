//! Postgres COPY data (text and CSV formats) → Arrow rows of a relation's schema. Fields are
//! read as text, then cast to each column's type; a value that does not parse is a 22P02 error
//! naming the line, and nothing of the COPY is written.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{ErrorKind, Result, WeirError};

/// The COPY formats Weir reads.
#[derive(Debug, Clone)]
pub enum CopyFormat {
    /// Postgres text format: delimiter-separated, backslash escapes, `\N` for NULL.
    Text { delimiter: char, null: String },
    /// CSV: quoted fields, an unquoted empty field is NULL.
    Csv {
        delimiter: char,
        null: String,
        header: bool,
    },
}

/// Parses COPY data into one batch of `schema`.
pub fn parse_copy(format: &CopyFormat, data: &[u8], schema: &SchemaRef) -> Result<RecordBatch> {
    let text = std::str::from_utf8(data).map_err(|_| {
        WeirError::new(
            ErrorKind::InvalidText,
            "invalid byte sequence for encoding \"UTF8\"",
        )
    })?;
    let records = match format {
        CopyFormat::Text { delimiter, null } => text_records(text, *delimiter, null),
        CopyFormat::Csv {
            delimiter,
            null,
            header,
        } => {
            let mut r = super::csv::parse_records(text, *delimiter, null)?;
            if *header && !r.is_empty() {
                r.remove(0);
            }
            r
        }
    };
    strings_to_batch(records, schema)
}

/// Rows of text fields (None = NULL) → a batch of `schema`, each column cast from text. A
/// wrong field count or a value that does not parse is 22P02 (22003 when out of range).
pub fn strings_to_batch(
    records: Vec<Vec<Option<String>>>,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let width = schema.fields().len();
    // One `Vec::with_capacity` each (`vec![v; n]` would clone away the capacity).
    let mut columns: Vec<Vec<Option<String>>> = (0..width)
        .map(|_| Vec::with_capacity(records.len()))
        .collect();
    for (line, fields) in records.into_iter().enumerate() {
        if fields.len() != width {
            return Err(WeirError::new(
                ErrorKind::InvalidText,
                format!(
                    "line {}: expected {width} columns, found {}",
                    line + 1,
                    fields.len()
                ),
            ));
        }
        for (col, value) in fields.into_iter().enumerate() {
            columns[col].push(value);
        }
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let arrays = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(values, field)| {
            let strings: ArrayRef = Arc::new(StringArray::from(values));
            cast_with_options(&strings, field.data_type(), &options).map_err(|e| {
                let mut err = WeirError::from(e);
                err.message = format!("column \"{}\": {}", field.name(), err.message);
                err
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// Splits Postgres text-format COPY data into rows of fields. Escapes are decoded while
/// splitting, so an escaped delimiter stays in its field; the null marker is compared with the
/// raw field text, as Postgres does. Every line is a row (an empty line is one empty field),
/// up to an optional `\.` end marker.
fn text_records(text: &str, delimiter: char, null: &str) -> Vec<Vec<Option<String>>> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line == "\\." {
            break;
        }
        let mut fields = Vec::new();
        let (mut raw, mut value) = (String::new(), String::new());
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c == delimiter {
                fields.push(if raw == null {
                    None
                } else {
                    Some(std::mem::take(&mut value))
                });
                raw.clear();
                value.clear();
                continue;
            }
            raw.push(c);
            if c != '\\' {
                value.push(c);
                continue;
            }
            let Some(e) = chars.next() else {
                value.push('\\');
                break;
            };
            raw.push(e);
            match e {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                'b' => value.push('\u{8}'),
                'f' => value.push('\u{c}'),
                'v' => value.push('\u{b}'),
                '0'..='7' => {
                    let mut code = e.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.peek().and_then(|d| d.to_digit(8)) {
                            Some(d) => {
                                code = code * 8 + d;
                                raw.extend(chars.next());
                            }
                            None => break,
                        }
                    }
                    value.extend(char::from_u32(code));
                }
                'x' if chars.peek().is_some_and(|d| d.is_ascii_hexdigit()) => {
                    let mut code = 0;
                    for _ in 0..2 {
                        match chars.peek().and_then(|d| d.to_digit(16)) {
                            Some(d) => {
                                code = code * 16 + d;
                                raw.extend(chars.next());
                            }
                            None => break,
                        }
                    }
                    value.extend(char::from_u32(code));
                }
                other => value.push(other),
            }
        }
        fields.push(if raw == null { None } else { Some(value) });
        out.push(fields);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn text_format_with_escapes_and_nulls() {
        let format = CopyFormat::Text {
            delimiter: '\t',
            null: "\\N".into(),
        };
        let batch = parse_copy(&format, b"1\ta\\tb\n2\t\\N\n\\.\n", &schema()).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let s = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(s.value(0), "a\tb");
        assert!(s.is_null(1));
    }

    #[test]
    fn text_format_escaped_delimiters_octal_and_empty_lines() {
        let format = CopyFormat::Text {
            delimiter: '\t',
            null: "\\N".into(),
        };
        let one = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let batch = parse_copy(&format, b"a\\\tb\n\n\\101\\x42\n", &one).unwrap();
        let s = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((s.value(0), s.value(1), s.value(2)), ("a\tb", "", "AB"));
    }

    #[test]
    fn csv_format_with_quotes_header_and_nulls() {
        let format = CopyFormat::Csv {
            delimiter: ',',
            null: String::new(),
            header: true,
        };
        let batch =
            parse_copy(&format, b"id,s\n1,\"x,\"\"y\"\"\"\n2,\n3,\"\"\n", &schema()).unwrap();
        let s = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(s.value(0), "x,\"y\"");
        assert!(s.is_null(1));
        assert_eq!(s.value(2), "");
    }

    #[test]
    fn bad_values_are_22p02() {
        let format = CopyFormat::Text {
            delimiter: '\t',
            null: "\\N".into(),
        };
        let err = parse_copy(&format, b"abc\tx\n", &schema()).unwrap_err();
        assert_eq!(err.kind.sqlstate(), "22P02");
        let err = parse_copy(&format, b"1\n", &schema()).unwrap_err();
        assert_eq!(err.kind.sqlstate(), "22P02");
    }
}
