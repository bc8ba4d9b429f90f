//! One segment file of a partition and its sparse in-memory index.
//!
//! A segment is a file of back-to-back batches named after the offset of its
//! first record. All reads and writes use positioned I/O (`pread`/`pwrite`
//! via [`FileExt`]), so one file handle serves the writer and any number of
//! concurrent readers without a shared cursor.
//!
//! The index maps a batch's base offset to its byte position. It is sparse:
//! a batch is indexed only when it starts at least [`INDEX_INTERVAL_BYTES`]
//! after the previous indexed batch (the first batch always is), so a read
//! seeks to the nearest indexed batch and then skips at most a few KiB of
//! batch headers.
//!
//! Only the active segment is scanned at open; a sealed one opens from its summary
//! (`summary.rs`) when it has a true one, and gets one after a scan when it has none.
//!
//! A batch of many records (one big COPY is one batch) stays decoded while it is read in
//! windows (see [`DECODED_BATCH_RECORDS_MIN`]), so that it is decoded once, not once per window.
//!
//! Only the active segment keeps its file open. A sealed one opens its file for each call
//! that reads it (a read covers many batches), so a partition holds one descriptor however
//! long its history.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use tracing::warn;

use super::batch::{
    BATCH_HEADER_BYTES, BatchHeader, EncodedBatch, ProducerStamp, STAMP_BYTES, decode_batch,
};
use super::summary::{self, IndexEntry, StampedBatch, Summary};
use super::{Record, corrupt, lock, read_lock, sync_dir, write_lock};

/// A batch of at least this many records stays decoded after a read that ends inside it, until
/// a read reaches its end: readers take a partition in windows of `SOURCE_READ_RECORDS_MAX`
/// (8,192) records, so a batch of one big COPY (500,000 records, say) would otherwise be read
/// and decoded again for every window.
const DECODED_BATCH_RECORDS_MIN: u64 = 16_384;
/// How many such batches a segment keeps decoded at most (readers at different places).
const DECODED_BATCHES_MAX: usize = 2;

/// A batch's records, decoded, under the batch's byte position in the segment and its CRC (a
/// batch written at the same place after a cut is another batch).
type DecodedBatch = ((u64, u32), Arc<Vec<Option<Record>>>);

/// Minimum distance in bytes between two indexed batches of a segment.
pub(super) const INDEX_INTERVAL_BYTES: u64 = 4096;

/// Read buffer used when scanning a segment at open.
const SCAN_BUFFER_BYTES: usize = 256 * 1024;

/// Digits in a segment file name's base offset (enough for any u64).
const FILE_NAME_DIGITS: usize = 20;

/// Extension of segment files.
const SEGMENT_SUFFIX: &str = ".log";

/// Extension of a segment being rewritten by a truncate; a leftover one is
/// an interrupted rewrite whose original is still intact.
pub(super) const REWRITE_SUFFIX: &str = ".log.tmp";

/// A segment file plus its index.
#[derive(Debug)]
pub(super) struct Segment {
    base_offset: u64,
    path: PathBuf,
    /// The open file of the active segment; None for a sealed one (see the module doc).
    file: Option<File>,
    index: RwLock<Vec<IndexEntry>>,
    /// Big batches being read in windows, the latest last (see [`DECODED_BATCH_RECORDS_MIN`]).
    decoded: Mutex<Vec<DecodedBatch>>,
}

/// The segment's file for one call: the active segment's own, or one opened for the call.
enum Handle<'a> {
    Kept(&'a File),
    Opened(File),
}

impl std::ops::Deref for Handle<'_> {
    type Target = File;

    fn deref(&self) -> &File {
        match self {
            Handle::Kept(file) => file,
            Handle::Opened(file) => file,
        }
    }
}

fn open_read_write(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// What [`Segment::open`] learned from a segment's summary or from scanning it.
pub(super) struct ScannedSegment {
    pub segment: Segment,
    /// Offset just past the last valid record.
    pub end_offset: u64,
    /// File size after any torn tail was cut.
    pub size_bytes: u64,
    /// The last batch of each idempotent producer, in offset order: who wrote it, where,
    /// how many records.
    pub stamps: Vec<StampedBatch>,
}

impl Segment {
    /// File name of the segment starting at `base_offset`.
    pub fn file_name(base_offset: u64) -> String {
        format!(
            "{base_offset:0width$}{SEGMENT_SUFFIX}",
            width = FILE_NAME_DIGITS
        )
    }

    /// Base offset encoded in a segment file name, or `None` if `name` is
    /// not a segment file name.
    pub fn parse_file_name(name: &str) -> Option<u64> {
        let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
        let well_formed =
            digits.len() == FILE_NAME_DIGITS && digits.bytes().all(|b| b.is_ascii_digit());
        well_formed.then(|| digits.parse().ok()).flatten()
    }

    /// Creates a new, empty segment file in `dir`. The caller makes the
    /// directory entry durable.
    pub fn create(dir: &Path, base_offset: u64) -> io::Result<Segment> {
        let path = dir.join(Segment::file_name(base_offset));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Segment::from_parts(
            base_offset,
            path,
            Some(file),
            Vec::new(),
        ))
    }

    fn from_parts(
        base_offset: u64,
        path: PathBuf,
        file: Option<File>,
        index: Vec<IndexEntry>,
    ) -> Segment {
        Segment {
            base_offset,
            path,
            file,
            index: RwLock::new(index),
            decoded: Mutex::new(Vec::new()),
        }
    }

    /// Opens an existing segment. A sealed one (not `is_last`) with a true summary opens
    /// from it without reading the file; any other is scanned: every batch verified and
    /// the index built, and a sealed one then gets its summary.
    ///
    /// In the last segment of a partition (`is_last`), a damaged batch is a
    /// torn tail: the file is truncated there. Elsewhere it is an error.
    pub fn open(path: &Path, base_offset: u64, is_last: bool) -> io::Result<ScannedSegment> {
        let file_bytes = fs::metadata(path)?.len();
        if is_last {
            // The active segment changes: a summary left from before a crash or a truncate
            // no longer describes it.
            summary::remove(path)?;
        } else if let Some(summary) = Summary::read(path, base_offset)? {
            match summary.check(file_bytes) {
                Ok(()) => {
                    return Ok(ScannedSegment {
                        segment: Segment::from_parts(base_offset, path.into(), None, summary.index),
                        end_offset: summary.end_offset,
                        size_bytes: file_bytes,
                        stamps: summary.producers,
                    });
                }
                Err(problem) => warn!(
                    segment = %path.display(),
                    "scanning the segment instead of trusting its summary: {problem}"
                ),
            }
        }
        let scanned = Segment::scan(path, base_offset, is_last, file_bytes)?;
        if !is_last {
            let ScannedSegment {
                segment,
                end_offset,
                size_bytes,
                stamps,
            } = &scanned;
            segment.seal(*end_offset, *size_bytes, stamps.clone())?;
        }
        Ok(scanned)
    }

    /// Reads and verifies every batch of the segment and builds its index.
    fn scan(
        path: &Path,
        base_offset: u64,
        is_last: bool,
        file_bytes: u64,
    ) -> io::Result<ScannedSegment> {
        let file = open_read_write(path)?;
        let mut reader = BufReader::with_capacity(SCAN_BUFFER_BYTES, File::open(path)?);
        let mut index = Vec::new();
        let mut position = 0;
        let mut end_offset = base_offset;
        let mut stamps = Vec::new();
        while position < file_bytes {
            let header = match scan_batch(&mut reader, file_bytes - position)? {
                Ok((header, stamp)) => {
                    if let Some(stamp) = stamp {
                        stamps.push((stamp, header.base_offset, header.record_count));
                    }
                    header
                }
                Err(problem) if is_last => {
                    file.set_len(position)?;
                    file.sync_all()?;
                    warn!(
                        segment = %path.display(),
                        position,
                        bytes_cut = file_bytes - position,
                        problem,
                        "truncated torn tail of topic segment"
                    );
                    break;
                }
                Err(problem) => {
                    return Err(corrupt(format!(
                        "{}: {problem} at byte {position} of a sealed segment",
                        path.display()
                    )));
                }
            };
            if header.base_offset != end_offset {
                return Err(corrupt(format!(
                    "{}: batch at byte {position} has base offset {}, expected {end_offset}",
                    path.display(),
                    header.base_offset
                )));
            }
            add_to_index(&mut index, end_offset, position);
            position += header.batch_bytes();
            end_offset = header.end_offset();
        }
        Ok(ScannedSegment {
            segment: Segment::from_parts(base_offset, path.into(), is_last.then_some(file), index),
            end_offset,
            size_bytes: position,
            stamps: summary::last_per_producer(stamps),
        })
    }

    /// Writes the summary of this segment, which is sealed: fsynced, ending at
    /// `end_offset` after `size_bytes` bytes, with `stamps` as its producers' last batches.
    pub fn seal(
        &self,
        end_offset: u64,
        size_bytes: u64,
        mut stamps: Vec<StampedBatch>,
    ) -> io::Result<()> {
        stamps.sort_unstable_by_key(|&(_, base, _)| base);
        Summary {
            base_offset: self.base_offset,
            end_offset,
            size_bytes,
            index: read_lock(&self.index).clone(),
            producers: stamps,
        }
        .write(&self.path)
    }

    /// This segment, sealed: the same index, no open file.
    pub fn sealed(&self) -> Segment {
        let index = read_lock(&self.index).clone();
        Segment::from_parts(self.base_offset, self.path.clone(), None, index)
    }

    /// This segment with its file open, to become the active one again (after a truncate).
    pub fn reopened(&self) -> io::Result<Segment> {
        let index = read_lock(&self.index).clone();
        let file = open_read_write(&self.path)?;
        Ok(Segment::from_parts(
            self.base_offset,
            self.path.clone(),
            Some(file),
            index,
        ))
    }

    /// Whether the segment keeps its file open (only the active one does).
    pub fn holds_file(&self) -> bool {
        self.file.is_some()
    }

    /// The file for one call (see [`Handle`]).
    fn handle(&self) -> io::Result<Handle<'_>> {
        Ok(match &self.file {
            Some(file) => Handle::Kept(file),
            None => Handle::Opened(open_read_write(&self.path)?),
        })
    }

    /// Removes the segment's summary, durably, before the segment changes (and forgets the
    /// batches it keeps decoded).
    pub fn unseal(&self) -> io::Result<()> {
        lock(&self.decoded).clear();
        summary::remove(&self.path)
    }

    /// Removes the segment's files; the caller makes the removal durable.
    pub fn remove_files(&self) -> io::Result<()> {
        fs::remove_file(&self.path)?;
        match fs::remove_file(summary::path_for(&self.path)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// Offset of the first record this segment holds (or will hold).
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Path of the segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the file's data to stable storage (a sealed segment's already is).
    pub fn sync_data(&self) -> io::Result<()> {
        self.file.as_ref().map_or(Ok(()), File::sync_data)
    }

    /// Writes a batch at `position` (the current end of the file) and
    /// indexes it if due. Not durable until [`Segment::sync_data`].
    pub fn write_batch(&self, position: u64, base_offset: u64, bytes: &[u8]) -> io::Result<()> {
        let file = self.file.as_ref().ok_or_else(|| {
            io::Error::other(format!(
                "{}: write to a sealed segment",
                self.path.display()
            ))
        })?;
        file.write_all_at(bytes, position)?;
        add_to_index(&mut write_lock(&self.index), base_offset, position);
        Ok(())
    }

    /// Appends to `out` the records with offsets in `from..until`. The caller
    /// guarantees that this segment holds all of them and that they are
    /// durable, so every batch touched here is complete.
    pub fn read_records(
        &self,
        from: u64,
        until: u64,
        out: &mut Vec<(u64, Record)>,
    ) -> io::Result<()> {
        let (mut position, mut expected) = self.seek(from)?;
        let file = self.handle()?;
        while expected < until {
            let header = self.read_header(&file, position, expected)?;
            if header.end_offset() > from {
                let first = from.max(header.base_offset);
                let last = until.min(header.end_offset());
                let skip = (first - header.base_offset) as usize;
                let take = (last - first) as usize;
                let offsets = first..last;
                // Records removed by compaction leave gaps in the offsets.
                if u64::from(header.record_count) >= DECODED_BATCH_RECORDS_MIN {
                    let records = self.decoded_batch(&file, position, &header, last)?;
                    let kept = records.iter().skip(skip).take(take);
                    out.extend(offsets.zip(kept).filter_map(|(o, r)| Some((o, r.clone()?))));
                } else {
                    let (_, records) = self.read_batch_records(&file, position, &header)?;
                    let kept = records.into_iter().skip(skip).take(take);
                    out.extend(offsets.zip(kept).filter_map(|(o, r)| r.map(|r| (o, r))));
                }
            }
            position += header.batch_bytes();
            expected = header.end_offset();
        }
        Ok(())
    }

    /// Cuts the segment so that it ends just before `offset`, which must be
    /// one of its records. Returns the segment to use from now on (a new one
    /// if a batch had to be rewritten) and its size in bytes.
    ///
    /// The segment becomes the active one, so its summary goes first.
    /// A cut at a batch boundary shortens the file in place. A cut inside a
    /// batch writes the kept prefix and a shortened copy of that batch to a
    /// temporary file that atomically replaces the segment, so a crash leaves
    /// either the old or the new segment, never a torn one.
    pub fn cut(&self, offset: u64) -> io::Result<(Option<Segment>, u64)> {
        let (mut position, mut expected) = self.seek(offset)?;
        let file = self.handle()?;
        let header = loop {
            let header = self.read_header(&file, position, expected)?;
            if header.end_offset() > offset {
                break header;
            }
            position += header.batch_bytes();
            expected = header.end_offset();
        };
        self.unseal()?;
        write_lock(&self.index).retain(|entry| entry.offset < offset);
        if header.base_offset == offset {
            file.set_len(position)?;
            file.sync_all()?;
            return Ok((None, position));
        }
        let kept = (offset - header.base_offset) as usize;
        let (stamp, mut records) = self.read_batch_records(&file, position, &header)?;
        records.truncate(kept);
        let mut batch = EncodedBatch::encode_slots(records.iter().map(Option::as_ref), stamp)?;
        let new = self.rewrite(position, batch.seal(header.base_offset))?;
        Ok((Some(new), position + batch.len_bytes()))
    }

    /// Replaces the file with its first `prefix_bytes` followed by `tail`,
    /// via a temporary file and an atomic rename.
    fn rewrite(&self, prefix_bytes: u64, tail: &[u8]) -> io::Result<Segment> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let temp_path = dir.join(format!(
            "{:0width$}{REWRITE_SUFFIX}",
            self.base_offset,
            width = FILE_NAME_DIGITS
        ));
        let mut temp = File::create(&temp_path)?;
        let copied = io::copy(&mut File::open(&self.path)?.take(prefix_bytes), &mut temp)?;
        if copied != prefix_bytes {
            return Err(corrupt(format!(
                "{}: shorter than expected",
                self.path.display()
            )));
        }
        temp.write_all(tail)?;
        temp.sync_all()?;
        drop(temp);
        fs::rename(&temp_path, &self.path)?;
        sync_dir(dir)?;
        let file = open_read_write(&self.path)?;
        let index = read_lock(&self.index).clone();
        Ok(Segment::from_parts(
            self.base_offset,
            self.path.clone(),
            Some(file),
            index,
        ))
    }

    /// Rewrites the (sealed) segment without the records `keep` rejects, each batch keeping
    /// its offsets (removed records leave a placeholder). Returns the new segment, or None
    /// when nothing was removed. The rewrite goes through a temporary file and an atomic
    /// rename, as a cut does.
    pub fn compact(&self, keep: impl Fn(u64, &Record) -> bool) -> io::Result<Option<Segment>> {
        let file = self.handle()?;
        let file_bytes = file.metadata()?.len();
        let (mut position, mut offset) = (0, self.base_offset);
        let mut bytes = Vec::new();
        let mut removed = 0;
        while position < file_bytes {
            let header = self.read_header(&file, position, offset)?;
            let (stamp, mut records) = self.read_batch_records(&file, position, &header)?;
            for (i, slot) in records.iter_mut().enumerate() {
                if slot.as_ref().is_some_and(|r| !keep(offset + i as u64, r)) {
                    *slot = None;
                    removed += 1;
                }
            }
            let mut batch = EncodedBatch::encode_slots(records.iter().map(Option::as_ref), stamp)?;
            bytes.extend_from_slice(batch.seal(header.base_offset));
            position += header.batch_bytes();
            offset = header.end_offset();
        }
        if removed == 0 {
            return Ok(None);
        }
        self.unseal()?;
        self.rewrite(0, &bytes)?;
        Ok(Some(
            Segment::open(&self.path, self.base_offset, false)?.segment,
        ))
    }

    /// Every record the segment holds, in offset order (records compaction removed are
    /// skipped).
    pub fn records(&self) -> io::Result<Vec<(u64, Record)>> {
        let file = self.handle()?;
        let file_bytes = file.metadata()?.len();
        let (mut position, mut offset) = (0, self.base_offset);
        let mut out = Vec::new();
        while position < file_bytes {
            let header = self.read_header(&file, position, offset)?;
            let (_, records) = self.read_batch_records(&file, position, &header)?;
            let offsets = header.base_offset..header.end_offset();
            out.extend(offsets.zip(records).filter_map(|(o, r)| r.map(|r| (o, r))));
            position += header.batch_bytes();
            offset = header.end_offset();
        }
        Ok(out)
    }

    /// Position and base offset of the last indexed batch at or before
    /// `offset`.
    fn seek(&self, offset: u64) -> io::Result<(u64, u64)> {
        let index = read_lock(&self.index);
        let after = index.partition_point(|entry| entry.offset <= offset);
        match after.checked_sub(1).and_then(|i| index.get(i)) {
            Some(entry) => Ok((entry.position, entry.offset)),
            None => Err(corrupt(format!(
                "{}: no batch holds offset {offset}",
                self.path.display()
            ))),
        }
    }

    /// Reads the header of the batch at `position`, which should start at
    /// offset `expected`.
    fn read_header(&self, file: &File, position: u64, expected: u64) -> io::Result<BatchHeader> {
        let mut raw = [0; BATCH_HEADER_BYTES];
        file.read_exact_at(&mut raw, position)?;
        match BatchHeader::parse(&raw) {
            Some(header) if header.base_offset == expected => Ok(header),
            _ => Err(corrupt(format!(
                "{}: no valid batch for offset {expected} at byte {position}",
                self.path.display()
            ))),
        }
    }

    /// The records of the big batch at `position`, decoded once for the reads that take it in
    /// windows: kept while a read ends inside it (`read_until` before its end), forgotten
    /// when one reaches its end.
    fn decoded_batch(
        &self,
        file: &File,
        position: u64,
        header: &BatchHeader,
        read_until: u64,
    ) -> io::Result<Arc<Vec<Option<Record>>>> {
        let done = read_until >= header.end_offset();
        let id = (position, header.crc);
        let mut decoded = lock(&self.decoded);
        if let Some(i) = decoded.iter().position(|(d, _)| *d == id) {
            return Ok(if done {
                decoded.remove(i).1
            } else {
                decoded[i].1.clone()
            });
        }
        drop(decoded);
        let records = Arc::new(self.read_batch_records(file, position, header)?.1);
        if !done {
            let mut decoded = lock(&self.decoded);
            if decoded.len() >= DECODED_BATCHES_MAX {
                decoded.remove(0);
            }
            decoded.push((id, records.clone()));
        }
        Ok(records)
    }

    /// Reads, checks and decodes the records of the batch at `position`.
    fn read_batch_records(
        &self,
        file: &File,
        position: u64,
        header: &BatchHeader,
    ) -> io::Result<(Option<ProducerStamp>, Vec<Option<Record>>)> {
        let mut bytes = vec![0; header.records_bytes()];
        file.read_exact_at(&mut bytes, position + BATCH_HEADER_BYTES as u64)?;
        if !header.crc_matches(&bytes) {
            return Err(corrupt(format!(
                "{}: CRC mismatch in batch at byte {position}",
                self.path.display()
            )));
        }
        decode_batch(Bytes::from(bytes), header)
    }
}

/// Adds the batch at `position` to `index` if it is the first one or far
/// enough from the last indexed batch.
fn add_to_index(index: &mut Vec<IndexEntry>, offset: u64, position: u64) {
    let due = index
        .last()
        .is_none_or(|last| position - last.position >= INDEX_INTERVAL_BYTES);
    if due {
        index.push(IndexEntry { offset, position });
    }
}

/// Reads and verifies one batch from a scan that has `remaining` bytes left
/// in the file. The outer error is a real I/O failure; the inner one names
/// what is wrong with the batch.
fn scan_batch(
    reader: &mut impl BufRead,
    remaining: u64,
) -> io::Result<Result<(BatchHeader, Option<ProducerStamp>), &'static str>> {
    if remaining < BATCH_HEADER_BYTES as u64 {
        return Ok(Err("incomplete batch header"));
    }
    let mut raw = [0; BATCH_HEADER_BYTES];
    reader.read_exact(&mut raw)?;
    let Some(header) = BatchHeader::parse(&raw) else {
        return Ok(Err("invalid batch header"));
    };
    if header.batch_bytes() > remaining {
        return Ok(Err("batch runs past the end of the file"));
    }
    let mut hasher = header.crc_hasher();
    let mut left = header.records_bytes();
    // The producer stamp opens the record section of a stamped batch.
    let mut stamp_bytes = Vec::with_capacity(if header.stamped { STAMP_BYTES } else { 0 });
    while left > 0 {
        let buffered = reader.fill_buf()?;
        if buffered.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let n = buffered.len().min(left);
        if header.stamped && stamp_bytes.len() < STAMP_BYTES {
            let wanted = (STAMP_BYTES - stamp_bytes.len()).min(n);
            stamp_bytes.extend_from_slice(&buffered[..wanted]);
        }
        hasher.update(&buffered[..n]);
        reader.consume(n);
        left -= n;
    }
    if hasher.finalize() != header.crc {
        return Ok(Err("CRC mismatch"));
    }
    let stamp = ProducerStamp::decode(&stamp_bytes);
    if header.stamped && stamp.is_none() {
        return Ok(Err("batch too short for its producer stamp"));
    }
    Ok(Ok((header, stamp)))
}
