//! The key index of the stateful operators: maps each key (an aggregate's group, a join side's
//! join key) to a dense index, so that state lives in plain vectors indexed by key (one hash
//! lookup per input row, no allocation for a key already seen). Indices of removed keys are
//! reused.
//!
//! Three shapes, picked from the key's types: no key (a global aggregate: one key, 0); one
//! integer-like column (hashed and compared as an i64, the common case); anything else
//! (row-encoded key bytes). Keys leave the index as Arrow columns (output rows) and as
//! row-format bytes (state keys), the same bytes for every shape.

use std::hash::{BuildHasher, Hash};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::dataflow::vnode;
use crate::error::Result;
use crate::formats::RowCodec;

pub enum KeyIndex {
    /// No key columns (a global aggregate): one key, index 0, the empty key.
    Global,
    /// One column whose values cast to distinct i64s (integers, dates, timestamps).
    Int {
        data_type: DataType,
        codec: RowCodec,
        table: Table<Option<i64>>,
    },
    Rows {
        codec: RowCodec,
        table: Table<Box<[u8]>>,
    },
}

impl KeyIndex {
    pub fn new(types: Vec<DataType>) -> Result<Self> {
        Ok(match types.as_slice() {
            [] => KeyIndex::Global,
            [t] if integer_like(t) => KeyIndex::Int {
                data_type: t.clone(),
                codec: RowCodec::new([t.clone()])?,
                table: Table::default(),
            },
            _ => KeyIndex::Rows {
                codec: RowCodec::new(types)?,
                table: Table::default(),
            },
        })
    }

    /// Each row's key index (created when new) into `out`.
    pub fn assign(&mut self, columns: &[ArrayRef], rows: usize, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        match self {
            KeyIndex::Global => out.resize(rows, 0),
            KeyIndex::Int { table, .. } => {
                let ints = cast(&columns[0], &DataType::Int64)?;
                let ints = ints.as_primitive::<Int64Type>();
                match ints.nulls() {
                    None => {
                        out.extend(ints.values().iter().map(|&v| table.find_or_insert(Some(v))))
                    }
                    Some(_) => out.extend(ints.iter().map(|v| table.find_or_insert(v))),
                }
            }
            KeyIndex::Rows { codec, table } => {
                let keys = codec.encode(columns)?;
                out.extend((0..rows).map(|i| table.find_or_insert_with(keys.row(i).data())));
            }
        }
        Ok(())
    }

    /// Each row's key index if the key is known (probing without adding) into `out`.
    pub fn find(
        &self,
        columns: &[ArrayRef],
        rows: usize,
        out: &mut Vec<Option<u32>>,
    ) -> Result<()> {
        out.clear();
        match self {
            KeyIndex::Global => out.resize(rows, Some(0)),
            KeyIndex::Int { table, .. } => {
                let ints = cast(&columns[0], &DataType::Int64)?;
                out.extend(
                    ints.as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| table.find(&v)),
                );
            }
            KeyIndex::Rows { codec, table } => {
                let keys = codec.encode(columns)?;
                out.extend((0..rows).map(|i| table.find_bytes(keys.row(i).data())));
            }
        }
        Ok(())
    }

    /// The key columns of `groups`, in that order (none for a global aggregate).
    pub fn columns(&self, groups: &[u32]) -> Result<Vec<ArrayRef>> {
        Ok(match self {
            KeyIndex::Global => Vec::new(),
            KeyIndex::Int {
                data_type, table, ..
            } => {
                let ints: Int64Array = groups.iter().map(|&g| *table.key(g)).collect();
                vec![cast(&ints, data_type)?]
            }
            KeyIndex::Rows { codec, table } => {
                codec.decode(groups.iter().map(|&g| &**table.key(g)))?
            }
        })
    }

    /// Calls `f(group, key bytes)` for each of `groups`: the row-format key its state is kept
    /// under (empty for a global aggregate).
    pub fn for_each_encoded(
        &self,
        groups: &[u32],
        mut f: impl FnMut(u32, &[u8]) -> Result<()>,
    ) -> Result<()> {
        match self {
            KeyIndex::Global => groups.iter().try_for_each(|&g| f(g, &[])),
            KeyIndex::Int { codec, .. } => {
                let keys = codec.encode(&self.columns(groups)?)?;
                groups
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, &g)| f(g, keys.row(i).data()))
            }
            KeyIndex::Rows { table, .. } => groups.iter().try_for_each(|&g| f(g, table.key(g))),
        }
    }

    /// The indices of keys given as row-format bytes (restoring state), created when new.
    pub fn assign_encoded(&mut self, keys: &[&[u8]], out: &mut Vec<u32>) -> Result<()> {
        match self {
            KeyIndex::Global => {
                out.clear();
                out.resize(keys.len(), 0);
                Ok(())
            }
            KeyIndex::Int { codec, .. } => {
                let columns = codec.decode(keys.iter().copied())?;
                self.assign(&columns, keys.len(), out)
            }
            KeyIndex::Rows { table, .. } => {
                out.clear();
                out.extend(keys.iter().map(|k| table.find_or_insert_with(k)));
                Ok(())
            }
        }
    }

    /// Each row's vnode (`dataflow::vnode`) into `out`: the worker that owns its key. A NULL
    /// integer key goes to vnode 0.
    pub fn vnodes(&self, columns: &[ArrayRef], rows: usize, out: &mut Vec<u16>) -> Result<()> {
        out.clear();
        match self {
            KeyIndex::Global => out.resize(rows, 0),
            KeyIndex::Int { .. } => {
                let ints = cast(&columns[0], &DataType::Int64)?;
                let ints = ints.as_primitive::<Int64Type>();
                out.extend(ints.iter().map(|v| v.map_or(0, vnode::of_i64)));
            }
            KeyIndex::Rows { codec, .. } => {
                let keys = codec.encode(columns)?;
                out.extend((0..rows).map(|i| vnode::of_bytes(keys.row(i).data())));
            }
        }
        Ok(())
    }

    /// The vnodes of keys given as row-format bytes (state being restored), as [`Self::vnodes`]
    /// gives them for the same keys as columns.
    pub fn vnodes_encoded(&self, keys: &[&[u8]], out: &mut Vec<u16>) -> Result<()> {
        match self {
            KeyIndex::Int { codec, .. } => {
                let columns = codec.decode(keys.iter().copied())?;
                self.vnodes(&columns, keys.len(), out)
            }
            KeyIndex::Global => {
                out.clear();
                out.resize(keys.len(), 0);
                Ok(())
            }
            KeyIndex::Rows { .. } => {
                out.clear();
                out.extend(keys.iter().map(|k| vnode::of_bytes(k)));
                Ok(())
            }
        }
    }

    /// Forgets group `g`; its index may be handed out again.
    pub fn remove(&mut self, g: u32) {
        match self {
            KeyIndex::Global => {}
            KeyIndex::Int { table, .. } => table.remove(g),
            KeyIndex::Rows { table, .. } => table.remove(g),
        }
    }

    /// How many group indices exist (live or free): the length accumulators must have.
    pub fn slots(&self) -> usize {
        match self {
            KeyIndex::Global => 1,
            KeyIndex::Int { table, .. } => table.slots(),
            KeyIndex::Rows { table, .. } => table.slots(),
        }
    }

    pub fn clear(&mut self) {
        match self {
            KeyIndex::Global => {}
            KeyIndex::Int { table, .. } => *table = Table::default(),
            KeyIndex::Rows { table, .. } => *table = Table::default(),
        }
    }
}

/// Whether values of type `t` cast to Int64 stay distinct and keep their order (integers up
/// to 32 bits unsigned, dates, timestamps): such keys are grouped, and such min/max values
/// compared, as plain i64s.
pub fn integer_like(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::Date32
            | DataType::Timestamp(_, _)
    )
}

/// A hash table from keys to dense indices, keys stored once, by index.
pub struct Table<K> {
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Keys by group index (`K::default()` for a free index).
    keys: Vec<K>,
    /// Each key's hash, so growing the table never hashes again.
    hashes: Vec<u64>,
    free: Vec<u32>,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Table {
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            keys: Vec::new(),
            hashes: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Default> Table<K> {
    fn find(&self, key: &K) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&g| self.keys[g as usize] == *key)
            .copied()
    }

    fn find_or_insert(&mut self, key: K) -> u32 {
        let hash = self.hasher.hash_one(&key);
        let keys = &self.keys;
        if let Some(&g) = self.index.find(hash, |&g| keys[g as usize] == key) {
            return g;
        }
        self.insert_new(hash, key)
    }

    fn insert_new(&mut self, hash: u64, key: K) -> u32 {
        let g = match self.free.pop() {
            Some(g) => {
                self.keys[g as usize] = key;
                self.hashes[g as usize] = hash;
                g
            }
            None => {
                self.keys.push(key);
                self.hashes.push(hash);
                (self.keys.len() - 1) as u32
            }
        };
        let hashes = &self.hashes;
        self.index.insert_unique(hash, g, |&g| hashes[g as usize]);
        g
    }

    fn remove(&mut self, g: u32) {
        let hash = self.hashes[g as usize];
        if let Ok(entry) = self.index.find_entry(hash, |&x| x == g) {
            entry.remove();
            self.keys[g as usize] = K::default();
            self.free.push(g);
        }
    }

    fn key(&self, g: u32) -> &K {
        &self.keys[g as usize]
    }

    fn slots(&self) -> usize {
        self.keys.len()
    }
}

impl Table<Box<[u8]>> {
    fn find_bytes(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&g| &*self.keys[g as usize] == key)
            .copied()
    }

    /// [`Table::find_or_insert`] without allocating the key unless it is new.
    fn find_or_insert_with(&mut self, key: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(key);
        let keys = &self.keys;
        if let Some(&g) = self.index.find(hash, |&g| &*keys[g as usize] == key) {
            return g;
        }
        self.insert_new(hash, key.into())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{StringArray, UInt32Array};
    use datafusion::arrow::compute::take;

    use super::*;

    #[test]
    fn finds_reuses_and_forgets() {
        let mut t: Table<Box<[u8]>> = Table::default();
        assert_eq!(t.find_or_insert_with(b"a"), 0);
        assert_eq!(t.find_or_insert_with(b"b"), 1);
        assert_eq!(t.find_or_insert_with(b"a"), 0);
        t.remove(0);
        assert_eq!(t.find_or_insert_with(b"c"), 0, "a freed index is reused");
        assert_eq!(t.find_or_insert_with(b"a"), 2, "a removed key is new again");
        assert_eq!(&**t.key(0), b"c");
        assert_eq!(t.slots(), 3);
        for i in 0..10_000u32 {
            t.find_or_insert_with(&i.to_be_bytes());
        }
        assert_eq!(t.find_or_insert_with(b"b"), 1, "found after the table grew");
    }

    /// Every shape gives the same groups, key columns and state-key bytes for the same keys.
    #[test]
    fn shapes_agree_on_groups_and_keys() {
        let ints: ArrayRef = Arc::new(UInt32Array::from(vec![Some(7), None, Some(7), Some(9)]));
        let texts: ArrayRef = Arc::new(StringArray::from(vec![
            Some("x"),
            None,
            Some("x"),
            Some("y"),
        ]));
        for column in [ints, texts] {
            let t = column.data_type().clone();
            let mut keys = KeyIndex::new(vec![t.clone()]).unwrap();
            let mut groups = Vec::new();
            keys.assign(std::slice::from_ref(&column), 4, &mut groups)
                .unwrap();
            assert_eq!(groups, [0, 1, 0, 2], "{t}");
            let mut found = Vec::new();
            let probe = column.slice(2, 2);
            KeyIndex::new(vec![t.clone()])
                .unwrap()
                .find(std::slice::from_ref(&probe), 2, &mut found)
                .unwrap();
            assert_eq!(found, [None, None], "{t}: an empty index knows no key");
            keys.find(&[probe], 2, &mut found).unwrap();
            assert_eq!(found, [Some(0), Some(2)], "{t}");
            let firsts = take(&column, &UInt32Array::from(vec![0, 1, 3]), None).unwrap();
            assert_eq!(&keys.columns(&[0, 1, 2]).unwrap()[0], &firsts, "{t}");
            let expected = RowCodec::new([t.clone()])
                .unwrap()
                .encode(&[firsts])
                .unwrap();
            let mut encoded = Vec::new();
            keys.for_each_encoded(&[0, 1, 2], |_, k| {
                encoded.push(k.to_vec());
                Ok(())
            })
            .unwrap();
            for (i, k) in encoded.iter().enumerate() {
                assert_eq!(k.as_slice(), expected.row(i).data(), "{t}");
            }
            let mut restored = KeyIndex::new(vec![t.clone()]).unwrap();
            let slices: Vec<&[u8]> = encoded.iter().map(|k| k.as_slice()).collect();
            restored.assign_encoded(&slices, &mut groups).unwrap();
            assert_eq!(groups, [0, 1, 2], "{t}");
            let (mut from_columns, mut from_bytes) = (Vec::new(), Vec::new());
            let firsts = take(&column, &UInt32Array::from(vec![0, 1, 3]), None).unwrap();
            keys.vnodes(&[firsts], 3, &mut from_columns).unwrap();
            keys.vnodes_encoded(&slices, &mut from_bytes).unwrap();
            assert_eq!(from_columns, from_bytes, "{t}: a key has one vnode");
        }
    }
}
