//! Writes inside a transaction block (BEGIN ... COMMIT / ROLLBACK). An INSERT or COPY FROM in a
//! block is planned and checked when it runs, so its errors and row count come at once, but its
//! rows stay in the session: COMMIT writes them in one durable append, ROLLBACK (or COMMIT of a
//! failed block, or the connection closing) drops them, so ROLLBACK really undoes them. A block
//! writes to one relation, which keeps COMMIT atomic: one append is all or nothing, across
//! crashes too. UPDATE, DELETE and DDL are refused inside a block (25001): they take effect when
//! they run and could not be rolled back, and so is ROLLBACK TO SAVEPOINT once rows are pending.
//! Reads inside a block do not see its pending rows.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::sql::sqlparser::ast;
use pgwire::api::SessionExtensions;
use pgwire::error::PgWireResult;

use super::pg_error;
use crate::catalog::Entry;
use crate::sql::parse::Statement;

/// The rows a transaction block will write at COMMIT.
#[derive(Default)]
pub struct Transaction {
    pending: Option<(Entry, Vec<RecordBatch>)>,
}

/// The session's transaction state (created on first use).
pub fn of(ext: &SessionExtensions) -> Arc<Mutex<Transaction>> {
    ext.get_or_insert_with(|| Mutex::new(Transaction::default()))
}

impl Transaction {
    /// Keeps `batch` (rows of `target`'s schema) for COMMIT.
    pub fn buffer(&mut self, target: Entry, batch: RecordBatch) -> PgWireResult<()> {
        match &mut self.pending {
            None => self.pending = Some((target, vec![batch])),
            Some((held, batches)) if held.item().id == target.item().id => batches.push(batch),
            Some((held, _)) => {
                return Err(pg_error(
                    "0A000",
                    format!(
                        "a transaction block writes to one relation: it already has rows for \
                         \"{}\", so it cannot take rows for \"{}\" too; COMMIT first",
                        held.item().name,
                        target.item().name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The rows to write at COMMIT, as one batch, and their relation; the block is emptied.
    pub fn take(&mut self) -> PgWireResult<Option<(Entry, RecordBatch)>> {
        let Some((target, batches)) = self.pending.take() else {
            return Ok(None);
        };
        let batch =
            concat_batches(&target.schema(), &batches).map_err(|e| super::wire_error(e.into()))?;
        Ok(Some((target, batch)))
    }

    /// Whether the block has rows waiting for COMMIT.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// ROLLBACK: the pending rows are dropped.
    pub fn discard(&mut self) {
        self.pending = None;
    }
}

/// The refusal for a statement that cannot run inside a transaction block (it would take effect
/// at once and not be undone by ROLLBACK); None for statements that may.
pub fn refusal(stmt: &Statement) -> Option<&'static str> {
    match stmt {
        Statement::CreateTopic { .. } => Some("CREATE TOPIC"),
        Statement::DropTopic { .. } => Some("DROP TOPIC"),
        Statement::CreateSource(_) => Some("CREATE SOURCE"),
        Statement::CreateSink(_) => Some("CREATE SINK"),
        Statement::DropSink { .. } => Some("DROP SINK"),
        Statement::DropSource { .. } => Some("DROP SOURCE"),
        Statement::Role(_) => Some("a role statement"),
        Statement::Grant(_) => Some("GRANT / REVOKE"),
        Statement::Owner(_) => Some("a change of owner"),
        Statement::Standard(s) => match s.as_ref() {
            ast::Statement::Update { .. } => Some("UPDATE"),
            ast::Statement::Delete { .. } => Some("DELETE"),
            ast::Statement::CreateTable { .. } => Some("CREATE TABLE"),
            ast::Statement::CreateView { .. } => Some("CREATE MATERIALIZED VIEW"),
            ast::Statement::Drop { .. } => Some("DROP"),
            ast::Statement::AlterTable { .. } => Some("ALTER TABLE"),
            _ => None,
        },
        _ => None,
    }
}
