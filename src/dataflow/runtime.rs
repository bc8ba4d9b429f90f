//! The dataflow runtime's handle: what sessions call (add and drop views and sinks, FLUSH) and
//! the commands it sends to the epoch coordinator thread ([`super::coordinator`]), which drives
//! every view's actor ([`super::actor`]) through numbered epochs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use super::actor::{EpochOutcome, ViewFlow};
use super::coordinator::{Coordinator, remove_unfinished_backfills};
use super::jobs::Jobs;
use super::state_cache::StateCache;
use super::stats::SharedEpochStats;
use super::topic_sink::TopicSink;
use crate::error::{Result, WeirError};
use crate::state::{StateStore, WriteBatch};

/// What the coordinator thread receives: requests from sessions, and the actors' reports.
pub enum Command {
    AddView {
        flow: Box<ViewFlow>,
        restore: bool,
        extra: WriteBatch,
        /// Set when the CREATE is canceled: stops the backfill.
        cancel: CancelFlag,
        reply: oneshot::Sender<Result<()>>,
    },
    DropView {
        view_id: u64,
        batch: WriteBatch,
        reply: oneshot::Sender<Result<()>>,
    },
    AddSink {
        sink: Box<TopicSink>,
        restore: bool,
        extra: WriteBatch,
        reply: oneshot::Sender<Result<()>>,
    },
    DropSink {
        sink_id: u64,
        batch: WriteBatch,
        reply: oneshot::Sender<Result<()>>,
    },
    Flush {
        reply: oneshot::Sender<Result<()>>,
    },
    /// Start-up is over: periodic epochs may begin.
    Start,
    Shutdown,
    /// A view's actor closed `epoch`.
    Acked {
        view_id: u64,
        epoch: u64,
        outcome: EpochOutcome,
    },
    /// A backfill is close enough to the shared readers to join the next epoch.
    CaughtUp {
        view_id: u64,
    },
    BackfillFailed {
        view_id: u64,
        error: WeirError,
    },
}

/// Handle to the coordinator thread.
pub struct Runtime {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    records_skipped: SkippedRecords,
    jobs: Jobs,
    stats: SharedEpochStats,
    cache: Arc<StateCache>,
}

impl Runtime {
    /// Removes what views that never finished their backfill wrote (a crash during CREATE),
    /// then starts the coordinator thread. Every commit takes `epoch_lock` exclusively; a
    /// query that reads several views holds it shared, so it sees them all at one epoch.
    pub fn start(
        store: Arc<dyn StateStore>,
        cache: Arc<StateCache>,
        barrier_interval: Duration,
        epoch_lock: EpochLock,
    ) -> Result<Runtime> {
        remove_unfinished_backfills(store.as_ref())?;
        let (tx, rx) = mpsc::channel();
        let records_skipped = SkippedRecords::default();
        let jobs = Jobs::default();
        let stats = SharedEpochStats::default();
        let mut coordinator = Coordinator::new(
            store,
            cache.clone(),
            epoch_lock,
            records_skipped.clone(),
            jobs.clone(),
            stats.clone(),
            rx,
            tx.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("weir-epochs".into())
            .stack_size(crate::config::THREAD_STACK_BYTES)
            .spawn(move || coordinator.run(barrier_interval))
            .map_err(|e| WeirError::internal(format!("spawn the epoch thread: {e}")))?;
        Ok(Runtime {
            commands: tx,
            thread: Some(thread),
            records_skipped,
            jobs,
            stats,
            cache,
        })
    }

    /// The operator-state memory budget and what the operators report keeping (read by
    /// `/metrics`).
    pub fn state_cache(&self) -> &StateCache {
        &self.cache
    }

    /// The skipped-record counters (read by the `weir_skipped_records` system table).
    pub fn skipped_records(&self) -> SkippedRecords {
        self.records_skipped.clone()
    }

    /// The running backfills (read by the `weir_jobs` system table).
    pub fn jobs(&self) -> Jobs {
        self.jobs.clone()
    }

    /// Epoch commit statistics (read by `/metrics`).
    pub fn epoch_stats(&self) -> SharedEpochStats {
        self.stats.clone()
    }

    async fn call(&self, make: impl FnOnce(oneshot::Sender<Result<()>>) -> Command) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| WeirError::internal("dataflow runtime stopped"))?;
        rx.await
            .map_err(|_| WeirError::internal("dataflow runtime stopped"))?
    }

    /// Brings back a view at start-up: its operator state and offsets are loaded from the
    /// store and it returns at once (a view behind the shared readers catches up on its own).
    pub async fn restore_view(&self, flow: ViewFlow) -> Result<()> {
        self.call(|reply| Command::AddView {
            flow: Box::new(flow),
            restore: true,
            extra: WriteBatch::default(),
            cancel: CancelFlag::default(),
            reply,
        })
        .await
    }

    /// Starts a new view and returns once it has caught up with its inputs and its first
    /// epoch is committed, together with `extra` (its catalog entry): the view exists exactly
    /// when its complete contents do. Setting `cancel` (or dropping the future) before then
    /// stops the backfill and removes what it wrote; the CREATE fails with 57014.
    pub async fn add_view(
        &self,
        flow: ViewFlow,
        extra: WriteBatch,
        cancel: CancelFlag,
    ) -> Result<()> {
        self.call(|reply| Command::AddView {
            flow: Box::new(flow),
            restore: false,
            extra,
            cancel,
            reply,
        })
        .await
    }

    /// Stops a view; `batch` (its catalog removal) is committed together with the deletion of
    /// its rows, state and offsets.
    pub async fn drop_view(&self, view_id: u64, batch: WriteBatch) -> Result<()> {
        self.call(|reply| Command::DropView {
            view_id,
            batch,
            reply,
        })
        .await
    }

    /// Starts a sink. A new one writes the view's rows in its first epoch (committed with
    /// `extra`, its catalog entry); a restored one first cuts its topic back to what was
    /// committed.
    pub async fn add_sink(&self, sink: TopicSink, restore: bool, extra: WriteBatch) -> Result<()> {
        self.call(|reply| Command::AddSink {
            sink: Box::new(sink),
            restore,
            extra,
            reply,
        })
        .await
    }

    /// Stops a sink; `batch` (its catalog removal) is committed with its offsets' removal.
    pub async fn drop_sink(&self, sink_id: u64, batch: WriteBatch) -> Result<()> {
        self.call(|reply| Command::DropSink {
            sink_id,
            batch,
            reply,
        })
        .await
    }

    /// Begins periodic epochs. Called once start-up has restored every view and sink, so no
    /// epoch runs while only some of them are back (a view restored later would miss the
    /// changes its inputs made in between).
    pub fn begin_epochs(&self) {
        let _ = self.commands.send(Command::Start);
    }

    /// Runs an epoch now and returns once it is committed and visible.
    pub async fn flush(&self) -> Result<()> {
        self.call(|reply| Command::Flush { reply }).await
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Records skipped because they do not decode, per (view, topic), since start: each view
/// that reads a topic meets its bad records, so a topic's count is the largest of its views'.
pub type SkippedRecords = Arc<std::sync::Mutex<HashMap<(u64, String), u64>>>;

/// Set to stop a running statement's work (a CREATE MATERIALIZED VIEW's backfill).
pub type CancelFlag = Arc<std::sync::atomic::AtomicBool>;

/// Shared by readers (a whole query) and exclusive for each commit of an epoch.
pub type EpochLock = Arc<tokio::sync::RwLock<()>>;
