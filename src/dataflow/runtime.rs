//! The epoch loop: one thread that drives every view's dataflow.
//!
//! Every `barrier_interval_ms` (or at once on FLUSH / CREATE MATERIALIZED VIEW) it runs an
//! epoch: for each view in creation order (so upstream views come before the views that read
//! them) it feeds the new records of its input topics and the changes its upstream views made
//! in this epoch, closes the epoch with a barrier, and applies the output to the view's rows.
//! Everything the epoch changed — view rows, operator state and the offsets each view has
//! read up to — goes into ONE atomic store commit. Readers therefore see whole epochs only, and
//! after a crash each view resumes from offsets that match its state exactly.
//!
//! A new view reads its topics from offset 0 and takes its upstream views' committed rows as
//! its first input (backfill); `add_view` returns when that epoch is committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::oneshot;

use super::ChangeBatch;
use super::graph::Dataflow;
use super::topic_sink::TopicSink;
use super::view_rows::ViewRows;
use crate::catalog::table::decode_changelog;
use crate::config::SOURCE_READ_RECORDS_MAX;
use crate::error::{Result, WeirError};
use crate::formats::{self, Format};
use crate::state::{StateStore, WriteBatch, keys};
use crate::topics::Topic;

/// How a topic's records become rows.
pub enum Decoding {
    /// A source: each record is one row in `format`.
    Rows { format: Format, schema: SchemaRef },
    /// A table's changelog: `{"op", "row"}` records with their weights.
    Changelog { schema: SchemaRef },
}

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

struct RunningView {
    flow: ViewFlow,
    /// Per input, per partition: the next offset to read (topic inputs only).
    offsets: Vec<Vec<u64>>,
    /// The offsets as last committed (written again only when they move).
    committed_offsets: Option<Vec<Vec<u64>>>,
    /// Per input: whether an upstream view's rows must still be fed as a snapshot.
    snapshot_pending: Vec<bool>,
    /// Set when the view's dataflow failed; it is no longer updated (its rows stay readable).
    failed: Option<String>,
}

enum Command {
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
}

/// Handle to the epoch thread.
pub struct Runtime {
    commands: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    records_skipped: SkippedRecords,
}

impl Runtime {
    /// Starts the epoch thread. Every commit takes `epoch_lock` exclusively; a query that
    /// reads several views holds it shared, so it sees them all at one epoch.
    pub fn start(
        store: Arc<dyn StateStore>,
        barrier_interval: Duration,
        epoch_lock: EpochLock,
    ) -> Runtime {
        let (tx, rx) = mpsc::channel();
        let records_skipped = SkippedRecords::default();
        let mut epochs = Epochs {
            store,
            epoch_lock,
            views: Vec::new(),
            records_skipped: records_skipped.clone(),
            pending: WriteBatch::default(),
            sinks: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("weir-epochs".into())
            .spawn(move || epochs.run(rx, barrier_interval))
            .expect("spawn epoch thread");
        Runtime {
            commands: Some(tx),
            thread: Some(thread),
            records_skipped,
        }
    }

    /// The skipped-record counters (read by the `weir_skipped_records` system table).
    pub fn skipped_records(&self) -> SkippedRecords {
        self.records_skipped.clone()
    }

    async fn call(&self, make: impl FnOnce(oneshot::Sender<Result<()>>) -> Command) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .as_ref()
            .ok_or_else(|| WeirError::internal("dataflow runtime stopped"))?
            .send(make(tx))
            .map_err(|_| WeirError::internal("dataflow runtime stopped"))?;
        rx.await
            .map_err(|_| WeirError::internal("dataflow runtime stopped"))?
    }

    /// Starts running a view and returns once its backfill epoch is committed. With `restore`
    /// its operator state and offsets are loaded from the store (start-up) instead.
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

    /// Like `add_view` for a new view, committing `extra` (its catalog entry) in the same
    /// atomic write as its backfill.
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
        if let Some(tx) = &self.commands {
            let _ = tx.send(Command::Start);
        }
    }

    /// Runs an epoch now and returns once it is committed and visible.
    pub async fn flush(&self) -> Result<()> {
        self.call(|reply| Command::Flush { reply }).await
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.commands.take();
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

struct Epochs {
    store: Arc<dyn StateStore>,
    epoch_lock: EpochLock,
    views: Vec<RunningView>,
    records_skipped: SkippedRecords,
    /// Writes to commit with the next epoch (a new view's catalog entry).
    pending: WriteBatch,
    sinks: Vec<TopicSink>,
}

impl Epochs {
    fn run(&mut self, rx: Receiver<Command>, interval: Duration) {
        let mut next_barrier = Instant::now() + interval;
        let mut started = false;
        loop {
            let wait = if started {
                next_barrier.saturating_duration_since(Instant::now())
            } else {
                Duration::from_secs(3600)
            };
            match rx.recv_timeout(wait) {
                Ok(Command::Start) => {
                    started = true;
                    next_barrier = Instant::now() + interval;
                }
                Ok(Command::AddView {
                    flow,
                    restore,
                    extra,
                    reply,
                }) => {
                    self.pending = extra;
                    let _ = reply.send(self.add_view(*flow, restore));
                }
                Ok(Command::DropView {
                    view_id,
                    batch,
                    reply,
                }) => {
                    let _ = reply.send(self.drop_view(view_id, batch));
                }
                Ok(Command::AddSink {
                    sink,
                    restore,
                    extra,
                    reply,
                }) => {
                    let _ = reply.send(self.add_sink(*sink, restore, extra));
                }
                Ok(Command::DropSink {
                    sink_id,
                    mut batch,
                    reply,
                }) => {
                    self.sinks.retain(|s| s.id != sink_id);
                    batch.delete(super::topic_sink::offsets_key(sink_id));
                    let _ = reply.send(self.commit(batch));
                }
                Ok(Command::Flush { reply }) => {
                    let _ = reply.send(self.epoch());
                    next_barrier = Instant::now() + interval;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.epoch() {
                        tracing::error!("epoch failed: {e}");
                    }
                    next_barrier = Instant::now() + interval;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    fn add_view(&mut self, mut flow: ViewFlow, restore: bool) -> Result<()> {
        let partitions: Vec<Vec<u64>> = flow
            .inputs
            .iter()
            .map(|i| match i {
                InputSource::Topic { topic, .. } => vec![0; topic.partitions() as usize],
                InputSource::View { .. } => Vec::new(),
            })
            .collect();
        let mut offsets = partitions;
        if restore {
            flow.dataflow.restore(flow.id, self.store.as_ref())?;
            if let Some(bytes) = self.store.get(&keys::offsets_key(flow.id))? {
                offsets = serde_json::from_slice(&bytes)
                    .map_err(|e| WeirError::internal(format!("corrupt offsets: {e}")))?;
            }
        }
        let snapshot_pending = flow
            .inputs
            .iter()
            .map(|i| !restore && matches!(i, InputSource::View { .. }))
            .collect();
        let id = flow.id;
        let committed_offsets = if restore { Some(offsets.clone()) } else { None };
        self.views.push(RunningView {
            flow,
            offsets,
            committed_offsets,
            snapshot_pending,
            failed: None,
        });
        if restore {
            self.pending = WriteBatch::default();
            return Ok(());
        }
        let result = self.epoch();
        if result.is_err() {
            self.views.retain(|v| v.flow.id != id);
        }
        result
    }

    fn drop_view(&mut self, view_id: u64, mut batch: WriteBatch) -> Result<()> {
        if let Some(pos) = self.views.iter().position(|v| v.flow.id == view_id) {
            let view = self.views.remove(pos);
            view.flow.rows.delete_all(self.store.as_ref(), &mut batch)?;
        }
        for (k, _) in self.store.scan_prefix(&keys::view_state_prefix(view_id))? {
            batch.delete(k);
        }
        batch.delete(keys::offsets_key(view_id));
        self.commit(batch)
    }

    /// One epoch over every view, committed atomically. When a view's dataflow fails (say, a
    /// division by zero in its expression) nothing of the epoch is committed: every view goes
    /// back to its committed state, the failing view is marked failed and left out from then
    /// on, and the error goes to whoever asked (FLUSH, CREATE).
    fn epoch(&mut self) -> Result<()> {
        let mut batch = std::mem::take(&mut self.pending);
        let mut deltas: HashMap<u64, ChangeBatch> = HashMap::new();
        let mut ends: HashMap<(String, u32), u64> = HashMap::new();
        for i in 0..self.views.len() {
            if self.views[i].failed.is_some() {
                continue;
            }
            let advanced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.advance(i, &mut batch, &mut deltas, &mut ends)
            }))
            .unwrap_or_else(|panic| Err(WeirError::from_panic(&*panic)));
            if let Err(e) = advanced {
                let view = &mut self.views[i];
                tracing::error!(view = view.flow.name, "materialized view failed: {e}");
                view.failed = Some(e.message.clone());
                view.flow.rows.set_failed(&e.message);
                self.reload()?;
                return Err(in_view(&self.views[i].flow.name, e));
            }
        }
        if let Err(e) = self
            .write_sinks(&deltas, &mut batch)
            .and_then(|()| self.commit(batch))
        {
            // Nothing of the epoch is committed: take back what the sinks wrote.
            for sink in &self.sinks {
                sink.rewind(self.store.as_ref())?;
            }
            self.reload()?;
            return Err(e);
        }
        for view in &mut self.views {
            view.committed_offsets = Some(view.offsets.clone());
        }
        for sink in &mut self.sinks {
            sink.publish();
            sink.snapshot_pending = false;
        }
        Ok(())
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
        self.pending = extra;
        self.sinks.push(sink);
        let result = self.epoch();
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
                .find(|v| v.flow.id == sink.view_id && v.failed.is_none())
            else {
                continue;
            };
            let mut changes = Vec::new();
            if sink.snapshot_pending {
                changes.push(view.flow.rows.scan(self.store.as_ref())?);
            }
            changes.extend(deltas.get(&sink.view_id).cloned());
            let changes = ChangeBatch::concat(&sink.schema, &changes)?;
            if !changes.is_empty() || sink.snapshot_pending {
                sink.write(&changes, batch)?;
            }
        }
        Ok(())
    }

    /// Runs view `i` through the epoch: feeds its inputs, closes it with a barrier and adds
    /// its row changes, operator state and offsets to `batch`.
    /// `ends` fixes, per topic partition, the offset this epoch reads up to: the first view to
    /// read a partition sets it, so every view of the epoch has seen the same records.
    fn advance(
        &mut self,
        i: usize,
        batch: &mut WriteBatch,
        deltas: &mut HashMap<u64, ChangeBatch>,
        ends: &mut HashMap<(String, u32), u64>,
    ) -> Result<()> {
        let store = self.store.clone();
        let (done, rest) = self.views.split_at_mut(i);
        let view = &mut rest[0];
        let mut outputs = Vec::new();
        for input in 0..view.flow.inputs.len() {
            match &view.flow.inputs[input] {
                InputSource::Topic { topic, decoding } => {
                    for p in 0..topic.partitions() {
                        let end = match ends.get(&(topic.name().to_string(), p)) {
                            Some(&end) => end,
                            None => {
                                let end = topic.end_offset(p)?;
                                ends.insert((topic.name().to_string(), p), end);
                                end
                            }
                        };
                        while view.offsets[input][p as usize] < end {
                            let from = view.offsets[input][p as usize];
                            let want = ((end - from) as usize).min(SOURCE_READ_RECORDS_MAX);
                            let records = topic.read(p, from, want)?;
                            let Some((last, _)) = records.last() else {
                                break;
                            };
                            view.offsets[input][p as usize] = last + 1;
                            let values: Vec<&[u8]> =
                                records.iter().map(|(_, r)| r.value.as_ref()).collect();
                            let (changes, skipped) = decode(decoding, &values)?;
                            if skipped > 0 {
                                *self
                                    .records_skipped
                                    .lock()
                                    .expect("skipped lock")
                                    .entry((view.flow.id, topic.name().to_string()))
                                    .or_default() += skipped as u64;
                                tracing::warn!(
                                    topic = topic.name(),
                                    skipped,
                                    "records that do not decode were skipped"
                                );
                            }
                            outputs.extend(view.flow.dataflow.push(input, &changes)?);
                        }
                    }
                }
                InputSource::View { view_id } => {
                    let upstream = done
                        .iter()
                        .find(|v| v.flow.id == *view_id)
                        .ok_or_else(|| WeirError::internal("a view runs before its input"))?;
                    if let Some(reason) = &upstream.failed {
                        return Err(WeirError::internal(format!(
                            "its input \"{}\" failed: {reason}",
                            upstream.flow.name
                        )));
                    }
                    if view.snapshot_pending[input] {
                        let snapshot = upstream.flow.rows.scan(store.as_ref())?;
                        outputs.extend(view.flow.dataflow.push(input, &snapshot)?);
                        view.snapshot_pending[input] = false;
                    }
                    if let Some(delta) = deltas.get(view_id) {
                        outputs.extend(view.flow.dataflow.push(input, delta)?);
                    }
                }
            }
        }
        let delta = close_epoch(
            view.flow.id,
            &mut view.flow.dataflow,
            &view.flow.rows,
            outputs,
            store.as_ref(),
            batch,
        )?;
        if view.committed_offsets.as_ref() != Some(&view.offsets) {
            let offsets = serde_json::to_vec(&view.offsets)
                .map_err(|e| WeirError::internal(e.to_string()))?;
            batch.put(keys::offsets_key(view.flow.id), offsets);
        }
        deltas.insert(view.flow.id, delta);
        Ok(())
    }

    /// Puts every running view back to its committed state after a failed epoch.
    fn reload(&mut self) -> Result<()> {
        for view in &mut self.views {
            view.flow
                .dataflow
                .restore(view.flow.id, self.store.as_ref())?;
            let committed = self.store.get(&keys::offsets_key(view.flow.id))?;
            match committed {
                Some(bytes) => {
                    view.offsets = serde_json::from_slice(&bytes)
                        .map_err(|e| WeirError::internal(format!("corrupt offsets: {e}")))?;
                    view.committed_offsets = Some(view.offsets.clone());
                }
                None => {
                    // Never committed: a view still in its backfill starts over.
                    view.offsets
                        .iter_mut()
                        .for_each(|o| o.iter_mut().for_each(|x| *x = 0));
                    for (input, pending) in view.snapshot_pending.iter_mut().enumerate() {
                        *pending = matches!(view.flow.inputs[input], InputSource::View { .. });
                    }
                }
            }
        }
        Ok(())
    }
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

fn in_view(name: &str, e: WeirError) -> WeirError {
    WeirError {
        message: format!("{} (in materialized view \"{name}\")", e.message),
        ..e
    }
}

fn decode(decoding: &Decoding, values: &[&[u8]]) -> Result<(ChangeBatch, usize)> {
    match decoding {
        Decoding::Rows { format, schema } => {
            let decoded = formats::decode_records(*format, schema, values)?;
            Ok((ChangeBatch::inserts(decoded.batch), decoded.skipped))
        }
        Decoding::Changelog { schema } => {
            let (rows, weights) = decode_changelog(schema, values)?;
            let skipped = values.len() - rows.num_rows();
            Ok((ChangeBatch::new(rows, weights), skipped))
        }
    }
}
