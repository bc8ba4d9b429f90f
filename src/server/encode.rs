//! Arrow → Postgres: result column types for RowDescription, and values in text or binary
//! format as each column's format code asks (pgwire encodes a value per the field's format).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;

use crate::error::{Result, WeirError};

/// The Postgres type a column of `data_type` is sent as.
pub fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => Type::NUMERIC,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        _ => Type::TEXT,
    }
}

/// RowDescription fields for a schema, with the formats the client asked for.
pub fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            FieldInfo::new(
                crate::db::pg_column_name(f.name()),
                None,
                None,
                pg_type(f.data_type()),
                column_format(format, i),
            )
        })
        .collect()
}

/// The format of result column `i`. A client may send one code for all columns or one per
/// column; a malformed list (neither) means text rather than a panic in the format lookup.
fn column_format(format: &Format, i: usize) -> FieldFormat {
    match format {
        Format::Individual(codes) if codes.len() == 1 => FieldFormat::from(codes[0]),
        Format::Individual(codes) => codes
            .get(i)
            .map_or(FieldFormat::Text, |c| FieldFormat::from(*c)),
        other => other.format_for(i),
    }
}

/// Encodes every row of the batches as DataRows.
pub fn rows(
    fields: Arc<Vec<FieldInfo>>,
    batches: &[RecordBatch],
) -> Result<Vec<PgWireResult<DataRow>>> {
    let mut out = Vec::new();
    let mut encoder = DataRowEncoder::new(fields.clone());
    let text: Vec<bool> = fields
        .iter()
        .map(|f| f.format() == FieldFormat::Text)
        .collect();
    for batch in batches {
        let columns: Vec<Column> = batch
            .columns()
            .iter()
            .map(Column::new)
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            for (c, column) in columns.iter().enumerate() {
                column
                    .encode(&mut encoder, row, text[c])
                    .map_err(|e| WeirError::internal(format!("encode: {e}")))?;
            }
            out.push(Ok(encoder.take_row()));
        }
    }
    Ok(out)
}

/// A float as Postgres prints it: shortest round-trip digits, exponent form outside
/// [1e-4, 1e15) (1e6 for real), `Infinity` / `NaN` spelled out.
fn pg_float(v: f64, single: bool) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let shortest = if single {
        format!("{}", v as f32)
    } else {
        format!("{v}")
    };
    let magnitude = v.abs();
    let exponent_limit = if single { 1e6 } else { 1e15 };
    if v == 0.0 || (1e-4..exponent_limit).contains(&magnitude) {
        return shortest;
    }
    let e = if single {
        format!("{:e}", v as f32)
    } else {
        format!("{v:e}")
    };
    match e.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => shortest,
    }
}

/// Fractional seconds as Postgres prints them: none when zero, else trailing zeros trimmed.
fn pg_fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let micros = format!(".{:06}", nanos / 1000);
    micros.trim_end_matches('0').to_string()
}

fn pg_datetime(d: &chrono::NaiveDateTime) -> String {
    use chrono::Timelike;
    format!(
        "{}{}",
        d.format("%Y-%m-%d %H:%M:%S"),
        pg_fraction(d.nanosecond())
    )
}

fn pg_time(t: &chrono::NaiveTime) -> String {
    use chrono::Timelike;
    format!("{}{}", t.format("%H:%M:%S"), pg_fraction(t.nanosecond()))
}

/// A column prepared for encoding: normalised to one array type per Postgres type.
enum Column {
    Bool(BooleanArray),
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    F32(Float32Array),
    F64(Float64Array),
    Numeric(Decimal128Array, u32),
    Text(StringArray),
    Bytes(BinaryArray),
    Date(Date32Array),
    Time(Time64MicrosecondArray),
    Timestamp(TimestampMicrosecondArray),
    TimestampTz(TimestampMicrosecondArray),
    /// Anything else, as the text Arrow displays.
    Display(ArrayRef),
}

impl Column {
    fn new(array: &ArrayRef) -> Result<Column> {
        let to = |t: DataType| cast(array, &t);
        Ok(match pg_type(array.data_type()) {
            t if t == Type::BOOL => Column::Bool(array.as_boolean().clone()),
            t if t == Type::INT2 => Column::I16(to(DataType::Int16)?.as_primitive().clone()),
            t if t == Type::INT4 => Column::I32(to(DataType::Int32)?.as_primitive().clone()),
            t if t == Type::INT8 => Column::I64(to(DataType::Int64)?.as_primitive().clone()),
            t if t == Type::FLOAT4 => Column::F32(to(DataType::Float32)?.as_primitive().clone()),
            t if t == Type::FLOAT8 => Column::F64(to(DataType::Float64)?.as_primitive().clone()),
            t if t == Type::NUMERIC => match array.data_type() {
                DataType::Decimal128(p, s) if *p <= 28 && *s >= 0 => {
                    Column::Numeric(array.as_primitive().clone(), *s as u32)
                }
                _ => Column::Display(array.clone()),
            },
            t if t == Type::TEXT
                && !matches!(
                    array.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
            {
                Column::Display(array.clone())
            }
            t if t == Type::TEXT => Column::Text(to(DataType::Utf8)?.as_string::<i32>().clone()),
            t if t == Type::BYTEA => {
                Column::Bytes(to(DataType::Binary)?.as_binary::<i32>().clone())
            }
            t if t == Type::DATE => Column::Date(to(DataType::Date32)?.as_primitive().clone()),
            t if t == Type::TIME => Column::Time(
                to(DataType::Time64(TimeUnit::Microsecond))?
                    .as_primitive()
                    .clone(),
            ),
            t if t == Type::TIMESTAMP => Column::Timestamp(
                to(DataType::Timestamp(TimeUnit::Microsecond, None))?
                    .as_primitive()
                    .clone(),
            ),
            t if t == Type::TIMESTAMPTZ => Column::TimestampTz(
                to(DataType::Timestamp(
                    TimeUnit::Microsecond,
                    Some("+00:00".into()),
                ))?
                .as_primitive()
                .clone(),
            ),
            _ => Column::Display(array.clone()),
        })
    }

    /// Encodes value `i`; `text` says the client asked for text format, where floats and
    /// times are written the way Postgres writes them.
    fn encode(&self, enc: &mut DataRowEncoder, i: usize, text: bool) -> PgWireResult<()> {
        fn opt<A: Array, T>(a: &A, i: usize, f: impl FnOnce() -> T) -> Option<T> {
            if a.is_null(i) { None } else { Some(f()) }
        }
        if text {
            let formatted = match self {
                Column::F32(a) => Some(opt(a, i, || pg_float(a.value(i) as f64, true))),
                Column::F64(a) => Some(opt(a, i, || pg_float(a.value(i), false))),
                Column::Timestamp(a) => Some(if a.is_null(i) {
                    None
                } else {
                    a.value_as_datetime(i).map(|d| pg_datetime(&d))
                }),
                Column::TimestampTz(a) => Some(if a.is_null(i) {
                    None
                } else {
                    a.value_as_datetime(i)
                        .map(|d| format!("{}+00", pg_datetime(&d)))
                }),
                Column::Time(a) => Some(if a.is_null(i) {
                    None
                } else {
                    a.value_as_time(i).map(|t| pg_time(&t))
                }),
                _ => None,
            };
            if let Some(value) = formatted {
                return enc.encode_field(&value);
            }
        }
        match self {
            Column::Bool(a) => enc.encode_field(&opt(a, i, || a.value(i))),
            Column::I16(a) => enc.encode_field(&opt(a, i, || a.value(i))),
            Column::I32(a) => enc.encode_field(&opt(a, i, || a.value(i))),
            Column::I64(a) => enc.encode_field(&opt(a, i, || a.value(i))),
            Column::F32(a) => enc.encode_field(&opt(a, i, || a.value(i))),
            Column::F64(a) => enc.encode_field(&opt(a, i, || a.value(i))),
            Column::Numeric(a, scale) => enc.encode_field(&opt(a, i, || {
                rust_decimal::Decimal::from_i128_with_scale(a.value(i), *scale)
            })),
            Column::Text(a) => enc.encode_field(&opt(a, i, || a.value(i))),
            Column::Bytes(a) => enc.encode_field(&opt(a, i, || a.value(i))),
            Column::Date(a) => enc.encode_field(&if a.is_null(i) {
                None
            } else {
                a.value_as_date(i)
            }),
            Column::Time(a) => enc.encode_field(&if a.is_null(i) {
                None
            } else {
                a.value_as_time(i)
            }),
            Column::Timestamp(a) => enc.encode_field(&if a.is_null(i) {
                None
            } else {
                a.value_as_datetime(i)
            }),
            Column::TimestampTz(a) => {
                let v: Option<DateTime<Utc>> = if a.is_null(i) {
                    None
                } else {
                    a.value_as_datetime(i).map(|d| d.and_utc())
                };
                enc.encode_field(&v)
            }
            Column::Display(a) => {
                let text = if a.is_null(i) {
                    None
                } else {
                    let f = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())
                        .map_err(|e| pgwire::error::PgWireError::ApiError(Box::new(e)))?;
                    Some(f.value(i).to_string())
                };
                enc.encode_field(&text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(pg_float(1.0, false), "1");
        assert_eq!(pg_float(100.0, false), "100");
        assert_eq!(pg_float(0.1, false), "0.1");
        assert_eq!(pg_float(1e20, false), "1e+20");
        assert_eq!(pg_float(1.5e-7, false), "1.5e-07");
        assert_eq!(pg_float(f64::NEG_INFINITY, false), "-Infinity");
        assert_eq!(pg_float(2.5, true), "2.5");
    }

    #[test]
    fn times_trim_fractions() {
        let d = chrono::NaiveDate::from_ymd_opt(2024, 5, 6)
            .unwrap()
            .and_hms_micro_opt(7, 8, 9, 500_000)
            .unwrap();
        assert_eq!(pg_datetime(&d), "2024-05-06 07:08:09.5");
        let d = chrono::NaiveDate::from_ymd_opt(2024, 5, 6)
            .unwrap()
            .and_hms_opt(7, 8, 9)
            .unwrap();
        assert_eq!(pg_datetime(&d), "2024-05-06 07:08:09");
    }
}
