//! Session statements handled by the wire layer itself: SET / SHOW of session variables,
//! transaction control. Variables live in the connection's metadata map, so each session has
//! its own. Transactions: BEGIN / COMMIT / ROLLBACK open and close a block (the status clients
//! see in ReadyForQuery, and the lifetime of cursors without HOLD); what a block writes is held
//! until COMMIT by `transaction.rs` (docs/sql.md says what a block may do).

use std::collections::HashMap;

use datafusion::sql::sqlparser::ast::{self, Expr, Set, Value};

use crate::db::Tag;

/// What a session statement produced.
pub enum SessionOutput {
    Tag(Tag),
    /// BEGIN / START TRANSACTION: a transaction block opens.
    Begin,
    /// COMMIT / ROLLBACK (`rollback` true): the block closes.
    End {
        rollback: bool,
    },
    /// One row, one column: `SHOW name`.
    Value {
        name: String,
        value: String,
    },
}

/// Variables whose changes Postgres reports to the client in a ParameterStatus message, by
/// canonical name, with the spelling the client expects.
pub const REPORTED: &[(&str, &str)] = &[
    ("application_name", "application_name"),
    ("client_encoding", "client_encoding"),
    ("datestyle", "DateStyle"),
    ("intervalstyle", "IntervalStyle"),
    ("timezone", "TimeZone"),
];

/// The longest statement_timeout accepted, in milliseconds (Postgres' limit, INT_MAX).
const STATEMENT_TIMEOUT_MAX_MS: u64 = i32::MAX as u64;

/// A statement_timeout setting in milliseconds: a bare number is milliseconds, or a number
/// with a unit (us, ms, s, min, h, d); 0 turns the timeout off.
pub fn parse_timeout(text: &str) -> crate::error::Result<u64> {
    parse_duration("statement_timeout", text)
}

/// A duration setting of variable `name` in milliseconds, as [`parse_timeout`].
pub fn parse_duration(name: &str, text: &str) -> crate::error::Result<u64> {
    let bad = || {
        crate::error::WeirError::new(
            crate::error::ErrorKind::InvalidParameter,
            format!("invalid value for parameter \"{name}\": \"{text}\""),
        )
        .with_hint(
            "Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\".",
        )
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return Err(bad()),
    };
    let ms = (number * scale).round();
    if !(0.0..=STATEMENT_TIMEOUT_MAX_MS as f64).contains(&ms) {
        return Err(bad());
    }
    Ok(ms as u64)
}

/// A timeout as SHOW prints it: the largest unit that divides it evenly.
pub fn show_timeout(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// The session variable setting how often a running CREATE MATERIALIZED VIEW sends a NOTICE
/// with its backfill's progress (a duration, as statement_timeout; 0 sends none).
pub const BACKFILL_NOTICE_INTERVAL_VAR: &str = "weir.backfill_notice_interval";

/// How often a backfill's progress NOTICE is sent unless the session sets
/// [`BACKFILL_NOTICE_INTERVAL_VAR`], in milliseconds.
pub const BACKFILL_NOTICE_INTERVAL_MS_DEFAULT: u64 = 5_000;

/// Variables whose values are durations, checked at SET and shown as SHOW prints them.
const DURATION_VARS: &[&str] = &["statement_timeout", BACKFILL_NOTICE_INTERVAL_VAR];

/// How often this session gets backfill progress NOTICEs; None: never.
pub fn backfill_notice_interval(vars: &HashMap<String, String>) -> Option<std::time::Duration> {
    let ms = match vars.get(BACKFILL_NOTICE_INTERVAL_VAR) {
        Some(v) => parse_duration(BACKFILL_NOTICE_INTERVAL_VAR, v).ok()?,
        None => BACKFILL_NOTICE_INTERVAL_MS_DEFAULT,
    };
    (ms > 0).then(|| std::time::Duration::from_millis(ms))
}

/// The session's statement timeout, if one is set.
pub fn statement_timeout(vars: &HashMap<String, String>) -> Option<std::time::Duration> {
    let ms = parse_timeout(vars.get("statement_timeout")?).ok()?;
    (ms > 0).then(|| std::time::Duration::from_millis(ms))
}

/// Canonical (lower-case) variable name.
pub(super) fn var_name(parts: &[ast::Ident]) -> String {
    let name = parts
        .iter()
        .map(|p| p.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".");
    // The SQL-standard spellings `SHOW TIME ZONE`, `SHOW TRANSACTION ISOLATION LEVEL`.
    match name.as_str() {
        "time.zone" => "timezone".into(),
        "transaction.isolation.level" => "transaction_isolation".into(),
        _ => name,
    }
}

fn value_text(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(id) => id.value.clone(),
        other => other.to_string(),
    }
}

/// Handles the statement if it is a session statement; None otherwise.
pub fn handle(
    stmt: &ast::Statement,
    vars: &mut HashMap<String, String>,
) -> Option<crate::error::Result<SessionOutput>> {
    let out = match stmt {
        ast::Statement::Set(set) => {
            match set {
                Set::SingleAssignment {
                    variable, values, ..
                } => {
                    let name = var_name(
                        &variable
                            .0
                            .iter()
                            .filter_map(|p| p.as_ident().cloned())
                            .collect::<Vec<_>>(),
                    );
                    let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
                    let value = if DURATION_VARS.contains(&name.as_str()) {
                        match parse_duration(&name, &value) {
                            Ok(ms) => show_timeout(ms),
                            Err(e) => return Some(Err(e)),
                        }
                    } else {
                        value
                    };
                    vars.insert(name, value);
                }
                Set::SetTimeZone { value, .. } => {
                    vars.insert("timezone".into(), value_text(value));
                }
                Set::SetNames { charset_name, .. } => {
                    vars.insert("client_encoding".into(), charset_name.to_string());
                }
                _ => {}
            }
            SessionOutput::Tag(Tag::new("SET"))
        }
        ast::Statement::ShowVariable { variable } => {
            let name = var_name(variable);
            let value = match vars.get(&name) {
                Some(v) => v.clone(),
                None => match crate::config::pg_setting(&name) {
                    Some(v) => v.to_string(),
                    None => {
                        return Some(Err(crate::error::WeirError::new(
                            crate::error::ErrorKind::InvalidParameter,
                            format!("unrecognized configuration parameter \"{name}\""),
                        )));
                    }
                },
            };
            SessionOutput::Value { name, value }
        }
        ast::Statement::StartTransaction { .. } => SessionOutput::Begin,
        ast::Statement::Commit { .. } => SessionOutput::End { rollback: false },
        ast::Statement::Rollback {
            savepoint: None, ..
        } => SessionOutput::End { rollback: true },
        ast::Statement::Rollback {
            savepoint: Some(_), ..
        } => SessionOutput::Tag(Tag::new("ROLLBACK")),
        ast::Statement::Savepoint { .. } => SessionOutput::Tag(Tag::new("SAVEPOINT")),
        ast::Statement::ReleaseSavepoint { .. } => SessionOutput::Tag(Tag::new("RELEASE")),
        ast::Statement::Discard { .. } => SessionOutput::Tag(Tag::new("DISCARD ALL")),
        _ => return None,
    };
    Some(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_and_show_like_postgres() {
        assert_eq!(parse_timeout("50").unwrap(), 50);
        assert_eq!(parse_timeout("50ms").unwrap(), 50);
        assert_eq!(parse_timeout("1s").unwrap(), 1000);
        assert_eq!(parse_timeout("2 min").unwrap(), 120_000);
        assert_eq!(parse_timeout("0").unwrap(), 0);
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("5 parsecs").is_err());
        assert_eq!(show_timeout(50), "50ms");
        assert_eq!(show_timeout(1000), "1s");
        assert_eq!(show_timeout(120_000), "2min");
        assert_eq!(show_timeout(0), "0");
    }

    #[test]
    fn backfill_notices_default_to_the_documented_interval_and_zero_turns_them_off() {
        let default = crate::config::pg_setting(BACKFILL_NOTICE_INTERVAL_VAR).unwrap();
        assert_eq!(
            parse_duration(BACKFILL_NOTICE_INTERVAL_VAR, default).unwrap(),
            BACKFILL_NOTICE_INTERVAL_MS_DEFAULT
        );
        let mut vars = HashMap::new();
        assert_eq!(
            backfill_notice_interval(&vars),
            Some(std::time::Duration::from_millis(
                BACKFILL_NOTICE_INTERVAL_MS_DEFAULT
            ))
        );
        vars.insert(BACKFILL_NOTICE_INTERVAL_VAR.to_string(), "0".to_string());
        assert_eq!(backfill_notice_interval(&vars), None);
        vars.insert(
            BACKFILL_NOTICE_INTERVAL_VAR.to_string(),
            "250ms".to_string(),
        );
        assert_eq!(
            backfill_notice_interval(&vars),
            Some(std::time::Duration::from_millis(250))
        );
    }
}
