//! Topics: Weir's durable, partitioned, append-only log.
//!
//! A [`TopicStore`] owns one data directory. Each topic is split into a fixed
//! number of partitions; each partition is an ordered log of [`Record`]s in
//! which every record gets a dense, increasing offset starting at 0.
//!
//! # Layout on disk
//!
//! ```text
//! <dir>/<topic>/meta.json                      TopicConfig as JSON (written last on create, removed first on drop)
//! <dir>/<topic>/<partition>/<base:020>.log     segment files, named by the offset of their first record
//! <dir>/<topic>/<partition>/<base:020>.summary a sealed segment's summary (summary.rs)
//! ```
//!
//! A topic directory without `meta.json` is the leftover of an interrupted
//! create or drop and is removed when the store is opened.
//!
//! # Retention
//!
//! A topic with `retention_ms` or `retention_bytes` deletes its oldest sealed
//! segments (never the active one): those last written longer ago than
//! `retention_ms`, and while a partition holds more than `retention_bytes`. The
//! partition's first offset (its log start) then moves up to the first remaining
//! segment; it is recorded in `<partition>/log_start` (written and fsynced before
//! any file is deleted, so a crash midway is finished on the next open). Reads
//! below the log start begin at the log start. Retention runs after an append
//! rolls a segment over and when [`TopicStore::apply_retention`] is called.
//!
//! A compacted topic (`compact`) rewrites its sealed segments at the same moments,
//! keeping only the latest record of each key: a removed record leaves a
//! placeholder (flag bit 2, no key or value) so offsets stay dense, and reads skip
//! it. The rewrite goes through a temporary file and an atomic rename.
//!
//! # Batch format (version 1, all integers little-endian)
//!
//! Each call to [`Topic::append`] writes one batch to the active segment:
//!
//! ```text
//! offset size  field
//!  0     1     magic/version byte (0x57, 'W' = format version 1)
//!  1     4     payload length in bytes (u32), everything after the CRC field
//!  5     4     CRC32 (crc32fast) of the payload
//!  9     8     base offset: offset of the first record (u64)      -- payload starts here
//! 17     4     record count, at least 1 (u32)
//! 21     14    only when the magic byte is 0x58 (a batch of an idempotent Kafka
//!              producer): producer id (i64), epoch (i16), base sequence (i32);
//!              recovery rebuilds each producer's last batch from these
//! ...    ...   records, back to back:
//!                8  timestamp in milliseconds (i64)
//!                1  flags: bit 0 = a key follows, bit 1 = headers follow the value,
//!                   bit 2 (alone) = removed by compaction, nothing follows
//!               [4  key length (u32) + key bytes]   only when present
//!                4  value length (u32) + value bytes
//!               [4  header count (u32), then per header: 4 name length + name bytes,
//!                1  value presence (0/1), [4 value length + value bytes]]   only with bit 1
//! ```
//!
//! The CRC covers the base offset and record count as well as the records,
//! so a batch that passes the check is trusted as a whole.
//!
//! # Recovery
//!
//! On open the active (last) segment of each partition is scanned and every batch's CRC
//! is verified; a sealed segment opens from its summary (`summary.rs`) instead, and is
//! scanned the same way only when it has no true one. Every batch read later is
//! CRC-checked again, so damage in a sealed segment still surfaces, as a read error. In the
//! last segment of a partition, the first batch that is cut short, has a bad
//! magic byte or fails its CRC marks a torn tail (a write that never became
//! durable): the file is truncated there and a warning is logged. The same
//! damage in any earlier segment is reported as an error, because those bytes
//! were durable and silently dropping them would lose acknowledged data.
//!
//! # Durability and visibility
//!
//! [`Topic::append`] returns only after its batch is fsynced. Concurrent
//! appenders to one partition share fsyncs (group commit, described in
//! `partition.rs`). Readers ([`Topic::read`], [`Topic::end_offset`]) only
//! see records that are already durable.

mod batch;
mod partition;
mod segment;
mod store;
mod summary;
mod topic;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use batch::ProducerStamp;
pub use partition::IdempotentAppend;
pub use store::TopicStore;
pub use topic::Topic;

/// Default size at which a partition's active segment is closed and a new
/// one started: 64 MiB.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;

/// Upper bound on the number of partitions of one topic. Each partition is a
/// directory with open files, so an absurd count is rejected up front.
pub const PARTITIONS_MAX: u32 = 10_000;

/// Longest accepted topic name, in characters.
pub const TOPIC_NAME_CHARS_MAX: usize = 200;

/// One entry of a partition's log.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Optional key, typically used by producers to choose a partition.
    pub key: Option<Bytes>,
    /// The payload.
    pub value: Bytes,
    /// Event time in milliseconds since the Unix epoch, chosen by the writer.
    pub timestamp_ms: i64,
    /// Headers (name, value) in order, as Kafka producers attach them.
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

impl Record {
    /// Unkeyed records holding `values`, all stamped with the current time.
    pub fn unkeyed_now(values: Vec<Bytes>) -> Vec<Record> {
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        values
            .into_iter()
            .map(|value| Record {
                key: None,
                value,
                timestamp_ms,
                headers: Vec::new(),
            })
            .collect()
    }
}

/// Per-topic settings, stored as `meta.json` in the topic's directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopicConfig {
    /// Number of partitions, 1..=[`PARTITIONS_MAX`]. Fixed at creation.
    pub partitions: u32,
    /// Size in bytes at or above which the active segment is rolled over on
    /// the next append. A single batch is never split, so a segment can grow
    /// past this by up to one batch.
    pub segment_bytes_max: u64,
    /// Retention by age: sealed segments whose last write is older than this many
    /// milliseconds are deleted. None keeps everything.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// Retention by size: the oldest sealed segments are deleted while a partition holds more
    /// than this many bytes. None keeps everything.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Compacted topic (`cleanup_policy = 'compact'`): sealed segments keep only the latest
    /// record of each key (records without a key are kept).
    #[serde(default)]
    pub compact: bool,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            retention_ms: None,
            retention_bytes: None,
            compact: false,
        }
    }
}

impl TopicConfig {
    /// Whether the topic deletes or compacts old segments.
    pub fn has_retention(&self) -> bool {
        self.retention_ms.is_some() || self.retention_bytes.is_some() || self.compact
    }

    /// `cleanup.policy` as Kafka writes it.
    pub fn cleanup_policy(&self) -> &'static str {
        match (
            self.compact,
            self.retention_ms.is_some() || self.retention_bytes.is_some(),
        ) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        }
    }

    /// Sets one option by name, as `CREATE TOPIC ... WITH (...)` and Kafka's CreateTopics
    /// write them: `partitions`, `retention` (`'7d'`, `'12h'`, `'30m'`, `'10s'`, `'500ms'`, or
    /// milliseconds; `retention.ms` in Kafka), `retention_bytes`, `segment_bytes`,
    /// `cleanup_policy` (`delete`, `compact`, or both). `-1` means no limit. The error says
    /// what is wrong.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        let bytes = |what: &str| -> Result<Option<u64>, String> {
            match value {
                "-1" => Ok(None),
                v => v
                    .parse::<u64>()
                    .ok()
                    .filter(|&b| b > 0)
                    .map(Some)
                    .ok_or_else(|| {
                        format!("{what} must be a positive number of bytes, not \"{v}\"")
                    }),
            }
        };
        match key.replace('.', "_").to_ascii_lowercase().as_str() {
            "partitions" => {
                self.partitions = value
                    .parse()
                    .ok()
                    .filter(|p| (1..=PARTITIONS_MAX).contains(p))
                    .ok_or_else(|| {
                        format!("partitions must be an integer from 1 to {PARTITIONS_MAX}, not \"{value}\"")
                    })?;
            }
            "retention" | "retention_ms" => {
                self.retention_ms = match value {
                    "-1" => None,
                    v => Some(parse_duration_ms(v).ok_or_else(|| {
                        format!("retention must be a duration like '7d', '12h', '30m', '10s' or milliseconds, not \"{v}\"")
                    })?),
                }
            }
            "retention_bytes" => self.retention_bytes = bytes("retention_bytes")?,
            "segment_bytes" => {
                self.segment_bytes_max =
                    bytes("segment_bytes")?.unwrap_or(SEGMENT_BYTES_MAX_DEFAULT)
            }
            "cleanup_policy" => {
                let mut compact = false;
                for policy in value.split(',').map(|p| p.trim().to_ascii_lowercase()) {
                    match policy.as_str() {
                        "compact" => compact = true,
                        "delete" => {}
                        other => {
                            return Err(format!(
                                "cleanup_policy must be 'delete', 'compact' or 'compact,delete', not \"{other}\""
                            ));
                        }
                    }
                }
                self.compact = compact;
            }
            other => return Err(format!("unknown topic option \"{other}\"")),
        }
        Ok(())
    }
}

/// `'7d'`, `'12h'`, `'30m'`, `'10s'`, `'500ms'` or plain milliseconds, in milliseconds.
fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_ms: u64 = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_ms).filter(|&ms| ms > 0)
}

/// Errors returned by the topic store.
#[derive(Debug)]
pub enum TopicError {
    /// `create_topic` was given a name that is already in use.
    AlreadyExists(String),
    /// No topic has this name (or it was dropped while a handle was held).
    NotFound(String),
    /// The partition index is out of range for the topic.
    BadPartition {
        topic: String,
        partition: u32,
        partitions: u32,
    },
    /// The topic name breaks the naming rules (see [`validate_topic_name`]).
    InvalidName(String),
    /// An I/O failure, including corrupt data (`InvalidData`) and invalid
    /// arguments such as an oversized record (`InvalidInput`).
    Io(io::Error),
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::AlreadyExists(name) => write!(f, "topic {name:?} already exists"),
            TopicError::NotFound(name) => write!(f, "topic {name:?} not found"),
            TopicError::BadPartition {
                topic,
                partition,
                partitions,
            } => write!(
                f,
                "topic {topic:?} has {partitions} partitions, partition {partition} does not exist"
            ),
            TopicError::InvalidName(name) => write!(
                f,
                "invalid topic name {name:?}: use 1 to {TOPIC_NAME_CHARS_MAX} characters of \
                 [A-Za-z0-9._-], not \".\" or \"..\""
            ),
            TopicError::Io(err) => write!(f, "topic storage I/O error: {err}"),
        }
    }
}

impl std::error::Error for TopicError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TopicError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for TopicError {
    fn from(err: io::Error) -> Self {
        TopicError::Io(err)
    }
}

/// Checks a topic name: 1..=200 characters of `[A-Za-z0-9._-]`, and not `.`
/// or `..`. The name becomes a directory name, so this also keeps it from
/// escaping the data directory.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let ok = !name.is_empty()
        && name.len() <= TOPIC_NAME_CHARS_MAX
        && name.chars().all(allowed)
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(TopicError::InvalidName(name.to_string()))
    }
}

/// Builds an `InvalidData` error: bytes on disk do not make sense.
fn corrupt(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Builds an `InvalidInput` error: the caller asked for something impossible.
fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

// Lock helpers. The state behind every lock in this module is only updated
// after the I/O it describes has succeeded, with no panicking code in
// between, so a poisoned lock still holds consistent state and is recovered.

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read_lock<T>(rwlock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rwlock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write_lock<T>(rwlock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rwlock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Fsyncs a directory so that entries created, renamed or removed in it are
/// durable.
fn sync_dir(path: &std::path::Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}
