//! Sources that make their own events: the Nexmark benchmark's generator.
//!
//! [`nexmark`] builds the events as Arrow batches; [`generator`] is the `nexmark` connector of
//! `CREATE SOURCE`, which appends them to the source's topic. (Decoding topic records and
//! watermarks move here with the engine rewrite; today they live in `dataflow::runtime`.)

pub mod generator;
pub mod nexmark;
pub mod reader;
