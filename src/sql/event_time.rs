//! Event-time syntax: a source's `WATERMARK FOR ts AS ts - INTERVAL '...'` (Flink's form) and a
//! view's `EMIT ON WINDOW CLOSE` (RisingWave's), parsed here and carried by the statements.
//!
//! A watermark says "no record older than this will be counted any more": for a source it is,
//! per partition, the largest `ts` read so far minus the delay, and the minimum over
//! partitions. A view `EMIT ON WINDOW CLOSE` emits a window's row once, when the watermark
//! passes the window's end, and then forgets the window.

use datafusion::arrow::compute::kernels::cast_utils::parse_interval_month_day_nano;
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, Expr};

use crate::error::{ErrorKind, Result, WeirError};

/// The view option `EMIT ON WINDOW CLOSE` is stored as (`WITH (emit_on_window_close = true)`,
/// which may also be written so).
pub const EMIT_ON_WINDOW_CLOSE: &str = "emit_on_window_close";

/// A source's watermark: on `column`, `delay_micros` behind the largest value read.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkDef {
    pub column: String,
    pub delay_micros: i64,
    /// The delay as written (`INTERVAL '5 seconds'`), for the stored statement.
    pub delay_sql: Option<String>,
}

impl WatermarkDef {
    /// `column AS expr` of `WATERMARK FOR column AS expr`: `expr` is the column itself or the
    /// column minus an interval.
    pub fn new(column: String, expr: &Expr) -> Result<WatermarkDef> {
        let is_column =
            |e: &Expr| matches!(e, Expr::Identifier(id) if id.value.eq_ignore_ascii_case(&column));
        let unsupported = || {
            WeirError::unsupported(format!(
                "WATERMARK FOR {column} AS {expr}: the watermark must be the column itself or \
                 the column minus an interval"
            ))
            .with_hint(format!(
                "WATERMARK FOR {column} AS {column} - INTERVAL '5 seconds'"
            ))
        };
        match expr {
            e if is_column(e) => Ok(WatermarkDef {
                column,
                delay_micros: 0,
                delay_sql: None,
            }),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Minus,
                right,
            } if is_column(left) => {
                let Expr::Interval(interval) = right.as_ref() else {
                    return Err(unsupported());
                };
                let delay_micros = interval_micros(interval)?;
                Ok(WatermarkDef {
                    column,
                    delay_micros,
                    delay_sql: Some(right.to_string()),
                })
            }
            _ => Err(unsupported()),
        }
    }

    /// `WATERMARK FOR col AS col - delay`, as the stored statement writes it.
    pub fn to_sql(&self, quote: impl Fn(&str) -> String) -> String {
        let column = quote(&self.column);
        match &self.delay_sql {
            Some(delay) => format!("WATERMARK FOR {column} AS {column} - {delay}"),
            None => format!("WATERMARK FOR {column} AS {column}"),
        }
    }
}

/// A fixed-length interval literal in microseconds (months vary in length: refused).
fn interval_micros(interval: &ast::Interval) -> Result<i64> {
    let text = match interval.value.as_ref() {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    let text = match &interval.leading_field {
        Some(unit) => format!("{text} {unit}"),
        None => text,
    };
    let invalid = |why: &str| {
        WeirError::new(
            ErrorKind::InvalidParameter,
            format!("watermark delay INTERVAL '{text}' {why}"),
        )
        .with_hint("INTERVAL '5 seconds'")
    };
    let value = parse_interval_month_day_nano(&text).map_err(|_| invalid("is not an interval"))?;
    if value.months != 0 {
        return Err(invalid("has months, whose length varies"));
    }
    let micros = value.days as i64 * 86_400_000_000 + value.nanoseconds / 1000;
    if micros < 0 {
        return Err(invalid("is negative"));
    }
    Ok(micros)
}

/// Adds the EMIT ON WINDOW CLOSE option to a view's options.
pub fn set_emit_on_window_close(options: &mut ast::CreateTableOptions) {
    let option = ast::SqlOption::KeyValue {
        key: ast::Ident::new(EMIT_ON_WINDOW_CLOSE),
        value: Expr::Value(ast::Value::Boolean(true).into()),
    };
    match options {
        ast::CreateTableOptions::With(list) => list.push(option),
        _ => *options = ast::CreateTableOptions::With(vec![option]),
    }
}
