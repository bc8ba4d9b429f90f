//! Hash aggregation that stays correct under retractions.
//!
//! Each group keeps a row count and one accumulator per aggregate. count, sum and avg are
//! invertible (a retraction subtracts); min and max keep a multiset of the values seen (value
//! bytes → multiplicity), so deleting the current minimum falls back to the next one; over an
//! append-only input (the planner knows, `StreamProps`) they keep only the best value. Changes
//! are absorbed as they arrive; at the barrier each touched group emits at most a retraction
//! of its previous output row and an insertion of its new one.
//!
//! State per group is written at each checkpoint under `<operator prefix><group key>`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Decimal128Array, Float64Array, Int64Array, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;
use serde::{Deserialize, Serialize};

use super::{Operator, StateScope};
use crate::dataflow::ChangeBatch;
use crate::dataflow::batch::batch_from_columns;
use crate::error::{Result, WeirError};
use crate::formats::RowCodec;
use crate::state::WriteBatch;

/// Which aggregate function, with the representation its running value needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

/// One aggregate of the operator: function, argument and result type.
pub struct AggSpec {
    pub kind: AggKind,
    pub arg: Arc<dyn PhysicalExpr>,
    pub output_type: DataType,
    /// Display name for EXPLAIN.
    pub name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
enum Acc {
    Count(i64),
    /// Integer sum (output Int64/UInt64) or Decimal128 sum (unscaled), and non-null count.
    SumExact {
        sum: i128,
        n: i64,
    },
    SumFloat {
        sum: f64,
        n: i64,
    },
    /// Value bytes (row format) → multiplicity.
    Extreme(BTreeMap<Vec<u8>, i64>),
    /// min/max over an append-only input: the best value's bytes (row format, which orders
    /// as the values do) once there is one.
    Best(Option<Vec<u8>>),
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct GroupState {
    rows: i64,
    accs: Vec<Acc>,
    /// The output row last emitted for this group (row-format bytes), to retract on change.
    emitted: Option<Vec<u8>>,
}

pub struct Aggregate {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    aggs: Vec<AggSpec>,
    /// Codec for the group key; None for a global aggregate (no GROUP BY).
    key_codec: Option<RowCodec>,
    /// Codec per min/max argument (None for other kinds).
    value_codecs: Vec<Option<RowCodec>>,
    /// Per aggregate: an avg over integers, accumulated as an exact sum.
    exact_avg: Vec<bool>,
    /// The input never retracts: min/max keep one value.
    append_only_input: bool,
    output_schema: SchemaRef,
    output_codec: RowCodec,
    groups: HashMap<Vec<u8>, GroupState>,
    /// Groups touched since the last barrier (output pending).
    dirty: HashSet<Vec<u8>>,
    /// Groups changed since the last checkpoint (state to write).
    unsaved: HashSet<Vec<u8>>,
}

impl Aggregate {
    pub fn new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        group_types: Vec<DataType>,
        aggs: Vec<AggSpec>,
        arg_types: Vec<DataType>,
        output_schema: SchemaRef,
        append_only_input: bool,
    ) -> Result<Self> {
        for spec in &aggs {
            let supported = match spec.kind {
                AggKind::Count | AggKind::Min | AggKind::Max => true,
                AggKind::Sum => matches!(
                    spec.output_type,
                    DataType::Int64
                        | DataType::UInt64
                        | DataType::Float64
                        | DataType::Decimal128(_, _)
                ),
                AggKind::Avg => spec.output_type == DataType::Float64,
            };
            if !supported {
                return Err(WeirError::unsupported(format!(
                    "{} returning {} in a materialized view is not supported yet",
                    spec.name, spec.output_type
                )));
            }
        }
        // avg over integers keeps an exact integer sum, so retractions never drift.
        let exact_avg = aggs
            .iter()
            .zip(&arg_types)
            .map(|(spec, t)| spec.kind == AggKind::Avg && t.is_integer())
            .collect();
        let key_codec = if group_exprs.is_empty() {
            None
        } else {
            Some(RowCodec::new(group_types)?)
        };
        let value_codecs = aggs
            .iter()
            .zip(arg_types)
            .map(|(spec, t)| match spec.kind {
                AggKind::Min | AggKind::Max => RowCodec::new([t]).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let output_codec = RowCodec::for_schema(&output_schema)?;
        let mut op = Aggregate {
            group_exprs,
            aggs,
            key_codec,
            value_codecs,
            exact_avg,
            append_only_input,
            output_schema,
            output_codec,
            groups: HashMap::new(),
            dirty: HashSet::new(),
            unsaved: HashSet::new(),
        };
        if op.key_codec.is_none() {
            // A global aggregate has its one row even over no input (count = 0).
            op.groups.insert(Vec::new(), op.empty_group());
            op.dirty.insert(Vec::new());
            op.unsaved.insert(Vec::new());
        }
        Ok(op)
    }

    fn empty_group(&self) -> GroupState {
        let accs = self
            .aggs
            .iter()
            .enumerate()
            .map(|(i, spec)| match spec.kind {
                AggKind::Count => Acc::Count(0),
                AggKind::Min | AggKind::Max if self.append_only_input => Acc::Best(None),
                AggKind::Min | AggKind::Max => Acc::Extreme(BTreeMap::new()),
                AggKind::Avg if self.exact_avg[i] => Acc::SumExact { sum: 0, n: 0 },
                AggKind::Avg => Acc::SumFloat { sum: 0.0, n: 0 },
                AggKind::Sum => match spec.output_type {
                    DataType::Float64 => Acc::SumFloat { sum: 0.0, n: 0 },
                    _ => Acc::SumExact { sum: 0, n: 0 },
                },
            })
            .collect();
        GroupState {
            rows: 0,
            accs,
            emitted: None,
        }
    }

    /// Evaluates each aggregate's argument, cast to what its accumulator reads.
    fn arguments(&self, batch: &ChangeBatch) -> Result<Vec<ArrayRef>> {
        let n = batch.len();
        self.aggs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let arr = spec.arg.evaluate(&batch.rows)?.into_array(n)?;
                Ok(match spec.kind {
                    AggKind::Avg if self.exact_avg[i] => cast(&arr, &DataType::Int64)?,
                    AggKind::Sum | AggKind::Avg => cast(&arr, &spec.output_type)?,
                    _ => arr,
                })
            })
            .collect()
    }

    /// Builds the current output row of a group, or None when the group has no rows.
    fn output_value(
        &self,
        spec: &AggSpec,
        codec: Option<&RowCodec>,
        acc: &Acc,
    ) -> Result<ScalarValue> {
        let null = ScalarValue::try_from(&spec.output_type)?;
        Ok(match acc {
            Acc::Count(c) => ScalarValue::Int64(Some(*c)),
            Acc::SumExact { n: 0, .. } | Acc::SumFloat { n: 0, .. } => null,
            Acc::SumExact { sum, n } if spec.kind == AggKind::Avg => {
                ScalarValue::Float64(Some(*sum as f64 / *n as f64))
            }
            Acc::SumExact { sum, .. } => match spec.output_type {
                DataType::Int64 => ScalarValue::Int64(Some(i64::try_from(*sum).map_err(|_| {
                    WeirError::new(crate::error::ErrorKind::Data, "bigint out of range")
                })?)),
                DataType::UInt64 => {
                    ScalarValue::UInt64(Some(u64::try_from(*sum).map_err(|_| {
                        WeirError::new(crate::error::ErrorKind::Data, "sum out of range")
                    })?))
                }
                DataType::Decimal128(p, s) => ScalarValue::Decimal128(Some(*sum), p, s),
                _ => return Err(WeirError::internal("exact sum of a non-exact type")),
            },
            Acc::SumFloat { sum, n } => match spec.kind {
                AggKind::Avg => ScalarValue::Float64(Some(sum / *n as f64)),
                _ => ScalarValue::Float64(Some(*sum)),
            },
            Acc::Extreme(_) | Acc::Best(_) => {
                let pick = match acc {
                    Acc::Best(best) => best.as_ref(),
                    Acc::Extreme(values) if spec.kind == AggKind::Min => values.keys().next(),
                    Acc::Extreme(values) => values.keys().next_back(),
                    _ => None,
                };
                match (pick, codec) {
                    (Some(bytes), Some(codec)) => {
                        let arr = codec.decode([bytes.as_slice()])?;
                        let v = ScalarValue::try_from_array(&arr[0], 0)?;
                        if v.data_type() == spec.output_type {
                            v
                        } else {
                            v.cast_to(&spec.output_type)?
                        }
                    }
                    _ => null,
                }
            }
        })
    }
}

fn add_weighted(
    acc: &mut Acc,
    kind: AggKind,
    arr: &ArrayRef,
    row: usize,
    w: i64,
    codec: Option<&RowCodec>,
    encoded: Option<&datafusion::arrow::row::Rows>,
) -> Result<()> {
    if arr.is_null(row) {
        return Ok(());
    }
    match acc {
        Acc::Count(c) => *c += w,
        Acc::SumExact { sum, n } => {
            let v: i128 = if let Some(a) = arr.as_any().downcast_ref::<Int64Array>() {
                a.value(row) as i128
            } else if let Some(a) = arr.as_any().downcast_ref::<UInt64Array>() {
                a.value(row) as i128
            } else if let Some(a) = arr.as_any().downcast_ref::<Decimal128Array>() {
                a.value(row)
            } else {
                return Err(WeirError::internal("sum argument of unexpected type"));
            };
            *sum += v * w as i128;
            *n += w;
        }
        Acc::SumFloat { sum, n } => {
            let a = arr
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| WeirError::internal("float sum argument of unexpected type"))?;
            *sum += a.value(row) * w as f64;
            *n += w;
        }
        Acc::Extreme(values) => {
            let (Some(_), Some(rows)) = (codec, encoded) else {
                return Err(WeirError::internal("min/max without a value codec"));
            };
            let key = rows.row(row).as_ref().to_vec();
            let count = values.entry(key.clone()).or_insert(0);
            *count += w;
            if *count == 0 {
                values.remove(&key);
            }
        }
        Acc::Best(best) => {
            let Some(rows) = encoded else {
                return Err(WeirError::internal("min/max without a value codec"));
            };
            if w < 0 {
                return Err(WeirError::internal(
                    "a retraction reached min/max over an append-only input",
                ));
            }
            let value = rows.row(row);
            let better = match best {
                None => true,
                Some(b) if kind == AggKind::Min => value.as_ref() < b.as_slice(),
                Some(b) => value.as_ref() > b.as_slice(),
            };
            if better {
                *best = Some(value.as_ref().to_vec());
            }
        }
    }
    Ok(())
}

impl Operator for Aggregate {
    fn process(&mut self, _input: usize, batch: ChangeBatch) -> Result<Vec<ChangeBatch>> {
        let n = batch.len();
        let keys = match &self.key_codec {
            Some(codec) => {
                let cols = self
                    .group_exprs
                    .iter()
                    .map(|e| e.evaluate(&batch.rows)?.into_array(n))
                    .collect::<datafusion::error::Result<Vec<_>>>()?;
                Some(codec.encode(&cols)?)
            }
            None => None,
        };
        let args = self.arguments(&batch)?;
        let encoded: Vec<Option<datafusion::arrow::row::Rows>> = self
            .value_codecs
            .iter()
            .zip(&args)
            .map(|(codec, arr)| {
                codec
                    .as_ref()
                    .map(|c| c.encode(std::slice::from_ref(arr)))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        for row in 0..n {
            let key: &[u8] = keys.as_ref().map(|k| k.row(row).data()).unwrap_or(&[]);
            if !self.groups.contains_key(key) {
                let empty = self.empty_group();
                self.groups.insert(key.to_vec(), empty);
            }
            let group = self.groups.get_mut(key).expect("group just ensured");
            let w = batch.weights[row];
            group.rows += w;
            for (i, acc) in group.accs.iter_mut().enumerate() {
                add_weighted(
                    acc,
                    self.aggs[i].kind,
                    &args[i],
                    row,
                    w,
                    self.value_codecs[i].as_ref(),
                    encoded[i].as_ref(),
                )?;
            }
            if !self.dirty.contains(key) {
                self.dirty.insert(key.to_vec());
                self.unsaved.insert(key.to_vec());
            }
        }
        Ok(Vec::new())
    }

    fn barrier(&mut self) -> Result<Vec<ChangeBatch>> {
        if self.dirty.is_empty() {
            return Ok(Vec::new());
        }
        let dirty: Vec<Vec<u8>> = self.dirty.drain().collect();
        let mut insert_keys: Vec<&Vec<u8>> = Vec::new();
        let mut insert_values: Vec<Vec<ScalarValue>> = vec![Vec::new(); self.aggs.len()];
        for key in &dirty {
            let Some(group) = self.groups.get(key) else {
                continue;
            };
            let alive = group.rows > 0 || self.key_codec.is_none();
            if alive {
                insert_keys.push(key);
                for (i, spec) in self.aggs.iter().enumerate() {
                    insert_values[i].push(self.output_value(
                        spec,
                        self.value_codecs[i].as_ref(),
                        &group.accs[i],
                    )?);
                }
            }
        }
        // Build the new output rows: group key columns, then aggregate columns.
        let mut columns: Vec<ArrayRef> = match &self.key_codec {
            Some(codec) => codec.decode(insert_keys.iter().map(|k| k.as_slice()))?,
            None => Vec::new(),
        };
        for (i, values) in insert_values.into_iter().enumerate() {
            columns.push(if values.is_empty() {
                datafusion::arrow::array::new_empty_array(&self.aggs[i].output_type)
            } else {
                ScalarValue::iter_to_array(values)?
            });
        }
        let fresh = batch_from_columns(&self.output_schema, columns)?;
        let fresh_rows = self.output_codec.encode(fresh.columns())?;
        // Record what is now emitted; drop groups that are gone.
        let mut emitted_new: HashMap<&Vec<u8>, Vec<u8>> = HashMap::new();
        for (i, key) in insert_keys.iter().enumerate() {
            emitted_new.insert(key, fresh_rows.row(i).as_ref().to_vec());
        }
        let mut inserts: Vec<Vec<u8>> = Vec::new();
        let mut keep_retract: Vec<Vec<u8>> = Vec::new();
        for key in &dirty {
            let new_row = emitted_new.get(key).cloned();
            let Some(group) = self.groups.get_mut(key) else {
                continue;
            };
            if group.emitted == new_row {
                continue; // no visible change
            }
            if let Some(old) = group.emitted.take() {
                keep_retract.push(old);
            }
            if let Some(row) = new_row.clone() {
                inserts.push(row);
            }
            group.emitted = new_row;
            if group.rows == 0 && self.key_codec.is_some() {
                // Keep the (empty) state until checkpoint deletes it.
                group.emitted = None;
            }
        }
        if keep_retract.is_empty() && inserts.is_empty() {
            return Ok(Vec::new());
        }
        let mut weights = vec![-1; keep_retract.len()];
        weights.extend(std::iter::repeat_n(1, inserts.len()));
        let all = keep_retract
            .iter()
            .chain(inserts.iter())
            .map(|r| r.as_slice());
        let columns = self.output_codec.decode(all)?;
        let rows = batch_from_columns(&self.output_schema, columns)?;
        Ok(vec![ChangeBatch::new(rows, weights)])
    }

    fn checkpoint(&mut self, scope: &StateScope, batch: &mut WriteBatch) -> Result<()> {
        for key in self.unsaved.drain() {
            let state_key = scope.key(&key);
            match self.groups.get(&key) {
                Some(group) if group.rows != 0 || self.key_codec.is_none() => {
                    let bytes = postcard::to_stdvec(group)
                        .map_err(|e| WeirError::internal(format!("aggregate state encode: {e}")))?;
                    batch.put(state_key, bytes);
                }
                _ => {
                    self.groups.remove(&key);
                    batch.delete(state_key);
                }
            }
        }
        Ok(())
    }

    fn restore(&mut self, scope: &StateScope, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        self.groups.clear();
        self.dirty.clear();
        self.unsaved.clear();
        for (key, value) in pairs {
            let group: GroupState = postcard::from_bytes(&value)
                .map_err(|e| WeirError::internal(format!("aggregate state decode: {e}")))?;
            self.groups
                .insert(key[scope.prefix.len()..].to_vec(), group);
        }
        if self.key_codec.is_none() && !self.groups.contains_key(&Vec::new()) {
            self.groups.insert(Vec::new(), self.empty_group());
            self.dirty.insert(Vec::new());
            self.unsaved.insert(Vec::new());
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let groups: Vec<String> = self.group_exprs.iter().map(|e| e.to_string()).collect();
        let aggs: Vec<&str> = self.aggs.iter().map(|a| a.name.as_str()).collect();
        let extremes = self
            .aggs
            .iter()
            .any(|a| matches!(a.kind, AggKind::Min | AggKind::Max));
        // Shown where it changes the state kept: min/max keep one value, not a multiset.
        let append_only = if self.append_only_input && extremes {
            ", input=append-only"
        } else {
            ""
        };
        format!(
            "HashAggregate: group_by=[{}], aggs=[{}]{append_only}",
            groups.join(", "),
            aggs.join(", ")
        )
    }
}
