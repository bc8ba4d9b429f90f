//! The state store: one ordered key-value space holding the catalog, operator state, view rows
//! and source offsets, with atomic, durable commits.
//!
//! Everything above talks to [`StateStore`], which has two implementations: [`SledStore`] (sled,
//! as first designed) and [`FjallStore`] (fjall, an LSM tree); `--store` picks one and the
//! benchmarks (`docs/benchmarks.md`) picked the default, [`StoreKind::DEFAULT`].
//! An epoch's changes are gathered in a [`WriteBatch`] and applied with one [`StateStore::commit`],
//! so a reader sees either all of an epoch or none of it, and a crash never leaves half of one.

mod fjall_store;
pub mod keys;

use std::path::Path;
use std::sync::Arc;

pub use fjall_store::FjallStore;

use crate::error::{ErrorKind, Result, WeirError};

/// A set of puts and deletes applied atomically by [`StateStore::commit`].
#[derive(Default, Debug)]
pub struct WriteBatch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }
    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }
    /// Adds `other`'s operations after this batch's own.
    pub fn append(&mut self, mut other: WriteBatch) {
        self.ops.append(&mut other.ops);
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Key-value pairs as a scan returns them.
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The store every stage keeps its durable state in.
pub trait StateStore: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Every pair whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<KvPairs>;
    /// Applies the whole batch atomically and makes it durable before returning.
    fn commit(&self, batch: WriteBatch) -> Result<()>;
}

/// Which backend holds the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sled,
    Fjall,
}

impl StoreKind {
    /// What a new data directory gets unless `--store` says otherwise: fjall, measured 2.4× to
    /// 15× faster than sled on every Nexmark query, with a third of the memory (docs/benchmarks.md).
    pub const DEFAULT: StoreKind = StoreKind::Fjall;

    pub fn parse(name: &str) -> Option<StoreKind> {
        match name.to_ascii_lowercase().as_str() {
            "sled" => Some(StoreKind::Sled),
            "fjall" => Some(StoreKind::Fjall),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sled => "sled",
            StoreKind::Fjall => "fjall",
        }
    }

    /// Opens (or creates) a store of this kind in `dir`, checking that this build reads its
    /// layout ([`keys::STORE_FORMAT`]).
    pub fn open(self, dir: &Path) -> Result<Arc<dyn StateStore>> {
        let store: Arc<dyn StateStore> = match self {
            StoreKind::Sled => Arc::new(SledStore::open(dir)?),
            StoreKind::Fjall => Arc::new(FjallStore::open(dir)?),
        };
        check_format(store.as_ref(), dir)?;
        Ok(store)
    }
}

/// Stamps a new store with [`keys::STORE_FORMAT`]; refuses a store of another layout (a store
/// without the stamp but with a catalog was written before it existed: format 1).
fn check_format(store: &dyn StateStore, dir: &Path) -> Result<()> {
    let found = match store.get(keys::META_FORMAT)? {
        Some(v) => u32::from_be_bytes(
            v.as_slice()
                .try_into()
                .map_err(|_| WeirError::internal("corrupt store format stamp"))?,
        ),
        None if store.get(keys::META_NEXT_ID)?.is_none() => {
            let mut batch = WriteBatch::default();
            batch.put(
                keys::META_FORMAT.to_vec(),
                keys::STORE_FORMAT.to_be_bytes().to_vec(),
            );
            return store.commit(batch);
        }
        None => 1,
    };
    if found == keys::STORE_FORMAT {
        return Ok(());
    }
    Err(WeirError::new(
        ErrorKind::ObjectNotInPrerequisiteState,
        format!(
            "the store in {} has layout version {found}; this build of Weir reads version {}",
            dir.display(),
            keys::STORE_FORMAT
        ),
    )
    .with_hint(
        "start the Weir release that wrote it, or use a new --data-dir (a store is not converted)",
    ))
}

/// [`StateStore`] on an embedded sled database. sled applies a batch atomically but its
/// iterators take its lock per step, so a long scan could see half of a commit: `reads` makes
/// every get and whole scan exclusive with commits.
pub struct SledStore {
    db: sled::Db,
    reads: std::sync::RwLock<()>,
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<Self> {
        // Every commit flushes explicitly, so sled's background flusher is not needed (and
        // without it the store's lock is released as soon as it is dropped).
        let db = sled::Config::new().path(dir).flush_every_ms(None).open()?;
        Ok(SledStore {
            db,
            reads: std::sync::RwLock::new(()),
        })
    }
}

impl StateStore for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let _reading = self.reads.read().expect("store lock");
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<KvPairs> {
        let _reading = self.reads.read().expect("store lock");
        let mut out = Vec::new();
        for pair in self.db.scan_prefix(prefix) {
            let (k, v) = pair?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.ops {
            match value {
                Some(v) => sled_batch.insert(key, v),
                None => sled_batch.remove(key),
            }
        }
        {
            let _writing = self.reads.write().expect("store lock");
            self.db.apply_batch(sled_batch)?;
        }
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_is_visible_and_survives_reopen() {
        for kind in [StoreKind::Sled, StoreKind::Fjall] {
            commit_is_visible_and_survives_reopen_in(kind);
        }
    }

    #[test]
    fn a_store_of_another_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StoreKind::Fjall.open(dir.path()).unwrap();
            // What a store written before the format stamp looks like: objects, no stamp.
            let mut batch = WriteBatch::default();
            batch.delete(keys::META_FORMAT.to_vec());
            batch.put(keys::META_NEXT_ID.to_vec(), 7u64.to_be_bytes().to_vec());
            store.commit(batch).unwrap();
        }
        let err = StoreKind::Fjall.open(dir.path()).err().expect("refused");
        assert_eq!(err.kind, ErrorKind::ObjectNotInPrerequisiteState);
        assert!(err.message.contains("layout version 1"), "{}", err.message);
        // A new store is stamped and opens again. (Fjall, as above: sled lets go of its lock
        // file from a background thread after the drop, so an immediate reopen may find it
        // still taken.)
        let fresh = tempfile::tempdir().unwrap();
        drop(StoreKind::Fjall.open(fresh.path()).unwrap());
        StoreKind::Fjall.open(fresh.path()).unwrap();
    }

    fn commit_is_visible_and_survives_reopen_in(kind: StoreKind) {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = kind.open(dir.path()).unwrap();
            let mut batch = WriteBatch::default();
            batch.put(b"a/1".to_vec(), b"x".to_vec());
            batch.put(b"a/2".to_vec(), b"y".to_vec());
            batch.put(b"b/1".to_vec(), b"z".to_vec());
            store.commit(batch).unwrap();
            let mut batch = WriteBatch::default();
            batch.delete(b"a/1".to_vec());
            store.commit(batch).unwrap();
        }
        let store = kind.open(dir.path()).unwrap();
        assert_eq!(store.get(b"a/1").unwrap(), None);
        assert_eq!(
            store.scan_prefix(b"a/").unwrap(),
            vec![(b"a/2".to_vec(), b"y".to_vec())]
        );
        assert_eq!(store.get(b"b/1").unwrap(), Some(b"z".to_vec()));
    }
}
