//! Reads: every SELECT is answered from committed state here.
//!
//! - [`lookup`]: `SELECT cols FROM view WHERE key = value` straight from the store, no query
//!   plan (the fast path for point lookups).
//! - [`providers`]: DataFusion `TableProvider`s for everything else — a view's committed rows,
//!   a table's current contents, a source's history (all records of its topic).
//! - [`view_scan`] and [`key_range`]: a view read from the query's store snapshot a page at a
//!   time, over the key range its filters allow.
//! - [`system_tables`]: `weir_skipped_records` and `weir_jobs`, from the runtime's counters.

mod key_range;
pub mod lookup;
pub mod providers;
pub mod system_tables;
mod view_scan;
