//! Counters of the listeners (Postgres, Kafka, HTTP): connections and requests, kept by each
//! listener with relaxed atomics (a few nanoseconds per request) and read by `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

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

    pub fn auth_failed(&self) {
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
}

impl Listeners {
    /// `(label, counters)` for each listener.
    pub fn all(&self) -> [(&'static str, &ListenerCounters); 3] {
        [
            ("pg", &self.pg),
            ("kafka", &self.kafka),
            ("http", &self.http),
        ]
    }
}
