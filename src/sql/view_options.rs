//! The options of `CREATE MATERIALIZED VIEW name WITH (...) AS ...`:
//!
//! - `emit_on_window_close = true` (also written `EMIT ON WINDOW CLOSE` after the query): see
//!   `sql::event_time`.
//! - `on_error = 'fail' | 'skip'`: what the view does with a row an expression fails on
//!   (division by zero, overflow, a bad cast). `fail`, the default, stops the view; `skip`
//!   leaves the row out, counts it and lists it (see `dataflow::ops::row_errors`).
//!
//! Any other option is refused, never ignored.

use datafusion::sql::sqlparser::ast::{self, Expr};

use super::event_time::EMIT_ON_WINDOW_CLOSE;
use crate::dataflow::ops::row_errors::OnRowError;
use crate::error::{ErrorKind, Result, WeirError};

/// The option naming a view's error policy.
pub const ON_ERROR: &str = "on_error";

/// A view's options, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ViewOptions {
    pub emit_on_window_close: bool,
    pub on_error: OnError,
}

/// What a view does with a row one of its expressions fails on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum OnError {
    /// The view's epoch fails and the view stops (the default, as in Postgres).
    #[default]
    Fail,
    /// The row is left out of the view, counted and listed in `weir_skipped_rows`.
    Skip,
}

impl ViewOptions {
    /// Where the view's operators record the rows they skip: a new log with `on_error =
    /// 'skip'`, none (fail) otherwise.
    pub fn on_row_error(&self) -> OnRowError {
        (self.on_error == OnError::Skip).then(Default::default)
    }

    pub fn parse(options: &ast::CreateTableOptions) -> Result<ViewOptions> {
        let list = match options {
            ast::CreateTableOptions::None => return Ok(ViewOptions::default()),
            ast::CreateTableOptions::With(list) => list,
            other => {
                return Err(WeirError::unsupported(format!(
                    "materialized view options {other} are not supported"
                ))
                .with_hint(HINT));
            }
        };
        let mut parsed = ViewOptions::default();
        for option in list {
            match option {
                ast::SqlOption::KeyValue { key, value }
                    if key.value.eq_ignore_ascii_case(EMIT_ON_WINDOW_CLOSE) =>
                {
                    parsed.emit_on_window_close = match value {
                        Expr::Value(v) => matches!(v.value, ast::Value::Boolean(true)),
                        _ => false,
                    };
                }
                ast::SqlOption::KeyValue { key, value }
                    if key.value.eq_ignore_ascii_case(ON_ERROR) =>
                {
                    parsed.on_error = on_error(value)?;
                }
                other => {
                    return Err(WeirError::unsupported(format!(
                        "materialized view option {other} is not supported"
                    ))
                    .with_hint(HINT));
                }
            }
        }
        Ok(parsed)
    }
}

const HINT: &str = "the options are emit_on_window_close = true (EMIT ON WINDOW CLOSE) and \
                    on_error = 'fail' | 'skip'";

fn on_error(value: &Expr) -> Result<OnError> {
    let text = match value {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(id) => id.value.clone(),
        other => other.to_string(),
    };
    match text.to_ascii_lowercase().as_str() {
        "fail" => Ok(OnError::Fail),
        "skip" => Ok(OnError::Skip),
        _ => Err(WeirError::new(
            ErrorKind::InvalidParameter,
            format!("invalid value for option on_error: {text}"),
        )
        .with_hint("on_error = 'fail' (stop the view) or 'skip' (leave the row out and list it)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse::{Statement, parse};

    fn options(sql: &str) -> Result<ViewOptions> {
        match parse(sql)?.pop() {
            Some(Statement::Standard(stmt)) => match *stmt {
                ast::Statement::CreateView(view) => ViewOptions::parse(&view.options),
                other => panic!("not a view: {other}"),
            },
            _ => panic!("not parsed"),
        }
    }

    #[test]
    fn on_error_is_fail_unless_skip_is_asked_for() {
        let plain = options("CREATE MATERIALIZED VIEW v AS SELECT 1").unwrap();
        assert_eq!(plain.on_error, OnError::Fail);
        let skip =
            options("CREATE MATERIALIZED VIEW v WITH (on_error = 'skip') AS SELECT 1").unwrap();
        assert_eq!(skip.on_error, OnError::Skip);
        let fail =
            options("CREATE MATERIALIZED VIEW v WITH (on_error = 'FAIL') AS SELECT 1").unwrap();
        assert_eq!(fail.on_error, OnError::Fail);
    }

    #[test]
    fn unknown_options_and_values_are_refused() {
        let bad = options("CREATE MATERIALIZED VIEW v WITH (on_error = 'ignore') AS SELECT 1")
            .unwrap_err();
        assert_eq!(bad.kind.sqlstate(), "22023", "{bad:?}");
        let unknown =
            options("CREATE MATERIALIZED VIEW v WITH (retention = '1d') AS SELECT 1").unwrap_err();
        assert_eq!(unknown.kind.sqlstate(), "0A000", "{unknown:?}");
    }
}
