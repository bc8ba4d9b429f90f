//! Arrow → Postgres: result column types for RowDescription, and each value in the text or the
//! binary format the client asked for. Both formats are written here, byte for byte as
//! Postgres writes them (floats, times, intervals, numerics, arrays), and COPY TO uses the
//! same text forms.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, ListArray, RecordBatch,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, Schema, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;

use super::numeric;
use crate::error::{Result, WeirError};

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (Postgres' epoch).
pub(super) const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
pub(super) const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400_000_000;

/// The Postgres type a column of `data_type` is sent as: the type the catalogs describe it
/// as (`pg_catalog::types`, the one mapping).
pub fn pg_type(data_type: &DataType) -> Type {
    Type::from_oid(crate::pg_catalog::types::pg_type_of(data_type).0).unwrap_or(Type::TEXT)
}

/// The Postgres type of a result column: its Arrow type's, or the json / jsonb / uuid its
/// metadata names.
pub fn field_type(field: &Field) -> Type {
    Type::from_oid(crate::pg_catalog::types::pg_type_of_field(field).0).unwrap_or(Type::TEXT)
}

/// json / jsonb / uuid are stored as text; `buf` holds the text, rewritten in place into the
/// binary form of the declared type.
fn text_type_binary(declared: &Type, buf: &mut Vec<u8>) -> Result<()> {
    match declared {
        t if *t == Type::JSONB => buf.insert(0, 1), // jsonb binary format version
        t if *t == Type::UUID => {
            let text = String::from_utf8_lossy(buf).into_owned();
            let uuid = uuid::Uuid::parse_str(text.trim()).map_err(|_| {
                WeirError::new(
                    crate::error::ErrorKind::InvalidText,
                    format!("invalid input syntax for type uuid: \"{text}\""),
                )
            })?;
            buf.clear();
            buf.extend_from_slice(uuid.as_bytes());
        }
        _ => {}
    }
    Ok(())
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
                field_type(f),
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
    let text_options = pgwire::types::format::FormatOptions::default();
    let mut buf = Vec::new();
    // json / jsonb / uuid columns (stored as text) need their binary form built per value.
    let declared: Vec<Option<Type>> = fields
        .iter()
        .map(|f| {
            let t = f.datatype();
            (*t == Type::JSONB || *t == Type::UUID).then(|| t.clone())
        })
        .collect();
    for batch in batches {
        let columns: Vec<Column> = batch
            .columns()
            .iter()
            .map(Column::new)
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            for (c, column) in columns.iter().enumerate() {
                let format = fields.get(c).map_or(FieldFormat::Text, |f| f.format());
                let result = if format == FieldFormat::Text {
                    let value = column.text(row);
                    encoder.encode_field_with_type_and_format(
                        &value,
                        &Type::TEXT,
                        format,
                        &text_options,
                    )
                } else {
                    buf.clear();
                    let present = column.binary(row, &mut buf);
                    if let (true, Some(Some(t))) = (present, declared.get(c)) {
                        text_type_binary(t, &mut buf)?;
                    }
                    let value = present.then_some(buf.as_slice());
                    encoder.encode_field_with_type_and_format(
                        &value,
                        &Type::BYTEA,
                        format,
                        &text_options,
                    )
                };
                result.map_err(|e| WeirError::internal(format!("encode: {e}")))?;
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

/// An interval as Postgres prints it (IntervalStyle postgres): `1 year 2 mons -3 days
/// +04:05:06.5`; the time part appears when it is not zero or nothing else does.
pub fn pg_interval(months: i32, days: i32, micros: i64) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut negative_before = false;
    let mut unit = |n: i64, name: &str, plural: &str| {
        if n != 0 {
            parts.push(format!("{n} {}", if n == 1 { name } else { plural }));
            negative_before = n < 0;
        }
    };
    unit(i64::from(months / 12), "year", "years");
    unit(i64::from(months % 12), "mon", "mons");
    unit(i64::from(days), "day", "days");
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 {
            "-"
        } else if negative_before {
            "+"
        } else {
            ""
        };
        let abs = micros.unsigned_abs();
        let (secs, frac) = (abs / 1_000_000, (abs % 1_000_000) as u32);
        parts.push(format!(
            "{sign}{:02}:{:02}:{:02}{}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            pg_fraction(frac * 1000)
        ));
    }
    parts.join(" ")
}

/// An array element as it appears inside `{...}`: quoted when it must be.
fn array_element(text: &str) -> String {
    let plain = !text.is_empty()
        && !text.eq_ignore_ascii_case("NULL")
        && !text
            .chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
    if plain {
        text.to_string()
    } else {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A column prepared for encoding: normalised to one array type per Postgres type.
pub enum Column {
    Bool(BooleanArray),
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    Oid(datafusion::arrow::array::UInt32Array),
    F32(Float32Array),
    F64(Float64Array),
    /// Any decimal, through its exact text.
    /// Rendered as text once per batch (its binary form is built from the text).
    Numeric(StringArray),
    Text(StringArray),
    Bytes(BinaryArray),
    Date(Date32Array),
    Time(Time64MicrosecondArray),
    Timestamp(TimestampMicrosecondArray),
    TimestampTz(TimestampMicrosecondArray),
    Interval(IntervalMonthDayNanoArray),
    /// A one-dimensional array of `element`s.
    List {
        lists: ListArray,
        values: Box<Column>,
        element: Type,
        /// int2vector / oidvector: text form `1 2`, not `{1,2}`.
        vector: bool,
    },
    /// Anything else, as the text Arrow displays (sent as text).
    Display(StringArray),
}

/// A column as Arrow displays it, rendered once (one formatter for the whole column, not one
/// per value): the text form of NUMERIC and of types sent as text.
fn rendered(array: &ArrayRef) -> Result<StringArray> {
    use std::fmt::Write;
    let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
    let mut out =
        datafusion::arrow::array::StringBuilder::with_capacity(array.len(), array.len() * 8);
    for i in 0..array.len() {
        if array.is_null(i) {
            out.append_null();
        } else {
            write!(out, "{}", formatter.value(i))
                .map_err(|e| WeirError::internal(format!("render: {e}")))?;
            out.append_value("");
        }
    }
    Ok(out.finish())
}

impl Column {
    pub fn new(array: &ArrayRef) -> Result<Column> {
        let to = |t: DataType| cast(array, &t);
        let t = pg_type(array.data_type());
        Ok(match t {
            _ if t == Type::BOOL => Column::Bool(array.as_boolean().clone()),
            _ if t == Type::INT2 => Column::I16(to(DataType::Int16)?.as_primitive().clone()),
            _ if t == Type::INT4 => Column::I32(to(DataType::Int32)?.as_primitive().clone()),
            _ if t == Type::INT8 => Column::I64(to(DataType::Int64)?.as_primitive().clone()),
            _ if t == Type::OID => Column::Oid(to(DataType::UInt32)?.as_primitive().clone()),
            _ if t == Type::FLOAT4 => Column::F32(to(DataType::Float32)?.as_primitive().clone()),
            _ if t == Type::FLOAT8 => Column::F64(to(DataType::Float64)?.as_primitive().clone()),
            _ if t == Type::NUMERIC => Column::Numeric(rendered(array)?),
            // An untyped NULL column (`SELECT NULL`): all NULLs, sent as text.
            _ if t == Type::TEXT
                && matches!(
                    array.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
                ) =>
            {
                Column::Text(to(DataType::Utf8)?.as_string::<i32>().clone())
            }
            _ if t == Type::BYTEA => {
                Column::Bytes(to(DataType::Binary)?.as_binary::<i32>().clone())
            }
            _ if t == Type::DATE => Column::Date(to(DataType::Date32)?.as_primitive().clone()),
            _ if t == Type::TIME => Column::Time(
                to(DataType::Time64(TimeUnit::Microsecond))?
                    .as_primitive()
                    .clone(),
            ),
            _ if t == Type::TIMESTAMP => Column::Timestamp(
                to(DataType::Timestamp(TimeUnit::Microsecond, None))?
                    .as_primitive()
                    .clone(),
            ),
            _ if t == Type::TIMESTAMPTZ => Column::TimestampTz(
                to(DataType::Timestamp(
                    TimeUnit::Microsecond,
                    Some("+00:00".into()),
                ))?
                .as_primitive()
                .clone(),
            ),
            _ if t == Type::INTERVAL => {
                let interval = DataType::Interval(IntervalUnit::MonthDayNano);
                let array = match array.data_type() {
                    // Durations cast to intervals through their microseconds.
                    DataType::Duration(_) => {
                        cast(&to(DataType::Duration(TimeUnit::Microsecond))?, &interval)?
                    }
                    _ => to(interval)?,
                };
                Column::Interval(array.as_primitive().clone())
            }
            _ if t != Type::TEXT => {
                let item = match array.data_type() {
                    DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                        f.clone()
                    }
                    _ => Arc::new(Field::new("item", DataType::Utf8, true)),
                };
                let lists = to(DataType::List(item))?.as_list::<i32>().clone();
                let values = Column::new(lists.values())?;
                let element = pg_type(&lists.value_type());
                Column::List {
                    lists,
                    values: Box::new(values),
                    element,
                    vector: t == Type::INT2_VECTOR || t == Type::OID_VECTOR,
                }
            }
            _ => Column::Display(rendered(array)?),
        })
    }

    fn array(&self) -> &dyn Array {
        match self {
            Column::Bool(a) => a,
            Column::I16(a) => a,
            Column::I32(a) => a,
            Column::I64(a) => a,
            Column::Oid(a) => a,
            Column::F32(a) => a,
            Column::F64(a) => a,
            Column::Numeric(a) => a,
            Column::Text(a) => a,
            Column::Bytes(a) => a,
            Column::Date(a) => a,
            Column::Time(a) => a,
            Column::Timestamp(a) => a,
            Column::TimestampTz(a) => a,
            Column::Interval(a) => a,
            Column::List { lists, .. } => lists,
            Column::Display(a) => a,
        }
    }

    /// Value `i` in Postgres text format; None for NULL.
    pub fn text(&self, i: usize) -> Option<String> {
        if self.array().is_null(i) {
            return None;
        }
        Some(match self {
            Column::Bool(a) => if a.value(i) { "t" } else { "f" }.into(),
            Column::I16(a) => a.value(i).to_string(),
            Column::I32(a) => a.value(i).to_string(),
            Column::I64(a) => a.value(i).to_string(),
            Column::Oid(a) => a.value(i).to_string(),
            Column::F32(a) => pg_float(f64::from(a.value(i)), true),
            Column::F64(a) => pg_float(a.value(i), false),
            Column::Numeric(a) => a.value(i).to_string(),
            Column::Text(a) => a.value(i).to_string(),
            Column::Bytes(a) => {
                let mut s = String::with_capacity(2 + 2 * a.value(i).len());
                s.push_str("\\x");
                for b in a.value(i) {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            }
            Column::Date(a) => a.value_as_date(i)?.format("%Y-%m-%d").to_string(),
            Column::Time(a) => pg_time(&a.value_as_time(i)?),
            Column::Timestamp(a) => pg_datetime(&a.value_as_datetime(i)?),
            Column::TimestampTz(a) => format!("{}+00", pg_datetime(&a.value_as_datetime(i)?)),
            Column::Interval(a) => {
                let v = a.value(i);
                pg_interval(v.months, v.days, v.nanoseconds / 1000)
            }
            Column::List {
                lists,
                values,
                vector,
                ..
            } => {
                let offsets = lists.value_offsets();
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                // An inner array is a dimension of this one (`{{1,2},{3,4}}`), not an element
                // to quote: quoting it would double its escapes at every level.
                let nested = matches!(values.as_ref(), Column::List { vector: false, .. });
                let items: Vec<String> = (start..end)
                    .map(|j| match values.text(j) {
                        Some(t) if nested => t,
                        Some(t) => array_element(&t),
                        None => "NULL".into(),
                    })
                    .collect();
                if *vector {
                    items.join(" ")
                } else {
                    format!("{{{}}}", items.join(","))
                }
            }
            Column::Display(a) => a.value(i).to_string(),
        })
    }

    /// Writes value `i` in Postgres binary format to `out`; false for NULL.
    pub fn binary(&self, i: usize, out: &mut Vec<u8>) -> bool {
        if self.array().is_null(i) {
            return false;
        }
        match self {
            Column::Bool(a) => out.push(u8::from(a.value(i))),
            Column::I16(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Column::I32(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Column::I64(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Column::Oid(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Column::F32(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Column::F64(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Column::Numeric(a) => numeric::write_binary(a.value(i), out),
            Column::Text(a) => out.extend_from_slice(a.value(i).as_bytes()),
            Column::Bytes(a) => out.extend_from_slice(a.value(i)),
            Column::Date(a) => {
                let days = i64::from(a.value(i)) - PG_EPOCH_DAYS;
                out.extend_from_slice(&(days as i32).to_be_bytes())
            }
            Column::Time(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            Column::Timestamp(a) | Column::TimestampTz(a) => {
                let micros = a.value(i).saturating_sub(PG_EPOCH_MICROS);
                out.extend_from_slice(&micros.to_be_bytes())
            }
            Column::Interval(a) => {
                let v = a.value(i);
                out.extend_from_slice(&(v.nanoseconds / 1000).to_be_bytes());
                out.extend_from_slice(&v.days.to_be_bytes());
                out.extend_from_slice(&v.months.to_be_bytes());
            }
            Column::List {
                lists,
                values,
                element,
                ..
            } => {
                let offsets = lists.value_offsets();
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                let has_null = (start..end).any(|j| values.array().is_null(j));
                let dims: i32 = if start == end { 0 } else { 1 };
                out.extend_from_slice(&dims.to_be_bytes());
                out.extend_from_slice(&i32::from(has_null).to_be_bytes());
                out.extend_from_slice(&element.oid().to_be_bytes());
                if dims == 1 {
                    out.extend_from_slice(&((end - start) as i32).to_be_bytes());
                    out.extend_from_slice(&1i32.to_be_bytes());
                }
                for j in start..end {
                    let at = out.len();
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    if values.binary(j, out) {
                        let len = (out.len() - at - 4) as i32;
                        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
                    }
                }
            }
            Column::Display(a) => out.extend_from_slice(a.value(i).as_bytes()),
        }
        true
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

    #[test]
    fn intervals_print_like_postgres() {
        assert_eq!(pg_interval(0, 0, 0), "00:00:00");
        assert_eq!(pg_interval(0, 1, 0), "1 day");
        assert_eq!(pg_interval(14, 3, 0), "1 year 2 mons 3 days");
        assert_eq!(pg_interval(0, -1, 3_600_000_000), "-1 days +01:00:00");
        assert_eq!(pg_interval(0, 0, -5_500_000), "-00:00:05.5");
    }

    #[test]
    fn array_elements_are_quoted_when_needed() {
        assert_eq!(array_element("abc"), "abc");
        assert_eq!(array_element("a b"), "\"a b\"");
        assert_eq!(array_element(""), "\"\"");
        assert_eq!(array_element("null"), "\"null\"");
        assert_eq!(array_element("\\x01"), "\"\\\\x01\"");
    }
}
