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
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::ChangeBatch;
use super::actor::{
    Backfill, EpochOutcome, InputSource, MESSAGE_CHANNEL_CAPACITY, Message, Offsets, ViewActor,
    ViewFlow,
};
use super::jobs::Jobs;
use super::readers::{ReaderId, Readers};
use super::runtime::{CancelFlag, Command, EpochLock, SkippedRecords};
use super::state_cache::StateCache;
use super::stats::SharedEpochStats;
use super::topic_sink::TopicSink;
use super::view_rows::ViewRows;
use crate::error::{Result, WeirError};
use crate::state::{StateStore, WriteBatch, keys};

/// How often a running backfill checks whether its CREATE was canceled.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Deletes the keys of every view whose backfill never joined the epochs.
pub(super) fn remove_unfinished_backfills(store: &dyn StateStore) -> Result<()> {
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
    batch.delete(keys::next_row_id_key(view_id));
    Ok(())
}

/// Where one input of a running view comes from.
#[derive(Clone, Copy)]
enum Input {
    Topic(ReaderId),
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

impl ViewHandle {
    /// Closes the view's channel and waits for its thread. Its message loop ends once no
    /// reader or upstream view holds the channel either (unsubscribe first); a backfill still
    /// running must have been canceled.
    fn stop(self) {
        drop(self.sender);
        let _ = self.thread.join();
    }
}

/// A view catching up before it joins the epochs.
struct Joining {
    view: ViewHandle,
    /// The waiting CREATE (None for a view restored at start-up).
    reply: Option<oneshot::Sender<Result<()>>>,
    /// Committed with the view's first epoch (its catalog entry).
    extra: WriteBatch,
    cancel: CancelFlag,
    caught_up: bool,
}

pub(super) struct Coordinator {
    store: Arc<dyn StateStore>,
    /// The memory budget of operator state, given to every view.
    cache: Arc<StateCache>,
    epoch_lock: EpochLock,
    skipped: SkippedRecords,
    jobs: Jobs,
    /// Commit times and each view's last commit, for `/metrics`.
    stats: SharedEpochStats,
    commands: Receiver<Command>,
    /// Given to each actor for its reports.
    events: Sender<Command>,
    /// Requests that arrived while an epoch ran, handled after it.
    deferred: VecDeque<Command>,
    epoch: u64,
    readers: Readers,
    /// The views in the epochs, in creation order (upstream views first).
    views: Vec<ViewHandle>,
    joining: Vec<Joining>,
    sinks: Vec<TopicSink>,
    /// Writes to commit with the next epoch (a new sink's catalog entry).
    pending: WriteBatch,
}

impl Coordinator {
    // What the runtime shares with the coordinator: each is a handle of its own kind.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        store: Arc<dyn StateStore>,
        cache: Arc<StateCache>,
        epoch_lock: EpochLock,
        skipped: SkippedRecords,
        jobs: Jobs,
        stats: SharedEpochStats,
        commands: Receiver<Command>,
        events: Sender<Command>,
    ) -> Coordinator {
        Coordinator {
            store,
            cache,
            epoch_lock,
            skipped,
            jobs,
            stats,
            commands,
            events,
            deferred: VecDeque::new(),
            epoch: 0,
            readers: Readers::default(),
            views: Vec::new(),
            joining: Vec::new(),
            sinks: Vec::new(),
            pending: WriteBatch::default(),
        }
    }

    pub(super) fn run(&mut self, interval: Duration) {
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
                    cancel,
                    reply,
                } => self.add_view(*flow, restore, extra, cancel, reply),
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
            view.stop();
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
        self.readers.advance_idle();
    }

    fn add_view(
        &mut self,
        flow: ViewFlow,
        restore: bool,
        extra: WriteBatch,
        cancel: CancelFlag,
        reply: oneshot::Sender<Result<()>>,
    ) {
        match self.start_view(flow, restore, extra, cancel) {
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
        cancel: CancelFlag,
    ) -> Result<Option<Joining>> {
        let (id, name, rows) = (flow.id, flow.name.clone(), flow.rows.clone());
        let mut actor = ViewActor::new(
            flow_with_checked_inputs(flow, &self.views)?,
            self.store.clone(),
            self.cache.clone(),
            self.events.clone(),
            self.skipped.clone(),
        );
        if restore {
            actor.restore_offsets()?;
        }
        let inputs = self.inputs_of(&actor)?;
        let in_step = restore
            && inputs.iter().enumerate().all(|(i, input)| match input {
                Input::Topic(r) => self.readers.positions(*r) == actor.offsets()[i],
                Input::View(_) => true,
            });
        let (sender, messages) = mpsc::sync_channel(MESSAGE_CHANNEL_CAPACITY);
        let backfill = (!in_step).then(|| Backfill {
            targets: inputs
                .iter()
                .map(|i| match i {
                    Input::Topic(r) => Some(self.readers.published(*r)),
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
            .stack_size(crate::config::THREAD_STACK_BYTES)
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
                    let start = actor.restored().then(|| actor.offsets()[i].as_slice());
                    Input::Topic(self.readers.find_or_add(topic, decoding, start)?)
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
                Input::Topic(r) => self.readers.subscribe(r, view.id, &view.sender, i),
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
        self.readers.unsubscribe(view_id);
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
        let views: Vec<&ViewHandle> = self
            .views
            .iter()
            .chain(self.joining.iter().map(|j| &j.view))
            .collect();
        self.readers.retain(|r| {
            views.iter().any(|v| {
                v.inputs
                    .iter()
                    .any(|i| matches!(i, Input::Topic(x) if *x == r))
            })
        });
    }

    fn backfill_failed(&mut self, view_id: u64, error: WeirError) {
        if let Some(pos) = self.joining.iter().position(|j| j.view.id == view_id) {
            let j = self.joining.remove(pos);
            self.fail_backfill(j, error);
        }
    }

    /// Ends a backfill that will not join: its thread stops (it may be waiting for `Join`);
    /// a new view's writes are deleted and its CREATE gets `error`; a restored view is
    /// marked failed.
    fn fail_backfill(&mut self, j: Joining, error: WeirError) {
        let Joining { view, reply, .. } = j;
        let (view_id, name, rows) = (view.id, view.name.clone(), view.rows.clone());
        view.stop();
        self.drop_unused_readers();
        let Some(reply) = reply else {
            // A restored view stays in the catalog: it is failed, like one failing later.
            tracing::error!(view = name, "materialized view failed: {error}");
            rows.set_failed(&error.message);
            return;
        };
        let cleanup = (|| {
            let mut batch = WriteBatch::default();
            delete_view_keys(self.store.as_ref(), view_id, &mut batch)?;
            batch.delete(keys::backfill_key(view_id));
            self.store.commit(batch)
        })();
        if let Err(e) = cleanup {
            tracing::error!(view_id, "cannot remove a canceled view's rows: {e}");
        }
        let _ = reply.send(Err(in_view(&name, error)));
    }

    /// One epoch over every view, committed atomically; first lets caught-up backfills join.
    /// Without `force` an epoch with no new records anywhere is skipped. Returns the error of
    /// a view that failed in it (it is marked failed; the others' epoch is committed).
    fn run_epoch(&mut self, force: bool) -> Result<()> {
        let joins = self.take_joins();
        let has_new = self.readers.has_new();
        let sink_snapshot = self.sinks.iter().any(|s| s.snapshot_pending);
        if !force && !has_new && joins.is_empty() && !sink_snapshot && self.pending.is_empty() {
            let live = self.views.iter().filter(|v| v.failed.is_none());
            self.stats.current(live.map(|v| v.id));
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
                Err(e) => self.fail_backfill(j, e),
            }
        }
        let read = self.readers.read(&self.skipped);
        let mut outcomes = self.barrier(epoch);
        // In creation order, so the error reported is that of the most upstream failing view
        // (the views over it fail with "its input failed").
        outcomes.sort_by_key(|(id, _)| self.views.iter().position(|v| v.id == *id));
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
        let keys = batch.len();
        let started = Instant::now();
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
        self.stats
            .committed(epoch, keys, started.elapsed(), deltas.keys().copied());
        self.readers.publish();
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

    /// The caught-up backfills, out of `joining`; one canceled meanwhile fails instead.
    fn take_joins(&mut self) -> Vec<Joining> {
        let (ready, waiting): (Vec<Joining>, _) = std::mem::take(&mut self.joining)
            .into_iter()
            .partition(|j| j.caught_up);
        self.joining = waiting;
        let (canceled, ready): (Vec<Joining>, _) = ready
            .into_iter()
            .partition(|j| j.cancel.load(Ordering::Relaxed));
        for j in canceled {
            self.fail_backfill(j, super::actor::canceled());
        }
        ready
    }

    /// Brings a caught-up view into this epoch: it reads its gap up to the readers, takes its
    /// upstream views' committed rows (a new view), and is subscribed.
    fn join(&mut self, view: &ViewHandle, new_view: bool) -> Result<()> {
        let mut offsets = Vec::new();
        let mut snapshots = Vec::new();
        for (i, input) in view.inputs.iter().enumerate() {
            offsets.push(match *input {
                Input::Topic(r) => self.readers.positions(r),
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

    /// Sends epoch `epoch`'s barrier to every running view and waits for all of them.
    fn barrier(&mut self, epoch: u64) -> Vec<(u64, EpochOutcome)> {
        let mut waiting = 0;
        for view in self.views.iter().filter(|v| v.failed.is_none()) {
            let offsets: Offsets = view
                .inputs
                .iter()
                .map(|i| match *i {
                    Input::Topic(r) => self.readers.positions(r),
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
        view.stop();
    }

    /// After a failed commit: the readers, views and sinks go back to the committed epoch.
    fn rewind(&mut self) -> Result<()> {
        for sink in &self.sinks {
            sink.rewind(self.store.as_ref())?;
        }
        self.readers.rewind();
        for view in self.views.iter().filter(|v| v.failed.is_none()) {
            let _ = view.sender.send(Message::Rewind);
        }
        Ok(())
    }

    fn drop_view(&mut self, view_id: u64, mut batch: WriteBatch) -> Result<()> {
        self.remove_view(view_id);
        self.stats.forget(view_id);
        // A view restored at start-up may still be catching up: stop its backfill first.
        if let Some(pos) = self.joining.iter().position(|j| j.view.id == view_id) {
            let j = self.joining.remove(pos);
            j.cancel.store(true, Ordering::Relaxed);
            j.view.stop();
            self.drop_unused_readers();
        }
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

/// A view's error, naming the view; a data exception (a row an expression fails on) says how
/// to leave such rows out instead.
fn in_view(name: &str, e: WeirError) -> WeirError {
    let hint = match e.hint {
        None if crate::dataflow::ops::row_errors::is_data_exception(&e) => {
            Some(SKIP_HINT.to_string())
        }
        hint => hint,
    };
    WeirError {
        message: format!("{} (in materialized view \"{name}\")", e.message),
        hint,
        ..e
    }
}

const SKIP_HINT: &str = "to leave out the rows an expression fails on, create the view \
                         WITH (on_error = 'skip'); they are then listed in weir_skipped_rows";
