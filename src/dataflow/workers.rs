//! A view's parallel workers: one thread per copy of the view's tree, and the exchanges that
//! route rows between them.
//!
//! The view's actor hands every step (a slice of an input batch, the barrier, a checkpoint, a
//! restore) to every worker, in the same order. The workers move in lockstep: a step goes
//! through the same exchanges on each of them (which exchanges depends only on the step's
//! input), and at each one every worker sends one piece, possibly empty, to every other and
//! waits for one from each. Each ordered pair of workers has its own channel per exchange,
//! so pieces arrive in step order and are concatenated in worker order: a key's rows reach
//! its operator in the order of the input batch, whatever the number of workers.
//!
//! A worker that fails (an expression error, a bug) sends the error on all its exchange
//! channels, so no other worker waits for it forever, and skips steps until the next restore.
//! A restore first waits until every worker has finished its earlier steps (`Quiesce`), then
//! each worker empties its channels and loads its state.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use super::ChangeBatch;
use super::actor::guarded;
use super::graph::{Node, StateByOperator, Worker, exchange_points};
use super::ops::Operator;
use super::vnode;
use crate::error::{Result, WeirError};
use crate::state::WriteBatch;

/// Steps a worker's queue holds before the actor waits for it (each up to one read step of
/// rows, divided among the workers).
pub const WORKER_STEP_QUEUE: usize = 16;

/// An exchange point: (operator id, input of that operator).
type Point = (u32, usize);

enum Piece {
    Rows(Vec<ChangeBatch>),
    Failed(WeirError),
}

/// One worker's ends of the exchange channels.
pub(super) struct Exchange {
    index: usize,
    workers: usize,
    /// By point: a sender to each worker (None for this worker itself).
    to: HashMap<Point, Vec<Option<Sender<Piece>>>>,
    /// By point: a receiver from each worker (None for this worker itself).
    from: HashMap<Point, Vec<Option<Receiver<Piece>>>>,
    vnodes: Vec<u16>,
}

impl Exchange {
    /// Sends each row of `batches` (arriving at `point` of `op`) to the worker owning its
    /// vnode and returns the rows this worker owns, from every worker, in worker order.
    pub(super) fn exchange(
        &mut self,
        point: Point,
        op: &dyn Operator,
        batches: Vec<ChangeBatch>,
    ) -> Result<Vec<ChangeBatch>> {
        let mut parts: Vec<Vec<ChangeBatch>> = (0..self.workers).map(|_| Vec::new()).collect();
        let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); self.workers];
        for batch in batches {
            if batch.is_empty() {
                continue;
            }
            op.vnodes(point.1, &batch, &mut self.vnodes)?;
            rows_of.iter_mut().for_each(Vec::clear);
            for (i, &v) in self.vnodes.iter().enumerate() {
                rows_of[vnode::owner(v, self.workers)].push(i as u32);
            }
            for (w, rows) in rows_of.iter().enumerate() {
                if rows.len() == batch.len() {
                    parts[w].push(batch.clone());
                } else if !rows.is_empty() {
                    parts[w].push(batch.take(rows)?);
                }
            }
        }
        let to = &self.to[&point];
        for (w, part) in parts.iter_mut().enumerate() {
            if let Some(sender) = &to[w] {
                // A worker that stopped has failed; its error reaches the actor on its own.
                let _ = sender.send(Piece::Rows(std::mem::take(part)));
            }
        }
        let mut out = Vec::new();
        for (w, receiver) in self.from[&point].iter().enumerate() {
            let Some(receiver) = receiver else {
                out.append(&mut parts[self.index]);
                continue;
            };
            match receiver.recv() {
                Ok(Piece::Rows(rows)) => out.extend(rows),
                Ok(Piece::Failed(e)) => return Err(e),
                Err(_) => return Err(WeirError::internal(format!("worker {w} stopped"))),
            }
        }
        Ok(out)
    }

    /// Tells every other worker, at every exchange, that this one failed with `error`.
    fn poison(&self, error: &WeirError) {
        for sender in self.to.values().flatten().flatten() {
            let _ = sender.send(Piece::Failed(error.clone()));
        }
    }

    /// Drops pieces left over from steps that failed.
    fn drain(&self) {
        for receiver in self.from.values().flatten().flatten() {
            while receiver.try_recv().is_ok() {}
        }
    }
}

enum Step {
    Push(usize, ChangeBatch),
    Barrier,
    Checkpoint(u64),
    Watermark(usize, usize, i64),
    /// Answer once every earlier step is done.
    Quiesce,
    Restore(u64, Arc<StateByOperator>),
}

enum Reply {
    /// Changes that reached the root.
    Output(Vec<ChangeBatch>),
    /// A push failed (the worker then skips steps until a restore).
    Failed(WeirError),
    /// A barrier, checkpoint, quiesce or restore is done (a checkpoint's state writes).
    Done(Result<Option<WriteBatch>>),
}

/// The threads of a view's workers, driven by the view's actor.
pub(super) struct Pool {
    steps: Vec<SyncSender<Step>>,
    replies: Receiver<Reply>,
}

impl Pool {
    /// Starts one thread per tree, wiring an exchange between every pair of workers at every
    /// exchange point.
    pub(super) fn start(trees: Vec<Node>) -> Pool {
        let workers = trees.len();
        let mut points = Vec::new();
        exchange_points(&trees[0], &mut points);
        let mut exchanges: Vec<Exchange> = (0..workers)
            .map(|index| Exchange {
                index,
                workers,
                to: HashMap::new(),
                from: HashMap::new(),
                vnodes: Vec::new(),
            })
            .collect();
        for &point in &points {
            for ex in &mut exchanges {
                ex.to.insert(point, (0..workers).map(|_| None).collect());
                ex.from.insert(point, (0..workers).map(|_| None).collect());
            }
            for sender in 0..workers {
                for receiver in (0..workers).filter(|&r| r != sender) {
                    let (tx, rx) = channel();
                    exchanges[sender].to.get_mut(&point).expect("point")[receiver] = Some(tx);
                    exchanges[receiver].from.get_mut(&point).expect("point")[sender] = Some(rx);
                }
            }
        }
        let (reply_tx, replies) = channel();
        let steps = trees
            .into_iter()
            .zip(exchanges)
            .enumerate()
            .map(|(index, (tree, exchange))| {
                let worker = Worker::new(tree, index, workers, Some(exchange));
                let (tx, rx) = sync_channel(WORKER_STEP_QUEUE);
                let replies = reply_tx.clone();
                std::thread::Builder::new()
                    .name(format!("weir-worker-{index}"))
                    .stack_size(crate::config::THREAD_STACK_BYTES)
                    .spawn(move || run(worker, rx, replies))
                    .expect("spawn a worker thread");
                tx
            })
            .collect();
        Pool { steps, replies }
    }

    fn send_all(&self, step: impl Fn() -> Step) -> Result<()> {
        for sender in &self.steps {
            sender
                .send(step())
                .map_err(|_| WeirError::internal("a worker thread stopped"))?;
        }
        Ok(())
    }

    /// Gives each worker a slice of `batch`; returns the output that has arrived so far.
    pub(super) fn push(&mut self, input: usize, batch: &ChangeBatch) -> Result<Vec<ChangeBatch>> {
        let workers = self.steps.len();
        let n = batch.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        for (w, sender) in self.steps.iter().enumerate() {
            let (from, to) = (n * w / workers, n * (w + 1) / workers);
            let slice = ChangeBatch::new(
                batch.rows.slice(from, to - from),
                batch.weights[from..to].to_vec(),
            );
            sender
                .send(Step::Push(input, slice))
                .map_err(|_| WeirError::internal("a worker thread stopped"))?;
        }
        let mut out = Vec::new();
        while let Ok(reply) = self.replies.try_recv() {
            match reply {
                Reply::Output(batches) => out.extend(batches),
                Reply::Failed(e) => return Err(e),
                Reply::Done(_) => return Err(WeirError::internal("a worker answered out of turn")),
            }
        }
        Ok(out)
    }

    /// Waits until every worker has answered the last step: the output that arrived
    /// meanwhile, and the checkpoints' writes.
    fn collect(&mut self) -> Result<(Vec<ChangeBatch>, Vec<WriteBatch>)> {
        let mut outputs = Vec::new();
        let mut writes = Vec::new();
        let mut failure = None;
        let mut done = 0;
        while done < self.steps.len() {
            let reply = self
                .replies
                .recv()
                .map_err(|_| WeirError::internal("the worker threads stopped"))?;
            match reply {
                Reply::Output(batches) => outputs.extend(batches),
                Reply::Failed(e) => {
                    failure.get_or_insert(e);
                }
                Reply::Done(result) => {
                    done += 1;
                    match result {
                        Ok(write) => writes.extend(write),
                        Err(e) => {
                            failure.get_or_insert(e);
                        }
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok((outputs, writes)),
        }
    }

    pub(super) fn barrier(&mut self) -> Result<Vec<ChangeBatch>> {
        self.send_all(|| Step::Barrier)?;
        Ok(self.collect()?.0)
    }

    pub(super) fn watermark(&mut self, input: usize, column: usize, value: i64) -> Result<()> {
        self.send_all(|| Step::Watermark(input, column, value))?;
        self.collect().map(|_| ())
    }

    pub(super) fn checkpoint(&mut self, view_id: u64, batch: &mut WriteBatch) -> Result<()> {
        self.send_all(|| Step::Checkpoint(view_id))?;
        for write in self.collect()?.1 {
            batch.append(write);
        }
        Ok(())
    }

    pub(super) fn restore(&mut self, view_id: u64, state: Arc<StateByOperator>) -> Result<()> {
        self.send_all(|| Step::Quiesce)?;
        // Earlier steps' failures are what the restore undoes.
        let _ = self.collect();
        self.send_all(|| Step::Restore(view_id, state.clone()))?;
        self.collect().map(|_| ())
    }
}

/// A worker thread: runs steps until the actor drops the pool.
fn run(mut worker: Worker, steps: Receiver<Step>, replies: Sender<Reply>) {
    let mut failure: Option<WeirError> = None;
    for step in steps {
        let reply = match step {
            Step::Push(input, batch) => {
                if failure.is_some() {
                    continue;
                }
                match guarded(|| worker.push(input, &batch)) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => Reply::Output(out),
                    Err(e) => {
                        fail(&worker, &mut failure, &e);
                        Reply::Failed(e)
                    }
                }
            }
            Step::Barrier => match failure
                .clone()
                .map_or_else(|| guarded(|| worker.barrier()), Err)
            {
                Ok(out) => {
                    if !out.is_empty() && replies.send(Reply::Output(out)).is_err() {
                        return;
                    }
                    Reply::Done(Ok(None))
                }
                Err(e) => {
                    fail(&worker, &mut failure, &e);
                    Reply::Done(Err(e))
                }
            },
            Step::Checkpoint(view_id) => {
                let result = failure.clone().map_or_else(
                    || {
                        guarded(|| {
                            let mut batch = WriteBatch::default();
                            worker.checkpoint(view_id, &mut batch)?;
                            Ok(batch)
                        })
                    },
                    Err,
                );
                Reply::Done(result.map(Some))
            }
            Step::Watermark(input, column, value) => {
                let result = failure
                    .clone()
                    .map_or_else(|| guarded(|| worker.watermark(input, column, value)), Err);
                Reply::Done(result.map(|()| None))
            }
            Step::Quiesce => Reply::Done(Ok(None)),
            Step::Restore(view_id, state) => {
                if let Some(ex) = worker.exchange() {
                    ex.drain();
                }
                failure = None;
                let result = guarded(|| worker.restore(view_id, (*state).clone()));
                if let Err(e) = &result {
                    failure = Some(e.clone());
                }
                Reply::Done(result.map(|()| None))
            }
        };
        if replies.send(reply).is_err() {
            return;
        }
    }
}

/// Marks the worker failed with `e` (the first error counts) and tells the others.
fn fail(worker: &Worker, failure: &mut Option<WeirError>, e: &WeirError) {
    if failure.is_none() {
        if let Some(ex) = worker.exchange() {
            ex.poison(e);
        }
        *failure = Some(e.clone());
    }
}
