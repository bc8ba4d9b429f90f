//! Record batches from producers, decoded with a bound on what they inflate to
//! ([`crate::config::KAFKA_BATCH_BYTES_MAX`], Kafka's `message.max.bytes` measured after
//! decompression): a batch of a few kilobytes must not become gigabytes in memory.
//!
//! gzip is inflated by flate2 through a reader that stops past the bound (the `kafka-protocol`
//! crate's own decoders inflate without one). For snappy, lz4 and zstd the framing says, before
//! anything is inflated, the most each block can hold (snappy: each block's exact length; lz4:
//! the frame's block size; zstd: 128 KiB per compressed block); a batch whose blocks could hold
//! more than the bound is refused unread, and one that fits is handed to the crate's decoder,
//! which checks each block against what its framing declared.

use std::fmt;
use std::io::Read;

use bytes::{Buf, Bytes};
use kafka_protocol::compression::{Decompressor, Lz4, Snappy, Zstd};
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordSet};

/// Why a produced batch was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// It decompresses to more than the bound (Kafka's MESSAGE_TOO_LARGE).
    TooLarge,
    /// It does not decode (Kafka's CORRUPT_MESSAGE).
    Corrupt(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::TooLarge => write!(f, "batch decompresses past the size limit"),
            Refused::Corrupt(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for Refused {}

/// Fewest bytes a v2 record takes: its length, attributes, timestamp and offset deltas, key and
/// value lengths and header count, one byte each.
const RECORD_BYTES_MIN: usize = 7;

/// Decodes every batch in a Produce partition's `records`; a batch whose records take more than
/// `max_bytes` (after decompression) refuses the whole partition. A batch that claims more
/// records than its bytes can hold is corrupt, so the decoder never reserves room for them.
pub fn decode_batches(records: &mut Bytes, max_bytes: usize) -> Result<Vec<RecordSet>, Refused> {
    let headers = RecordBatchDecoder::decode_batch_info(&mut records.clone()).map_err(corrupt)?;
    let mut sets = Vec::with_capacity(headers.len());
    for header in headers {
        let inflate = |section: &mut Bytes, compression: Compression| -> Result<Bytes, _> {
            let bytes = inflate_section(section, compression, max_bytes)?;
            if header.record_count as usize > bytes.len() / RECORD_BYTES_MIN {
                return Err(Refused::Corrupt(format!(
                    "batch claims {} records in {} bytes",
                    header.record_count,
                    bytes.len()
                ))
                .into());
            }
            Ok(bytes)
        };
        let set = RecordBatchDecoder::decode_with_custom_compression(records, Some(inflate))
            .map_err(|e| match e.downcast::<Refused>() {
                Ok(refused) => refused,
                Err(e) => corrupt(e),
            })?;
        sets.push(set);
    }
    if records.has_remaining() {
        return Err(Refused::Corrupt(
            "records that are not v2 record batches".into(),
        ));
    }
    Ok(sets)
}

/// The record section of one batch, decompressed, or refused past `max_bytes`.
fn inflate_section(
    section: &mut Bytes,
    compression: Compression,
    max_bytes: usize,
) -> Result<Bytes, Refused> {
    let corrupt = |e: &dyn fmt::Display| corrupt(format!("{compression:?}: {e}"));
    let within = |most: u64| {
        if most > max_bytes as u64 {
            Err(Refused::TooLarge)
        } else {
            Ok(())
        }
    };
    let take = |out: &mut Bytes| Ok(std::mem::take(out));
    match compression {
        Compression::None => {
            within(section.len() as u64)?;
            Ok(section.clone())
        }
        Compression::Gzip => gunzip(section, max_bytes).map(Bytes::from),
        Compression::Snappy => {
            within(snappy_bound(section)?)?;
            Snappy::decompress(section, take).map_err(|e| corrupt(&e))
        }
        Compression::Lz4 => {
            within(lz4_bound(section)?)?;
            Lz4::decompress(section, take).map_err(|e| corrupt(&e))
        }
        Compression::Zstd => {
            within(zstd_bound(section)?)?;
            Zstd::decompress(section, take).map_err(|e| corrupt(&e))
        }
    }
}

fn corrupt(e: impl fmt::Display) -> Refused {
    Refused::Corrupt(e.to_string())
}

fn truncated(what: &str) -> Refused {
    Refused::Corrupt(format!("{what} is truncated"))
}

/// Reads `n` bytes off the front of `data`.
fn split<'a>(data: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], Refused> {
    if data.len() < n {
        return Err(truncated(what));
    }
    let (head, tail) = data.split_at(n);
    *data = tail;
    Ok(head)
}

fn u32_le(data: &mut &[u8], what: &str) -> Result<u32, Refused> {
    let b = split(data, 4, what)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The exact decompressed size of a snappy section, from each block's length preamble: the
/// xerial framing Kafka clients use (magic header, then big-endian block lengths), or one raw
/// block. The decoder refuses a block whose contents disagree with its preamble.
fn snappy_bound(section: &[u8]) -> Result<u64, Refused> {
    /// The xerial header, as `kafka-protocol` recognises it.
    const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
    let preamble = |mut block: &[u8]| -> Result<u64, Refused> {
        let mut len = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = split(&mut block, 1, "snappy block")?[0];
            len |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(len);
            }
        }
        Err(Refused::Corrupt("snappy block length is too long".into()))
    };
    let Some(mut blocks) = section.strip_prefix(XERIAL_MAGIC) else {
        return preamble(section);
    };
    let mut total = 0u64;
    while !blocks.is_empty() {
        let len = split(&mut blocks, 4, "snappy block length")?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        total += preamble(split(&mut blocks, len, "snappy block")?)?;
    }
    Ok(total)
}

/// Frames whose magic numbers lz4 and zstd both skip (and their content with them).
const SKIPPABLE_MAGIC: std::ops::RangeInclusive<u32> = 0x184D_2A50..=0x184D_2A5F;

/// The most an lz4 section can decompress to: each compressed block holds at most its frame's
/// block size (which lz4's decoder enforces), a stored block exactly its length.
fn lz4_bound(mut data: &[u8]) -> Result<u64, Refused> {
    const MAGIC: u32 = 0x184D_2204;
    let mut total = 0u64;
    while !data.is_empty() {
        let magic = u32_le(&mut data, "lz4 frame")?;
        if SKIPPABLE_MAGIC.contains(&magic) {
            let len = u32_le(&mut data, "lz4 skippable frame")? as usize;
            split(&mut data, len, "lz4 skippable frame")?;
            continue;
        }
        if magic != MAGIC {
            return Err(Refused::Corrupt(format!(
                "not an lz4 frame (magic {magic:#x})"
            )));
        }
        let descriptor = split(&mut data, 2, "lz4 frame descriptor")?;
        let (flags, block_descriptor) = (descriptor[0], descriptor[1]);
        if flags >> 6 != 1 {
            return Err(Refused::Corrupt("unknown lz4 frame version".into()));
        }
        let block_max: u64 = match (block_descriptor >> 4) & 7 {
            4 => 64 << 10,
            5 => 256 << 10,
            6 => 1 << 20,
            7 => 4 << 20,
            other => return Err(Refused::Corrupt(format!("lz4 block size code {other}"))),
        };
        let block_checksum = flags & 0x10 != 0;
        let content_size = if flags & 0x08 != 0 { 8 } else { 0 };
        let content_checksum = flags & 0x04 != 0;
        let dictionary = if flags & 0x01 != 0 { 4 } else { 0 };
        // The optional fields, then the header checksum byte.
        split(&mut data, content_size + dictionary + 1, "lz4 frame header")?;
        loop {
            let block = u32_le(&mut data, "lz4 block")?;
            if block == 0 {
                break;
            }
            let len = (block & 0x7fff_ffff) as usize;
            total += if block & 0x8000_0000 != 0 {
                len as u64
            } else {
                block_max
            };
            split(&mut data, len, "lz4 block")?;
            if block_checksum {
                split(&mut data, 4, "lz4 block checksum")?;
            }
        }
        if content_checksum {
            split(&mut data, 4, "lz4 content checksum")?;
        }
    }
    Ok(total)
}

/// The most a zstd section can decompress to: a raw or RLE block regenerates its stated size,
/// a compressed one at most 128 KiB (the format's largest block, which zstd's decoder enforces).
fn zstd_bound(mut data: &[u8]) -> Result<u64, Refused> {
    const MAGIC: u32 = 0xFD2F_B528;
    const COMPRESSED_BLOCK_BYTES_MAX: u64 = 128 << 10;
    let mut total = 0u64;
    while !data.is_empty() {
        let magic = u32_le(&mut data, "zstd frame")?;
        if SKIPPABLE_MAGIC.contains(&magic) {
            let len = u32_le(&mut data, "zstd skippable frame")? as usize;
            split(&mut data, len, "zstd skippable frame")?;
            continue;
        }
        if magic != MAGIC {
            return Err(Refused::Corrupt(format!(
                "not a zstd frame (magic {magic:#x})"
            )));
        }
        let descriptor = split(&mut data, 1, "zstd frame header")?[0];
        let single_segment = descriptor & 0x20 != 0;
        let checksum = descriptor & 0x04 != 0;
        let window = if single_segment { 0 } else { 1 };
        let dictionary = [0, 1, 2, 4][usize::from(descriptor & 3)];
        let content_size = match descriptor >> 6 {
            0 if single_segment => 1,
            0 => 0,
            1 => 2,
            2 => 4,
            _ => 8,
        };
        split(
            &mut data,
            window + dictionary + content_size,
            "zstd frame header",
        )?;
        loop {
            let header = split(&mut data, 3, "zstd block header")?;
            let header =
                u32::from(header[0]) | u32::from(header[1]) << 8 | u32::from(header[2]) << 16;
            let last = header & 1 != 0;
            let size = (header >> 3) as usize;
            match (header >> 1) & 3 {
                0 => {
                    total += size as u64;
                    split(&mut data, size, "zstd raw block")?;
                }
                1 => {
                    total += size as u64;
                    split(&mut data, 1, "zstd RLE block")?;
                }
                2 => {
                    total += COMPRESSED_BLOCK_BYTES_MAX;
                    split(&mut data, size, "zstd compressed block")?;
                }
                _ => return Err(Refused::Corrupt("reserved zstd block type".into())),
            }
            if last {
                break;
            }
        }
        if checksum {
            split(&mut data, 4, "zstd checksum")?;
        }
    }
    Ok(total)
}

/// Inflates a gzip section into at most `max_bytes` (flate2 checks the CRC and the length);
/// the read stops one byte past the bound, so a bomb never inflates further. A batch is one
/// gzip member, as Kafka's clients write it; bytes after the member are not read.
fn gunzip(section: &[u8], max_bytes: usize) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(section)
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(format!("Gzip: {e}")))?;
    if out.len() > max_bytes {
        return Err(Refused::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::compression::{Compressor, Gzip};

    use super::*;

    fn compressed(compression: Compression, data: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        let put = |buf: &mut BytesMut| {
            buf.extend_from_slice(data);
            Ok(())
        };
        match compression {
            Compression::Gzip => Gzip::compress(&mut out, put),
            Compression::Snappy => Snappy::compress(&mut out, put),
            Compression::Lz4 => Lz4::compress(&mut out, put),
            Compression::Zstd => Zstd::compress(&mut out, put),
            Compression::None => put(&mut out),
        }
        .unwrap();
        out.freeze()
    }

    /// Text, incompressible bytes, runs and tiny inputs.
    fn samples() -> Vec<Vec<u8>> {
        let mut noise = Vec::with_capacity(100_000);
        let mut x: u32 = 12345;
        for _ in 0..100_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            noise.push((x >> 16) as u8);
        }
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{{\"user_id\": {}, \"amount\": {i}}}\n", i % 10).into_bytes())
            .collect();
        vec![
            Vec::new(),
            b"a".to_vec(),
            b"hello hello hello".to_vec(),
            noise,
            text,
            vec![0; 300_000],
        ]
    }

    #[test]
    fn every_codec_round_trips_under_the_bound() {
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for data in samples() {
                let mut section = compressed(compression, &data);
                let out = inflate_section(&mut section, compression, 1 << 20).unwrap();
                assert_eq!(&out[..], &data[..], "{compression:?}, {} bytes", data.len());
            }
        }
    }

    #[test]
    fn a_bomb_is_refused_without_inflating_it() {
        let bomb = vec![0u8; 8 << 20];
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut section = compressed(compression, &bomb);
            assert!(section.len() < bomb.len() / 10, "{compression:?}");
            assert_eq!(
                inflate_section(&mut section, compression, 1 << 20),
                Err(Refused::TooLarge),
                "{compression:?}"
            );
        }
        // Exactly at the bound is allowed.
        let mut section = compressed(Compression::Gzip, &bomb);
        assert_eq!(gunzip(&section, bomb.len()).unwrap().len(), bomb.len());
        assert_eq!(
            inflate_section(&mut section, Compression::Gzip, bomb.len() - 1),
            Err(Refused::TooLarge)
        );
    }

    #[test]
    fn damaged_gzip_is_corrupt_not_a_panic() {
        let good = compressed(Compression::Gzip, &samples()[4]);
        for cut in [0, 5, 10, 11, 50, good.len() / 2, good.len() - 1] {
            assert!(
                matches!(gunzip(&good[..cut], 1 << 20), Err(Refused::Corrupt(_))),
                "{cut}"
            );
        }
        let mut flipped = good.to_vec();
        flipped[good.len() / 2] ^= 0x55;
        assert!(gunzip(&flipped, 1 << 20).is_err());
    }
}
