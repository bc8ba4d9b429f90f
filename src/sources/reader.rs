//! Topic records into change batches: how a source's or table's topic is decoded, in bounded
//! steps. The runtime's shared readers decode each new record once for every view that reads
//! the topic; a view catching up from history reads its own range the same way.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::{cast, max};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};

use crate::catalog::table::decode_changelog;
use crate::config::SOURCE_READ_RECORDS_MAX;
use crate::dataflow::ChangeBatch;
use crate::error::Result;
use crate::formats::{self, Format};
use crate::topics::Topic;

/// A source's event time: its watermark is, per partition, the largest value of column
/// `column` read so far minus `delay_micros`, and the minimum over partitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EventTime {
    /// A TIMESTAMP column (microseconds).
    pub column: usize,
    pub delay_micros: i64,
}

/// How a topic's records become rows.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoding {
    /// A source: each record is one row in `format`.
    Rows {
        format: Format,
        schema: SchemaRef,
        event_time: Option<EventTime>,
    },
    /// A table's changelog: `{"op", "row"}` records with their weights.
    Changelog { schema: SchemaRef },
}

impl Decoding {
    /// Decodes record values; returns the changes and how many records did not decode.
    pub fn decode(&self, values: &[&[u8]]) -> Result<(ChangeBatch, usize)> {
        match self {
            Decoding::Rows { format, schema, .. } => {
                let decoded = formats::decode_records(*format, schema, values)?;
                Ok((ChangeBatch::inserts(decoded.batch), decoded.skipped))
            }
            Decoding::Changelog { schema } => {
                let (rows, weights) = decode_changelog(schema, values)?;
                let skipped = values.len() - rows.num_rows();
                Ok((ChangeBatch::new(rows, weights), skipped))
            }
        }
    }

    /// The largest event time in `changes` (None for a decoding without event time, or no non-NULL value).
    pub fn max_event_time(&self, changes: &ChangeBatch) -> Option<i64> {
        let Decoding::Rows {
            event_time: Some(t),
            ..
        } = self
        else {
            return None;
        };
        let column = changes.rows.column(t.column);
        let micros = cast(column, &DataType::Int64).ok()?;
        max(micros.as_primitive::<Int64Type>())
    }
}

/// What one call of [`read_range`] did.
pub struct RangeRead {
    /// The next offset to read: `to`, or less when the log holds no more records.
    pub next: u64,
    pub records: u64,
    pub skipped: u64,
    /// The largest event time among the rows read (sources with `WATERMARK FOR`).
    pub max_event_time: Option<i64>,
}

/// Reads records `[from, to)` of one partition in steps of at most
/// [`SOURCE_READ_RECORDS_MAX`] records, decodes each step and hands its changes to `each`.
pub fn read_range(
    topic: &Arc<Topic>,
    decoding: &Decoding,
    partition: u32,
    from: u64,
    to: u64,
    mut each: impl FnMut(ChangeBatch) -> Result<()>,
) -> Result<RangeRead> {
    let mut done = RangeRead {
        next: from,
        records: 0,
        skipped: 0,
        max_event_time: None,
    };
    while done.next < to {
        let want = ((to - done.next) as usize).min(SOURCE_READ_RECORDS_MAX);
        let records = topic.read(partition, done.next, want)?;
        let Some((last, _)) = records.last() else {
            break;
        };
        done.next = last + 1;
        done.records += records.len() as u64;
        let values: Vec<&[u8]> = records.iter().map(|(_, r)| r.value.as_ref()).collect();
        let (changes, skipped) = decoding.decode(&values)?;
        if skipped > 0 {
            tracing::warn!(
                topic = topic.name(),
                skipped,
                "records that do not decode were skipped"
            );
        }
        done.skipped += skipped as u64;
        if let Some(t) = decoding.max_event_time(&changes) {
            done.max_event_time = Some(done.max_event_time.map_or(t, |m| m.max(t)));
        }
        if !changes.is_empty() {
            each(changes)?;
        }
    }
    Ok(done)
}
