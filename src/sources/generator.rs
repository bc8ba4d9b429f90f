//! The `nexmark` source connector: a generator that appends Nexmark events to its source's
//! topic, where views (and Kafka consumers) read them like any other records.
//!
//! ```sql
//! CREATE SOURCE bid WITH (connector = 'nexmark', kind = 'bid', events = 1000000,
//!                         events_per_second = 0, partitions = 2);
//! ```
//!
//! Kind-local event `i` goes to partition `i % partitions`, so each partition is its own
//! interleaved part of the stream and knows where to resume from its record count alone:
//! after a restart (or a crash between two appends) every partition carries on exactly after
//! its last durable record, so no event is lost or written twice. The topic has no other
//! writer (INSERT, COPY and Kafka produce into it are refused).
//!
//! A bounded generator with no rate limit fills its topic before `CREATE SOURCE` returns, like
//! a COPY; every other generator runs on its own thread until it ends or the source is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::nexmark::{BATCH_EVENTS_MAX, Generator, Kind, Sequence};
use crate::error::{ErrorKind, Result, WeirError};
use crate::formats::{self, Format};
use crate::topics::{Record, Topic};

/// Events per second (over all kinds) a generator makes unless `events_per_second` says
/// otherwise; `events_per_second = 0` means as fast as the log takes them.
pub const EVENTS_PER_SECOND_DEFAULT: u64 = 10_000;
/// A rate-limited generator appends about this often, in milliseconds.
const APPEND_INTERVAL_MS: u64 = 10;
/// Most partitions a generated source may have.
const PARTITIONS_MAX: u32 = 256;

/// The options of a `nexmark` source, as written in its `WITH (...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NexmarkOptions {
    pub kind: Kind,
    pub sequence: Sequence,
    /// Generated events per second over all kinds; `None`: unlimited.
    pub events_per_second: Option<u64>,
    pub partitions: u32,
}

impl NexmarkOptions {
    /// Reads `WITH (connector = 'nexmark', ...)` options; `name` is the source's name, the
    /// kind when `kind` is not given.
    pub fn parse(name: &str, options: &[(String, String)]) -> Result<NexmarkOptions> {
        let mut kind = None;
        let mut sequence = Sequence::default();
        let mut events_per_second = Some(EVENTS_PER_SECOND_DEFAULT);
        let mut partitions = 1;
        for (key, value) in options {
            match key.as_str() {
                "connector" => {}
                "kind" => kind = Some(Kind::parse(value)?),
                "events" => sequence.events = Some(number(key, value)?),
                "events_per_second" => {
                    events_per_second = Some(number(key, value)?).filter(|&r| r > 0)
                }
                "event_rate" => sequence.event_rate = number(key, value)?.max(1),
                "base_time" => sequence.base_time_ms = timestamp_ms(value)?,
                "partitions" => {
                    partitions = number(key, value)?
                        .try_into()
                        .ok()
                        .filter(|p| (1..=PARTITIONS_MAX).contains(p))
                        .ok_or_else(|| {
                            invalid(format!("partitions must be 1 to {PARTITIONS_MAX}"))
                        })?
                }
                other => {
                    return Err(invalid(format!("unknown nexmark option \"{other}\"")).with_hint(
                        "options: kind, events, events_per_second, event_rate, base_time, partitions",
                    ));
                }
            }
        }
        let kind = match kind {
            Some(k) => k,
            None => Kind::parse(name).map_err(|_| {
                invalid("a nexmark source needs a kind")
                    .with_hint("add kind = 'person', 'auction' or 'bid'")
            })?,
        };
        if sequence.events.is_none() && events_per_second.is_none() {
            return Err(invalid(
                "a nexmark source without an end (events) needs a rate (events_per_second > 0)",
            )
            .with_hint("otherwise it would fill the disk as fast as it can"));
        }
        Ok(NexmarkOptions {
            kind,
            sequence,
            events_per_second,
            partitions,
        })
    }

    /// The options as SQL, every one spelled out (what the catalog stores).
    pub fn to_sql(&self) -> String {
        let mut out = format!("connector = 'nexmark', kind = '{}'", self.kind.name());
        if let Some(events) = self.sequence.events {
            out.push_str(&format!(", events = {events}"));
        }
        out.push_str(&format!(
            ", events_per_second = {}, event_rate = {}, base_time = '{}', partitions = {}",
            self.events_per_second.unwrap_or(0),
            self.sequence.event_rate,
            chrono::DateTime::from_timestamp_millis(self.sequence.base_time_ms as i64)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                .unwrap_or_default(),
            self.partitions
        ));
        out
    }

    /// Whether `CREATE SOURCE` fills the topic itself before it returns.
    pub fn fills_at_create(&self) -> bool {
        self.sequence.events.is_some() && self.events_per_second.is_none()
    }
}

fn invalid(message: impl Into<String>) -> WeirError {
    WeirError::new(ErrorKind::InvalidParameter, message)
}

fn number(key: &str, value: &str) -> Result<u64> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| invalid(format!("{key} must be a whole number, not \"{value}\"")))
}

fn timestamp_ms(value: &str) -> Result<u64> {
    let formats = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ];
    formats
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(value, f).ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .and_then(|t| u64::try_from(t.and_utc().timestamp_millis()).ok())
        .ok_or_else(|| {
            invalid(format!("base_time \"{value}\" is not a timestamp"))
                .with_hint("write it as 'YYYY-MM-DD HH:MM:SS'")
        })
}

/// Appends the source's events to `topic` until the sequence ends or `stop` is set; returns
/// how many it appended. Each partition resumes after its last durable record.
pub fn fill(topic: &Topic, options: &NexmarkOptions, stop: &AtomicBool) -> Result<u64> {
    let parts = options.partitions as u64;
    let mut generators = Vec::with_capacity(options.partitions as usize);
    for p in 0..options.partitions {
        let written = topic.end_offset(p)?;
        generators.push(Generator::new(
            options.kind,
            &options.sequence,
            p as u64 + written * parts,
            parts,
        ));
    }
    let chunk = match options.events_per_second {
        // Events of this kind per partition per append interval.
        Some(rate) => {
            let of_kind = Sequence::count_of(options.kind, rate * APPEND_INTERVAL_MS / 1000);
            ((of_kind / parts) as usize).clamp(1, BATCH_EVENTS_MAX)
        }
        None => BATCH_EVENTS_MAX,
    };
    let started = Instant::now();
    let first_time = generators.iter().map(|g| g.next_timestamp_ms()).min();
    let mut appended = 0;
    let mut live = vec![true; generators.len()];
    while live.iter().any(|&l| l) && !stop.load(Ordering::Relaxed) {
        for (p, generator) in generators.iter_mut().enumerate() {
            if !live[p] {
                continue;
            }
            let Some((batch, times)) = generator.next_batch(chunk)? else {
                live[p] = false;
                continue;
            };
            let values = formats::encode_rows(Format::Json, &batch)?;
            let records: Vec<Record> = values
                .into_iter()
                .zip(times)
                .map(|(value, timestamp_ms)| Record {
                    key: None,
                    value,
                    timestamp_ms,
                    headers: Vec::new(),
                })
                .collect();
            appended += records.len() as u64;
            topic.append(p as u32, &records)?;
        }
        if let (Some(rate), Some(first)) = (options.events_per_second, first_time) {
            // Event times advance at `event_rate`; pace them to `rate` events of wall time.
            let reached = generators
                .iter()
                .map(|g| g.next_timestamp_ms())
                .min()
                .unwrap_or(first);
            let event_secs = (reached - first) as f64 / 1000.0;
            let due = event_secs * options.sequence.event_rate as f64 / rate as f64;
            let wait = Duration::from_secs_f64(due).saturating_sub(started.elapsed());
            std::thread::sleep(wait.min(Duration::from_secs(1)));
        }
    }
    Ok(appended)
}

/// A generator running on its own thread; dropping the handle stops it and waits for it.
pub struct GeneratorHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GeneratorHandle {
    pub fn spawn(source: &str, topic: Arc<Topic>, options: NexmarkOptions) -> GeneratorHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = source.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("weir-nexmark-{name}"))
            .spawn(move || match fill(&topic, &options, &flag) {
                Ok(n) => tracing::info!(source = name, events = n, "nexmark generator done"),
                Err(e) => tracing::error!(source = name, "nexmark generator stopped: {e}"),
            })
            .expect("spawn generator thread");
        GeneratorHandle {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for GeneratorHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_round_trip_through_sql() {
        let o = NexmarkOptions::parse(
            "b",
            &opts(&[
                ("kind", "bid"),
                ("events", "1_000"),
                ("events_per_second", "0"),
                ("base_time", "2020-01-02 03:04:05"),
            ]),
        )
        .unwrap();
        assert!(o.fills_at_create());
        let sql = o.to_sql();
        let reparsed: Vec<(String, String)> = sql
            .split(", ")
            .map(|kv| {
                let (k, v) = kv.split_once(" = ").unwrap();
                (k.to_string(), v.trim_matches('\'').to_string())
            })
            .collect();
        assert_eq!(NexmarkOptions::parse("b", &reparsed).unwrap(), o);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(NexmarkOptions::parse("x", &opts(&[])).is_err(), "no kind");
        assert!(NexmarkOptions::parse("bid", &opts(&[("events_per_second", "0")])).is_err());
        assert!(NexmarkOptions::parse("bid", &opts(&[("partitions", "0")])).is_err());
        assert!(NexmarkOptions::parse("bid", &opts(&[("colour", "red")])).is_err());
        assert!(NexmarkOptions::parse("bid", &opts(&[("base_time", "soon")])).is_err());
        assert_eq!(
            NexmarkOptions::parse("bid", &opts(&[])).unwrap().kind,
            Kind::Bid
        );
    }
}
