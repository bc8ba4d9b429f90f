//! `sum(bigint)` is NUMERIC, as in Postgres: a sum of 64-bit integers does not fit 64 bits,
//! and DataFusion's `sum(Int64)` is an `Int64` that wraps silently on overflow. An analyzer
//! rule, run before type coercion, casts the argument of every `sum` over a 64-bit integer to
//! `NUMERIC(38, 0)`, so the sum is an exact decimal in SELECTs and in views alike (the view's
//! aggregate adds the integers as they are, see `sql::stream_plan`). `sum` over smaller
//! integers stays `bigint`, as in Postgres. The aggregate keeps its output column's name.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable, LogicalPlan, cast};
use datafusion::optimizer::AnalyzerRule;

/// What a `sum` over a 64-bit integer adds as: every such integer fits, and so does a sum of
/// more of them than any stream will see (10^38 is about 5 * 10^18 times `i64::MAX`).
pub const SUM_OF_BIGINT_TYPE: DataType = DataType::Decimal128(38, 0);

/// The analyzer rule; put it before DataFusion's own rules (before type coercion).
#[derive(Debug, Default)]
pub struct NumericSum;

impl AnalyzerRule for NumericSum {
    fn name(&self) -> &str {
        "weir_numeric_sum"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let LogicalPlan::Aggregate(agg) = plan else {
                // A node over a changed aggregate takes its new output type.
                return Ok(Transformed::yes(plan.recompute_schema()?));
            };
            let schema = agg.input.schema().clone();
            let names = NamePreserver::new_for_projection();
            let aggr_expr = agg
                .aggr_expr
                .into_iter()
                .map(|e| {
                    let name = names.save(&e);
                    e.transform_up(|e| numeric(e, &schema))
                        .map(|t| t.update_data(|e| name.restore(e)))
                })
                .collect::<DfResult<Vec<_>>>()?;
            let changed = aggr_expr.iter().any(|t| t.transformed);
            let aggr_expr = aggr_expr.into_iter().map(|t| t.data).collect();
            // The aggregate's schema is built again: its sums' types changed.
            let plan = Aggregate::try_new(agg.input, agg.group_expr, aggr_expr)?;
            Ok(Transformed::new_transformed(
                LogicalPlan::Aggregate(plan),
                changed,
            ))
        })
        .data()
    }
}

/// `e` as a NUMERIC sum when it is a `sum` over a 64-bit integer.
fn numeric(e: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    match e {
        Expr::AggregateFunction(mut f)
            if f.func.name().eq_ignore_ascii_case("sum") && f.params.args.len() == 1 =>
        {
            if !matches!(
                f.params.args[0].get_type(schema)?,
                DataType::Int64 | DataType::UInt64
            ) {
                return Ok(Transformed::no(Expr::AggregateFunction(f)));
            }
            let arg = f.params.args.pop().expect("one argument");
            f.params.args.push(cast(arg, SUM_OF_BIGINT_TYPE));
            Ok(Transformed::yes(Expr::AggregateFunction(f)))
        }
        other => Ok(Transformed::no(other)),
    }
}
