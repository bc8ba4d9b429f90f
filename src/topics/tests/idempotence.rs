//! Idempotent appends: a retried batch is written once, sequence gaps and fenced epochs are
//! refused, and the producers' last batches are rebuilt from the log after a reopen.

use super::super::{IdempotentAppend, ProducerStamp, TopicStore};
use super::{config, records};

fn stamp(producer_id: i64, epoch: i16, base_sequence: i32) -> ProducerStamp {
    ProducerStamp {
        producer_id,
        epoch,
        base_sequence,
    }
}

#[test]
fn retries_are_written_once_even_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.create_topic("t", config(1, 1 << 20)).unwrap();
    let append = |records_range, s| topic.append_idempotent(0, &records(records_range), s);
    assert_eq!(
        append(0..3, stamp(7, 0, 0)).unwrap(),
        IdempotentAppend::Written(0)
    );
    assert_eq!(
        append(3..5, stamp(7, 0, 3)).unwrap(),
        IdempotentAppend::Written(3)
    );
    assert_eq!(
        append(3..5, stamp(7, 0, 3)).unwrap(),
        IdempotentAppend::Retry(3)
    );
    assert_eq!(
        append(0..3, stamp(7, 0, 0)).unwrap(),
        IdempotentAppend::DuplicateSequence
    );
    assert_eq!(
        append(9..10, stamp(7, 0, 9)).unwrap(),
        IdempotentAppend::OutOfOrder
    );
    // Another producer, and plain appends, interleave freely.
    assert_eq!(
        append(5..6, stamp(8, 0, 0)).unwrap(),
        IdempotentAppend::Written(5)
    );
    topic.append(0, &records(6..7)).unwrap();
    assert_eq!(topic.end_offset(0).unwrap(), 7);

    drop(topic);
    drop(store);
    let store = TopicStore::open(dir.path()).unwrap();
    let topic = store.topic("t").unwrap();
    // The retry of the last batch, sent after the restart, is still recognised.
    let retried = topic.append_idempotent(0, &records(3..5), stamp(7, 0, 3));
    assert_eq!(retried.unwrap(), IdempotentAppend::Retry(3));
    assert_eq!(topic.end_offset(0).unwrap(), 7);
    let next = topic.append_idempotent(0, &records(7..8), stamp(7, 0, 5));
    assert_eq!(next.unwrap(), IdempotentAppend::Written(7));
    // A newer epoch starts afresh; the older one is fenced.
    let bumped = topic.append_idempotent(0, &records(8..9), stamp(7, 1, 0));
    assert_eq!(bumped.unwrap(), IdempotentAppend::Written(8));
    let fenced = topic.append_idempotent(0, &records(9..10), stamp(7, 0, 6));
    assert_eq!(fenced.unwrap(), IdempotentAppend::StaleEpoch);
    // Stamped batches read back like any other.
    let read = topic.read(0, 0, usize::MAX).unwrap();
    assert_eq!(read.len(), 9);
    assert_eq!(read[3].1, records(3..4)[0]);
}
