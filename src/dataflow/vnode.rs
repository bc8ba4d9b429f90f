//! Virtual nodes: how keyed state is spread over a view's parallel workers.
//!
//! Every key of a stateful operator (a group, a join key) hashes to one of [`VNODES`] virtual
//! nodes; each worker owns a contiguous range of them ([`owner`]). The exchange in front of a
//! stateful operator sends each row to the worker owning its key's vnode, and a worker restoring
//! state keeps the entries of its vnodes, so results and state do not depend on the number of
//! workers, and state can later move between workers a vnode at a time.
//!
//! The hash is Weir's own (not Arrow's or the standard library's, whose values may change
//! between versions): a key's vnode must be the same when a row arrives and when its state is
//! read back by a later binary. An integer-like key hashes as its i64 value, any other key as
//! its row-format bytes (see `ops::key_index`), so both sides of a join agree.

/// Virtual nodes per stateful operator.
pub const VNODES: usize = 256;

/// The vnode of a key hashed to `hash`.
pub fn of_hash(hash: u64) -> u16 {
    (hash >> 56) as u16
}

/// The worker (of `workers`) that owns `vnode`.
pub fn owner(vnode: u16, workers: usize) -> usize {
    vnode as usize * workers / VNODES
}

/// The vnode of an integer-like key.
pub fn of_i64(value: i64) -> u16 {
    of_hash(mix(value as u64 ^ SEED))
}

/// The vnode of a key given as bytes.
pub fn of_bytes(bytes: &[u8]) -> u16 {
    let mut hash = SEED ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        hash = (hash ^ word).wrapping_mul(MULTIPLIER).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    hash = (hash ^ u64::from_le_bytes(tail)).wrapping_mul(MULTIPLIER);
    of_hash(mix(hash))
}

const SEED: u64 = 0x5765_6972_2076_6e6f; // "Weir vno"
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// A bijective finalizer (splitmix64's): every input bit affects the top bits.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_fixed() {
        // A change here moves state between workers of views already on disk.
        let values = [of_i64(0), of_i64(42), of_bytes(b""), of_bytes(b"weir")];
        assert_eq!(values, [170, 47, 31, 8]);
    }

    #[test]
    fn keys_spread_evenly_and_owners_cover_all_vnodes() {
        let mut per_vnode = vec![0usize; VNODES];
        for v in 0..256_000 {
            per_vnode[of_i64(v) as usize] += 1;
        }
        let (min, max) = (per_vnode.iter().min(), per_vnode.iter().max());
        assert!(
            *min.unwrap() > 800 && *max.unwrap() < 1200,
            "{min:?} {max:?}"
        );
        for workers in 1..=8 {
            let mut owned = vec![0; workers];
            for vnode in 0..VNODES as u16 {
                owned[owner(vnode, workers)] += 1;
            }
            assert!(owned.iter().all(|&n| n >= VNODES / workers), "{owned:?}");
        }
    }
}
