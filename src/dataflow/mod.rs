//! Incremental dataflow: operators over change batches, arranged as a tree per materialized
//! view; each view runs as an [`actor`] on its own thread, fed by shared topic [`readers`] and
//! driven through numbered epochs by the coordinator (the [`runtime`] is its handle). A view's
//! tree runs on `--workers` threads, keyed state spread over them by [`vnode`].
//!
//! ```text
//!   shared readers (topic records, table changelogs: decoded once) ─┐
//!   upstream views' changes ────────────────────────────────────────┤ Data(ChangeBatch), Barrier(N)
//!        ▼                                                          │
//!   view actor: Filter / Project / Join / Aggregate ... (ops/) ◄────┘
//!        │ on its last barrier: operators flush pending output and write changed state
//!        ▼
//!   coordinator ── one atomic store commit per epoch (every view's rows + state + offsets)
//! ```

pub mod actor;
pub mod batch;
mod coordinator;
pub mod graph;
pub mod jobs;
pub mod ops;
mod readers;
pub mod runtime;
pub mod state_cache;
pub mod stats;
pub mod topic_sink;
pub mod view_rows;
pub mod vnode;
mod workers;

pub use batch::ChangeBatch;
