//! Round trips, offsets, segment roll-over, reopen, drop and argument errors.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::super::{Record, SEGMENT_BYTES_MAX_DEFAULT, Topic, TopicConfig, TopicError, TopicStore};
use super::{assert_holds_first, config, read_all, record, records, segment_files};

#[test]
fn store_and_topic_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TopicStore>();
    assert_send_sync::<Topic>();
    assert_send_sync::<Arc<Topic>>();
}

#[test]
fn default_config_is_one_partition_of_64_mib_segments() {
    let config = TopicConfig::default();
    assert_eq!(config.partitions, 1);
    assert_eq!(config.segment_bytes_max, 64 * 1024 * 1024);
    assert_eq!(SEGMENT_BYTES_MAX_DEFAULT, 64 * 1024 * 1024);
}

#[test]
fn append_read_round_trip_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("events", config(3, 1 << 20)).unwrap();
    assert_eq!(topic.name(), "events");
    assert_eq!(topic.partitions(), 3);
    assert_eq!(topic.config().segment_bytes_max, 1 << 20);

    // Partition p gets 10 * (p + 1) records, in batches of 5.
    for p in 0..3u32 {
        let n = 10 * (u64::from(p) + 1);
        for start in (0..n).step_by(5) {
            assert_eq!(topic.append(p, &records(start..start + 5)).unwrap(), start);
        }
    }
    for p in 0..3u32 {
        assert_holds_first(&topic, p, 10 * (u64::from(p) + 1));
    }

    // A record with an empty key and an empty value survives too.
    let odd = Record {
        key: Some(Bytes::new()),
        value: Bytes::new(),
        timestamp_ms: i64::MIN,
        headers: Vec::new(),
    };
    let offset = topic.append(1, std::slice::from_ref(&odd)).unwrap();
    assert_eq!(offset, 20);
    assert_eq!(topic.read(1, 20, 10).unwrap(), vec![(20, odd)]);
}

#[test]
fn offsets_are_contiguous_and_reads_respect_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::default()).unwrap();
    let mut next = 0;
    for size in [1u64, 7, 2, 30, 1, 1, 12] {
        assert_eq!(topic.append(0, &records(next..next + size)).unwrap(), next);
        next += size;
    }
    assert_eq!(topic.end_offset(0).unwrap(), next);

    // Reads starting inside a batch, limited by max_records.
    let got = topic.read(0, 9, 5).unwrap();
    let expected: Vec<_> = (9..14).map(|i| (i, record(i))).collect();
    assert_eq!(got, expected);
    // Past the end, at the end and with max_records = 0: nothing.
    assert!(topic.read(0, next, 10).unwrap().is_empty());
    assert!(topic.read(0, next + 100, 10).unwrap().is_empty());
    assert!(topic.read(0, 0, 0).unwrap().is_empty());
    // A read of more than exists stops at the end.
    assert_eq!(topic.read(0, next - 3, 100).unwrap().len(), 3);
    // An empty append writes nothing and reports the end offset.
    assert_eq!(topic.append(0, &[]).unwrap(), next);
    assert_eq!(topic.end_offset(0).unwrap(), next);
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = TopicStore::open(dir.path()).unwrap();
        let a = store.create_topic("a", config(2, 1 << 20)).unwrap();
        store.create_topic("b", config(1, 4096)).unwrap();
        a.append(0, &records(0..10)).unwrap();
        a.append(1, &records(0..3)).unwrap();
    }
    let store = TopicStore::open(dir.path()).unwrap();
    let names: Vec<String> = store.list().iter().map(|t| t.name().to_string()).collect();
    assert_eq!(names, ["a", "b"]);
    let a = store.topic("a").unwrap();
    assert_eq!(a.partitions(), 2);
    assert_eq!(store.topic("b").unwrap().config().segment_bytes_max, 4096);
    assert_holds_first(&a, 0, 10);
    assert_holds_first(&a, 1, 3);
    // Appends continue where the log left off.
    assert_eq!(a.append(0, &records(10..12)).unwrap(), 10);
    assert_holds_first(&a, 0, 12);
}

#[test]
fn segments_roll_over_and_reads_span_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("roll", config(1, 300)).unwrap();
    let mut next = 0;
    let mut bases = Vec::new();
    for batch in 0..60u64 {
        let size = 1 + batch % 3;
        bases.push(topic.append(0, &records(next..next + size)).unwrap());
        next += size;
    }
    let files = segment_files(dir.path(), "roll", 0);
    assert!(
        files.len() > 5,
        "expected many segments, got {}",
        files.len()
    );
    // Every segment is named by the offset of a batch, starting at 0.
    for file in &files {
        let stem = file.file_stem().unwrap().to_str().unwrap();
        assert_eq!(stem.len(), 20);
        assert!(bases.contains(&stem.parse::<u64>().unwrap()), "{stem}");
    }
    assert!(files[0].ends_with("00000000000000000000.log"));
    // Only the last segment may stay below the limit (each one overshoots
    // by at most one batch).
    for file in &files[..files.len() - 1] {
        assert!(std::fs::metadata(file).unwrap().len() >= 300);
    }

    assert_holds_first(&topic, 0, next);
    // Reads from every offset, in windows that cross segment boundaries.
    for from in 0..next {
        let got = topic.read(0, from, 7).unwrap();
        let expected: Vec<_> = (from..next.min(from + 7)).map(|i| (i, record(i))).collect();
        assert_eq!(got, expected, "read from {from}");
    }

    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("roll").unwrap();
    assert_holds_first(&topic, 0, next);
    assert_eq!(topic.append(0, &records(next..next + 2)).unwrap(), next);
    assert_holds_first(&topic, 0, next + 2);
}

#[test]
fn many_small_batches_in_one_segment_read_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("dense", TopicConfig::default()).unwrap();
    // About 40 KiB of one-record batches: several sparse-index intervals.
    let n = 1000;
    for i in 0..n {
        assert_eq!(topic.append(0, &[record(i)]).unwrap(), i);
    }
    assert_eq!(segment_files(dir.path(), "dense", 0).len(), 1);
    for from in (0..n).step_by(37) {
        assert_eq!(topic.read(0, from, 1).unwrap(), vec![(from, record(from))]);
    }
    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("dense").unwrap();
    for from in (0..n).rev().step_by(41) {
        assert_eq!(topic.read(0, from, 2).unwrap()[0], (from, record(from)));
    }
}

#[test]
fn one_append_of_100k_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("big", TopicConfig::default()).unwrap();
    let n = 100_000;
    topic.append(0, &[record(0)]).unwrap();
    assert_eq!(topic.append(0, &records(1..n)).unwrap(), 1);
    assert_eq!(topic.end_offset(0).unwrap(), n);
    assert_holds_first(&topic, 0, n);
    assert_eq!(
        topic.read(0, 54_321, 2).unwrap(),
        vec![(54_321, record(54_321)), (54_322, record(54_322))]
    );
    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("big").unwrap();
    assert_eq!(topic.end_offset(0).unwrap(), n);
    assert_eq!(
        topic.read(0, n - 1, 10).unwrap(),
        vec![(n - 1, record(n - 1))]
    );
}

#[test]
fn drop_topic_removes_files_and_stops_old_handles() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("gone", config(2, 200)).unwrap();
    store.create_topic("kept", TopicConfig::default()).unwrap();
    for i in 0..20 {
        topic.append(i % 2, &records(0..3)).unwrap();
    }
    store.drop_topic("gone").unwrap();
    assert!(!dir.path().join("gone").exists());
    assert!(store.topic("gone").is_none());
    assert_eq!(store.list().len(), 1);
    assert!(
        matches!(topic.append(0, &records(0..1)), Err(TopicError::NotFound(name)) if name == "gone")
    );
    assert!(matches!(
        store.drop_topic("gone"),
        Err(TopicError::NotFound(_))
    ));

    // The name can be reused and starts empty; a reopen agrees.
    let again = store.create_topic("gone", TopicConfig::default()).unwrap();
    assert_eq!(again.end_offset(0).unwrap(), 0);
    again.append(0, &records(0..2)).unwrap();
    drop((again, topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    let names: Vec<String> = store.list().iter().map(|t| t.name().to_string()).collect();
    assert_eq!(names, ["gone", "kept"]);
    assert_holds_first(&store.topic("gone").unwrap(), 0, 2);
}

#[test]
fn bad_partition_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", config(2, 4096)).unwrap();
    let is_bad = |result: Result<(), TopicError>| matches!(result, Err(TopicError::BadPartition { ref topic, partition: 2, partitions: 2 }) if topic == "t");
    assert!(is_bad(topic.append(2, &records(0..1)).map(drop)));
    assert!(is_bad(topic.end_offset(2).map(drop)));
    assert!(is_bad(topic.read(2, 0, 1).map(drop)));
    assert!(is_bad(topic.truncate(2, 0)));
    let message = topic.append(2, &records(0..1)).unwrap_err().to_string();
    assert!(message.contains("partition 2"), "{message}");
    assert!(read_all(&topic, 1).is_empty());
}

#[test]
fn invalid_names_and_configs_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let long = "x".repeat(201);
    for name in [
        "",
        ".",
        "..",
        "a/b",
        "a b",
        "../up",
        "héllo",
        "tab\t",
        long.as_str(),
    ] {
        let result = store.create_topic(name, TopicConfig::default());
        assert!(
            matches!(result, Err(TopicError::InvalidName(ref n)) if n == name),
            "{name:?}"
        );
        assert!(matches!(
            store.drop_topic(name),
            Err(TopicError::InvalidName(_))
        ));
    }
    for name in [
        "x".repeat(200),
        "a.b_c-D9".to_string(),
        "...".to_string(),
        ".hidden".to_string(),
    ] {
        store.create_topic(&name, TopicConfig::default()).unwrap();
    }
    assert!(matches!(
        store.create_topic("a.b_c-D9", TopicConfig::default()),
        Err(TopicError::AlreadyExists(_))
    ));
    match store.create_topic("zero", config(0, 4096)) {
        Err(TopicError::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::InvalidInput),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(!dir.path().join("zero").exists());
    assert_eq!(store.list().len(), 4);
    // Sorted by name.
    let names: Vec<String> = store.list().iter().map(|t| t.name().to_string()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}
