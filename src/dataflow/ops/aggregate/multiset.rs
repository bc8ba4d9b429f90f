//! The multiset of values a retractable min/max keeps for one group (value → count), so
//! deleting the current extreme falls back to the next one.
//!
//! Why two forms: a small multiset is stored inline in its group's state (the bytes of a plain
//! `BTreeMap<value, count>`, the format stores have always had), which is rewritten whole when
//! the group changes. A big one would make a one-row change rewrite every value (a global
//! `max(x)` over millions of rows), so once a group holds more than [`INLINE_VALUES_MAX`]
//! distinct values its multiset moves, for good, to one store entry per value
//! ([`value_key`]: `(group, aggregate, value) → count`). Then each value slot remembers whether
//! it changed since the last checkpoint, and the checkpoint writes only those
//! ([`Multiset::drain_changed`]): puts, and deletes for counts back at 0. Start-up reads the
//! entries back into the multiset ([`Multiset::load_value`]).

use std::borrow::Borrow;
use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::error::{Result, WeirError};

/// Distinct values a group's multiset keeps inline in its group state; past this many it is
/// stored as one entry per value. 256 values of a few bytes each keep the group state a few
/// KiB, small enough to rewrite whenever the group changes.
pub const INLINE_VALUES_MAX: usize = 256;

/// A drain walks the whole multiset in value order, rather than its log of changed values, when
/// at least one value in this many changed: the entries then reach the epoch's batch sorted
/// (the store sorts and inserts a sorted run fastest), and the walk visits at most this many
/// values per entry written.
const SORTED_DRAIN_RATIO: usize = 4;

/// The first byte of a value entry's key after the operator's prefix. Row-format group keys
/// start with a null marker (0 to 2) and operator-wide entries with `OPERATOR_WIDE_STATE`
/// (0xff), so value entries sort after every group state and never collide with one.
pub const VALUE_ENTRY_TAG: u8 = 0xfe;

/// A value a multiset can hold: its memcomparable bytes are what a value entry's key ends
/// with; `Key` is what the multiset is searched by (an `i64`, or a byte slice for row-format
/// values kept as `Vec<u8>`).
pub trait Value: Ord + Borrow<Self::Key> {
    type Key: Ord + ?Sized;
    fn owned(key: &Self::Key) -> Self;
    /// Appends the value's stored bytes, which order as the values do.
    fn encode(key: &Self::Key, out: &mut Vec<u8>);
    /// Calls `f` with the value whose stored bytes are `encoded`.
    fn with_decoded<R>(encoded: &[u8], f: impl FnOnce(&Self::Key) -> R) -> Result<R>;
}

/// Row-format bytes: stored as they are.
impl Value for Vec<u8> {
    type Key = [u8];
    fn owned(key: &[u8]) -> Self {
        key.to_vec()
    }
    fn encode(key: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(key);
    }
    fn with_decoded<R>(encoded: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        Ok(f(encoded))
    }
}

/// Integer-like values: big-endian with the sign bit flipped, so the bytes order as the
/// numbers do.
impl Value for i64 {
    type Key = i64;
    fn owned(key: &i64) -> Self {
        *key
    }
    fn encode(key: &i64, out: &mut Vec<u8>) {
        out.extend_from_slice(&((*key as u64) ^ (1 << 63)).to_be_bytes());
    }
    fn with_decoded<R>(encoded: &[u8], f: impl FnOnce(&i64) -> R) -> Result<R> {
        let bytes: [u8; 8] = encoded
            .try_into()
            .map_err(|_| WeirError::internal("corrupt min/max value entry"))?;
        Ok(f(&((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)))
    }
}

/// One distinct value's multiplicity, and whether it changed since the last drain (only
/// tracked once the multiset is stored as entries).
#[derive(Debug, Clone, Copy)]
struct Slot {
    count: i64,
    changed: bool,
}

/// The stored bytes of the values changed since the last drain, one after another.
#[derive(Default)]
struct ChangeLog {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

/// A group's multiset of values. Inline, it holds no zero counts; stored as entries, a value
/// whose count fell to 0 stays (skipped by [`Multiset::best`]) until the drain deletes its
/// entry.
pub struct Multiset<V> {
    slots: BTreeMap<V, Slot>,
    /// Some once the multiset is stored as entries: the values to write at the next drain.
    log: Option<Box<ChangeLog>>,
}

impl<V> Default for Multiset<V> {
    fn default() -> Self {
        Multiset {
            slots: BTreeMap::new(),
            log: None,
        }
    }
}

impl<V: Value> Multiset<V> {
    /// The inline form read back from a group's state.
    pub fn inline(values: BTreeMap<V, i64>) -> Self {
        let slots = values
            .into_iter()
            .filter(|&(_, count)| count != 0)
            .map(|(v, count)| {
                let slot = Slot {
                    count,
                    changed: false,
                };
                (v, slot)
            })
            .collect();
        Multiset { slots, log: None }
    }

    /// An empty multiset stored as entries, to be filled by [`Multiset::load_value`].
    pub fn stored() -> Self {
        Multiset {
            slots: BTreeMap::new(),
            log: Some(Box::default()),
        }
    }

    /// Whether the values live in entries of their own rather than in the group's state.
    pub fn is_stored(&self) -> bool {
        self.log.is_some()
    }

    /// Adds `w` occurrences of `value` (a negative `w` removes them).
    pub fn add(&mut self, value: &V::Key, w: i64) {
        if w == 0 {
            return;
        }
        let Multiset { slots, log } = self;
        match slots.get_mut(value) {
            Some(slot) => {
                slot.count += w;
                match log {
                    Some(log) if !slot.changed => {
                        slot.changed = true;
                        log.push::<V>(value);
                    }
                    Some(_) => {}
                    None if slot.count == 0 => {
                        slots.remove(value);
                    }
                    None => {}
                }
            }
            None => {
                if let Some(log) = log {
                    log.push::<V>(value);
                }
                let changed = log.is_some();
                slots.insert(V::owned(value), Slot { count: w, changed });
            }
        }
    }

    /// The smallest value (`min`) or the largest, of those with a count.
    pub fn best(&self, min: bool) -> Option<&V> {
        if min {
            self.slots.iter().find(|(_, s)| s.count != 0)
        } else {
            self.slots.iter().rev().find(|(_, s)| s.count != 0)
        }
        .map(|(v, _)| v)
    }

    /// Calls `f(value bytes, count)` for each value entry to write: with more than
    /// [`INLINE_VALUES_MAX`] values an inline multiset moves to entries (every value, once);
    /// a stored one gives each value changed since the last drain once, count 0 meaning
    /// "delete the entry" (the value is then forgotten), in value order when many changed
    /// ([`SORTED_DRAIN_RATIO`]). An inline multiset that stays inline
    /// gives nothing: the group's state holds it.
    pub fn drain_changed(&mut self, f: &mut dyn FnMut(&[u8], i64)) -> Result<()> {
        let Multiset { slots, log } = self;
        let Some(log) = log.as_deref_mut() else {
            if slots.len() > INLINE_VALUES_MAX {
                let mut encoded = Vec::new();
                for (v, slot) in slots.iter() {
                    encoded.clear();
                    V::encode(Borrow::<V::Key>::borrow(v), &mut encoded);
                    f(&encoded, slot.count);
                }
                *log = Some(Box::default());
            }
            return Ok(());
        };
        if log.ends.len() * SORTED_DRAIN_RATIO >= slots.len() {
            let mut encoded = Vec::new();
            slots.retain(|v, slot| {
                if !slot.changed {
                    return true;
                }
                slot.changed = false;
                encoded.clear();
                V::encode(Borrow::<V::Key>::borrow(v), &mut encoded);
                f(&encoded, slot.count);
                slot.count != 0
            });
            log.bytes.clear();
            log.ends.clear();
            return Ok(());
        }
        let mut start = 0;
        for &end in &log.ends {
            let encoded = &log.bytes[start..end as usize];
            start = end as usize;
            V::with_decoded(encoded, |value| {
                let Some(slot) = slots.get_mut(value) else {
                    return;
                };
                if !slot.changed {
                    return;
                }
                slot.changed = false;
                f(encoded, slot.count);
                if slot.count == 0 {
                    slots.remove(value);
                }
            })?;
        }
        log.bytes.clear();
        log.ends.clear();
        Ok(())
    }

    /// Calls `f(value bytes)` for every entry the multiset may have in the store (none when
    /// inline), to delete them with its group, and empties it.
    pub fn drain_all(&mut self, f: &mut dyn FnMut(&[u8])) {
        if self.log.is_some() {
            let mut encoded = Vec::new();
            for v in self.slots.keys() {
                encoded.clear();
                V::encode(Borrow::<V::Key>::borrow(v), &mut encoded);
                f(&encoded);
            }
        }
        *self = Multiset::default();
    }

    /// Loads one value entry of a stored multiset (start-up).
    pub fn load_value(&mut self, encoded: &[u8], count: i64) -> Result<()> {
        if self.log.is_none() {
            return Err(WeirError::internal(
                "a min/max value entry for a group whose values are inline",
            ));
        }
        let value = V::with_decoded(encoded, V::owned)?;
        let slot = Slot {
            count,
            changed: false,
        };
        self.slots.insert(value, slot);
        Ok(())
    }

    /// The inline form, serialized as the `BTreeMap<value, count>` it always was.
    pub fn inline_ref(&self) -> Inline<'_, V> {
        Inline(&self.slots)
    }
}

impl ChangeLog {
    fn push<V: Value>(&mut self, value: &V::Key) {
        V::encode(value, &mut self.bytes);
        self.ends.push(self.bytes.len() as u32);
    }
}

/// An inline multiset as the group state stores it: a map of value → count.
pub struct Inline<'a, V>(&'a BTreeMap<V, Slot>);

impl<V: Serialize> Serialize for Inline<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(v, slot)| (v, slot.count)))
    }
}

/// The key of a value entry: `<operator prefix> 0xfe <group key length u32 BE> <group key>
/// <aggregate index u16 BE> <value bytes>`. The group key comes first so a group's entries are
/// one range and a restoring worker finds the group (and so the vnode) an entry belongs to.
pub fn value_key(prefix: &[u8], group: &[u8], aggregate: u16, value: &[u8]) -> Vec<u8> {
    let mut k = group_values_prefix(prefix, group, 2 + value.len());
    k.extend_from_slice(&aggregate.to_be_bytes());
    k.extend_from_slice(value);
    k
}

/// What every value entry key of group `group` starts with (a group's key length is part of
/// it, so no other group's entries share it), with room for `more` bytes.
pub fn group_values_prefix(prefix: &[u8], group: &[u8], more: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 5 + group.len() + more);
    k.extend_from_slice(prefix);
    k.push(VALUE_ENTRY_TAG);
    k.extend_from_slice(&(group.len() as u32).to_be_bytes());
    k.extend_from_slice(group);
    k
}

/// A value entry's key after the operator's prefix, taken apart.
pub struct ValueEntry<'a> {
    pub group: &'a [u8],
    pub aggregate: u16,
    pub value: &'a [u8],
}

/// Takes apart the suffix of a [`value_key`]; None for a suffix that is not a value entry.
pub fn parse_value_key(suffix: &[u8]) -> Option<Result<ValueEntry<'_>>> {
    let rest = suffix.strip_prefix(&[VALUE_ENTRY_TAG])?;
    let corrupt = || WeirError::internal("corrupt min/max value entry key");
    let parse = || -> Result<ValueEntry<'_>> {
        let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len + 2 {
            return Err(corrupt());
        }
        let (group, rest) = rest.split_at(len);
        let (aggregate, value) = rest.split_first_chunk::<2>().ok_or_else(corrupt)?;
        Ok(ValueEntry {
            group,
            aggregate: u16::from_be_bytes(*aggregate),
            value,
        })
    };
    Some(parse())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained<V: Value>(m: &mut Multiset<V>) -> Vec<(Vec<u8>, i64)> {
        let mut out = Vec::new();
        m.drain_changed(&mut |v, c| out.push((v.to_vec(), c)))
            .unwrap();
        out
    }

    fn encoded(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        i64::encode(&v, &mut out);
        out
    }

    /// What a store written before value entries holds must still load, and what is written
    /// inline now must be those very bytes.
    #[test]
    fn inline_bytes_are_the_stored_format() {
        let ints = BTreeMap::from([(-3i64, 2i64), (7, 1), (i64::MAX, 5)]);
        let m = Multiset::inline(ints.clone());
        assert_eq!(
            postcard::to_stdvec(&m.inline_ref()).unwrap(),
            postcard::to_stdvec(&ints).unwrap()
        );
        let rows = BTreeMap::from([(vec![1u8, 2], 3i64), (vec![4], -1)]);
        let m = Multiset::inline(rows.clone());
        assert_eq!(
            postcard::to_stdvec(&m.inline_ref()).unwrap(),
            postcard::to_stdvec(&rows).unwrap()
        );
        let mut m = Multiset::<i64>::default();
        m.add(&5, 1);
        m.add(&5, -1);
        assert_eq!(
            m.slots.len(),
            0,
            "inline, a count back at 0 is forgotten at once"
        );
        assert!(drained(&mut m).is_empty());
    }

    #[test]
    fn the_int_encoding_orders_as_the_numbers() {
        let values = [i64::MIN, -300, -1, 0, 1, 255, 256, i64::MAX];
        for pair in values.windows(2) {
            assert!(encoded(pair[0]) < encoded(pair[1]), "{pair:?}");
        }
        for v in values {
            assert_eq!(i64::with_decoded(&encoded(v), |&d| d).unwrap(), v);
        }
    }

    #[test]
    fn entries_drain_once_per_changed_value_and_reload() {
        let mut m = Multiset::<i64>::default();
        for v in 0..INLINE_VALUES_MAX as i64 {
            m.add(&v, 1);
        }
        assert!(drained(&mut m).is_empty(), "256 values stay inline");
        m.add(&1000, 2);
        let first = drained(&mut m);
        assert!(m.is_stored());
        assert_eq!(first.len(), INLINE_VALUES_MAX + 1, "every value, once");
        assert!(drained(&mut m).is_empty(), "nothing changed since");
        // Three values change, one of them three times; one appears and goes in the epoch.
        m.add(&5, 1);
        m.add(&5, 1);
        m.add(&5, -1);
        m.add(&1000, -2);
        m.add(&-7, 4);
        m.add(&2000, 1);
        m.add(&2000, -1);
        let mut changed = drained(&mut m);
        changed.sort();
        let mut expected = vec![
            (encoded(5), 2),
            (encoded(1000), 0),
            (encoded(-7), 4),
            (encoded(2000), 0),
        ];
        expected.sort();
        assert_eq!(changed, expected);
        assert_eq!(
            m.slots.len(),
            INLINE_VALUES_MAX + 1,
            "1000 and 2000 forgotten"
        );
        // Replaying every entry written, in order, gives the same multiset.
        let mut store = BTreeMap::new();
        for (v, c) in first.into_iter().chain(changed) {
            if c == 0 {
                store.remove(&v);
            } else {
                store.insert(v, c);
            }
        }
        let mut reloaded = Multiset::<i64>::stored();
        for (v, c) in &store {
            reloaded.load_value(v, *c).unwrap();
        }
        let pairs = |m: &Multiset<i64>| -> Vec<(i64, i64)> {
            m.slots.iter().map(|(v, s)| (*v, s.count)).collect()
        };
        assert_eq!(pairs(&reloaded), pairs(&m));
        assert_eq!(reloaded.best(true), Some(&-7));
        assert!(drained(&mut reloaded).is_empty());
        assert!(
            Multiset::<i64>::default()
                .load_value(&encoded(1), 1)
                .is_err(),
            "an entry for an inline multiset is refused"
        );
    }

    /// min and max agree with a plain recount through the move to entries and deletes.
    #[test]
    fn crossing_the_threshold_keeps_answers() {
        let mut m = Multiset::<Vec<u8>>::default();
        let mut reference: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        let mut x = 7u64;
        for step in 0..3000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let value = vec![(x >> 40) as u8, (x >> 48) as u8 % 4];
            let present = reference.get(&value).copied().unwrap_or(0);
            let w = if present > 0 && (x >> 20).is_multiple_of(3) {
                -present
            } else {
                1
            };
            m.add(&value, w);
            *reference.entry(value.clone()).or_default() += w;
            reference.retain(|_, c| *c != 0);
            assert_eq!(m.best(true), reference.keys().next(), "step {step}");
            assert_eq!(m.best(false), reference.keys().next_back(), "step {step}");
            if step % 100 == 99 {
                drained(&mut m);
            }
        }
        assert!(m.is_stored(), "the values passed {INLINE_VALUES_MAX}");
    }

    #[test]
    fn deletes_to_zero_remove_entries() {
        let mut m = Multiset::<i64>::stored();
        for v in 0..10 {
            m.load_value(&encoded(v), 1).unwrap();
        }
        m.add(&0, -1);
        m.add(&9, -1);
        assert_eq!(
            m.best(true),
            Some(&1),
            "a zero count is skipped before the drain"
        );
        assert_eq!(m.best(false), Some(&8));
        let mut deleted = drained(&mut m);
        deleted.sort();
        assert_eq!(deleted, [(encoded(0), 0), (encoded(9), 0)]);
        assert_eq!(m.slots.len(), 8);
        let mut all = Vec::new();
        m.drain_all(&mut |v| all.push(v.to_vec()));
        assert_eq!(all.len(), 8, "a dropped group deletes every entry");
        assert!(!m.is_stored() && m.slots.is_empty());
    }

    /// Past `SORTED_DRAIN_RATIO` the drain walks the multiset: each changed value once, in
    /// value order, whatever order the changes came in.
    #[test]
    fn a_big_drain_comes_out_in_value_order() {
        let mut m = Multiset::<i64>::stored();
        for v in 0..1000 {
            m.load_value(&encoded(v), 1).unwrap();
        }
        for v in (0..1000).rev().step_by(2) {
            m.add(&v, -1);
            m.add(&v, 1);
            m.add(&v, -1);
        }
        m.add(&5000, 3);
        let mut expected: Vec<_> = (1..1000).step_by(2).map(|v| (encoded(v), 0)).collect();
        expected.push((encoded(5000), 3));
        assert_eq!(drained(&mut m), expected);
        assert_eq!(m.slots.len(), 501);
        assert_eq!(m.best(false), Some(&5000));
        assert!(drained(&mut m).is_empty());
    }

    #[test]
    fn value_keys_come_apart() {
        let key = value_key(b"pre", &[1, 2, 3], 7, &encoded(-1));
        let entry = parse_value_key(&key[3..]).unwrap().unwrap();
        assert_eq!(entry.group, [1, 2, 3]);
        assert_eq!(entry.aggregate, 7);
        assert_eq!(entry.value, encoded(-1));
        let global = value_key(b"", &[], 0, &[9]);
        assert_eq!(parse_value_key(&global).unwrap().unwrap().group, [0u8; 0]);
        assert!(parse_value_key(&[1, 2]).is_none(), "a group's state key");
        assert!(
            parse_value_key(&[VALUE_ENTRY_TAG, 0, 0, 0, 9])
                .unwrap()
                .is_err()
        );
    }
}
