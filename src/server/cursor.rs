//! SQL cursors: `DECLARE name [BINARY] [NO SCROLL] CURSOR [WITH HOLD] FOR query`,
//! `FETCH [FORWARD | NEXT] [n | ALL] [FROM | IN] name`, `MOVE ...` and `CLOSE name | ALL`.
//!
//! A cursor's query runs once, when it is declared, and its rows are kept in the session
//! (Weir reads committed state, so the rows are the snapshot the query saw); FETCH hands them
//! out in order. Cursors are per session; one without HOLD closes at the end of the
//! transaction block that declared it, like in Postgres.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::sql::sqlparser::ast;
use pgwire::api::SessionExtensions;
use pgwire::error::{PgWireError, PgWireResult};

use super::pg_error;
use crate::sql::parse::normalize_ident;

/// Open cursors one session may hold at once.
pub const CURSORS_PER_SESSION_MAX: usize = 64;
/// Rows a cursor's query may produce (they are kept in memory until the cursor closes).
pub const CURSOR_ROWS_MAX: usize = 10_000_000;

/// SQLSTATE 34000.
const INVALID_CURSOR_NAME: &str = "34000";
/// SQLSTATE 42P03.
const DUPLICATE_CURSOR: &str = "42P03";
/// SQLSTATE 25P01.
const NO_ACTIVE_TRANSACTION: &str = "25P01";
/// SQLSTATE 54000.
const PROGRAM_LIMIT_EXCEEDED: &str = "54000";

/// One declared cursor: its rows and how far FETCH has read.
struct Cursor {
    rows: RecordBatch,
    position: usize,
    binary: bool,
    hold: bool,
}

/// The cursors of one session, kept in the connection's extensions.
#[derive(Default)]
pub struct Cursors {
    open: HashMap<String, Cursor>,
}

/// The session's cursor table.
pub fn of(ext: &SessionExtensions) -> Arc<Mutex<Cursors>> {
    ext.get_or_insert_with(|| Mutex::new(Cursors::default()))
}

/// A parsed DECLARE: the cursor's name, its options and its query.
pub struct Declare {
    pub name: String,
    pub binary: bool,
    pub hold: bool,
    pub query: Box<ast::Query>,
}

impl Declare {
    pub fn from_ast(stmts: &[ast::Declare]) -> PgWireResult<Declare> {
        let [d] = stmts else {
            return Err(pg_error("42601", "DECLARE declares one cursor at a time"));
        };
        let (Some(name), Some(query)) = (d.names.first(), d.for_query.clone()) else {
            return Err(pg_error("42601", "expected DECLARE name CURSOR FOR query"));
        };
        if d.scroll == Some(true) {
            return Err(pg_error(
                "0A000",
                "SCROLL cursors are not supported; cursors move forward only",
            ));
        }
        Ok(Declare {
            name: normalize_ident(name),
            binary: d.binary == Some(true),
            hold: d.hold == Some(true),
            query,
        })
    }

    /// Postgres refuses a cursor without HOLD outside a transaction block: it would close
    /// at once.
    pub fn check_transaction(&self, in_block: bool) -> PgWireResult<()> {
        if !self.hold && !in_block {
            return Err(pg_error(
                NO_ACTIVE_TRANSACTION,
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
        }
        Ok(())
    }
}

/// How many rows a FETCH or MOVE asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Rows(usize),
    All,
}

impl Count {
    /// The count of a FETCH direction; backward directions are refused (cursors are NO SCROLL).
    pub fn from_direction(direction: &ast::FetchDirection) -> PgWireResult<Count> {
        use ast::FetchDirection as D;
        let number = |v: &ast::ValueWithSpan| -> PgWireResult<i64> {
            match &v.value {
                ast::Value::Number(n, _) => n
                    .parse::<i64>()
                    .map_err(|_| pg_error("22023", format!("invalid FETCH count {n}"))),
                other => Err(pg_error("42601", format!("invalid FETCH count {other}"))),
            }
        };
        let counted = |n: i64| -> PgWireResult<Count> {
            if n < 0 {
                return Err(backward());
            }
            Ok(Count::Rows(n as usize))
        };
        match direction {
            D::Next => Ok(Count::Rows(1)),
            D::All | D::ForwardAll => Ok(Count::All),
            D::Count { limit } => counted(number(limit)?),
            D::Forward { limit } => match limit {
                Some(l) => counted(number(l)?),
                None => Ok(Count::Rows(1)),
            },
            _ => Err(backward()),
        }
    }
}

fn backward() -> PgWireError {
    pg_error("55000", "cursor can only scan forward")
}

fn missing(name: &str) -> PgWireError {
    pg_error(
        INVALID_CURSOR_NAME,
        format!("cursor \"{name}\" does not exist"),
    )
}

impl Cursors {
    /// Opens a cursor over the rows its query produced.
    pub fn declare(
        &mut self,
        declare: &Declare,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> PgWireResult<()> {
        if self.open.contains_key(&declare.name) {
            return Err(pg_error(
                DUPLICATE_CURSOR,
                format!("cursor \"{}\" already exists", declare.name),
            ));
        }
        if self.open.len() >= CURSORS_PER_SESSION_MAX {
            return Err(pg_error(
                PROGRAM_LIMIT_EXCEEDED,
                format!("a session may have at most {CURSORS_PER_SESSION_MAX} open cursors"),
            ));
        }
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        if total > CURSOR_ROWS_MAX {
            return Err(pg_error(
                PROGRAM_LIMIT_EXCEEDED,
                format!("a cursor may hold at most {CURSOR_ROWS_MAX} rows; the query gave {total}"),
            ));
        }
        let rows = concat_batches(schema, batches)
            .map_err(|e| pg_error("XX000", format!("cannot keep cursor rows: {e}")))?;
        self.open.insert(
            declare.name.clone(),
            Cursor {
                rows,
                position: 0,
                binary: declare.binary,
                hold: declare.hold,
            },
        );
        Ok(())
    }

    /// The next `count` rows of cursor `name` (fewer at the end), and whether it is BINARY.
    pub fn fetch(&mut self, name: &str, count: Count) -> PgWireResult<(RecordBatch, bool)> {
        let cursor = self.open.get_mut(name).ok_or_else(|| missing(name))?;
        let left = cursor.rows.num_rows() - cursor.position;
        let n = match count {
            Count::All => left,
            Count::Rows(n) => n.min(left),
        };
        let rows = cursor.rows.slice(cursor.position, n);
        cursor.position += n;
        Ok((rows, cursor.binary))
    }

    /// The result columns of cursor `name`, for Describe.
    pub fn schema(&self, name: &str) -> Option<SchemaRef> {
        self.open.get(name).map(|c| c.rows.schema())
    }

    pub fn close(&mut self, name: &str) -> PgWireResult<()> {
        self.open
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| missing(name))
    }

    pub fn close_all(&mut self) {
        self.open.clear();
    }

    /// At the end of a transaction block: cursors without HOLD close.
    pub fn end_transaction(&mut self) {
        self.open.retain(|_, c| c.hold);
    }
}

/// The name a FETCH / CLOSE statement names, as Postgres folds it.
pub fn name(ident: &ast::Ident) -> String {
    normalize_ident(ident)
}
