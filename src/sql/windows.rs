//! Window table functions in FROM, rewritten into plain SQL that both planners (the streaming
//! one for views, DataFusion's for queries and recomputes) understand:
//!
//! ```text
//! TUMBLE(rel, ts, size) [AS a]
//!   → (SELECT *, date_bin(size, ts) AS window_start, date_bin(size, ts) + size AS window_end
//!      FROM rel) AS a            -- a defaults to rel's name, so rel.col still resolves
//! ```
//!
//! Windows are aligned to the Unix epoch (`date_bin`'s default origin), as in Flink and
//! RisingWave. A view grouped by `window_start` is an ordinary grouped view: it updates a
//! window's row whenever a row of that window arrives.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, TableAlias, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{ErrorKind, Result, WeirError};

/// Rewrites every `TUMBLE(...)` in `stmt`'s FROM clauses.
pub fn rewrite(stmt: &mut ast::Statement) -> Result<()> {
    match stmt.visit(&mut Windows) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Windows;

impl VisitorMut for Windows {
    type Break = WeirError;

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<WeirError> {
        match tumble(factor) {
            Ok(Some(new)) => {
                *factor = new;
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }
}

fn usage() -> WeirError {
    WeirError::new(
        ErrorKind::UndefinedFunction,
        "TUMBLE takes a relation, its timestamp column and an interval",
    )
    .with_hint("FROM TUMBLE(bid, date_time, INTERVAL '10 seconds')")
}

/// The derived table for a `TUMBLE(rel, ts, size)` factor; None for any other factor.
fn tumble(factor: &TableFactor) -> Result<Option<TableFactor>> {
    let TableFactor::Table {
        name,
        alias,
        args: Some(args),
        ..
    } = factor
    else {
        return Ok(None);
    };
    let is_tumble = name.0.len() == 1
        && name.0[0]
            .as_ident()
            .is_some_and(|i| i.value.eq_ignore_ascii_case("tumble"));
    if !is_tumble {
        return Ok(None);
    }
    let exprs: Vec<&Expr> = args
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            _ => Err(usage()),
        })
        .collect::<Result<_>>()?;
    let [relation, column, size] = exprs[..] else {
        return Err(usage());
    };
    let relation_name = match relation {
        Expr::Identifier(id) => id.clone(),
        Expr::CompoundIdentifier(ids) => ids.last().cloned().ok_or_else(usage)?,
        _ => return Err(usage()),
    };
    if !matches!(column, Expr::Identifier(_)) {
        return Err(usage());
    }
    if !matches!(size, Expr::Interval(_)) {
        return Err(WeirError::new(
            ErrorKind::DatatypeMismatch,
            format!("TUMBLE's window size must be an INTERVAL literal, not {size}"),
        )
        .with_hint("TUMBLE(bid, date_time, INTERVAL '10 seconds')"));
    }
    let sql = format!(
        "SELECT *, date_bin({size}, {column}) AS window_start, \
         date_bin({size}, {column}) + {size} AS window_end FROM {relation}"
    );
    let query = match Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        .map_err(|e| WeirError::syntax(e.to_string()))?
        .pop()
    {
        Some(ast::Statement::Query(q)) => q,
        _ => return Err(usage()),
    };
    let alias = alias.clone().unwrap_or(TableAlias {
        explicit: true,
        name: relation_name,
        columns: Vec::new(),
        at: None,
    });
    Ok(Some(TableFactor::Derived {
        lateral: false,
        subquery: query,
        alias: Some(alias),
        sample: None,
    }))
}
