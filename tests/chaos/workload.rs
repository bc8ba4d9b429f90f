//! What the harness does to the server in a cycle, and what it knows was acknowledged.
//!
//! A cycle's plan is drawn from the seed before it runs: batches of source records (INSERT or
//! COPY), records produced over the Kafka protocol (acks=all, idempotent or not; when the test
//! virtualenv's Python is there), writes to the keyed table, sometimes a view created or
//! dropped, FLUSHes. Three sessions and a producer run it at once until the plan ends or the
//! server dies. Each write is marked in
//! flight before it is sent and acknowledged when its answer comes; what was in flight at the
//! kill may or may not have happened, and the checks after the restart settle it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::SinkExt;
use std::io::{BufRead, BufReader, Write};
use tokio::sync::Notify;
use tokio_postgres::Client;

use super::Rng;

/// Keys of the source's records (`k`), and ids of the table's rows.
const EVENT_KEYS: u64 = 50;
const ACCOUNT_IDS: u64 = 200;
/// Views made during the run that live at once, beside the fixed ones.
const CHURN_VIEWS_MAX: usize = 4;

/// A view the checks compare with a batch recompute.
#[derive(Debug, Clone)]
pub struct View {
    pub name: String,
    pub query: String,
    /// The same rows computed from the source and the table alone (the view's query, unless it
    /// reads another view).
    pub recompute: String,
}

impl View {
    fn new(name: &str, query: &str) -> View {
        View {
            name: name.into(),
            query: query.into(),
            recompute: query.into(),
        }
    }
}

/// The views made at set-up, which live through every cycle.
pub fn fixed_views() -> Vec<View> {
    let per_key = "SELECT k, count(*) AS n, sum(v) AS total, min(v) AS lo, max(v) AS hi FROM events GROUP BY k";
    vec![
        View::new("per_key", per_key),
        View::new(
            "balances",
            "SELECT count(*) AS accounts, sum(balance) AS total FROM accounts",
        ),
        View::new(
            "joined",
            "SELECT e.id, e.v + a.balance AS score FROM events e JOIN accounts a ON e.k = a.id",
        ),
        View::new(
            "multiples",
            "SELECT id, v * 2 AS w FROM events WHERE v % 3 = 0",
        ),
        View::new(
            "rich",
            "SELECT id, balance FROM accounts WHERE balance > 500",
        ),
        View::new(
            "account_extremes",
            "SELECT id % 10 AS g, min(balance) AS lo, max(balance) AS hi, count(*) AS n FROM accounts GROUP BY id % 10",
        ),
        View {
            name: "buckets".into(),
            query: "SELECT n % 5 AS bucket, count(*) AS keys, sum(total) AS total FROM per_key GROUP BY n % 5".into(),
            recompute: format!(
                "SELECT n % 5 AS bucket, count(*) AS keys, sum(total) AS total FROM ({per_key}) AS p GROUP BY n % 5"
            ),
        },
    ]
}

/// The sink of `per_key`, and the source that reads its topic back.
pub const SINK_SETUP: [&str; 2] = [
    "CREATE SINK per_key_sink FROM per_key INTO TOPIC per_key_out FORMAT JSON",
    "CREATE SOURCE per_key_out_rows (k BIGINT, n BIGINT, total BIGINT, lo BIGINT, hi BIGINT, op TEXT) FROM TOPIC per_key_out FORMAT JSON",
];

/// Where in the server's work a cycle's SIGKILL lands.
#[derive(Debug, Clone, Copy)]
pub enum Kill {
    /// While records and table writes stream in.
    MidWrite,
    /// While FLUSHes (epoch commits) are asked for again and again.
    MidFlush,
    /// While a new view catches up with the history (its backfill).
    MidBackfill,
    /// While a view is dropped.
    MidDrop,
    /// Just after a FLUSH returned: every write acknowledged and committed.
    AfterCommit,
}

impl Kill {
    pub fn pick(rng: &mut Rng) -> Kill {
        match rng.below(10) {
            0..=2 => Kill::MidWrite,
            3..=4 => Kill::MidFlush,
            5..=6 => Kill::MidBackfill,
            7 => Kill::MidDrop,
            _ => Kill::AfterCommit,
        }
    }

    /// How long after the cycle starts the server is killed; None: when the plan is done.
    pub fn delay_ms(self, rng: &mut Rng) -> Option<u64> {
        match self {
            Kill::MidWrite => Some(10 + rng.below(400)),
            Kill::MidFlush => Some(10 + rng.below(300)),
            Kill::MidBackfill => Some(rng.below(500)),
            Kill::MidDrop => Some(rng.below(150)),
            Kill::AfterCommit => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum EventBatch {
    Insert(Vec<[i64; 3]>),
    Copy(Vec<[i64; 3]>),
}

impl EventBatch {
    pub fn rows(&self) -> &[[i64; 3]] {
        match self {
            EventBatch::Insert(r) | EventBatch::Copy(r) => r,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum AccountOp {
    Insert(i64, i64),
    Update(i64, i64),
    Delete(i64),
}

impl AccountOp {
    pub fn apply(self, accounts: &mut BTreeMap<i64, i64>) {
        match self {
            AccountOp::Insert(id, b) | AccountOp::Update(id, b) => {
                accounts.insert(id, b);
            }
            AccountOp::Delete(id) => {
                accounts.remove(&id);
            }
        }
    }

    fn sql(self) -> String {
        match self {
            AccountOp::Insert(id, b) => format!("INSERT INTO accounts VALUES ({id}, {b})"),
            AccountOp::Update(id, b) => {
                format!("UPDATE accounts SET balance = {b} WHERE id = {id}")
            }
            AccountOp::Delete(id) => format!("DELETE FROM accounts WHERE id = {id}"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Ddl {
    Create(View),
    Drop(String),
}

/// Source records for a Kafka producer: the rows, and whether it is idempotent (else it does not
/// retry, so nothing it sends can land twice).
pub struct KafkaBatch {
    rows: Vec<[i64; 3]>,
    idempotent: bool,
}

/// A cycle's work, drawn before it runs.
pub struct Plan {
    events: Vec<EventBatch>,
    kafka: Option<KafkaBatch>,
    accounts: Vec<AccountOp>,
    ddl: Option<Ddl>,
    /// FLUSH again and again while the writes run.
    flush_often: bool,
    /// FLUSH once the writes are done (and answer only then).
    final_flush: bool,
}

/// What a cycle's sessions saw answered, and what was in flight when the server died.
#[derive(Default, Debug)]
pub struct Outcome {
    pub events: Vec<i64>,
    pub maybe_events: Vec<i64>,
    /// Sent by the Kafka producer and not acknowledged; how many it had acknowledged.
    pub maybe_produced: Vec<i64>,
    pub produced: u64,
    pub accounts: Vec<AccountOp>,
    pub maybe_account: Option<AccountOp>,
    pub ddl: Option<Ddl>,
    pub maybe_ddl: Option<Ddl>,
    /// Errors other than the lost connection: each one is a failure.
    pub errors: Vec<String>,
}

/// What the harness knows of the server's data, across cycles.
#[derive(Default)]
pub struct Workload {
    next_event: i64,
    next_view: u32,
    /// Acknowledged source records (by id), and those in flight at the last kill.
    pub events: BTreeSet<i64>,
    pub maybe_events: Vec<i64>,
    /// The table as acknowledged, and the write in flight at the last kill.
    pub accounts: BTreeMap<i64, i64>,
    pub maybe_account: Option<AccountOp>,
    /// Views made during the cycles that exist, and the CREATE or DROP in flight.
    pub views: BTreeMap<String, View>,
    pub maybe_ddl: Option<Ddl>,
    /// Errors the server answered with in the last cycle (each one a failure).
    pub errors: Vec<String>,
    pub kills: u64,
    /// Records acknowledged to the Kafka producer, of all those acknowledged.
    pub produced: u64,
    /// Records acknowledged in the data directories of earlier generations.
    pub acknowledged_before: u64,
}

impl Workload {
    pub async fn setup(&mut self, client: &Client) -> Result<(), String> {
        let mut statements = vec![
            "CREATE TOPIC events_log WITH (partitions = 2, segment_bytes = 65536)".to_string(),
            "CREATE SOURCE events (id BIGINT, k BIGINT, v BIGINT) FROM TOPIC events_log FORMAT JSON"
                .to_string(),
            "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT)".to_string(),
        ];
        for view in fixed_views() {
            statements.push(format!(
                "CREATE MATERIALIZED VIEW {} AS {}",
                view.name, view.query
            ));
        }
        statements.extend(SINK_SETUP.iter().map(|s| s.to_string()));
        for sql in statements {
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| format!("set-up {sql}: {}", describe(&e)))?;
        }
        Ok(())
    }

    fn event_rows(&mut self, rng: &mut Rng, n: u64) -> Vec<[i64; 3]> {
        (0..n)
            .map(|_| {
                self.next_event += 1;
                let k = rng.below(EVENT_KEYS) as i64;
                let v = rng.below(1000) as i64 - 500;
                [self.next_event, k, v]
            })
            .collect()
    }

    /// `kafka`: whether a Kafka producer can run (the test virtualenv's Python is there).
    pub fn plan_cycle(&mut self, rng: &mut Rng, kill: Kill, kafka: bool) -> Plan {
        let mut events = Vec::new();
        for _ in 0..5 + rng.below(20) {
            let copy = rng.chance(30);
            let n = if copy {
                50 + rng.below(250)
            } else {
                1 + rng.below(20)
            };
            let rows = self.event_rows(rng, n);
            events.push(if copy {
                EventBatch::Copy(rows)
            } else {
                EventBatch::Insert(rows)
            });
        }
        // Table writes drawn against the table as it will be when each runs (they run in order).
        let mut table = self.accounts.clone();
        let mut accounts = Vec::new();
        for _ in 0..10 + rng.below(40) {
            let id = rng.below(ACCOUNT_IDS) as i64;
            let balance = rng.below(1000) as i64;
            let op = match table.contains_key(&id) {
                false => AccountOp::Insert(id, balance),
                true if rng.chance(30) => AccountOp::Delete(id),
                true => AccountOp::Update(id, balance),
            };
            op.apply(&mut table);
            accounts.push(op);
        }
        // A view is made (and killed mid-backfill), or one made before is dropped; with
        // CHURN_VIEWS_MAX of them alive, a make becomes a drop, so the checks stay bounded.
        let ddl = match kill {
            Kill::MidBackfill | Kill::MidDrop => Some(self.create_or_drop(rng, kill)),
            _ if rng.chance(10) => Some(self.create_or_drop(rng, Kill::MidBackfill)),
            _ => None,
        };
        let produced = 50 + rng.below(600);
        let kafka = (kafka && rng.chance(60)).then(|| KafkaBatch {
            rows: self.event_rows(rng, produced),
            idempotent: rng.chance(50),
        });
        Plan {
            events,
            kafka,
            accounts,
            ddl,
            flush_often: matches!(kill, Kill::MidFlush) || rng.chance(20),
            final_flush: matches!(kill, Kill::AfterCommit) || rng.chance(30),
        }
    }

    fn create_or_drop(&mut self, rng: &mut Rng, kill: Kill) -> Ddl {
        let create = match kill {
            Kill::MidDrop => self.views.is_empty(),
            _ => self.views.len() < CHURN_VIEWS_MAX,
        };
        if create {
            return Ddl::Create(self.new_view(rng));
        }
        let pick = rng.below(self.views.len() as u64) as usize;
        let name = self.views.keys().nth(pick).expect("a view to drop");
        Ddl::Drop(name.clone())
    }

    fn new_view(&mut self, rng: &mut Rng) -> View {
        self.next_view += 1;
        let name = format!("churn_{}", self.next_view);
        let query = match rng.below(4) {
            0 => format!(
                "SELECT k % {m} AS g, count(*) AS n, sum(v) AS total FROM events GROUP BY k % {m}",
                m = 2 + rng.below(7)
            ),
            1 => format!("SELECT id, v FROM events WHERE k = {}", rng.below(EVENT_KEYS)),
            2 => "SELECT a.id, count(*) AS n, max(e.v) AS top FROM events e JOIN accounts a ON e.k = a.id GROUP BY a.id".to_string(),
            _ => "SELECT balance % 7 AS r, count(*) AS n FROM accounts GROUP BY balance % 7".to_string(),
        };
        View::new(&name, &query)
    }

    /// Takes in what a cycle's sessions saw answered.
    pub fn absorb(&mut self, outcome: Outcome) {
        self.kills += 1;
        self.produced += outcome.produced;
        self.events.extend(outcome.events);
        self.maybe_events = outcome.maybe_events;
        self.maybe_events.extend(outcome.maybe_produced);
        for op in outcome.accounts {
            op.apply(&mut self.accounts);
        }
        self.maybe_account = outcome.maybe_account;
        match outcome.ddl {
            Some(Ddl::Create(view)) => {
                self.views.insert(view.name.clone(), view);
            }
            Some(Ddl::Drop(name)) => {
                self.views.remove(&name);
            }
            None => {}
        }
        self.maybe_ddl = outcome.maybe_ddl;
        self.errors = outcome.errors;
    }

    /// Forgets the data of the directory a new generation replaces, keeping the run's counts
    /// (and the id and name counters, so no record or view is ever reused).
    pub fn next_generation(&mut self) {
        let fresh = Workload {
            next_event: self.next_event,
            next_view: self.next_view,
            kills: self.kills,
            produced: self.produced,
            acknowledged_before: self.acknowledged_before + self.events.len() as u64,
            ..Workload::default()
        };
        *self = fresh;
    }

    pub fn totals(&self) -> String {
        format!(
            "{} kills, {} acknowledged records ({} over Kafka), {} table rows, {} views made during the run",
            self.kills,
            self.acknowledged_before + self.events.len() as u64,
            self.produced,
            self.accounts.len(),
            self.next_view
        )
    }
}

/// Where the harness reaches the server: its Postgres port, its Kafka bootstrap address and
/// the test virtualenv's Python (for the producer), and the signal that it was killed.
pub struct Target {
    pub port: u16,
    pub bootstrap: String,
    pub python: Option<String>,
    pub killed: Arc<Notify>,
}

/// Runs a cycle's plan against the server until it is done or the server dies.
pub async fn drive(target: Target, plan: Plan) -> Outcome {
    let port = target.port;
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let (Ok(events), Ok(accounts), Ok(control)) = (
        connect(port).await,
        connect(port).await,
        connect(port).await,
    ) else {
        return Outcome::default();
    };
    let writers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let event_task = tokio::spawn(write_events(events, plan.events, outcome.clone()));
    let produce_task = match (plan.kafka, &target.python) {
        (Some(batch), Some(python)) => Some(tokio::spawn(produce(
            python.clone(),
            target.bootstrap.clone(),
            batch,
            target.killed.clone(),
            outcome.clone(),
        ))),
        _ => None,
    };
    let account_task = tokio::spawn(write_accounts(accounts, plan.accounts, outcome.clone()));
    let control_task = {
        let outcome = outcome.clone();
        let done = writers_done.clone();
        tokio::spawn(async move {
            if let Some(ddl) = plan.ddl {
                run_ddl(&control, ddl, &outcome).await;
            }
            while plan.flush_often && !done.load(std::sync::atomic::Ordering::Relaxed) {
                if !answered(&control, "FLUSH", &outcome).await {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Some(control)
        })
    };
    let _ = event_task.await;
    let _ = account_task.await;
    if let Some(task) = produce_task {
        let _ = task.await;
    }
    writers_done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Ok(Some(control)) = control_task.await
        && plan.final_flush
    {
        answered(&control, "FLUSH", &outcome).await;
    }
    std::mem::take(&mut *outcome.lock().expect("outcome lock"))
}

async fn write_events(client: Client, batches: Vec<EventBatch>, outcome: Arc<Mutex<Outcome>>) {
    for batch in batches {
        let ids: Vec<i64> = batch.rows().iter().map(|r| r[0]).collect();
        outcome.lock().expect("outcome lock").maybe_events = ids.clone();
        let result = match &batch {
            EventBatch::Insert(rows) => {
                let values: Vec<String> = rows
                    .iter()
                    .map(|[id, k, v]| format!("({id}, {k}, {v})"))
                    .collect();
                client
                    .batch_execute(&format!("INSERT INTO events VALUES {}", values.join(", ")))
                    .await
            }
            EventBatch::Copy(rows) => copy(&client, rows).await,
        };
        let mut out = outcome.lock().expect("outcome lock");
        match result {
            Ok(()) => {
                out.maybe_events.clear();
                out.events.extend(ids);
            }
            Err(e) => {
                note_error(&mut out, "INSERT/COPY into events", &e);
                return;
            }
        }
    }
}

/// Produces `batch` over the Kafka protocol (tests/kafka/clients.py, confluent-kafka) until all
/// of it is acknowledged or the server is killed, and then stops the producer: a record sent
/// and not acknowledged is one that may or may not be there.
async fn produce(
    python: String,
    bootstrap: String,
    batch: KafkaBatch,
    killed: Arc<Notify>,
    outcome: Arc<Mutex<Outcome>>,
) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/clients.py");
    let idempotent = if batch.idempotent { "1" } else { "0" };
    let spawned = std::process::Command::new(python)
        .args([
            script,
            "produce-lines",
            &bootstrap,
            "events_log",
            idempotent,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut producer) = spawned else {
        outcome
            .lock()
            .expect("outcome lock")
            .errors
            .push("cannot start the Kafka producer".into());
        return;
    };
    let mut input = String::new();
    for [id, k, v] in &batch.rows {
        input.push_str(&format!("{id} {k} {v}\n"));
    }
    let mut stdin = producer.stdin.take().expect("producer stdin");
    let stdout = producer.stdout.take().expect("producer stdout");
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    // Acknowledgements are read until the producer's output ends: when it is done, or when it
    // is stopped after the server's kill (what it printed before is acknowledged too).
    let producer = Arc::new(Mutex::new(producer));
    let reader = {
        let outcome = outcome.clone();
        let mut sent: BTreeSet<i64> = batch.rows.iter().map(|r| r[0]).collect();
        tokio::task::spawn_blocking(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(id) = line.trim().parse::<i64>()
                    && sent.remove(&id)
                {
                    let mut out = outcome.lock().expect("outcome lock");
                    out.events.push(id);
                    out.produced += 1;
                }
            }
            outcome
                .lock()
                .expect("outcome lock")
                .maybe_produced
                .extend(sent);
        })
    };
    let stop = {
        let producer = producer.clone();
        tokio::spawn(async move {
            killed.notified().await;
            let _ = producer.lock().expect("producer lock").kill();
        })
    };
    let _ = reader.await;
    stop.abort();
    let mut producer = producer.lock().expect("producer lock");
    let _ = producer.kill();
    let _ = producer.wait();
}

async fn copy(client: &Client, rows: &[[i64; 3]]) -> Result<(), tokio_postgres::Error> {
    let mut text = String::new();
    for [id, k, v] in rows {
        text.push_str(&format!("{id}\t{k}\t{v}\n"));
    }
    let sink = client.copy_in("COPY events FROM STDIN").await?;
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(text)).await?;
    sink.finish().await.map(|_| ())
}

async fn write_accounts(client: Client, ops: Vec<AccountOp>, outcome: Arc<Mutex<Outcome>>) {
    for op in ops {
        outcome.lock().expect("outcome lock").maybe_account = Some(op);
        let result = client.batch_execute(&op.sql()).await;
        let mut out = outcome.lock().expect("outcome lock");
        match result {
            Ok(()) => {
                out.maybe_account = None;
                out.accounts.push(op);
            }
            Err(e) => {
                note_error(&mut out, &op.sql(), &e);
                return;
            }
        }
    }
}

async fn run_ddl(client: &Client, ddl: Ddl, outcome: &Mutex<Outcome>) {
    let sql = match &ddl {
        Ddl::Create(view) => format!("CREATE MATERIALIZED VIEW {} AS {}", view.name, view.query),
        Ddl::Drop(name) => format!("DROP MATERIALIZED VIEW {name}"),
    };
    outcome.lock().expect("outcome lock").maybe_ddl = Some(ddl.clone());
    let result = client.batch_execute(&sql).await;
    let mut out = outcome.lock().expect("outcome lock");
    match result {
        Ok(()) => {
            out.maybe_ddl = None;
            out.ddl = Some(ddl);
        }
        Err(e) => note_error(&mut out, &sql, &e),
    }
}

/// Runs `sql`; false when the server is gone (or refused it, which is noted as a failure).
async fn answered(client: &Client, sql: &str, outcome: &Mutex<Outcome>) -> bool {
    match client.batch_execute(sql).await {
        Ok(()) => true,
        Err(e) => {
            note_error(&mut outcome.lock().expect("outcome lock"), sql, &e);
            false
        }
    }
}

/// A statement that fails because the connection died is what a kill does; any other error
/// (the server answered with one) is a failure of the run.
fn note_error(out: &mut Outcome, what: &str, e: &tokio_postgres::Error) {
    if e.as_db_error().is_some() {
        out.errors.push(format!("{what}: {}", describe(e)));
    }
}

/// One session on `port`; its connection runs on a task of its own.
async fn connect(port: u16) -> Result<Client, tokio_postgres::Error> {
    let conn = format!("host=127.0.0.1 port={port} user=weir dbname=weir");
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// An error with the server's SQLSTATE and message when it sent one.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}
