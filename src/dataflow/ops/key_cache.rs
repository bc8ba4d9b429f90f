//! Which keys of a stateful operator (an aggregate's groups, a join side's join keys) are in
//! memory, when the operator reads through (`dataflow::state_cache`): a key not in memory is
//! looked up in the store when a row of it arrives, and at a checkpoint over budget the keys
//! written longest ago are forgotten. Keys are the dense indices of the operator's
//! [`KeyIndex`](super::key_index::KeyIndex); the operator says how many bytes a key takes.

use crate::dataflow::state_cache::StateReader;

/// Bytes a key takes in memory besides its own state: its slot in the key index (hash entry,
/// stored hash, key container), the operator's per-key containers, and this cache's marks.
pub const KEY_FIXED_BYTES: usize = 96;

pub struct KeyCache {
    pub reader: StateReader,
    /// Whether the store may hold keys that are not in memory (after a restore or an
    /// eviction). Until then, a key not in memory is new and nothing is read.
    store_may_hold: bool,
    /// By key index: the key is in memory.
    resident: Vec<bool>,
    /// By key index: the checkpoint that last wrote the key (the oldest go first).
    stamps: Vec<u64>,
    checkpoints: u64,
    resident_keys: usize,
}

impl KeyCache {
    pub fn new(reader: StateReader) -> KeyCache {
        KeyCache {
            reader,
            store_may_hold: false,
            resident: Vec::new(),
            stamps: Vec::new(),
            checkpoints: 0,
            resident_keys: 0,
        }
    }

    pub fn grow(&mut self, slots: usize) {
        if self.resident.len() < slots {
            self.resident.resize(slots, false);
            self.stamps.resize(slots, 0);
        }
    }

    /// Whether a key not in memory may have state in the store.
    pub fn store_may_hold(&self) -> bool {
        self.store_may_hold
    }

    pub fn resident_keys(&self) -> usize {
        self.resident_keys
    }

    /// Marks every key of `keys` in memory; pushes onto `load` those that were not and may
    /// have state in the store, each once.
    pub fn admit(&mut self, keys: &[u32], load: &mut Vec<u32>) {
        load.clear();
        for &k in keys {
            let resident = &mut self.resident[k as usize];
            if !*resident {
                *resident = true;
                self.resident_keys += 1;
                if self.store_may_hold {
                    load.push(k);
                }
            }
        }
    }

    /// Key `k` was written at this checkpoint, and stays.
    pub fn stamp(&mut self, k: u32) {
        self.stamps[k as usize] = self.checkpoints;
    }

    /// Key `k` left memory (deleted, or evicted: then its state is in the store).
    pub fn forget(&mut self, k: u32) {
        let resident = &mut self.resident[k as usize];
        if *resident {
            *resident = false;
            self.resident_keys -= 1;
        }
    }

    /// Nothing in memory; the store holds the committed state (a restore).
    pub fn restored(&mut self) {
        self.clear();
        self.store_may_hold = true;
    }

    pub fn clear(&mut self) {
        self.resident.iter_mut().for_each(|r| *r = false);
        self.resident_keys = 0;
        self.reader.share.set(0);
    }

    /// After a checkpoint, with keys taking `key_bytes` each (an estimate, [`KEY_FIXED_BYTES`]
    /// included): reports what is kept, and returns the keys to forget (the ones written
    /// longest ago) when the cache is over budget.
    pub fn after_checkpoint(&mut self, key_bytes: usize) -> Vec<u32> {
        self.checkpoints += 1;
        let key_bytes = key_bytes.max(1);
        self.reader.share.set(self.resident_keys * key_bytes);
        let Some(target) = self.reader.share.evict_to() else {
            return Vec::new();
        };
        let keep = target / key_bytes;
        if keep >= self.resident_keys {
            return Vec::new();
        }
        let mut live: Vec<(u64, u32)> = self
            .resident
            .iter()
            .enumerate()
            .filter(|&(_, &r)| r)
            .map(|(k, _)| (self.stamps[k], k as u32))
            .collect();
        let evict = live.len() - keep;
        if evict < live.len() {
            live.select_nth_unstable(evict);
        }
        live.truncate(evict);
        self.store_may_hold = true;
        live.into_iter().map(|(_, k)| k).collect()
    }

    /// Reports what is kept now (after new keys came in, or after an eviction), with keys
    /// taking `key_bytes` each: a backfill watches the total to know when to commit a step.
    pub fn report(&mut self, key_bytes: usize) {
        self.reader.share.set(self.resident_keys * key_bytes);
    }
}
