//! Incremental dataflow: operators over change batches, arranged as a tree per materialized
//! view, driven in epochs by the [`runtime`].
//!
//! ```text
//!   inputs (topic records, table changelogs, upstream view changes)
//!        │ ChangeBatch (Arrow rows + weights)
//!        ▼
//!   Filter / Project / Join / Aggregate ...   (one operator per file under ops/)
//!        │ at each barrier: operators flush pending output and write changed state
//!        ▼
//!   view rows ── one atomic store commit per epoch (rows + operator state + offsets)
//! ```

pub mod actor;
pub mod batch;
mod coordinator;
pub mod graph;
pub mod jobs;
pub mod ops;
pub mod readers;
pub mod runtime;
pub mod topic_sink;
pub mod view_rows;

pub use batch::ChangeBatch;
