//! CSV with Postgres semantics, used by COPY ... (FORMAT csv) and by CSV sources: an unquoted
//! empty field is NULL, a quoted empty field (`""`) is the empty string, fields holding the
//! delimiter, a quote, a newline or surrounding spaces are quoted with `"` doubled inside.

use bytes::Bytes;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{ErrorKind, Result, WeirError};

/// Encodes each row of `batch` as one CSV line (without the line end).
pub fn encode_rows(batch: &RecordBatch) -> Result<Vec<Bytes>> {
    let options = FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let textual: Vec<bool> = batch
        .columns()
        .iter()
        .map(|c| {
            matches!(
                c.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        })
        .collect();
    let mut out = Vec::with_capacity(batch.num_rows());
    let mut line = String::new();
    for row in 0..batch.num_rows() {
        line.clear();
        for (col, f) in formatters.iter().enumerate() {
            if col > 0 {
                line.push(',');
            }
            if batch.column(col).is_null(row) {
                continue;
            }
            let value = f.value(row).to_string();
            let needs_quotes = (textual[col] && value.is_empty())
                || value.contains([',', '"', '\n', '\r'])
                || value.starts_with(' ')
                || value.ends_with(' ');
            if needs_quotes {
                line.push('"');
                line.push_str(&value.replace('"', "\"\""));
                line.push('"');
            } else {
                line.push_str(&value);
            }
        }
        out.push(Bytes::copy_from_slice(line.as_bytes()));
    }
    Ok(out)
}

/// Splits CSV text into records of fields (None = NULL).
pub fn parse_records(text: &str, delimiter: char, null: &str) -> Result<Vec<Vec<Option<String>>>> {
    let mut records = Vec::new();
    let mut fields: Vec<Option<String>> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = text.chars().peekable();
    let finish_field =
        |field: &mut String, was_quoted: &mut bool, fields: &mut Vec<Option<String>>| {
            let value = std::mem::take(field);
            fields.push(if !*was_quoted && value == null {
                None
            } else {
                Some(value)
            });
            *was_quoted = false;
        };
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' {
            quoted = true;
            was_quoted = true;
        } else if c == delimiter {
            finish_field(&mut field, &mut was_quoted, &mut fields);
        } else if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            if field == "\\." && fields.is_empty() {
                return Ok(records);
            }
            if !(fields.is_empty() && field.is_empty() && !was_quoted) {
                finish_field(&mut field, &mut was_quoted, &mut fields);
                records.push(std::mem::take(&mut fields));
            }
        } else {
            field.push(c);
        }
    }
    if quoted {
        return Err(WeirError::new(
            ErrorKind::InvalidText,
            "unterminated CSV quoted field",
        ));
    }
    if !(fields.is_empty() && field.is_empty() && !was_quoted) && field != "\\." {
        finish_field(&mut field, &mut was_quoted, &mut fields);
        records.push(fields);
    }
    Ok(records)
}
