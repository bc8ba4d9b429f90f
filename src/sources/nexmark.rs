//! The Nexmark generator: the benchmark's person, auction and bid events as Arrow batches.
//!
//! Events come from the `nexmark` crate (the reference generator's event mix — 1 person,
//! 3 auctions and 46 bids in every 50 events — and its value distributions), built from a
//! [`NexmarkConfig`] with a fixed base time, so the same options always give the same events.
//! Event number `n` (0-based, over all three kinds) has event time
//! `base_time + n / event_rate` seconds. A stream of one kind may be split into `step`
//! interleaved parts (`offset`, `offset + step`, ...), one per topic partition; each part can
//! resume from its own count of events, which is how a generator picks up again after a restart.
//!
//! Three consumers share these batches: the `nexmark` source connector (`generator.rs`),
//! `weir nexmark` (event files for other systems) and the Nexmark benchmark (batches in memory).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::{Event, EventType};

use crate::error::{ErrorKind, Result, WeirError};
use crate::formats::{self, Format};

/// Event time of event 0 unless `base_time` says otherwise: 2015-07-15 00:00:00 UTC, in ms
/// since the Unix epoch (the date the Nexmark generators of Flink and Beam start from).
pub const BASE_TIME_MS_DEFAULT: u64 = 1_436_918_400_000;
/// Events per second of event time unless `event_rate` says otherwise (the reference
/// generator's default).
pub const EVENT_RATE_DEFAULT: u64 = 10_000;
/// Events one generated Arrow batch holds at most.
pub const BATCH_EVENTS_MAX: usize = 8192;

/// One of Nexmark's three event kinds, each a stream (and a source) of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Person,
    Auction,
    Bid,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Person, Kind::Auction, Kind::Bid];

    pub fn parse(name: &str) -> Result<Kind> {
        match name.to_ascii_lowercase().as_str() {
            "person" => Ok(Kind::Person),
            "auction" => Ok(Kind::Auction),
            "bid" => Ok(Kind::Bid),
            other => Err(WeirError::new(
                ErrorKind::InvalidParameter,
                format!("unknown nexmark kind \"{other}\""),
            )
            .with_hint("kind = 'person', 'auction' or 'bid'")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Person => "person",
            Kind::Auction => "auction",
            Kind::Bid => "bid",
        }
    }

    fn event_type(self) -> EventType {
        match self {
            Kind::Person => EventType::Person,
            Kind::Auction => EventType::Auction,
            Kind::Bid => EventType::Bid,
        }
    }

    /// The kind's columns as SQL types, in the order of the reference schema.
    pub fn columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Person => &[
                ("id", "BIGINT"),
                ("name", "TEXT"),
                ("email_address", "TEXT"),
                ("credit_card", "TEXT"),
                ("city", "TEXT"),
                ("state", "TEXT"),
                ("date_time", "TIMESTAMP"),
                ("extra", "TEXT"),
            ],
            Kind::Auction => &[
                ("id", "BIGINT"),
                ("item_name", "TEXT"),
                ("description", "TEXT"),
                ("initial_bid", "BIGINT"),
                ("reserve", "BIGINT"),
                ("date_time", "TIMESTAMP"),
                ("expires", "TIMESTAMP"),
                ("seller", "BIGINT"),
                ("category", "BIGINT"),
                ("extra", "TEXT"),
            ],
            Kind::Bid => &[
                ("auction", "BIGINT"),
                ("bidder", "BIGINT"),
                ("price", "BIGINT"),
                ("channel", "TEXT"),
                ("url", "TEXT"),
                ("date_time", "TIMESTAMP"),
                ("extra", "TEXT"),
            ],
        }
    }

    /// The kind's Arrow schema (what the source's rows look like).
    pub fn schema(self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns()
            .iter()
            .map(|(name, sql_type)| {
                let data_type = match *sql_type {
                    "BIGINT" => DataType::Int64,
                    "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, None),
                    _ => DataType::Utf8,
                };
                Field::new(*name, data_type, true)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// What every generator of one event sequence shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// Events over all kinds to generate (event numbers `0..events`); `None`: no end.
    pub events: Option<u64>,
    /// Event time of event 0, ms since the Unix epoch.
    pub base_time_ms: u64,
    /// Events per second of event time.
    pub event_rate: u64,
}

impl Default for Sequence {
    fn default() -> Self {
        Sequence {
            events: None,
            base_time_ms: BASE_TIME_MS_DEFAULT,
            event_rate: EVENT_RATE_DEFAULT,
        }
    }
}

impl Sequence {
    fn config(&self) -> NexmarkConfig {
        NexmarkConfig {
            base_time: self.base_time_ms,
            first_rate: self.event_rate as usize,
            next_rate: self.event_rate as usize,
            ..NexmarkConfig::default()
        }
    }

    /// How many of the first `events` events are of `kind` (the mix repeats every 50 events).
    pub fn count_of(kind: Kind, events: u64) -> u64 {
        let defaults = NexmarkConfig::default();
        let (person, auction) = (
            defaults.person_proportion as u64,
            defaults.auction_proportion as u64,
        );
        let cycle = person + auction + defaults.bid_proportion as u64;
        let (whole, rest) = (events / cycle, events % cycle);
        let (share, before) = match kind {
            Kind::Person => (person, 0),
            Kind::Auction => (auction, person),
            Kind::Bid => (cycle - person - auction, person + auction),
        };
        whole * share + rest.saturating_sub(before).min(share)
    }
}

/// Generates events of one kind as Arrow batches: the kind's events number `offset`,
/// `offset + step`, ... (counted within the kind), up to the sequence's end.
pub struct Generator {
    kind: Kind,
    events: Option<u64>,
    inner: EventGenerator,
    schema: SchemaRef,
}

impl Generator {
    pub fn new(kind: Kind, sequence: &Sequence, offset: u64, step: u64) -> Generator {
        Generator {
            kind,
            events: sequence.events,
            inner: EventGenerator::new(sequence.config())
                .with_type_filter(kind.event_type())
                .with_offset(offset)
                .with_step(step.max(1)),
            schema: kind.schema(),
        }
    }

    /// The kind-local number of the next event this generator makes.
    pub fn offset(&self) -> u64 {
        self.inner.offset()
    }

    /// Event time of the next event, ms since the Unix epoch.
    pub fn next_timestamp_ms(&self) -> u64 {
        self.inner.timestamp()
    }

    fn exhausted(&self) -> bool {
        self.events
            .is_some_and(|end| self.inner.global_offset() >= end)
    }

    /// The next batch of at most `max_events` events, with each event's time in ms; `None`
    /// once the sequence has ended.
    pub fn next_batch(&mut self, max_events: usize) -> Result<Option<(RecordBatch, Vec<i64>)>> {
        let mut rows = Rows::new(self.kind, max_events);
        let mut times = Vec::with_capacity(max_events);
        while times.len() < max_events && !self.exhausted() {
            let Some(event) = self.inner.next() else {
                break;
            };
            times.push(event.timestamp() as i64);
            rows.push(event);
        }
        if times.is_empty() {
            return Ok(None);
        }
        let batch = RecordBatch::try_new(self.schema.clone(), rows.finish())?;
        Ok(Some((batch, times)))
    }
}

/// Writes events `0..sequence.events` as one file per kind (`person.json`, `auction.json`,
/// `bid.json`, or `.csv`) in `dir`, one record per line exactly as a source's topic holds it:
/// what `weir nexmark` gives other systems, so they read the same events Weir does. Returns the
/// number of events written per kind.
pub fn write_files(
    dir: &std::path::Path,
    sequence: &Sequence,
    format: Format,
) -> Result<Vec<(Kind, u64)>> {
    use std::io::Write;
    std::fs::create_dir_all(dir)
        .map_err(|e| WeirError::io(&format!("create {}", dir.display()), e))?;
    let extension = match format {
        Format::Json => "json",
        Format::Csv => "csv",
    };
    let mut written = Vec::new();
    for kind in Kind::ALL {
        let path = dir.join(format!("{}.{extension}", kind.name()));
        let file = std::fs::File::create(&path)
            .map_err(|e| WeirError::io(&format!("create {}", path.display()), e))?;
        let mut out = std::io::BufWriter::new(file);
        let mut generator = Generator::new(kind, sequence, 0, 1);
        let mut n = 0;
        while let Some((batch, _)) = generator.next_batch(BATCH_EVENTS_MAX)? {
            for record in formats::encode_rows(format, &batch)? {
                out.write_all(&record)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| WeirError::io(&format!("write {}", path.display()), e))?;
            }
            n += batch.num_rows() as u64;
        }
        out.flush()
            .map_err(|e| WeirError::io(&format!("write {}", path.display()), e))?;
        written.push((kind, n));
    }
    Ok(written)
}

/// Column builders for one batch, made from the kind's columns; events fill them in column
/// order.
struct Rows {
    columns: Vec<ColumnBuilder>,
    next: usize,
}

enum ColumnBuilder {
    Int(Int64Builder),
    Text(StringBuilder),
    Time(TimestampMicrosecondBuilder),
}

impl Rows {
    fn new(kind: Kind, n: usize) -> Rows {
        let columns = kind
            .columns()
            .iter()
            .map(|(_, sql_type)| match *sql_type {
                "BIGINT" => ColumnBuilder::Int(Int64Builder::with_capacity(n)),
                "TIMESTAMP" => ColumnBuilder::Time(TimestampMicrosecondBuilder::with_capacity(n)),
                _ => ColumnBuilder::Text(StringBuilder::with_capacity(n, n * 32)),
            })
            .collect();
        Rows { columns, next: 0 }
    }

    fn column(&mut self) -> &mut ColumnBuilder {
        let i = self.next;
        self.next = (i + 1) % self.columns.len();
        &mut self.columns[i]
    }

    fn int(&mut self, v: usize) {
        if let ColumnBuilder::Int(b) = self.column() {
            b.append_value(v as i64);
        }
    }

    fn text(&mut self, v: &str) {
        if let ColumnBuilder::Text(b) = self.column() {
            b.append_value(v);
        }
    }

    /// Nexmark times are ms; TIMESTAMP columns hold µs.
    fn time(&mut self, ms: u64) {
        if let ColumnBuilder::Time(b) = self.column() {
            b.append_value(ms as i64 * 1000);
        }
    }

    /// Appends one event, its fields in the order of [`Kind::columns`] (the generator is
    /// filtered to the batch's kind, so every event is of it).
    fn push(&mut self, event: Event) {
        match event {
            Event::Person(p) => {
                self.int(p.id);
                self.text(&p.name);
                self.text(&p.email_address);
                self.text(&p.credit_card);
                self.text(&p.city);
                self.text(&p.state);
                self.time(p.date_time);
                self.text(&p.extra);
            }
            Event::Auction(a) => {
                self.int(a.id);
                self.text(&a.item_name);
                self.text(&a.description);
                self.int(a.initial_bid);
                self.int(a.reserve);
                self.time(a.date_time);
                self.time(a.expires);
                self.int(a.seller);
                self.int(a.category);
                self.text(&a.extra);
            }
            Event::Bid(b) => {
                self.int(b.auction);
                self.int(b.bidder);
                self.int(b.price);
                self.text(&b.channel);
                self.text(&b.url);
                self.time(b.date_time);
                self.text(&b.extra);
            }
        }
    }

    fn finish(self) -> Vec<ArrayRef> {
        self.columns
            .into_iter()
            .map(|c| -> ArrayRef {
                match c {
                    ColumnBuilder::Int(mut b) => Arc::new(b.finish()),
                    ColumnBuilder::Text(mut b) => Arc::new(b.finish()),
                    ColumnBuilder::Time(mut b) => Arc::new(b.finish()),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(kind: Kind, sequence: &Sequence, offset: u64, step: u64) -> Vec<RecordBatch> {
        let mut g = Generator::new(kind, sequence, offset, step);
        let mut out = Vec::new();
        while let Some((b, _)) = g.next_batch(100).unwrap() {
            out.push(b);
        }
        out
    }

    fn rows(batches: &[RecordBatch]) -> usize {
        batches.iter().map(|b| b.num_rows()).sum()
    }

    #[test]
    fn the_mix_of_a_bounded_sequence_adds_up() {
        let seq = Sequence {
            events: Some(1234),
            ..Sequence::default()
        };
        let counts: Vec<usize> = Kind::ALL
            .iter()
            .map(|&k| rows(&all(k, &seq, 0, 1)))
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 1234);
        for (k, n) in Kind::ALL.iter().zip(&counts) {
            assert_eq!(Sequence::count_of(*k, 1234), *n as u64, "{k:?}");
        }
        // 1234 = 24 cycles of 50 + 34: persons 24 + 1, auctions 72 + 3, bids 1104 + 30.
        assert_eq!(counts, vec![25, 75, 1134]);
    }

    #[test]
    fn split_parts_together_are_the_whole_stream() {
        let seq = Sequence {
            events: Some(5000),
            ..Sequence::default()
        };
        let whole = datafusion::arrow::compute::concat_batches(
            &Kind::Bid.schema(),
            &all(Kind::Bid, &seq, 0, 1),
        )
        .unwrap();
        let mut parts = Vec::new();
        for p in 0..3 {
            parts.extend(all(Kind::Bid, &seq, p, 3));
        }
        assert_eq!(rows(&parts), whole.num_rows());
        // (date_time, auction) of each bid.
        let time_auction = |b: &RecordBatch| -> Vec<(i64, i64)> {
            let auction = b
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap();
            let time = b
                .column(5)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::TimestampMicrosecondArray>()
                .unwrap();
            (0..b.num_rows())
                .map(|i| (time.value(i), auction.value(i)))
                .collect()
        };
        let mut got: Vec<(i64, i64)> = parts.iter().flat_map(time_auction).collect();
        got.sort();
        let mut want = time_auction(&whole);
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn events_are_deterministic_and_start_at_the_base_time() {
        let seq = Sequence {
            events: Some(100),
            ..Sequence::default()
        };
        let a = all(Kind::Person, &seq, 0, 1);
        let b = all(Kind::Person, &seq, 0, 1);
        assert_eq!(a, b);
        let time = a[0]
            .column(6)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(time.value(0), BASE_TIME_MS_DEFAULT as i64 * 1000);
        // Event 50 (the second person) comes 50 events later: 5 ms at 10,000 events/s.
        assert_eq!(time.value(1), (BASE_TIME_MS_DEFAULT as i64 + 5) * 1000);
    }
}
