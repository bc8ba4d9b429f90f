//! Postgres's arithmetic errors, which DataFusion does not raise: integer `+ - *` that
//! overflows is 22003 ("bigint out of range"), not a wrapped value, and a float divided by
//! zero is 22012, not infinity.
//!
//! DataFusion's physical `BinaryExpr` wraps integers unless built with `fail_on_overflow`,
//! which its planner never sets, and its float division follows IEEE. So an analyzer rule,
//! run after type coercion (both operands then have one type), replaces those operators by
//! checked functions: `checked_add`, `checked_sub`, `checked_mul` on `smallint`, `integer`
//! and `bigint` (unary minus too, as `0 - x`), `checked_div` on `real` and `double precision`. Every path goes through it:
//! SELECTs, views, DML. Output column names stay those of the original expressions.

use datafusion::arrow::array::{ArrayRef, AsArray, Datum};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr_common::datum::apply;

/// The analyzer rule; add it to a session after DataFusion's own rules.
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

impl AnalyzerRule for CheckedArithmetic {
    fn name(&self) -> &str {
        "weir_checked_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = match plan.inputs().as_slice() {
                [] => plan.schema().as_ref().clone(),
                inputs => merge_schema(inputs),
            };
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|e| checked(e, &schema))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .data()
    }
}

/// The checked function replacing `e`, when `e` is an operator that needs one. Its operands
/// move into the call (no copies: a chain can be a thousand levels deep).
fn checked(e: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    match e {
        Expr::Negative(inner) => match operand_type(&inner, schema) {
            // `-x` is `0 - x`: the negation of the smallest value overflows.
            Ok(t) if is_signed_integer(&t) => {
                let zero = Expr::Literal(ScalarValue::new_zero(&t)?, None);
                Ok(Transformed::yes(
                    function(Kind::Sub).call(vec![zero, *inner]),
                ))
            }
            _ => Ok(Transformed::no(Expr::Negative(inner))),
        },
        Expr::BinaryExpr(binary) => match binary_kind(&binary, schema) {
            Some(kind) => {
                let BinaryExpr { left, right, .. } = binary;
                Ok(Transformed::yes(function(kind).call(vec![*left, *right])))
            }
            None => Ok(Transformed::no(Expr::BinaryExpr(binary))),
        },
        other => Ok(Transformed::no(other)),
    }
}

/// The checked function a binary operator needs, if any: both operands have one type then.
fn binary_kind(binary: &BinaryExpr, schema: &DFSchema) -> Option<Kind> {
    let left_type = operand_type(&binary.left, schema).ok()?;
    let right_type = operand_type(&binary.right, schema).ok()?;
    if left_type != right_type {
        return None;
    }
    let integer = is_signed_integer(&left_type);
    let float = matches!(left_type, DataType::Float32 | DataType::Float64);
    match binary.op {
        Operator::Plus if integer => Some(Kind::Add),
        Operator::Minus if integer => Some(Kind::Sub),
        Operator::Multiply if integer => Some(Kind::Mul),
        Operator::Divide if float => Some(Kind::FloatDiv),
        _ => None,
    }
}

fn is_signed_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

/// The type of an operand. A chain of checked functions (`1 + 1 + …` is one, up to
/// [`crate::sql::depth::STATEMENT_NESTING_MAX`] deep) has the type of its innermost first
/// argument, found in a loop: asking DataFusion would recurse through the whole chain at
/// every level.
fn operand_type(mut e: &Expr, schema: &DFSchema) -> DfResult<DataType> {
    while let Expr::ScalarFunction(f) = e
        && CHECKED_NAMES.contains(&f.func.name())
        && let Some(first) = f.args.first()
    {
        e = first;
    }
    e.get_type(schema)
}

/// The names of the checked functions (no other function has them).
pub const CHECKED_NAMES: [&str; 4] = ["checked_add", "checked_sub", "checked_mul", "checked_div"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Add,
    Sub,
    Mul,
    FloatDiv,
}

fn function(kind: Kind) -> ScalarUDF {
    ScalarUDF::new_from_impl(Checked {
        kind,
        signature: Signature::any(2, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        CHECKED_NAMES[self.kind as usize]
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            unreachable!("the signature takes two arguments");
        };
        let out_of_range = || {
            ArrowError::ArithmeticOverflow(format!("{} out of range", pg_type(&args.arg_fields)))
        };
        match self.kind {
            Kind::Add => apply(left, right, |l, r| {
                numeric::add(l, r).map_err(|_| out_of_range())
            }),
            Kind::Sub => apply(left, right, |l, r| {
                numeric::sub(l, r).map_err(|_| out_of_range())
            }),
            Kind::Mul => apply(left, right, |l, r| {
                numeric::mul(l, r).map_err(|_| out_of_range())
            }),
            Kind::FloatDiv => apply(left, right, float_div),
        }
    }
}

/// Postgres's name of the (integer) argument type, for the error message.
fn pg_type(fields: &[datafusion::arrow::datatypes::FieldRef]) -> &'static str {
    match fields.first().map(|f| f.data_type()) {
        Some(DataType::Int8 | DataType::Int16) => "smallint",
        Some(DataType::Int32) => "integer",
        _ => "bigint",
    }
}

/// `l / r` on floats, refusing a zero divisor where neither side is NULL (as Postgres does).
fn float_div(l: &dyn Datum, r: &dyn Datum) -> Result<ArrayRef, ArrowError> {
    let (left, left_scalar) = l.get();
    let (right, right_scalar) = r.get();
    let rows = if right_scalar {
        left.len()
    } else {
        right.len()
    };
    let row = |scalar: bool, i: usize| if scalar { 0 } else { i };
    let zero_at = |i: usize| -> bool {
        let (li, ri) = (row(left_scalar, i), row(right_scalar, i));
        if left.is_null(li) || right.is_null(ri) {
            return false;
        }
        match right.data_type() {
            DataType::Float64 => right.as_primitive::<Float64Type>().value(ri) == 0.0,
            DataType::Float32 => right.as_primitive::<Float32Type>().value(ri) == 0.0,
            _ => false,
        }
    };
    let rows = if left_scalar && right_scalar { 1 } else { rows };
    if (0..rows).any(zero_at) {
        return Err(ArrowError::DivideByZero);
    }
    numeric::div(l, r)
}
