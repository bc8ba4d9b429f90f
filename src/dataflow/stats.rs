//! What the epoch coordinator reports about its commits, for `/metrics` (src/http/metrics.rs):
//! the last committed epoch, how long commits take, and per view the epoch and wall-clock time
//! of its last commit and the last time it was known to include all of its input.
//!
//! The coordinator writes these once per epoch (not per row), so they cost nothing on the data
//! path; readers take a snapshot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Upper bounds (seconds) of the epoch commit time histogram's buckets; the last bucket
/// (+Inf) is implicit.
pub const COMMIT_SECONDS_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A fixed-bucket histogram of durations, updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at most `COMMIT_SECONDS_BUCKETS[i]` (not cumulative; +Inf is `count`).
    buckets: [AtomicU64; COMMIT_SECONDS_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`], buckets cumulative as Prometheus wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at most that)`, ascending.
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = COMMIT_SECONDS_BUCKETS.iter().position(|&b| seconds <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let cumulative = COMMIT_SECONDS_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(&bound, n)| {
                running += n.load(Ordering::Relaxed);
                (bound, running)
            })
            .collect();
        // Read after the buckets: an observation racing with the snapshot is in `count` no
        // later than in its bucket, so the +Inf bucket never falls below the last one.
        let count = self.count.load(Ordering::Relaxed).max(running);
        HistogramSnapshot {
            cumulative,
            count,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// One view's last commit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewEpoch {
    /// The last epoch that committed the view's changes.
    pub epoch: u64,
    /// When that commit happened.
    pub committed_at: SystemTime,
    /// The latest moment the view was known to include every record of its inputs: its last
    /// commit, or a later barrier that found no new records anywhere.
    pub current_at: SystemTime,
}

/// The coordinator's commit statistics (shared: the coordinator writes, `/metrics` reads).
#[derive(Debug, Default)]
pub struct EpochStats {
    /// The last epoch committed (0: none since start).
    pub committed_epoch: AtomicU64,
    pub commits_total: AtomicU64,
    /// Store keys written by epoch commits (rows, state, offsets): the epochs' size.
    pub commit_keys_total: AtomicU64,
    /// Wall-clock time of each epoch's store commit.
    pub commit_seconds: Histogram,
    /// By view id; a view is here once its first epoch has committed.
    views: Mutex<HashMap<u64, ViewEpoch>>,
}

pub type SharedEpochStats = Arc<EpochStats>;

impl EpochStats {
    /// Epoch `epoch` committed `keys` store keys in `elapsed`, with the changes of `views`.
    pub fn committed(
        &self,
        epoch: u64,
        keys: usize,
        elapsed: Duration,
        views: impl IntoIterator<Item = u64>,
    ) {
        self.committed_epoch.store(epoch, Ordering::Relaxed);
        self.commits_total.fetch_add(1, Ordering::Relaxed);
        self.commit_keys_total
            .fetch_add(keys as u64, Ordering::Relaxed);
        self.commit_seconds.observe(elapsed);
        let now = SystemTime::now();
        let mut map = self.views.lock().expect("epoch stats lock");
        for id in views {
            map.insert(
                id,
                ViewEpoch {
                    epoch,
                    committed_at: now,
                    current_at: now,
                },
            );
        }
    }

    /// A barrier found nothing new to read: `views` are current as of now.
    pub fn current(&self, views: impl IntoIterator<Item = u64>) {
        let now = SystemTime::now();
        let mut map = self.views.lock().expect("epoch stats lock");
        for id in views {
            if let Some(v) = map.get_mut(&id) {
                v.current_at = now;
            }
        }
    }

    pub fn forget(&self, view_id: u64) {
        self.views
            .lock()
            .expect("epoch stats lock")
            .remove(&view_id);
    }

    pub fn view(&self, view_id: u64) -> Option<ViewEpoch> {
        self.views
            .lock()
            .expect("epoch stats lock")
            .get(&view_id)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], (0.001, 1));
        let at = |bound: f64| s.cumulative.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.01), 1);
        assert_eq!(at(0.025), 2);
        assert_eq!(at(10.0), 2, "60 s is only in +Inf");
        assert!((s.sum_seconds - 60.0205).abs() < 1e-9);
    }

    #[test]
    fn a_view_is_current_after_an_empty_barrier() {
        let stats = EpochStats::default();
        stats.committed(7, 10, Duration::from_millis(1), [1]);
        let first = stats.view(1).unwrap();
        stats.current([1, 2]);
        let later = stats.view(1).unwrap();
        assert_eq!(later.epoch, 7);
        assert_eq!(later.committed_at, first.committed_at);
        assert!(later.current_at >= first.current_at);
        assert!(stats.view(2).is_none(), "not committed yet");
        stats.forget(1);
        assert!(stats.view(1).is_none());
    }
}
