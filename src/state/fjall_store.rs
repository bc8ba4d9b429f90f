//! [`StateStore`] on fjall, an embedded log-structured merge tree (the shape RocksDB gives
//! Flink's state): writes go to a journal and a memtable, so an epoch's commit costs one
//! sequential write and one fsync however many keys it touches.
//!
//! Everything lives in one fjall keyspace. A commit is one fjall write batch (atomic) followed
//! by a journal fsync; reads see a snapshot taken when they start, so a scan never sees half of
//! a commit and never blocks one.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjall::config::PinningPolicy;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable, Snapshot};

use super::{KeyRange, KvPairs, StateStore, StoreSnapshot, WriteBatch};
use crate::error::{Result, WeirError};

/// The one keyspace Weir keeps its state in.
const KEYSPACE: &str = "weir";
/// fjall's block cache (its own default is 32 MiB): operator state read back through the state
/// cache (`dataflow::state_cache`) comes from here when it was read or written recently.
const BLOCK_CACHE_MB: u64 = 128;
/// A commit of at least this many key and value bytes is flushed from the memtable to a table
/// file before it is acknowledged. fjall replays at open every journal entry not yet in a
/// table file, so without this a crash soon after a big commit (a view's backfill) costs
/// seconds of replay at the next start; with it the journal left to replay stays small.
const FLUSH_COMMIT_BYTES: usize = 16 * 1024 * 1024;
/// The longest a large commit waits for its flush (past it, the journal is replayed instead).
const FLUSH_WAIT_MAX: Duration = Duration::from_secs(30);
/// How often that wait looks whether fjall is done.
const FLUSH_POLL: Duration = Duration::from_millis(5);

pub struct FjallStore {
    db: Database,
    space: Keyspace,
}

fn store_error(err: fjall::Error) -> WeirError {
    WeirError::io("store", err)
}

impl FjallStore {
    pub fn open(dir: &Path) -> Result<Self> {
        let db = Database::builder(dir)
            .cache_size(BLOCK_CACHE_MB * 1024 * 1024)
            .open()
            .map_err(store_error)?;
        // Index and filter blocks of every level stay in memory (fjall pins index blocks of
        // levels 0-1 and filter blocks of level 0 by default), so that a point read of operator state that is not in memory
        // costs one data block, and a read of a key the store does not hold usually none.
        // A few bytes per stored key; set when the keyspace is created (fjall keeps a
        // keyspace's options), so a data directory made before keeps fjall's defaults.
        let space = db
            .keyspace(KEYSPACE, || {
                KeyspaceCreateOptions::default()
                    .index_block_pinning_policy(PinningPolicy::all(true))
                    .filter_block_pinning_policy(PinningPolicy::all(true))
            })
            .map_err(store_error)?;
        Ok(FjallStore { db, space })
    }
}

impl FjallStore {
    /// Seals the memtable and waits (at most [`FLUSH_WAIT_MAX`]) until fjall has written it to
    /// a table file and dropped the journals behind it. fjall may already have sealed it
    /// itself (a memtable past its size limit is sealed by a background worker), so this waits
    /// on the outcome, not on its own call. `rotate_memtable` is public but hidden in fjall's
    /// docs, like the counts it is checked with.
    fn flush_journal(&self) -> Result<()> {
        self.space.rotate_memtable().map_err(store_error)?;
        let deadline = Instant::now() + FLUSH_WAIT_MAX;
        while self.space.sealed_memtable_count() > 0 || self.db.journal_count() > 1 {
            if Instant::now() > deadline {
                tracing::debug!("fjall has not flushed a large commit within {FLUSH_WAIT_MAX:?}");
                break;
            }
            std::thread::sleep(FLUSH_POLL);
        }
        Ok(())
    }
}

impl StateStore for FjallStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .space
            .get(key)
            .map_err(store_error)?
            .map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<KvPairs> {
        let mut out = Vec::new();
        for guard in self.space.prefix(prefix) {
            let (k, v) = guard.into_inner().map_err(store_error)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn snapshot(&self) -> Arc<dyn StoreSnapshot> {
        Arc::new(FjallSnapshot {
            snapshot: self.db.snapshot(),
            space: self.space.clone(),
        })
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // In key order (stable, so a key's later write still wins): each memtable insert then
        // walks the skiplist path the previous one just warmed in the cache.
        let bytes = batch.bytes();
        let mut writes = self.db.batch();
        for (key, value) in batch.sorted() {
            match value {
                Some(v) => writes.insert(&self.space, key, v),
                None => writes.remove(&self.space, key),
            }
        }
        writes.commit().map_err(store_error)?;
        self.db.persist(PersistMode::SyncAll).map_err(store_error)?;
        if bytes >= FLUSH_COMMIT_BYTES {
            self.flush_journal()?;
        }
        Ok(())
    }
}

/// A fjall snapshot: reads at one sequence number, while commits go on.
struct FjallSnapshot {
    snapshot: Snapshot,
    space: Keyspace,
}

impl StoreSnapshot for FjallSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .snapshot
            .get(&self.space, key)
            .map_err(store_error)?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, range: &KeyRange, max_pairs: usize) -> Result<KvPairs> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (range.start(), range.end());
        let mut out = Vec::new();
        for guard in self
            .snapshot
            .range::<&[u8], _>(&self.space, bounds)
            .take(max_pairs)
        {
            let (k, v) = guard.into_inner().map_err(store_error)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn holds_commits(&self) -> bool {
        false
    }
}
