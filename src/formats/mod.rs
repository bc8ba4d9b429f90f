//! Record formats: Arrow rows <-> topic record values.
//!
//! A topic record holds one row. INSERT and COPY encode rows with [`encode_rows`]; sources and
//! history reads decode a run of records with [`decode_records`]. A record that does not decode
//! is skipped and counted, never fatal: it stays in the topic and the view goes on.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json;
use serde::{Deserialize, Serialize};

use crate::error::{Result, WeirError};

pub mod copy;
pub mod csv;
mod json_record;
pub mod rows;
pub use rows::RowCodec;

/// How a topic's record values are written.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per record, fields by column name.
    Json,
    /// One CSV line per record, columns in declaration order, no header.
    Csv,
}

impl Format {
    pub fn parse(name: &str) -> Result<Format> {
        match name.to_ascii_uppercase().as_str() {
            "JSON" => Ok(Format::Json),
            "CSV" => Ok(Format::Csv),
            other => Err(
                WeirError::unsupported(format!("format {other} is not supported"))
                    .with_hint("use FORMAT JSON or FORMAT CSV"),
            ),
        }
    }
}

/// Encodes each row of `batch` as one record value.
pub fn encode_rows(format: Format, batch: &RecordBatch) -> Result<Vec<Bytes>> {
    match format {
        Format::Json => encode_json(batch),
        Format::Csv => self::csv::encode_rows(batch),
    }
}

/// One JSON object per row. The writer ends every row with exactly one '\n' and escapes
/// newlines inside values, so splitting on '\n' gives the rows.
fn encode_json(batch: &RecordBatch) -> Result<Vec<Bytes>> {
    let mut buf = Vec::with_capacity(batch.num_rows() * 64);
    let mut writer = json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, json::writer::LineDelimited>(&mut buf);
    writer.write(batch)?;
    writer.finish()?;
    let buf = Bytes::from(buf);
    let mut out = Vec::with_capacity(batch.num_rows());
    let mut start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            out.push(buf.slice(start..i));
            start = i + 1;
        }
    }
    if out.len() != batch.num_rows() {
        return Err(WeirError::internal(format!(
            "encoded {} records for {} rows",
            out.len(),
            batch.num_rows()
        )));
    }
    Ok(out)
}

/// Decoded records: the rows that decoded, and which input records did not.
pub struct Decoded {
    pub batch: RecordBatch,
    /// Index (into the input) of each record that decoded, in order: row i of `batch` came
    /// from `values[kept[i]]`.
    pub kept: Vec<usize>,
    pub skipped: usize,
}

/// Decodes record values into one batch of `schema`. Malformed records are skipped.
pub fn decode_records(format: Format, schema: &SchemaRef, values: &[&[u8]]) -> Result<Decoded> {
    if values.is_empty() {
        return Ok(Decoded {
            batch: RecordBatch::new_empty(schema.clone()),
            kept: vec![],
            skipped: 0,
        });
    }
    let normalizer = json_record::Normalizer::new(schema);
    // A record nested deeper than the decoders' recursion can take is skipped unseen.
    let too_deep = |value: &[u8]| format == Format::Json && json_record::nests_too_deeply(value);
    let any_too_deep = values.iter().any(|v| too_deep(v));
    // Fast path: everything decodes in one go.
    if !any_too_deep
        && let Ok(batch) = decode_all(format, schema, &normalizer, values)
        && batch.num_rows() == values.len()
    {
        return Ok(Decoded {
            batch,
            kept: (0..values.len()).collect(),
            skipped: 0,
        });
    }
    // Slow path: find the bad records one by one.
    let mut batches = Vec::new();
    let mut kept = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if !too_deep(value)
            && let Ok(batch) = decode_all(format, schema, &normalizer, &[value])
            && batch.num_rows() == 1
        {
            batches.push(batch);
            kept.push(i);
        }
    }
    let skipped = values.len() - kept.len();
    let batch = datafusion::arrow::compute::concat_batches(schema, &batches)?;
    Ok(Decoded {
        batch,
        kept,
        skipped,
    })
}

/// Decodes `values` as one batch; an error when any of them does not decode (or the normalizer
/// rejects it), so that the caller looks for the bad ones one by one.
fn decode_all(
    format: Format,
    schema: &SchemaRef,
    normalizer: &json_record::Normalizer,
    values: &[&[u8]],
) -> Result<RecordBatch> {
    let mut text = Vec::with_capacity(values.iter().map(|v| v.len() + 1).sum());
    for v in values {
        match format {
            Format::Json => match normalizer.normalize(v) {
                json_record::Normalized::AsIs => text.extend_from_slice(v),
                json_record::Normalized::Rewritten(fixed) => text.extend_from_slice(&fixed),
                json_record::Normalized::Rejected => {
                    return Err(WeirError::new(
                        crate::error::ErrorKind::InvalidText,
                        "JSON record with two keys matching one column only when case is ignored",
                    ));
                }
            },
            _ => text.extend_from_slice(v),
        }
        text.push(b'\n');
    }
    let batch = match format {
        Format::Json => {
            let mut decoder = json::ReaderBuilder::new(schema.clone())
                .with_batch_size(values.len())
                .with_strict_mode(false)
                .build_decoder()?;
            feed(&text, |bytes| decoder.decode(bytes))?;
            decoder.flush()?
        }
        Format::Csv => {
            let text = std::str::from_utf8(&text).map_err(|_| {
                WeirError::new(
                    crate::error::ErrorKind::InvalidText,
                    "CSV record is not UTF-8",
                )
            })?;
            let records = self::csv::parse_records(text, ',', "")?;
            Some(copy::strings_to_batch(records, schema)?)
        }
    };
    Ok(batch.unwrap_or_else(|| empty_batch(schema)))
}

/// Hands `text` to a push decoder until it has consumed all of it (or stops taking more).
fn feed(
    text: &[u8],
    mut decode: impl FnMut(&[u8]) -> std::result::Result<usize, datafusion::arrow::error::ArrowError>,
) -> Result<()> {
    let mut consumed = 0;
    while consumed < text.len() {
        let n = decode(&text[consumed..])?;
        if n == 0 {
            break;
        }
        consumed += n;
    }
    Ok(())
}

fn empty_batch(schema: &SchemaRef) -> RecordBatch {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| new_null_array(f.data_type(), 0))
        .collect();
    RecordBatch::try_new(Arc::clone(schema), columns).expect("empty batch matches its schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};

    fn sample() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec![
                    Some("a,b\nc \"q\""),
                    Some(""),
                    None,
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_both_formats() {
        for format in [Format::Json, Format::Csv] {
            let batch = sample();
            let values = encode_rows(format, &batch).unwrap();
            assert_eq!(values.len(), 3, "{format:?}");
            let refs: Vec<&[u8]> = values.iter().map(|v| v.as_ref()).collect();
            let decoded = decode_records(format, &batch.schema(), &refs).unwrap();
            assert_eq!(decoded.skipped, 0);
            // NULL and the empty string stay distinct in both formats.
            assert_eq!(decoded.batch, batch, "{format:?}");
        }
    }

    #[test]
    fn malformed_records_are_skipped_and_counted() {
        let batch = sample();
        let values: Vec<&[u8]> = vec![
            br#"{"id": 1, "name": "a"}"#,
            b"not json",
            br#"{"id": "x"}"#,
            br#"{"id": 4}"#,
        ];
        let decoded = decode_records(Format::Json, &batch.schema(), &values).unwrap();
        assert_eq!(decoded.skipped, 2);
        assert_eq!(decoded.kept, vec![0, 3]);
        assert_eq!(first_ints(&decoded.batch), vec![1, 4]);
    }

    /// The first column of `batch`, an Int64 one, as values.
    fn first_ints(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn a_fraction_in_an_integer_column_skips_the_record() {
        let batch = sample();
        let values: Vec<&[u8]> = vec![
            br#"{"id": 2.9, "name": "truncated before"}"#,
            br#"{"id": 3, "name": "x.5e"}"#,
            br#"{"id": 4.0}"#,
            br#"{"id": 5e1}"#,
            br#"{"id": -0.5}"#,
            br#"{"id": 1e300}"#,
        ];
        let decoded = decode_records(Format::Json, &batch.schema(), &values).unwrap();
        assert_eq!(decoded.kept, vec![1, 2, 3]);
        assert_eq!(decoded.skipped, 3);
        assert_eq!(first_ints(&decoded.batch), vec![3, 4, 50]);
    }

    #[test]
    fn records_nested_too_deeply_are_skipped_and_counted() {
        let batch = sample();
        let deep = |levels: usize| {
            format!(
                r#"{{"id": 2, "x": {}{}}}"#,
                "[".repeat(levels),
                "]".repeat(levels)
            )
        };
        // The object itself is one level.
        let at_limit = deep(json_record::JSON_NESTING_MAX - 1);
        let past_limit = deep(json_record::JSON_NESTING_MAX);
        let bomb = deep(100_000);
        let brackets_in_a_string = format!(r#"{{"id": 5, "name": "{}\\\"["}}"#, "[".repeat(1000));
        let values: Vec<&[u8]> = vec![
            br#"{"id": 1}"#,
            at_limit.as_bytes(),
            past_limit.as_bytes(),
            bomb.as_bytes(),
            brackets_in_a_string.as_bytes(),
        ];
        let decoded = decode_records(Format::Json, &batch.schema(), &values).unwrap();
        assert_eq!(decoded.kept, vec![0, 1, 4]);
        assert_eq!(decoded.skipped, 2);
    }
}
