//! A real Weir server for tests: the built `weir` binary on loopback ports it picks itself
//! (`127.0.0.1:0`, read back from its log, so no two servers can ever race for one port and a
//! test never talks to another test's server), with its own data directory, stopped (or
//! killed) by the test. The binary is the one named by the
//! environment variable `WEIR_TEST_BIN` when it is set (test.sh sets it to the release build, so
//! the end-to-end suites test the optimized binary users run), else the one cargo built with the
//! tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for a server to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a start looks whether the server has opened its listeners yet.
const STARTUP_POLL: Duration = Duration::from_millis(10);

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

/// The port of the listener the server's log line `<name> listener on 127.0.0.1:<port>`
/// names (the line may carry terminal colour codes around it).
fn listener_port(log: &str, name: &str) -> Option<u16> {
    let marker = format!("{name} listener on 127.0.0.1:");
    let at = log.find(&marker)? + marker.len();
    let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl WeirServer {
    /// Starts a server on a fresh port over `data_dir` and waits until it accepts connections.
    pub async fn start(data_dir: &Path, barrier_interval_ms: u64) -> WeirServer {
        Self::start_with(data_dir, barrier_interval_ms, false, None).await
    }

    /// Like `start`, with the HTTP listener on a free port too.
    pub async fn start_with_http(data_dir: &Path, barrier_interval_ms: u64) -> WeirServer {
        Self::start_with_http_and_args(data_dir, barrier_interval_ms, &[]).await
    }

    /// Like `start_with_http`, with more flags (kept for restarts).
    pub async fn start_with_http_and_args(
        data_dir: &Path,
        barrier_interval_ms: u64,
        args: &[&str],
    ) -> WeirServer {
        let mut server = Self::new(data_dir, barrier_interval_ms, false, None);
        server.http_port = Some(0);
        server.args = args.iter().map(|a| a.to_string()).collect();
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
        Self::start_with_flags(data_dir, barrier_interval_ms, false, args).await
    }

    /// Like `start`, with the Kafka listener on a free port too.
    pub async fn start_with_kafka(data_dir: &Path, barrier_interval_ms: u64) -> WeirServer {
        Self::start_with(data_dir, barrier_interval_ms, true, None).await
    }

    /// Like `start_with_kafka`, with more flags (kept for restarts).
    pub async fn start_with_kafka_and_args(
        data_dir: &Path,
        barrier_interval_ms: u64,
        args: &[&str],
    ) -> WeirServer {
        Self::start_with_flags(data_dir, barrier_interval_ms, true, args).await
    }

    async fn start_with_flags(
        data_dir: &Path,
        barrier_interval_ms: u64,
        kafka: bool,
        args: &[&str],
    ) -> WeirServer {
        let mut server = Self::new(data_dir, barrier_interval_ms, kafka, None);
        server.args = args.iter().map(|a| a.to_string()).collect();
        server.spawn().await;
        server
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

    /// Starts the server and waits until its Postgres listener is open (the Kafka and HTTP
    /// listeners open before it).
    async fn spawn(&mut self) {
        if let Err(log) = self.try_spawn().await {
            panic!("weir exited at start-up; log: {log}");
        }
    }

    /// Starts the server and kills it `after` later, whether or not it has opened its
    /// listeners yet: a crash during recovery.
    pub async fn start_and_kill_after(&mut self, after: Duration) {
        self.kill();
        self.launch();
        tokio::time::sleep(after).await;
        self.kill();
    }

    /// One start: Err(the log) when the process exits before it opens its listeners.
    async fn try_spawn(&mut self) -> Result<(), String> {
        let log_start = self.launch();
        let log_path = self.data_dir.with_extension("log");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let log = std::fs::read(&log_path).unwrap_or_default();
            let new = String::from_utf8_lossy(log.get(log_start..).unwrap_or_default());
            if let Some(port) = listener_port(&new, "postgres") {
                self.port = port;
                if self.kafka_port.is_some() {
                    self.kafka_port = Some(listener_port(&new, "kafka").expect("kafka port"));
                }
                if self.http_port.is_some() {
                    self.http_port = Some(listener_port(&new, "http").expect("http port"));
                }
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
            tokio::time::sleep(STARTUP_POLL).await;
        }
    }

    /// Starts the process; returns where this start's lines begin in the log.
    fn launch(&mut self) -> usize {
        let on = |wanted: bool| if wanted { "127.0.0.1:0" } else { "off" };
        let (kafka_addr, http_addr) = (on(self.kafka_port.is_some()), on(self.http_port.is_some()));
        let log_path = self.data_dir.with_extension("log");
        // This start's lines are those after what earlier starts wrote.
        let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open server log");
        let bin = weir_bin();
        let child = Command::new(&bin)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--pg-addr", "127.0.0.1:0"])
            .args(["--kafka-addr", kafka_addr, "--http-addr", http_addr])
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
            // WEIR_TEST_STATE_CACHE_MB=M keeps at most M MiB of operator state in memory (0:
            // every group is forgotten after each epoch and read back from the store).
            .args(
                std::env::var("WEIR_TEST_STATE_CACHE_MB")
                    .map(|m| vec!["--state-cache-mb".to_string(), m])
                    .unwrap_or_default(),
            )
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start weir ({}): {e}", bin.display()));
        self.child = Some(child);
        log_start
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

    /// A session as `user` (with `password` when the server asks for one).
    pub async fn connect_as(
        &self,
        user: &str,
        password: Option<&str>,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut conn = format!("host=127.0.0.1 port={} user={user} dbname=weir", self.port);
        if let Some(p) = password {
            conn.push_str(&format!(" password='{p}'"));
        }
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
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

    /// Like `restart`; Err(the log) when the server exits before it listens.
    pub async fn try_restart(&mut self) -> Result<(), String> {
        self.kill();
        self.try_spawn().await
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

/// Bytes the files under `dir` take.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`); `pid` may be `self`.
pub fn status_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// Starts a new high-water mark of resident memory (`VmHWM`) for process `pid` (or `self`).
pub fn reset_peak_rss(pid: &str) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

/// Sends `text` to `statement` (a `COPY ... FROM STDIN`) in one piece.
pub async fn copy_text(client: &tokio_postgres::Client, statement: &str, text: String) {
    use futures::SinkExt;
    let sink = client.copy_in(statement).await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(text)).await.unwrap();
    sink.finish().await.unwrap();
}

/// A server error as `SQLSTATE: message` (what tests compare).
pub fn sql_error(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| format!("{}: {}", d.code().code(), d.message()))
        .unwrap_or_else(|| format!("not a server error: {e}"))
}

/// The first column of every row `sql` returns, as text, in the order the server sent them
/// (`rows` sorts; this does not).
pub async fn first_column(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for message in client.simple_query(sql).await.unwrap() {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            out.push(row.get(0).unwrap_or("NULL").to_string());
        }
    }
    out
}
