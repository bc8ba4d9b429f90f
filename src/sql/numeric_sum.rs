//! `sum(bigint)` is NUMERIC, as in Postgres: a sum of 64-bit integers does not fit 64 bits,
//! and DataFusion's `sum(Int64)` is an `Int64` that wraps silently on overflow. An analyzer
//! rule, run before type coercion, casts the argument of every `sum` over a 64-bit integer to
//! `NUMERIC(38, 0)`, so the sum is an exact decimal in SELECTs and in views alike (the view's
//! aggregate adds the integers as they are, see `sql::stream_plan`). `sum` over smaller
//! integers stays `bigint`, as in Postgres. The aggregate keeps its output column's name.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::AggregateFunction;
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
        plan.transform_up_with_subqueries(|plan| match plan {
            LogicalPlan::Aggregate(agg) => {
                let schema = agg.input.schema().clone();
                let mut changed = false;
                let aggr_expr = agg
                    .aggr_expr
                    .into_iter()
                    .map(|e| {
                        let t = numeric(e, &schema)?;
                        changed |= t.transformed;
                        Ok(t.data)
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                let plan = Aggregate::try_new(agg.input, agg.group_expr, aggr_expr)?;
                Ok(Transformed::new_transformed(
                    LogicalPlan::Aggregate(plan),
                    changed,
                ))
            }
            // A node over a changed aggregate takes its new output type.
            other => Ok(Transformed::yes(other.recompute_schema()?)),
        })
        .data()
    }
}

/// `e` with its `sum` over a 64-bit integer made a NUMERIC sum, named as before.
fn numeric(e: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let (inner, alias) = match e {
        Expr::Alias(a) => (*a.expr, Some((a.relation, a.name))),
        other => (other, None),
    };
    let Expr::AggregateFunction(f) = inner else {
        return Ok(Transformed::no(restore(inner, alias)));
    };
    let is_bigint_sum = f.func.name().eq_ignore_ascii_case("sum")
        && matches!(f.params.args.as_slice(), [arg]
            if matches!(arg.get_type(schema)?, DataType::Int64 | DataType::UInt64));
    if !is_bigint_sum {
        return Ok(Transformed::no(restore(Expr::AggregateFunction(f), alias)));
    }
    let name = Expr::AggregateFunction(f.clone()).schema_name().to_string();
    let AggregateFunction { func, mut params } = f;
    params.args = params
        .args
        .into_iter()
        .map(|a| cast(a, SUM_OF_BIGINT_TYPE))
        .collect();
    let sum = Expr::AggregateFunction(AggregateFunction { func, params });
    Ok(Transformed::yes(match alias {
        Some((relation, alias)) => sum.alias_qualified(relation, alias),
        None => sum.alias(name),
    }))
}

fn restore(e: Expr, alias: Option<(Option<datafusion::common::TableReference>, String)>) -> Expr {
    match alias {
        Some((relation, name)) => e.alias_qualified(relation, name),
        None => e,
    }
}
