//! HTTP ingest: `POST /v1/sources/{name}` appends the body's rows to a source (or a table),
//! through the same write as `INSERT INTO name VALUES ...`: the rows become one Arrow batch of
//! the relation's schema, [`Database::write_rows`] encodes them in the source's format and
//! appends them to its topic durably (fsync), and only then is the request answered
//! `200 {"rows": N}`.
//!
//! Bodies, by `Content-Type`:
//! - `application/json`: a JSON array of objects (or one object), fields by column name;
//! - `application/x-ndjson`: one JSON object per line (blank lines are ignored);
//! - `text/csv`: a header row naming columns, then one row per line, Postgres CSV rules (an
//!   unquoted empty field is NULL, `""` the empty string).
//!
//! JSON rows are decoded by the same decoder a JSON source reads its topic with, so a row that
//! is accepted here is never skipped later; CSV fields are cast from text as COPY does. Every
//! row is checked before anything is written: a bad row rejects the whole request with
//! `400 {"error": ..., "row": i, "field": ...}` (row 0-based among the body's rows), and nothing
//! of it is appended.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use futures::StreamExt;
use serde_json::{Map, Value};

use super::HttpState;
use crate::catalog::{Entry, TableDef};
use crate::config::HTTP_INGEST_BODY_BYTES_MAX;
use crate::db::Database;
use crate::error::{ErrorKind, WeirError};
use crate::formats::{self, Format};

/// How the body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    JsonArray,
    Ndjson,
    Csv,
}

impl BodyFormat {
    /// The format a `Content-Type` value names (parameters such as `charset` are ignored).
    pub fn from_content_type(value: &str) -> Option<BodyFormat> {
        let mime = value.split(';').next().unwrap_or("").trim();
        match mime.to_ascii_lowercase().as_str() {
            "application/json" => Some(BodyFormat::JsonArray),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                Some(BodyFormat::Ndjson)
            }
            "text/csv" => Some(BodyFormat::Csv),
            _ => None,
        }
    }
}

/// A refused request: its status and the JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub error: String,
    /// The bad row, 0-based among the body's rows.
    pub row: Option<usize>,
    /// The bad field (column name).
    pub field: Option<String>,
}

impl Rejection {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Rejection {
        Rejection {
            status,
            error: error.into(),
            row: None,
            field: None,
        }
    }

    fn bad(error: impl Into<String>) -> Rejection {
        Rejection::new(StatusCode::BAD_REQUEST, error)
    }

    fn at(mut self, row: usize, field: Option<&str>) -> Rejection {
        self.row = Some(row);
        self.field = field.map(str::to_string);
        self
    }

    /// A write that failed: the client's fault (a constraint, a wrong object) is 400, the
    /// server's (I/O, an internal error) 500.
    fn from_write(e: &WeirError) -> Rejection {
        let status = match e.kind {
            ErrorKind::UndefinedTable => StatusCode::NOT_FOUND,
            ErrorKind::InsufficientPrivilege => StatusCode::FORBIDDEN,
            ErrorKind::Internal | ErrorKind::Io => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut message = e.message.clone();
        if let Some(hint) = &e.hint {
            message = format!("{message} (hint: {hint})");
        }
        Rejection::new(status, message)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.error,
            "row": self.row,
            "field": self.field,
        });
        json_response(self.status, &body)
    }
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /v1/sources/{name}`.
pub async fn ingest(
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match ingest_rows(state.db.clone(), &name, &headers, body).await {
        Ok(rows) => {
            *state
                .ingested
                .lock()
                .expect("ingest counter lock")
                .entry(name)
                .or_default() += rows as u64;
            json_response(StatusCode::OK, &serde_json::json!({ "rows": rows }))
        }
        Err(rejection) => rejection.into_response(),
    }
}

async fn ingest_rows(
    db: Arc<Database>,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<usize, Rejection> {
    let target = db
        .write_target(name)
        .and_then(|target| {
            db.require_write(&target, crate::auth::privileges::Privilege::Insert)?;
            Ok(target)
        })
        .map_err(|e| Rejection::from_write(&e))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = BodyFormat::from_content_type(content_type).ok_or_else(|| {
        Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type \"{content_type}\": use application/json (an array \
                 of objects), application/x-ndjson (one object per line) or text/csv (a header \
                 row, then rows)"
            ),
        )
    })?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > HTTP_INGEST_BODY_BYTES_MAX as u64) {
        return Err(too_large(HTTP_INGEST_BODY_BYTES_MAX));
    }
    let bytes = read_body(body, HTTP_INGEST_BODY_BYTES_MAX).await?;
    let batch = parse_rows(format, &bytes, &target.schema())?;
    if let Entry::Table(table) = &target {
        check_table_rows(table, &batch)?;
    }
    // The write runs in its own task: a client that hangs up mid-request stops the wait, never
    // a write half done.
    let task = tokio::spawn(async move { db.write_rows(&target, &batch).await });
    match task.await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(Rejection::from_write(&e)),
        Err(e) => Err(Rejection::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("write task failed: {e}"),
        )),
    }
}

/// A table's rules, with the row and column that break one: a primary key column holds no
/// NULL, then the columns' own checks (NOT NULL, VARCHAR(n)). (The write checks them again, and
/// duplicate keys, which it names by value.)
fn check_table_rows(table: &TableDef, batch: &RecordBatch) -> Result<(), Rejection> {
    let name = &table.item.name;
    for &i in &table.primary_key {
        let column = batch.column(i);
        if let Some(row) = (0..column.len()).find(|&r| column.is_null(r)) {
            let field = table.schema.field(i).name();
            return Err(Rejection::bad(format!(
                "null value in column \"{field}\" of relation \"{name}\" violates not-null \
                 constraint (it is the primary key)"
            ))
            .at(row, Some(field)));
        }
    }
    match table.checks.first_violation(name, batch) {
        Some(v) => Err(Rejection::from_write(&v.error).at(v.row, Some(&v.column))),
        None => Ok(()),
    }
}

fn too_large(limit_bytes: usize) -> Rejection {
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body is larger than {limit_bytes} bytes; send the rows in several requests"
        ),
    )
}

/// The whole body, refused with 413 once it passes `limit_bytes` (before reading further).
async fn read_body(body: Body, limit_bytes: usize) -> Result<Vec<u8>, Rejection> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Rejection::bad(format!("could not read the request body: {e}")))?;
        if out.len() + chunk.len() > limit_bytes {
            return Err(too_large(limit_bytes));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The body's rows as one batch of `schema`, every row and field checked.
pub fn parse_rows(
    format: BodyFormat,
    body: &[u8],
    schema: &SchemaRef,
) -> Result<RecordBatch, Rejection> {
    match format {
        BodyFormat::JsonArray => json_rows(json_array(body)?, schema),
        BodyFormat::Ndjson => json_rows(ndjson(body)?, schema),
        BodyFormat::Csv => csv_rows(body, schema),
    }
}

fn json_array(body: &[u8]) -> Result<Vec<Value>, Rejection> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(vec![]);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(rows)) => Ok(rows),
        Ok(row @ Value::Object(_)) => Ok(vec![row]),
        Ok(_) => Err(Rejection::bad(
            "expected a JSON array of objects (or one object)",
        )),
        Err(e) => Err(Rejection::bad(format!("invalid JSON: {e}"))),
    }
}

fn ndjson(body: &[u8]) -> Result<Vec<Value>, Rejection> {
    body.split(|&b| b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .enumerate()
        .map(|(row, line)| {
            serde_json::from_slice(line)
                .map_err(|e| Rejection::bad(format!("invalid JSON: {e}")).at(row, None))
        })
        .collect()
}

/// JSON rows → a batch, decoded as a JSON source decodes its records.
fn json_rows(rows: Vec<Value>, schema: &SchemaRef) -> Result<RecordBatch, Rejection> {
    let mut records = Vec::with_capacity(rows.len());
    for (row, value) in rows.iter().enumerate() {
        let Value::Object(object) = value else {
            return Err(Rejection::bad("a row must be a JSON object").at(row, None));
        };
        if let Some(unknown) = object.keys().find(|k| schema.index_of(k).is_err()) {
            return Err(
                Rejection::bad(format!("column \"{unknown}\" does not exist"))
                    .at(row, Some(unknown)),
            );
        }
        records.push(value.to_string().into_bytes());
    }
    let values: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let decoded = formats::decode_records(Format::Json, schema, &values)
        .map_err(|e| Rejection::bad(e.message))?;
    if decoded.skipped == 0 {
        return Ok(decoded.batch);
    }
    // The first row that did not decode, and which of its fields is at fault.
    let row = (0..rows.len())
        .zip(
            decoded
                .kept
                .iter()
                .copied()
                .chain(std::iter::repeat(usize::MAX)),
        )
        .find(|(i, kept)| i != kept)
        .map_or(0, |(i, _)| i);
    let Value::Object(object) = &rows[row] else {
        unreachable!("every row was checked to be an object");
    };
    Err(bad_json_field(object, schema).at_row(row))
}

/// Why one JSON object does not decode: the first field that fails on its own.
fn bad_json_field(object: &Map<String, Value>, schema: &SchemaRef) -> Rejection {
    for field in schema.fields() {
        let value = object.get(field.name()).unwrap_or(&Value::Null);
        if value.is_null() {
            if !field.is_nullable() {
                return Rejection::bad(format!(
                    "null value in column \"{}\" violates not-null constraint",
                    field.name()
                ))
                .with_field(field.name());
            }
            continue;
        }
        let one = Arc::new(Schema::new(vec![field.as_ref().clone()]));
        let record = serde_json::json!({ field.name(): value }).to_string();
        let fits = formats::decode_records(Format::Json, &one, &[record.as_bytes()])
            .is_ok_and(|d| d.skipped == 0);
        if !fits {
            return Rejection::bad(format!(
                "invalid value for column \"{}\" of type {}: {value}",
                field.name(),
                field.data_type()
            ))
            .with_field(field.name());
        }
    }
    Rejection::bad("row does not decode")
}

impl Rejection {
    fn with_field(mut self, field: &str) -> Rejection {
        self.field = Some(field.to_string());
        self
    }

    fn at_row(mut self, row: usize) -> Rejection {
        self.row = Some(row);
        self
    }
}

/// CSV with a header row → a batch; columns the header does not name are NULL.
fn csv_rows(body: &[u8], schema: &SchemaRef) -> Result<RecordBatch, Rejection> {
    let text =
        std::str::from_utf8(body).map_err(|e| Rejection::bad(format!("CSV is not UTF-8: {e}")))?;
    let mut records = formats::csv::parse_records(text, ',', "")
        .map_err(|e| Rejection::bad(e.message))?
        .into_iter();
    let Some(header) = records.next() else {
        return Ok(RecordBatch::new_empty(schema.clone()));
    };
    // Position in the header → column of the schema.
    let mut columns = Vec::with_capacity(header.len());
    for name in &header {
        let name = name.as_deref().unwrap_or("");
        let i = schema.index_of(name).map_err(|_| {
            Rejection::bad(format!(
                "header names column \"{name}\", which does not exist"
            ))
            .with_field(name)
        })?;
        if columns.contains(&i) {
            return Err(
                Rejection::bad(format!("header names column \"{name}\" twice")).with_field(name),
            );
        }
        columns.push(i);
    }
    let mut values: Vec<Vec<Option<String>>> = vec![Vec::new(); schema.fields().len()];
    for (row, record) in records.enumerate() {
        if record.len() != columns.len() {
            return Err(Rejection::bad(format!(
                "expected {} fields (as in the header), found {}",
                columns.len(),
                record.len()
            ))
            .at(row, None));
        }
        for column in values.iter_mut() {
            column.push(None);
        }
        for (&i, value) in columns.iter().zip(record) {
            values[i][row] = value;
        }
    }
    let arrays = schema
        .fields()
        .iter()
        .zip(values)
        .map(|(field, column)| cast_column(field, column))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Rejection::bad(e.to_string()))
}

/// One column of text fields cast to its type (as COPY does); on failure, the first bad row.
fn cast_column(field: &Field, column: Vec<Option<String>>) -> Result<ArrayRef, Rejection> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = |values: &[Option<String>]| {
        let text: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
        cast_with_options(&text, field.data_type(), &options)
    };
    if !field.is_nullable()
        && let Some(row) = column.iter().position(Option::is_none)
    {
        return Err(Rejection::bad(format!(
            "null value in column \"{}\" violates not-null constraint",
            field.name()
        ))
        .at(row, Some(field.name())));
    }
    cast(&column).map_err(|_| {
        let row = (0..column.len())
            .find(|&r| cast(&column[r..=r]).is_err())
            .unwrap_or(0);
        Rejection::bad(format!(
            "invalid value for column \"{}\" of type {}: \"{}\"",
            field.name(),
            field.data_type(),
            column[row].as_deref().unwrap_or("")
        ))
        .at(row, Some(field.name()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Int64Type};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn ids(batch: &RecordBatch) -> Vec<Option<i64>> {
        batch.column(0).as_primitive::<Int64Type>().iter().collect()
    }

    #[test]
    fn the_three_formats_give_the_same_rows() {
        let json = br#"[{"id": 1, "name": "a"}, {"id": 2}]"#;
        let ndjson = b"{\"id\": 1, \"name\": \"a\"}\n\n{\"id\": 2}\n";
        let csv = b"name,id\na,1\n,2\n";
        for (format, body) in [
            (BodyFormat::JsonArray, &json[..]),
            (BodyFormat::Ndjson, &ndjson[..]),
            (BodyFormat::Csv, &csv[..]),
        ] {
            let batch = parse_rows(format, body, &schema()).unwrap();
            assert_eq!(ids(&batch), vec![Some(1), Some(2)], "{format:?}");
            let names = batch.column(1).as_string::<i32>();
            assert_eq!(names.value(0), "a");
            assert!(names.is_null(1), "{format:?}");
        }
    }

    #[test]
    fn a_bad_row_is_named_with_its_field() {
        let bad = |format, body: &[u8]| parse_rows(format, body, &schema()).unwrap_err();
        let r = bad(BodyFormat::JsonArray, br#"[{"id": 1}, {"id": "x"}]"#);
        assert_eq!((r.row, r.field.as_deref()), (Some(1), Some("id")));
        let r = bad(BodyFormat::JsonArray, br#"[{"id": 1}, {"idd": 2}]"#);
        assert_eq!((r.row, r.field.as_deref()), (Some(1), Some("idd")));
        let r = bad(BodyFormat::JsonArray, br#"[{"id": 1}, 7]"#);
        assert_eq!((r.row, r.field), (Some(1), None));
        let r = bad(BodyFormat::Ndjson, b"{\"id\": 1}\n{\"id\": 2\n");
        assert_eq!(r.row, Some(1));
        let r = bad(BodyFormat::Csv, b"id,name\n1,a\n2,b\nzz,c\n");
        assert_eq!((r.row, r.field.as_deref()), (Some(2), Some("id")));
        let r = bad(BodyFormat::Csv, b"id,nme\n1,a\n");
        assert_eq!((r.row, r.field.as_deref()), (None, Some("nme")));
        let r = bad(BodyFormat::Csv, b"id,name\n1\n");
        assert_eq!(r.row, Some(0));
        assert_eq!(
            bad(BodyFormat::JsonArray, b"{").status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn a_not_null_column_needs_a_value() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        for (format, body, row) in [
            (
                BodyFormat::JsonArray,
                &br#"[{"id": 1}, {"name": "b"}]"#[..],
                1,
            ),
            (BodyFormat::Csv, &b"id,name\n1,a\n,b\n"[..], 1),
            (BodyFormat::Csv, &b"name\na\n"[..], 0),
        ] {
            let r = parse_rows(format, body, &schema).unwrap_err();
            assert_eq!(
                (r.row, r.field.as_deref()),
                (Some(row), Some("id")),
                "{format:?}"
            );
            assert!(r.error.contains("not-null"), "{}", r.error);
        }
    }

    #[test]
    fn content_types() {
        use BodyFormat::*;
        let f = BodyFormat::from_content_type;
        assert_eq!(f("application/json; charset=utf-8"), Some(JsonArray));
        assert_eq!(f("application/x-ndjson"), Some(Ndjson));
        assert_eq!(f("Text/CSV"), Some(Csv));
        assert_eq!(f("text/plain"), None);
        assert_eq!(f(""), None);
    }
}
