//! Weir's system tables, built from the runtime's live counters at each read:
//!
//! - `weir_skipped_records (topic, records_skipped)`: records skipped because they do not
//!   decode, since the server started.
//! - `weir_jobs (view, records_read, records_total, started, eta)`: the views still catching
//!   up from their inputs' history (a running CREATE MATERIALIZED VIEW).
//! - `weir_views (view, status, error, on_error, rows_skipped)`: every materialized view,
//!   `running` or `failed` (with the error that stopped it), its error policy, and the rows it
//!   skipped since the server started (`on_error = 'skip'`).
//! - `weir_skipped_rows (view, skipped_at, weight, reason, row)`: the latest rows each such
//!   view skipped (`dataflow::ops::row_errors::SKIPPED_ROWS_LISTED` per view), oldest first.
//! - `weir_topics (topic, partition, start_offset, end_offset, bytes, retention_ms,
//!   retention_bytes, cleanup_policy)`: one row per topic partition, from the log itself.
//! - `weir_consumer_groups (group, topic, partition, committed_offset, lag)`: the offsets Kafka
//!   consumer groups committed, and how far each is behind the partition's end.
//! - `weir_sessions (pid, user, client_addr, application_name, connected_at, state, query,
//!   query_start)`: the open Postgres sessions and what each is doing (`db::sessions`); another
//!   role's statement shows as `<insufficient privilege>` unless the reader has its rights.
//! - `weir_login_failures (listener, user, client_addr, failed_at, reason)`: the latest refused
//!   log-ins on the Postgres and Kafka listeners (`db::listeners::LOGIN_FAILURES_LISTED`);
//!   superusers only.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::TimestampMicrosecondArray;
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};

use super::providers::ReadContext;
use crate::catalog::{Entry, ViewDef};

pub const SKIPPED_RECORDS_TABLE: &str = "weir_skipped_records";
pub const JOBS_TABLE: &str = "weir_jobs";
pub const VIEWS_TABLE: &str = "weir_views";
pub const SKIPPED_ROWS_TABLE: &str = "weir_skipped_rows";
pub const TOPICS_TABLE: &str = "weir_topics";
pub const CONSUMER_GROUPS_TABLE: &str = "weir_consumer_groups";
pub const SESSIONS_TABLE: &str = "weir_sessions";
pub const LOGIN_FAILURES_TABLE: &str = "weir_login_failures";

/// The table named `name` if it is a system table.
pub fn system_table(ctx: &ReadContext, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
    Ok(match name {
        SKIPPED_RECORDS_TABLE => Some(skipped_records(ctx)?),
        JOBS_TABLE => Some(jobs(ctx)?),
        VIEWS_TABLE => Some(views(ctx)?),
        SKIPPED_ROWS_TABLE => Some(skipped_rows(ctx)?),
        TOPICS_TABLE => Some(topics(ctx)?),
        CONSUMER_GROUPS_TABLE => Some(consumer_groups(ctx)?),
        SESSIONS_TABLE => Some(sessions(ctx)?),
        LOGIN_FAILURES_TABLE => Some(login_failures(ctx)?),
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

/// The catalog's materialized views, by name.
fn view_defs(ctx: &ReadContext) -> Vec<Arc<ViewDef>> {
    let mut views: Vec<Arc<ViewDef>> = ctx
        .catalog
        .entries()
        .into_iter()
        .filter_map(|e| match e {
            Entry::View(v) => Some(v),
            _ => None,
        })
        .collect();
    views.sort_by(|a, b| a.item.name.cmp(&b.item.name));
    views
}

fn views(ctx: &ReadContext) -> DfResult<Arc<dyn TableProvider>> {
    let views = view_defs(ctx);
    let failures: Vec<Option<String>> = views.iter().map(|v| v.rows.failure()).collect();
    let schema = Schema::new(vec![
        Field::new("view", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("on_error", DataType::Utf8, false),
        Field::new("rows_skipped", DataType::Int64, false),
    ]);
    table(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                views.iter().map(|v| &v.item.name),
            )),
            Arc::new(StringArray::from_iter_values(
                failures
                    .iter()
                    .map(|f| if f.is_some() { "failed" } else { "running" }),
            )),
            Arc::new(StringArray::from(failures)),
            Arc::new(StringArray::from_iter_values(
                views
                    .iter()
                    .map(|v| if v.skipped.is_some() { "skip" } else { "fail" }),
            )),
            Arc::new(Int64Array::from_iter_values(
                views
                    .iter()
                    .map(|v| v.skipped.as_ref().map_or(0, |s| s.total() as i64)),
            )),
        ],
    )
}

fn skipped_rows(ctx: &ReadContext) -> DfResult<Arc<dyn TableProvider>> {
    let mut names = Vec::new();
    let mut rows = Vec::new();
    for view in view_defs(ctx) {
        if let Some(skipped) = &view.skipped {
            for row in skipped.recent() {
                names.push(view.item.name.clone());
                rows.push(row);
            }
        }
    }
    let utc = Some(Arc::from("+00:00"));
    let schema = Schema::new(vec![
        Field::new("view", DataType::Utf8, false),
        Field::new(
            "skipped_at",
            DataType::Timestamp(TimeUnit::Microsecond, utc.clone()),
            false,
        ),
        Field::new("weight", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("row", DataType::Utf8, false),
    ]);
    table(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(names)),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| micros(r.at)))
                    .with_timezone_opt(utc),
            ),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.weight))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.reason),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.row))),
        ],
    )
}

fn topics(ctx: &ReadContext) -> DfResult<Arc<dyn TableProvider>> {
    let (mut names, mut partitions, mut starts, mut ends, mut bytes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut retention_ms, mut retention_bytes, mut policies) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut list = ctx.topics.list();
    list.sort_by(|a, b| a.name().cmp(b.name()));
    for topic in list {
        let config = topic.config();
        for p in 0..topic.partitions() {
            // A partition retention is trimming as we read reports what it can.
            names.push(topic.name().to_string());
            partitions.push(p as i32);
            starts.push(topic.log_start(p).ok().map(|o| o as i64));
            ends.push(topic.end_offset(p).ok().map(|o| o as i64));
            bytes.push(topic.size_bytes(p).ok().map(|b| b as i64));
            retention_ms.push(config.retention_ms.map(|v| v as i64));
            retention_bytes.push(config.retention_bytes.map(|v| v as i64));
            policies.push(if config.compact { "compact" } else { "delete" });
        }
    }
    let schema = Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("start_offset", DataType::Int64, true),
        Field::new("end_offset", DataType::Int64, true),
        Field::new("bytes", DataType::Int64, true),
        Field::new("retention_ms", DataType::Int64, true),
        Field::new("retention_bytes", DataType::Int64, true),
        Field::new("cleanup_policy", DataType::Utf8, false),
    ]);
    table(
        schema,
        vec![
            Arc::new(StringArray::from(names)),
            Arc::new(Int32Array::from(partitions)),
            Arc::new(Int64Array::from(starts)),
            Arc::new(Int64Array::from(ends)),
            Arc::new(Int64Array::from(bytes)),
            Arc::new(Int64Array::from(retention_ms)),
            Arc::new(Int64Array::from(retention_bytes)),
            Arc::new(StringArray::from(policies)),
        ],
    )
}

fn consumer_groups(ctx: &ReadContext) -> DfResult<Arc<dyn TableProvider>> {
    let mut offsets = crate::kafka::committed_offsets(ctx.store.as_ref())
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    offsets
        .sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    let lags: Vec<Option<i64>> = offsets
        .iter()
        .map(|c| {
            let end = u32::try_from(c.partition)
                .ok()
                .and_then(|p| ctx.topics.topic(&c.topic)?.end_offset(p).ok())?;
            Some((end as i64).saturating_sub(c.offset.max(0)).max(0))
        })
        .collect();
    let schema = Schema::new(vec![
        Field::new("group", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("committed_offset", DataType::Int64, false),
        Field::new("lag", DataType::Int64, true),
    ]);
    table(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                offsets.iter().map(|c| &c.group),
            )),
            Arc::new(StringArray::from_iter_values(
                offsets.iter().map(|c| &c.topic),
            )),
            Arc::new(Int32Array::from_iter_values(
                offsets.iter().map(|c| c.partition),
            )),
            Arc::new(Int64Array::from_iter_values(
                offsets.iter().map(|c| c.offset),
            )),
            Arc::new(Int64Array::from(lags)),
        ],
    )
}

/// The latest refused log-ins; superusers only, as the log they are also in.
fn login_failures(ctx: &ReadContext) -> DfResult<Arc<dyn TableProvider>> {
    if !ctx.catalog.roles.is_superuser(&crate::auth::current_user()) {
        return Err(DataFusionError::External(Box::new(
            crate::auth::privileges::denied(
                crate::auth::privileges::ObjectKind::Table,
                LOGIN_FAILURES_TABLE,
            )
            .with_hint("only superusers may read it"),
        )));
    }
    let failures = ctx.listeners.login_failures();
    let utc = Some(Arc::from("+00:00"));
    let schema = Schema::new(vec![
        Field::new("listener", DataType::Utf8, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("client_addr", DataType::Utf8, false),
        Field::new(
            "failed_at",
            DataType::Timestamp(TimeUnit::Microsecond, utc.clone()),
            false,
        ),
        Field::new("reason", DataType::Utf8, false),
    ]);
    table(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                failures.iter().map(|f| f.listener),
            )),
            Arc::new(StringArray::from_iter_values(
                failures.iter().map(|f| &f.user),
            )),
            Arc::new(StringArray::from_iter_values(
                failures.iter().map(|f| &f.client_addr),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(failures.iter().map(|f| micros(f.at)))
                    .with_timezone_opt(utc),
            ),
            Arc::new(StringArray::from_iter_values(
                failures.iter().map(|f| &f.reason),
            )),
        ],
    )
}

/// What `weir_sessions.query` shows of another role's statement, as `pg_stat_activity` does.
const INSUFFICIENT_PRIVILEGE: &str = "<insufficient privilege>";

fn sessions(ctx: &ReadContext) -> DfResult<Arc<dyn TableProvider>> {
    let open = ctx.sessions.snapshot();
    // A role sees the statements of sessions whose role's rights it has; superusers see all.
    let viewer = crate::auth::current_user();
    let roles = &ctx.catalog.roles;
    let may_see =
        |user: &str| roles.is_superuser(&viewer) || roles.has_privileges_of(&viewer, user);
    let utc = Some(Arc::from("+00:00"));
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, utc.clone());
    let schema = Schema::new(vec![
        Field::new("pid", DataType::Int32, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("client_addr", DataType::Utf8, false),
        Field::new("application_name", DataType::Utf8, false),
        Field::new("connected_at", timestamp.clone(), false),
        Field::new("state", DataType::Utf8, false),
        Field::new("query", DataType::Utf8, false),
        Field::new("query_start", timestamp, true),
    ]);
    table(
        schema,
        vec![
            Arc::new(Int32Array::from_iter_values(
                open.iter().map(|(s, _)| s.pid),
            )),
            Arc::new(StringArray::from_iter_values(
                open.iter().map(|(s, _)| &s.user),
            )),
            Arc::new(StringArray::from_iter_values(
                open.iter().map(|(s, _)| &s.client_addr),
            )),
            Arc::new(StringArray::from_iter_values(
                open.iter().map(|(s, _)| &s.application_name),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    open.iter().map(|(s, _)| micros(s.connected_at)),
                )
                .with_timezone_opt(utc.clone()),
            ),
            Arc::new(StringArray::from_iter_values(
                open.iter().map(|(_, a)| a.state),
            )),
            Arc::new(StringArray::from_iter_values(open.iter().map(|(s, a)| {
                if may_see(&s.user) {
                    a.query.as_str()
                } else {
                    INSUFFICIENT_PRIVILEGE
                }
            }))),
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    open.iter().map(|(_, a)| a.query_start.map(micros)),
                )
                .with_timezone_opt(utc),
            ),
        ],
    )
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn table(schema: Schema, columns: Vec<ArrayRef>) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(schema);
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}
