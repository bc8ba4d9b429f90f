//! The group table: maps each group's row-encoded key to a dense group index, so that the
//! accumulators keep their state in plain vectors indexed by group (one hash lookup per input
//! row, no allocation for a group already seen). Indices of removed groups are reused.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

#[derive(Default)]
pub struct GroupTable {
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Key bytes by group index (empty for a free index).
    keys: Vec<Box<[u8]>>,
    /// Each key's hash, so growing the table never hashes again.
    hashes: Vec<u64>,
    free: Vec<u32>,
}

impl GroupTable {
    /// The group of `key`, created if new; `true` when it was created.
    pub fn find_or_insert(&mut self, key: &[u8]) -> (u32, bool) {
        let hash = self.hasher.hash_one(key);
        let keys = &self.keys;
        if let Some(&g) = self.index.find(hash, |&g| &*keys[g as usize] == key) {
            return (g, false);
        }
        let g = match self.free.pop() {
            Some(g) => {
                self.keys[g as usize] = key.into();
                self.hashes[g as usize] = hash;
                g
            }
            None => {
                self.keys.push(key.into());
                self.hashes.push(hash);
                (self.keys.len() - 1) as u32
            }
        };
        let hashes = &self.hashes;
        self.index.insert_unique(hash, g, |&g| hashes[g as usize]);
        (g, true)
    }

    /// Forgets group `g`; its index may be handed out again.
    pub fn remove(&mut self, g: u32) {
        let hash = self.hashes[g as usize];
        if let Ok(entry) = self.index.find_entry(hash, |&x| x == g) {
            entry.remove();
            self.keys[g as usize] = Box::default();
            self.free.push(g);
        }
    }

    pub fn key(&self, g: u32) -> &[u8] {
        &self.keys[g as usize]
    }

    /// How many group indices exist (live or free): the length accumulators must have.
    pub fn slots(&self) -> usize {
        self.keys.len()
    }

    pub fn clear(&mut self) {
        *self = GroupTable::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_reuses_and_forgets() {
        let mut t = GroupTable::default();
        assert_eq!(t.find_or_insert(b"a"), (0, true));
        assert_eq!(t.find_or_insert(b"b"), (1, true));
        assert_eq!(t.find_or_insert(b"a"), (0, false));
        t.remove(0);
        assert_eq!(t.find_or_insert(b"c"), (0, true), "a freed index is reused");
        assert_eq!(
            t.find_or_insert(b"a"),
            (2, true),
            "a removed key is new again"
        );
        assert_eq!(t.key(0), b"c");
        assert_eq!(t.slots(), 3);
        for i in 0..10_000u32 {
            t.find_or_insert(&i.to_be_bytes());
        }
        assert_eq!(
            t.find_or_insert(b"b"),
            (1, false),
            "found after the table grew"
        );
    }
}
