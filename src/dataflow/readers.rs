//! The shared readers: each topic a running view reads is read and decoded once per epoch, and
//! its changes go to every view that reads it (with the same decoding).
//!
//! A reader's `positions` are where the current epoch has read up to; `published` are the
//! positions of the last committed epoch, which backfills catch up to (a backfill must never
//! read past what the views in the epochs will be sent, or records would count twice).

use std::collections::BTreeMap;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

use super::actor::Message;
use super::runtime::SkippedRecords;
use crate::error::Result;
use crate::sources::reader::{Decoding, read_range};
use crate::topics::Topic;

pub type ReaderId = u64;

/// Offsets per partition as the backfills see them.
pub type Published = Arc<Mutex<Vec<u64>>>;

struct SharedReader {
    topic: Arc<Topic>,
    decoding: Decoding,
    /// Per partition: the next offset to read. Every subscribed view has read up to here.
    positions: Vec<u64>,
    published: Published,
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    view_id: u64,
    sender: SyncSender<Message>,
    /// The view's inputs this topic feeds (a self-join reads it twice).
    inputs: Vec<usize>,
}

#[derive(Default)]
pub struct Readers {
    readers: BTreeMap<ReaderId, SharedReader>,
    next_id: ReaderId,
}

impl Readers {
    /// The reader of `topic` with `decoding`, added if there is none: positioned at `start`
    /// (a restored view's offsets), or else at the topic's end.
    pub fn find_or_add(
        &mut self,
        topic: &Arc<Topic>,
        decoding: &Decoding,
        start: Option<&[u64]>,
    ) -> Result<ReaderId> {
        if let Some((&id, _)) = self
            .readers
            .iter()
            .find(|(_, r)| r.topic.name() == topic.name() && &r.decoding == decoding)
        {
            return Ok(id);
        }
        let positions = match start {
            Some(start) => start.to_vec(),
            None => ends(topic)?,
        };
        let id = self.next_id;
        self.next_id += 1;
        self.readers.insert(
            id,
            SharedReader {
                topic: topic.clone(),
                decoding: decoding.clone(),
                published: Arc::new(Mutex::new(positions.clone())),
                positions,
                subscribers: Vec::new(),
            },
        );
        Ok(id)
    }

    pub fn positions(&self, id: ReaderId) -> Vec<u64> {
        self.readers[&id].positions.clone()
    }

    pub fn published(&self, id: ReaderId) -> Published {
        self.readers[&id].published.clone()
    }

    /// From the next read on, reader `id` sends its changes to `view_id` as input `input`.
    pub fn subscribe(
        &mut self,
        id: ReaderId,
        view_id: u64,
        sender: &SyncSender<Message>,
        input: usize,
    ) {
        let subscribers = &mut self.readers.get_mut(&id).expect("reader").subscribers;
        match subscribers.iter_mut().find(|s| s.view_id == view_id) {
            Some(s) => s.inputs.push(input),
            None => subscribers.push(Subscriber {
                view_id,
                sender: sender.clone(),
                inputs: vec![input],
            }),
        }
    }

    pub fn unsubscribe(&mut self, view_id: u64) {
        for reader in self.readers.values_mut() {
            reader.subscribers.retain(|s| s.view_id != view_id);
        }
    }

    /// Keeps only the readers some view still uses.
    pub fn retain(&mut self, used: impl Fn(ReaderId) -> bool) {
        self.readers.retain(|id, _| used(*id));
    }

    /// Whether a topic someone reads has records beyond the readers' positions.
    pub fn has_new(&self) -> bool {
        self.readers.values().any(|r| {
            !r.subscribers.is_empty()
                && (0..r.topic.partitions())
                    .any(|p| r.topic.end_offset(p).unwrap_or(0) > r.positions[p as usize])
        })
    }

    /// Reads every subscribed topic's new records once and sends them to its views.
    pub fn read(&mut self, skipped: &SkippedRecords) -> Result<()> {
        for reader in self.readers.values_mut() {
            if reader.subscribers.is_empty() {
                continue;
            }
            for p in 0..reader.topic.partitions() {
                let end = reader.topic.end_offset(p)?;
                let from = reader.positions[p as usize];
                let subscribers = &reader.subscribers;
                let read = read_range(&reader.topic, &reader.decoding, p, from, end, |changes| {
                    send(subscribers, |input| Message::Data {
                        input,
                        batch: changes.clone(),
                    });
                    Ok(())
                })?;
                if let Some(max) = read.max_event_time {
                    send(subscribers, |input| Message::EventTime {
                        input,
                        partition: p,
                        max,
                    });
                }
                reader.positions[p as usize] = read.next;
                if read.skipped > 0 {
                    let mut skipped = skipped.lock().expect("skipped lock");
                    for s in subscribers {
                        *skipped
                            .entry((s.view_id, reader.topic.name().to_string()))
                            .or_default() += read.skipped;
                    }
                }
            }
        }
        Ok(())
    }

    /// The epoch is committed: backfills may catch up to its positions.
    pub fn publish(&self) {
        for reader in self.readers.values() {
            *reader.published.lock().expect("positions lock") = reader.positions.clone();
        }
    }

    /// The epoch's commit failed: back to the committed positions.
    pub fn rewind(&mut self) {
        for reader in self.readers.values_mut() {
            reader.positions = reader.published.lock().expect("positions lock").clone();
        }
    }

    /// Moves the readers no view reads yet to their topic's end, so that a backfill chases the
    /// records still arriving instead of reading them all when it joins.
    pub fn advance_idle(&mut self) {
        for reader in self.readers.values_mut() {
            if !reader.subscribers.is_empty() {
                continue;
            }
            if let Ok(ends) = ends(&reader.topic) {
                reader.positions = ends.clone();
                *reader.published.lock().expect("positions lock") = ends;
            }
        }
    }

    /// Lets go of every view's channel (shutdown).
    pub fn clear(&mut self) {
        self.readers.clear();
    }
}

/// Sends each subscribed input its message.
fn send(subscribers: &[Subscriber], message: impl Fn(usize) -> Message) {
    for s in subscribers {
        for &input in &s.inputs {
            if s.sender.send(message(input)).is_err() {
                tracing::warn!(view = s.view_id, "a view's thread stopped");
            }
        }
    }
}

fn ends(topic: &Topic) -> Result<Vec<u64>> {
    Ok((0..topic.partitions())
        .map(|p| topic.end_offset(p))
        .collect::<std::result::Result<Vec<_>, _>>()?)
}
