//! The sources stage: topic records into change batches, and sources that make their own events.
//!
//! [`reader`] decodes a topic's records in bounded steps (the dataflow's shared readers and
//! backfills use it); [`nexmark`] builds the Nexmark benchmark's events as Arrow batches;
//! [`generator`] is the `nexmark` connector of `CREATE SOURCE`, which appends them to the
//! source's topic. (Watermark generation comes here with event time.)

pub mod generator;
pub mod nexmark;
pub mod reader;
