//! A view's dataflow: a tree of operators whose leaves are the view's inputs.
//!
//! Changes enter at a leaf ([`Dataflow::push`]) and travel up through each operator to the
//! root; a barrier ([`Dataflow::barrier`]) walks the tree bottom-up so that output an operator
//! releases at the barrier still reaches the operators above it within the same epoch.

use datafusion::arrow::datatypes::SchemaRef;

use super::ChangeBatch;
use super::ops::{Operator, StateScope};
use crate::error::Result;
use crate::state::{StateStore, WriteBatch, keys};

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

pub struct Dataflow {
    pub root: Node,
    pub output_schema: SchemaRef,
}

impl Dataflow {
    /// Feeds changes of input `input` and returns what reaches the root.
    pub fn push(&mut self, input: usize, batch: &ChangeBatch) -> Result<Vec<ChangeBatch>> {
        push(&mut self.root, input, batch)
    }

    /// Ends the epoch: returns what the operators held back.
    pub fn barrier(&mut self) -> Result<Vec<ChangeBatch>> {
        barrier(&mut self.root)
    }

    pub fn checkpoint(&mut self, view_id: u64, batch: &mut WriteBatch) -> Result<()> {
        visit_ops(&mut self.root, &mut |id, op| {
            let prefix = keys::operator_prefix(view_id, id);
            op.checkpoint(&StateScope { prefix: &prefix }, batch)
        })
    }

    pub fn restore(&mut self, view_id: u64, store: &dyn StateStore) -> Result<()> {
        visit_ops(&mut self.root, &mut |id, op| {
            let prefix = keys::operator_prefix(view_id, id);
            let pairs = store.scan_prefix(&prefix)?;
            op.restore(&StateScope { prefix: &prefix }, pairs)
        })
    }

    /// The tree, one operator per line, indented like Postgres EXPLAIN.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        explain(&self.root, 0, &mut out);
        out
    }
}

fn push(node: &mut Node, input: usize, batch: &ChangeBatch) -> Result<Vec<ChangeBatch>> {
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
        Node::Op { op, children, .. } => {
            let mut out = Vec::new();
            for (k, child) in children.iter_mut().enumerate() {
                for b in push(child, input, batch)? {
                    out.extend(op.process(k, b)?);
                }
            }
            Ok(out)
        }
    }
}

fn barrier(node: &mut Node) -> Result<Vec<ChangeBatch>> {
    match node {
        Node::Input { .. } => Ok(Vec::new()),
        Node::Op { op, children, .. } => {
            let mut out = Vec::new();
            for (k, child) in children.iter_mut().enumerate() {
                for b in barrier(child)? {
                    out.extend(op.process(k, b)?);
                }
            }
            out.extend(op.barrier()?);
            Ok(out)
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

fn explain(node: &Node, depth: usize, out: &mut String) {
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
                explain(child, depth + 1, out);
            }
        }
    }
}
