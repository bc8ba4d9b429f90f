//! Bound parameters → ScalarValues. Text-format values are parsed by their declared type;
//! binary-format values are read byte for byte as Postgres sends them, for every type Weir
//! returns (integers, floats, numeric, bool, text, bytea, date, time, timestamp(tz),
//! interval, uuid, json / jsonb and one-dimensional arrays of these).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit};
use datafusion::common::ScalarValue;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::error::PgWireError;

use super::{Prepared, numeric};
use crate::error::{ErrorKind, Result, WeirError};

use super::encode::{PG_EPOCH_DAYS, PG_EPOCH_MICROS};
/// Elements a binary array parameter may hold.
const ARRAY_ELEMENTS_MAX: usize = 1_000_000;

fn bad(what: impl std::fmt::Display) -> WeirError {
    WeirError::new(ErrorKind::InvalidText, format!("invalid parameter: {what}"))
}

/// Reads bound parameters as ScalarValues of their declared types.
pub fn read(portal: &Portal<Prepared>, types: &[Type]) -> Result<Vec<ScalarValue>> {
    let mut out = Vec::with_capacity(portal.parameter_len());
    for i in 0..portal.parameter_len() {
        let t = types.get(i).cloned().unwrap_or(Type::TEXT);
        let v = if portal.parameter_format.is_binary(i) {
            match portal.parameters.get(i).cloned().flatten() {
                Some(bytes) => binary(&t, &bytes)?,
                None => ScalarValue::try_from(scalar_type(&t))
                    .map_err(|e| bad(format!("NULL of type {t}: {e}")))?,
            }
        } else {
            text(portal, i, &t)?
        };
        out.push(v);
    }
    Ok(out)
}

/// A text-format parameter, parsed by its declared type.
fn text(portal: &Portal<Prepared>, i: usize, t: &Type) -> Result<ScalarValue> {
    let e = |e: PgWireError| bad(e);
    Ok(match *t {
        Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, t).map_err(e)?),
        Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, t).map_err(e)?),
        Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, t).map_err(e)?),
        Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, t).map_err(e)?),
        Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, t).map_err(e)?),
        Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, t).map_err(e)?),
        Type::NUMERIC => ScalarValue::Utf8(
            portal
                .parameter::<rust_decimal::Decimal>(i, t)
                .map_err(e)?
                .map(|d| d.to_string()),
        ),
        Type::TIMESTAMP => ScalarValue::Utf8(
            portal
                .parameter::<chrono::NaiveDateTime>(i, t)
                .map_err(e)?
                .map(|d| d.to_string()),
        ),
        Type::DATE => ScalarValue::Utf8(
            portal
                .parameter::<chrono::NaiveDate>(i, t)
                .map_err(e)?
                .map(|d| d.to_string()),
        ),
        _ => {
            let value = portal.parameter::<String>(i, &Type::TEXT).map_err(e)?;
            match (element_type(t), value) {
                (Some(element), Some(text)) => text_array(&text, &element)?,
                (_, value) => ScalarValue::Utf8(value),
            }
        }
    })
}

/// An array parameter in text form, `{a,"b c",NULL}`, as a list of the element type.
fn text_array(text: &str, element: &Type) -> Result<ScalarValue> {
    let malformed = || bad(format!("malformed array literal: \"{text}\""));
    let items = crate::pg_catalog::types::parse_text_array(text).ok_or_else(malformed)?;
    if items.len() > ARRAY_ELEMENTS_MAX {
        return Err(bad(format!(
            "array of more than {ARRAY_ELEMENTS_MAX} elements"
        )));
    }
    let data_type = scalar_type(element);
    let values = items
        .into_iter()
        .map(|item| {
            ScalarValue::Utf8(item)
                .cast_to(&data_type)
                .map_err(|_| malformed())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ScalarValue::List(ScalarValue::new_list_nullable(
        &values, &data_type,
    )))
}

/// The Arrow type a parameter of Postgres type `t` is read as.
fn scalar_type(t: &Type) -> DataType {
    match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        _ => match element_type(t) {
            Some(e) => DataType::new_list(scalar_type(&e), true),
            None => DataType::Utf8,
        },
    }
}

/// The element type of array type `t` (None when `t` is not an array type).
fn element_type(t: &Type) -> Option<Type> {
    crate::pg_catalog::types::element_of(t.oid()).and_then(|e| Type::from_oid(e.oid))
}

fn fixed<const N: usize>(t: &Type, bytes: &[u8]) -> Result<[u8; N]> {
    bytes
        .try_into()
        .map_err(|_| bad(format!("binary {t} must be {N} bytes, got {}", bytes.len())))
}

fn utf8(t: &Type, bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| bad(format!("{t} is not valid UTF-8")))
}

/// A binary-format parameter of type `t`.
fn binary(t: &Type, bytes: &[u8]) -> Result<ScalarValue> {
    Ok(match *t {
        Type::BOOL => ScalarValue::Boolean(Some(fixed::<1>(t, bytes)?[0] != 0)),
        Type::INT2 => ScalarValue::Int16(Some(i16::from_be_bytes(fixed(t, bytes)?))),
        Type::INT4 => ScalarValue::Int32(Some(i32::from_be_bytes(fixed(t, bytes)?))),
        Type::INT8 => ScalarValue::Int64(Some(i64::from_be_bytes(fixed(t, bytes)?))),
        Type::FLOAT4 => ScalarValue::Float32(Some(f32::from_be_bytes(fixed(t, bytes)?))),
        Type::FLOAT8 => ScalarValue::Float64(Some(f64::from_be_bytes(fixed(t, bytes)?))),
        Type::NUMERIC => ScalarValue::Utf8(Some(
            numeric::read_binary(bytes).ok_or_else(|| bad("malformed binary numeric"))?,
        )),
        Type::BYTEA => ScalarValue::Binary(Some(bytes.to_vec())),
        Type::DATE => {
            let days = i32::from_be_bytes(fixed(t, bytes)?);
            ScalarValue::Date32(Some(days.saturating_add(PG_EPOCH_DAYS as i32)))
        }
        Type::TIME => ScalarValue::Time64Microsecond(Some(i64::from_be_bytes(fixed(t, bytes)?))),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(fixed(t, bytes)?).saturating_add(PG_EPOCH_MICROS);
            let zone: Option<Arc<str>> = (*t == Type::TIMESTAMPTZ).then(|| "+00:00".into());
            ScalarValue::TimestampMicrosecond(Some(micros), zone)
        }
        Type::INTERVAL => {
            let b = fixed::<16>(t, bytes)?;
            let micros = i64::from_be_bytes(b[0..8].try_into().unwrap_or_default());
            let days = i32::from_be_bytes(b[8..12].try_into().unwrap_or_default());
            let months = i32::from_be_bytes(b[12..16].try_into().unwrap_or_default());
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
                months,
                days,
                micros.saturating_mul(1000),
            )))
        }
        Type::UUID => ScalarValue::Utf8(Some(
            uuid::Uuid::from_bytes(fixed(t, bytes)?)
                .hyphenated()
                .to_string(),
        )),
        Type::JSONB => match bytes.split_first() {
            Some((1, rest)) => ScalarValue::Utf8(Some(utf8(t, rest)?)),
            _ => return Err(bad("unknown binary jsonb version")),
        },
        _ => match element_type(t) {
            Some(element) => array(&element, bytes)?,
            None => ScalarValue::Utf8(Some(utf8(t, bytes)?)),
        },
    })
}

/// Reads big-endian words from a binary array.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .ok_or_else(|| bad("truncated binary array"))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| bad("truncated binary array"))?;
        self.at = end;
        Ok(s)
    }

    fn int(&mut self) -> Result<i32> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
}

/// A one-dimensional binary array of `element`s as an Arrow list.
fn array(element: &Type, bytes: &[u8]) -> Result<ScalarValue> {
    let mut r = Reader { bytes, at: 0 };
    let dims = r.int()?;
    let _has_null = r.int()?;
    let _element_oid = r.int()?;
    let len = match dims {
        0 => 0,
        1 => {
            let len = r.int()?;
            let _lower_bound = r.int()?;
            usize::try_from(len).map_err(|_| bad("negative array length"))?
        }
        _ => return Err(bad("only one-dimensional arrays are supported")),
    };
    if len > ARRAY_ELEMENTS_MAX {
        return Err(bad(format!(
            "an array parameter may hold at most {ARRAY_ELEMENTS_MAX} elements"
        )));
    }
    let item_type = scalar_type(element);
    let mut values = Vec::with_capacity(len);
    for _ in 0..len {
        let n = r.int()?;
        if n < 0 {
            values.push(ScalarValue::try_from(&item_type).map_err(bad)?);
            continue;
        }
        values.push(binary(element, r.take(n as usize)?)?);
    }
    Ok(ScalarValue::List(ScalarValue::new_list(
        &values, &item_type, true,
    )))
}
