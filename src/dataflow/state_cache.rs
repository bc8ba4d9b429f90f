//! The memory budget of operator state (`--state-cache-mb`), shared by every operator of every
//! view, and the handle through which an operator reads its committed state back.
//!
//! An operator that can (a grouped aggregate, a join) keeps in memory only the part of its
//! state that fits its share of the budget: at a checkpoint, once everything it holds is written
//! to the epoch's batch, it forgets the keys used least recently until it is back under its
//! share, and reads a key's state from the store again when the key comes back
//! ([`StateReader`]). Reading through is safe because epochs do not overlap: the next epoch's
//! data arrives only after the checkpoint's batch is committed, so the store then holds every
//! forgotten key's latest state. A backfill commits a step whenever the budget is exceeded, so
//! that its keys can be forgotten too.
//!
//! Holders report an estimate of what they keep ([`CacheShare`]); the estimate counts keys,
//! values and per-key bookkeeping, not allocator overhead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Result;
use crate::state::{KvPairs, StateStore};

/// Operator state kept in memory, over every view, unless `--state-cache-mb` says otherwise.
pub const STATE_CACHE_MB_DEFAULT: usize = 512;
/// A holder over its share forgets keys until it holds this fraction of its share, so that it
/// does not evict again at the very next checkpoint.
const EVICT_TO_PERCENT: usize = 75;

/// The budget and what the holders together report keeping, in bytes.
#[derive(Debug)]
pub struct StateCache {
    budget_bytes: usize,
    used_bytes: AtomicUsize,
}

impl StateCache {
    pub fn new(budget_bytes: usize) -> Arc<StateCache> {
        Arc::new(StateCache {
            budget_bytes,
            used_bytes: AtomicUsize::new(0),
        })
    }

    /// A budget of `mb` mebibytes (0: keep nothing past a checkpoint; every key is read back).
    pub fn with_mb(mb: usize) -> Arc<StateCache> {
        StateCache::new(mb.saturating_mul(1024 * 1024))
    }

    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    pub fn over_budget(&self) -> bool {
        self.used_bytes.load(Ordering::Relaxed) > self.budget_bytes
    }

    /// What the holders report keeping now, in bytes.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes.load(Ordering::Relaxed)
    }

    /// How many bytes a holder keeping `mine` should keep after an eviction: its part of the
    /// budget in proportion to what it keeps, less headroom ([`EVICT_TO_PERCENT`]).
    fn target(&self, mine: usize) -> usize {
        let used = self.used_bytes().max(1);
        let share = (mine as u128 * self.budget_bytes as u128 / used as u128) as usize;
        share.min(mine) / 100 * EVICT_TO_PERCENT
    }
}

/// One holder's part of the cache: what it last reported; given back when dropped.
#[derive(Debug)]
pub struct CacheShare {
    cache: Arc<StateCache>,
    bytes: usize,
}

impl CacheShare {
    pub fn new(cache: Arc<StateCache>) -> CacheShare {
        CacheShare { cache, bytes: 0 }
    }

    /// Reports that the holder now keeps `bytes`.
    pub fn set(&mut self, bytes: usize) {
        if bytes >= self.bytes {
            self.cache
                .used_bytes
                .fetch_add(bytes - self.bytes, Ordering::Relaxed);
        } else {
            self.cache
                .used_bytes
                .fetch_sub(self.bytes - bytes, Ordering::Relaxed);
        }
        self.bytes = bytes;
    }

    /// When the whole cache is over budget: how many bytes this holder should come down to
    /// (None: keep everything).
    pub fn evict_to(&self) -> Option<usize> {
        self.cache
            .over_budget()
            .then(|| self.cache.target(self.bytes))
    }
}

impl Drop for CacheShare {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// An operator's way back to its committed state: the store, the operator's key prefix, and
/// its share of the memory budget.
pub struct StateReader {
    store: Arc<dyn StateStore>,
    prefix: Vec<u8>,
    pub share: CacheShare,
}

impl StateReader {
    pub fn new(store: Arc<dyn StateStore>, prefix: Vec<u8>, cache: Arc<StateCache>) -> Self {
        StateReader {
            store,
            prefix,
            share: CacheShare::new(cache),
        }
    }

    /// Another reader of the same state, with a share of its own (a join's other side).
    pub fn sibling(&self) -> StateReader {
        StateReader::new(
            self.store.clone(),
            self.prefix.clone(),
            self.share.cache.clone(),
        )
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The committed value under the operator's prefix followed by `suffix`.
    pub fn get(&self, suffix: &[u8]) -> Result<Option<Vec<u8>>> {
        self.store.get(&self.key(suffix))
    }

    /// Every committed pair whose key starts with the operator's prefix followed by `suffix`
    /// (keys returned whole, prefix included).
    pub fn scan(&self, suffix: &[u8]) -> Result<KvPairs> {
        self.store.scan_prefix(&self.key(suffix))
    }

    fn key(&self, suffix: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + suffix.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(suffix);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_are_given_back() {
        let cache = StateCache::new(1000);
        let mut a = CacheShare::new(cache.clone());
        let mut b = CacheShare::new(cache.clone());
        a.set(600);
        b.set(300);
        assert!(!cache.over_budget());
        assert_eq!(a.evict_to(), None);
        b.set(900);
        assert_eq!(cache.used_bytes(), 1500);
        // Over budget: each comes down to its proportional part, less headroom.
        assert_eq!(a.evict_to(), Some(400 / 100 * EVICT_TO_PERCENT));
        assert_eq!(b.evict_to(), Some(600 / 100 * EVICT_TO_PERCENT));
        drop(b);
        assert_eq!(cache.used_bytes(), 600);
        a.set(0);
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let cache = StateCache::with_mb(0);
        let mut a = CacheShare::new(cache);
        a.set(10);
        assert_eq!(a.evict_to(), Some(0));
    }
}
