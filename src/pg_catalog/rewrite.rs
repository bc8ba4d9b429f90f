//! Rewrites the Postgres-only syntax of client catalog queries into what DataFusion plans:
//!
//! | written                               | becomes                                      |
//! |---------------------------------------|----------------------------------------------|
//! | `'orders'::regclass`, `$1::regclass`  | `regclassin('orders')` (the oid)             |
//! | `c.oid::regclass`                     | `regclassout(c.oid)` (the name)              |
//! | `'int4'::regtype` / `t.oid::regtype`  | `regtypein(..)` / `regtypeout(..)`           |
//! | `'pg_catalog.array_in'::regproc`      | `'array_in'` (`typinput` holds names)        |
//! | `x::oid`, `x::name`, `x::"char"`      | casts to `INT UNSIGNED` / `TEXT`             |
//! | `a OPERATOR(pg_catalog.~) b`          | `a ~ b`                                      |
//! | `x COLLATE pg_catalog.default`        | `x`                                          |
//! | `pg_catalog.f(..)`                    | `f(..)`                                      |
//! | `generate_subscripts(a, 1)`           | `unnest(generate_series(1, array_length(a, 1)))` |
//! | `_pg_expandarray(a)` / `(..).n`       | `unnest(_pg_expandarray(a))` / `unnest(generate_series(..))` |
//! | `ARRAY(SELECT e FROM .. ORDER BY ..)` | `(SELECT array_agg(e ORDER BY ..) FROM ..)`  |
//!
//! Only constructs DataFusion would reject are touched, so ordinary queries plan as written.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, AccessExpr, BinaryOperator, DataType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, ObjectNamePart, Value, VisitMut,
    VisitorMut,
};

/// Rewrites `stmt` in place.
pub fn rewrite(stmt: &mut ast::Statement) {
    let _ = stmt.visit(&mut Rewriter);
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = ();

    fn post_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<()> {
        // Table functions: `pg_catalog.generate_series(1, 32) pos(n)`.
        if name.0.len() == 2 && is_system_schema(&name.0[0]) && is_function_like(&name.0[1]) {
            name.0.remove(0);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(new) = rewrite_expr(expr) {
            *expr = new;
        }
        ControlFlow::Continue(())
    }
}

fn is_system_schema(part: &ObjectNamePart) -> bool {
    part.as_ident().is_some_and(|i| {
        i.value.eq_ignore_ascii_case("pg_catalog")
            || i.value.eq_ignore_ascii_case("information_schema")
    })
}

/// Table functions Weir has (the relation visitor cannot see whether a name has arguments).
fn is_function_like(part: &ObjectNamePart) -> bool {
    part.as_ident().is_some_and(|i| {
        matches!(
            i.value.to_ascii_lowercase().as_str(),
            "generate_series" | "unnest" | "_pg_expandarray" | "range"
        )
    })
}

fn rewrite_expr(expr: &mut Expr) -> Option<Expr> {
    match expr {
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } => rewrite_cast(inner, data_type),
        Expr::Collate { expr: inner, .. } => Some((**inner).clone()),
        Expr::BinaryOp { left, op, right } => {
            let BinaryOperator::PGCustomBinaryOperator(parts) = op else {
                return None;
            };
            let op = match parts.last()?.as_str() {
                "~" => BinaryOperator::PGRegexMatch,
                "~*" => BinaryOperator::PGRegexIMatch,
                "!~" => BinaryOperator::PGRegexNotMatch,
                "!~*" => BinaryOperator::PGRegexNotIMatch,
                "=" => BinaryOperator::Eq,
                "<>" | "!=" => BinaryOperator::NotEq,
                "<" => BinaryOperator::Lt,
                "<=" => BinaryOperator::LtEq,
                ">" => BinaryOperator::Gt,
                ">=" => BinaryOperator::GtEq,
                "~~" => {
                    return Some(Expr::Like {
                        negated: false,
                        any: false,
                        expr: left.clone(),
                        pattern: right.clone(),
                        escape_char: None,
                    });
                }
                _ => return None,
            };
            Some(Expr::BinaryOp {
                left: left.clone(),
                op,
                right: right.clone(),
            })
        }
        Expr::Function(f) => rewrite_function(f),
        Expr::CompoundFieldAccess { root, access_chain } => {
            // `(_pg_expandarray(a)).n` / `.x`: the position, or the element, of each element.
            let [AccessExpr::Dot(field)] = access_chain.as_slice() else {
                return None;
            };
            let array = expand_array_arg(root)?;
            let field = match field {
                Expr::Identifier(i) => i.value.to_ascii_lowercase(),
                _ => return None,
            };
            match field.as_str() {
                "n" => Some(call("unnest", vec![positions(array, None)])),
                "x" => Some(call("unnest", vec![array])),
                _ => None,
            }
        }
        _ => None,
    }
}

/// If `root` is the rewritten `unnest(_pg_expandarray(a))`, `a`.
fn expand_array_arg(root: &Expr) -> Option<Expr> {
    let root = match root {
        Expr::Nested(inner) => inner.as_ref(),
        other => other,
    };
    let unnest = as_call(root, "unnest")?;
    let expand = as_call(unnest.first()?, "_pg_expandarray")?;
    expand.first().cloned()
}

fn as_call<'a>(expr: &'a Expr, name: &str) -> Option<Vec<Expr>> {
    let Expr::Function(f) = expr else {
        return None;
    };
    if !function_name(f).eq_ignore_ascii_case(name) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn function_name(f: &Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .unwrap_or_default()
}

fn rewrite_function(f: &mut Function) -> Option<Expr> {
    if f.name.0.len() == 2 && is_system_schema(&f.name.0[0]) {
        f.name.0.remove(0);
    }
    let name = function_name(f).to_ascii_lowercase();
    match name.as_str() {
        "generate_subscripts" => {
            let args = as_call(&Expr::Function(f.clone()), "generate_subscripts")?;
            let array = args.first()?.clone();
            Some(call("unnest", vec![positions(array, args.get(1).cloned())]))
        }
        "_pg_expandarray" => {
            let args = as_call(&Expr::Function(f.clone()), "_pg_expandarray")?;
            Some(call("unnest", vec![call("_pg_expandarray", args)]))
        }
        "array" => {
            let FunctionArguments::Subquery(query) = &f.args else {
                return None;
            };
            array_subquery(query)
        }
        _ => None,
    }
}

/// `generate_series(1, array_length(a, dim))`: the subscripts of `a`.
fn positions(array: Expr, dim: Option<Expr>) -> Expr {
    let dim = dim.unwrap_or_else(|| number("1"));
    call(
        "generate_series",
        vec![number("1"), call("array_length", vec![array, dim])],
    )
}

/// `ARRAY(SELECT e FROM ... ORDER BY o)` → `(SELECT array_agg(e ORDER BY o) FROM ...)`.
fn array_subquery(query: &ast::Query) -> Option<Expr> {
    let mut query = query.clone();
    let order_by = query.order_by.take();
    let ast::SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let [item] = select.projection.as_slice() else {
        return None;
    };
    let element = match item {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
            e.clone()
        }
        _ => return None,
    };
    let mut clauses = Vec::new();
    if let Some(ast::OrderBy {
        kind: ast::OrderByKind::Expressions(exprs),
        ..
    }) = order_by
    {
        let exprs = exprs
            .into_iter()
            .map(|mut o| {
                // `ORDER BY 1` names the one output column.
                if matches!(&o.expr, Expr::Value(v) if matches!(v.value, Value::Number(..))) {
                    o.expr = element.clone();
                }
                o
            })
            .collect();
        clauses.push(ast::FunctionArgumentClause::OrderBy(exprs));
    }
    let agg = Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new("array_agg")]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(element))],
            clauses,
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    });
    select.projection = vec![ast::SelectItem::UnnamedExpr(agg)];
    Some(Expr::Subquery(Box::new(query)))
}

fn rewrite_cast(inner: &Expr, data_type: &mut DataType) -> Option<Expr> {
    let type_name = match data_type {
        DataType::Regclass => "regclass".to_string(),
        DataType::Text | DataType::Varchar(_) => "text".to_string(),
        DataType::Custom(name, _) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())?,
        DataType::Array(ast::ArrayElemTypeDef::SquareBracket(element, _)) => {
            // `x::pg_catalog.int2[]`: resolve the element type.
            if let Some(t) = builtin_type(element) {
                **element = t;
            }
            return None;
        }
        _ => return None,
    };
    let is_input = matches!(
        inner,
        Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_) | Value::Placeholder(_))
    );
    let arg = inner.clone();
    match type_name.as_str() {
        "regclass" if is_input => Some(call("regclassin", vec![arg])),
        "regclass" => Some(call("regclassout", vec![arg])),
        "regtype" if is_input => Some(call("regtypein", vec![arg])),
        "regtype" => Some(call("regtypeout", vec![arg])),
        "regnamespace" => Some(call("regnamespaceout", vec![arg])),
        "regproc" | "regprocedure" => match inner {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => Some(Expr::value(Value::SingleQuotedString(
                    s.strip_prefix("pg_catalog.").unwrap_or(s).to_string(),
                ))),
                _ => None,
            },
            _ => Some(cast(arg, DataType::Text)),
        },
        "text" | "varchar" | "name" => {
            // `'orders'::regclass::text` is the name again, not the oid's digits.
            let out = [("regclassin", "regclassout"), ("regtypein", "regtypeout")]
                .into_iter()
                .find_map(|(input, output)| as_call(inner, input).map(|_| output));
            match out {
                Some(output) => Some(call(output, vec![arg])),
                None => builtin_type(data_type).map(|t| cast(arg, t)),
            }
        }
        _ => {
            let t = builtin_type(data_type)?;
            Some(cast(arg, t))
        }
    }
}

/// A Postgres-specific or `pg_catalog.`-qualified type name as a type DataFusion knows.
fn builtin_type(data_type: &DataType) -> Option<DataType> {
    let DataType::Custom(name, _) = data_type else {
        return None;
    };
    let last = name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    Some(match last.as_str() {
        "oid" | "regproc" | "xid" => DataType::IntUnsigned(None),
        "name" | "char" | "text" | "bpchar" | "varchar" => DataType::Text,
        "int2" => DataType::SmallInt(None),
        "int4" => DataType::Int(None),
        "int8" => DataType::BigInt(None),
        "bool" => DataType::Boolean,
        "float4" => DataType::Real,
        "float8" => DataType::DoublePrecision,
        "int2vector" => DataType::Array(ast::ArrayElemTypeDef::SquareBracket(
            Box::new(DataType::SmallInt(None)),
            None,
        )),
        "oidvector" => DataType::Array(ast::ArrayElemTypeDef::SquareBracket(
            Box::new(DataType::IntUnsigned(None)),
            None,
        )),
        _ => return None,
    })
}

fn cast(expr: Expr, data_type: DataType) -> Expr {
    Expr::Cast {
        kind: ast::CastKind::Cast,
        expr: Box::new(expr),
        array: false,
        data_type,
        format: None,
    }
}

fn number(n: &str) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}
