//! The state store: one ordered key-value space holding the catalog, operator state, view rows
//! and source offsets, with atomic, durable commits.
//!
//! Everything above talks to [`StateStore`], which has two implementations: [`SledStore`] (sled,
//! as first designed) and [`FjallStore`] (fjall, an LSM tree); `--store` picks one and the
//! benchmarks (`docs/benchmarks.md`) picked the default, [`StoreKind::DEFAULT`].
//! An epoch's changes are gathered in a [`WriteBatch`] and applied with one [`StateStore::commit`],
//! so a reader sees either all of an epoch or none of it, and a crash never leaves half of one.
//! A query reads through a [`StoreSnapshot`], so all its reads see one committed epoch; fjall's
//! snapshots let commits go on meanwhile, sled's hold them back until the query ends.

mod fjall_store;
pub mod keys;
mod sled_store;

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

pub use fjall_store::FjallStore;
pub use sled_store::SledStore;

use crate::error::{ErrorKind, Result, WeirError};

/// A set of puts and deletes applied atomically by [`StateStore::commit`]. Keys and values
/// are copied into one growing buffer, so an epoch of a million writes makes a handful of
/// allocations, not two per write.
#[derive(Default, Debug)]
pub struct WriteBatch {
    bytes: Vec<u8>,
    ops: Vec<Op>,
}

/// One write: its key at `start` in the buffer, then its value (None: a delete).
#[derive(Debug, Clone, Copy)]
struct Op {
    start: usize,
    key_len: u32,
    value_len: Option<u32>,
}

impl WriteBatch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.put_parts(&[&key], &value);
    }
    /// A put of the key made of `key_parts` one after another, without building it first.
    pub fn put_parts(&mut self, key_parts: &[&[u8]], value: &[u8]) {
        let op = self.push_key(key_parts, Some(value.len()));
        self.bytes.extend_from_slice(value);
        self.ops.push(op);
    }
    pub fn delete(&mut self, key: Vec<u8>) {
        let op = self.push_key(&[&key], None);
        self.ops.push(op);
    }
    fn push_key(&mut self, key_parts: &[&[u8]], value_len: Option<usize>) -> Op {
        let start = self.bytes.len();
        for part in key_parts {
            self.bytes.extend_from_slice(part);
        }
        Op {
            start,
            key_len: len_u32(self.bytes.len() - start),
            value_len: value_len.map(len_u32),
        }
    }
    /// Adds `other`'s operations after this batch's own.
    pub fn append(&mut self, other: WriteBatch) {
        if self.ops.is_empty() {
            *self = other;
            return;
        }
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.ops.extend(other.ops.into_iter().map(|op| Op {
            start: op.start + base,
            ..op
        }));
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// Bytes of all keys and values.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }
    /// Each write as (key, value or None for a delete), in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + '_ {
        self.ops.iter().map(|op| self.write(op))
    }
    /// Each write in key order; a key written twice keeps its writes' order (the later wins).
    pub fn sorted(&self) -> Vec<(&[u8], Option<&[u8]>)> {
        let mut writes: Vec<_> = self.iter().collect();
        writes.sort_by(|a, b| a.0.cmp(b.0));
        writes
    }
    fn write(&self, op: &Op) -> (&[u8], Option<&[u8]>) {
        let key_end = op.start + op.key_len as usize;
        let value = op
            .value_len
            .map(|n| &self.bytes[key_end..key_end + n as usize]);
        (&self.bytes[op.start..key_end], value)
    }
}

/// A key or value length: the stores take nothing near 4 GiB in one entry.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a key or value under 4 GiB")
}

/// Key-value pairs as a scan returns them.
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The store every stage keeps its durable state in.
pub trait StateStore: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Every pair whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<KvPairs>;
    /// The store as it is now, for reads that must agree with each other (a query).
    fn snapshot(&self) -> Arc<dyn StoreSnapshot>;
    /// Applies the whole batch atomically and makes it durable before returning.
    fn commit(&self, batch: WriteBatch) -> Result<()>;
}

/// The store as of one instant: every read through it sees the same committed state, whatever
/// commits happen meanwhile. Keep it only as long as the reads need it (fjall keeps the
/// versions it sees; sled holds commits back while it lives).
pub trait StoreSnapshot: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Up to `max_pairs` pairs whose keys lie in `range`, in key order.
    fn scan(&self, range: &KeyRange, max_pairs: usize) -> Result<KvPairs>;
    /// Whether commits wait while this snapshot lives (sled's, which has no real snapshots).
    fn holds_commits(&self) -> bool;
}

/// A range of keys, `start` and `end` each included, excluded or open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Bound<Vec<u8>>,
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> KeyRange {
        KeyRange {
            start: Bound::Included(prefix.to_vec()),
            end: match keys::prefix_end(prefix) {
                Some(end) => Bound::Excluded(end),
                None => Bound::Unbounded,
            },
        }
    }

    pub fn start(&self) -> Bound<&[u8]> {
        self.start.as_ref().map(Vec::as_slice)
    }

    pub fn end(&self) -> Bound<&[u8]> {
        self.end.as_ref().map(Vec::as_slice)
    }

    /// No key lies in it (the backends' range reads must not be given such a range).
    pub fn is_empty(&self) -> bool {
        match (self.start(), self.end()) {
            (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
            | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_batch_keeps_its_writes_and_sorts_them_stably() {
        let mut a = WriteBatch::default();
        a.put(b"b".to_vec(), b"1".to_vec());
        a.delete(b"a".to_vec());
        let mut b = WriteBatch::default();
        b.put_parts(&[b"a", b""], b"2");
        b.put(b"c".to_vec(), Vec::new());
        a.append(b);
        let in_order: Vec<_> = a.iter().collect();
        assert_eq!(
            in_order,
            vec![
                (&b"b"[..], Some(&b"1"[..])),
                (&b"a"[..], None),
                (&b"a"[..], Some(&b"2"[..])),
                (&b"c"[..], Some(&b""[..])),
            ]
        );
        // The delete of "a" stays before its later put, so the put wins.
        let sorted: Vec<_> = a.sorted().into_iter().map(|(k, v)| (k[0], v)).collect();
        assert_eq!(
            sorted,
            vec![
                (b'a', None),
                (b'a', Some(&b"2"[..])),
                (b'b', Some(&b"1"[..])),
                (b'c', Some(&b""[..]))
            ]
        );
        assert_eq!((a.len(), a.bytes()), (4, 6));
    }

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

    #[test]
    fn a_snapshot_reads_one_instant_in_pages() {
        for kind in [StoreKind::Sled, StoreKind::Fjall] {
            let dir = tempfile::tempdir().unwrap();
            let store = kind.open(dir.path()).unwrap();
            let mut batch = WriteBatch::default();
            for i in 0u8..10 {
                batch.put(vec![b'a', i], vec![i]);
            }
            batch.put(b"b".to_vec(), b"z".to_vec());
            store.commit(batch).unwrap();
            let snapshot = store.snapshot();
            assert_eq!(snapshot.holds_commits(), kind == StoreKind::Sled);
            let mut range = KeyRange::prefix(b"a");
            let mut seen = Vec::new();
            loop {
                let page = snapshot.scan(&range, 4).unwrap();
                let Some((last, _)) = page.last() else { break };
                range.start = Bound::Excluded(last.clone());
                seen.extend(page.into_iter().map(|(_, v)| v[0]));
            }
            assert_eq!(seen, (0..10).collect::<Vec<u8>>(), "{kind:?}");
            let empty = KeyRange {
                start: Bound::Included(vec![b'a', 5]),
                end: Bound::Excluded(vec![b'a', 5]),
            };
            assert!(empty.is_empty());
            assert!(snapshot.scan(&empty, 10).unwrap().is_empty());
            assert_eq!(snapshot.get(b"b").unwrap(), Some(b"z".to_vec()));
        }
    }

    #[test]
    fn a_fjall_commit_does_not_wait_for_a_snapshot_nor_show_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreKind::Fjall.open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(b"a/1".to_vec(), b"old".to_vec());
        store.commit(batch).unwrap();
        let snapshot = store.snapshot();
        // On this very thread: were the commit to wait for the snapshot, it would never return.
        let mut batch = WriteBatch::default();
        batch.put(b"a/1".to_vec(), b"new".to_vec());
        batch.put(b"a/2".to_vec(), b"new".to_vec());
        store.commit(batch).unwrap();
        assert_eq!(snapshot.get(b"a/1").unwrap(), Some(b"old".to_vec()));
        assert_eq!(
            snapshot.scan(&KeyRange::prefix(b"a/"), 10).unwrap().len(),
            1
        );
        assert_eq!(store.get(b"a/1").unwrap(), Some(b"new".to_vec()));
    }

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(keys::prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(keys::prefix_end(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(keys::prefix_end(&[0xff]), None);
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
