//! COPY ... TO STDOUT (and psql's `\copy ... to 'file'`): `COPY relation [(columns)]` or
//! `COPY (query)`, in text format (tab-separated, backslash escapes, `\N` for NULL) or CSV,
//! with an optional header line. The rows are read like a SELECT, then streamed to the
//! client as one CopyData message per line.

use std::fmt::Debug;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::sql::sqlparser::ast::{
    self, CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget,
};
use futures::{Sink, SinkExt};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};

use super::encode::Column;
use super::pg_error;
use crate::sql::parse::{self, Statement};

/// How COPY TO writes rows.
#[derive(Debug, Clone, PartialEq)]
pub struct OutFormat {
    csv: bool,
    header: bool,
    delimiter: char,
    null: String,
}

/// What to copy and how.
pub struct CopyOut {
    /// The SELECT that produces the rows.
    pub query: Statement,
    pub format: OutFormat,
}

/// Is this statement a COPY ... TO STDOUT?
pub fn is_copy_out(stmt: &ast::Statement) -> bool {
    matches!(stmt, ast::Statement::Copy { to: true, .. })
}

/// Checks a COPY TO statement: the target must be STDOUT (the server writes no files).
pub fn plan(stmt: &ast::Statement) -> PgWireResult<CopyOut> {
    let ast::Statement::Copy {
        source,
        target,
        options,
        legacy_options,
        ..
    } = stmt
    else {
        return Err(pg_error("XX000", "not a COPY"));
    };
    if !matches!(target, CopyTarget::Stdout) {
        return Err(pg_error(
            "0A000",
            "COPY TO writes to STDOUT only; use psql's \\copy to write a client-side file",
        ));
    }
    let sql = match source {
        CopySource::Table {
            table_name,
            columns,
        } => {
            let list = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("SELECT {list} FROM {table_name}")
        }
        CopySource::Query(query) => query.to_string(),
    };
    let query = parse::parse(&sql)
        .map_err(super::wire_error)?
        .pop()
        .ok_or_else(|| pg_error("42601", "COPY needs a relation or a query"))?;
    Ok(CopyOut {
        query,
        format: out_format(options, legacy_options)?,
    })
}

fn out_format(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> PgWireResult<OutFormat> {
    let mut csv = false;
    let mut header = false;
    let mut delimiter = None;
    let mut null = None;
    let unsupported = |o: &dyn std::fmt::Display| {
        pg_error("0A000", format!("COPY TO option {o} is not supported"))
    };
    for option in options {
        match option {
            CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                "csv" => csv = true,
                "text" => csv = false,
                other => {
                    return Err(pg_error(
                        "0A000",
                        format!("COPY format \"{other}\" is not supported; use text or csv"),
                    ));
                }
            },
            CopyOption::Header(h) => header = *h,
            CopyOption::Delimiter(d) => delimiter = Some(*d),
            CopyOption::Null(n) => null = Some(n.clone()),
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            other => return Err(unsupported(other)),
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Csv(csv_options) => {
                csv = true;
                for o in csv_options {
                    match o {
                        CopyLegacyCsvOption::Header => header = true,
                        other => return Err(unsupported(other)),
                    }
                }
            }
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Delimiter(d) => delimiter = Some(*d),
            CopyLegacyOption::Null(n) => null = Some(n.clone()),
            other => return Err(unsupported(other)),
        }
    }
    let delimiter = delimiter.unwrap_or(if csv { ',' } else { '\t' });
    if matches!(delimiter, '\n' | '\r' | '\\' | '"') {
        return Err(pg_error(
            "22023",
            "COPY delimiter cannot be newline, backslash or quote",
        ));
    }
    Ok(OutFormat {
        csv,
        header,
        delimiter,
        null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
    })
}

impl OutFormat {
    /// One field: CSV quotes what needs it; text escapes backslashes, delimiters and line ends.
    fn field(&self, value: Option<&str>, line: &mut String) {
        let Some(v) = value else {
            line.push_str(&self.null);
            return;
        };
        if self.csv {
            let quote = v.is_empty()
                || v == self.null
                || v == "\\."
                || v.contains([self.delimiter, '"', '\n', '\r']);
            if quote {
                line.push('"');
                line.push_str(&v.replace('"', "\"\""));
                line.push('"');
            } else {
                line.push_str(v);
            }
            return;
        }
        for c in v.chars() {
            match c {
                '\\' => line.push_str("\\\\"),
                '\n' => line.push_str("\\n"),
                '\r' => line.push_str("\\r"),
                '\t' if self.delimiter == '\t' => line.push_str("\\t"),
                '\u{8}' => line.push_str("\\b"),
                '\u{c}' => line.push_str("\\f"),
                '\u{b}' => line.push_str("\\v"),
                c if c == self.delimiter => {
                    line.push('\\');
                    line.push(c);
                }
                c => line.push(c),
            }
        }
    }

    /// The lines of a result: the header (if asked for), then one line per row.
    pub fn lines(&self, schema: &SchemaRef, batches: &[RecordBatch]) -> PgWireResult<Vec<Bytes>> {
        let mut out = Vec::new();
        let mut line = String::new();
        let delimiter = self.delimiter.to_string();
        if self.header {
            for (i, f) in schema.fields().iter().enumerate() {
                if i > 0 {
                    line.push_str(&delimiter);
                }
                self.field(Some(&crate::db::pg_column_name(f.name())), &mut line);
            }
            line.push('\n');
            out.push(Bytes::from(std::mem::take(&mut line)));
        }
        for batch in batches {
            let columns: Vec<Column> = batch
                .columns()
                .iter()
                .map(Column::new)
                .collect::<crate::error::Result<_>>()
                .map_err(super::wire_error)?;
            for row in 0..batch.num_rows() {
                for (i, c) in columns.iter().enumerate() {
                    if i > 0 {
                        line.push_str(&delimiter);
                    }
                    self.field(c.text(row).as_deref(), &mut line);
                }
                line.push('\n');
                out.push(Bytes::from(std::mem::take(&mut line)));
            }
        }
        Ok(out)
    }
}

/// Sends a result as COPY data: CopyOutResponse, one CopyData per line, CopyDone. Returns the
/// number of rows (the header line is not one).
pub async fn send<C>(
    client: &mut C,
    format: &OutFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> PgWireResult<usize>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let lines = format.lines(schema, batches)?;
    let columns = schema.fields().len();
    client
        .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            0,
            columns as i16,
            vec![0; columns],
        )))
        .await?;
    let rows = lines.len() - usize::from(format.header);
    for line in lines {
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(line)))
            .await?;
    }
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(csv: bool) -> OutFormat {
        OutFormat {
            csv,
            header: false,
            delimiter: if csv { ',' } else { '\t' },
            null: if csv { String::new() } else { "\\N".into() },
        }
    }

    #[test]
    fn text_fields_escape_like_postgres() {
        let mut line = String::new();
        format(false).field(Some("a\tb\nc\\d"), &mut line);
        assert_eq!(line, "a\\tb\\nc\\\\d");
        line.clear();
        format(false).field(None, &mut line);
        assert_eq!(line, "\\N");
    }

    #[test]
    fn csv_fields_quote_when_needed() {
        let f = format(true);
        let mut line = String::new();
        for v in [
            Some("plain"),
            Some("a,b"),
            Some("say \"hi\""),
            Some(""),
            None,
        ] {
            f.field(v, &mut line);
            line.push('|');
        }
        assert_eq!(line, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"\"||");
    }
}
