//! Reopening after damage: torn tails, CRC failures, sealed-segment
//! corruption and interrupted creates.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};

use super::super::{TopicError, TopicStore};
use super::{assert_holds_first, config, last_segment, records, segment_files};

/// Creates topic "t" with one partition holding 25 records in five batches
/// of five, and returns the size of its (only) segment.
fn five_batches(dir: &std::path::Path) -> u64 {
    let store = TopicStore::open(dir).unwrap();
    let topic = store.create_topic("t", config(1, 1 << 20)).unwrap();
    for start in (0..25).step_by(5) {
        topic.append(0, &records(start..start + 5)).unwrap();
    }
    fs::metadata(last_segment(dir, "t", 0)).unwrap().len()
}

/// Reopens, checks that `n` records survived and that appends continue.
fn assert_recovers_to(dir: &std::path::Path, n: u64) {
    let store = TopicStore::open(dir).unwrap();
    let topic = store.topic("t").unwrap();
    assert_holds_first(&topic, 0, n);
    assert_eq!(topic.append(0, &records(n..n + 3)).unwrap(), n);
    assert_holds_first(&topic, 0, n + 3);
    drop((topic, store));
    let store = TopicStore::open(dir).unwrap();
    assert_holds_first(&store.topic("t").unwrap(), 0, n + 3);
}

#[test]
fn garbage_after_last_batch_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let size = five_batches(dir.path());
    let segment = last_segment(dir.path(), "t", 0);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(b"\x57\xff\xff\x00\x00garbage that is not a batch")
        .unwrap();
    drop(file);
    {
        let store = TopicStore::open(dir.path()).unwrap();
        assert_holds_first(&store.topic("t").unwrap(), 0, 25);
    }
    assert_eq!(fs::metadata(&segment).unwrap().len(), size, "tail was cut");
    assert_recovers_to(dir.path(), 25);
}

#[test]
fn zeroed_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let size = five_batches(dir.path());
    let segment = last_segment(dir.path(), "t", 0);
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(size + 4096)
        .unwrap();
    assert_recovers_to(dir.path(), 25);
}

#[test]
fn last_batch_cut_short_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let size = five_batches(dir.path());
    let segment = last_segment(dir.path(), "t", 0);
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(size - 7)
        .unwrap();
    assert_recovers_to(dir.path(), 20);
}

#[test]
fn partial_header_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    five_batches(dir.path());
    let segment = last_segment(dir.path(), "t", 0);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0x57, 1, 0]).unwrap();
    drop(file);
    assert_recovers_to(dir.path(), 25);
}

#[test]
fn crc_flip_in_last_batch_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let size = five_batches(dir.path());
    let segment = last_segment(dir.path(), "t", 0);
    let mut bytes = fs::read(&segment).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    assert_recovers_to(dir.path(), 20);
    assert!(fs::metadata(&segment).unwrap().len() < size + 100);
}

#[test]
fn damage_in_middle_of_last_segment_cuts_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let size = five_batches(dir.path());
    let segment = last_segment(dir.path(), "t", 0);
    let mut bytes = fs::read(&segment).unwrap();
    // Each batch has the same size; damage the third one.
    let batch_bytes = size as usize / 5;
    bytes[2 * batch_bytes + 30] ^= 0xff;
    fs::write(&segment, &bytes).unwrap();
    assert_recovers_to(dir.path(), 10);
}

#[test]
fn torn_tail_after_roll_over_keeps_earlier_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = TopicStore::open(dir.path()).unwrap();
        let topic = store.create_topic("t", config(1, 200)).unwrap();
        for start in (0..40).step_by(2) {
            topic.append(0, &records(start..start + 2)).unwrap();
        }
    }
    let files = segment_files(dir.path(), "t", 0);
    assert!(files.len() >= 3);
    let segment = files.last().unwrap();
    let size = fs::metadata(segment).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap()
        .set_len(size - 1)
        .unwrap();
    assert_recovers_to(dir.path(), 38);
}

#[test]
fn corruption_in_sealed_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = TopicStore::open(dir.path()).unwrap();
        let topic = store.create_topic("t", config(1, 200)).unwrap();
        for start in (0..40).step_by(2) {
            topic.append(0, &records(start..start + 2)).unwrap();
        }
    }
    let first = &segment_files(dir.path(), "t", 0)[0];
    let mut bytes = fs::read(first).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    fs::write(first, &bytes).unwrap();
    // The segment opens from its summary, unread; the damage shows when it is read.
    {
        let store = TopicStore::open(dir.path()).unwrap();
        match store.topic("t").unwrap().read(0, 0, usize::MAX) {
            Err(TopicError::Io(err)) => assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}"),
            other => panic!("expected InvalidData, got {other:?}"),
        }
    }
    // Without its summary the segment is scanned at open, which refuses it.
    fs::remove_file(first.with_extension("summary")).unwrap();
    match TopicStore::open(dir.path()) {
        Err(TopicError::Io(err)) => assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}"),
        other => panic!("expected InvalidData, got {other:?}"),
    }
    // Nothing was cut from the damaged segment.
    assert_eq!(fs::read(first).unwrap(), bytes);
}

#[test]
fn missing_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = TopicStore::open(dir.path()).unwrap();
        let topic = store.create_topic("t", config(1, 200)).unwrap();
        for start in (0..40).step_by(2) {
            topic.append(0, &records(start..start + 2)).unwrap();
        }
    }
    fs::remove_file(&segment_files(dir.path(), "t", 0)[1]).unwrap();
    assert!(
        matches!(TopicStore::open(dir.path()), Err(TopicError::Io(err)) if err.kind() == ErrorKind::InvalidData)
    );
}

#[test]
fn interrupted_create_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    five_batches(dir.path());
    // A topic directory without meta.json: a create that never finished.
    fs::create_dir_all(dir.path().join("half").join("0")).unwrap();
    // Files and non-topic directories in the data directory are left alone.
    fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    fs::create_dir(dir.path().join("not a topic")).unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    assert!(!dir.path().join("half").exists());
    assert!(dir.path().join("notes.txt").exists());
    assert!(dir.path().join("not a topic").exists());
    let names: Vec<String> = store.list().iter().map(|t| t.name().to_string()).collect();
    assert_eq!(names, ["t"]);
    store.create_topic("half", config(1, 4096)).unwrap();
}
