//! [`StateStore`] on an embedded sled database (the backend first designed).
//!
//! sled applies a batch atomically, so one `get` sees all of a commit or none of it, but its
//! iterators take its lock per step, and it has no snapshots: a scan could see half of a
//! commit. A [`Gate`] makes every scan and every [`SledSnapshot`] exclusive with commits, so
//! with sled a long read holds commits back (fjall's snapshots do not; see `fjall_store`).

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use super::{KeyRange, KvPairs, StateStore, StoreSnapshot, WriteBatch};
use crate::error::Result;

pub struct SledStore {
    db: sled::Db,
    gate: Arc<Gate>,
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<Self> {
        // Every commit flushes explicitly, so sled's background flusher is not needed (and
        // without it the store's lock is released as soon as it is dropped).
        let db = sled::Config::new().path(dir).flush_every_ms(None).open()?;
        Ok(SledStore {
            db,
            gate: Arc::default(),
        })
    }
}

impl StateStore for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<KvPairs> {
        let _reading = Gate::enter(&self.gate);
        let mut out = Vec::new();
        for pair in self.db.scan_prefix(prefix) {
            let (k, v) = pair?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn snapshot(&self) -> Arc<dyn StoreSnapshot> {
        Arc::new(SledSnapshot {
            db: self.db.clone(),
            _reading: Gate::enter(&self.gate),
        })
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.iter() {
            match value {
                Some(v) => sled_batch.insert(key, v),
                None => sled_batch.remove(key),
            }
        }
        {
            let _writing = self.gate.write();
            self.db.apply_batch(sled_batch)?;
        }
        self.db.flush()?;
        Ok(())
    }
}

/// Reads of a sled store while it holds no commit: alive, it keeps commits waiting.
struct SledSnapshot {
    db: sled::Db,
    _reading: Reading,
}

impl StoreSnapshot for SledSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, range: &KeyRange, max_pairs: usize) -> Result<KvPairs> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (range.start(), range.end());
        let mut out = Vec::new();
        for pair in self.db.range::<&[u8], _>(bounds).take(max_pairs) {
            let (k, v) = pair?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn holds_commits(&self) -> bool {
        true
    }
}

/// Readers and commits of the sled store, as a readers-writer lock whose read side can be
/// owned by a snapshot (std's guards borrow their lock). A waiting commit goes first: readers
/// that arrive after it wait, so a steady stream of reads cannot starve commits. Hence never
/// read the store on a thread that already holds a snapshot of it.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    readers: usize,
    writing: bool,
    writers_waiting: usize,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // The state is a few counters updated in place: a panic elsewhere cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait<'a>(
        &self,
        guard: std::sync::MutexGuard<'a, GateState>,
    ) -> std::sync::MutexGuard<'a, GateState> {
        self.changed
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn enter(gate: &Arc<Gate>) -> Reading {
        let mut state = gate.lock();
        while state.writing || state.writers_waiting > 0 {
            state = gate.wait(state);
        }
        state.readers += 1;
        Reading(gate.clone())
    }

    fn write(&self) -> Writing<'_> {
        let mut state = self.lock();
        state.writers_waiting += 1;
        while state.writing || state.readers > 0 {
            state = self.wait(state);
        }
        state.writers_waiting -= 1;
        state.writing = true;
        Writing(self)
    }
}

/// The read side of a [`Gate`], held until dropped.
struct Reading(Arc<Gate>);

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.lock().readers -= 1;
        self.0.changed.notify_all();
    }
}

/// The write side of a [`Gate`], held until dropped.
struct Writing<'a>(&'a Gate);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.lock().writing = false;
        self.0.changed.notify_all();
    }
}
