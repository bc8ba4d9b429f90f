//! Backfill progress, shared between the views' actors (which report it) and the `weir_jobs`
//! system table (which shows it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One view catching up from its inputs' history.
#[derive(Clone, Debug)]
pub struct JobProgress {
    pub view: String,
    /// Records of its topics read so far.
    pub records_read: u64,
    /// Records to read in all: the topics' history as of now (it grows while the view catches
    /// up with records still arriving).
    pub records_total: u64,
    pub started: SystemTime,
}

impl JobProgress {
    /// When the backfill should be done at its rate so far, if it has one yet.
    pub fn eta(&self, now: SystemTime) -> Option<SystemTime> {
        let elapsed = now.duration_since(self.started).ok()?.as_secs_f64();
        if self.records_read == 0 || elapsed <= 0.0 {
            return None;
        }
        let rate = self.records_read as f64 / elapsed;
        let left = self.records_total.saturating_sub(self.records_read) as f64;
        Some(now + std::time::Duration::from_secs_f64(left / rate))
    }
}

/// The running backfills, by view id.
pub type Jobs = Arc<Mutex<BTreeMap<u64, JobProgress>>>;
