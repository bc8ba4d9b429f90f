//! Tests of the topic store, grouped by concern. Helpers shared by the
//! groups live here.

mod basic;
mod concurrency;
mod format;
mod idempotence;
mod recovery;
mod retention;
mod summaries;
mod truncate;

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{Record, Topic, TopicConfig};

/// A deterministic record for test position `i`: every third one has no
/// key, timestamps go negative for small `i`.
fn record(i: u64) -> Record {
    Record {
        key: (!i.is_multiple_of(3)).then(|| Bytes::from(format!("key-{i}"))),
        value: Bytes::from(format!("value-{i}")),
        timestamp_ms: i as i64 * 10 - 500,
        // Every fifth record carries headers, one of them without a value.
        headers: if i.is_multiple_of(5) {
            vec![
                (
                    Bytes::from_static(b"trace"),
                    Some(Bytes::from(format!("t-{i}"))),
                ),
                (Bytes::from_static(b"empty"), None),
            ]
        } else {
            Vec::new()
        },
    }
}

/// Records for test positions `range`.
fn records(range: std::ops::Range<u64>) -> Vec<Record> {
    range.map(record).collect()
}

/// Config with `partitions` partitions and small segments of
/// `segment_bytes_max` bytes.
fn config(partitions: u32, segment_bytes_max: u64) -> TopicConfig {
    TopicConfig {
        partitions,
        segment_bytes_max,
        ..TopicConfig::default()
    }
}

/// Every durable record of a partition.
fn read_all(topic: &Topic, partition: u32) -> Vec<(u64, Record)> {
    topic
        .read(partition, 0, usize::MAX)
        .expect("read whole partition")
}

/// Asserts that a partition holds exactly `record(0..n)` at offsets `0..n`.
fn assert_holds_first(topic: &Topic, partition: u32, n: u64) {
    let all = read_all(topic, partition);
    assert_eq!(all.len() as u64, n, "record count");
    for (i, (offset, rec)) in all.into_iter().enumerate() {
        assert_eq!(offset, i as u64);
        assert_eq!(rec, record(i as u64), "record at offset {i}");
    }
    assert_eq!(topic.end_offset(partition).unwrap(), n);
}

/// Segment files of a partition, sorted by name (= by base offset).
fn segment_files(dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join(topic).join(partition.to_string()))
        .expect("list partition dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    files
}

/// The last segment file of a partition.
fn last_segment(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    segment_files(dir, topic, partition)
        .pop()
        .expect("partition has a segment")
}
