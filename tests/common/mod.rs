//! A real Weir server for tests: the built `weir` binary on a free loopback port with its own
//! data directory, stopped (or killed) by the test. The binary is the one named by the
//! environment variable `WEIR_TEST_BIN` when it is set (test.sh sets it to the release build, so
//! the end-to-end suites test the optimized binary users run), else the one cargo built with the
//! tests.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for a server to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Starts tried before giving up when each loses its port to a race.
const STARTUP_ATTEMPTS: usize = 3;

pub struct WeirServer {
    child: Option<Child>,
    pub port: u16,
    /// The Kafka listener's port, when the server runs one.
    pub kafka_port: Option<u16>,
    /// The HTTP listener's port, when the server runs one.
    pub http_port: Option<u16>,
    pub data_dir: PathBuf,
    barrier_interval_ms: u64,
    /// Workers per view for the next (re)start; None: `$WEIR_TEST_WORKERS`, else the default.
    pub workers: Option<usize>,
    /// More flags for every (re)start (`--pg-auth password` ...).
    pub args: Vec<String>,
}

/// The server binary the tests run: `$WEIR_TEST_BIN`, or the `weir` cargo built for the tests.
pub fn weir_bin() -> PathBuf {
    std::env::var_os("WEIR_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_weir")))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl WeirServer {
    /// Starts a server on a fresh port over `data_dir` and waits until it accepts connections.
    pub async fn start(data_dir: &Path, barrier_interval_ms: u64) -> WeirServer {
        Self::start_with(data_dir, barrier_interval_ms, false, None).await
    }

    /// Like `start`, with the HTTP listener on a free port too.
    pub async fn start_with_http(data_dir: &Path, barrier_interval_ms: u64) -> WeirServer {
        let mut server = Self::new(data_dir, barrier_interval_ms, false, None);
        server.http_port = Some(0);
        server.spawn().await;
        server
    }

    /// Like `start`, with `workers` workers per view (for this start and every restart until
    /// `workers` is changed).
    pub async fn start_with_workers(
        data_dir: &Path,
        barrier_interval_ms: u64,
        workers: usize,
    ) -> WeirServer {
        Self::start_with(data_dir, barrier_interval_ms, false, Some(workers)).await
    }

    /// Like `start`, with more flags (kept for restarts).
    pub async fn start_with_args(
        data_dir: &Path,
        barrier_interval_ms: u64,
        args: &[&str],
    ) -> WeirServer {
        let mut server = Self::new(data_dir, barrier_interval_ms, false, None);
        server.args = args.iter().map(|a| a.to_string()).collect();
        server.spawn().await;
        server
    }

    /// Like `start`, with the Kafka listener on a free port too.
    pub async fn start_with_kafka(data_dir: &Path, barrier_interval_ms: u64) -> WeirServer {
        Self::start_with(data_dir, barrier_interval_ms, true, None).await
    }

    async fn start_with(
        data_dir: &Path,
        barrier_interval_ms: u64,
        kafka: bool,
        workers: Option<usize>,
    ) -> WeirServer {
        let mut server = Self::new(data_dir, barrier_interval_ms, kafka, workers);
        server.spawn().await;
        server
    }

    fn new(
        data_dir: &Path,
        barrier_interval_ms: u64,
        kafka: bool,
        workers: Option<usize>,
    ) -> WeirServer {
        WeirServer {
            child: None,
            port: 0,
            kafka_port: kafka.then_some(0),
            http_port: None,
            data_dir: data_dir.to_path_buf(),
            barrier_interval_ms,
            workers,
            args: Vec::new(),
        }
    }

    /// Starts the server; a start that loses its free port to another test's server (the port
    /// is free when picked, bound later) is retried on new ports.
    async fn spawn(&mut self) {
        for _ in 1..STARTUP_ATTEMPTS {
            match self.try_spawn().await {
                Ok(()) => return,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("weir exited at start-up; log: {log}"),
            }
        }
        if let Err(log) = self.try_spawn().await {
            panic!("weir exited at start-up; log: {log}");
        }
    }

    /// One start: Err(the log) when the process exits before it accepts connections.
    async fn try_spawn(&mut self) -> Result<(), String> {
        self.port = free_port();
        if self.kafka_port.is_some() {
            self.kafka_port = Some(free_port());
        }
        if self.http_port.is_some() {
            self.http_port = Some(free_port());
        }
        let addr = |port: Option<u16>| match port {
            Some(port) => format!("127.0.0.1:{port}"),
            None => "off".to_string(),
        };
        let (kafka_addr, http_addr) = (addr(self.kafka_port), addr(self.http_port));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .expect("open server log");
        let bin = weir_bin();
        let child = Command::new(&bin)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--pg-addr")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--kafka-addr", &kafka_addr, "--http-addr", &http_addr])
            .arg("--barrier-interval-ms")
            .arg(self.barrier_interval_ms.to_string())
            // WEIR_TEST_STORE=sled|fjall runs a suite (or a benchmark) on that store backend.
            .args(
                std::env::var("WEIR_TEST_STORE")
                    .map(|s| vec!["--store".to_string(), s])
                    .unwrap_or_default(),
            )
            // WEIR_TEST_WORKERS=N runs a suite with N workers per view (default: the cores).
            .args(
                self.workers
                    .map(|n| n.to_string())
                    .or_else(|| std::env::var("WEIR_TEST_WORKERS").ok())
                    .map(|n| vec!["--workers".to_string(), n])
                    .unwrap_or_default(),
            )
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start weir ({}): {e}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("{status}: {}", self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "weir did not start; log: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `host:port` of the Kafka listener.
    pub fn bootstrap(&self) -> String {
        format!(
            "127.0.0.1:{}",
            self.kafka_port.expect("server started with Kafka")
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        let conn_str = format!("host=127.0.0.1 port={} user=weir dbname=weir", self.port);
        let (client, connection) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
            .await
            .expect("connect to weir");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// kcat producing every line of `file` as one record to `topic`, acknowledged by all
    /// (acks=all), batched by the client: how the benchmarks push records in over Kafka.
    pub fn kcat_producer(&self, topic: &str, file: &Path) -> Command {
        let mut kcat = Command::new("kcat");
        kcat.args(["-P", "-b", &self.bootstrap(), "-t", topic, "-l"])
            .args([
                "-X",
                "acks=all",
                "-X",
                "linger.ms=5",
                "-X",
                "batch.size=1000000",
            ])
            .args(["-X", "queue.buffering.max.messages=1000000"])
            .arg(file);
        kcat
    }

    /// The server's process id (benchmarks read its CPU time and memory from /proc).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// SIGKILL: no shutdown path runs, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again over the same data directory.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for WeirServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Rows of a simple-protocol query as text (NULL as "NULL"), sorted.
pub async fn rows(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
    let mut out = Vec::new();
    for message in client.simple_query(sql).await? {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            out.push(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            );
        }
    }
    out.sort();
    Ok(out)
}

/// A deterministic pseudo-random sequence, for tests and benchmarks that need varied but
/// repeatable data (no dependency needed).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}
