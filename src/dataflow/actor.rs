//! A view's actor: the thread that runs one materialized view's dataflow.
//!
//! The actor consumes one stream of [`Message`]s. `Data` goes through the dataflow at once; a
//! `Barrier` closes the epoch once every sender of the view (the coordinator, and each upstream
//! view) has sent its barrier for it: the operators release what they held back, the output is
//! applied to the view's rows, and the rows, changed operator state and offsets go, as one
//! [`WriteBatch`], back to the coordinator, which commits every view's batch of the epoch in one
//! atomic write. The view's changes go on to the views that read it, in the same epoch.
//!
//! A new view first catches up from its topics' history on its own thread ([`Backfill`]), in
//! steps of [`BACKFILL_STEP_RECORDS`] records. Whenever the output waiting for the view's rows
//! reaches [`BACKFILL_PENDING_ROWS_MAX`] rows, or operator state outgrows its memory budget
//! (`state_cache`), it is committed straight to the store (nobody can read the view yet). Other views keep committing epochs meanwhile. When it is within
//! [`JOIN_GAP_RECORDS_MAX`] records of the shared readers it tells the coordinator, which lets it
//! join the next epoch.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use super::ChangeBatch;
use super::graph::Dataflow;
use super::jobs::{JobProgress, Jobs};
use super::runtime::{Command, SkippedRecords};
use super::state_cache::StateCache;
use super::view_rows::ViewRows;
use crate::error::{Result, WeirError};
use crate::sources::reader::{Decoding, RangeRead, read_range};
use crate::state::{StateStore, WriteBatch, keys};
use crate::topics::Topic;

/// Records a backfill reads between two looks at its cancel flag and progress.
pub const BACKFILL_STEP_RECORDS: u64 = 262_144;
/// Output rows a backfill holds before applying them to the view's rows in a commit: bounds
/// its memory. An aggregate holds its output until the end, so its backfill commits once,
/// writing each group once, unless operator state outgrows its memory budget
/// (`state_cache`): a step is then committed so that its groups can be forgotten.
pub const BACKFILL_PENDING_ROWS_MAX: usize = 262_144;
/// How far (in records, over all its topic partitions) a backfill may be behind the shared
/// readers when it joins the epochs: the gap it reads in its first epoch.
pub const JOIN_GAP_RECORDS_MAX: u64 = 65_536;
/// Messages a view's channel holds before the sender waits (each up to one read step of rows).
pub const MESSAGE_CHANNEL_CAPACITY: usize = 64;

/// What feeds one input of a view.
pub enum InputSource {
    Topic {
        topic: Arc<Topic>,
        decoding: Decoding,
    },
    View {
        view_id: u64,
    },
}

/// A view ready to run: its dataflow, its inputs and where its rows go.
pub struct ViewFlow {
    pub id: u64,
    pub name: String,
    pub dataflow: Dataflow,
    pub inputs: Vec<InputSource>,
    pub rows: Arc<ViewRows>,
}

/// Per input, per partition: the next offset to read (empty for view inputs).
pub type Offsets = Vec<Vec<u64>>;

/// Per input, per partition: the largest event time read (None before the first row).
pub type EventTimes = Vec<Vec<Option<i64>>>;

/// What flows into a view's actor.
pub enum Message {
    /// Changes arriving on input `input`.
    Data {
        input: usize,
        batch: ChangeBatch,
    },
    /// One sender's end of `epoch`. The coordinator's barrier carries the offsets the view's
    /// topic inputs have now been read up to; an upstream view's carries none.
    Barrier {
        epoch: u64,
        offsets: Option<Offsets>,
    },
    /// An upstream view failed in this epoch: counts as its barrier, and fails this view too
    /// (with the upstream's error, so its SQLSTATE reaches whoever waits).
    InputFailed {
        epoch: u64,
        error: WeirError,
    },
    /// The view joins the epochs: read the gap up to `offsets`, then take each upstream view's
    /// committed rows as its first input (`snapshots`: input index and rows).
    Join {
        offsets: Offsets,
        snapshots: Vec<(usize, Arc<ViewRows>)>,
    },
    /// From now on, send this view's changes to `sender` as inputs `inputs`.
    AddDownstream {
        view_id: u64,
        sender: SyncSender<Message>,
        inputs: Vec<usize>,
    },
    RemoveDownstream {
        view_id: u64,
    },
    /// The largest event time the shared reader read in `partition` of input `input` in
    /// this epoch (sent after that data).
    EventTime {
        input: usize,
        partition: u32,
        max: i64,
    },
    /// The epoch's commit failed: go back to the committed state.
    Rewind,
}

/// A view's result for one epoch, or the reason it failed.
pub type EpochOutcome = Result<EpochOutput>;

pub struct EpochOutput {
    pub batch: WriteBatch,
    /// The view's consolidated changes (for sinks).
    pub delta: ChangeBatch,
}

/// A backfill to run before the actor's message loop.
pub struct Backfill {
    /// Per input: the shared reader's published offsets (None for view inputs).
    pub targets: Vec<Option<Arc<Mutex<Vec<u64>>>>>,
    pub cancel: super::runtime::CancelFlag,
    pub jobs: Jobs,
}

struct Downstream {
    view_id: u64,
    sender: SyncSender<Message>,
    inputs: Vec<usize>,
}

pub struct ViewActor {
    flow: ViewFlow,
    store: Arc<dyn StateStore>,
    offsets: Offsets,
    /// The offsets last put into a batch (written again only when they move).
    written_offsets: Option<Offsets>,
    /// Per input, per partition: the largest event time read (inputs with a watermark).
    event_times: EventTimes,
    written_event_times: EventTimes,
    downstream: Vec<Downstream>,
    events: Sender<Command>,
    skipped: SkippedRecords,
    /// The committed operator state is still to be loaded (by the view's own thread, first).
    state_pending: bool,
    /// The memory budget of operator state, which the view's operators share with all others.
    cache: Arc<StateCache>,
}

impl ViewActor {
    /// A new view, starting from offset 0 of every topic.
    pub fn new(
        mut flow: ViewFlow,
        store: Arc<dyn StateStore>,
        cache: Arc<StateCache>,
        events: Sender<Command>,
        skipped: SkippedRecords,
    ) -> ViewActor {
        flow.dataflow.attach(flow.id, &store, &cache);
        let offsets: Offsets = flow
            .inputs
            .iter()
            .map(|i| match i {
                InputSource::Topic { topic, .. } => vec![0; topic.partitions() as usize],
                InputSource::View { .. } => Vec::new(),
            })
            .collect();
        let event_times: EventTimes = offsets.iter().map(|o| vec![None; o.len()]).collect();
        ViewActor {
            flow,
            store,
            offsets,
            written_offsets: None,
            written_event_times: event_times.clone(),
            event_times,
            downstream: Vec::new(),
            events,
            skipped,
            state_pending: false,
            cache,
        }
    }

    /// Loads the view's committed operator state and offsets (after a failed commit).
    pub fn restore(&mut self) -> Result<()> {
        self.load_offsets()?;
        self.flow
            .dataflow
            .restore(self.flow.id, self.store.as_ref())
    }

    /// At start-up: loads the view's committed offsets and event times (a few keys), and
    /// leaves its operator state, which may be large, for the view's thread to load when it
    /// starts, so that start-up does not wait for it (see "Recovery" in
    /// docs/architecture.md).
    pub fn restore_offsets(&mut self) -> Result<()> {
        self.load_offsets()?;
        self.state_pending = true;
        Ok(())
    }

    /// Reads the committed offsets and event times.
    fn load_offsets(&mut self) -> Result<()> {
        if let Some(bytes) = self.store.get(&keys::offsets_key(self.flow.id))? {
            self.offsets = serde_json::from_slice(&bytes)
                .map_err(|e| WeirError::internal(format!("corrupt offsets: {e}")))?;
        }
        self.written_offsets = Some(self.offsets.clone());
        if let Some(bytes) = self.store.get(&keys::event_times_key(self.flow.id))? {
            self.event_times = serde_json::from_slice(&bytes)
                .map_err(|e| WeirError::internal(format!("corrupt event times: {e}")))?;
        }
        self.written_event_times = self.event_times.clone();
        Ok(())
    }

    pub fn id(&self) -> u64 {
        self.flow.id
    }

    pub fn offsets(&self) -> &Offsets {
        &self.offsets
    }

    pub fn flow(&self) -> &ViewFlow {
        &self.flow
    }

    /// Whether the view has committed offsets (it was restored).
    pub fn restored(&self) -> bool {
        self.written_offsets.is_some()
    }

    /// Loads the operator state [`ViewActor::restore_offsets`] left for the view's thread.
    fn load_pending_state(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.state_pending) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.flow
            .dataflow
            .restore(self.flow.id, self.store.as_ref())?;
        tracing::info!(
            view = self.flow.name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "operator state loaded"
        );
        Ok(())
    }

    /// The thread's body: the operator state left to load, the backfill if any, then
    /// messages until the channel closes. A failure to load the state fails the view (its
    /// backfill, or its first epoch).
    pub fn run(mut self, messages: Receiver<Message>, backfill: Option<Backfill>) {
        let mut failure: Option<WeirError> = None;
        if let Some(backfill) = backfill {
            let outcome = guarded(|| {
                self.load_pending_state()?;
                self.backfill(&backfill)
            });
            backfill
                .jobs
                .lock()
                .expect("jobs lock")
                .remove(&self.flow.id);
            let view_id = self.flow.id;
            if let Err(error) = outcome {
                let _ = self.events.send(Command::BackfillFailed { view_id, error });
                return;
            }
            if self.events.send(Command::CaughtUp { view_id }).is_err() {
                return;
            }
        } else {
            failure = guarded(|| self.load_pending_state()).err();
        }
        let senders = 1 + self
            .flow
            .inputs
            .iter()
            .filter_map(|i| match i {
                InputSource::View { view_id } => Some(*view_id),
                InputSource::Topic { .. } => None,
            })
            .collect::<HashSet<_>>()
            .len();
        let mut outputs = Vec::new();
        let mut barriers = 0;
        let mut epoch_offsets = None;
        for message in messages {
            match message {
                Message::Data { input, batch } => {
                    if failure.is_none() {
                        match guarded(|| self.flow.dataflow.push(input, &batch)) {
                            Ok(out) => outputs.extend(out),
                            Err(e) => failure = Some(e),
                        }
                    }
                }
                Message::Barrier { epoch, offsets } => {
                    barriers += 1;
                    if offsets.is_some() {
                        epoch_offsets = offsets;
                    }
                    if barriers == senders {
                        self.end_epoch(
                            epoch,
                            std::mem::take(&mut outputs),
                            epoch_offsets.take(),
                            failure.take(),
                        );
                        barriers = 0;
                    }
                }
                Message::InputFailed { epoch, error } => {
                    barriers += 1;
                    failure.get_or_insert(error);
                    if barriers == senders {
                        self.end_epoch(epoch, std::mem::take(&mut outputs), None, failure.take());
                        barriers = 0;
                    }
                }
                Message::Join { offsets, snapshots } => {
                    if let Err(e) = guarded(|| self.join(offsets, &snapshots, &mut outputs)) {
                        failure = Some(e);
                    }
                }
                Message::AddDownstream {
                    view_id,
                    sender,
                    inputs,
                } => self.downstream.push(Downstream {
                    view_id,
                    sender,
                    inputs,
                }),
                Message::RemoveDownstream { view_id } => {
                    self.downstream.retain(|d| d.view_id != view_id)
                }
                Message::EventTime {
                    input,
                    partition,
                    max,
                } => self.observe(input, partition, max),
                Message::Rewind => {
                    outputs.clear();
                    failure = self.restore().err();
                }
            }
        }
    }

    /// Closes the epoch: sends the view's changes downstream and its batch (or failure) to the
    /// coordinator.
    fn end_epoch(
        &mut self,
        epoch: u64,
        outputs: Vec<ChangeBatch>,
        offsets: Option<Offsets>,
        failure: Option<WeirError>,
    ) {
        if let Some(offsets) = offsets {
            self.offsets = offsets;
        }
        let outcome = match failure {
            Some(e) => Err(e),
            None => guarded(|| self.close(outputs)),
        };
        for d in &self.downstream {
            let sent = match &outcome {
                Ok(out) => d
                    .inputs
                    .iter()
                    .try_for_each(|&input| {
                        d.sender.send(Message::Data {
                            input,
                            batch: out.delta.clone(),
                        })
                    })
                    .and_then(|()| {
                        d.sender.send(Message::Barrier {
                            epoch,
                            offsets: None,
                        })
                    }),
                Err(e) => d.sender.send(Message::InputFailed {
                    epoch,
                    error: WeirError {
                        message: format!("its input \"{}\" failed: {}", self.flow.name, e.message),
                        ..e.clone()
                    },
                }),
            };
            if sent.is_err() {
                tracing::warn!(view = d.view_id, "a downstream view stopped");
            }
        }
        let _ = self.events.send(Command::Acked {
            view_id: self.flow.id,
            epoch,
            outcome,
        });
    }

    /// Input `input`, partition `partition` has read rows up to event time `max`.
    fn observe(&mut self, input: usize, partition: u32, max: i64) {
        if let Some(t) = self
            .event_times
            .get_mut(input)
            .and_then(|p| p.get_mut(partition as usize))
        {
            *t = Some(t.map_or(max, |t| t.max(max)));
        }
    }

    /// Gives the dataflow each input's watermark: the smallest over its partitions of the
    /// largest event time read, minus the source's delay (none until every partition has
    /// had a row).
    fn pass_watermarks(&mut self) -> Result<()> {
        for (input, source) in self.flow.inputs.iter().enumerate() {
            let InputSource::Topic {
                decoding:
                    Decoding::Rows {
                        event_time: Some(event_time),
                        ..
                    },
                ..
            } = source
            else {
                continue;
            };
            let least = self.event_times[input]
                .iter()
                .copied()
                .try_fold(i64::MAX, |least, t| t.map(|t| least.min(t)));
            if let Some(least) = least {
                let watermark = least.saturating_sub(event_time.delay_micros);
                self.flow
                    .dataflow
                    .watermark(input, event_time.column, watermark)?;
            }
        }
        Ok(())
    }

    /// The epoch's output applied: view rows, operator state and offsets in one batch.
    fn close(&mut self, outputs: Vec<ChangeBatch>) -> Result<EpochOutput> {
        self.pass_watermarks()?;
        let mut batch = WriteBatch::default();
        let delta = close_epoch(
            self.flow.id,
            &mut self.flow.dataflow,
            &self.flow.rows,
            outputs,
            self.store.as_ref(),
            &mut batch,
        )?;
        if self.written_offsets.as_ref() != Some(&self.offsets) {
            let offsets = serde_json::to_vec(&self.offsets)
                .map_err(|e| WeirError::internal(e.to_string()))?;
            batch.put(keys::offsets_key(self.flow.id), offsets);
            self.written_offsets = Some(self.offsets.clone());
        }
        if self.written_event_times != self.event_times {
            let times = serde_json::to_vec(&self.event_times)
                .map_err(|e| WeirError::internal(e.to_string()))?;
            batch.put(keys::event_times_key(self.flow.id), times);
            self.written_event_times = self.event_times.clone();
        }
        Ok(EpochOutput { batch, delta })
    }

    /// Reads the gap between the view's offsets and `offsets`, then its upstream snapshots.
    fn join(
        &mut self,
        offsets: Offsets,
        snapshots: &[(usize, Arc<ViewRows>)],
        outputs: &mut Vec<ChangeBatch>,
    ) -> Result<()> {
        for (input, to) in offsets.iter().enumerate() {
            for (p, &end) in to.iter().enumerate() {
                let read = self.read_input(input, p as u32, end, outputs)?;
                if read.next < end {
                    return Err(ends_early(input, p, read.next, end));
                }
            }
        }
        for (input, rows) in snapshots {
            let snapshot = rows.scan(self.store.as_ref())?;
            outputs.extend(self.flow.dataflow.push(*input, &snapshot)?);
        }
        Ok(())
    }

    /// Reads topic input `input`, partition `p`, from the view's offset up to `to` into the
    /// dataflow, and moves the offset.
    fn read_input(
        &mut self,
        input: usize,
        p: u32,
        to: u64,
        outputs: &mut Vec<ChangeBatch>,
    ) -> Result<RangeRead> {
        let InputSource::Topic { topic, decoding } = &self.flow.inputs[input] else {
            return Err(WeirError::internal("offsets given for a view input"));
        };
        let from = self.offsets[input][p as usize];
        let dataflow = &mut self.flow.dataflow;
        let read = read_range(topic, decoding, p, from, to, |changes| {
            outputs.extend(dataflow.push(input, &changes)?);
            Ok(())
        })?;

        self.offsets[input][p as usize] = read.next;
        if read.skipped > 0 {
            *self
                .skipped
                .lock()
                .expect("skipped lock")
                .entry((self.flow.id, topic.name().to_string()))
                .or_default() += read.skipped;
        }
        if let Some(t) = read.max_event_time {
            self.observe(input, p, t);
        }
        Ok(read)
    }

    /// Catches up with the shared readers until within [`JOIN_GAP_RECORDS_MAX`] of them,
    /// committing whenever [`BACKFILL_PENDING_ROWS_MAX`] output rows wait.
    fn backfill(&mut self, backfill: &Backfill) -> Result<()> {
        let started = std::time::SystemTime::now();
        let start_total: u64 = self.offsets.iter().flatten().sum();
        let mut outputs: Vec<ChangeBatch> = Vec::new();
        loop {
            let targets: Vec<Option<Vec<u64>>> = backfill
                .targets
                .iter()
                .map(|t| {
                    t.as_ref()
                        .map(|t| t.lock().expect("positions lock").clone())
                })
                .collect();
            let behind: u64 = self.behind(&targets);
            let total: u64 = targets.iter().flatten().flatten().sum::<u64>() - start_total;
            self.report(backfill, started, total - behind, total);
            if behind <= JOIN_GAP_RECORDS_MAX {
                break;
            }
            for (input, target) in targets.iter().enumerate() {
                let Some(target) = target else { continue };
                for (p, &end) in target.iter().enumerate() {
                    while self.offsets[input][p] < end {
                        if backfill.cancel.load(Ordering::Relaxed) {
                            return Err(canceled());
                        }
                        let to = end.min(self.offsets[input][p] + BACKFILL_STEP_RECORDS);
                        let read = self.read_input(input, p as u32, to, &mut outputs)?;
                        if read.next < to {
                            return Err(ends_early(input, p, read.next, to));
                        }
                        let pending: usize = outputs.iter().map(ChangeBatch::len).sum();
                        if pending >= BACKFILL_PENDING_ROWS_MAX || self.cache.over_budget() {
                            self.commit_step(std::mem::take(&mut outputs))?;
                        }
                        let done: u64 = self.offsets.iter().flatten().sum::<u64>();
                        self.report(backfill, started, done - start_total, total);
                    }
                }
            }
        }
        self.commit_step(outputs)
    }

    /// Records the view's topic inputs are behind `targets`, over all partitions.
    fn behind(&self, targets: &[Option<Vec<u64>>]) -> u64 {
        targets
            .iter()
            .enumerate()
            .filter_map(|(input, t)| t.as_ref().map(|t| (input, t)))
            .flat_map(|(input, t)| {
                t.iter()
                    .zip(&self.offsets[input])
                    .map(|(end, at)| end.saturating_sub(*at))
            })
            .sum()
    }

    fn report(&self, backfill: &Backfill, started: std::time::SystemTime, read: u64, total: u64) {
        backfill.jobs.lock().expect("jobs lock").insert(
            self.flow.id,
            JobProgress {
                view: self.flow.name.clone(),
                records_read: read,
                records_total: total,
                started,
            },
        );
    }

    /// Commits a backfill step straight to the store: the view is not readable yet.
    fn commit_step(&mut self, outputs: Vec<ChangeBatch>) -> Result<()> {
        let out = self.close(outputs)?;
        self.store.commit(out.batch)
    }
}

/// The error of a CREATE canceled during its backfill.
pub fn canceled() -> WeirError {
    WeirError::new(
        crate::error::ErrorKind::QueryCanceled,
        "canceling statement due to user request",
    )
}

fn ends_early(input: usize, partition: usize, at: u64, want: u64) -> WeirError {
    WeirError::internal(format!(
        "input {input} partition {partition} ends at offset {at}, before {want}"
    ))
}

/// Runs `f`, turning a panic (a bug, never expected) into an error of this view only.
pub(super) fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(WeirError::from_panic(&*panic)))
}

/// Ends one view's epoch: the dataflow's barrier, then the epoch's output applied to the view's
/// rows and the changed operator state, all into `batch`. Returns the view's consolidated
/// changes (what views over it receive). The Nexmark benchmark's engine-only mode drives a
/// dataflow with this too, so it measures exactly what an epoch does.
pub fn close_epoch(
    view_id: u64,
    dataflow: &mut Dataflow,
    rows: &ViewRows,
    mut outputs: Vec<ChangeBatch>,
    store: &dyn StateStore,
    batch: &mut WriteBatch,
) -> Result<ChangeBatch> {
    outputs.extend(dataflow.barrier()?);
    let delta = rows.apply(&outputs, store, batch)?;
    dataflow.checkpoint(view_id, batch)?;
    Ok(delta)
}
