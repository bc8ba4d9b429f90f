//! A view's error policy for rows whose expressions fail (`WITH (on_error = 'skip')`).
//!
//! By default (`on_error = 'fail'`) an expression that fails on one row (division by zero, an
//! overflow, a cast of bad text) fails the view's epoch, and the view stops. With `skip` the
//! operators evaluate a failing batch again row by row, leave out the rows that fail, and
//! count and list them here (`weir_skipped_rows`, `weir_views`). Expressions in a view are
//! deterministic, so the retraction of a skipped row fails the same way and is skipped too: the
//! view stays equal to its query over the rows that do not fail. Nothing is lost: the rows stay
//! in their topics.
//!
//! Only errors of SQLSTATE class 22 (data exceptions) are skipped; any other error still fails
//! the view. Projections and filters evaluate a batch without a failing row once, as without
//! the policy; under it the aggregate (keys and arguments) and the join (keys) evaluate their
//! expressions once more per batch, to find the failing rows before they touch state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_expr::PhysicalExpr;

use crate::dataflow::ChangeBatch;
use crate::error::{Result, WeirError};

/// How many skipped rows a view lists (the most recent); older ones are only counted.
pub const SKIPPED_ROWS_LISTED: usize = 1000;

/// A row a view left out because an expression failed on it.
#[derive(Debug, Clone)]
pub struct SkippedRow {
    pub at: SystemTime,
    /// +1 when the row was inserted, -1 when it was retracted.
    pub weight: i64,
    /// The error, as the view would have failed with it.
    pub reason: String,
    /// The row's values as the failing operator saw them: `(v1, v2, ...)`.
    pub row: String,
}

/// The rows one view skipped since the server started: all counted, the latest listed.
#[derive(Debug, Default)]
pub struct SkippedRows {
    total: AtomicU64,
    recent: Mutex<VecDeque<SkippedRow>>,
}

impl SkippedRows {
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The listed rows, oldest first.
    pub fn recent(&self) -> Vec<SkippedRow> {
        self.recent
            .lock()
            .expect("skipped rows lock")
            .iter()
            .cloned()
            .collect()
    }

    fn record(&self, row: SkippedRow) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent.lock().expect("skipped rows lock");
        if recent.len() == SKIPPED_ROWS_LISTED {
            recent.pop_front();
        }
        recent.push_back(row);
    }
}

/// What an operator does with a row its expressions fail on: `None` fails the view, `Some`
/// skips the row and records it there.
pub type OnRowError = Option<Arc<SkippedRows>>;

/// Evaluates `exprs` over `batch`. When that fails with a data exception and `skip` is set, the
/// rows on which some expression fails are recorded and left out: returns the rows kept and
/// the expressions' values over them.
pub fn evaluate(
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: ChangeBatch,
    skip: Option<&SkippedRows>,
) -> Result<(ChangeBatch, Vec<ArrayRef>)> {
    let error = match evaluate_all(exprs, &batch) {
        Ok(columns) => return Ok((batch, columns)),
        Err(e) => e,
    };
    let Some(skipped) = skip.filter(|_| is_data_exception(&error)) else {
        return Err(error);
    };
    let passing = passing(exprs, &batch, Some(skipped))?;
    let kept = batch.filter(&passing)?;
    let columns = evaluate_all(exprs, &kept)?;
    Ok((kept, columns))
}

/// Leaves out of `batch` the rows on which some of `exprs` fails (recording them), for an
/// operator that evaluates its expressions later in several places (the aggregate). Without
/// `skip` the batch is returned as it is.
pub fn drop_failing(
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: ChangeBatch,
    skip: Option<&SkippedRows>,
) -> Result<ChangeBatch> {
    if skip.is_none() {
        return Ok(batch);
    }
    Ok(evaluate(exprs, batch, skip)?.0)
}

/// Routes `batch` to vnodes when its key expressions fail on some rows: the rows that pass get
/// the vnodes `route` gives them, the others vnode 0, where the operator skips and records
/// them.
pub fn route_passing(
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: &ChangeBatch,
    out: &mut Vec<u16>,
    route: impl FnOnce(&ChangeBatch, &mut Vec<u16>) -> Result<()>,
) -> Result<()> {
    // Not recorded here: the operator records them when it sees them.
    let passing = passing(exprs, batch, None)?;
    let kept = batch.filter(&passing)?;
    let mut routed = Vec::with_capacity(kept.len());
    route(&kept, &mut routed)?;
    let mut routed = routed.into_iter();
    out.clear();
    out.extend(
        passing
            .values()
            .iter()
            .map(|pass| if pass { routed.next().unwrap_or(0) } else { 0 }),
    );
    Ok(())
}

fn evaluate_all(exprs: &[Arc<dyn PhysicalExpr>], batch: &ChangeBatch) -> Result<Vec<ArrayRef>> {
    let n = batch.len();
    Ok(exprs
        .iter()
        .map(|e| e.evaluate(&batch.rows)?.into_array(n))
        .collect::<datafusion::error::Result<Vec<_>>>()?)
}

/// Row by row: true where every expression evaluates. A row that fails with anything but a
/// data exception fails the whole call.
fn passing(
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: &ChangeBatch,
    record: Option<&SkippedRows>,
) -> Result<BooleanArray> {
    let mut mask = Vec::with_capacity(batch.len());
    for i in 0..batch.len() {
        let row = batch.rows.slice(i, 1);
        let failure = exprs
            .iter()
            .find_map(|e| e.evaluate(&row).and_then(|v| v.into_array(1)).err());
        match failure.map(WeirError::from) {
            None => mask.push(true),
            Some(e) if is_data_exception(&e) => {
                if let Some(skipped) = record {
                    skipped.record(SkippedRow {
                        at: SystemTime::now(),
                        weight: batch.weights[i],
                        reason: e.message,
                        row: render_row(&row),
                    });
                }
                mask.push(false);
            }
            Some(e) => return Err(e),
        }
    }
    Ok(BooleanArray::from(mask))
}

/// An error of SQLSTATE class 22: the data, not the query, is at fault.
pub fn is_data_exception(e: &WeirError) -> bool {
    e.kind.sqlstate().starts_with("22")
}

/// `(v1, v2, ...)` of a one-row batch, NULL spelled out.
fn render_row(row: &datafusion::arrow::record_batch::RecordBatch) -> String {
    let options = FormatOptions::default().with_null("NULL");
    let values: Vec<String> = row
        .columns()
        .iter()
        .map(|c| match ArrayFormatter::try_new(c.as_ref(), &options) {
            Ok(f) => f.value(0).to_string(),
            Err(_) => "?".to_string(),
        })
        .collect();
    format!("({})", values.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::logical_expr::Operator as BinOp;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column};

    /// `a / b` over rows (a, b, weight).
    fn divide(rows: &[(i64, i64, i64)]) -> (Vec<Arc<dyn PhysicalExpr>>, ChangeBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let a = Int64Array::from_iter_values(rows.iter().map(|r| r.0));
        let b = Int64Array::from_iter_values(rows.iter().map(|r| r.1));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(a), Arc::new(b)]).unwrap();
        let expr: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("a", 0)),
            BinOp::Divide,
            Arc::new(Column::new("b", 1)),
        ));
        let weights = rows.iter().map(|r| r.2).collect();
        (vec![expr], ChangeBatch::new(batch, weights))
    }

    #[test]
    fn without_the_policy_a_failing_row_fails_the_batch() {
        let (exprs, batch) = divide(&[(4, 2, 1), (1, 0, 1)]);
        let err = evaluate(&exprs, batch, None).unwrap_err();
        assert_eq!(err.kind.sqlstate(), "22012", "{err:?}");
    }

    #[test]
    fn skipping_leaves_out_and_records_exactly_the_failing_rows() {
        let skipped = SkippedRows::default();
        let (exprs, batch) = divide(&[(4, 2, 1), (1, 0, 1), (9, 3, 1), (5, 0, -1)]);
        let (kept, columns) = evaluate(&exprs, batch, Some(&skipped)).unwrap();
        assert_eq!(kept.weights, vec![1, 1]);
        let quotients = columns[0].as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(quotients.values().to_vec(), vec![2, 3]);
        assert_eq!(skipped.total(), 2);
        let listed = skipped.recent();
        assert_eq!(listed[0].row, "(1, 0)");
        assert_eq!(listed[1].row, "(5, 0)");
        assert_eq!(listed[1].weight, -1);
        assert!(
            listed[0].reason.contains("division by zero"),
            "{}",
            listed[0].reason
        );
    }

    #[test]
    fn a_batch_without_failures_is_kept_whole_and_nothing_is_recorded() {
        let skipped = SkippedRows::default();
        let (exprs, batch) = divide(&[(4, 2, 1), (9, 3, 1)]);
        let (kept, _) = evaluate(&exprs, batch, Some(&skipped)).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(skipped.total(), 0);
        assert_eq!(passing(&exprs, &kept, None).unwrap().true_count(), 2);
    }

    #[test]
    fn the_list_keeps_the_latest_rows_and_counts_them_all() {
        let skipped = SkippedRows::default();
        let rows: Vec<(i64, i64, i64)> = (0..SKIPPED_ROWS_LISTED as i64 + 5)
            .map(|i| (i, 0, 1))
            .collect();
        let (exprs, batch) = divide(&rows);
        let (kept, _) = evaluate(&exprs, batch, Some(&skipped)).unwrap();
        assert!(kept.is_empty());
        assert_eq!(skipped.total(), SKIPPED_ROWS_LISTED as u64 + 5);
        let listed = skipped.recent();
        assert_eq!(listed.len(), SKIPPED_ROWS_LISTED);
        assert_eq!(listed[0].row, "(5, 0)");
    }
}
