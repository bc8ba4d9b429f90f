//! Counters of the listeners (Postgres, Kafka, HTTP): connections and requests, kept by each
//! listener with relaxed atomics (a few nanoseconds per request) and read by `/metrics`; and the
//! latest refused log-ins, which `weir_login_failures` lists.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// How many refused log-ins `weir_login_failures` keeps (the oldest go first).
pub const LOGIN_FAILURES_LISTED: usize = 1000;
/// Longest user name a listed failure keeps, in characters (Postgres's NAMEDATALEN - 1): the
/// name is whatever the client sent.
const LOGIN_FAILURE_USER_CHARS_MAX: usize = 63;

/// One refused log-in.
#[derive(Debug, Clone)]
pub struct LoginFailure {
    pub listener: &'static str,
    /// The role the client asked for (it may not exist).
    pub user: String,
    pub client_addr: String,
    pub at: SystemTime,
    /// Why, as the log says it (the client is told less, see `server::auth`).
    pub reason: String,
}

/// One listener's counters.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections that have ended (open = total − closed).
    pub connections_closed: AtomicU64,
    /// Requests handled: statements (Postgres), requests (Kafka, HTTP).
    pub requests_total: AtomicU64,
    /// Requests that failed: an error response to the client.
    pub errors_total: AtomicU64,
    /// Log-ins refused for a wrong password (or an unknown role, which looks the same).
    pub auth_failures_total: AtomicU64,
}

impl ListenerCounters {
    pub fn connection_opened(&self) {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request, and an error when `failed`.
    pub fn request(&self, failed: bool) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn auth_failed(&self) {
        self.auth_failures_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        let closed = self.connections_closed.load(Ordering::Relaxed);
        self.connections_total
            .load(Ordering::Relaxed)
            .saturating_sub(closed)
    }
}

/// Every listener's counters, by the listener's name in metrics labels.
#[derive(Debug, Default)]
pub struct Listeners {
    pub pg: ListenerCounters,
    pub kafka: ListenerCounters,
    pub http: ListenerCounters,
    login_failures: Mutex<VecDeque<LoginFailure>>,
}

impl Listeners {
    /// Counts a refused log-in on `listener` ("pg" or "kafka") and keeps it for
    /// `weir_login_failures`.
    pub fn login_failed(
        &self,
        listener: &'static str,
        user: &str,
        client_addr: String,
        reason: String,
    ) {
        let counters = match listener {
            "kafka" => &self.kafka,
            "http" => &self.http,
            _ => &self.pg,
        };
        counters.auth_failed();
        let mut failures = self.login_failures.lock().expect("login failures lock");
        if failures.len() == LOGIN_FAILURES_LISTED {
            failures.pop_front();
        }
        failures.push_back(LoginFailure {
            listener,
            user: user.chars().take(LOGIN_FAILURE_USER_CHARS_MAX).collect(),
            client_addr,
            at: SystemTime::now(),
            reason,
        });
    }

    /// The kept refused log-ins, oldest first.
    pub fn login_failures(&self) -> Vec<LoginFailure> {
        self.login_failures
            .lock()
            .expect("login failures lock")
            .iter()
            .cloned()
            .collect()
    }

    /// `(label, counters)` for each listener.
    pub fn all(&self) -> [(&'static str, &ListenerCounters); 3] {
        [
            ("pg", &self.pg),
            ("kafka", &self.kafka),
            ("http", &self.http),
        ]
    }
}
