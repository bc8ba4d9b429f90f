//! `Topic::truncate`: at batch boundaries, inside batches, across segments.

use std::io::ErrorKind;

use super::super::{TopicError, TopicStore};
use super::{assert_holds_first, config, record, records, segment_files};

#[test]
fn truncate_at_batch_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", config(2, 1 << 20)).unwrap();
    for start in (0..30).step_by(10) {
        topic.append(0, &records(start..start + 10)).unwrap();
    }
    topic.append(1, &records(0..5)).unwrap();
    topic.truncate(0, 20).unwrap();
    assert_holds_first(&topic, 0, 20);
    assert_holds_first(&topic, 1, 5);
    assert_eq!(topic.append(0, &records(20..22)).unwrap(), 20);
    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    assert_holds_first(&store.topic("t").unwrap(), 0, 22);
}

#[test]
fn truncate_inside_a_batch_keeps_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", config(1, 1 << 20)).unwrap();
    for start in (0..30).step_by(10) {
        topic.append(0, &records(start..start + 10)).unwrap();
    }
    topic.truncate(0, 14).unwrap();
    assert_holds_first(&topic, 0, 14);
    assert_eq!(topic.read(0, 12, 10).unwrap().len(), 2);
    assert_eq!(topic.append(0, &records(14..16)).unwrap(), 14);
    assert_holds_first(&topic, 0, 16);
    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("t").unwrap();
    assert_holds_first(&topic, 0, 16);
    // No temporary file is left behind.
    let partition_dir = dir.path().join("t").join("0");
    assert_eq!(std::fs::read_dir(partition_dir).unwrap().count(), 1);
}

#[test]
fn truncate_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", config(1, 200)).unwrap();
    for start in (0..60).step_by(3) {
        topic.append(0, &records(start..start + 3)).unwrap();
    }
    let before = segment_files(dir.path(), "t", 0).len();
    assert!(before >= 4);
    topic.truncate(0, 7).unwrap();
    assert_holds_first(&topic, 0, 7);
    let after = segment_files(dir.path(), "t", 0).len();
    assert!(after < before, "{after} segments left of {before}");
    // Appending rolls over again and everything reads back.
    for start in (7..40).step_by(3) {
        assert_eq!(topic.append(0, &records(start..start + 3)).unwrap(), start);
    }
    assert_holds_first(&topic, 0, 40);
    assert!(segment_files(dir.path(), "t", 0).len() > after);
    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    assert_holds_first(&store.topic("t").unwrap(), 0, 40);
}

#[test]
fn truncate_to_a_segment_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", config(1, 200)).unwrap();
    for start in (0..60).step_by(3) {
        topic.append(0, &records(start..start + 3)).unwrap();
    }
    let files = segment_files(dir.path(), "t", 0);
    let second_base: u64 = files[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    topic.truncate(0, second_base).unwrap();
    assert_eq!(segment_files(dir.path(), "t", 0), files[..1]);
    assert_holds_first(&topic, 0, second_base);
    assert_eq!(
        topic
            .append(0, &records(second_base..second_base + 1))
            .unwrap(),
        second_base
    );
    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    assert_holds_first(&store.topic("t").unwrap(), 0, second_base + 1);
}

#[test]
fn truncate_to_zero_and_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", config(1, 200)).unwrap();
    for start in (0..30).step_by(3) {
        topic.append(0, &records(start..start + 3)).unwrap();
    }
    topic.truncate(0, 30).unwrap();
    assert_holds_first(&topic, 0, 30);
    topic.truncate(0, 0).unwrap();
    assert_eq!(topic.end_offset(0).unwrap(), 0);
    assert!(topic.read(0, 0, 100).unwrap().is_empty());
    assert_eq!(segment_files(dir.path(), "t", 0).len(), 1);
    assert_eq!(topic.append(0, &records(0..4)).unwrap(), 0);
    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    assert_holds_first(&store.topic("t").unwrap(), 0, 4);
}

#[test]
fn truncate_past_the_end_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", config(1, 4096)).unwrap();
    topic.append(0, &records(0..5)).unwrap();
    match topic.truncate(0, 6) {
        Err(TopicError::Io(err)) => assert_eq!(err.kind(), ErrorKind::InvalidInput),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_holds_first(&topic, 0, 5);
    assert_eq!(topic.append(0, &records(5..6)).unwrap(), 5);
}

#[test]
fn leftover_rewrite_file_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = TopicStore::open(dir.path()).unwrap();
        let topic = store.create_topic("t", config(1, 4096)).unwrap();
        topic.append(0, &records(0..5)).unwrap();
    }
    // What a truncate that crashed before its rename leaves behind.
    let leftover = dir
        .path()
        .join("t")
        .join("0")
        .join("00000000000000000000.log.tmp");
    std::fs::write(&leftover, b"partial copy").unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    assert!(!leftover.exists());
    assert_holds_first(&store.topic("t").unwrap(), 0, 5);
}

/// A batch of many records is read in windows from one decoding (the segment keeps it while a
/// read ends inside it); a batch written where a truncate cut one is read as itself.
#[test]
fn a_big_batch_read_in_windows_and_rewritten_after_a_truncate() {
    const BIG: u64 = 40_000;
    const WINDOW: usize = 8_192;
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", config(1, 1 << 30)).unwrap();
    topic.append(0, &records(0..BIG)).unwrap();
    let read_in_windows = |from: u64, to: u64| {
        let mut next = from;
        let mut all = Vec::new();
        while next < to {
            let window = topic
                .read(0, next, WINDOW.min((to - next) as usize))
                .unwrap();
            next = window.last().unwrap().0 + 1;
            all.extend(window);
        }
        all
    };
    // Stop in the middle of the batch once, then read on from there.
    let head = read_in_windows(0, 10_000);
    let tail = read_in_windows(10_000, BIG);
    for (i, (offset, rec)) in head.into_iter().chain(tail).enumerate() {
        assert_eq!(offset, i as u64);
        assert_eq!(rec, record(i as u64), "record at offset {i}");
    }
    // Half read, then cut at its start and written again with other records.
    assert_eq!(read_in_windows(0, 20_000).len(), 20_000);
    topic.truncate(0, 0).unwrap();
    let other: Vec<_> = records(BIG..2 * BIG);
    topic.append(0, &other).unwrap();
    let again = read_in_windows(0, BIG);
    assert_eq!(again.len() as u64, BIG);
    for ((offset, rec), want) in again.into_iter().zip(&other) {
        assert_eq!(&rec, want, "record at offset {offset}");
    }
}
