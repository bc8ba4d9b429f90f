//! # Weir: a SQL-first streaming database
//!
//! One binary does the jobs of an event log (Kafka), a stream processor (Flink SQL) and a
//! serving database, and speaks the Postgres wire protocol.
//!
//! ```text
//!  psql / driver ─pgwire─► server ─► sql: parse → bind (DataFusion LogicalPlan) → stream plan
//!  INSERT / COPY ──────────────► topics (segment files, per partition)
//!                                     │  (sources decode records; tables keep a changelog)
//!                                     ▼
//!                    dataflow: operators over change batches, one epoch at a time
//!                                     ▼
//!            state (fjall or sled): view rows + operator state + source offsets, one commit
//!                                     ▼
//!                    serving: point lookups, DataFusion scans of committed state
//! ```
//!
//! | module | what lives there |
//! |---|---|
//! | [`server`] | Postgres wire protocol: sessions, simple + extended query, COPY |
//! | [`db`] | [`db::Database`]: wires the stages; `execute` shows a statement's whole life |
//! | [`sql`] | parsing (plus Weir's DDL) and the rewrite of DataFusion plans into dataflows |
//! | [`catalog`] | sources, tables, views; persisted as their CREATE statements |
//! | [`kafka`] | Kafka wire protocol over the topics (produce, fetch, metadata) |
//! | [`http`] | HTTP: ingest (`POST /v1/sources/{name}`) and Prometheus `/metrics` |
//! | [`topics`] | the durable, partitioned log |
//! | [`formats`] | JSON / CSV / COPY text ⇄ Arrow; Arrow row format for keys |
//! | [`dataflow`] | change batches, operators, per-view graphs, the epoch runtime |
//! | [`sources`] | sources that make their own events: the Nexmark generator |
//! | [`state`] | the state-store trait and its backends (fjall, the default, and sled) |
//! | [`serving`] | reads of committed state: point lookups and DataFusion table providers |
//! | [`pg_catalog`] | `pg_catalog` / `information_schema` over the catalog, for clients and BI tools |
//!
//! Dependencies point one way: server, kafka, http → db → sql / serving / catalog → dataflow →
//! formats → state / topics.

mod alloc;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod dataflow;
pub mod db;
pub mod error;
pub mod formats;
pub mod http;
pub mod kafka;
pub mod pg_catalog;
pub mod server;
pub mod serving;
pub mod sources;
pub mod sql;
pub mod state;
pub mod topics;

/// Huge allocations only reserve memory: see `alloc.rs` (a hostile Kafka request must not be
/// able to abort the server).
#[global_allocator]
static GLOBAL: alloc::WeirAllocator = alloc::WeirAllocator;
