//! The epoch coordinator: one thread that drives the views' actors through numbered epochs.
//!
//! ```text
//!   topic ──► shared reader (decode once) ──Data──► view actor ──Data+Barrier──► view actor ...
//!                  coordinator ──────Barrier(N)──►      │                          │
//!                       ▲                                └──── Acked(N, batch) ─────┘
//!                       └── commits every view's batch of epoch N in ONE store write
//! ```
//!
//! Every `barrier_interval_ms` (or at once on FLUSH, CREATE MATERIALIZED VIEW, CREATE SINK) an
//! epoch runs: each shared reader reads its topic's new records once, decodes them and sends
//! them to every view that reads the topic; then every view gets the epoch's barrier. Each view
//! acknowledges with its write batch (rows, operator state, offsets); when all have, the
//! coordinator writes the sinks, commits everything as one atomic write under the epoch lock, and
//! answers whoever waits. Readers therefore see whole epochs only, views read together agree,
//! and after a crash each view resumes from offsets that match its state exactly.
//!
//! Epochs do not overlap: epoch N+1 starts after N is committed, so no actor ever holds data of
//! two epochs. A view whose epoch fails is marked failed and left out from then on; the others
//! commit the epoch as usual. A new view catches up on its own thread (see [`super::actor`])
//! and joins an epoch once it is close to the shared readers; its CREATE returns when that
//! epoch is committed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::ChangeBatch;
use super::actor::{
    Backfill, EpochOutcome, InputSource, MESSAGE_CHANNEL_CAPACITY, Message, Offsets, ViewActor,
    ViewFlow,
};
use super::jobs::Jobs;
use super::topic_sink::TopicSink;
use super::view_rows::ViewRows;
use crate::error::{Result, WeirError};
use crate::sources::reader::{Decoding, read_range};
use crate::state::{StateStore, WriteBatch, keys};
use crate::topics::Topic;

/// How often a running backfill checks whether its CREATE was canceled.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// What the coordinator thread receives: requests from sessions, and the actors' reports.
pub enum Command {
    AddView {
        flow: Box<ViewFlow>,
        restore: bool,
        extra: WriteBatch,
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
}

impl Runtime {
    /// Removes what views that never finished their backfill wrote (a crash during CREATE),
    /// then starts the coordinator thread. Every commit takes `epoch_lock` exclusively; a
    /// query that reads several views holds it shared, so it sees them all at one epoch.
    pub fn start(
        store: Arc<dyn StateStore>,
        barrier_interval: Duration,
        epoch_lock: EpochLock,
    ) -> Result<Runtime> {
        remove_unfinished_backfills(store.as_ref())?;
        let (tx, rx) = mpsc::channel();
        let records_skipped = SkippedRecords::default();
        let jobs = Jobs::default();
        let mut coordinator = Coordinator {
            store,
            epoch_lock,
            skipped: records_skipped.clone(),
            jobs: jobs.clone(),
            commands: rx,
            events: tx.clone(),
            deferred: VecDeque::new(),
            epoch: 0,
            readers: Vec::new(),
            views: Vec::new(),
            joining: Vec::new(),
            sinks: Vec::new(),
            pending: WriteBatch::default(),
        };
        let thread = std::thread::Builder::new()
            .name("weir-epochs".into())
            .spawn(move || coordinator.run(barrier_interval))
            .map_err(|e| WeirError::internal(format!("spawn the epoch thread: {e}")))?;
        Ok(Runtime {
            commands: tx,
            thread: Some(thread),
            records_skipped,
            jobs,
        })
    }

    /// The skipped-record counters (read by the `weir_skipped_records` system table).
    pub fn skipped_records(&self) -> SkippedRecords {
        self.records_skipped.clone()
    }

    /// The running backfills (read by the `weir_jobs` system table).
    pub fn jobs(&self) -> Jobs {
        self.jobs.clone()
    }

    async fn call(&self, make: impl FnOnce(oneshot::Sender<Result<()>>) -> Command) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| WeirError::internal("dataflow runtime stopped"))?;
        rx.await
            .map_err(|_| WeirError::internal("dataflow runtime stopped"))?
    }

    /// Starts running a view. With `restore` its operator state and offsets are loaded from the
    /// store (start-up) and it returns at once; otherwise see [`Runtime::add_view_with`].
    pub async fn add_view(&self, flow: ViewFlow, restore: bool) -> Result<()> {
        let extra = WriteBatch::default();
        self.call(|reply| Command::AddView {
            flow: Box::new(flow),
            restore,
            extra,
            reply,
        })
        .await
    }

    /// Starts a new view and returns once it has caught up with its inputs and its first
    /// epoch is committed, together with `extra` (its catalog entry): the view exists exactly
    /// when its complete contents do. Dropping the future (a cancel request) stops the
    /// backfill and removes what it wrote.
    pub async fn add_view_with(&self, flow: ViewFlow, extra: WriteBatch) -> Result<()> {
        self.call(|reply| Command::AddView {
            flow: Box::new(flow),
            restore: false,
            extra,
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

/// Shared by readers (a whole query) and exclusive for each commit of an epoch.
pub type EpochLock = Arc<tokio::sync::RwLock<()>>;

/// Deletes the keys of every view whose backfill never joined the epochs.
fn remove_unfinished_backfills(store: &dyn StateStore) -> Result<()> {
    for (key, _) in store.scan_prefix(&[keys::BACKFILL])? {
        let mut batch = WriteBatch::default();
        if let Some(view_id) = keys::view_of_backfill_key(&key) {
            delete_view_keys(store, view_id, &mut batch)?;
        }
        batch.delete(key);
        store.commit(batch)?;
    }
    Ok(())
}

/// Adds the deletion of a view's rows, operator state and offsets to `batch`.
fn delete_view_keys(store: &dyn StateStore, view_id: u64, batch: &mut WriteBatch) -> Result<()> {
    for prefix in [
        keys::view_rows_prefix(view_id),
        keys::view_state_prefix(view_id),
    ] {
        for (k, _) in store.scan_prefix(&prefix)? {
            batch.delete(k);
        }
    }
    batch.delete(keys::offsets_key(view_id));
    Ok(())
}

/// One topic read for all the views that read it with one decoding.
struct SharedReader {
    topic: Arc<Topic>,
    decoding: Decoding,
    /// Per partition: the next offset to read. Every subscribed view has read up to here.
    positions: Vec<u64>,
    /// `positions` as of the last committed epoch: what backfills catch up to.
    published: Arc<Mutex<Vec<u64>>>,
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    view_id: u64,
    sender: SyncSender<Message>,
    /// The view's inputs this topic feeds (a self-join reads it twice).
    inputs: Vec<usize>,
}

/// Where one input of a running view comes from.
#[derive(Clone, Copy)]
enum Input {
    /// Index into the coordinator's readers.
    Topic(usize),
    View(u64),
}

struct ViewHandle {
    id: u64,
    name: String,
    rows: Arc<ViewRows>,
    inputs: Vec<Input>,
    sender: SyncSender<Message>,
    thread: JoinHandle<()>,
    failed: Option<String>,
}

/// A view catching up before it joins the epochs.
struct Joining {
    view: ViewHandle,
    /// The waiting CREATE (None for a view restored at start-up).
    reply: Option<oneshot::Sender<Result<()>>>,
    /// Committed with the view's first epoch (its catalog entry).
    extra: WriteBatch,
    cancel: Arc<AtomicBool>,
    caught_up: bool,
}

struct Coordinator {
    store: Arc<dyn StateStore>,
    epoch_lock: EpochLock,
    skipped: SkippedRecords,
    jobs: Jobs,
    commands: Receiver<Command>,
    /// Given to each actor for its reports.
    events: Sender<Command>,
    /// Requests that arrived while an epoch ran, handled after it.
    deferred: VecDeque<Command>,
    epoch: u64,
    readers: Vec<SharedReader>,
    /// The views in the epochs, in creation order (upstream views first).
    views: Vec<ViewHandle>,
    joining: Vec<Joining>,
    sinks: Vec<TopicSink>,
    /// Writes to commit with the next epoch (a new sink's catalog entry).
    pending: WriteBatch,
}

impl Coordinator {
    fn run(&mut self, interval: Duration) {
        let mut next_barrier = Instant::now() + interval;
        let mut started = false;
        loop {
            self.poll_backfills();
            let now = Instant::now();
            if started && now >= next_barrier {
                if let Err(e) = self.run_epoch(false) {
                    tracing::error!("epoch failed: {e}");
                }
                next_barrier = Instant::now() + interval;
                continue;
            }
            let mut wait = if started {
                next_barrier - now
            } else {
                Duration::from_secs(3600)
            };
            if !self.joining.is_empty() {
                wait = wait.min(CANCEL_POLL);
            }
            let command = match self.deferred.pop_front() {
                Some(c) => c,
                None => match self.commands.recv_timeout(wait) {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            match command {
                Command::Start => {
                    started = true;
                    next_barrier = Instant::now() + interval;
                }
                Command::Shutdown => break,
                Command::AddView {
                    flow,
                    restore,
                    extra,
                    reply,
                } => self.add_view(*flow, restore, extra, reply),
                Command::DropView {
                    view_id,
                    batch,
                    reply,
                } => {
                    let _ = reply.send(self.drop_view(view_id, batch));
                }
                Command::AddSink {
                    sink,
                    restore,
                    extra,
                    reply,
                } => {
                    let _ = reply.send(self.add_sink(*sink, restore, extra));
                }
                Command::DropSink {
                    sink_id,
                    mut batch,
                    reply,
                } => {
                    self.sinks.retain(|s| s.id != sink_id);
                    batch.delete(super::topic_sink::offsets_key(sink_id));
                    let _ = reply.send(self.commit(batch));
                }
                Command::Flush { reply } => {
                    let _ = reply.send(self.run_epoch(false));
                    next_barrier = Instant::now() + interval;
                }
                Command::CaughtUp { view_id } => {
                    if let Some(j) = self.joining.iter_mut().find(|j| j.view.id == view_id) {
                        j.caught_up = true;
                    }
                    if let Err(e) = self.run_epoch(true) {
                        tracing::error!("epoch failed: {e}");
                    }
                    next_barrier = Instant::now() + interval;
                }
                Command::BackfillFailed { view_id, error } => self.backfill_failed(view_id, error),
                Command::Acked { view_id, .. } => {
                    tracing::error!(view_id, "an acknowledgement outside its epoch");
                }
            }
        }
        self.shutdown();
    }

    /// Stops every actor: readers and views let go of their channels, upstream views first so
    /// that each thread's channel closes.
    fn shutdown(&mut self) {
        for j in &self.joining {
            j.cancel.store(true, Ordering::Relaxed);
        }
        self.readers.clear();
        let views = std::mem::take(&mut self.views);
        let joining = std::mem::take(&mut self.joining);
        for view in views.into_iter().chain(joining.into_iter().map(|j| j.view)) {
            drop(view.sender);
            let _ = view.thread.join();
        }
    }

    /// Looks after running backfills: cancels those whose CREATE went away (a cancel request
    /// or statement_timeout), and moves the readers no view reads yet to their topic's end, so
    /// that a backfill chases the records still arriving instead of reading them all when it
    /// joins.
    fn poll_backfills(&mut self) {
        if self.joining.is_empty() {
            return;
        }
        for j in &self.joining {
            if j.reply.as_ref().is_some_and(|r| r.is_closed()) {
                j.cancel.store(true, Ordering::Relaxed);
            }
        }
        for reader in self.readers.iter_mut().filter(|r| r.subscribers.is_empty()) {
            let ends: std::result::Result<Vec<u64>, _> = (0..reader.topic.partitions())
                .map(|p| reader.topic.end_offset(p))
                .collect();
            if let Ok(ends) = ends {
                reader.positions = ends.clone();
                *reader.published.lock().expect("positions lock") = ends;
            }
        }
    }

    fn add_view(
        &mut self,
        flow: ViewFlow,
        restore: bool,
        extra: WriteBatch,
        reply: oneshot::Sender<Result<()>>,
    ) {
        match self.start_view(flow, restore, extra) {
            // A restored view is back at once (it may still catch up); a new one answers when
            // it has joined.
            Ok(Some(mut joining)) if !restore => {
                joining.reply = Some(reply);
                self.joining.push(joining);
            }
            Ok(joining) => {
                self.joining.extend(joining);
                let _ = reply.send(Ok(()));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Spawns a view's actor. A restored view in step with the shared readers goes straight
    /// into the epochs; any other gets a backfill and is returned to wait for it.
    fn start_view(
        &mut self,
        flow: ViewFlow,
        restore: bool,
        extra: WriteBatch,
    ) -> Result<Option<Joining>> {
        let (id, name, rows) = (flow.id, flow.name.clone(), flow.rows.clone());
        let mut actor = ViewActor::new(
            flow_with_checked_inputs(flow, &self.views)?,
            self.store.clone(),
            self.events.clone(),
            self.skipped.clone(),
        );
        if restore {
            actor.restore()?;
        }
        let inputs = self.inputs_of(&actor)?;
        let in_step = restore
            && inputs.iter().enumerate().all(|(i, input)| match input {
                Input::Topic(r) => self.readers[*r].positions == actor.offsets()[i],
                Input::View(_) => true,
            });
        let (sender, messages) = mpsc::sync_channel(MESSAGE_CHANNEL_CAPACITY);
        let cancel = Arc::new(AtomicBool::new(false));
        let backfill = (!in_step).then(|| Backfill {
            targets: inputs
                .iter()
                .map(|i| match i {
                    Input::Topic(r) => Some(self.readers[*r].published.clone()),
                    Input::View(_) => None,
                })
                .collect(),
            cancel: cancel.clone(),
            jobs: self.jobs.clone(),
        });
        if !restore {
            let mut marker = WriteBatch::default();
            marker.put(keys::backfill_key(id), Vec::new());
            self.store.commit(marker)?;
        }
        let thread = std::thread::Builder::new()
            .name(format!("weir-view-{id}"))
            .spawn(move || actor.run(messages, backfill))
            .map_err(|e| WeirError::internal(format!("spawn a view thread: {e}")))?;
        let view = ViewHandle {
            id,
            name,
            rows,
            inputs,
            sender,
            thread,
            failed: None,
        };
        if in_step {
            self.subscribe(&view);
            self.views.push(view);
            return Ok(None);
        }
        Ok(Some(Joining {
            view,
            reply: None,
            extra,
            cancel,
            caught_up: false,
        }))
    }

    /// The view's inputs, with a shared reader for each topic input (a new reader starts at
    /// the view's own offsets when it is restored, at the topic's end otherwise).
    fn inputs_of(&mut self, actor: &ViewActor) -> Result<Vec<Input>> {
        let mut inputs = Vec::new();
        for (i, source) in actor.flow().inputs.iter().enumerate() {
            inputs.push(match source {
                InputSource::View { view_id } => Input::View(*view_id),
                InputSource::Topic { topic, decoding } => {
                    let existing = self
                        .readers
                        .iter()
                        .position(|r| r.topic.name() == topic.name() && &r.decoding == decoding);
                    let r = match existing {
                        Some(r) => r,
                        None => {
                            let positions = if actor.restored() {
                                actor.offsets()[i].clone()
                            } else {
                                (0..topic.partitions())
                                    .map(|p| topic.end_offset(p))
                                    .collect::<std::result::Result<Vec<_>, _>>()?
                            };
                            self.readers.push(SharedReader {
                                topic: topic.clone(),
                                decoding: decoding.clone(),
                                published: Arc::new(Mutex::new(positions.clone())),
                                positions,
                                subscribers: Vec::new(),
                            });
                            self.readers.len() - 1
                        }
                    };
                    Input::Topic(r)
                }
            });
        }
        Ok(inputs)
    }

    /// Connects a view to its readers and upstream views: from the next epoch on, they send it
    /// their changes.
    fn subscribe(&mut self, view: &ViewHandle) {
        let mut upstream: Vec<(u64, Vec<usize>)> = Vec::new();
        for (i, input) in view.inputs.iter().enumerate() {
            match *input {
                Input::Topic(r) => {
                    let subscribers = &mut self.readers[r].subscribers;
                    match subscribers.iter_mut().find(|s| s.view_id == view.id) {
                        Some(s) => s.inputs.push(i),
                        None => subscribers.push(Subscriber {
                            view_id: view.id,
                            sender: view.sender.clone(),
                            inputs: vec![i],
                        }),
                    }
                }
                Input::View(up) => match upstream.iter_mut().find(|(u, _)| *u == up) {
                    Some((_, inputs)) => inputs.push(i),
                    None => upstream.push((up, vec![i])),
                },
            }
        }
        for (up, inputs) in upstream {
            if let Some(u) = self.views.iter().find(|v| v.id == up) {
                let _ = u.sender.send(Message::AddDownstream {
                    view_id: view.id,
                    sender: view.sender.clone(),
                    inputs,
                });
            }
        }
    }

    /// Disconnects a view from its readers and upstream views, and drops readers nobody uses.
    fn unsubscribe(&mut self, view_id: u64, inputs: &[Input]) {
        for reader in &mut self.readers {
            reader.subscribers.retain(|s| s.view_id != view_id);
        }
        for input in inputs {
            if let Input::View(up) = input
                && let Some(u) = self.views.iter().find(|v| v.id == *up)
            {
                let _ = u.sender.send(Message::RemoveDownstream { view_id });
            }
        }
        self.drop_unused_readers();
    }

    fn drop_unused_readers(&mut self) {
        let used: Vec<bool> = (0..self.readers.len())
            .map(|r| {
                self.views
                    .iter()
                    .chain(self.joining.iter().map(|j| &j.view))
                    .any(|v| {
                        v.inputs
                            .iter()
                            .any(|i| matches!(i, Input::Topic(x) if *x == r))
                    })
            })
            .collect();
        if used.iter().all(|u| *u) {
            return;
        }
        // Renumber the readers that stay, in every view's inputs.
        let mut renumber = vec![None; self.readers.len()];
        let mut next = 0;
        for (r, keep) in used.iter().enumerate() {
            if *keep {
                renumber[r] = Some(next);
                next += 1;
            }
        }
        let mut r = 0;
        self.readers.retain(|_| {
            r += 1;
            used[r - 1]
        });
        for view in self
            .views
            .iter_mut()
            .chain(self.joining.iter_mut().map(|j| &mut j.view))
        {
            for input in &mut view.inputs {
                if let Input::Topic(x) = input {
                    *x = renumber[*x].expect("a used reader stays");
                }
            }
        }
    }

    fn backfill_failed(&mut self, view_id: u64, error: WeirError) {
        let Some(pos) = self.joining.iter().position(|j| j.view.id == view_id) else {
            return;
        };
        let j = self.joining.remove(pos);
        let _ = j.view.thread.join();
        let restored = j.reply.is_none();
        self.drop_unused_readers();
        if restored {
            // A restored view stays in the catalog: it is failed, like one failing later.
            tracing::error!(view = j.view.name, "materialized view failed: {error}");
            j.view.rows.set_failed(&error.message);
            return;
        }
        let cleanup = (|| {
            let mut batch = WriteBatch::default();
            delete_view_keys(self.store.as_ref(), view_id, &mut batch)?;
            batch.delete(keys::backfill_key(view_id));
            self.store.commit(batch)
        })();
        if let Err(e) = cleanup {
            tracing::error!(view_id, "cannot remove a canceled view's rows: {e}");
        }
        if let Some(reply) = j.reply {
            let _ = reply.send(Err(in_view(&j.view.name, error)));
        }
    }

    /// One epoch over every view, committed atomically; first lets caught-up backfills join.
    /// Without `force` an epoch with no new records anywhere is skipped. Returns the error of
    /// a view that failed in it (it is marked failed; the others' epoch is committed).
    fn run_epoch(&mut self, force: bool) -> Result<()> {
        let joins = self.take_joins();
        let has_new = self.readers.iter().any(|r| {
            !r.subscribers.is_empty()
                && (0..r.topic.partitions())
                    .any(|p| r.topic.end_offset(p).unwrap_or(0) > r.positions[p as usize])
        });
        let sink_snapshot = self.sinks.iter().any(|s| s.snapshot_pending);
        if !force && !has_new && joins.is_empty() && !sink_snapshot && self.pending.is_empty() {
            return Ok(());
        }
        self.epoch += 1;
        let epoch = self.epoch;
        let mut batch = std::mem::take(&mut self.pending);
        // Views joining now, with the CREATE waiting for each (None: restored at start-up).
        let mut joined = Vec::new();
        for mut j in joins {
            match self.join(&j.view, j.reply.is_some()) {
                Ok(()) => {
                    batch.append(std::mem::take(&mut j.extra));
                    batch.delete(keys::backfill_key(j.view.id));
                    joined.push((j.view.id, j.reply));
                    self.views.push(j.view);
                }
                Err(e) => {
                    self.joining.push(j);
                    self.backfill_failed(self.joining.last().expect("pushed").view.id, e);
                }
            }
        }
        let read = self.read_sources();
        let outcomes = self.barrier(epoch);
        let mut deltas = HashMap::new();
        let mut first_error = None;
        for (view_id, outcome) in outcomes {
            match outcome {
                Ok(out) => {
                    batch.append(out.batch);
                    deltas.insert(view_id, out.delta);
                }
                Err(e) => {
                    let new_view = joined
                        .iter()
                        .position(|(id, reply)| *id == view_id && reply.is_some());
                    let e = self.view_failed(view_id, e, new_view.is_some(), &mut batch);
                    match new_view {
                        Some(k) => {
                            if let (_, Some(reply)) = joined.remove(k) {
                                let _ = reply.send(Err(e));
                            }
                        }
                        None => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        if let Err(e) = read
            .and_then(|()| self.write_sinks(&deltas, &mut batch))
            .and_then(|()| self.commit(batch))
        {
            self.rewind()?;
            for (view_id, reply) in joined {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e.clone()));
                }
                self.remove_view(view_id);
            }
            return Err(e);
        }
        for reader in &self.readers {
            *reader.published.lock().expect("positions lock") = reader.positions.clone();
        }
        for sink in &mut self.sinks {
            sink.publish();
            sink.snapshot_pending = false;
        }
        for (_, reply) in joined {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn take_joins(&mut self) -> Vec<Joining> {
        let (ready, waiting) = std::mem::take(&mut self.joining)
            .into_iter()
            .partition(|j| j.caught_up);
        self.joining = waiting;
        ready
    }

    /// Brings a caught-up view into this epoch: it reads its gap up to the readers, takes its
    /// upstream views' committed rows (a new view), and is subscribed.
    fn join(&mut self, view: &ViewHandle, new_view: bool) -> Result<()> {
        let mut offsets = Vec::new();
        let mut snapshots = Vec::new();
        for (i, input) in view.inputs.iter().enumerate() {
            offsets.push(match *input {
                Input::Topic(r) => self.readers[r].positions.clone(),
                Input::View(up) => {
                    let upstream = self
                        .views
                        .iter()
                        .find(|v| v.id == up)
                        .ok_or_else(|| WeirError::internal("a view joins before its input"))?;
                    if let Some(reason) = &upstream.failed {
                        return Err(WeirError::internal(format!(
                            "its input \"{}\" failed: {reason}",
                            upstream.name
                        )));
                    }
                    if new_view {
                        snapshots.push((i, upstream.rows.clone()));
                    }
                    Vec::new()
                }
            });
        }
        view.sender
            .send(Message::Join { offsets, snapshots })
            .map_err(|_| WeirError::internal("the view's thread stopped"))?;
        self.subscribe(view);
        Ok(())
    }

    /// Reads every subscribed topic's new records once and sends them to its views.
    fn read_sources(&mut self) -> Result<()> {
        for reader in &mut self.readers {
            if reader.subscribers.is_empty() {
                continue;
            }
            for p in 0..reader.topic.partitions() {
                let end = reader.topic.end_offset(p)?;
                let from = reader.positions[p as usize];
                let subscribers = &reader.subscribers;
                let read = read_range(&reader.topic, &reader.decoding, p, from, end, |changes| {
                    for s in subscribers {
                        for &input in &s.inputs {
                            let batch = changes.clone();
                            if s.sender.send(Message::Data { input, batch }).is_err() {
                                tracing::warn!(view = s.view_id, "a view's thread stopped");
                            }
                        }
                    }
                    Ok(())
                })?;
                reader.positions[p as usize] = read.next;
                if read.skipped > 0 {
                    let mut skipped = self.skipped.lock().expect("skipped lock");
                    for s in subscribers {
                        *skipped
                            .entry((s.view_id, reader.topic.name().to_string()))
                            .or_default() += read.skipped;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends epoch `epoch`'s barrier to every running view and waits for all of them.
    fn barrier(&mut self, epoch: u64) -> Vec<(u64, EpochOutcome)> {
        let mut waiting = 0;
        for view in self.views.iter().filter(|v| v.failed.is_none()) {
            let offsets: Offsets = view
                .inputs
                .iter()
                .map(|i| match *i {
                    Input::Topic(r) => self.readers[r].positions.clone(),
                    Input::View(_) => Vec::new(),
                })
                .collect();
            let barrier = Message::Barrier {
                epoch,
                offsets: Some(offsets),
            };
            if view.sender.send(barrier).is_ok() {
                waiting += 1;
            }
        }
        let mut outcomes = Vec::with_capacity(waiting);
        while outcomes.len() < waiting {
            match self.commands.recv() {
                Ok(Command::Acked {
                    view_id,
                    epoch: e,
                    outcome,
                }) if e == epoch => outcomes.push((view_id, outcome)),
                Ok(other) => self.deferred.push_back(other),
                Err(_) => break,
            }
        }
        outcomes
    }

    /// Marks a view failed, or for a view that failed in its first epoch, removes it and adds
    /// the deletion of what its backfill wrote to `batch`. Returns the error as users see it.
    fn view_failed(
        &mut self,
        view_id: u64,
        error: WeirError,
        first_epoch: bool,
        batch: &mut WriteBatch,
    ) -> WeirError {
        let Some(pos) = self.views.iter().position(|v| v.id == view_id) else {
            return error;
        };
        let name = self.views[pos].name.clone();
        tracing::error!(view = name, "materialized view failed: {error}");
        if first_epoch {
            if let Err(e) = delete_view_keys(self.store.as_ref(), view_id, batch) {
                tracing::error!(view_id, "cannot remove a failed view's rows: {e}");
            }
            self.remove_view(view_id);
        } else {
            let inputs = self.views[pos].inputs.clone();
            self.views[pos].failed = Some(error.message.clone());
            self.views[pos].rows.set_failed(&error.message);
            self.unsubscribe(view_id, &inputs);
        }
        in_view(&name, error)
    }

    /// Takes a view out of the epochs and stops its thread.
    fn remove_view(&mut self, view_id: u64) {
        let Some(pos) = self.views.iter().position(|v| v.id == view_id) else {
            return;
        };
        let view = self.views.remove(pos);
        self.unsubscribe(view_id, &view.inputs);
        drop(view.sender);
        let _ = view.thread.join();
    }

    /// After a failed commit: the readers, views and sinks go back to the committed epoch.
    fn rewind(&mut self) -> Result<()> {
        for sink in &self.sinks {
            sink.rewind(self.store.as_ref())?;
        }
        for reader in &mut self.readers {
            reader.positions = reader.published.lock().expect("positions lock").clone();
        }
        for view in self.views.iter().filter(|v| v.failed.is_none()) {
            let _ = view.sender.send(Message::Rewind);
        }
        Ok(())
    }

    fn drop_view(&mut self, view_id: u64, mut batch: WriteBatch) -> Result<()> {
        self.remove_view(view_id);
        delete_view_keys(self.store.as_ref(), view_id, &mut batch)?;
        self.commit(batch)
    }

    /// Commits a batch while no query is between its reads of two views.
    fn commit(&self, batch: WriteBatch) -> Result<()> {
        let _no_readers = self.epoch_lock.blocking_write();
        self.store.commit(batch)
    }

    fn add_sink(&mut self, sink: TopicSink, restore: bool, extra: WriteBatch) -> Result<()> {
        if restore {
            sink.rewind(self.store.as_ref())?;
            self.sinks.push(sink);
            return Ok(());
        }
        // If the first epoch fails, what the new sink wrote is cut off again.
        let ends = (0..sink.topic.partitions())
            .map(|p| sink.topic.end_offset(p))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let (id, topic) = (sink.id, sink.topic.clone());
        self.pending.append(extra);
        self.sinks.push(sink);
        let result = self.run_epoch(true);
        if result.is_err() {
            self.sinks.retain(|s| s.id != id);
            for (p, end) in ends.into_iter().enumerate() {
                topic.truncate(p as u32, end)?;
            }
        }
        result
    }

    /// Appends this epoch's changes of each sink's view to its topic (before the commit).
    fn write_sinks(
        &self,
        deltas: &HashMap<u64, ChangeBatch>,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        for sink in &self.sinks {
            let Some(view) = self
                .views
                .iter()
                .find(|v| v.id == sink.view_id && v.failed.is_none())
            else {
                continue;
            };
            let mut changes = Vec::new();
            if sink.snapshot_pending {
                changes.push(view.rows.scan(self.store.as_ref())?);
            }
            changes.extend(deltas.get(&sink.view_id).cloned());
            let changes = ChangeBatch::concat(&sink.schema, &changes)?;
            if !changes.is_empty() || sink.snapshot_pending {
                sink.write(&changes, batch)?;
            }
        }
        Ok(())
    }
}

/// Refuses a view over a view that is not running.
fn flow_with_checked_inputs(flow: ViewFlow, views: &[ViewHandle]) -> Result<ViewFlow> {
    for input in &flow.inputs {
        if let InputSource::View { view_id } = input
            && !views.iter().any(|v| v.id == *view_id)
        {
            return Err(WeirError::internal("a view starts before its input"));
        }
    }
    Ok(flow)
}

fn in_view(name: &str, e: WeirError) -> WeirError {
    WeirError {
        message: format!("{} (in materialized view \"{name}\")", e.message),
        ..e
    }
}
