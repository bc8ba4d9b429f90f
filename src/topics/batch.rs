//! Encoding and decoding of record batches.
//!
//! The byte layout is documented in the `topics` module doc. This file is
//! pure (no I/O) so the format lives in one place and is easy to test.

use std::io;

use bytes::{Buf, Bytes};

use super::{Record, corrupt, invalid_input};

/// First byte of every batch: identifies the format and its version (1).
pub(super) const BATCH_MAGIC_V1: u8 = 0x57;
/// Magic byte of a batch written by an idempotent Kafka producer: the record section starts
/// with its [`ProducerStamp`].
pub(super) const BATCH_MAGIC_STAMPED: u8 = 0x58;
/// Encoded size of a [`ProducerStamp`]: producer id, epoch, base sequence.
pub(super) const STAMP_BYTES: usize = 8 + 2 + 4;

/// Who wrote a batch, for idempotent producers: kept in the log so that a retry is
/// recognised even after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    /// Sequence number of the batch's first record.
    pub base_sequence: i32,
}

impl ProducerStamp {
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.producer_id.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.base_sequence.to_le_bytes());
    }

    /// Reads a stamp from the first [`STAMP_BYTES`] of a record section.
    pub(super) fn decode(mut bytes: &[u8]) -> Option<ProducerStamp> {
        (bytes.len() >= STAMP_BYTES).then(|| ProducerStamp {
            producer_id: bytes.get_i64_le(),
            epoch: bytes.get_i16_le(),
            base_sequence: bytes.get_i32_le(),
        })
    }
}

/// Bytes before the CRC-covered payload: magic, payload length, CRC.
pub(super) const BATCH_PREFIX_BYTES: usize = 9;

/// Bytes of the fixed part at the start of the payload: base offset and
/// record count.
const PAYLOAD_FIXED_BYTES: usize = 12;

/// Bytes of the whole fixed-size header (prefix plus the payload's fixed part).
pub(super) const BATCH_HEADER_BYTES: usize = BATCH_PREFIX_BYTES + PAYLOAD_FIXED_BYTES;

/// Encoded size of a record's timestamp.
const TIMESTAMP_BYTES: usize = 8;

/// Encoded size of a record's flags byte.
const KEY_FLAG_BYTES: usize = 1;

/// Record flags: a key follows.
const FLAG_KEY: u8 = 1;
/// Record flags: headers follow the value.
const FLAG_HEADERS: u8 = 2;
/// Record flags: compaction removed the record (a later one has its key); only its
/// timestamp and flags remain, so offsets stay dense.
const FLAG_REMOVED: u8 = 4;

/// Encoded size of a key or value length field.
const LENGTH_FIELD_BYTES: usize = 4;

/// Encoded size of a record without its key and value bytes: timestamp,
/// key-presence flag and value length.
const RECORD_FIXED_BYTES: usize = TIMESTAMP_BYTES + KEY_FLAG_BYTES + LENGTH_FIELD_BYTES;

/// The fixed-size header of a batch, as read from disk.
///
/// Fields other than `payload_bytes` and `crc` are part of the payload and
/// only trustworthy once [`BatchHeader::crc_matches`] (or an equivalent
/// streaming check) has passed.
#[derive(Clone, Copy, Debug)]
pub(super) struct BatchHeader {
    /// Length of the CRC-covered payload, starting at the base offset.
    pub payload_bytes: u32,
    /// CRC32 of the payload.
    pub crc: u32,
    /// Offset of the first record in the batch.
    pub base_offset: u64,
    /// Number of records in the batch.
    pub record_count: u32,
    /// Whether the record section starts with a [`ProducerStamp`].
    pub stamped: bool,
}

impl BatchHeader {
    /// Parses a header. Returns `None` when the bytes cannot be the start of
    /// a batch (wrong magic byte, or a payload too short for its own fixed
    /// fields, or no records).
    pub fn parse(bytes: &[u8; BATCH_HEADER_BYTES]) -> Option<BatchHeader> {
        let mut buf = &bytes[..];
        let stamped = match buf.get_u8() {
            BATCH_MAGIC_V1 => false,
            BATCH_MAGIC_STAMPED => true,
            _ => return None,
        };
        let header = BatchHeader {
            payload_bytes: buf.get_u32_le(),
            crc: buf.get_u32_le(),
            base_offset: buf.get_u64_le(),
            record_count: buf.get_u32_le(),
            stamped,
        };
        let fixed = PAYLOAD_FIXED_BYTES + if stamped { STAMP_BYTES } else { 0 };
        let plausible = header.payload_bytes as usize >= fixed && header.record_count > 0;
        plausible.then_some(header)
    }

    /// Total size of the batch on disk, header included.
    pub fn batch_bytes(&self) -> u64 {
        BATCH_PREFIX_BYTES as u64 + u64::from(self.payload_bytes)
    }

    /// Size of the record section that follows the header.
    pub fn records_bytes(&self) -> usize {
        self.payload_bytes as usize - PAYLOAD_FIXED_BYTES
    }

    /// Offset just past the last record of the batch. Saturates so that a
    /// garbage header cannot cause an overflow.
    pub fn end_offset(&self) -> u64 {
        self.base_offset
            .saturating_add(u64::from(self.record_count))
    }

    /// Starts a CRC computation over the payload with its fixed fields;
    /// the caller feeds the record section next.
    pub fn crc_hasher(&self) -> crc32fast::Hasher {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&self.base_offset.to_le_bytes());
        hasher.update(&self.record_count.to_le_bytes());
        hasher
    }

    /// Whether `records` (the record section) matches the header's CRC.
    pub fn crc_matches(&self, records: &[u8]) -> bool {
        let mut hasher = self.crc_hasher();
        hasher.update(records);
        hasher.finalize() == self.crc
    }
}

/// A batch encoded without its base offset, so the expensive part (copying
/// records and checksumming them) can happen before the partition's write
/// lock is taken. [`EncodedBatch::seal`] fills in the offset under the lock.
pub(super) struct EncodedBatch {
    bytes: Vec<u8>,
    records_crc: crc32fast::Hasher,
    record_count: u32,
}

impl EncodedBatch {
    /// Encodes `records` (at least one). Fails with `InvalidInput` when the
    /// batch would not fit the format's 32-bit length fields.
    pub fn encode(records: &[Record], stamp: Option<ProducerStamp>) -> io::Result<EncodedBatch> {
        EncodedBatch::encode_slots(records.iter().map(Some), stamp)
    }

    /// Encodes a batch in which some records were removed by compaction (`None`).
    pub fn encode_slots<'a>(
        records: impl ExactSizeIterator<Item = Option<&'a Record>> + Clone,
        stamp: Option<ProducerStamp>,
    ) -> io::Result<EncodedBatch> {
        let record_count = u32::try_from(records.len()).map_err(|_| {
            invalid_input(format!("batch of {} records is too large", records.len()))
        })?;
        if record_count == 0 {
            return Err(invalid_input(
                "a batch needs at least one record".to_string(),
            ));
        }
        let records_bytes: u64 = records
            .clone()
            .map(|r| match r {
                Some(r) => {
                    let key = r.key.as_ref().map_or(0, |k| LENGTH_FIELD_BYTES + k.len());
                    (RECORD_FIXED_BYTES + key + r.value.len() + headers_bytes(r)) as u64
                }
                None => (TIMESTAMP_BYTES + KEY_FLAG_BYTES) as u64,
            })
            .sum();
        let stamp_bytes = if stamp.is_some() { STAMP_BYTES } else { 0 } as u64;
        let payload_bytes = u32::try_from(records_bytes + stamp_bytes + PAYLOAD_FIXED_BYTES as u64)
            .map_err(|_| invalid_input(format!("batch of {records_bytes} bytes is too large")))?;
        let mut bytes = Vec::with_capacity(BATCH_PREFIX_BYTES + payload_bytes as usize);
        bytes.push(if stamp.is_some() {
            BATCH_MAGIC_STAMPED
        } else {
            BATCH_MAGIC_V1
        });
        bytes.extend_from_slice(&payload_bytes.to_le_bytes());
        // CRC and base offset are placeholders until `seal`.
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&record_count.to_le_bytes());
        if let Some(stamp) = stamp {
            stamp.encode(&mut bytes);
        }
        for slot in records {
            let Some(record) = slot else {
                // A removed record keeps its place; its timestamp is not needed.
                bytes.extend_from_slice(&0i64.to_le_bytes());
                bytes.push(FLAG_REMOVED);
                continue;
            };
            bytes.extend_from_slice(&record.timestamp_ms.to_le_bytes());
            let mut flags = 0;
            if record.key.is_some() {
                flags |= FLAG_KEY;
            }
            if !record.headers.is_empty() {
                flags |= FLAG_HEADERS;
            }
            bytes.push(flags);
            // Lengths cannot truncate: the whole payload fits in a u32.
            if let Some(key) = &record.key {
                put_length_prefixed(&mut bytes, key);
            }
            put_length_prefixed(&mut bytes, &record.value);
            if !record.headers.is_empty() {
                bytes.extend_from_slice(&(record.headers.len() as u32).to_le_bytes());
                for (name, value) in &record.headers {
                    put_length_prefixed(&mut bytes, name);
                    match value {
                        Some(v) => {
                            bytes.push(1);
                            put_length_prefixed(&mut bytes, v);
                        }
                        None => bytes.push(0),
                    }
                }
            }
        }
        let mut records_crc = crc32fast::Hasher::new();
        records_crc.update(&bytes[BATCH_HEADER_BYTES..]);
        Ok(EncodedBatch {
            bytes,
            records_crc,
            record_count,
        })
    }

    /// Number of records in the batch.
    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// Size of the batch on disk.
    pub fn len_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Stamps the base offset and the final CRC; returns the bytes to write.
    pub fn seal(&mut self, base_offset: u64) -> &[u8] {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&base_offset.to_le_bytes());
        hasher.update(&self.record_count.to_le_bytes());
        hasher.combine(&self.records_crc);
        self.bytes[5..9].copy_from_slice(&hasher.finalize().to_le_bytes());
        self.bytes[9..17].copy_from_slice(&base_offset.to_le_bytes());
        &self.bytes
    }
}

/// Decodes the record section of a batch whose CRC has been verified; records compaction
/// removed are `None`. Keys and values share the `records` buffer (no copies). Malformed
/// contents give an `InvalidData` error, never a panic.
#[cfg(test)]
pub(super) fn decode_records(
    mut records: Bytes,
    record_count: u32,
) -> io::Result<Vec<Option<Record>>> {
    decode_section(&mut records, record_count)
}

/// Decodes the record section of a verified batch with `header`: its producer stamp (if it
/// has one) and its records.
pub(super) fn decode_batch(
    mut section: Bytes,
    header: &BatchHeader,
) -> io::Result<(Option<ProducerStamp>, Vec<Option<Record>>)> {
    let stamp = if header.stamped {
        let stamp = ProducerStamp::decode(&section)
            .ok_or_else(|| corrupt("batch too short for its producer stamp".to_string()))?;
        section.advance(STAMP_BYTES);
        Some(stamp)
    } else {
        None
    };
    Ok((stamp, decode_section(&mut section, header.record_count)?))
}

fn decode_section(records: &mut Bytes, record_count: u32) -> io::Result<Vec<Option<Record>>> {
    let truncated = || corrupt("batch record section is shorter than its records".to_string());
    // The count comes from disk: never reserve more records than the bytes
    // could possibly hold.
    let fits = records.len() / (TIMESTAMP_BYTES + KEY_FLAG_BYTES);
    let mut out = Vec::with_capacity(fits.min(record_count as usize));
    for _ in 0..record_count {
        if records.remaining() < TIMESTAMP_BYTES + KEY_FLAG_BYTES {
            return Err(truncated());
        }
        let timestamp_ms = records.get_i64_le();
        let flags = records.get_u8();
        if flags == FLAG_REMOVED {
            out.push(None);
            continue;
        }
        if flags & !(FLAG_KEY | FLAG_HEADERS) != 0 {
            return Err(corrupt(format!("bad record flags {flags}")));
        }
        let key = if flags & FLAG_KEY != 0 {
            Some(take_length_prefixed(records).ok_or_else(truncated)?)
        } else {
            None
        };
        let value = take_length_prefixed(records).ok_or_else(truncated)?;
        let mut headers = Vec::new();
        if flags & FLAG_HEADERS != 0 {
            if records.remaining() < LENGTH_FIELD_BYTES {
                return Err(truncated());
            }
            let count = records.get_u32_le();
            for _ in 0..count {
                let name = take_length_prefixed(records).ok_or_else(truncated)?;
                if !records.has_remaining() {
                    return Err(truncated());
                }
                let value = match records.get_u8() {
                    0 => None,
                    1 => Some(take_length_prefixed(records).ok_or_else(truncated)?),
                    flag => return Err(corrupt(format!("bad header value flag {flag}"))),
                };
                headers.push((name, value));
            }
        }
        out.push(Some(Record {
            key,
            value,
            timestamp_ms,
            headers,
        }));
    }
    if records.has_remaining() {
        return Err(corrupt(format!(
            "batch has {} bytes after its last record",
            records.remaining()
        )));
    }
    Ok(out)
}

/// Encoded size of a record's headers (zero when it has none).
fn headers_bytes(record: &Record) -> usize {
    if record.headers.is_empty() {
        return 0;
    }
    LENGTH_FIELD_BYTES
        + record
            .headers
            .iter()
            .map(|(n, v)| {
                LENGTH_FIELD_BYTES
                    + n.len()
                    + 1
                    + v.as_ref().map_or(0, |v| LENGTH_FIELD_BYTES + v.len())
            })
            .sum::<usize>()
}

fn put_length_prefixed(bytes: &mut Vec<u8>, data: &[u8]) {
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(data);
}

/// Splits a u32-length-prefixed byte string off the front of `buf`.
fn take_length_prefixed(buf: &mut Bytes) -> Option<Bytes> {
    if buf.remaining() < LENGTH_FIELD_BYTES {
        return None;
    }
    let len = buf.get_u32_le() as usize;
    (buf.remaining() >= len).then(|| buf.split_to(len))
}
