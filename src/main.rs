//! The `weir` command: flags, the data directory, and starting the listeners.

use std::path::PathBuf;

use clap::Parser;
use weir::config;
use weir::db::{Database, DbConfig};

#[derive(Parser, Debug)]
#[command(name = "weir", version, about = "A SQL-first streaming database")]
struct Args {
    /// Directory holding the store and the topics.
    #[arg(long, default_value = config::DATA_DIR_DEFAULT)]
    data_dir: PathBuf,
    /// Postgres wire protocol address (`off` disables it).
    #[arg(long, default_value = config::PG_ADDR_DEFAULT)]
    pg_addr: String,
    /// Kafka protocol address (`off` disables it).
    #[arg(long, default_value = config::KAFKA_ADDR_DEFAULT)]
    kafka_addr: String,
    /// HTTP address for ingest (POST /v1/sources/{name}) and Prometheus metrics (GET /metrics)
    /// (`off` disables it).
    #[arg(long, default_value = config::HTTP_ADDR_DEFAULT)]
    http_addr: String,
    /// Whether a Kafka client producing to (or asking for) an unknown topic creates it.
    #[arg(long, default_value_t = config::KAFKA_AUTO_CREATE_TOPICS_DEFAULT, action = clap::ArgAction::Set)]
    kafka_auto_create_topics: bool,
    /// Close a Kafka connection that sends no request for this long (Kafka's
    /// connections.max.idle.ms).
    #[arg(long, default_value_t = config::KAFKA_CONNECTIONS_MAX_IDLE_MS_DEFAULT)]
    kafka_connections_max_idle_ms: u64,
    /// Most Kafka connections open at once; more wait until one closes (Kafka's
    /// max.connections).
    #[arg(long, default_value_t = config::KAFKA_MAX_CONNECTIONS_DEFAULT)]
    kafka_max_connections: usize,
    /// How often an epoch is committed, in milliseconds.
    #[arg(long, default_value_t = config::BARRIER_INTERVAL_MS_DEFAULT)]
    barrier_interval_ms: u64,
    /// Worker threads each view's dataflow runs on (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=config::WORKERS_MAX as i64))]
    workers: Option<u16>,
    /// Operator state kept in memory, over every view, in MiB; the rest stays in the store
    /// and is read back when its keys come again (0: nothing is kept past an epoch).
    #[arg(long, default_value_t = weir::dataflow::state_cache::STATE_CACHE_MB_DEFAULT)]
    state_cache_mb: usize,
    /// State store backend for a new data directory: sled or fjall (an existing directory
    /// keeps the one it was created with).
    #[arg(long)]
    store: Option<String>,
    /// How Postgres clients authenticate: trust (any role that may log in, no password; only
    /// on a loopback --pg-addr) or password (SCRAM-SHA-256).
    #[arg(long, default_value = "trust")]
    pg_auth: weir::server::AuthMethod,
    /// The password of the superuser `weir`, set when the data directory is created (later
    /// starts ignore it: use ALTER USER).
    #[arg(long, env = "WEIR_INIT_PASSWORD", hide_env_values = true)]
    init_password: Option<String>,
    /// Log lines as text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log statements that take at least this many milliseconds at info (0: every
    /// statement; -1: none). Every statement is logged at debug (RUST_LOG=weir=debug).
    #[arg(long, default_value_t = config::LOG_SLOW_STATEMENTS_MS_DEFAULT as i64, allow_negative_numbers = true)]
    log_slow_statements_ms: i64,
    /// Most Postgres sessions open at once (past it: 53300).
    #[arg(long, default_value_t = config::PG_MAX_CONNECTIONS_DEFAULT)]
    pg_max_connections: usize,
    /// PEM certificate (chain) for TLS on the Postgres listener; with --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse Postgres clients that do not use TLS.
    #[arg(long, requires = "tls_cert")]
    tls_require: bool,
    /// How Kafka clients authenticate: trust (SASL optional, a client that does not log in
    /// acts as the superuser; only on a loopback --kafka-addr) or password (SASL
    /// SCRAM-SHA-256, or PLAIN over TLS, with the role's password).
    #[arg(long, default_value = "trust")]
    kafka_auth: weir::server::AuthMethod,
    /// Serve Kafka clients over TLS only (security.protocol SSL or SASL_SSL), with the
    /// certificate of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    kafka_tls: bool,
    /// How HTTP requests authenticate: trust (every request acts as the superuser; only on a
    /// loopback --http-addr) or password (HTTP Basic with a role's user and password; the
    /// request acts as that role).
    #[arg(long, default_value = "trust")]
    http_auth: weir::server::AuthMethod,
    /// How long a Postgres or Kafka client has to finish its start-up, TLS handshake and
    /// password exchange, in milliseconds; then the connection is closed.
    #[arg(long, default_value_t = config::AUTHENTICATION_TIMEOUT_MS_DEFAULT)]
    authentication_timeout_ms: u64,
    /// Serve HTTP over TLS only (https), with the certificate of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    http_tls: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Write Nexmark events to files (person, auction, bid), one record per line, so other
    /// systems read exactly the events Weir's nexmark sources generate with the same options.
    Nexmark {
        /// Events over all three kinds (1 person, 3 auctions, 46 bids in every 50).
        #[arg(long)]
        events: u64,
        /// Record format: json or csv (the format of a source's topic records).
        #[arg(long, default_value = "json")]
        format: String,
        /// Directory for person.<format>, auction.<format> and bid.<format>.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(weir::config::THREAD_STACK_BYTES)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(start()),
        Err(e) => {
            eprintln!("weir: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

async fn start() -> std::process::ExitCode {
    // Logs go to stderr, as a server's do; stdout stays for what a subcommand prints.
    let args = Args::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    if let Some(Command::Nexmark {
        events,
        format,
        out,
    }) = &args.command
    {
        return write_nexmark(*events, format, out);
    }
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn write_nexmark(events: u64, format: &str, out: &std::path::Path) -> std::process::ExitCode {
    use weir::sources::nexmark::{Sequence, write_files};
    let written = weir::formats::Format::parse(format).and_then(|format| {
        let sequence = Sequence {
            events: Some(events),
            ..Sequence::default()
        };
        write_files(out, &sequence, format)
    });
    match written {
        Ok(counts) => {
            for (kind, n) in counts {
                println!("{}\t{n}", kind.name());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weir nexmark: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let store = match args.store.as_deref() {
        None => None,
        Some(name) => Some(
            weir::state::StoreKind::parse(name)
                .ok_or_else(|| format!("--store {name}: expected sled or fjall"))?,
        ),
    };
    let db = Database::open(DbConfig {
        data_dir: args.data_dir.clone(),
        barrier_interval_ms: args.barrier_interval_ms,
        workers: args
            .workers
            .map_or_else(config::workers_default, usize::from),
        state_cache_mb: args.state_cache_mb,
        store,
        init_password: args.init_password.clone(),
    })
    .await?;
    tracing::info!(data_dir = %args.data_dir.display(), "{}", Database::describe_dir(&args.data_dir));
    let authentication_timeout = std::time::Duration::from_millis(args.authentication_timeout_ms);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(weir::server::load_tls(cert, key)?),
        _ => None,
    };
    if args.kafka_addr == "off" {
        tracing::info!("kafka listener off");
    } else {
        let addr = resolve(&args.kafka_addr).await?;
        weir::kafka::check_exposure(addr, args.kafka_auth, &db)?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let advertised = listener.local_addr()?;
        let mut broker =
            weir::kafka::Broker::new(db.clone(), advertised, args.kafka_auto_create_topics);
        broker.idle_timeout = std::time::Duration::from_millis(args.kafka_connections_max_idle_ms);
        broker.max_connections = args.kafka_max_connections.max(1);
        broker.auth = args.kafka_auth;
        broker.authentication_timeout = authentication_timeout;
        if args.kafka_tls {
            broker.tls = tls.as_ref().map(|tls| tls.acceptor_without_alpn.clone());
        }
        tracing::info!(
            auth = ?args.kafka_auth,
            tls = broker.tls.is_some(),
            "kafka listener on {advertised}"
        );
        tokio::spawn(weir::kafka::serve(listener, std::sync::Arc::new(broker)));
    }
    if args.http_addr == "off" {
        tracing::info!("http listener off");
    } else {
        let addr = resolve(&args.http_addr).await?;
        weir::http::auth::check_exposure(addr, args.http_auth, &db)?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let http_tls = args
            .http_tls
            .then(|| tls.as_ref().map(|tls| tls.acceptor_without_alpn.clone()))
            .flatten();
        tracing::info!(
            auth = ?args.http_auth,
            tls = http_tls.is_some(),
            "http listener on {}",
            listener.local_addr()?
        );
        let db = db.clone();
        tokio::spawn(async move {
            if let Err(e) = weir::http::serve(listener, db, args.http_auth, http_tls).await {
                tracing::error!("http listener failed: {e}");
            }
        });
    }
    if args.pg_addr == "off" {
        tracing::info!("postgres listener off");
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }
    weir::server::check_exposure(resolve(&args.pg_addr).await?, args.pg_auth, &db)?;
    let listener = tokio::net::TcpListener::bind(&args.pg_addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        auth = ?args.pg_auth,
        tls = tls.is_some(),
        tls_required = args.tls_require,
        "postgres listener on {addr}"
    );
    let options = weir::server::PgListenerOptions {
        auth: args.pg_auth,
        tls,
        tls_required: args.tls_require,
        max_connections: args.pg_max_connections,
        log_slow_statements: u64::try_from(args.log_slow_statements_ms)
            .ok()
            .map(std::time::Duration::from_millis),
        authentication_timeout,
    };
    tokio::select! {
        served = weir::server::serve(listener, db, options) => served?,
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// The socket address a listener flag names (`127.0.0.1:6543`, `localhost:6543`), checked
/// before anything is bound, so a listener Weir refuses never opens.
async fn resolve(addr: &str) -> Result<std::net::SocketAddr, Box<dyn std::error::Error>> {
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| format!("{addr}: the name resolves to no address").into())
}
