//! How deeply a statement may nest, checked right after parsing and before anything recursive
//! walks it (DataFusion's planner and optimizer, expression evaluation, Display, Drop).
//!
//! sqlparser parses operator chains (`1 + 1 + …`, `a OR b OR …`, `x::int::int …`, `UNION ALL`
//! chains) in loops, so a statement of a few KB can build a tree a thousand levels deep. Every
//! later pass recurses once per level, and a stack overflow aborts the whole process, not just
//! the statement. Postgres refuses such statements with 54001; so does Weir, at a depth where
//! every later pass has ample stack left ([`crate::config::THREAD_STACK_BYTES`]).
//!
//! The check itself recurses, but it stops as soon as it passes the limit, so it never goes
//! deeper than the limit. A refused tree can still be far deeper than that; it is dropped
//! where the parser ran, which for a long statement is a thread with a stack sized to it
//! ([`super::parse::parse`]).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Visit, Visitor};

use crate::error::{ErrorKind, WeirError};

/// Deepest nesting of expressions, subqueries and set operations a statement may have, in
/// levels. Real queries stay far below it. Measured in the release build at the old 2 MiB
/// stack, 500 levels of `+` ran and 907 overflowed; [`crate::config::THREAD_STACK_BYTES`]
/// gives 1000 levels about 4× the stack they need.
pub const STATEMENT_NESTING_MAX: usize = 1000;

/// Deepest nesting of queries (scalar, IN and EXISTS subqueries, derived tables) a statement
/// may have, in levels. DataFusion's optimizer walks every subquery again at every level, so
/// its time grows about 1.7× per level: 16 levels plan in 0.3 s, 20 in 2.8 s, 24 in over 30 s.
pub const QUERY_NESTING_MAX: usize = 16;

/// Most dimensions an array may have, as in Postgres (MAXDIM).
pub const ARRAY_DIMENSIONS_MAX: usize = 6;

/// Deepest nesting of parentheses, subqueries and prefix operators the parser follows, in
/// levels (each parenthesis takes two): the parser recurses on these, with large frames.
pub const PARSE_NESTING_MAX: usize = 200;

/// The error for a statement nested deeper than the stack allows, as Postgres words it.
pub fn too_deep() -> WeirError {
    WeirError::new(ErrorKind::StackDepth, "stack depth limit exceeded").with_hint(format!(
        "a statement may nest at most {STATEMENT_NESTING_MAX} levels of expressions, \
         subqueries and set operations (a chain such as a + b + … or … UNION ALL … counts a \
         level per operator), and about {} levels of parentheses; split it, or use IN (...) \
         or a VALUES list for long lists",
        PARSE_NESTING_MAX / 2
    ))
}

/// Which limit a statement passed.
#[derive(Debug, PartialEq, Eq)]
enum Exceeded {
    Nesting,
    Queries,
    ArrayDimensions,
}

impl Exceeded {
    fn error(self) -> WeirError {
        match self {
            Exceeded::Nesting => too_deep(),
            Exceeded::Queries => WeirError::new(
                ErrorKind::ProgramLimitExceeded,
                format!("subqueries nest more than {QUERY_NESTING_MAX} levels deep"),
            )
            .with_hint("write the inner queries as views, or join them instead of nesting"),
            Exceeded::ArrayDimensions => WeirError::new(
                ErrorKind::ProgramLimitExceeded,
                format!(
                    "number of array dimensions ({}) exceeds the maximum allowed \
                     ({ARRAY_DIMENSIONS_MAX})",
                    ARRAY_DIMENSIONS_MAX + 1
                ),
            ),
        }
    }
}

/// Refuses `statement` if it nests past any of the limits above.
pub fn check(statement: &ast::Statement) -> Result<(), WeirError> {
    let mut depth = Depth::default();
    match statement.visit(&mut depth) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(exceeded) => Err(exceeded.error()),
    }
}

/// What is open on the way down; breaks past a limit.
#[derive(Default)]
struct Depth {
    /// Expressions, queries and set operations.
    levels: usize,
    queries: usize,
    arrays: usize,
}

impl Depth {
    fn enter(&mut self, levels: usize) -> ControlFlow<Exceeded> {
        self.levels += levels;
        if self.levels > STATEMENT_NESTING_MAX {
            ControlFlow::Break(Exceeded::Nesting)
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl Visitor for Depth {
    type Break = Exceeded;

    fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<Exceeded> {
        self.queries += 1;
        if self.queries > QUERY_NESTING_MAX {
            return ControlFlow::Break(Exceeded::Queries);
        }
        // The visit walks a query's set operations without a hook of its own, so their depth
        // is counted here, before the walk goes down them.
        let set_depth = set_depth(&query.body, STATEMENT_NESTING_MAX + 1)?;
        self.enter(1 + set_depth)
    }

    fn post_visit_query(&mut self, query: &ast::Query) -> ControlFlow<Exceeded> {
        // Recounted rather than remembered: it is shallow once the query got past pre-visit.
        let set_depth = set_depth(&query.body, STATEMENT_NESTING_MAX + 1)?;
        self.levels -= 1 + set_depth;
        self.queries -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &ast::Expr) -> ControlFlow<Exceeded> {
        if matches!(expr, ast::Expr::Array(_)) {
            self.arrays += 1;
            if self.arrays > ARRAY_DIMENSIONS_MAX {
                return ControlFlow::Break(Exceeded::ArrayDimensions);
            }
        }
        self.enter(1)
    }

    fn post_visit_expr(&mut self, expr: &ast::Expr) -> ControlFlow<Exceeded> {
        if matches!(expr, ast::Expr::Array(_)) {
            self.arrays -= 1;
        }
        self.levels -= 1;
        ControlFlow::Continue(())
    }
}

/// How many set operations nest in `body`, not counting into parenthesized queries (the
/// visitor counts those when it reaches them); breaks once past `budget`, so it never recurses
/// deeper than that.
fn set_depth(body: &ast::SetExpr, budget: usize) -> ControlFlow<Exceeded, usize> {
    let ast::SetExpr::SetOperation { left, right, .. } = body else {
        return ControlFlow::Continue(0);
    };
    if budget == 0 {
        return ControlFlow::Break(Exceeded::Nesting);
    }
    let deeper = set_depth(left, budget - 1)?.max(set_depth(right, budget - 1)?);
    ControlFlow::Continue(1 + deeper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn depth_ok(sql: &str) -> bool {
        exceeded(sql).is_none()
    }

    fn exceeded(sql: &str) -> Option<Exceeded> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        statements
            .iter()
            .find_map(|s| match s.visit(&mut Depth::default()) {
                ControlFlow::Break(e) => Some(e),
                ControlFlow::Continue(()) => None,
            })
    }

    #[test]
    fn subqueries_and_arrays_have_their_own_limits() {
        let nest = |n: usize| format!("SELECT {}1{}", "(SELECT ".repeat(n), ")".repeat(n));
        // The outer SELECT is a level too.
        assert_eq!(exceeded(&nest(QUERY_NESTING_MAX - 1)), None);
        assert_eq!(exceeded(&nest(QUERY_NESTING_MAX)), Some(Exceeded::Queries));
        let array = |n: usize| format!("SELECT {}1{}", "ARRAY[".repeat(n), "]".repeat(n));
        assert_eq!(exceeded(&array(ARRAY_DIMENSIONS_MAX)), None);
        assert_eq!(
            exceeded(&array(ARRAY_DIMENSIONS_MAX + 1)),
            Some(Exceeded::ArrayDimensions)
        );
        // Sibling subqueries and arrays do not add up.
        let siblings = vec!["(SELECT 1)"; 40].join(" + ");
        assert_eq!(exceeded(&format!("SELECT {siblings}")), None);
        let arrays = ["ARRAY[ARRAY[1]]"; 10].join(", ");
        assert_eq!(exceeded(&format!("SELECT ARRAY[{arrays}]")), None);
    }

    #[test]
    fn chains_count_a_level_per_operator() {
        let chain = |op: &str, n: usize| format!("SELECT 1{}", format!(" {op} 1").repeat(n));
        assert!(depth_ok(&chain("+", STATEMENT_NESTING_MAX - 10)));
        assert!(!depth_ok(&chain("+", STATEMENT_NESTING_MAX + 1)));
        assert!(!depth_ok(&chain("OR", STATEMENT_NESTING_MAX + 1)));
        assert!(!depth_ok(&format!(
            "SELECT 1{}",
            "::int".repeat(STATEMENT_NESTING_MAX + 1)
        )));
        let unions = " UNION ALL SELECT 1".repeat(STATEMENT_NESTING_MAX + 1);
        assert!(!depth_ok(&format!("SELECT 1{unions}")));
        assert!(!depth_ok(&format!(
            "CREATE MATERIALIZED VIEW v AS SELECT 1{unions}"
        )));
        assert!(!depth_ok(&format!("INSERT INTO t SELECT 1{unions}")));
    }

    #[test]
    fn wide_statements_are_not_deep() {
        let values = vec!["(1 + 1, 'a')"; 20_000].join(", ");
        assert!(depth_ok(&format!("INSERT INTO t VALUES {values}")));
        let list = vec!["1"; 20_000].join(", ");
        assert!(depth_ok(&format!("SELECT * FROM t WHERE x IN ({list})")));
        let whens = "WHEN x = 1 THEN 2 ".repeat(5_000);
        assert!(depth_ok(&format!("SELECT CASE {whens} END FROM t")));
        let unions = " UNION ALL SELECT 1".repeat(STATEMENT_NESTING_MAX / 2);
        assert!(depth_ok(&format!("SELECT 1{unions}")));
    }
}
