//! Many threads appending and reading at once: unique offsets, complete
//! reads, shared fsyncs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use bytes::Bytes;

use super::super::{Record, Topic, TopicConfig, TopicStore};
use super::config;

/// The record thread `thread` writes as record `index` of its append
/// number `append`.
fn thread_record(thread: usize, append: usize, index: usize) -> Record {
    Record {
        key: Some(Bytes::from(format!("thread-{thread}"))),
        value: Bytes::from(format!("t{thread}-a{append}-r{index}")),
        timestamp_ms: (thread * 1_000_000 + append) as i64,
        headers: Vec::new(),
    }
}

/// Keeps reading partition 0 until `done`, checking that each read returns
/// contiguous offsets below the end offset seen right after it. Returns
/// everything it saw.
fn tail_reader(topic: Arc<Topic>, done: Arc<AtomicBool>) -> BTreeMap<u64, Record> {
    let mut seen = BTreeMap::new();
    let mut next = 0;
    loop {
        let finished = done.load(Ordering::Acquire);
        let got = topic.read(0, next, 97).unwrap();
        let end = topic.end_offset(0).unwrap();
        for (offset, record) in got {
            assert_eq!(offset, next, "reads are contiguous");
            assert!(offset < end, "read {offset} beyond end offset {end}");
            seen.insert(offset, record);
            next += 1;
        }
        if finished && next == end {
            return seen;
        }
    }
}

/// Runs `threads` appenders, each doing `appends` appends of 1 or 2
/// records to partition 0 while a reader tails it; checks the result and
/// returns the total number of appends.
fn hammer(topic: &Arc<Topic>, threads: usize, appends: usize) -> usize {
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (topic, done) = (Arc::clone(topic), Arc::clone(&done));
        thread::spawn(move || tail_reader(topic, done))
    };
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let topic = Arc::clone(topic);
            thread::spawn(move || {
                (0..appends)
                    .map(|a| {
                        let batch: Vec<Record> = (0..1 + (t + a) % 2)
                            .map(|r| thread_record(t, a, r))
                            .collect();
                        (topic.append(0, &batch).unwrap(), batch)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut expected = BTreeMap::new();
    for writer in writers {
        for (base, batch) in writer.join().unwrap() {
            for (i, record) in batch.into_iter().enumerate() {
                let previous = expected.insert(base + i as u64, record);
                assert!(
                    previous.is_none(),
                    "offset {} handed out twice",
                    base + i as u64
                );
            }
        }
    }
    done.store(true, Ordering::Release);
    let seen = reader.join().unwrap();

    // Offsets tile 0..total exactly, and every record reads back as written.
    let total = expected.len() as u64;
    assert_eq!(
        expected.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    assert_eq!(topic.end_offset(0).unwrap(), total);
    let all: BTreeMap<u64, Record> = topic.read(0, 0, usize::MAX).unwrap().into_iter().collect();
    assert_eq!(all, expected);
    assert_eq!(seen, expected, "the tailing reader saw the same log");
    threads * appends
}

#[test]
fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("busy", TopicConfig::default()).unwrap();
    let appends = hammer(&topic, 8, 200);
    let fsyncs = topic.fsync_count();
    eprintln!("group commit: {appends} appends, {fsyncs} fsyncs");
    assert!(fsyncs > 0);
    assert!(
        fsyncs < appends as u64,
        "{fsyncs} fsyncs for {appends} appends"
    );
}

#[test]
fn concurrent_appends_across_roll_over_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let store = TopicStore::open(dir.path()).unwrap();
        let topic = store.create_topic("rolling", config(1, 512)).unwrap();
        hammer(&topic, 4, 100);
        topic.read(0, 0, usize::MAX).unwrap()
    };
    assert!(super::segment_files(dir.path(), "rolling", 0).len() > 10);
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("rolling").unwrap();
    assert_eq!(topic.read(0, 0, usize::MAX).unwrap(), expected);
}

#[test]
fn concurrent_topic_creation_and_partition_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(TopicStore::open(dir.path()).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let topic = store
                    .create_topic(&format!("topic-{t}"), config(4, 4096))
                    .unwrap();
                for p in 0..4 {
                    for a in 0..10 {
                        assert_eq!(
                            topic.append(p, &[thread_record(t, a, 0)]).unwrap(),
                            a as u64
                        );
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let topics = store.list();
    assert_eq!(topics.len(), 4);
    for (t, topic) in topics.iter().enumerate() {
        assert_eq!(topic.name(), format!("topic-{t}"));
        for p in 0..4 {
            let got: Vec<Record> = topic
                .read(p, 0, 100)
                .unwrap()
                .into_iter()
                .map(|(_, r)| r)
                .collect();
            let want: Vec<Record> = (0..10).map(|a| thread_record(t, a, 0)).collect();
            assert_eq!(got, want);
        }
    }
}
