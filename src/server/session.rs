//! Session statements handled by the wire layer itself: SET / SHOW of session variables,
//! transaction control. Variables live in the connection's metadata map, so each session has
//! its own. Transactions: Weir has no multi-statement transactions; BEGIN / COMMIT / ROLLBACK
//! are accepted so clients that wrap work in them run, and every statement takes effect on
//! its own (docs/sql.md says so).

use std::collections::HashMap;

use datafusion::sql::sqlparser::ast::{self, Expr, Set, Value};

use crate::config::SERVER_VERSION;
use crate::db::Tag;

/// What a session statement produced.
pub enum SessionOutput {
    Tag(Tag),
    /// One row, one column: `SHOW name`.
    Value {
        name: String,
        value: String,
    },
}

/// Defaults a Postgres 15 server reports, for SHOW.
fn default_value(name: &str) -> Option<&'static str> {
    Some(match name {
        "server_version" => SERVER_VERSION,
        "server_version_num" => "150000",
        "server_encoding" | "client_encoding" => "UTF8",
        "datestyle" => "ISO, MDY",
        "timezone" => "UTC",
        "intervalstyle" => "postgres",
        "application_name" => "",
        "search_path" => "\"$user\", public",
        "extra_float_digits" => "1",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "transaction_isolation" | "default_transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" => "off",
        "max_identifier_length" => "63",
        "lc_messages" | "lc_collate" | "lc_ctype" => "C",
        "is_superuser" => "on",
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => "0",
        _ => return None,
    })
}

/// Canonical (lower-case) variable name.
fn var_name(parts: &[ast::Ident]) -> String {
    parts
        .iter()
        .map(|p| p.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
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
                None => match default_value(&name) {
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
        ast::Statement::StartTransaction { .. } => SessionOutput::Tag(Tag::new("BEGIN")),
        ast::Statement::Commit { .. } => SessionOutput::Tag(Tag::new("COMMIT")),
        ast::Statement::Rollback {
            savepoint: None, ..
        } => SessionOutput::Tag(Tag::new("ROLLBACK")),
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
