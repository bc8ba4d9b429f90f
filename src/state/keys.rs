//! How keys in the store are laid out. Every key starts with a one-byte space tag, so each kind
//! of state is one contiguous prefix range:
//!
//! ```text
//! c <name>                                  catalog entry (JSON)
//! r <name>                                  a role (JSON, `auth::Role`)
//! p <object>                                an object's owner and grants (JSON, `auth::privileges`)
//! m next_id                                 next catalog object id (u64 BE)
//! m format                                  the store's layout version (u32 BE, STORE_FORMAT)
//! v <view id u64 BE> <pk>                   a keyed view's row (row bytes)
//! v <view id u64 BE> <row>                  an unkeyed view's row multiplicity (i64 LE)
//! v <view id u64 BE> <row id u64 BE>        an unkeyed append-only view's row (row bytes)
//! n <view id u64 BE>                        that view's next row id (u64 BE)
//! s <view id u64 BE> <operator u32 BE> <operator's own key>   operator state
//! s <view id u64 BE> <operator u32 BE> 0xfe <group key len u32 BE> <group key> <aggregate u16 BE> <value>
//!                                           one value of a big min/max multiset: count (i64 LE)
//! o <view id u64 BE>                        the view's committed source offsets (JSON)
//! g <group> 0 <topic> 0 <partition i32 BE>  a Kafka consumer group's committed offset
//! k <sink id u64 BE>                        a sink's topic end offsets at the last commit (JSON)
//! b <view id u64 BE>                        a view still catching up (its keys go if it never joins)
//! ```
//! `pk` and `row` are Arrow row-format bytes (byte-comparable), so view rows scan in key order.
//! An operator's own key is its group or join key (row format, first byte 0 to 2), or an
//! operator-wide entry (first byte 0xff, say an aggregate's watermark), or, for a grouped
//! aggregate's min/max over more than 256 distinct values (`INLINE_VALUES_MAX` in
//! `dataflow/ops/aggregate/multiset.rs`), one entry per value (first byte 0xfe; the value as
//! memcomparable bytes: row format, or an integer-like value as i64 BE with the sign bit
//! flipped), so a one-row change writes one entry, not the group's whole multiset. Such an
//! entry goes to the worker of the group key it embeds.
//! A keyed view holds each key once, so its row is the value of its key (a change is one put);
//! an unkeyed view may hold a row several times, so the row is the key and its count the value,
//! unless its changes are insertions only: then each row gets the next row id as its key (a
//! put, with nothing read first).

pub const CATALOG: u8 = b'c';
pub const ROLES: u8 = b'r';
pub const PRIVILEGES: u8 = b'p';
pub const META_NEXT_ID: &[u8] = b"m/next_id";
pub const META_FORMAT: &[u8] = b"m/format";
/// The layout this build reads and writes. 1: stores written before the key existed (keyed
/// view rows were `<pk len><pk><row> → count`); 2: keyed view rows are `<pk> → row`; 3: an
/// unkeyed append-only view's rows are `<row id> → row`, and `sum(bigint)` is stored as
/// NUMERIC (`sql::numeric_sum`); 4: a grouped aggregate's state no longer holds the row it
/// last emitted (it is computed again from the state when the group is loaded).
pub const STORE_FORMAT: u32 = 4;
pub const VIEW_ROWS: u8 = b'v';
pub const OPERATOR_STATE: u8 = b's';
pub const OFFSETS: u8 = b'o';
pub const GROUP_OFFSETS: u8 = b'g';
pub const SINK_OFFSETS: u8 = b'k';
pub const BACKFILL: u8 = b'b';
pub const NEXT_ROW_ID: u8 = b'n';

pub fn catalog_prefix() -> Vec<u8> {
    vec![CATALOG]
}

pub fn catalog_key(name: &str) -> Vec<u8> {
    let mut k = catalog_prefix();
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn role_key(name: &str) -> Vec<u8> {
    let mut k = vec![ROLES];
    k.extend_from_slice(name.as_bytes());
    k
}

/// The key of an object's privileges: `r/<relation>`, `t/<topic>` or `d` (the database).
pub fn privileges_key(object: &str) -> Vec<u8> {
    let mut k = vec![PRIVILEGES];
    k.extend_from_slice(object.as_bytes());
    k
}

/// The smallest key greater than every key that starts with `prefix`; None when there is none
/// (the prefix is empty or all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

pub fn view_rows_prefix(view_id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(VIEW_ROWS);
    k.extend_from_slice(&view_id.to_be_bytes());
    k
}

/// A keyed view's row key (`pk`), or an unkeyed view's row key (`row`).
pub fn view_row_key(view_id: u64, pk_or_row: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + pk_or_row.len());
    k.push(VIEW_ROWS);
    k.extend_from_slice(&view_id.to_be_bytes());
    k.extend_from_slice(pk_or_row);
    k
}

/// What follows the view id in a view row key: the pk or the row.
pub fn view_row_suffix(key: &[u8]) -> &[u8] {
    &key[9..]
}

pub fn operator_prefix(view_id: u64, operator: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.push(OPERATOR_STATE);
    k.extend_from_slice(&view_id.to_be_bytes());
    k.extend_from_slice(&operator.to_be_bytes());
    k
}

pub fn view_state_prefix(view_id: u64) -> Vec<u8> {
    let mut k = vec![OPERATOR_STATE];
    k.extend_from_slice(&view_id.to_be_bytes());
    k
}

/// A view's event times: per input, per partition, the largest event time read (JSON), kept
/// beside its operators' state so that dropping the view's state drops them too.
pub fn event_times_key(view_id: u64) -> Vec<u8> {
    operator_prefix(view_id, u32::MAX)
}

/// Where an unkeyed append-only view keeps the row id its next row gets.
pub fn next_row_id_key(view_id: u64) -> Vec<u8> {
    let mut k = vec![NEXT_ROW_ID];
    k.extend_from_slice(&view_id.to_be_bytes());
    k
}

pub fn offsets_key(view_id: u64) -> Vec<u8> {
    let mut k = vec![OFFSETS];
    k.extend_from_slice(&view_id.to_be_bytes());
    k
}

/// Marks a view whose backfill has not joined the epochs yet: after a crash, start-up removes
/// whatever such a view wrote.
pub fn backfill_key(view_id: u64) -> Vec<u8> {
    let mut k = vec![BACKFILL];
    k.extend_from_slice(&view_id.to_be_bytes());
    k
}

/// The view id of a [`backfill_key`].
pub fn view_of_backfill_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}
