//! The one rewrite from a DataFusion `LogicalPlan` (bound, type-checked, optimized) into a
//! streaming dataflow of Weir operators. Whatever it cannot maintain incrementally is rejected
//! here, with 0A000 naming the construct.
//!
//! ```text
//! Aggregate: groupBy=[[clicks.user_id]], aggr=[[count(Int64(1))]]     HashAggregate
//!   TableScan: clicks projection=[user_id]                     ==>      -> Input: clicks [0]
//! ```
//! Besides the operator tree it derives the view's key: the columns that identify a row
//! (a GROUP BY key, or a table's primary key carried through projections and filters).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, LogicalPlan, Operator, Volatility};
use datafusion::physical_expr::{PhysicalExpr, create_physical_expr};

use crate::dataflow::batch::nullable_schema;
use crate::dataflow::graph::{Dataflow, Node};
use crate::dataflow::ops::row_errors::OnRowError;
use crate::dataflow::ops::{AggKind, AggSpec, Aggregate, Filter, Join, Project};
use crate::error::{Result, WeirError};

/// A view's dataflow before it is wired to its inputs.
pub struct StreamPlan {
    pub dataflow: Dataflow,
    /// Relation read by each input, in input order.
    pub inputs: Vec<String>,
    /// Output columns identifying a row; empty when no key is known.
    pub key: Vec<usize>,
    /// The view's changes are insertions only.
    pub append_only: bool,
    pub schema: SchemaRef,
}

/// What the planner knows about a stream (a relation, or a node's output), derived once per
/// node from its inputs' and used by the operators it builds.
#[derive(Clone, Debug, Default)]
pub struct StreamProps {
    /// Columns identifying a row (unique in the stream); None when no key is known.
    pub key: Option<Vec<usize>>,
    /// Only insertions, never retractions: a source, and filters, projections and inner joins
    /// of append-only streams. Its min/max keep one value instead of a multiset.
    pub append_only: bool,
    /// Timestamp columns that carry a watermark (a source's `WATERMARK FOR` column, and
    /// columns computed from it by a non-decreasing expression such as TUMBLE's window bounds).
    pub watermarks: Vec<usize>,
}

/// Turns an optimized plan into a dataflow run by `workers` workers (one copy of the operator
/// tree each). `relation` gives the properties of a relation a scan reads (a table's primary
/// key, a view's key; whether it is append-only).
/// With `emit_on_window_close` the topmost aggregate emits each window once, when the
/// watermark passes it. With `on_row_error` set every operator skips (and records there) the
/// rows its expressions fail on.
pub fn plan_stream(
    plan: &LogicalPlan,
    relation: &dyn Fn(&str) -> StreamProps,
    workers: usize,
    emit_on_window_close: bool,
    on_row_error: OnRowError,
) -> Result<StreamPlan> {
    let mut trees = Vec::with_capacity(workers);
    let mut built = None;
    for _ in 0..workers.max(1) {
        let mut builder = Builder {
            inputs: Vec::new(),
            next_op: 0,
            relation,
            props: ExecutionProps::new(),
            emit_on_window_close,
            on_row_error: on_row_error.clone(),
        };
        let (root, out) = builder.build(plan)?;
        if builder.emit_on_window_close {
            return Err(WeirError::unsupported(
                "EMIT ON WINDOW CLOSE needs a GROUP BY: it emits each group once, when its window closes",
            )
            .with_hint("GROUP BY window_start of TUMBLE(source, ts, INTERVAL '...') over a source with WATERMARK FOR ts"));
        }
        trees.push(root);
        built = Some((builder.inputs, out));
    }
    let (inputs, out) = built.expect("at least one worker");
    let schema = nullable_schema(plan.schema().as_arrow());
    Ok(StreamPlan {
        dataflow: Dataflow::new(trees, schema.clone()),
        inputs,
        key: out.key.unwrap_or_default(),
        append_only: out.append_only,
        schema,
    })
}

/// Refuses a view whose query calls a function whose result is not fixed by its arguments
/// (`now()`, `current_date`, `random()`, catalog functions ...). A view computes each row once,
/// when its input arrives, so such a view would match neither its definition nor a recompute.
/// Takes the plan before optimization: the optimizer folds `now()` into a constant.
pub fn check_deterministic(plan: &LogicalPlan) -> Result<()> {
    let mut found: Option<String> = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility != Volatility::Immutable
                {
                    let mut name = format!("{}()", f.func.name());
                    if !f.func.aliases().is_empty() {
                        name = format!("{name} (or {})", f.func.aliases().join(", "));
                    }
                    found = Some(name);
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    match found {
        None => Ok(()),
        Some(name) => Err(WeirError::unsupported(format!(
            "{name} is not allowed in a materialized view: its value changes over time (or \
             between calls), and a view computes each row once when it arrives, so the view \
             would not match its definition"
        ))
        .with_hint("compute the value when the row is written, or filter on event time columns")),
    }
}

struct Builder<'a> {
    inputs: Vec<String>,
    next_op: u32,
    relation: &'a dyn Fn(&str) -> StreamProps,
    props: ExecutionProps,
    /// EMIT ON WINDOW CLOSE asked for and not yet given to an aggregate.
    emit_on_window_close: bool,
    /// `on_error = 'skip'`: where the operators record the rows they skip.
    on_row_error: OnRowError,
}

/// The expression under any number of `AS` aliases.
fn strip_aliases(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(alias) => strip_aliases(&alias.expr),
        other => other,
    }
}

fn unsupported(what: &str) -> WeirError {
    WeirError::unsupported(format!(
        "{what} is not supported in a materialized view yet"
    ))
}

/// The SQL a user writes for a join the optimizer made (subqueries become semi, anti and mark
/// joins), for refusals that name what the user wrote rather than the plan.
fn join_construct(join_type: JoinType) -> &'static str {
    match join_type {
        JoinType::Inner => "an inner join",
        JoinType::Left | JoinType::Right => "LEFT / RIGHT [OUTER] JOIN",
        JoinType::Full => "FULL [OUTER] JOIN",
        JoinType::LeftSemi | JoinType::RightSemi => "EXISTS / IN (subquery) (a semi join)",
        JoinType::LeftAnti | JoinType::RightAnti => "NOT EXISTS / NOT IN (subquery) (an anti join)",
        JoinType::LeftMark | JoinType::RightMark => {
            "EXISTS / IN (subquery) combined with OR or in the select list"
        }
    }
}

/// The subquery expression in `expr` that reached the dataflow un-decorrelated, if any.
fn subquery_in(expr: &Expr) -> Option<&'static str> {
    let mut found = None;
    let _ = expr.apply(|e| {
        found = match e {
            Expr::ScalarSubquery(_) => Some("a scalar subquery (SELECT ... in an expression)"),
            Expr::Exists(_) => Some("EXISTS (subquery)"),
            Expr::InSubquery(_) => Some("IN (subquery)"),
            Expr::OuterReferenceColumn(..) => Some("a correlated subquery"),
            _ => return Ok(TreeNodeRecursion::Continue),
        };
        Ok(TreeNodeRecursion::Stop)
    });
    found
}

impl Builder<'_> {
    fn op(
        &mut self,
        op: impl crate::dataflow::ops::Operator + 'static,
        children: Vec<Node>,
    ) -> Node {
        let id = self.next_op;
        self.next_op += 1;
        Node::Op {
            id,
            op: Box::new(op),
            children,
        }
    }

    fn physical(&self, expr: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        if let Some(what) = subquery_in(expr) {
            return Err(unsupported(what));
        }
        Ok(create_physical_expr(
            expr,
            schema,
            &self.props,
            &PhysicalPlanningContext::default(),
        )?)
    }

    /// Builds the subtree for `plan`, returning it with the properties of its output.
    fn build(&mut self, plan: &LogicalPlan) -> Result<(Node, StreamProps)> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                if scan.fetch.is_some() {
                    return Err(unsupported("LIMIT"));
                }
                let name = scan.table_name.table().to_string();
                let input = self.inputs.len();
                self.inputs.push(name.clone());
                let base = (self.relation)(&name);
                let base_key = base.key.unwrap_or_default();
                let key = match &scan.projection {
                    None => Some(base_key),
                    Some(cols) => base_key
                        .iter()
                        .map(|k| cols.iter().position(|c| c == k))
                        .collect::<Option<Vec<usize>>>(),
                };
                let watermarks = match &scan.projection {
                    None => base.watermarks.clone(),
                    Some(cols) => base
                        .watermarks
                        .iter()
                        .filter_map(|w| cols.iter().position(|c| c == w))
                        .collect(),
                };
                let out = StreamProps {
                    key: key.filter(|k| !k.is_empty()),
                    append_only: base.append_only,
                    watermarks,
                };
                let mut node = Node::Input {
                    input,
                    projection: scan.projection.clone(),
                    name,
                };
                if let Some(predicate) = scan.filters.iter().cloned().reduce(|a, b| a.and(b)) {
                    let filter = Filter::new(self.physical(&predicate, &scan.projected_schema)?)
                        .on_row_error(self.on_row_error.clone());
                    node = self.op(filter, vec![node]);
                }
                Ok((node, out))
            }
            LogicalPlan::SubqueryAlias(alias) => self.build(&alias.input),
            LogicalPlan::Filter(filter) => {
                let (child, out) = self.build(&filter.input)?;
                let predicate = self.physical(&filter.predicate, filter.input.schema())?;
                let filter = Filter::new(predicate).on_row_error(self.on_row_error.clone());
                Ok((self.op(filter, vec![child]), out))
            }
            LogicalPlan::Projection(projection) => {
                let (child, input) = self.build(&projection.input)?;
                let input_schema = projection.input.schema();
                // Columns passed through unchanged in order only rename: no operator needed.
                let identity =
                    projection.expr.len() == input_schema.fields().len()
                        && projection.expr.iter().enumerate().all(|(i, e)| {
                            match strip_aliases(e) {
                                Expr::Column(c) => input_schema.index_of_column(c).ok() == Some(i),
                                _ => false,
                            }
                        });
                if identity {
                    return Ok((child, input));
                }
                let exprs = projection
                    .expr
                    .iter()
                    .map(|e| self.physical(e, input_schema))
                    .collect::<Result<Vec<_>>>()?;
                let out_key = input.key.and_then(|key| {
                    key.iter()
                        .map(|&k| {
                            projection.expr.iter().position(|e| match strip_aliases(e) {
                                Expr::Column(c) => input_schema.index_of_column(c).ok() == Some(k),
                                _ => false,
                            })
                        })
                        .collect::<Option<Vec<usize>>>()
                });
                let schema = nullable_schema(projection.schema.as_arrow());
                // (input column, output column) for each output that follows a watermark.
                let carried: Vec<(usize, usize)> = projection
                    .expr
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| {
                        let c = follows_watermark(e, input_schema, &input.watermarks)?;
                        Some((c, i))
                    })
                    .collect();
                let out = StreamProps {
                    key: out_key,
                    append_only: input.append_only,
                    watermarks: carried.iter().map(|&(_, i)| i).collect(),
                };
                let mut project =
                    Project::new(exprs, schema).on_row_error(self.on_row_error.clone());
                if !carried.is_empty() {
                    project = project
                        .with_watermarks(nullable_schema(input_schema.as_arrow()), carried);
                }
                Ok((self.op(project, vec![child]), out))
            }
            LogicalPlan::Aggregate(agg) => {
                let (child, input) = self.build(&agg.input)?;
                let input_schema = agg.input.schema();
                let mut group_exprs = Vec::new();
                let mut group_types = Vec::new();
                for e in &agg.group_expr {
                    if matches!(e, Expr::GroupingSet(_)) {
                        return Err(unsupported("GROUPING SETS / ROLLUP / CUBE"));
                    }
                    group_exprs.push(self.physical(e, input_schema)?);
                    group_types.push(e.get_type(input_schema)?);
                }
                let out_fields = agg.schema.fields();
                let mut specs = Vec::new();
                let mut arg_types = Vec::new();
                for (i, e) in agg.aggr_expr.iter().enumerate() {
                    let Expr::AggregateFunction(f) = strip_aliases(e) else {
                        return Err(unsupported(&format!("aggregate expression {e}")));
                    };
                    let name = f.func.name().to_ascii_lowercase();
                    let kind = match name.as_str() {
                        "count" => AggKind::Count,
                        "sum" => AggKind::Sum,
                        "avg" | "mean" => AggKind::Avg,
                        "min" => AggKind::Min,
                        "max" => AggKind::Max,
                        "first_value" | "last_value" => {
                            return Err(unsupported(&format!(
                                "DISTINCT ON (or the aggregate function {name}())"
                            )));
                        }
                        other => return Err(unsupported(&format!("aggregate function {other}()"))),
                    };
                    if f.params.distinct {
                        return Err(unsupported(&format!("{name}(DISTINCT ...)")));
                    }
                    if f.params.filter.is_some() {
                        return Err(unsupported("FILTER on an aggregate"));
                    }
                    let arg = match f.params.args.as_slice() {
                        [] => datafusion::logical_expr::lit(1i64),
                        [a] => a.clone(),
                        _ => return Err(unsupported(&format!("{name}() with several arguments"))),
                    };
                    // Type coercion turns avg(int) into avg(CAST(int AS DOUBLE)), and
                    // `numeric_sum` sum(bigint) into sum(CAST(bigint AS NUMERIC)); the
                    // operator keeps integer sums exact itself, so it takes the integer.
                    let arg = match (&kind, &arg) {
                        (AggKind::Avg, Expr::Cast(c))
                            if c.expr.get_type(input_schema)?.is_integer() =>
                        {
                            (*c.expr).clone()
                        }
                        (AggKind::Sum, Expr::Cast(c))
                            if *c.field.data_type() == crate::sql::numeric_sum::SUM_OF_BIGINT_TYPE
                                && c.expr.get_type(input_schema)?.is_integer() =>
                        {
                            (*c.expr).clone()
                        }
                        _ => arg,
                    };
                    arg_types.push(arg.get_type(input_schema)?);
                    specs.push(AggSpec {
                        kind,
                        arg: self.physical(&arg, input_schema)?,
                        output_type: out_fields[group_exprs.len() + i].data_type().clone(),
                        name: e.schema_name().to_string(),
                    });
                }
                let n_groups = group_exprs.len();
                // Group keys that are a column carrying a watermark: (key, input column).
                let windows: Vec<(usize, usize)> = agg
                    .group_expr
                    .iter()
                    .enumerate()
                    .filter_map(|(k, e)| match strip_aliases(e) {
                        Expr::Column(c) => input_schema
                            .index_of_column(c)
                            .ok()
                            .filter(|i| input.watermarks.contains(i))
                            .map(|i| (k, i)),
                        _ => None,
                    })
                    .collect();
                let schema = nullable_schema(agg.schema.as_arrow());
                let mut op = Aggregate::new(
                    group_exprs,
                    group_types,
                    specs,
                    arg_types,
                    schema,
                    input.append_only,
                )?
                .on_row_error(self.on_row_error.clone());
                let mut append_only = false;
                if std::mem::take(&mut self.emit_on_window_close) {
                    let Some(&(key, column)) = windows.first() else {
                        return Err(WeirError::unsupported(
                            "EMIT ON WINDOW CLOSE needs a GROUP BY column that follows a watermark",
                        )
                        .with_hint("GROUP BY window_start of TUMBLE(source, ts, INTERVAL '...') over a source with WATERMARK FOR ts"));
                    };
                    op = op.emit_on_window_close(key, column);
                    append_only = true;
                }
                let out = StreamProps {
                    key: (n_groups > 0).then(|| (0..n_groups).collect()),
                    append_only,
                    watermarks: windows.iter().map(|&(k, _)| k).collect(),
                };
                Ok((self.op(op, vec![child]), out))
            }
            LogicalPlan::Join(join) => {
                if join.join_type != JoinType::Inner {
                    return Err(unsupported(join_construct(join.join_type)));
                }
                if join.on.is_empty() {
                    return Err(unsupported(
                        "a join without an equality condition (cross join)",
                    ));
                }
                let (left, left_props) = self.build(&join.left)?;
                let (right, right_props) = self.build(&join.right)?;
                let (ls, rs) = (join.left.schema(), join.right.schema());
                let mut left_keys = Vec::new();
                let mut right_keys = Vec::new();
                let mut key_types: Vec<DataType> = Vec::new();
                for (l, r) in &join.on {
                    let (lt, rt) = (l.get_type(ls)?, r.get_type(rs)?);
                    let (l, r) = if lt == rt {
                        (l.clone(), r.clone())
                    } else {
                        // Compare in one type so equal values encode to equal key bytes.
                        let common =
                            datafusion::logical_expr::type_coercion::binary::comparison_coercion(
                                &lt, &rt,
                            )
                            .ok_or_else(|| {
                                WeirError::new(
                                    crate::error::ErrorKind::DatatypeMismatch,
                                    format!("cannot join {lt} with {rt}"),
                                )
                            })?;
                        (
                            l.clone().cast_to(&common, ls)?,
                            r.clone().cast_to(&common, rs)?,
                        )
                    };
                    key_types.push(l.get_type(ls)?);
                    left_keys.push(self.physical(&l, ls)?);
                    right_keys.push(self.physical(&r, rs)?);
                }
                let filter = match &join.filter {
                    Some(f) => Some(self.physical(f, &join.schema)?),
                    None => None,
                };
                let left_schema = nullable_schema(ls.as_arrow());
                let right_schema = nullable_schema(rs.as_arrow());
                let schema = nullable_schema(join.schema.as_arrow());
                let op = Join::new(
                    left_keys,
                    right_keys,
                    key_types,
                    &left_schema,
                    &right_schema,
                    filter,
                    schema,
                )?
                .on_row_error(self.on_row_error.clone());
                // Inner join of insertions: only insertions (each new row meets stored ones).
                let out = StreamProps {
                    key: None,
                    append_only: left_props.append_only && right_props.append_only,
                    watermarks: Vec::new(),
                };
                Ok((self.op(op, vec![left, right]), out))
            }
            // A view is a set of rows: ORDER BY without LIMIT has nothing to maintain.
            LogicalPlan::Sort(sort) if sort.fetch.is_none() => self.build(&sort.input),
            LogicalPlan::Sort(_) => Err(unsupported("ORDER BY ... LIMIT")),
            LogicalPlan::Limit(_) => Err(unsupported("LIMIT / OFFSET")),
            LogicalPlan::Union(_) => Err(unsupported("UNION")),
            LogicalPlan::Window(_) => Err(unsupported("window functions (OVER)")),
            LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
                Err(unsupported("a query without a FROM relation"))
            }
            LogicalPlan::Unnest(_) => Err(unsupported("unnest()")),
            LogicalPlan::RecursiveQuery(_) => Err(unsupported("WITH RECURSIVE")),
            LogicalPlan::Distinct(_) => Err(unsupported("DISTINCT ON")),
            LogicalPlan::Subquery(_) => Err(unsupported("a subquery here")),
            // Not reachable from a query a user writes (DDL, EXPLAIN, extensions ...); no plan
            // text in the message either way.
            _ => Err(WeirError::unsupported("this query cannot be a materialized view yet")
                .with_hint("views support projections, WHERE, GROUP BY with count, sum, avg, min and max, HAVING, DISTINCT, inner equi-joins and views over views")),
        }
    }
}

/// The input column whose watermark `expr` follows: the column itself, or a non-decreasing
/// function of it (`date_bin` / `date_trunc` with constant other arguments, plus or minus a
/// constant, a cast to a timestamp), as TUMBLE's window bounds are.
fn follows_watermark(expr: &Expr, schema: &DFSchema, watermarks: &[usize]) -> Option<usize> {
    match strip_aliases(expr) {
        Expr::Column(c) => schema
            .index_of_column(c)
            .ok()
            .filter(|i| watermarks.contains(i)),
        Expr::ScalarFunction(f) if matches!(f.func.name(), "date_bin" | "date_trunc") => {
            let mut found = None;
            for arg in &f.args {
                match arg {
                    Expr::Literal(..) => {}
                    other if found.is_none() => {
                        found = follows_watermark(other, schema, watermarks)
                    }
                    _ => return None,
                }
            }
            found
        }
        Expr::BinaryExpr(b) => match (b.op, b.left.as_ref(), b.right.as_ref()) {
            (Operator::Plus | Operator::Minus, l, Expr::Literal(..)) => {
                follows_watermark(l, schema, watermarks)
            }
            (Operator::Plus, Expr::Literal(..), r) => follows_watermark(r, schema, watermarks),
            _ => None,
        },
        // Integer `+` and `-` after `sql::checked` made them overflow-checked functions.
        Expr::ScalarFunction(f) if matches!(f.func.name(), "checked_add" | "checked_sub") => {
            match f.args.as_slice() {
                [l, Expr::Literal(..)] => follows_watermark(l, schema, watermarks),
                [Expr::Literal(..), r] if f.func.name() == "checked_add" => {
                    follows_watermark(r, schema, watermarks)
                }
                _ => None,
            }
        }
        Expr::Cast(c) if matches!(c.field.data_type(), DataType::Timestamp(..)) => {
            follows_watermark(&c.expr, schema, watermarks)
        }
        _ => None,
    }
}
