//! One partition: its segments, the append path with group commit, reads
//! and truncation.
//!
//! # Group commit
//!
//! An append encodes its batch, then takes the writer lock only to write the
//! batch (to the page cache) and advance the written offset. It then enters
//! the sync step under a separate sync lock: if `synced_offset` already
//! covers its batch, some other appender's fsync did the work and it returns
//! at once; otherwise it notes the written offset, fsyncs the active segment
//! and publishes that offset as `synced_offset`. While one thread fsyncs,
//! others keep writing, and the next fsync covers all of them together.
//!
//! Only the active segment is fsynced by the sync step, so a segment is
//! fsynced when it is rolled over, before any write goes to its successor.
//!
//! # Visibility
//!
//! Readers only see records below `synced_offset`, so nothing is ever
//! returned that could vanish in a crash.
//!
//! # Lock order
//!
//! `sync` before `writer` before `segments` before a segment's index. The
//! append path never holds two of the first three at once.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tracing::warn;

use super::batch::{EncodedBatch, ProducerStamp};
use super::segment::{REWRITE_SUFFIX, Segment};
use super::summary::{self, SUMMARY_SUFFIX, StampedBatch};
use super::{Record, TopicError, corrupt, invalid_input, lock, read_lock, sync_dir, write_lock};

/// The file recording a partition's log start (see the module doc of `topics`).
const LOG_START_FILE: &str = "log_start";

/// What a partition keeps: ages and sizes past which its oldest sealed segments go.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Retention {
    pub max_age: Option<std::time::Duration>,
    pub max_bytes: Option<u64>,
    /// Keep only the latest record per key in sealed segments.
    pub compact: bool,
}

/// The last batch an idempotent producer wrote to a partition.
#[derive(Clone, Copy, Debug)]
struct LastBatch {
    epoch: i16,
    base_sequence: i32,
    next_sequence: i32,
    base_offset: u64,
    end_offset: u64,
}

/// What an idempotent append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdempotentAppend {
    /// Written at this base offset.
    Written(u64),
    /// A retry of the producer's last batch, already written at this base offset.
    Retry(u64),
    /// The sequence is below the last batch's: an older batch sent again.
    DuplicateSequence,
    /// The sequence skips ahead of what the producer wrote.
    OutOfOrder,
    /// The producer's epoch is older than one already seen (a fenced producer).
    StaleEpoch,
}

/// Most records a read reserves room for up front; larger reads grow as
/// they go, so a huge `max_records` does not allocate a huge buffer.
const READ_PREALLOC_RECORDS_MAX: u64 = 64 * 1024;

/// Whether a partition accepts writes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Status {
    Open,
    /// A write or fsync failed; the on-disk state is uncertain until the
    /// store is reopened and the log re-scanned.
    Failed,
    /// The topic was dropped.
    Dropped,
}

/// State guarded by the writer lock.
struct Writer {
    status: Status,
    /// Offset the next appended record gets (everything below is written,
    /// not necessarily durable).
    next_offset: u64,
    /// Segment that receives appends (the last one).
    active: Arc<Segment>,
    /// Size of the active segment in bytes.
    active_bytes: u64,
    /// The last batch of each idempotent producer in the active segment, for its summary.
    active_stamps: std::collections::HashMap<i64, StampedBatch>,
}

/// One partition of a topic.
pub(super) struct Partition {
    topic: Arc<str>,
    number: u32,
    dir: PathBuf,
    segment_bytes_max: u64,
    /// All segments in offset order; the last one is the active segment.
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
    /// Serialises fsyncs; see the module doc.
    sync: Mutex<()>,
    /// Records below this offset are durable and visible to readers.
    synced_offset: AtomicU64,
    /// Each idempotent producer's last batch here, rebuilt from the stamped batches at open.
    producers: Mutex<std::collections::HashMap<i64, LastBatch>>,
    /// The first offset still held: records below it were deleted by retention.
    log_start: AtomicU64,
    retention: Retention,
    /// Number of data fsyncs issued on this partition's segments.
    fsyncs: AtomicU64,
}

impl Partition {
    /// Creates the directory of a new, empty partition with its first
    /// segment, durably.
    pub fn create_dir(dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)?;
        Segment::create(dir, 0)?;
        sync_dir(dir)
    }

    /// Opens an existing partition directory: opens its segments (sealed ones from their
    /// summaries, scanning the last one and cutting a torn tail off it) and checks that
    /// they form one unbroken log starting at the log start.
    pub fn open(
        dir: &Path,
        topic: Arc<str>,
        number: u32,
        segment_bytes_max: u64,
        retention: Retention,
    ) -> io::Result<Partition> {
        let log_start = read_log_start(dir)?;
        let mut bases = Vec::new();
        let mut summaries = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = Segment::parse_file_name(&name) {
                bases.push(base);
            } else if let Some(stem) = name.strip_suffix(SUMMARY_SUFFIX) {
                summaries.push((stem.to_string(), entry.path()));
            } else if name.ends_with(REWRITE_SUFFIX) {
                warn!(file = %entry.path().display(), "removing leftover of an interrupted truncate");
                fs::remove_file(entry.path())?;
            }
        }
        bases.sort_unstable();
        // Segments wholly below the log start are what an interrupted retention left.
        while bases.len() > 1 && bases[1] <= log_start {
            warn!(dir = %dir.display(), base = bases[0], "finishing an interrupted retention");
            fs::remove_file(dir.join(Segment::file_name(bases[0])))?;
            bases.remove(0);
        }
        // A summary without its segment is what a deletion interrupted midway left.
        for (stem, path) in summaries {
            let segment_exists = Segment::parse_file_name(&format!("{stem}.log"))
                .is_some_and(|base| bases.binary_search(&base).is_ok());
            if !segment_exists {
                fs::remove_file(path)?;
            }
        }
        if bases.first() != Some(&log_start) {
            return Err(corrupt(format!(
                "{}: no segment starting at the log start, offset {log_start}",
                dir.display()
            )));
        }
        let mut segments = Vec::with_capacity(bases.len());
        let mut end_offset = log_start;
        let mut active_bytes = 0;
        let mut producers = std::collections::HashMap::new();
        let mut active_stamps = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let path = dir.join(Segment::file_name(base));
            if base != end_offset {
                return Err(corrupt(format!(
                    "{}: starts at offset {base} but the previous segment ends at {end_offset}",
                    path.display()
                )));
            }
            let scanned = Segment::open(&path, base, i + 1 == bases.len())?;
            end_offset = scanned.end_offset;
            active_bytes = scanned.size_bytes;
            for &(stamp, base_offset, count) in &scanned.stamps {
                producers.insert(stamp.producer_id, last_batch(stamp, base_offset, count));
            }
            active_stamps = scanned.stamps;
            segments.push(Arc::new(scanned.segment));
        }
        let active_stamps = active_stamps
            .into_iter()
            .map(|batch| (batch.0.producer_id, batch))
            .collect();
        let active = segments
            .last()
            .cloned()
            .ok_or_else(|| corrupt(format!("{}: no segments", dir.display())))?;
        Ok(Partition {
            topic,
            number,
            dir: dir.to_path_buf(),
            segment_bytes_max,
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                status: Status::Open,
                next_offset: end_offset,
                active,
                active_bytes,
                active_stamps,
            }),
            sync: Mutex::new(()),
            synced_offset: AtomicU64::new(end_offset),
            producers: Mutex::new(producers),
            log_start: AtomicU64::new(log_start),
            retention,
            fsyncs: AtomicU64::new(0),
        })
    }

    /// The first offset the partition still holds (0 until retention deletes a segment).
    pub fn log_start(&self) -> u64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Deletes the oldest sealed segments past the retention limits (see the module doc of
    /// `topics`). Returns how many segments were deleted.
    pub fn apply_retention(&self) -> io::Result<usize> {
        let compacted = if self.retention.compact {
            self.compact()?
        } else {
            0
        };
        Ok(compacted + self.delete_old_segments()?)
    }

    /// Rewrites the sealed segments holding records a later record with the same key
    /// supersedes; returns how many were rewritten. The latest offset of each key is found
    /// over the whole partition (the active segment included) before any rewrite.
    fn compact(&self) -> io::Result<usize> {
        let segments: Vec<Arc<Segment>> = read_lock(&self.segments).clone();
        let end = self.end_offset();
        let mut latest: std::collections::HashMap<bytes::Bytes, u64> = Default::default();
        for segment in &segments {
            for (offset, record) in segment.records()? {
                if let (true, Some(key)) = (offset < end, record.key) {
                    // A copy: the decoded key shares its batch's buffer, which would stay pinned.
                    latest.insert(bytes::Bytes::copy_from_slice(&key), offset);
                }
            }
        }
        let superseded = |offset: u64, r: &Record| {
            r.key
                .as_ref()
                .is_some_and(|k| latest.get(k).is_some_and(|&l| l > offset))
        };
        let mut rewritten = 0;
        for segment in &segments[..segments.len().saturating_sub(1)] {
            // The writer lock keeps truncation and retention away while a segment is replaced.
            let _writer = lock(&self.writer);
            let mut all = write_lock(&self.segments);
            let Some(slot) = all.iter_mut().find(|s| Arc::ptr_eq(s, segment)) else {
                continue; // retention or a truncate removed it meanwhile
            };
            if let Some(compacted) = segment.compact(|offset, r| !superseded(offset, r))? {
                *slot = Arc::new(compacted);
                rewritten += 1;
            }
        }
        Ok(rewritten)
    }

    /// Deletes the oldest sealed segments past the age and size limits; returns how many.
    fn delete_old_segments(&self) -> io::Result<usize> {
        let Retention {
            max_age, max_bytes, ..
        } = self.retention;
        if max_age.is_none() && max_bytes.is_none() {
            return Ok(0);
        }
        // The writer lock keeps the active segment (and rolls) still while we look.
        let writer = lock(&self.writer);
        let mut segments = write_lock(&self.segments);
        let sealed = segments.len().saturating_sub(1);
        let mut sizes = Vec::with_capacity(sealed);
        let mut ages = Vec::with_capacity(sealed);
        for segment in &segments[..sealed] {
            let meta = fs::metadata(segment.path())?;
            sizes.push(meta.len());
            ages.push(meta.modified()?.elapsed().unwrap_or_default());
        }
        let mut total: u64 = sizes.iter().sum::<u64>() + writer.active_bytes;
        let mut delete = 0;
        while delete < sealed {
            let too_old = max_age.is_some_and(|limit| ages[delete] > limit);
            let too_big = max_bytes.is_some_and(|limit| total > limit);
            if !too_old && !too_big {
                break;
            }
            total -= sizes[delete];
            delete += 1;
        }
        if delete == 0 {
            return Ok(0);
        }
        let new_start = segments[delete].base_offset();
        write_log_start(&self.dir, new_start)?;
        self.log_start.store(new_start, Ordering::Release);
        for segment in segments.drain(..delete) {
            segment.remove_files()?;
        }
        sync_dir(&self.dir)?;
        Ok(delete)
    }

    /// Offset below which records are durable and readable.
    pub fn end_offset(&self) -> u64 {
        self.synced_offset.load(Ordering::Acquire)
    }

    /// Number of data fsyncs issued so far.
    /// Bytes the partition's segment files take on disk (the active segment as written so
    /// far). Takes no writer lock: appends go on meanwhile.
    pub fn size_bytes(&self) -> io::Result<u64> {
        let segments: Vec<Arc<Segment>> = read_lock(&self.segments).clone();
        segments
            .iter()
            .map(|segment| fs::metadata(segment.path()).map(|m| m.len()))
            .sum()
    }

    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Appends `records` as one batch and waits until it is durable. Returns
    /// the offset of the first record; an empty slice writes nothing and
    /// returns the current end offset.
    pub fn append(&self, records: &[Record]) -> Result<u64, TopicError> {
        if records.is_empty() {
            return Ok(self.end_offset());
        }
        match self.write_durably(EncodedBatch::encode(records, None)?, None)? {
            IdempotentAppend::Written(base_offset) => Ok(base_offset),
            other => unreachable!("only a stamped batch is checked, yet got {other:?}"),
        }
    }

    /// Appends `records` for an idempotent producer: checks the batch's sequence against the
    /// producer's last batch here (under the writer lock, so check and write are one step),
    /// writes it stamped, and waits until it is durable. A retry of the last batch is not
    /// written again; its original offset comes back once that is durable.
    pub fn append_idempotent(
        &self,
        records: &[Record],
        stamp: ProducerStamp,
    ) -> Result<IdempotentAppend, TopicError> {
        if records.is_empty() {
            return Ok(IdempotentAppend::Written(self.end_offset()));
        }
        self.write_durably(EncodedBatch::encode(records, Some(stamp))?, Some(stamp))
    }

    /// The append path: under the writer lock, checks a stamped batch's sequence and writes
    /// the batch; then waits until it is durable and, if it rolled a segment, does the
    /// housekeeping.
    fn write_durably(
        &self,
        mut batch: EncodedBatch,
        stamp: Option<ProducerStamp>,
    ) -> Result<IdempotentAppend, TopicError> {
        let (base_offset, end_offset, rolled) = {
            let mut writer = lock(&self.writer);
            self.check_open(&writer)?;
            let mut producers = stamp.map(|_| lock(&self.producers));
            if let (Some(stamp), Some(known)) = (stamp, &producers)
                && let Some(last) = known.get(&stamp.producer_id).copied()
            {
                match sequence_check(&last, &stamp) {
                    Some(IdempotentAppend::Retry(base_offset)) => {
                        // Both locks go before waiting for the disk.
                        drop(producers);
                        drop(writer);
                        self.sync_through(last.end_offset)?;
                        return Ok(IdempotentAppend::Retry(base_offset));
                    }
                    Some(refused) => return Ok(refused),
                    None => {}
                }
            }
            let written = match self.write_batch(&mut writer, &mut batch) {
                Ok(offsets) => offsets,
                Err(err) => {
                    writer.status = Status::Failed;
                    return Err(err.into());
                }
            };
            if let (Some(stamp), Some(producers)) = (stamp, producers.as_mut()) {
                let count = (written.1 - written.0) as u32;
                producers.insert(stamp.producer_id, last_batch(stamp, written.0, count));
                let batch = (stamp, written.0, count);
                writer.active_stamps.insert(stamp.producer_id, batch);
            }
            written
        };
        self.sync_through(end_offset)?;
        self.after_append(rolled);
        Ok(IdempotentAppend::Written(base_offset))
    }

    /// After an append that rolled a segment over, applies retention and compaction. That is
    /// housekeeping: the append is durable either way, so a failure is only logged.
    fn after_append(&self, rolled: bool) {
        if rolled && let Err(err) = self.apply_retention() {
            warn!(topic = %self.topic, partition = self.number, "retention failed: {err}");
        }
    }

    /// Writes a batch under the writer lock, rolling the segment over first
    /// if it is full. Returns the batch's base offset and end offset, and whether it rolled.
    fn write_batch(
        &self,
        writer: &mut Writer,
        batch: &mut EncodedBatch,
    ) -> io::Result<(u64, u64, bool)> {
        let rolled = writer.active_bytes > 0 && writer.active_bytes >= self.segment_bytes_max;
        if rolled {
            self.roll(writer)?;
        }
        let base_offset = writer.next_offset;
        let bytes = batch.seal(base_offset);
        writer
            .active
            .write_batch(writer.active_bytes, base_offset, bytes)?;
        writer.active_bytes += batch.len_bytes();
        writer.next_offset += u64::from(batch.record_count());
        Ok((base_offset, writer.next_offset, rolled))
    }

    /// Seals the active segment (fsync, then its summary) and starts a new one at the next
    /// offset.
    fn roll(&self, writer: &mut Writer) -> io::Result<()> {
        writer.active.sync_data()?;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let stamps = writer
            .active_stamps
            .drain()
            .map(|(_, batch)| batch)
            .collect();
        writer
            .active
            .seal(writer.next_offset, writer.active_bytes, stamps)?;
        let segment = Arc::new(Segment::create(&self.dir, writer.next_offset)?);
        sync_dir(&self.dir)?;
        let mut segments = write_lock(&self.segments);
        if let Some(sealed) = segments.last_mut() {
            // Its file closes once the readers still holding the open one are done.
            *sealed = Arc::new(sealed.sealed());
        }
        segments.push(Arc::clone(&segment));
        writer.active = segment;
        writer.active_bytes = 0;
        Ok(())
    }

    /// The group-commit sync step: returns once every record below
    /// `end_offset` is durable, fsyncing only if nobody else already has.
    fn sync_through(&self, end_offset: u64) -> Result<(), TopicError> {
        let _sync = lock(&self.sync);
        if self.synced_offset.load(Ordering::Acquire) >= end_offset {
            return Ok(());
        }
        let (written, active) = {
            let writer = lock(&self.writer);
            self.check_open(&writer)?;
            (writer.next_offset, Arc::clone(&writer.active))
        };
        if let Err(err) = active.sync_data() {
            lock(&self.writer).status = Status::Failed;
            return Err(err.into());
        }
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.synced_offset.store(written, Ordering::Release);
        Ok(())
    }

    /// Reads up to `max_records` durable records starting at offset `from`.
    /// Reads below the log start begin at the log start. In a compacted topic the offsets
    /// of what comes back may have gaps; a read returns nothing only at the end.
    pub fn read(&self, from: u64, max_records: usize) -> Result<Vec<(u64, Record)>, TopicError> {
        let mut from = from.max(self.log_start());
        let end = self.end_offset();
        let window = u64::try_from(max_records).unwrap_or(u64::MAX);
        loop {
            let out = self.read_window(from, max_records)?;
            let next = from.saturating_add(window);
            if !out.is_empty() || next >= end || max_records == 0 {
                return Ok(out);
            }
            from = next; // a window of records compaction removed: look further
        }
    }

    /// The records in offsets `from..from + max_records` (fewer where compaction removed some).
    fn read_window(&self, from: u64, max_records: usize) -> Result<Vec<(u64, Record)>, TopicError> {
        let end = self.end_offset();
        if from >= end || max_records == 0 {
            return Ok(Vec::new());
        }
        let max_records = u64::try_from(max_records).unwrap_or(u64::MAX);
        let until = end.min(from.saturating_add(max_records));
        let segments: Vec<Arc<Segment>> = {
            let all = read_lock(&self.segments);
            let first = all
                .partition_point(|s| s.base_offset() <= from)
                .saturating_sub(1);
            all[first..].to_vec()
        };
        let capacity = (until - from).min(READ_PREALLOC_RECORDS_MAX) as usize;
        let mut out = Vec::with_capacity(capacity);
        let mut next = from;
        for (i, segment) in segments.iter().enumerate() {
            let segment_until = segments
                .get(i + 1)
                .map_or(until, |following| following.base_offset().min(until));
            if next < segment_until {
                segment.read_records(next, segment_until, &mut out)?;
                next = segment_until;
            }
            if next >= until {
                return Ok(out);
            }
        }
        Err(corrupt(format!(
            "{}: records {next}..{until} are missing",
            self.dir.display()
        ))
        .into())
    }

    /// Drops every record at or above `offset` so that the end offset
    /// becomes `offset`. Appends written but not yet fsynced are made
    /// durable first, so their callers are told the truth before the cut.
    /// `offset` beyond the end is an `InvalidInput` error.
    pub fn truncate(&self, offset: u64) -> Result<(), TopicError> {
        let _sync = lock(&self.sync);
        let mut writer = lock(&self.writer);
        self.check_open(&writer)?;
        if offset < self.log_start() {
            return Err(invalid_input(format!(
                "cannot truncate partition {} of topic {:?} to offset {offset}: retention \
                 already deleted everything below {}",
                self.number,
                self.topic,
                self.log_start()
            ))
            .into());
        }
        if offset > writer.next_offset {
            return Err(invalid_input(format!(
                "cannot truncate partition {} of topic {:?} to offset {offset}: it ends at {}",
                self.number, self.topic, writer.next_offset
            ))
            .into());
        }
        lock(&self.producers).retain(|_, last| last.end_offset <= offset);
        if let Err(err) = self.cut(&mut writer, offset) {
            writer.status = Status::Failed;
            return Err(err.into());
        }
        Ok(())
    }

    /// The I/O of [`Partition::truncate`], run under the sync and writer
    /// locks. Segments are removed newest first, each removal made durable
    /// before the next, so a crash leaves an unbroken (if longer) log.
    fn cut(&self, writer: &mut Writer, offset: u64) -> io::Result<()> {
        if self.end_offset() < writer.next_offset {
            writer.active.sync_data()?;
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        self.synced_offset.store(offset, Ordering::Release);
        if offset == writer.next_offset {
            return Ok(());
        }
        let mut segments = write_lock(&self.segments);
        let keep = segments
            .partition_point(|s| s.base_offset() < offset)
            .max(1);
        let kept_end = segments
            .get(keep)
            .map_or(writer.next_offset, |s| s.base_offset());
        while segments.len() > keep {
            if let Some(segment) = segments.pop() {
                segment.remove_files()?;
                sync_dir(&self.dir)?;
            }
        }
        let Some(last) = segments.last_mut() else {
            return Err(corrupt(format!("{}: no segments", self.dir.display())));
        };
        if !Arc::ptr_eq(last, &writer.active) {
            // A sealed segment becomes the active one: its producers come from its summary.
            let sealed = summary::Summary::read(last.path(), last.base_offset())?;
            writer.active_stamps = sealed
                .map(|s| s.producers)
                .unwrap_or_default()
                .into_iter()
                .map(|batch| (batch.0.producer_id, batch))
                .collect();
            last.unseal()?;
        }
        writer
            .active_stamps
            .retain(|_, &mut (_, base, count)| base + u64::from(count) <= offset);
        let active_bytes = if offset < kept_end {
            let (replacement, bytes) = last.cut(offset)?;
            if let Some(replacement) = replacement {
                *last = Arc::new(replacement);
            }
            bytes
        } else {
            fs::metadata(last.path())?.len()
        };
        if !last.holds_file() {
            *last = Arc::new(last.reopened()?);
        }
        writer.active = Arc::clone(last);
        writer.active_bytes = active_bytes;
        writer.next_offset = offset;
        Ok(())
    }

    /// Refuses all further appends because the topic was dropped.
    pub fn close(&self) {
        lock(&self.writer).status = Status::Dropped;
    }

    fn check_open(&self, writer: &Writer) -> Result<(), TopicError> {
        match writer.status {
            Status::Open => Ok(()),
            Status::Dropped => Err(TopicError::NotFound(self.topic.to_string())),
            Status::Failed => Err(io::Error::other(format!(
                "partition {} of topic {:?} stopped after an I/O failure; reopen the store to recover",
                self.number, self.topic
            ))
            .into()),
        }
    }
}

/// The recorded log start of the partition in `dir` (0 when none was ever recorded).
fn read_log_start(dir: &Path) -> io::Result<u64> {
    match fs::read_to_string(dir.join(LOG_START_FILE)) {
        Ok(text) => text.trim().parse().map_err(|_| {
            corrupt(format!(
                "{}: not an offset: {text:?}",
                dir.join(LOG_START_FILE).display()
            ))
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(err),
    }
}

/// Records the log start durably: a temporary file, fsynced, renamed over the old one.
fn write_log_start(dir: &Path, offset: u64) -> io::Result<()> {
    let tmp = dir.join(format!("{LOG_START_FILE}.tmp"));
    {
        let mut file = fs::File::create(&tmp)?;
        io::Write::write_all(&mut file, offset.to_string().as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(LOG_START_FILE))?;
    sync_dir(dir)
}

/// What a stamped batch is, given its producer's last batch here: None when it is the next
/// one (or starts a newer epoch) and must be written.
fn sequence_check(last: &LastBatch, stamp: &ProducerStamp) -> Option<IdempotentAppend> {
    if stamp.epoch < last.epoch {
        return Some(IdempotentAppend::StaleEpoch);
    }
    if stamp.epoch > last.epoch {
        return None; // a newer epoch starts its sequences afresh
    }
    match stamp.base_sequence {
        s if s == last.base_sequence => Some(IdempotentAppend::Retry(last.base_offset)),
        s if s < last.next_sequence => Some(IdempotentAppend::DuplicateSequence),
        s if s > last.next_sequence => Some(IdempotentAppend::OutOfOrder),
        _ => None,
    }
}

fn last_batch(stamp: ProducerStamp, base_offset: u64, count: u32) -> LastBatch {
    LastBatch {
        epoch: stamp.epoch,
        base_sequence: stamp.base_sequence,
        next_sequence: stamp.base_sequence.wrapping_add(count as i32),
        base_offset,
        end_offset: base_offset + u64::from(count),
    }
}
