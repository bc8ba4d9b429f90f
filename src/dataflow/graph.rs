//! A view's dataflow: a tree of operators whose leaves are the view's inputs, run by one or
//! more workers.
//!
//! Changes enter at a leaf ([`Dataflow::push`]) and travel up through each operator to the
//! root; a barrier ([`Dataflow::barrier`]) walks the tree bottom-up so that output an operator
//! releases at the barrier still reaches the operators above it within the same epoch.
//!
//! With several workers (`--workers`), each holds its own copy of the tree and gets a slice of
//! every input batch; in front of each stateful operator an exchange sends every row to the
//! worker that owns its key's vnode (`dataflow::workers`, `dataflow::vnode`), so each key's
//! state lives on one worker. With one worker the tree runs on the caller's thread and nothing
//! is exchanged.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;

use super::ChangeBatch;
use super::ops::{OPERATOR_WIDE_STATE, Operator, StateScope};
use super::state_cache::{StateCache, StateReader};
use super::vnode;
use super::workers::{Exchange, Pool};
use crate::error::Result;
use crate::state::{KvPairs, StateStore, WriteBatch, keys};

pub enum Node {
    /// Input `input` of the view, with the columns the plan reads from it.
    Input {
        input: usize,
        projection: Option<Vec<usize>>,
        name: String,
    },
    Op {
        id: u32,
        op: Box<dyn Operator>,
        children: Vec<Node>,
    },
}

/// Each operator's committed state, by operator id, read once and shared by the workers.
pub type StateByOperator = HashMap<u32, Arc<KvPairs>>;

pub struct Dataflow {
    pub output_schema: SchemaRef,
    explain: String,
    operators: Vec<u32>,
    /// Operators that read their keyed state through from the store (`Dataflow::attach`): a
    /// restore reads only their operator-wide entries.
    read_through: Vec<u32>,
    exec: Exec,
}

enum Exec {
    /// One worker, run on the caller's thread.
    Inline(Worker),
    /// The workers' trees, before their threads start (a plan only EXPLAINed never starts).
    Unstarted(Vec<Node>),
    Pool(Pool),
}

impl Dataflow {
    /// A dataflow of one worker per tree in `trees` (identical copies of one plan).
    pub fn new(mut trees: Vec<Node>, output_schema: SchemaRef) -> Dataflow {
        let mut explain = String::new();
        explain_node(&trees[0], 0, &mut explain);
        let mut operators = Vec::new();
        visit_ops(&mut trees[0], &mut |id, _| {
            operators.push(id);
            Ok(())
        })
        .expect("listing operators does not fail");
        let exec = if trees.len() == 1 {
            Exec::Inline(Worker::new(trees.pop().expect("one tree"), 0, 1, None))
        } else {
            Exec::Unstarted(trees)
        };
        Dataflow {
            output_schema,
            explain,
            operators,
            read_through: Vec::new(),
            exec,
        }
    }

    /// Gives every operator of every worker its way back to its committed state in `store`
    /// and its share of `cache` (before the dataflow first runs; a running one is unchanged).
    pub fn attach(&mut self, view_id: u64, store: &Arc<dyn StateStore>, cache: &Arc<StateCache>) {
        let trees: Vec<&mut Node> = match &mut self.exec {
            Exec::Inline(worker) => vec![&mut worker.root],
            Exec::Unstarted(trees) => trees.iter_mut().collect(),
            Exec::Pool(_) => return,
        };
        let mut read_through = Vec::new();
        for tree in trees {
            visit_ops(tree, &mut |id, op| {
                let prefix = keys::operator_prefix(view_id, id);
                op.attach(StateReader::new(store.clone(), prefix, cache.clone()));
                if op.reads_through() && !read_through.contains(&id) {
                    read_through.push(id);
                }
                Ok(())
            })
            .expect("attaching operators does not fail");
        }
        self.read_through = read_through;
    }

    fn exec(&mut self) -> &mut Exec {
        if let Exec::Unstarted(trees) = &mut self.exec {
            self.exec = Exec::Pool(Pool::start(std::mem::take(trees)));
        }
        &mut self.exec
    }

    /// Feeds changes of input `input` and returns what has reached the root so far (with
    /// several workers, the rest arrives with later calls or the barrier).
    pub fn push(&mut self, input: usize, batch: &ChangeBatch) -> Result<Vec<ChangeBatch>> {
        match self.exec() {
            Exec::Inline(worker) => worker.push(input, batch),
            Exec::Pool(pool) => pool.push(input, batch),
            Exec::Unstarted(_) => unreachable!("started above"),
        }
    }

    /// Ends the epoch: returns what the operators held back (and, with several workers,
    /// whatever of the epoch's output has not been returned yet).
    pub fn barrier(&mut self) -> Result<Vec<ChangeBatch>> {
        match self.exec() {
            Exec::Inline(worker) => worker.barrier(),
            Exec::Pool(pool) => pool.barrier(),
            Exec::Unstarted(_) => unreachable!("started above"),
        }
    }

    /// A watermark on column `column` of input `input` (every worker gets it: each holds
    /// windows of its own keys).
    pub fn watermark(&mut self, input: usize, column: usize, value: i64) -> Result<()> {
        match self.exec() {
            Exec::Inline(worker) => worker.watermark(input, column, value),
            Exec::Pool(pool) => pool.watermark(input, column, value),
            Exec::Unstarted(_) => unreachable!("started above"),
        }
    }

    pub fn checkpoint(&mut self, view_id: u64, batch: &mut WriteBatch) -> Result<()> {
        match self.exec() {
            Exec::Inline(worker) => worker.checkpoint(view_id, batch),
            Exec::Pool(pool) => pool.checkpoint(view_id, batch),
            Exec::Unstarted(_) => unreachable!("started above"),
        }
    }

    /// Loads every operator's committed state (each worker keeps its vnodes' part); an
    /// operator that reads through gets only its operator-wide entries.
    pub fn restore(&mut self, view_id: u64, store: &dyn StateStore) -> Result<()> {
        let mut state = StateByOperator::new();
        for &id in &self.operators {
            let mut prefix = keys::operator_prefix(view_id, id);
            if self.read_through.contains(&id) {
                prefix.push(OPERATOR_WIDE_STATE);
            }
            state.insert(id, Arc::new(store.scan_prefix(&prefix)?));
        }
        match self.exec() {
            Exec::Inline(worker) => worker.restore(view_id, state),
            Exec::Pool(pool) => pool.restore(view_id, Arc::new(state)),
            Exec::Unstarted(_) => unreachable!("started above"),
        }
    }

    /// The tree, one operator per line, indented like Postgres EXPLAIN (the same for any
    /// number of workers).
    pub fn explain(&self) -> String {
        self.explain.clone()
    }
}

/// One copy of the view's tree: `index` of `workers`, and its links to the others.
pub(super) struct Worker {
    root: Node,
    index: usize,
    workers: usize,
    exchange: Option<Exchange>,
}

impl Worker {
    pub(super) fn new(
        mut root: Node,
        index: usize,
        workers: usize,
        exchange: Option<Exchange>,
    ) -> Worker {
        visit_ops(&mut root, &mut |_, op| {
            op.place(index, workers);
            Ok(())
        })
        .expect("placing operators does not fail");
        Worker {
            root,
            index,
            workers,
            exchange,
        }
    }

    pub(super) fn push(&mut self, input: usize, batch: &ChangeBatch) -> Result<Vec<ChangeBatch>> {
        push(&mut self.root, input, batch, &mut self.exchange)
    }

    pub(super) fn barrier(&mut self) -> Result<Vec<ChangeBatch>> {
        barrier(&mut self.root, &mut self.exchange)
    }

    pub(super) fn watermark(&mut self, input: usize, column: usize, value: i64) -> Result<()> {
        watermark(&mut self.root, input, column, value).map(|_| ())
    }

    pub(super) fn checkpoint(&mut self, view_id: u64, batch: &mut WriteBatch) -> Result<()> {
        visit_ops(&mut self.root, &mut |id, op| {
            let prefix = keys::operator_prefix(view_id, id);
            op.checkpoint(&StateScope { prefix: &prefix }, batch)
        })
    }

    /// Restores each operator from its entries in `state` that belong to this worker.
    pub(super) fn restore(&mut self, view_id: u64, mut state: StateByOperator) -> Result<()> {
        let (index, workers) = (self.index, self.workers);
        visit_ops(&mut self.root, &mut |id, op| {
            let prefix = keys::operator_prefix(view_id, id);
            let pairs = state.remove(&id).unwrap_or_default();
            let pairs = owned_pairs(pairs, op.as_ref(), prefix.len(), index, workers)?;
            op.restore(&StateScope { prefix: &prefix }, pairs)
        })
    }

    pub(super) fn exchange(&self) -> Option<&Exchange> {
        self.exchange.as_ref()
    }
}

/// The entries of `pairs` whose vnode this worker owns (all of them with one worker, moved
/// rather than copied when this is the only holder).
fn owned_pairs(
    pairs: Arc<KvPairs>,
    op: &dyn Operator,
    prefix_len: usize,
    index: usize,
    workers: usize,
) -> Result<KvPairs> {
    if workers == 1 {
        return Ok(Arc::try_unwrap(pairs).unwrap_or_else(|shared| (*shared).clone()));
    }
    let (wide, keyed): (Vec<_>, Vec<_>) = pairs
        .iter()
        .partition(|(k, _)| k.get(prefix_len) == Some(&OPERATOR_WIDE_STATE));
    let suffixes: Vec<&[u8]> = keyed.iter().map(|(k, _)| &k[prefix_len..]).collect();
    let mut vnodes = Vec::new();
    op.state_vnodes(&suffixes, &mut vnodes)?;
    let owned = keyed
        .into_iter()
        .zip(vnodes)
        .filter(|(_, v)| vnode::owner(*v, workers) == index)
        .map(|(pair, _)| pair);
    Ok(wide.into_iter().chain(owned).cloned().collect())
}

/// Whether input `input` is a leaf under `node` (the same answer on every worker, so all take
/// part in the same exchanges).
fn reads(node: &Node, input: usize) -> bool {
    match node {
        Node::Input { input: i, .. } => *i == input,
        Node::Op { children, .. } => children.iter().any(|c| reads(c, input)),
    }
}

fn push(
    node: &mut Node,
    input: usize,
    batch: &ChangeBatch,
    exchange: &mut Option<Exchange>,
) -> Result<Vec<ChangeBatch>> {
    match node {
        Node::Input {
            input: i,
            projection,
            ..
        } => {
            if *i != input || batch.is_empty() {
                return Ok(Vec::new());
            }
            Ok(vec![match projection {
                Some(cols) => ChangeBatch::new(batch.rows.project(cols)?, batch.weights.clone()),
                None => batch.clone(),
            }])
        }
        Node::Op { id, op, children } => {
            let mut out = Vec::new();
            for (k, child) in children.iter_mut().enumerate() {
                if !reads(child, input) {
                    continue;
                }
                let mut arrived = push(child, input, batch, exchange)?;
                if let Some(ex) = exchange.as_mut()
                    && op.partitioned()
                {
                    arrived = ex.exchange((*id, k), op.as_ref(), arrived)?;
                }
                for b in arrived {
                    out.extend(op.process(k, b)?);
                }
            }
            Ok(out)
        }
    }
}

fn barrier(node: &mut Node, exchange: &mut Option<Exchange>) -> Result<Vec<ChangeBatch>> {
    match node {
        Node::Input { .. } => Ok(Vec::new()),
        Node::Op { id, op, children } => {
            let mut out = Vec::new();
            for (k, child) in children.iter_mut().enumerate() {
                let mut arrived = barrier(child, exchange)?;
                if let Some(ex) = exchange.as_mut()
                    && op.partitioned()
                {
                    arrived = ex.exchange((*id, k), op.as_ref(), arrived)?;
                }
                for b in arrived {
                    out.extend(op.process(k, b)?);
                }
            }
            out.extend(op.barrier()?);
            Ok(out)
        }
    }
}

/// Passes a watermark up from the leaf of input `input`: returns the watermarks it implies
/// on `node`'s output columns.
fn watermark(
    node: &mut Node,
    input: usize,
    column: usize,
    value: i64,
) -> Result<Vec<(usize, i64)>> {
    match node {
        Node::Input {
            input: i,
            projection,
            ..
        } => {
            if *i != input {
                return Ok(Vec::new());
            }
            let column = match projection {
                Some(cols) => match cols.iter().position(|&c| c == column) {
                    Some(p) => p,
                    None => return Ok(Vec::new()),
                },
                None => column,
            };
            Ok(vec![(column, value)])
        }
        Node::Op { op, children, .. } => {
            let mut out = Vec::new();
            for (k, child) in children.iter_mut().enumerate() {
                for (c, v) in watermark(child, input, column, value)? {
                    out.extend(op.watermark(k, c, v)?);
                }
            }
            Ok(out)
        }
    }
}

/// The exchange points of a tree: (operator id, input) for each input of a partitioned
/// operator.
pub(super) fn exchange_points(node: &Node, out: &mut Vec<(u32, usize)>) {
    if let Node::Op { id, op, children } = node {
        if op.partitioned() {
            out.extend((0..children.len()).map(|k| (*id, k)));
        }
        for child in children {
            exchange_points(child, out);
        }
    }
}

/// What `visit_ops` calls for each operator: its id and the operator.
type OperatorVisitor<'a> = dyn FnMut(u32, &mut Box<dyn Operator>) -> Result<()> + 'a;

fn visit_ops(node: &mut Node, f: &mut OperatorVisitor) -> Result<()> {
    if let Node::Op { id, op, children } = node {
        f(*id, op)?;
        for child in children {
            visit_ops(child, f)?;
        }
    }
    Ok(())
}

fn explain_node(node: &Node, depth: usize, out: &mut String) {
    let pad = if depth == 0 {
        String::new()
    } else {
        format!("{}->  ", "  ".repeat(depth * 2 - 1))
    };
    match node {
        Node::Input {
            name, projection, ..
        } => {
            let cols = match projection {
                Some(p) => format!(" projection={p:?}"),
                None => String::new(),
            };
            out.push_str(&format!("{pad}Input: {name}{cols}\n"));
        }
        Node::Op { op, children, .. } => {
            out.push_str(&format!("{pad}{}\n", op.describe()));
            for child in children {
                explain_node(child, depth + 1, out);
            }
        }
    }
}
