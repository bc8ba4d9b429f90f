//! COPY ... FROM STDIN (and psql's `\copy`): the data arrives in CopyData messages, is
//! buffered per connection, and on CopyDone is parsed and written in one durable append —
//! all of it or, on any bad value, none of it. Inside a transaction block the rows wait for COMMIT.

use std::fmt::Debug;

use async_trait::async_trait;
use datafusion::sql::sqlparser::ast::{self, CopyLegacyOption, CopyOption, CopySource, CopyTarget};
use futures::{Sink, SinkExt};
use pgwire::api::ClientInfo;
use pgwire::api::copy::CopyHandler;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::response::TransactionStatus;

use super::{Handler, pg_tag, wire_error};
use crate::catalog::Entry;
use crate::db::{Database, Tag, object_name};
use crate::error::{Result, WeirError};
use crate::formats::copy::{CopyFormat, parse_copy};

/// A COPY FROM STDIN waiting for its data.
pub struct PendingCopy {
    target: Entry,
    format: CopyFormat,
    data: Vec<u8>,
}

impl PendingCopy {
    pub fn columns(&self) -> usize {
        self.target.schema().fields().len()
    }
}

/// Checks a COPY statement and prepares to receive its data.
pub fn start(db: &Database, stmt: &ast::Statement) -> Result<PendingCopy> {
    let ast::Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = stmt
    else {
        return Err(WeirError::internal("not a COPY"));
    };
    if *to || !matches!(target, CopyTarget::Stdin) {
        return Err(WeirError::unsupported(
            "only COPY ... FROM STDIN is supported",
        ));
    }
    let CopySource::Table {
        table_name,
        columns,
    } = source
    else {
        return Err(WeirError::unsupported("COPY (query) is not supported"));
    };
    let target = db.write_target(&object_name(table_name)?)?;
    db.require_write(&target, crate::auth::privileges::Privilege::Insert)?;
    let schema = target.schema();
    let all: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let listed: Vec<String> = columns
        .iter()
        .map(crate::sql::parse::normalize_ident)
        .collect();
    if !listed.is_empty() && listed != all {
        return Err(WeirError::unsupported(
            "COPY with a column list other than all columns in order is not supported",
        ));
    }
    let mut csv = false;
    let mut header = false;
    let mut delimiter = None;
    let mut null = None;
    for option in options {
        match option {
            CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                "csv" => csv = true,
                "text" => csv = false,
                other => {
                    return Err(WeirError::unsupported(format!(
                        "COPY format {other} is not supported"
                    )));
                }
            },
            CopyOption::Header(h) => header = *h,
            CopyOption::Delimiter(d) => delimiter = Some(*d),
            CopyOption::Null(n) => null = Some(n.clone()),
            other => {
                return Err(WeirError::unsupported(format!(
                    "COPY option {other} is not supported"
                )));
            }
        }
    }
    for option in legacy_options {
        match option {
            CopyLegacyOption::Csv(_) => csv = true,
            CopyLegacyOption::Delimiter(d) => delimiter = Some(*d),
            CopyLegacyOption::Null(n) => null = Some(n.clone()),
            other => {
                return Err(WeirError::unsupported(format!(
                    "COPY option {other} is not supported"
                )));
            }
        }
    }
    let format = if csv {
        CopyFormat::Csv {
            delimiter: delimiter.unwrap_or(','),
            null: null.unwrap_or_default(),
            header,
        }
    } else {
        CopyFormat::Text {
            delimiter: delimiter.unwrap_or('\t'),
            null: null.unwrap_or_else(|| "\\N".into()),
        }
    };
    Ok(PendingCopy {
        target,
        format,
        data: Vec::new(),
    })
}

#[async_trait]
impl CopyHandler for Handler {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut copies = self.copies.lock().expect("copies lock");
        if let Some(pending) = copies.get_mut(&client.socket_addr()) {
            pending.data.extend_from_slice(&copy_data.data);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let pending = self
            .copies
            .lock()
            .expect("copies lock")
            .remove(&client.socket_addr());
        let Some(pending) = pending else {
            return Err(wire_error(WeirError::internal("no COPY in progress")));
        };
        let batch = parse_copy(&pending.format, &pending.data, &pending.target.schema())
            .map_err(wire_error)?;
        let n = if client.transaction_status() == TransactionStatus::Idle {
            self.db
                .write_rows(&pending.target, &batch)
                .await
                .map_err(wire_error)?
        } else {
            // Inside a transaction block: written at COMMIT (see transaction.rs).
            let n = batch.num_rows();
            super::transaction::of(client.session_extensions())
                .lock()
                .map_err(|_| super::poisoned())?
                .buffer(pending.target, batch)?;
            n
        };
        client
            .send(PgWireBackendMessage::CommandComplete(
                pg_tag(&Tag::with_rows("COPY", n)).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.copies
            .lock()
            .expect("copies lock")
            .remove(&client.socket_addr());
        wire_error(WeirError::new(
            crate::error::ErrorKind::Data,
            format!("COPY from stdin failed: {}", fail.message),
        ))
    }
}
