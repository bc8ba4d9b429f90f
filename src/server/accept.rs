//! Accepting connections without spinning when the process runs out of descriptors.
//!
//! `accept()` fails with EMFILE (or ENFILE, ENOBUFS, ENOMEM) while the process cannot open
//! another descriptor; the waiting connection stays queued, so the listener is ready again at
//! once and a plain retry loop spins at full CPU, logging each failure (one run wrote 10.5 GB
//! of log in 3 minutes). [`Acceptor`] waits between attempts after such a failure, doubling
//! the wait up to [`ACCEPT_BACKOFF_MAX`], and logs at most one warning per
//! [`ACCEPT_LOG_INTERVAL`], counting the failures it did not log. An error that only ends the
//! one waiting connection (the client gave up) is retried at once.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// First wait after an accept failure that is not the client's.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait between two accept attempts while they keep failing.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Least time between two "accept failed" warnings of one listener.
pub const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A listener's accept loop state: its backoff and the rate limit of its warnings.
pub struct Acceptor {
    listener: TcpListener,
    /// Which listener, in the warnings ("postgres", "kafka").
    name: &'static str,
    backoff: Duration,
    last_warning: Option<Instant>,
    /// Failures since the last warning that were not logged.
    unlogged: u64,
}

impl Acceptor {
    pub fn new(listener: TcpListener, name: &'static str) -> Acceptor {
        Acceptor {
            listener,
            name,
            backoff: ACCEPT_BACKOFF_MIN,
            last_warning: None,
            unlogged: 0,
        }
    }

    /// The next connection. Never fails: failures are waited out (see the module doc).
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff = ACCEPT_BACKOFF_MIN;
                    return accepted;
                }
                Err(e) if client_gone(e.kind()) => {
                    tracing::debug!(listener = self.name, "connection gone before accept: {e}");
                }
                Err(e) => {
                    self.warn(&e);
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }

    fn warn(&mut self, e: &std::io::Error) {
        let due = self
            .last_warning
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_INTERVAL);
        if !due {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(
            listener = self.name,
            failures_not_logged = self.unlogged,
            retry_in_ms = self.backoff.as_millis() as u64,
            "accept failed: {e}"
        );
        self.last_warning = Some(Instant::now());
        self.unlogged = 0;
    }
}

/// Whether an accept error ended only the connection being accepted.
fn client_gone(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    )
}
