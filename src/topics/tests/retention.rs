//! Retention: old segments are deleted by size and by age, the log start moves up, reads
//! begin there, and all of it survives a reopen (also one interrupted midway).

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::super::{Record, TopicConfig, TopicStore};
use super::{records, segment_files};

/// One partition, a segment per append (segments roll at the first byte).
fn retained(retention_ms: Option<u64>, retention_bytes: Option<u64>) -> TopicConfig {
    TopicConfig {
        partitions: 1,
        segment_bytes_max: 1,
        retention_ms,
        retention_bytes,
        compact: false,
    }
}

#[test]
fn size_retention_deletes_the_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    // Each append of 10 records is a segment of a few hundred bytes; keep about two.
    let topic = store.create_topic("t", retained(None, Some(700))).unwrap();
    for start in (0..50).step_by(10) {
        topic.append(0, &records(start..start + 10)).unwrap();
    }
    let start = topic.log_start(0).unwrap();
    assert!(start > 0 && start < 50, "log start {start}");
    assert_eq!(start % 10, 0, "whole segments go");
    let read = topic.read(0, 0, usize::MAX).unwrap();
    assert_eq!(
        read.first().map(|(o, _)| *o),
        Some(start),
        "reads begin at the log start"
    );
    assert_eq!(read.len() as u64, 50 - start);
    assert_eq!(read.last().unwrap().1, records(49..50)[0]);
    let files = segment_files(dir.path(), "t", 0);
    assert_eq!(files.len() as u64, (50 - start) / 10);

    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("t").unwrap();
    assert_eq!(
        topic.log_start(0).unwrap(),
        start,
        "the log start survives a reopen"
    );
    assert_eq!(topic.end_offset(0).unwrap(), 50);
    assert_eq!(topic.append(0, &records(50..51)).unwrap(), 50);
}

#[test]
fn age_retention_deletes_segments_last_written_long_ago() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", retained(Some(60_000), None))
        .unwrap();
    for start in (0..30).step_by(10) {
        topic.append(0, &records(start..start + 10)).unwrap();
    }
    assert_eq!(store.apply_retention().unwrap(), 0, "nothing is old yet");
    // The first two segments were last written two minutes ago.
    let old = SystemTime::now() - Duration::from_secs(120);
    for file in segment_files(dir.path(), "t", 0).iter().take(2) {
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    assert_eq!(store.apply_retention().unwrap(), 2);
    assert_eq!(topic.log_start(0).unwrap(), 20);
    assert_eq!(topic.read(0, 0, usize::MAX).unwrap().len(), 10);
    // The active segment is never deleted, however old.
    let files = segment_files(dir.path(), "t", 0);
    assert_eq!(files.len(), 1);
}

#[test]
fn an_interrupted_retention_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", retained(None, None)).unwrap();
    for start in (0..30).step_by(10) {
        topic.append(0, &records(start..start + 10)).unwrap();
    }
    drop((topic, store));
    // A crash after the new log start was recorded, before the files went.
    let partition = dir.path().join("t").join("0");
    std::fs::write(partition.join("log_start"), "20").unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("t").unwrap();
    assert_eq!(topic.log_start(0).unwrap(), 20);
    assert_eq!(segment_files(dir.path(), "t", 0).len(), 1);
    assert_eq!(topic.read(0, 0, usize::MAX).unwrap().len(), 10);
}

#[test]
fn a_missing_first_segment_is_still_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", retained(None, None)).unwrap();
    for start in (0..30).step_by(10) {
        topic.append(0, &records(start..start + 10)).unwrap();
    }
    drop((topic, store));
    let first = segment_files(dir.path(), "t", 0)[0].clone();
    std::fs::remove_file(first).unwrap();
    let err = TopicStore::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("log start"), "{err}");
}

/// A record with `key` and `value`.
fn keyed(key: &str, value: &str) -> Record {
    Record {
        key: Some(Bytes::from(key.to_string())),
        value: Bytes::from(value.to_string()),
        timestamp_ms: 0,
        headers: Vec::new(),
    }
}

fn values(topic: &super::super::Topic) -> Vec<(u64, String)> {
    topic
        .read(0, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(o, r)| (o, String::from_utf8_lossy(&r.value).into_owned()))
        .collect()
}

#[test]
fn compaction_keeps_the_latest_record_of_each_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let config = TopicConfig {
        compact: true,
        ..retained(None, None)
    };
    let topic = store.create_topic("t", config).unwrap();
    // One segment per append; the last append is the active segment, never compacted.
    topic
        .append(0, &[keyed("a", "a1"), keyed("b", "b1")])
        .unwrap();
    topic.append(0, &[keyed("a", "a2")]).unwrap();
    let unkeyed = Record::unkeyed_now(vec![Bytes::from_static(b"loose")]);
    topic.append(0, &unkeyed).unwrap();
    topic
        .append(0, &[keyed("b", "b2"), keyed("c", "c1")])
        .unwrap();
    topic.append(0, &[keyed("a", "a3")]).unwrap();
    // Each append after the first rolled a segment and compacted the sealed ones.
    assert_eq!(
        values(&topic),
        vec![
            (3, "loose".into()),
            (4, "b2".into()),
            (5, "c1".into()),
            (6, "a3".into())
        ]
    );
    // Offsets are kept: reading from inside a removed run starts at the next kept record,
    // and a one-record window over removed records still finds it.
    assert_eq!(topic.read(0, 1, 1).unwrap()[0].0, 3);
    assert_eq!(topic.end_offset(0).unwrap(), 7);
    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("t").unwrap();
    assert_eq!(values(&topic).len(), 4, "compacted segments reopen");
    topic.truncate(0, 5).unwrap();
    assert_eq!(
        values(&topic),
        vec![(3, "loose".into()), (4, "b2".into())],
        "a truncate inside a compacted segment"
    );
}
