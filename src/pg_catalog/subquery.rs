//! Reshapes the correlated scalar subqueries of catalog queries into forms DataFusion can
//! decorrelate. Postgres runs `(SELECT e FROM t WHERE ...)` once per outer row; DataFusion
//! turns it into a join, which it can only do when the subquery aggregates and correlates
//! through equalities. So `(SELECT e FROM t WHERE t.k = o.k AND o.flag AND o.x <> t.y
//! ORDER BY z LIMIT 1)` becomes
//! `CASE WHEN o.flag THEN (SELECT first_value(e ORDER BY z) FROM t WHERE t.k = o.k AND
//! t.k <> t.y) END`:
//!
//! - conditions on the outer row alone move out into the `CASE`;
//! - an outer column equal to an inner expression is replaced by that expression in the
//!   other conditions;
//! - `first_value` picks the one row (the same row Postgres returns; Postgres would fail
//!   where more than one matches).
//!
//! Only subqueries that read system catalogs are touched, so users' queries keep their
//! meaning. Over a catalog table that never has rows, the subqueries of the select list are
//! never evaluated, and become NULL.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, Expr, FunctionArguments, Ident, VisitMut,
};

use super::rewrite::{function_name, is_system_schema, ordered_aggregate};

/// See the module doc. None when the subquery is left as written.
pub fn one_row_subquery(query: &ast::Query) -> Option<Expr> {
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let grouped = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
        ast::GroupByExpr::All(_) => true,
    };
    if grouped || !reads_system_tables(select) {
        return None;
    }
    let [item] = select.projection.as_slice() else {
        return None;
    };
    let (element, alias) = match item {
        ast::SelectItem::UnnamedExpr(e) => (e.clone(), None),
        ast::SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
        _ => return None,
    };
    // Over a table that never has rows, a non-aggregate subquery is always NULL.
    if reads_only_empty(select) && !contains_aggregate(&element) {
        return Some(Expr::value(ast::Value::Null));
    }
    let mut query = query.clone();
    let order_by = query.order_by.take();
    let ast::SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let lifted = decorrelate_filter(select);
    if !contains_aggregate(&element) {
        query.limit_clause = None;
        let alias = alias.or_else(|| column_name(&element));
        let first = ordered_aggregate("first_value", element, order_by);
        let ast::SetExpr::Select(select) = query.body.as_mut() else {
            return None;
        };
        select.projection = vec![match alias {
            Some(alias) => ast::SelectItem::ExprWithAlias { expr: first, alias },
            None => ast::SelectItem::UnnamedExpr(first),
        }];
    }
    let subquery = Expr::Subquery(Box::new(query));
    Some(match lifted {
        Some(condition) => Expr::Case {
            case_token: ast::helpers::attached_token::AttachedToken::empty(),
            end_token: ast::helpers::attached_token::AttachedToken::empty(),
            operand: None,
            conditions: vec![ast::CaseWhen {
                condition,
                result: subquery,
            }],
            else_result: None,
        },
        None => subquery,
    })
}

/// Splits the subquery's WHERE: conditions on the outer row alone are removed and returned
/// (ANDed); outer columns equal to an inner expression are substituted elsewhere.
fn decorrelate_filter(select: &mut ast::Select) -> Option<Expr> {
    let inner = inner_qualifiers(select);
    let mut conjuncts = Vec::new();
    split_and(select.selection.take()?, &mut conjuncts);
    // outer column (as written) → the inner expression it equals.
    let mut equal: HashMap<String, Expr> = HashMap::new();
    for c in &conjuncts {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = c
        {
            for (a, b) in [(left, right), (right, left)] {
                if is_outer_column(a, &inner) && !has_outer_reference(b, &inner) {
                    equal.insert(a.to_string(), (**b).clone());
                }
            }
        }
    }
    let mut lifted = Vec::new();
    let mut kept = Vec::new();
    for mut c in conjuncts {
        let (outer, inner_refs) = references(&c, &inner);
        if outer && !inner_refs {
            lifted.push(c);
            continue;
        }
        let is_binding = matches!(&c, Expr::BinaryOp { op: BinaryOperator::Eq, left, right }
            if (is_outer_column(left, &inner) || is_outer_column(right, &inner)));
        if outer && !is_binding {
            let _ = c.visit(&mut Substitute {
                inner: &inner,
                equal: &equal,
            });
        }
        kept.push(c);
    }
    select.selection = and_all(kept);
    and_all(lifted)
}

/// Replaces outer columns with the inner expressions they are known to equal.
struct Substitute<'a> {
    inner: &'a HashSet<String>,
    equal: &'a HashMap<String, Expr>,
}

impl ast::VisitorMut for Substitute<'_> {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if is_outer_column(expr, self.inner)
            && let Some(replacement) = self.equal.get(&expr.to_string())
        {
            *expr = replacement.clone();
        }
        ControlFlow::Continue(())
    }
}

/// Names that qualify the subquery's own columns: its tables' aliases or names.
fn inner_qualifiers(select: &ast::Select) -> HashSet<String> {
    let mut names = HashSet::new();
    for t in &select.from {
        for factor in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            match factor {
                ast::TableFactor::Table { name, alias, .. } => {
                    if let Some(a) = alias {
                        names.insert(a.name.value.to_ascii_lowercase());
                    } else if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                        names.insert(last.value.to_ascii_lowercase());
                    }
                }
                ast::TableFactor::Derived { alias: Some(a), .. }
                | ast::TableFactor::UNNEST { alias: Some(a), .. } => {
                    names.insert(a.name.value.to_ascii_lowercase());
                }
                _ => {}
            }
        }
    }
    names
}

/// `o.col` or `schema.table.col` whose qualifier is not one of the subquery's tables.
fn is_outer_column(expr: &Expr, inner: &HashSet<String>) -> bool {
    match expr {
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            !inner.contains(&parts[parts.len() - 2].value.to_ascii_lowercase())
        }
        _ => false,
    }
}

fn has_outer_reference(expr: &Expr, inner: &HashSet<String>) -> bool {
    references(expr, inner).0
}

/// Whether `expr` reads outer columns, and whether it reads inner ones (unqualified
/// columns count as inner).
fn references(expr: &Expr, inner: &HashSet<String>) -> (bool, bool) {
    let (mut outer, mut own) = (false, false);
    let _ = ast::visit_expressions(expr, |e| {
        match e {
            Expr::CompoundIdentifier(_) if is_outer_column(e, inner) => outer = true,
            Expr::CompoundIdentifier(_) | Expr::Identifier(_) => own = true,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => own = true,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    (outer, own)
}

fn split_and(expr: Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        Expr::Nested(inner)
            if matches!(
                *inner,
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(*inner, out)
        }
        other => out.push(other),
    }
}

fn and_all(exprs: Vec<Expr>) -> Option<Expr> {
    exprs.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    })
}

/// The name Postgres gives a subquery column: its own column's name.
fn column_name(expr: &Expr) -> Option<Ident> {
    match expr {
        Expr::Identifier(i) => Some(i.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().cloned(),
        Expr::Function(f) => Some(Ident::new(function_name(f))),
        _ => None,
    }
}

/// Whether a SELECT reads a `pg_catalog` or `information_schema` relation.
fn reads_system_tables(select: &ast::Select) -> bool {
    select.from.iter().any(|t| {
        std::iter::once(&t.relation)
            .chain(t.joins.iter().map(|j| &j.relation))
            .any(|f| match f {
                ast::TableFactor::Table { name, .. } => {
                    is_system_schema(&name.0[0])
                        || name
                            .0
                            .last()
                            .and_then(|p| p.as_ident())
                            .is_some_and(|i| i.value.starts_with("pg_"))
                }
                _ => false,
            })
    })
}

pub(super) fn contains_aggregate(expr: &Expr) -> bool {
    const AGGREGATES: &[&str] = &[
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "every",
        "first_value",
        "last_value",
        "json_agg",
    ];
    ast::visit_expressions(expr, |e| match e {
        Expr::Function(f)
            if AGGREGATES.contains(&function_name(f).to_ascii_lowercase().as_str()) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Whether a select's rows come from one of the catalog tables that never has rows (joins
/// that keep only its rows do not change that).
fn reads_only_empty(select: &ast::Select) -> bool {
    let [from] = select.from.as_slice() else {
        return false;
    };
    let ast::TableFactor::Table { name, .. } = &from.relation else {
        return false;
    };
    let Some(table) = name.0.last().and_then(|p| p.as_ident()) else {
        return false;
    };
    let always_empty = super::tables::ALWAYS_EMPTY.contains(&table.value.as_str())
        && (name.0.len() == 1 || is_system_schema(&name.0[0]));
    always_empty
        && from.joins.iter().all(|j| {
            matches!(
                j.join_operator,
                ast::JoinOperator::Join(_)
                    | ast::JoinOperator::Inner(_)
                    | ast::JoinOperator::LeftOuter(_)
                    | ast::JoinOperator::Left(_)
                    | ast::JoinOperator::CrossJoin(_)
            )
        })
}

/// Whether the WHERE asks for foreign-key constraints (`contype = 'f'`), which Weir never
/// has: the select returns no rows.
fn selects_foreign_keys(select: &ast::Select) -> bool {
    let Some(selection) = select.selection.clone() else {
        return false;
    };
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    conjuncts.iter().any(|c| match c {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let column = match left.as_ref() {
                Expr::Identifier(i) => Some(i),
                Expr::CompoundIdentifier(parts) => parts.last(),
                _ => None,
            };
            column.is_some_and(|c| c.value == "contype")
                && matches!(right.as_ref(), Expr::Value(v)
                    if v.value == ast::Value::SingleQuotedString("f".into()))
        }
        _ => false,
    })
}

/// A select over one of the catalog tables that never has rows returns no rows whatever its
/// select list says: its subqueries (which DataFusion may not be able to plan) become NULL.
pub fn skip_subqueries_over_empty(select: &mut ast::Select) {
    if !reads_only_empty(select) && !selects_foreign_keys(select) {
        return;
    }
    let mut projection = select.projection.clone();
    for item in &mut projection {
        if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } =
            item
        {
            let _ = ast::visit_expressions_mut(e, |x| {
                let array_subquery = matches!(x, Expr::Function(f)
                    if matches!(f.args, FunctionArguments::Subquery(_)));
                // `unnest(NULL)` is not planned either: no rows means no unnest to run.
                let unnest_of_null = matches!(x, Expr::Function(f)
                    if function_name(f).eq_ignore_ascii_case("unnest")
                        && f.args.to_string().eq_ignore_ascii_case("(NULL)"));
                if array_subquery {
                    // ARRAY(...) over no rows is `{}`; array functions do not take a bare NULL.
                    *x = super::rewrite::call("make_array", vec![]);
                } else if matches!(x, Expr::Subquery(_)) || unnest_of_null {
                    *x = Expr::value(ast::Value::Null);
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
    // Aggregates over no rows still return a row: leave those selects alone.
    let aggregates = projection.iter().any(|item| match item {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
            contains_aggregate(e)
        }
        _ => false,
    });
    if !aggregates {
        select.projection = projection;
    }
}
