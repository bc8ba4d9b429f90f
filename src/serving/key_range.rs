//! Which stored keys a scan of a view must read, from the filters DataFusion pushes into it.
//!
//! A view's rows are stored in the order of their key's encoding (`state::keys`): a keyed view
//! by its key columns, an unkeyed one by all its columns in order. The encoding of a leading
//! part of a key is a prefix of the whole key's, and it sorts as the values do. So equalities
//! on the leading key columns narrow the scan to one prefix, and comparisons on the column
//! after them to a range inside it. The filters are reported `Inexact`: DataFusion still
//! applies them, so a range only has to hold every matching row.

use std::ops::Bound;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::catalog::ViewDef;
use crate::error::Result;
use crate::formats::RowCodec;
use crate::state::{KeyRange, keys};

/// Whether `filter` can narrow the scan of `view`: a comparison of one of its stored key
/// columns with a literal of exactly the column's type.
pub fn narrows(view: &ViewDef, filter: &Expr) -> bool {
    comparison(view, filter).is_some()
}

/// The keys a scan of `view` under `filters` must read.
pub fn key_range(view: &ViewDef, filters: &[Expr]) -> Result<KeyRange> {
    let comparisons: Vec<Comparison> = filters.iter().filter_map(|f| comparison(view, f)).collect();
    let mut prefix = keys::view_rows_prefix(view.rows.view_id);
    for column in view.rows.stored_key_columns() {
        let on_column = || comparisons.iter().filter(move |c| c.column == column);
        if let Some(eq) = on_column().find(|c| c.op == Operator::Eq) {
            prefix.extend(encode(view.schema.field(column), eq.value)?);
            continue;
        }
        let mut range = KeyRange::prefix(&prefix);
        for c in on_column() {
            let mut at = prefix.clone();
            at.extend(encode(view.schema.field(column), c.value)?);
            // Every key whose column equals the value starts with `at`; `past` is the first
            // key after them all (there always is one: view keys start with their tag).
            let past = keys::prefix_end(&at);
            match (c.op, past) {
                (Operator::Gt, Some(past)) => raise_start(&mut range, past),
                (Operator::GtEq, _) => raise_start(&mut range, at),
                (Operator::Lt, _) => lower_end(&mut range, at),
                (Operator::LtEq, Some(past)) => lower_end(&mut range, past),
                _ => {}
            }
        }
        return Ok(range);
    }
    Ok(KeyRange::prefix(&prefix))
}

/// `column op value`, the way round it is stored.
struct Comparison<'a> {
    column: usize,
    op: Operator,
    value: &'a ScalarValue,
}

fn comparison<'a>(view: &ViewDef, filter: &'a Expr) -> Option<Comparison<'a>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
        return None;
    };
    let (column, op, value) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) => (c, *op, v),
        (Expr::Literal(v, _), Expr::Column(c)) => (c, op.swap()?, v),
        _ => return None,
    };
    if !matches!(
        op,
        Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
    ) {
        return None;
    }
    let index = view.schema.index_of(&column.name).ok()?;
    let field = view.schema.field(index);
    let stored = view.rows.stored_key_columns().contains(&index);
    let same_type = value.data_type() == *field.data_type();
    (stored && same_type && !value.is_null() && sorts_as_sql_compares(field.data_type())).then(
        || Comparison {
            column: index,
            op,
            value,
        },
    )
}

/// Types whose stored order is exactly SQL's comparison. Not floats: the encoding orders
/// -0.0 before 0.0, which SQL holds equal.
fn sorts_as_sql_compares(t: &DataType) -> bool {
    t.is_integer()
        || matches!(
            t,
            DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(_, _)
                | DataType::Decimal128(_, _)
        )
}

fn encode(field: &Field, value: &ScalarValue) -> Result<Vec<u8>> {
    let codec = RowCodec::new([field.data_type().clone()])?;
    let rows = codec.encode(&[value.to_array()?])?;
    Ok(rows.row(0).data().to_vec())
}

/// Starts the range at `start` (included) if that is later than where it starts.
fn raise_start(range: &mut KeyRange, start: Vec<u8>) {
    if let Bound::Included(old) = &range.start
        && start > *old
    {
        range.start = Bound::Included(start);
    }
}

/// Ends the range before `end` (excluded) if that is earlier than where it ends.
fn lower_end(range: &mut KeyRange, end: Vec<u8>) {
    match &range.end {
        Bound::Excluded(old) if end >= *old => {}
        _ => range.end = Bound::Excluded(end),
    }
}
