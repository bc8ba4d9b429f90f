//! The on-disk batch layout documented in the module doc.

use bytes::Bytes;

use super::super::batch::{
    BATCH_HEADER_BYTES, BATCH_MAGIC_V1, BatchHeader, EncodedBatch, decode_records,
};
use super::super::{Record, TopicStore};
use super::{last_segment, record, records};

#[test]
fn batch_layout_matches_the_documented_format() {
    let input = vec![
        Record {
            key: Some(Bytes::from_static(b"k")),
            value: Bytes::from_static(b"vv"),
            timestamp_ms: -2,
            headers: Vec::new(),
        },
        Record {
            key: None,
            value: Bytes::from_static(b""),
            timestamp_ms: 7,
            headers: Vec::new(),
        },
    ];
    let mut batch = EncodedBatch::encode(&input, None).unwrap();
    let bytes = batch.seal(0x0102_0304_0506_0708).to_vec();
    // Records: 8 + 1 + 4 + 1 + 4 + 2 = 20 bytes, then 8 + 1 + 4 + 0 = 13.
    let payload_bytes = 12 + 20 + 13;
    assert_eq!(bytes.len(), 9 + payload_bytes);
    assert_eq!(bytes[0], BATCH_MAGIC_V1);
    assert_eq!(bytes[1..5], (payload_bytes as u32).to_le_bytes());
    assert_eq!(bytes[5..9], crc32fast::hash(&bytes[9..]).to_le_bytes());
    assert_eq!(bytes[9..17], 0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(bytes[17..21], 2u32.to_le_bytes());
    assert_eq!(bytes[21..29], (-2i64).to_le_bytes());
    assert_eq!(bytes[29], 1);
    assert_eq!(bytes[30..34], 1u32.to_le_bytes());
    assert_eq!(bytes[34], b'k');
    assert_eq!(bytes[35..39], 2u32.to_le_bytes());
    assert_eq!(&bytes[39..41], b"vv");
    assert_eq!(bytes[41..49], 7i64.to_le_bytes());
    assert_eq!(bytes[49], 0);
    assert_eq!(bytes[50..54], 0u32.to_le_bytes());

    let header = BatchHeader::parse(bytes[..BATCH_HEADER_BYTES].try_into().unwrap()).unwrap();
    assert_eq!(header.batch_bytes(), bytes.len() as u64);
    assert_eq!(header.end_offset(), 0x0102_0304_0506_0708 + 2);
    let section = &bytes[BATCH_HEADER_BYTES..];
    assert!(header.crc_matches(section));
    let decoded = decode_records(Bytes::copy_from_slice(section), header.record_count).unwrap();
    assert_eq!(decoded, input.into_iter().map(Some).collect::<Vec<_>>());
}

#[test]
fn malformed_record_sections_are_errors_not_panics() {
    let mut batch = EncodedBatch::encode(&records(0..3), None).unwrap();
    let bytes = batch.seal(0).to_vec();
    let section = &bytes[BATCH_HEADER_BYTES..];
    for cut in 0..section.len() {
        assert!(decode_records(Bytes::copy_from_slice(&section[..cut]), 3).is_err());
    }
    // Claims more records than there are bytes for.
    assert!(decode_records(Bytes::copy_from_slice(section), u32::MAX).is_err());
    // Fewer records than the bytes hold leaves trailing bytes.
    assert!(decode_records(Bytes::copy_from_slice(section), 2).is_err());
    // A bad key flag.
    let mut bad = section.to_vec();
    bad[8] = 9;
    assert!(decode_records(Bytes::from(bad), 3).is_err());
    // Headers with a wrong magic byte, no records or a too-short payload.
    let header: [u8; BATCH_HEADER_BYTES] = bytes[..BATCH_HEADER_BYTES].try_into().unwrap();
    for (position, value) in [(0, 0u8), (17, 0), (1, 3)] {
        let mut damaged = header;
        damaged[position] = value;
        if position == 17 {
            damaged[18..21].fill(0);
        }
        if position == 1 {
            damaged[2..5].fill(0);
        }
        assert!(BatchHeader::parse(&damaged).is_none(), "byte {position}");
    }
}

#[test]
fn segment_file_is_a_plain_sequence_of_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", Default::default()).unwrap();
    topic.append(0, &records(0..2)).unwrap();
    topic.append(0, &[record(2)]).unwrap();
    let mut expected = EncodedBatch::encode(&records(0..2), None)
        .unwrap()
        .seal(0)
        .to_vec();
    expected.extend_from_slice(EncodedBatch::encode(&[record(2)], None).unwrap().seal(2));
    assert_eq!(
        std::fs::read(last_segment(dir.path(), "t", 0)).unwrap(),
        expected
    );
}
