//! Weir's system tables, built from the runtime's live counters at each read:
//!
//! - `weir_skipped_records (topic, records_skipped)`: records skipped because they do not
//!   decode, since the server started.
//! - `weir_jobs (view, records_read, records_total, started, eta)`: the views still catching
//!   up from their inputs' history (a running CREATE MATERIALIZED VIEW).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::TimestampMicrosecondArray;
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::Result as DfResult;

use super::providers::ReadContext;

pub const SKIPPED_RECORDS_TABLE: &str = "weir_skipped_records";
pub const JOBS_TABLE: &str = "weir_jobs";

/// The table named `name` if it is a system table.
pub fn system_table(ctx: &ReadContext, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
    Ok(match name {
        SKIPPED_RECORDS_TABLE => Some(skipped_records(ctx)?),
        JOBS_TABLE => Some(jobs(ctx)?),
        _ => None,
    })
}

fn skipped_records(ctx: &ReadContext) -> DfResult<Arc<dyn TableProvider>> {
    let mut per_topic: std::collections::BTreeMap<String, u64> = Default::default();
    for ((_, topic), n) in ctx.skipped.lock().expect("skipped lock").iter() {
        let entry = per_topic.entry(topic.clone()).or_default();
        *entry = (*entry).max(*n);
    }
    let schema = Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("records_skipped", DataType::Int64, false),
    ]);
    table(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(per_topic.keys())),
            Arc::new(Int64Array::from_iter_values(
                per_topic.values().map(|&n| n as i64),
            )),
        ],
    )
}

fn jobs(ctx: &ReadContext) -> DfResult<Arc<dyn TableProvider>> {
    let now = SystemTime::now();
    let jobs: Vec<_> = ctx
        .jobs
        .lock()
        .expect("jobs lock")
        .values()
        .cloned()
        .collect();
    let micros = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
    };
    let utc = Some(Arc::from("+00:00"));
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, utc.clone());
    let schema = Schema::new(vec![
        Field::new("view", DataType::Utf8, false),
        Field::new("records_read", DataType::Int64, false),
        Field::new("records_total", DataType::Int64, false),
        Field::new("started", timestamp.clone(), false),
        Field::new("eta", timestamp, true),
    ]);
    table(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(jobs.iter().map(|j| &j.view))),
            Arc::new(Int64Array::from_iter_values(
                jobs.iter().map(|j| j.records_read as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                jobs.iter().map(|j| j.records_total as i64),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(jobs.iter().map(|j| micros(j.started)))
                    .with_timezone_opt(utc.clone()),
            ),
            Arc::new(
                TimestampMicrosecondArray::from_iter(jobs.iter().map(|j| j.eta(now).map(micros)))
                    .with_timezone_opt(utc),
            ),
        ],
    )
}

fn table(schema: Schema, columns: Vec<ArrayRef>) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(schema);
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}
