//! The summary of a sealed segment: what opening the segment would otherwise learn by
//! reading and CRC-checking every byte of it.
//!
//! A partition's start-up cost must not grow with its history, so each sealed segment gets a
//! `<base:020>.summary` file beside its `.log`: its end offset, its size, its sparse index and
//! the last batch of each idempotent producer in it. Opening a partition reads the summaries
//! of its sealed segments and scans only the active (last) segment. Batches stay CRC-checked
//! whenever they are read, so damage in a sealed segment is still reported, at the read.
//!
//! # Format (version 1, integers little-endian)
//!
//! ```text
//!  4  magic "WSS1"
//!  8  base offset (u64)
//!  8  end offset (u64), just past the last record
//!  8  size of the segment file in bytes (u64)
//!  4  index entries (u32), then per entry: 8 batch base offset, 8 byte position
//!  4  producers (u32), then per producer, in offset order: 8 producer id (i64),
//!     2 epoch (i16), 4 base sequence (i32), 8 batch base offset (u64), 4 record count (u32)
//!  4  CRC32 of everything before it
//! ```
//!
//! # When a summary is trusted
//!
//! Only when its base offset is the segment's and its size is the segment file's size;
//! otherwise the segment is scanned as before. A summary is written after the segment's
//! fsync, when the segment is sealed (rolled over) or after a scan of a sealed segment that
//! had none; it is removed, durably, before anything changes a sealed segment (a truncate,
//! a compaction or retention), so a crash at any point leaves either a true summary or none.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Buf;

use super::batch::{ProducerStamp, STAMP_BYTES};
use super::{corrupt, sync_dir};

/// First bytes of a summary file: identifies the format and its version (1).
const SUMMARY_MAGIC: &[u8; 4] = b"WSS1";

/// Extension of summary files.
pub(super) const SUMMARY_SUFFIX: &str = ".summary";

/// Bytes of the fixed part before the index: magic, base, end, size.
const FIXED_BYTES: usize = 4 + 8 + 8 + 8;

/// Encoded size of one index entry.
const INDEX_ENTRY_BYTES: usize = 8 + 8;

/// Encoded size of one producer's last batch: its stamp, base offset and record count.
const PRODUCER_BYTES: usize = STAMP_BYTES + 8 + 4;

/// Encoded size of the trailing CRC.
const CRC_BYTES: usize = 4;

/// One entry of a segment's sparse index: a batch's base offset and its byte position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct IndexEntry {
    pub offset: u64,
    pub position: u64,
}

/// An idempotent producer's batch: who wrote it, its base offset, its record count.
pub(super) type StampedBatch = (ProducerStamp, u64, u32);

/// What a summary records about one sealed segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Summary {
    pub base_offset: u64,
    pub end_offset: u64,
    pub size_bytes: u64,
    pub index: Vec<IndexEntry>,
    /// The last batch of each idempotent producer in the segment, in offset order.
    pub producers: Vec<StampedBatch>,
}

/// Path of the summary of the segment at `segment_path` (`…/<base>.log`).
pub(super) fn path_for(segment_path: &Path) -> PathBuf {
    segment_path.with_extension(&SUMMARY_SUFFIX[1..])
}

/// Keeps only the last batch of each producer, in offset order.
pub(super) fn last_per_producer(stamps: Vec<StampedBatch>) -> Vec<StampedBatch> {
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<StampedBatch> = stamps
        .into_iter()
        .rev()
        .filter(|(stamp, _, _)| seen.insert(stamp.producer_id))
        .collect();
    kept.reverse();
    kept
}

impl Summary {
    /// The encoded bytes, CRC included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            FIXED_BYTES
                + 8
                + self.index.len() * INDEX_ENTRY_BYTES
                + self.producers.len() * PRODUCER_BYTES
                + CRC_BYTES,
        );
        out.extend_from_slice(SUMMARY_MAGIC);
        for n in [self.base_offset, self.end_offset, self.size_bytes] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&(self.index.len() as u32).to_le_bytes());
        for entry in &self.index {
            out.extend_from_slice(&entry.offset.to_le_bytes());
            out.extend_from_slice(&entry.position.to_le_bytes());
        }
        out.extend_from_slice(&(self.producers.len() as u32).to_le_bytes());
        for (stamp, base_offset, count) in &self.producers {
            stamp.encode(&mut out);
            out.extend_from_slice(&base_offset.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a summary, or None when the bytes are not a whole, intact one.
    pub fn decode(bytes: &[u8]) -> Option<Summary> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(CRC_BYTES)?)?;
        if crc32fast::hash(body).to_le_bytes() != crc || !body.starts_with(SUMMARY_MAGIC) {
            return None;
        }
        let mut rest = &body[SUMMARY_MAGIC.len()..];
        if rest.len() < FIXED_BYTES - SUMMARY_MAGIC.len() + 4 {
            return None;
        }
        let (base_offset, end_offset, size_bytes) =
            (rest.get_u64_le(), rest.get_u64_le(), rest.get_u64_le());
        let index_len = rest.get_u32_le() as usize;
        if rest.len() < index_len.checked_mul(INDEX_ENTRY_BYTES)?.checked_add(4)? {
            return None;
        }
        let index = (0..index_len)
            .map(|_| IndexEntry {
                offset: rest.get_u64_le(),
                position: rest.get_u64_le(),
            })
            .collect();
        let producers_len = rest.get_u32_le() as usize;
        if rest.len() != producers_len.checked_mul(PRODUCER_BYTES)? {
            return None;
        }
        let producers = (0..producers_len)
            .map(|_| {
                let stamp = ProducerStamp::decode(rest)?;
                rest.advance(STAMP_BYTES);
                Some((stamp, rest.get_u64_le(), rest.get_u32_le()))
            })
            .collect::<Option<_>>()?;
        Some(Summary {
            base_offset,
            end_offset,
            size_bytes,
            index,
            producers,
        })
    }

    /// Writes the summary beside its segment and makes it durable (the file and its
    /// directory entry). An older summary at that path is replaced.
    pub fn write(&self, segment_path: &Path) -> io::Result<()> {
        let path = path_for(segment_path);
        let mut file = File::create(&path)?;
        file.write_all(&self.encode())?;
        file.sync_all()?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    }

    /// The summary of the segment at `segment_path` when there is an intact one for
    /// `base_offset` (None when there is none, or it is damaged or another segment's).
    pub fn read(segment_path: &Path, base_offset: u64) -> io::Result<Option<Summary>> {
        let bytes = match fs::read(path_for(segment_path)) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        Ok(Summary::decode(&bytes).filter(|s| s.base_offset == base_offset))
    }

    /// Checks that the summary describes a file of `file_bytes` bytes with a well-formed
    /// index; an error names what does not fit.
    pub fn check(&self, file_bytes: u64) -> io::Result<()> {
        let index_ok = self
            .index
            .first()
            .is_none_or(|first| first.offset == self.base_offset && first.position == 0)
            && self
                .index
                .windows(2)
                .all(|w| w[0].offset < w[1].offset && w[0].position < w[1].position)
            && self
                .index
                .last()
                .is_none_or(|last| last.offset < self.end_offset && last.position < file_bytes);
        if file_bytes != self.size_bytes {
            return Err(corrupt(format!(
                "summary says {} bytes, the segment has {file_bytes}",
                self.size_bytes
            )));
        }
        if !index_ok || self.end_offset < self.base_offset {
            return Err(corrupt("summary index does not fit its segment".into()));
        }
        Ok(())
    }
}

/// Removes the summary of the segment at `segment_path`, if any, durably.
pub(super) fn remove(segment_path: &Path) -> io::Result<()> {
    match fs::remove_file(path_for(segment_path)) {
        Ok(()) => sync_dir(segment_path.parent().unwrap_or(Path::new("."))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}
