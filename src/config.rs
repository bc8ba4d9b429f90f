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
/// Largest record batch a Kafka producer may send, in bytes, measured after decompression
/// (Kafka's `message.max.bytes`, which Kafka measures compressed and defaults to about 1 MiB):
/// a batch past it is answered MESSAGE_TOO_LARGE and nothing of its partition is written. Eight
/// times Kafka's default, so that a batch Kafka would take compressed at several times its size
/// still fits; no batch is inflated past it.
pub const KAFKA_BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Statements that take at least this long are logged at info level
/// (`--log-slow-statements-ms`; -1 turns it off, 0 logs every statement).
pub const LOG_SLOW_STATEMENTS_MS_DEFAULT: u64 = 1000;
/// Kafka's `connections.max.idle.ms`: a Kafka connection with no request for this long is
/// closed (`--kafka-connections-max-idle-ms`).
pub const KAFKA_CONNECTIONS_MAX_IDLE_MS_DEFAULT: u64 = 10 * 60 * 1000;
/// Most Kafka connections open at once (`--kafka-max-connections`; Kafka's `max.connections`):
/// past it the listener stops accepting, and new clients wait in the kernel's backlog until
/// one closes, as Kafka does. Each connection takes a descriptor.
pub const KAFKA_MAX_CONNECTIONS_DEFAULT: usize = 1000;
/// HTTP listener: ingest (`POST /v1/sources/{name}`) and Prometheus metrics (`/metrics`).
pub const HTTP_ADDR_DEFAULT: &str = "127.0.0.1:6544";
/// Largest HTTP ingest request body, in bytes; a larger one is refused with 413 and nothing
/// of it is written (the whole body is held in memory while its rows are checked).
pub const HTTP_INGEST_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How often the dataflow closes an epoch and commits it to the store.
pub const BARRIER_INTERVAL_MS_DEFAULT: u64 = 1000;

/// Most worker threads per view (`--workers`).
pub const WORKERS_MAX: usize = 256;

/// Worker threads per view unless `--workers` says otherwise: the machine's cores.
pub fn workers_default() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(WORKERS_MAX))
}

/// Records read from one topic partition in one go while a view catches up; bounds the memory
/// one step of a backfill takes.
pub const SOURCE_READ_RECORDS_MAX: usize = 8192;
/// How often topics that have retention limits are checked for segments to delete (appends
/// that roll a segment check at once; this catches topics that age without being written).
pub const RETENTION_CHECK_INTERVAL_SECS: u64 = 60;
/// Rows per Arrow batch when a snapshot (view contents, table contents) is turned into batches.
pub const SCAN_BATCH_ROWS: usize = 8192;
/// Stack of every thread that plans or evaluates SQL (the runtime's workers, the epoch and
/// dataflow threads), in bytes: reserved, and committed only as used. With
/// [`crate::sql::depth::STATEMENT_NESTING_MAX`] it leaves the deepest statement ample room.
pub const THREAD_STACK_BYTES: usize = 16 * 1024 * 1024;
/// How long a client has to log in, in milliseconds (`--authentication-timeout-ms`,
/// Postgres's `authentication_timeout`): a Postgres client's whole start-up (TLS, start-up
/// packet, SCRAM exchange), and a Kafka connection's TLS handshake and SASL exchange under
/// `--kafka-auth password`; then the connection is closed.
pub const AUTHENTICATION_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// Postgres sessions open at once on the listener, over every role (`--pg-max-connections`):
/// Postgres's `max_connections`. Past it: FATAL 53300.
pub const PG_MAX_CONNECTIONS_DEFAULT: usize = 100;
/// Largest Postgres frontend message that carries data (Query, Parse, Bind, CopyData,
/// CopyFail, password), in bytes: Postgres's `PQ_LARGE_MESSAGE_LIMIT`. Past it: FATAL 08P01.
pub const PG_LARGE_MESSAGE_BYTES_MAX: usize = (1 << 30) - 1;
/// Largest other Postgres frontend message (Describe, Execute, Close, Sync ...) and start-up
/// packet, in bytes: Postgres's `PQ_SMALL_MESSAGE_LIMIT`. Past it: FATAL 08P01.
pub const PG_SMALL_MESSAGE_BYTES_MAX: usize = 10_000;
/// Largest statement text accepted, in bytes.
pub const STATEMENT_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The settings a session starts with, as Postgres spells their names: what `SHOW`,
/// `current_setting()` and `pg_settings` report. Columns: name, value, unit, type.
pub const PG_SETTINGS: &[(&str, &str, Option<&str>, &str)] = &[
    ("application_name", "", None, "string"),
    ("block_size", "8192", None, "integer"),
    ("client_encoding", "UTF8", None, "string"),
    ("DateStyle", "ISO, MDY", None, "string"),
    (
        "default_transaction_isolation",
        "read committed",
        None,
        "enum",
    ),
    ("default_transaction_read_only", "off", None, "bool"),
    ("extra_float_digits", "1", None, "integer"),
    (
        "idle_in_transaction_session_timeout",
        "0",
        Some("ms"),
        "integer",
    ),
    ("integer_datetimes", "on", None, "bool"),
    ("IntervalStyle", "postgres", None, "enum"),
    ("is_superuser", "on", None, "bool"),
    ("lc_collate", "C", None, "string"),
    ("lc_ctype", "C", None, "string"),
    ("lc_messages", "C", None, "string"),
    ("lock_timeout", "0", Some("ms"), "integer"),
    ("max_identifier_length", "63", None, "integer"),
    ("max_index_keys", "32", None, "integer"),
    ("search_path", "\"$user\", public", None, "string"),
    ("server_encoding", "UTF8", None, "string"),
    ("server_version", SERVER_VERSION, None, "string"),
    ("server_version_num", "150000", None, "integer"),
    ("standard_conforming_strings", "on", None, "bool"),
    ("statement_timeout", "0", Some("ms"), "integer"),
    ("TimeZone", "UTC", None, "string"),
    ("transaction_isolation", "read committed", None, "enum"),
    ("transaction_read_only", "off", None, "bool"),
    // `server::session::BACKFILL_NOTICE_INTERVAL_MS_DEFAULT`, as SHOW prints it.
    ("weir.backfill_notice_interval", "5s", None, "string"),
];

/// A setting's default by name, case-insensitively (`datestyle` is `DateStyle`).
pub fn pg_setting(name: &str) -> Option<&'static str> {
    PG_SETTINGS
        .iter()
        .find(|(n, ..)| n.eq_ignore_ascii_case(name))
        .map(|(_, value, ..)| *value)
}

/// The version string `SELECT version()` and the `server_version` parameter report. Clients parse
/// the leading Postgres version number, so it comes first.
pub const SERVER_VERSION: &str = "15.0 (Weir 0.1.0)";
