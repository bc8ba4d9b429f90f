//! `GET /metrics`: Prometheus text exposition (format 0.0.4) of what the server already knows,
//! gathered at each scrape: topic partitions from the log, consumer-group offsets from the
//! store, sources and views from the catalog, backfill progress and skipped records from the
//! runtime, epoch commit times from the coordinator, and the listeners' counters. Nothing here
//! runs on the data path; the one scrape-time cost that grows with data is counting each view's
//! stored rows (a key scan per view). Every metric is listed in `docs/observability.md`.
//!
//! The text format is written here rather than through a metrics crate: every value is read
//! from live state at scrape time (topics, views and groups come and go), which a registry of
//! long-lived metric handles would have to mirror and prune; the format itself is a few lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::catalog::Entry;
use crate::db::Database;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family: its samples, each `(labels, value)`.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, String)>,
}

/// The families of one scrape, in the order they were first named.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
}

impl Exposition {
    /// Declares a family (so it is listed, with HELP and TYPE, even without samples).
    fn family(&mut self, name: &'static str, kind: &'static str, help: &'static str) {
        debug_assert!(self.families.iter().all(|f| f.name != name), "{name} twice");
        self.families.push(Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        });
    }

    /// Adds a sample to the family last declared under `name` (with a suffix such as
    /// `_bucket` for histograms).
    fn sample(&mut self, name: &'static str, suffix: &str, labels: &[(&str, &str)], value: f64) {
        let family = self
            .families
            .iter_mut()
            .find(|f| f.name == name)
            .expect("family declared before its samples");
        let mut text = String::new();
        if !labels.is_empty() {
            text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                let _ = write!(text, "{k}=\"{}\"", escape_label(v));
            }
            text.push('}');
        }
        family
            .samples
            .push((format!("{name}{suffix}{text}"), format_value(value)));
    }

    fn gauge(&mut self, name: &'static str, labels: &[(&str, &str)], value: f64) {
        self.sample(name, "", labels, value);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for (series, value) in &f.samples {
                let _ = writeln!(out, "{series} {value}");
            }
        }
        out
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

fn seconds_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Everything `/metrics` shows. Blocking (store scans, file sizes): run it off the async
/// threads. `ingested` is the HTTP ingest listener's rows per relation.
pub fn gather(db: &Database, ingested: &BTreeMap<String, u64>) -> Exposition {
    let mut e = Exposition::default();
    topics(db, &mut e);
    consumer_groups(db, &mut e);
    sources(db, &mut e);
    views(db, &mut e);
    epochs(db, &mut e);
    state_cache(db, &mut e);
    listeners(db, ingested, &mut e);
    e
}

fn topics(db: &Database, e: &mut Exposition) {
    const END: &str = "weir_topic_partition_end_offset";
    const START: &str = "weir_topic_partition_start_offset";
    const BYTES: &str = "weir_topic_partition_bytes";
    e.family(
        END,
        "gauge",
        "Offset the next record appended to the partition gets (durable records).",
    );
    e.family(
        START,
        "gauge",
        "First offset the partition still holds (older records were removed by retention).",
    );
    e.family(
        BYTES,
        "gauge",
        "Bytes the partition's segment files take on disk.",
    );
    for topic in db.topics.list() {
        for p in 0..topic.partitions() {
            let partition = p.to_string();
            let labels = [("topic", topic.name()), ("partition", partition.as_str())];
            if let Ok(end) = topic.end_offset(p) {
                e.gauge(END, &labels, end as f64);
            }
            if let Ok(start) = topic.log_start(p) {
                e.gauge(START, &labels, start as f64);
            }
            // A segment retention deletes meanwhile fails the size: skip it this scrape.
            if let Ok(bytes) = topic.size_bytes(p) {
                e.gauge(BYTES, &labels, bytes as f64);
            }
        }
    }
}

fn consumer_groups(db: &Database, e: &mut Exposition) {
    const COMMITTED: &str = "weir_consumer_group_committed_offset";
    const LAG: &str = "weir_consumer_group_lag";
    e.family(
        COMMITTED,
        "gauge",
        "Offset a Kafka consumer group committed for a topic partition.",
    );
    e.family(LAG, "gauge", "Records of the partition past the group's committed offset (end offset minus committed offset).");
    let Ok(offsets) = crate::kafka::committed_offsets(db.store.as_ref()) else {
        return;
    };
    for c in offsets {
        let partition = c.partition.to_string();
        let labels = [
            ("group", c.group.as_str()),
            ("topic", c.topic.as_str()),
            ("partition", partition.as_str()),
        ];
        e.gauge(COMMITTED, &labels, c.offset as f64);
        let end = u32::try_from(c.partition)
            .ok()
            .and_then(|p| db.topics.topic(&c.topic)?.end_offset(p).ok());
        if let Some(end) = end {
            let lag = (end as i64).saturating_sub(c.offset.max(0)).max(0);
            e.gauge(LAG, &labels, lag as f64);
        }
    }
}

fn sources(db: &Database, e: &mut Exposition) {
    const RECORDS: &str = "weir_source_records_total";
    const SKIPPED: &str = "weir_source_skipped_records_total";
    e.family(RECORDS, "counter", "Records ever appended to the source's topic (the sum of its partitions' end offsets); rate() is the source's rows per second.");
    e.family(SKIPPED, "counter", "Records of the source's topic skipped since start because they do not decode (they stay in the topic).");
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    for ((_, topic), n) in db
        .runtime
        .skipped_records()
        .lock()
        .expect("skipped lock")
        .iter()
    {
        let entry = skipped.entry(topic.clone()).or_default();
        *entry = (*entry).max(*n);
    }
    for entry in db.catalog.entries() {
        let Entry::Source(source) = entry else {
            continue;
        };
        let labels = [
            ("source", source.item.name.as_str()),
            ("topic", source.topic.as_str()),
        ];
        if let Some(topic) = db.topics.topic(&source.topic) {
            let records: u64 = (0..topic.partitions())
                .filter_map(|p| topic.end_offset(p).ok())
                .sum();
            e.sample(RECORDS, "", &labels, records as f64);
        }
        let n = skipped.get(&source.topic).copied().unwrap_or(0);
        e.sample(SKIPPED, "", &labels, n as f64);
    }
}

fn views(db: &Database, e: &mut Exposition) {
    const ROWS: &str = "weir_view_rows";
    const EPOCH: &str = "weir_view_committed_epoch";
    const COMMITTED_AT: &str = "weir_view_last_commit_timestamp_seconds";
    const FRESHNESS: &str = "weir_view_freshness_seconds";
    const FAILED: &str = "weir_view_failed";
    const SKIPPED: &str = "weir_view_rows_skipped_total";
    const READ: &str = "weir_view_backfill_records_read";
    const TOTAL: &str = "weir_view_backfill_records_total";
    e.family(
        ROWS,
        "gauge",
        "Rows the view holds as of its last committed epoch.",
    );
    e.family(
        EPOCH,
        "gauge",
        "The last epoch that committed the view's changes.",
    );
    e.family(
        COMMITTED_AT,
        "gauge",
        "Unix time (seconds) of the view's last committed epoch.",
    );
    e.family(FRESHNESS, "gauge", "Seconds since the view last included every record of its inputs (its last commit, or a later barrier that found nothing new).");
    e.family(
        FAILED,
        "gauge",
        "1 when the view's dataflow failed and it is no longer maintained, else 0.",
    );
    e.family(SKIPPED, "counter", "Rows a view created WITH (on_error = 'skip') left out since start because an expression failed on them (listed in weir_skipped_rows).");
    e.family(READ, "gauge", "Records of its inputs' history a view still backfilling (CREATE MATERIALIZED VIEW running) has read.");
    e.family(
        TOTAL,
        "gauge",
        "Records of its inputs' history a backfilling view reads in all.",
    );
    let stats = db.runtime.epoch_stats();
    let now = SystemTime::now();
    for entry in db.catalog.entries() {
        let Entry::View(view) = entry else {
            continue;
        };
        let labels = [("view", view.item.name.as_str())];
        if let Ok(rows) = view.rows.count(db.store.as_ref()) {
            e.gauge(ROWS, &labels, rows as f64);
        }
        if let Some(last) = stats.view(view.rows.view_id) {
            e.gauge(EPOCH, &labels, last.epoch as f64);
            e.gauge(
                COMMITTED_AT,
                &labels,
                seconds_since_epoch(last.committed_at),
            );
            let age = now.duration_since(last.current_at).unwrap_or_default();
            e.gauge(FRESHNESS, &labels, age.as_secs_f64());
        }
        let failed = view.rows.failure().is_some();
        e.gauge(FAILED, &labels, if failed { 1.0 } else { 0.0 });
        if let Some(skipped) = &view.skipped {
            e.sample(SKIPPED, "", &labels, skipped.total() as f64);
        }
    }
    for job in db.runtime.jobs().lock().expect("jobs lock").values() {
        let labels = [("view", job.view.as_str())];
        e.gauge(READ, &labels, job.records_read as f64);
        e.gauge(TOTAL, &labels, job.records_total as f64);
    }
}

fn state_cache(db: &Database, e: &mut Exposition) {
    const BYTES: &str = "weir_state_cache_bytes";
    const BUDGET: &str = "weir_state_cache_budget_bytes";
    e.family(
        BYTES,
        "gauge",
        "Operator state the views keep in memory, as the operators estimate it, in bytes.",
    );
    e.family(
        BUDGET,
        "gauge",
        "The memory budget of operator state (--state-cache-mb), in bytes.",
    );
    let cache = db.runtime.state_cache();
    e.gauge(BYTES, &[], cache.used_bytes() as f64);
    e.gauge(BUDGET, &[], cache.budget_bytes() as f64);
}

fn epochs(db: &Database, e: &mut Exposition) {
    const EPOCH: &str = "weir_epoch_committed";
    const COMMITS: &str = "weir_epoch_commits_total";
    const KEYS: &str = "weir_epoch_commit_keys_total";
    const SECONDS: &str = "weir_epoch_commit_seconds";
    e.family(
        EPOCH,
        "gauge",
        "The last epoch committed since start (0: none yet).",
    );
    e.family(COMMITS, "counter", "Epochs committed since start.");
    e.family(
        KEYS,
        "counter",
        "Store keys (view rows, operator state, offsets) written by epoch commits.",
    );
    e.family(
        SECONDS,
        "histogram",
        "Time each epoch's atomic store commit took, in seconds.",
    );
    let stats = db.runtime.epoch_stats();
    e.gauge(
        EPOCH,
        &[],
        stats.committed_epoch.load(Ordering::Relaxed) as f64,
    );
    e.gauge(
        COMMITS,
        &[],
        stats.commits_total.load(Ordering::Relaxed) as f64,
    );
    e.gauge(
        KEYS,
        &[],
        stats.commit_keys_total.load(Ordering::Relaxed) as f64,
    );
    let h = stats.commit_seconds.snapshot();
    for (bound, n) in &h.cumulative {
        let le = format_value(*bound);
        e.sample(SECONDS, "_bucket", &[("le", le.as_str())], *n as f64);
    }
    e.sample(SECONDS, "_bucket", &[("le", "+Inf")], h.count as f64);
    e.sample(SECONDS, "_sum", &[], h.sum_seconds);
    e.sample(SECONDS, "_count", &[], h.count as f64);
}

fn listeners(db: &Database, ingested: &BTreeMap<String, u64>, e: &mut Exposition) {
    const CONNECTIONS: &str = "weir_listener_connections_total";
    const OPEN: &str = "weir_listener_connections_open";
    const REQUESTS: &str = "weir_listener_requests_total";
    const ERRORS: &str = "weir_listener_errors_total";
    const INGESTED: &str = "weir_http_ingest_rows_total";
    const AUTH_FAILURES: &str = "weir_listener_auth_failures_total";
    e.family(
        CONNECTIONS,
        "counter",
        "Connections the listener accepted since start.",
    );
    e.family(OPEN, "gauge", "Connections open now.");
    e.family(
        REQUESTS,
        "counter",
        "Requests handled: statements (pg), protocol requests (kafka), HTTP requests (http).",
    );
    e.family(ERRORS, "counter", "Requests answered with an error: a statement's error (pg), an undecodable request that closed the connection (kafka), a 4xx or 5xx response (http).");
    e.family(
        AUTH_FAILURES,
        "counter",
        "Log-ins refused for a wrong password or an unknown role.",
    );
    e.family(
        INGESTED,
        "counter",
        "Rows appended through HTTP ingest, per source or table.",
    );
    for (listener, c) in db.listeners.all() {
        let labels = [("listener", listener)];
        e.sample(
            CONNECTIONS,
            "",
            &labels,
            c.connections_total.load(Ordering::Relaxed) as f64,
        );
        e.gauge(OPEN, &labels, c.connections_open() as f64);
        e.sample(
            REQUESTS,
            "",
            &labels,
            c.requests_total.load(Ordering::Relaxed) as f64,
        );
        e.sample(
            ERRORS,
            "",
            &labels,
            c.errors_total.load(Ordering::Relaxed) as f64,
        );
        e.sample(
            AUTH_FAILURES,
            "",
            &labels,
            c.auth_failures_total.load(Ordering::Relaxed) as f64,
        );
    }
    for (relation, n) in ingested {
        e.sample(INGESTED, "", &[("relation", relation.as_str())], *n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_with_help_type_and_escaped_labels() {
        let mut e = Exposition::default();
        e.family("weir_x", "gauge", "An x.");
        e.family("weir_empty", "counter", "Nothing yet.");
        e.gauge("weir_x", &[("name", "a\"b\\c\nd")], 3.0);
        e.gauge("weir_x", &[], 0.25);
        assert_eq!(
            e.render(),
            "# HELP weir_x An x.\n# TYPE weir_x gauge\nweir_x{name=\"a\\\"b\\\\c\\nd\"} 3\n\
             weir_x 0.25\n# HELP weir_empty Nothing yet.\n# TYPE weir_empty counter\n"
        );
    }

    #[test]
    fn values() {
        assert_eq!(format_value(1e20), "100000000000000000000");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(0.001), "0.001");
        assert_eq!(format_value(-2.0), "-2");
    }
}
