//! Sealed segments' summaries: written at the roll, trusted at open only when true,
//! removed before a segment changes, and carrying idempotent producers across a restart.

use std::fs;
use std::path::{Path, PathBuf};

use super::super::summary::{IndexEntry, Summary};
use super::super::{IdempotentAppend, ProducerStamp, TopicStore};
use super::{assert_holds_first, config, records, segment_files};

/// Creates topic "t" (one partition, 200-byte segments) holding `record(0..40)` in batches
/// of two, so that it has many sealed segments.
fn many_segments(dir: &Path) {
    let store = TopicStore::open(dir).unwrap();
    let topic = store.create_topic("t", config(1, 200)).unwrap();
    for start in (0..40).step_by(2) {
        topic.append(0, &records(start..start + 2)).unwrap();
    }
}

/// Summary files of partition 0 of "t", sorted.
fn summary_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("t").join("0"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "summary"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_sealed_segment_has_a_summary_and_the_active_one_none() {
    let dir = tempfile::tempdir().unwrap();
    many_segments(dir.path());
    let segments = segment_files(dir.path(), "t", 0);
    let summaries = summary_files(dir.path());
    assert!(segments.len() >= 3);
    let sealed: Vec<PathBuf> = segments[..segments.len() - 1]
        .iter()
        .map(|s| s.with_extension("summary"))
        .collect();
    assert_eq!(summaries, sealed);
    for (segment, summary) in segments.iter().zip(&summaries) {
        let decoded = Summary::decode(&fs::read(summary).unwrap()).unwrap();
        assert_eq!(decoded.size_bytes, fs::metadata(segment).unwrap().len());
        assert_eq!(
            decoded.index.first(),
            Some(&IndexEntry {
                offset: decoded.base_offset,
                position: 0
            })
        );
    }
    // Reopened from the summaries, the log reads back whole and takes appends.
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("t").unwrap();
    assert_holds_first(&topic, 0, 40);
    topic.append(0, &records(40..42)).unwrap();
    assert_holds_first(&topic, 0, 42);
}

#[test]
fn a_damaged_summary_is_ignored_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    many_segments(dir.path());
    let first = summary_files(dir.path())[0].clone();
    let good = fs::read(&first).unwrap();
    let mut bad = good.clone();
    bad[10] ^= 0x01;
    fs::write(&first, &bad).unwrap();
    {
        let store = TopicStore::open(dir.path()).unwrap();
        assert_holds_first(&store.topic("t").unwrap(), 0, 40);
    }
    assert_eq!(fs::read(&first).unwrap(), good, "the scan wrote it again");
}

#[test]
fn a_summary_of_another_size_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    many_segments(dir.path());
    let segment = segment_files(dir.path(), "t", 0)[1].clone();
    // A summary that claims a larger file and one more record than the segment holds.
    let path = segment.with_extension("summary");
    let mut lying = Summary::decode(&fs::read(&path).unwrap()).unwrap();
    lying.size_bytes += 100;
    lying.end_offset += 1;
    fs::write(&path, lying.encode()).unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    assert_holds_first(&store.topic("t").unwrap(), 0, 40);
}

#[test]
fn a_summary_without_its_segment_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    many_segments(dir.path());
    let orphan = dir
        .path()
        .join("t")
        .join("0")
        .join("00000000000000999999.summary");
    fs::copy(&summary_files(dir.path())[0], &orphan).unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    assert!(!orphan.exists());
    assert_holds_first(&store.topic("t").unwrap(), 0, 40);
}

#[test]
fn a_truncate_into_a_sealed_segment_removes_the_summaries_it_invalidates() {
    let dir = tempfile::tempdir().unwrap();
    many_segments(dir.path());
    {
        let store = TopicStore::open(dir.path()).unwrap();
        let topic = store.topic("t").unwrap();
        topic.truncate(0, 9).unwrap();
        assert_holds_first(&topic, 0, 9);
    }
    let segments = segment_files(dir.path(), "t", 0);
    let summaries = summary_files(dir.path());
    assert_eq!(
        summaries.len(),
        segments.len() - 1,
        "the new active one has none"
    );
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("t").unwrap();
    assert_holds_first(&topic, 0, 9);
    for start in (9..40).step_by(2) {
        topic.append(0, &records(start..start + 2)).unwrap();
    }
    drop((topic, store));
    let store = TopicStore::open(dir.path()).unwrap();
    assert_holds_first(&store.topic("t").unwrap(), 0, 41);
}

#[test]
fn an_idempotent_producer_in_a_sealed_segment_survives_a_restart() {
    let stamp = |producer_id, base_sequence| ProducerStamp {
        producer_id,
        epoch: 0,
        base_sequence,
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let store = TopicStore::open(dir.path()).unwrap();
        let topic = store.create_topic("t", config(1, 200)).unwrap();
        let written = topic.append_idempotent(0, &records(0..2), stamp(7, 0));
        assert_eq!(written.unwrap(), IdempotentAppend::Written(0));
        let written = topic.append_idempotent(0, &records(2..4), stamp(7, 2));
        assert_eq!(written.unwrap(), IdempotentAppend::Written(2));
        // Plain appends fill and seal segments after producer 7's last batch.
        for start in (4..30).step_by(2) {
            topic.append(0, &records(start..start + 2)).unwrap();
        }
        assert!(segment_files(dir.path(), "t", 0).len() >= 3);
    }
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("t").unwrap();
    let retried = topic.append_idempotent(0, &records(2..4), stamp(7, 2));
    assert_eq!(retried.unwrap(), IdempotentAppend::Retry(2));
    let old = topic.append_idempotent(0, &records(0..2), stamp(7, 0));
    assert_eq!(old.unwrap(), IdempotentAppend::DuplicateSequence);
    let next = topic.append_idempotent(0, &records(30..31), stamp(7, 4));
    assert_eq!(next.unwrap(), IdempotentAppend::Written(30));
}

#[test]
fn summaries_round_trip_and_reject_damage() {
    let summary = Summary {
        base_offset: 100,
        end_offset: 250,
        size_bytes: 9000,
        index: vec![
            IndexEntry {
                offset: 100,
                position: 0,
            },
            IndexEntry {
                offset: 180,
                position: 4200,
            },
        ],
        producers: vec![(
            ProducerStamp {
                producer_id: -3,
                epoch: 2,
                base_sequence: 40,
            },
            200,
            5,
        )],
    };
    let bytes = summary.encode();
    assert_eq!(Summary::decode(&bytes), Some(summary.clone()));
    for cut in 0..bytes.len() {
        assert_eq!(Summary::decode(&bytes[..cut]), None, "cut at {cut}");
    }
    for i in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x40;
        assert_eq!(Summary::decode(&flipped), None, "flip at {i}");
    }
    summary.check(9000).unwrap();
    assert!(summary.check(9001).is_err());
}

/// Files under `dir` this process holds open, by name.
fn open_files_under(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .collect()
}

#[test]
fn only_the_active_segment_keeps_its_file_open() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    many_segments(&dir_path);
    let segments = segment_files(&dir_path, "t", 0);
    assert!(segments.len() >= 3);
    let store = TopicStore::open(&dir_path).unwrap();
    let topic = store.topic("t").unwrap();
    // Reading the whole history opens each sealed segment only for the read.
    assert_holds_first(&topic, 0, 40);
    topic.append(0, &records(40..42)).unwrap(); // rolls: the old active one is sealed now
    let open: Vec<PathBuf> = open_files_under(&dir_path)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    let active = segment_files(&dir_path, "t", 0).pop().unwrap();
    assert_eq!(open, vec![active]);
}
