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
//! | `x = ANY($1)` / `x = ANY('{a,b}')`    | `x = ANY(pg_text_array($1))` / `ARRAY['a', 'b']` |
//! | `current_user`, `session_user`, `user` | `current_user('alice')`: the session's role    |
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

    fn post_visit_table_factor(&mut self, factor: &mut ast::TableFactor) -> ControlFlow<()> {
        if let Some(new) = rewrite_table_factor(factor) {
            *factor = new;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut ast::Select) -> ControlFlow<()> {
        super::subquery::skip_subqueries_over_empty(select);
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, select: &mut ast::Select) -> ControlFlow<()> {
        rewrite_projection(select);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(new) = rewrite_expr(expr) {
            *expr = new;
        }
        ControlFlow::Continue(())
    }
}

/// `FROM unnest(a) x` → DataFusion's UNNEST relation; `pg_partition_ancestors(r)` → no rows
/// (Weir has no partitioned tables, so nothing has ancestors to report).
fn rewrite_table_factor(factor: &ast::TableFactor) -> Option<ast::TableFactor> {
    let ast::TableFactor::Table {
        name,
        alias,
        args: Some(args),
        with_ordinality,
        ..
    } = factor
    else {
        return None;
    };
    let last = name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    let arg_exprs: Vec<Expr> = args
        .args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    // `unnest(a) x`: in Postgres the alias names the column too.
    let alias = alias.clone().map(|mut a| {
        if a.columns.is_empty() {
            a.columns = vec![ast::TableAliasColumnDef::from_name(a.name.value.clone())];
        }
        a
    });
    let constant = arg_exprs.iter().all(|e| matches!(e, Expr::Value(_)));
    match last.as_str() {
        "unnest" => Some(ast::TableFactor::UNNEST {
            alias,
            array_exprs: arg_exprs,
            with_offset: false,
            with_offset_alias: None,
            with_ordinality: *with_ordinality,
        }),
        // A series over computed bounds: the unnested array of the series.
        "generate_series" if !constant => Some(ast::TableFactor::UNNEST {
            alias,
            array_exprs: vec![call("generate_series", arg_exprs)],
            with_offset: false,
            with_offset_alias: None,
            with_ordinality: *with_ordinality,
        }),
        "pg_partition_ancestors" => Some(ast::TableFactor::Derived {
            lateral: false,
            subquery: Box::new(parse_query(
                "SELECT CAST(NULL AS INT UNSIGNED) AS relid, CAST(NULL AS BIGINT) AS depth \
                 WHERE false",
            )),
            alias,
            sample: None,
        }),
        _ => None,
    }
}

fn parse_query(sql: &str) -> ast::Query {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let stmt = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql)
        .expect("rewrite fragment parses")
        .remove(0);
    match stmt {
        ast::Statement::Query(q) => *q,
        _ => unreachable!("fragment is a query"),
    }
}

/// Output columns: literals are named `?column?` as in Postgres (DataFusion also needs
/// distinct names: `SELECT NULL, NULL`), and `generate_series` in the select list returns
/// rows, not one array.
fn rewrite_projection(select: &mut ast::Select) {
    let mut literals = 0;
    for item in &mut select.projection {
        let ast::SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        if matches!(expr, Expr::Value(_)) {
            literals += 1;
            let name = if literals == 1 {
                "?column?".to_string()
            } else {
                format!("?column?{literals}")
            };
            *item = ast::SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: Ident::with_quote('"', name),
            };
        }
    }
    for item in &mut select.projection {
        let (ast::SelectItem::UnnamedExpr(expr) | ast::SelectItem::ExprWithAlias { expr, .. }) =
            item
        else {
            continue;
        };
        if let Some(args) = as_call(expr, "generate_series") {
            let alias = Ident::new("generate_series");
            let series = call("unnest", vec![call("generate_series", args)]);
            *item = match item {
                ast::SelectItem::ExprWithAlias { alias, .. } => ast::SelectItem::ExprWithAlias {
                    expr: series,
                    alias: alias.clone(),
                },
                _ => ast::SelectItem::ExprWithAlias {
                    expr: series,
                    alias,
                },
            };
        }
    }
}

pub(super) fn is_system_schema(part: &ObjectNamePart) -> bool {
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
        Expr::Subquery(query) => super::subquery::one_row_subquery(query),
        Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } => {
            // `x = ANY('{r,p}')`; `x = ANY($1)` with a text array bound to `$1` (DataFusion
            // would take `$1` to be of `x`'s type).
            let array = match right.as_ref() {
                Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => {
                    call("pg_text_array", vec![(**right).clone()])
                }
                _ => array_literal(right)?,
            };
            let mut expr = expr.clone();
            if let Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } = &mut expr {
                **right = array;
            }
            Some(expr)
        }
        Expr::Like {
            negated,
            any,
            expr: inner,
            pattern,
            escape_char: Some(escape),
        } => {
            // DataFusion escapes with backslash only: translate the pattern.
            let escape = match &escape.value {
                Value::SingleQuotedString(e) if e != "\\" && e.chars().count() == 1 => e.clone(),
                _ => return None,
            };
            let mut translated = call(
                "replace",
                vec![(**pattern).clone(), string("\\"), string("\\\\")],
            );
            for c in ["_", "%"] {
                translated = call(
                    "replace",
                    vec![
                        translated,
                        string(&format!("{escape}{c}")),
                        string(&format!("\\{c}")),
                    ],
                );
            }
            Some(Expr::Like {
                negated: *negated,
                any: *any,
                expr: inner.clone(),
                pattern: Box::new(translated),
                escape_char: None,
            })
        }
        Expr::BinaryOp { left, op, right } => {
            // `t::regtype != 'trigger'::regtype`: compare oids, not a name with an oid.
            for (out, input) in [("regtypeout", "regtypein"), ("regclassout", "regclassin")] {
                if let (Some(l), Some(_)) = (as_call(left, out), as_call(right, input)) {
                    return Some(Expr::BinaryOp {
                        left: Box::new(l.into_iter().next()?),
                        op: op.clone(),
                        right: right.clone(),
                    });
                }
            }
            if matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq) {
                // `i.indisprimary = 't'`: a catalog flag compared with a boolean's text.
                if is_catalog_flag(left) && matches!(right.as_ref(), Expr::Value(_)) {
                    return Some(Expr::BinaryOp {
                        left: left.clone(),
                        op: op.clone(),
                        right: Box::new(cast((**right).clone(), DataType::Boolean)),
                    });
                }
                // `polroles = '{0}'`: an array written as a string.
                if let Some(array) = array_literal(right) {
                    return Some(Expr::BinaryOp {
                        left: left.clone(),
                        op: op.clone(),
                        right: Box::new(array),
                    });
                }
            }
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
        Expr::CompoundFieldAccess { root, access_chain }
            if subscripts_vector(root, access_chain) =>
        {
            // `i.indkey[0]`: int2vector / oidvector subscripts start at 0.
            let mut chain = access_chain.clone();
            if let Some(AccessExpr::Subscript(ast::Subscript::Index { index })) = chain.last_mut() {
                *index = Expr::BinaryOp {
                    left: Box::new(Expr::Nested(Box::new(index.clone()))),
                    op: BinaryOperator::Plus,
                    right: Box::new(number("1")),
                };
            }
            Some(Expr::CompoundFieldAccess {
                root: root.clone(),
                access_chain: chain,
            })
        }
        Expr::CompoundFieldAccess { root, access_chain } => {
            // `(_pg_expandarray(a)).n` / `.x`: the position, or the element, of each element.
            let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() else {
                return None;
            };
            let field = field.value.to_ascii_lowercase();
            let Some(array) = expand_array_arg(root) else {
                // `(record).field`: DataFusion takes the field name as a string subscript.
                return Some(Expr::CompoundFieldAccess {
                    root: root.clone(),
                    access_chain: vec![AccessExpr::Subscript(ast::Subscript::Index {
                        index: string(&field),
                    })],
                });
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

fn as_call(expr: &Expr, name: &str) -> Option<Vec<Expr>> {
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

pub(super) fn function_name(f: &Function) -> String {
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
        // The session's role, known when the statement is planned, passed to a function of the
        // same name that returns it (so the column keeps Postgres's name).
        "current_user" | "session_user" | "user" | "current_role"
            if matches!(f.args, FunctionArguments::None) =>
        {
            Some(call(&name, vec![string(&crate::auth::current_user())]))
        }
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
        "coalesce" => {
            // `coalesce(names, '{}')`
            let FunctionArguments::List(list) = &mut f.args else {
                return None;
            };
            let mut changed = false;
            for arg in &mut list.args {
                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg
                    && let Some(array) = array_literal(e)
                {
                    *e = array;
                    changed = true;
                }
            }
            changed.then(|| Expr::Function(f.clone()))
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
    // `ARRAY(SELECT f(x) FROM unnest(a) x)`: `array_transform(a, x -> f(x))`, which needs no
    // correlated subquery.
    if let ([from], None, None) = (select.from.as_slice(), &select.selection, &order_by)
        && let ast::TableFactor::UNNEST {
            alias: Some(alias),
            array_exprs,
            with_ordinality: false,
            ..
        } = &from.relation
        && let ([array], [column], true) = (
            array_exprs.as_slice(),
            alias.columns.as_slice(),
            from.joins.is_empty(),
        )
    {
        let lambda = Expr::Lambda(ast::LambdaFunction {
            params: ast::OneOrManyWithParens::One(ast::LambdaFunctionParameter {
                name: column.name.clone(),
                data_type: None,
            }),
            body: Box::new(element),
            syntax: ast::LambdaSyntax::Arrow,
        });
        return Some(call("array_transform", vec![array.clone(), lambda]));
    }
    let agg = ordered_aggregate("array_agg", element, order_by);
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
            if matches!(element.as_ref(), DataType::Custom(n, _)
                if n.to_string().eq_ignore_ascii_case("regtype"))
            {
                return Some(call("regtypearrayout", vec![inner.clone()]));
            }
            // `x::pg_catalog.int2[]`: resolve the element type.
            if let Some(t) = builtin_type(element) {
                **element = t;
            }
            return None;
        }
        _ => return None,
    };
    // A name (a string) is read into an oid; anything else is taken to be an oid to print.
    let is_input = match inner {
        Expr::Value(v) => matches!(
            v.value,
            Value::SingleQuotedString(_) | Value::Placeholder(_)
        ),
        Expr::Cast {
            data_type: DataType::Text | DataType::Varchar(_),
            ..
        } => true,
        Expr::Function(f) => function_name(f).eq_ignore_ascii_case("pg_get_serial_sequence"),
        _ => false,
    };
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

/// Whether `root` + `chain` is a subscript of an int2vector / oidvector column: `indkey[i]`
/// (root `indkey`) or `i.indkey[i]` (root `i`, then `.indkey`).
fn subscripts_vector(root: &Expr, chain: &[AccessExpr]) -> bool {
    match chain {
        [AccessExpr::Subscript(ast::Subscript::Index { .. })] => is_vector_column(root),
        [
            ..,
            AccessExpr::Dot(column),
            AccessExpr::Subscript(ast::Subscript::Index { .. }),
        ] => is_vector_column(column),
        _ => false,
    }
}

/// Whether `expr` names a catalog column of type int2vector or oidvector (0-based arrays).
fn is_vector_column(expr: &Expr) -> bool {
    const VECTOR_COLUMNS: &[&str] = &[
        "indkey",
        "indclass",
        "indcollation",
        "indoption",
        "proargtypes",
    ];
    let name = match expr {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => &i.value,
            None => return false,
        },
        _ => return false,
    };
    VECTOR_COLUMNS.contains(&name.to_ascii_lowercase().as_str())
}

/// Whether `expr` names a boolean column of a catalog table (`indisprimary`, `attnotnull` ...).
fn is_catalog_flag(expr: &Expr) -> bool {
    static FLAGS: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
        std::sync::LazyLock::new(|| {
            super::tables::PG_CATALOG_TABLES
                .iter()
                .flat_map(|t| t.columns.split(','))
                .filter_map(|c| c.trim().strip_suffix(" bool"))
                .collect()
        });
    let name = match expr {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => &i.value,
            None => return false,
        },
        _ => return false,
    };
    FLAGS.contains(name.as_str())
}

/// `'{a,b}'` (an array in Postgres's text form) as `ARRAY['a', 'b']`; numbers stay numbers.
fn array_literal(expr: &Expr) -> Option<Expr> {
    let Expr::Value(v) = expr else {
        return None;
    };
    let Value::SingleQuotedString(text) = &v.value else {
        return None;
    };
    let body = text.strip_prefix('{')?.strip_suffix('}')?;
    let elements = if body.is_empty() {
        Vec::new()
    } else {
        body.split(',')
            .map(|e| {
                let e = e.trim().trim_matches('"');
                if e.parse::<f64>().is_ok() {
                    number(e)
                } else {
                    string(e)
                }
            })
            .collect()
    };
    Some(Expr::Array(ast::Array {
        elem: elements,
        named: true,
    }))
}

pub(super) fn string(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
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

/// `name(element ORDER BY ...)`: a subquery's ORDER BY moved into the aggregate that replaces
/// its select list (`ORDER BY 1` names that one output column).
pub(super) fn ordered_aggregate(name: &str, element: Expr, order_by: Option<ast::OrderBy>) -> Expr {
    let mut aggregate = call(name, vec![element.clone()]);
    if let (
        Some(ast::OrderBy {
            kind: ast::OrderByKind::Expressions(exprs),
            ..
        }),
        Expr::Function(Function {
            args: FunctionArguments::List(list),
            ..
        }),
    ) = (order_by, &mut aggregate)
    {
        let exprs = exprs
            .into_iter()
            .map(|mut o| {
                if matches!(&o.expr, Expr::Value(v) if matches!(v.value, Value::Number(..))) {
                    o.expr = element.clone();
                }
                o
            })
            .collect();
        list.clauses = vec![ast::FunctionArgumentClause::OrderBy(exprs)];
    }
    aggregate
}

pub(super) fn call(name: &str, args: Vec<Expr>) -> Expr {
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
