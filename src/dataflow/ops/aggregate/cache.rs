//! Which of an aggregate's groups are in memory, when the aggregate reads through
//! (`dataflow::state_cache`): a group not in memory is looked up in the store when a row of it
//! arrives, and at a checkpoint over budget the groups written longest ago are forgotten.

use crate::dataflow::state_cache::StateReader;

/// Bytes a group takes in memory besides its key and emitted row: its slot in the key index
/// (hash entry, stored hash, key container), its row count, emitted-row container, marks and
/// stamp. Each aggregate adds [`ACCUMULATOR_BYTES`].
const GROUP_FIXED_BYTES: usize = 96;
/// Bytes one aggregate's running value takes in one group (a sum with its count, a small
/// multiset's container).
const ACCUMULATOR_BYTES: usize = 32;

pub struct GroupCache {
    pub reader: StateReader,
    /// Whether the store may hold groups that are not in memory (after a restore or an
    /// eviction). Until then, a key not in memory is new and nothing is read.
    store_may_hold: bool,
    /// By group index: the group is in memory.
    resident: Vec<bool>,
    /// By group index: the checkpoint that last wrote the group (the oldest go first).
    stamps: Vec<u64>,
    checkpoints: u64,
    resident_groups: usize,
    /// Estimated bytes per group (see [`GROUP_FIXED_BYTES`]), from the groups last written.
    group_bytes: usize,
    accumulators: usize,
}

impl GroupCache {
    pub fn new(reader: StateReader, accumulators: usize) -> GroupCache {
        GroupCache {
            reader,
            store_may_hold: false,
            resident: Vec::new(),
            stamps: Vec::new(),
            checkpoints: 0,
            resident_groups: 0,
            group_bytes: GROUP_FIXED_BYTES + ACCUMULATOR_BYTES * accumulators,
            accumulators,
        }
    }

    pub fn grow(&mut self, slots: usize) {
        if self.resident.len() < slots {
            self.resident.resize(slots, false);
            self.stamps.resize(slots, 0);
        }
    }

    /// Marks every group of `groups` in memory; pushes onto `load` those that were not and
    /// may have state in the store, each once.
    pub fn admit(&mut self, groups: &[u32], load: &mut Vec<u32>) {
        load.clear();
        for &g in groups {
            let resident = &mut self.resident[g as usize];
            if !*resident {
                *resident = true;
                self.resident_groups += 1;
                if self.store_may_hold {
                    load.push(g);
                }
            }
        }
    }

    /// Group `g` was written at this checkpoint, and stays.
    pub fn stamp(&mut self, g: u32) {
        self.stamps[g as usize] = self.checkpoints;
    }

    /// Group `g` left memory (deleted, or evicted: then its state is in the store).
    pub fn forget(&mut self, g: u32) {
        let resident = &mut self.resident[g as usize];
        if *resident {
            *resident = false;
            self.resident_groups -= 1;
        }
    }

    /// Nothing in memory; the store holds the committed state (a restore).
    pub fn restored(&mut self) {
        self.clear();
        self.store_may_hold = true;
    }

    pub fn clear(&mut self) {
        self.resident.iter_mut().for_each(|r| *r = false);
        self.resident_groups = 0;
        self.reader.share.set(0);
    }

    /// After a checkpoint that wrote groups whose keys and emitted rows took `written_bytes`
    /// over `written` groups: reports the estimate, and returns the groups to forget (the ones
    /// written longest ago) when the cache is over budget.
    pub fn after_checkpoint(&mut self, written: usize, written_bytes: usize) -> Vec<u32> {
        self.checkpoints += 1;
        if let Some(mean) = written_bytes.checked_div(written) {
            self.group_bytes = GROUP_FIXED_BYTES + ACCUMULATOR_BYTES * self.accumulators + mean;
        }
        self.reader
            .share
            .set(self.resident_groups * self.group_bytes);
        let Some(target) = self.reader.share.evict_to() else {
            return Vec::new();
        };
        let keep = target / self.group_bytes;
        if keep >= self.resident_groups {
            return Vec::new();
        }
        let mut live: Vec<(u64, u32)> = self
            .resident
            .iter()
            .enumerate()
            .filter(|&(_, &r)| r)
            .map(|(g, _)| (self.stamps[g], g as u32))
            .collect();
        let evict = live.len() - keep;
        if evict < live.len() {
            live.select_nth_unstable(evict);
        }
        live.truncate(evict);
        self.store_may_hold = true;
        live.into_iter().map(|(_, g)| g).collect()
    }

    /// Reports what is left after an eviction.
    pub fn evicted(&mut self) {
        self.reader
            .share
            .set(self.resident_groups * self.group_bytes);
    }
}
