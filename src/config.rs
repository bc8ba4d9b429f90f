//! Every limit and default of Weir as a named constant, units last.
//!
//! The command line (`main.rs`) overrides some of these; everything else reads them from here so
//! that a limit lives in exactly one place.

/// Where the store and the topics live unless `--data-dir` says otherwise.
pub const DATA_DIR_DEFAULT: &str = "./weir-data";
/// Postgres wire protocol listener.
pub const PG_ADDR_DEFAULT: &str = "127.0.0.1:6543";
/// Kafka protocol listener (its listener comes with the Kafka issue).
pub const KAFKA_ADDR_DEFAULT: &str = "127.0.0.1:9092";
/// Whether Kafka clients create unknown topics by producing to them (as Kafka does).
pub const KAFKA_AUTO_CREATE_TOPICS_DEFAULT: bool = true;
/// HTTP listener: dashboard, metrics, ingest (comes with the HTTP issue).
pub const HTTP_ADDR_DEFAULT: &str = "127.0.0.1:6544";
/// How often the dataflow closes an epoch and commits it to the store.
pub const BARRIER_INTERVAL_MS_DEFAULT: u64 = 1000;

/// Records read from one topic partition in one go while a view catches up; bounds the memory
/// one step of a backfill takes.
pub const SOURCE_READ_RECORDS_MAX: usize = 8192;
/// How often topics that have retention limits are checked for segments to delete (appends
/// that roll a segment check at once; this catches topics that age without being written).
pub const RETENTION_CHECK_INTERVAL_SECS: u64 = 60;
/// Rows per Arrow batch when a snapshot (view contents, table contents) is turned into batches.
pub const SCAN_BATCH_ROWS: usize = 8192;
/// Largest statement text accepted, in bytes.
pub const STATEMENT_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The version string `SELECT version()` and the `server_version` parameter report. Clients parse
/// the leading Postgres version number, so it comes first.
pub const SERVER_VERSION: &str = "15.0 (Weir 0.1.0)";
