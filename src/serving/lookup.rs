//! Point lookups: `SELECT cols FROM view WHERE key = value [AND ...]` answered by one prefix
//! read of the store, with no DataFusion plan. Recognised on the parsed statement; anything
//! that does not match exactly (other predicates, expressions, joins, ordering) takes the
//! general path.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, SelectItem, SetExpr, TableFactor, UnaryOperator,
    Value,
};

use super::providers::expand;
use crate::catalog::{Catalog, Entry, ViewDef};
use crate::error::{ErrorKind, Result, WeirError};
use crate::sql::parse::normalize_ident;
use crate::state::StateStore;

/// A recognised point lookup.
#[derive(Debug, Clone)]
pub struct PointLookup {
    pub view: Arc<ViewDef>,
    /// One value per key column of the view, in key order.
    values: Vec<KeyValue>,
    /// Output columns (indices into the view's schema).
    pub projection: Vec<usize>,
}

#[derive(Debug, Clone)]
enum KeyValue {
    /// A literal, as text to be cast to the key column's type.
    Literal(String),
    /// `$n` (0-based index).
    Param(usize),
}

impl PointLookup {
    /// Recognises the statement, or returns None (then DataFusion answers it).
    pub fn recognise(query: &Query, catalog: &Catalog) -> Option<PointLookup> {
        if query.with.is_some()
            || query.order_by.is_some()
            || query.limit_clause.is_some()
            || query.fetch.is_some()
        {
            return None;
        }
        let SetExpr::Select(select) = query.body.as_ref() else {
            return None;
        };
        if select.distinct.is_some() || select.having.is_some() || select.from.len() != 1 {
            return None;
        }
        if !matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        {
            return None;
        }
        let from = &select.from[0];
        if !from.joins.is_empty() {
            return None;
        }
        let TableFactor::Table {
            name,
            alias: None,
            args: None,
            ..
        } = &from.relation
        else {
            return None;
        };
        let [part] = name.0.as_slice() else {
            return None;
        };
        let table = normalize_ident(part.as_ident()?);
        let Some(Entry::View(view)) = catalog.get(&table) else {
            return None;
        };
        if view.key.is_empty() {
            return None;
        }
        let schema = &view.schema;
        let column_index = |e: &Expr| match e {
            Expr::Identifier(id) => schema.index_of(&normalize_ident(id)).ok(),
            _ => None,
        };
        let mut projection = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(_) => projection.extend(0..schema.fields().len()),
                SelectItem::UnnamedExpr(e) => projection.push(column_index(e)?),
                _ => return None,
            }
        }
        let mut conjuncts = Vec::new();
        split_and(select.selection.as_ref()?, &mut conjuncts);
        let mut values: Vec<Option<KeyValue>> = vec![None; view.key.len()];
        for c in conjuncts {
            let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = c
            else {
                return None;
            };
            let (col, value) = match (column_index(left), column_index(right)) {
                (Some(col), None) => (col, right.as_ref()),
                (None, Some(col)) => (col, left.as_ref()),
                _ => return None,
            };
            let slot = view.key.iter().position(|&k| k == col)?;
            if values[slot].is_some() {
                return None;
            }
            values[slot] = Some(key_value(value)?);
        }
        let values = values.into_iter().collect::<Option<Vec<_>>>()?;
        Some(PointLookup {
            view,
            values,
            projection,
        })
    }

    /// Reads the matching rows; `params` are the statement's bound parameters, if any.
    /// Returns None when a value does not convert exactly to its key column's type (say,
    /// `id = 9.5` on a BIGINT key): then the general path answers, with SQL's comparison rules.
    pub fn execute(
        &self,
        store: &dyn StateStore,
        params: &[ScalarValue],
    ) -> Result<Option<RecordBatch>> {
        self.view.rows.check_readable(&self.view.item.name)?;
        let mut key_columns: Vec<ArrayRef> = Vec::with_capacity(self.values.len());
        for (slot, value) in self.values.iter().enumerate() {
            let field = self.view.schema.field(self.view.key[slot]);
            let scalar = match value {
                KeyValue::Literal(text) => ScalarValue::Utf8(Some(text.clone())),
                KeyValue::Param(i) => params.get(*i).cloned().ok_or_else(|| {
                    WeirError::new(
                        ErrorKind::Syntax,
                        format!("there is no parameter ${}", i + 1),
                    )
                })?,
            };
            let Ok(typed) = scalar.cast_to(field.data_type()) else {
                return Ok(None);
            };
            let exact = typed
                .cast_to(&scalar.data_type())
                .is_ok_and(|back| back == scalar);
            if !exact || typed.is_null() {
                return Ok(None);
            }
            key_columns.push(typed.to_array()?);
        }
        let rows = self.view.rows.lookup(store, &key_columns)?;
        Ok(Some(expand(&rows)?.project(&self.projection)?))
    }
}

fn split_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner) => split_and(inner, out),
        other => out.push(other),
    }
}

fn key_value(e: &Expr) -> Option<KeyValue> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(KeyValue::Literal(n.clone())),
            Value::SingleQuotedString(s) => Some(KeyValue::Literal(s.clone())),
            Value::Placeholder(p) => {
                let n: usize = p.strip_prefix('$')?.parse().ok()?;
                n.checked_sub(1).map(KeyValue::Param)
            }
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match key_value(expr)? {
            KeyValue::Literal(n) => Some(KeyValue::Literal(format!("-{n}"))),
            KeyValue::Param(_) => None,
        },
        _ => None,
    }
}
