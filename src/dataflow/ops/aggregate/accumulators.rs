//! Typed accumulators, one per aggregate of a GROUP BY, each holding the running values of
//! every group in plain vectors indexed by group (the shape of DataFusion's
//! `GroupsAccumulator`, extended with signed weights so retractions subtract). A batch is
//! applied with one downcast and one tight loop per aggregate: no `ScalarValue`, no per-row
//! allocation (min/max multisets allocate when a value first appears in a group).
//!
//! [`Acc`] is the durable form of one aggregate's state in one group; [`AccRef`] writes the
//! same bytes without copying the state. A big min/max multiset lives outside it, one store
//! entry per value (`multiset.rs`): [`GroupAccumulator::drain_changed`] gives the entries to
//! write, [`GroupAccumulator::load_value`] takes them back.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Decimal128Type, Float64Type, Int64Type, UInt64Type,
};
use serde::{Deserialize, Serialize};

use super::AggKind;
use super::exact_float::ExactSum;
use super::multiset::{Inline, Multiset};
use crate::dataflow::ops::key_index::integer_like;
use crate::error::{ErrorKind, Result, WeirError};
use crate::formats::RowCodec;

/// One aggregate's state in one group, as stored (postcard). The variant order is the format:
/// [`AccRef`] must list the same variants in the same order.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum Acc {
    Count(i64),
    /// Integer sum (output Int64/UInt64) or Decimal128 sum (unscaled), and non-null count.
    SumExact {
        sum: i128,
        n: i64,
    },
    /// A float sum as the first format kept it (a running f64); read, never written.
    SumFloat {
        sum: f64,
        n: i64,
    },
    /// Value bytes (row format) → multiplicity.
    Extreme(BTreeMap<Vec<u8>, i64>),
    /// min/max over an append-only input: the best value's bytes (row format, which orders as
    /// the values do) once there is one.
    Best(Option<Vec<u8>>),
    /// [`Acc::Extreme`] of a type that orders as its i64 value does (integers, dates,
    /// timestamps): value → multiplicity.
    ExtremeInt(BTreeMap<i64, i64>),
    /// [`Acc::Best`] of such a type.
    BestInt(Option<i64>),
    /// Float sum (exact, rounded when read) and non-null count.
    SumFloatExact {
        sum: ExactSum,
        n: i64,
    },
    /// min/max with retractions whose multiset is stored as one entry per value
    /// (`multiset::value_key`), not here.
    ExtremeEntries,
}

/// [`Acc`] borrowed from an accumulator, serialized to the same bytes.
#[derive(Serialize)]
pub enum AccRef<'a> {
    Count(i64),
    SumExact {
        sum: i128,
        n: i64,
    },
    /// Never written since exact float sums (only tests build it): it keeps the variant
    /// indices equal to [`Acc`]'s.
    #[allow(dead_code)]
    SumFloat {
        sum: f64,
        n: i64,
    },
    Extreme(Inline<'a, Vec<u8>>),
    Best(Option<&'a [u8]>),
    ExtremeInt(Inline<'a, i64>),
    BestInt(Option<i64>),
    SumFloatExact {
        sum: &'a ExactSum,
        n: i64,
    },
    ExtremeEntries,
}

/// The running values of one aggregate for every group.
pub trait GroupAccumulator: Send {
    /// Makes room for group indices below `slots` (new ones start empty); shrinking drops state.
    fn resize(&mut self, slots: usize);
    /// Empties group `g` (its index is about to be reused).
    fn reset(&mut self, g: usize);
    /// Adds `weights[i]` times `values[i]` to group `groups[i]`, skipping NULLs.
    fn update(&mut self, groups: &[u32], weights: &[i64], values: &ArrayRef) -> Result<()>;
    /// The aggregate's current value for each of `groups`, in that order.
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef>;
    fn save(&self, g: usize) -> AccRef<'_>;
    fn load(&mut self, g: usize, state: Acc) -> Result<()>;
    /// Calls `f(value bytes, count)` for each entry of group `g` kept outside its group state
    /// that changed since the last call (count 0: delete it); called at each checkpoint of the
    /// group, before [`GroupAccumulator::save`]. Only min/max multisets keep such entries.
    fn drain_changed(&mut self, _g: usize, _f: &mut dyn FnMut(&[u8], i64)) -> Result<()> {
        Ok(())
    }
    /// Empties group `g` as [`GroupAccumulator::reset`] does, calling `f(value bytes)` for
    /// each entry it may have outside its group state (to delete with the group).
    fn drop_group(&mut self, g: usize, _f: &mut dyn FnMut(&[u8])) {
        self.reset(g);
    }
    /// Loads one entry written through [`GroupAccumulator::drain_changed`] into group `g`,
    /// after its group state.
    fn load_value(&mut self, _g: usize, _value: &[u8], _count: i64) -> Result<()> {
        Err(WeirError::internal(
            "a value entry for an aggregate that keeps none",
        ))
    }
}

/// The accumulator for one aggregate over arguments of `arg_type`. Sums and averages cast
/// what `update` receives to what they add up (an avg over integers to Int64, kept as an exact
/// sum; other sums and averages to their output type).
pub fn accumulator(
    kind: AggKind,
    arg_type: &DataType,
    output_type: &DataType,
    append_only_input: bool,
) -> Result<Box<dyn GroupAccumulator>> {
    Ok(match kind {
        AggKind::Count => Box::new(Count::default()),
        AggKind::Avg if arg_type.is_integer() => Box::new(SumExact::new(DataType::Int64, true)),
        AggKind::Avg => Box::new(SumFloat::new(true)),
        AggKind::Sum if *output_type == DataType::Float64 => Box::new(SumFloat::new(false)),
        AggKind::Sum => Box::new(SumExact::new(output_type.clone(), false)),
        AggKind::Min | AggKind::Max if integer_like(arg_type) => {
            let ints = IntExtreme {
                min: kind == AggKind::Min,
                arg_type: arg_type.clone(),
                output_type: output_type.clone(),
            };
            if append_only_input {
                Box::new(BestInt {
                    ints,
                    values: Vec::new(),
                })
            } else {
                Box::new(IntExtremes {
                    ints,
                    values: Vec::new(),
                })
            }
        }
        AggKind::Min | AggKind::Max => {
            let codec = RowCodec::new([arg_type.clone()])?;
            let extreme = Extreme {
                codec,
                min: kind == AggKind::Min,
                output_type: output_type.clone(),
            };
            if append_only_input {
                Box::new(Best {
                    extreme,
                    values: Vec::new(),
                })
            } else {
                Box::new(Extremes {
                    extreme,
                    values: Vec::new(),
                })
            }
        }
    })
}

fn unexpected(state: &Acc) -> WeirError {
    WeirError::internal(format!(
        "aggregate state {state:?} does not fit its accumulator"
    ))
}

/// Calls `f(i, g, w)` for every non-NULL row of `values`.
fn for_each_valid(
    groups: &[u32],
    weights: &[i64],
    values: &dyn Array,
    mut f: impl FnMut(usize, usize, i64),
) {
    let rows = groups.iter().zip(weights).enumerate();
    match values.logical_nulls() {
        None => rows.for_each(|(i, (&g, &w))| f(i, g as usize, w)),
        Some(nulls) => rows
            .filter(|(i, _)| nulls.is_valid(*i))
            .for_each(|(i, (&g, &w))| f(i, g as usize, w)),
    }
}

#[derive(Default)]
struct Count {
    counts: Vec<i64>,
}

impl GroupAccumulator for Count {
    fn resize(&mut self, slots: usize) {
        self.counts.resize(slots, 0);
    }
    fn reset(&mut self, g: usize) {
        self.counts[g] = 0;
    }
    fn update(&mut self, groups: &[u32], weights: &[i64], values: &ArrayRef) -> Result<()> {
        let counts = &mut self.counts;
        for_each_valid(groups, weights, values, |_, g, w| counts[g] += w);
        Ok(())
    }
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let values: Int64Array = groups.iter().map(|&g| self.counts[g as usize]).collect();
        Ok(Arc::new(values))
    }
    fn save(&self, g: usize) -> AccRef<'_> {
        AccRef::Count(self.counts[g])
    }
    fn load(&mut self, g: usize, state: Acc) -> Result<()> {
        match state {
            Acc::Count(c) => self.counts[g] = c,
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }
}

/// sum over integers or decimals, and avg over integers: an exact i128 sum and the count of
/// non-NULL values (NULL when there are none).
struct SumExact {
    sums: Vec<i128>,
    counts: Vec<i64>,
    /// What the arguments are cast to and added as: Int64 for an avg, else the output type.
    sum_type: DataType,
    avg: bool,
}

impl SumExact {
    fn new(sum_type: DataType, avg: bool) -> Self {
        SumExact {
            sums: Vec::new(),
            counts: Vec::new(),
            sum_type,
            avg,
        }
    }

    fn add<T: ArrowPrimitiveType>(&mut self, groups: &[u32], weights: &[i64], values: &ArrayRef)
    where
        T::Native: Into<i128>,
    {
        let raw = values.as_primitive::<T>().values();
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        for_each_valid(groups, weights, values, |i, g, w| {
            sums[g] += raw[i].into() * w as i128;
            counts[g] += w;
        });
    }

    /// Each group's sum, or None where it has no values.
    fn sums<'a>(&'a self, groups: &'a [u32]) -> impl Iterator<Item = Option<i128>> + 'a {
        groups.iter().map(|&g| {
            let g = g as usize;
            (self.counts[g] != 0).then_some(self.sums[g])
        })
    }
}

impl GroupAccumulator for SumExact {
    fn resize(&mut self, slots: usize) {
        self.sums.resize(slots, 0);
        self.counts.resize(slots, 0);
    }
    fn reset(&mut self, g: usize) {
        self.sums[g] = 0;
        self.counts[g] = 0;
    }
    fn update(&mut self, groups: &[u32], weights: &[i64], values: &ArrayRef) -> Result<()> {
        // Integers summed as a NUMERIC with no fraction digits add as they are: their
        // unscaled value is the integer.
        let values = &match (values.data_type(), &self.sum_type) {
            (DataType::Int64 | DataType::UInt64, DataType::Decimal128(_, 0)) => values.clone(),
            _ => cast(values, &self.sum_type)?,
        };
        match values.data_type() {
            DataType::Int64 => self.add::<Int64Type>(groups, weights, values),
            DataType::UInt64 => self.add::<UInt64Type>(groups, weights, values),
            DataType::Decimal128(_, _) => self.add::<Decimal128Type>(groups, weights, values),
            other => {
                return Err(WeirError::internal(format!(
                    "exact sum of an argument of type {other}"
                )));
            }
        }
        Ok(())
    }
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        if self.avg {
            let values: Float64Array = groups
                .iter()
                .map(|&g| {
                    let g = g as usize;
                    (self.counts[g] != 0).then(|| self.sums[g] as f64 / self.counts[g] as f64)
                })
                .collect();
            return Ok(Arc::new(values));
        }
        let out_of_range = |what: &str| WeirError::new(ErrorKind::Data, what.to_string());
        Ok(match self.sum_type {
            DataType::Int64 => Arc::new(
                self.sums(groups)
                    .map(|s| s.map(i64::try_from).transpose())
                    .collect::<Result<Int64Array, _>>()
                    .map_err(|_| out_of_range("bigint out of range"))?,
            ),
            DataType::UInt64 => Arc::new(
                self.sums(groups)
                    .map(|s| s.map(u64::try_from).transpose())
                    .collect::<Result<UInt64Array, _>>()
                    .map_err(|_| out_of_range("sum out of range"))?,
            ),
            DataType::Decimal128(p, s) => Arc::new(
                self.sums(groups)
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(p, s)?,
            ),
            ref other => {
                return Err(WeirError::internal(format!("exact sum returning {other}")));
            }
        })
    }
    fn save(&self, g: usize) -> AccRef<'_> {
        AccRef::SumExact {
            sum: self.sums[g],
            n: self.counts[g],
        }
    }
    fn load(&mut self, g: usize, state: Acc) -> Result<()> {
        match state {
            Acc::SumExact { sum, n } => (self.sums[g], self.counts[g]) = (sum, n),
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }
}

/// sum and avg over floats, exact under retraction ([`ExactSum`]).
struct SumFloat {
    sums: Vec<ExactSum>,
    counts: Vec<i64>,
    avg: bool,
}

impl SumFloat {
    fn new(avg: bool) -> Self {
        SumFloat {
            sums: Vec::new(),
            counts: Vec::new(),
            avg,
        }
    }
}

impl GroupAccumulator for SumFloat {
    fn resize(&mut self, slots: usize) {
        self.sums.resize_with(slots, ExactSum::default);
        self.counts.resize(slots, 0);
    }
    fn reset(&mut self, g: usize) {
        self.sums[g] = ExactSum::default();
        self.counts[g] = 0;
    }
    fn update(&mut self, groups: &[u32], weights: &[i64], values: &ArrayRef) -> Result<()> {
        let values = &cast(values, &DataType::Float64)?;
        let raw = values
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| WeirError::internal("float sum argument of unexpected type"))?
            .values();
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        for_each_valid(groups, weights, values, |i, g, w| {
            sums[g].add(raw[i], w);
            counts[g] += w;
        });
        Ok(())
    }
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let values: Float64Array = groups
            .iter()
            .map(|&g| {
                let (sum, n) = (self.sums[g as usize].value(), self.counts[g as usize]);
                (n != 0).then(|| if self.avg { sum / n as f64 } else { sum })
            })
            .collect();
        Ok(Arc::new(values))
    }
    fn save(&self, g: usize) -> AccRef<'_> {
        AccRef::SumFloatExact {
            sum: &self.sums[g],
            n: self.counts[g],
        }
    }
    fn load(&mut self, g: usize, state: Acc) -> Result<()> {
        match state {
            Acc::SumFloatExact { sum, n } => (self.sums[g], self.counts[g]) = (sum, n),
            Acc::SumFloat { sum, n } => {
                let mut exact = ExactSum::default();
                exact.add(sum, 1);
                (self.sums[g], self.counts[g]) = (exact, n);
            }
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }
}

/// What min and max share: values compared as their row-format bytes (which order as the
/// values do), decoded back and cast to the output type when emitted.
struct Extreme {
    codec: RowCodec,
    min: bool,
    output_type: DataType,
}

impl Extreme {
    /// The values for `picks` (row-format bytes, None for a group without values).
    fn evaluate<'a>(&self, picks: impl Iterator<Item = Option<&'a [u8]>>) -> Result<ArrayRef> {
        let mut present = Vec::new();
        let indices: UInt32Array = picks
            .map(|pick| {
                pick.map(|bytes| {
                    present.push(bytes);
                    (present.len() - 1) as u32
                })
            })
            .collect();
        let decoded = self.codec.decode(present)?.remove(0);
        let values = take(&decoded, &indices, None)?;
        Ok(if values.data_type() == &self.output_type {
            values
        } else {
            cast(&values, &self.output_type)?
        })
    }
}

/// min/max over an append-only input: one best value per group (empty bytes: none yet).
struct Best {
    extreme: Extreme,
    values: Vec<Vec<u8>>,
}

impl GroupAccumulator for Best {
    fn resize(&mut self, slots: usize) {
        self.values.resize_with(slots, Vec::new);
    }
    fn reset(&mut self, g: usize) {
        self.values[g].clear();
    }
    fn update(&mut self, groups: &[u32], weights: &[i64], values: &ArrayRef) -> Result<()> {
        if weights.iter().any(|&w| w < 0) {
            return Err(WeirError::internal(
                "a retraction reached min/max over an append-only input",
            ));
        }
        let rows = self.extreme.codec.encode(std::slice::from_ref(values))?;
        let (best, min) = (&mut self.values, self.extreme.min);
        for_each_valid(groups, weights, values, |i, g, _| {
            let value = rows.row(i);
            let value = value.as_ref();
            let current = &mut best[g];
            let better = current.is_empty()
                || if min {
                    value < current.as_slice()
                } else {
                    value > current.as_slice()
                };
            if better {
                current.clear();
                current.extend_from_slice(value);
            }
        });
        Ok(())
    }
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        self.extreme.evaluate(groups.iter().map(|&g| {
            let v = &self.values[g as usize];
            (!v.is_empty()).then_some(v.as_slice())
        }))
    }
    fn save(&self, g: usize) -> AccRef<'_> {
        let v = &self.values[g];
        AccRef::Best((!v.is_empty()).then_some(v.as_slice()))
    }
    fn load(&mut self, g: usize, state: Acc) -> Result<()> {
        match state {
            Acc::Best(v) => self.values[g] = v.unwrap_or_default(),
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }
}

/// min/max over an input with retractions: a multiset of values (row-format bytes) per group,
/// so deleting the current extreme falls back to the next one.
struct Extremes {
    extreme: Extreme,
    values: Vec<Multiset<Vec<u8>>>,
}

impl GroupAccumulator for Extremes {
    fn resize(&mut self, slots: usize) {
        self.values.resize_with(slots, Multiset::default);
    }
    fn reset(&mut self, g: usize) {
        self.values[g] = Multiset::default();
    }
    fn update(&mut self, groups: &[u32], weights: &[i64], values: &ArrayRef) -> Result<()> {
        let rows = self.extreme.codec.encode(std::slice::from_ref(values))?;
        let multisets = &mut self.values;
        for_each_valid(groups, weights, values, |i, g, w| {
            multisets[g].add(rows.row(i).as_ref(), w)
        });
        Ok(())
    }
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let min = self.extreme.min;
        self.extreme.evaluate(
            groups
                .iter()
                .map(|&g| self.values[g as usize].best(min).map(Vec::as_slice)),
        )
    }
    fn save(&self, g: usize) -> AccRef<'_> {
        let multiset = &self.values[g];
        if multiset.is_stored() {
            AccRef::ExtremeEntries
        } else {
            AccRef::Extreme(multiset.inline_ref())
        }
    }
    fn load(&mut self, g: usize, state: Acc) -> Result<()> {
        self.values[g] = match state {
            Acc::Extreme(values) => Multiset::inline(values),
            Acc::ExtremeEntries => Multiset::stored(),
            other => return Err(unexpected(&other)),
        };
        Ok(())
    }
    fn drain_changed(&mut self, g: usize, f: &mut dyn FnMut(&[u8], i64)) -> Result<()> {
        self.values[g].drain_changed(f)
    }
    fn drop_group(&mut self, g: usize, f: &mut dyn FnMut(&[u8])) {
        self.values[g].drain_all(f);
    }
    fn load_value(&mut self, g: usize, value: &[u8], count: i64) -> Result<()> {
        self.values[g].load_value(value, count)
    }
}

/// What min and max over i64-ordered types share: the argument as i64 values, and the way
/// back to the argument's type and then the output type.
struct IntExtreme {
    min: bool,
    arg_type: DataType,
    output_type: DataType,
}

impl IntExtreme {
    fn as_i64(values: &ArrayRef) -> Result<ArrayRef> {
        Ok(cast(values, &DataType::Int64)?)
    }

    fn evaluate(&self, picks: impl Iterator<Item = Option<i64>>) -> Result<ArrayRef> {
        let ints: ArrayRef = Arc::new(picks.collect::<Int64Array>());
        let values = cast(&ints, &self.arg_type)?;
        Ok(if self.arg_type == self.output_type {
            values
        } else {
            cast(&values, &self.output_type)?
        })
    }
}

/// min/max over an append-only input of an i64-ordered type: one value per group.
struct BestInt {
    ints: IntExtreme,
    /// None until the group has a value.
    values: Vec<Option<i64>>,
}

impl GroupAccumulator for BestInt {
    fn resize(&mut self, slots: usize) {
        self.values.resize(slots, None);
    }
    fn reset(&mut self, g: usize) {
        self.values[g] = None;
    }
    fn update(&mut self, groups: &[u32], weights: &[i64], values: &ArrayRef) -> Result<()> {
        if weights.iter().any(|&w| w < 0) {
            return Err(WeirError::internal(
                "a retraction reached min/max over an append-only input",
            ));
        }
        let ints = IntExtreme::as_i64(values)?;
        let raw = ints.as_primitive::<Int64Type>().values();
        let (best, min) = (&mut self.values, self.ints.min);
        for_each_valid(groups, weights, &ints, |i, g, _| {
            let v = raw[i];
            best[g] = Some(match best[g] {
                Some(b) if min => b.min(v),
                Some(b) => b.max(v),
                None => v,
            });
        });
        Ok(())
    }
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        self.ints
            .evaluate(groups.iter().map(|&g| self.values[g as usize]))
    }
    fn save(&self, g: usize) -> AccRef<'_> {
        AccRef::BestInt(self.values[g])
    }
    fn load(&mut self, g: usize, state: Acc) -> Result<()> {
        match state {
            Acc::BestInt(v) => self.values[g] = v,
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }
}

/// min/max with retractions over an i64-ordered type: a multiset of i64 values per group.
struct IntExtremes {
    ints: IntExtreme,
    values: Vec<Multiset<i64>>,
}

impl GroupAccumulator for IntExtremes {
    fn resize(&mut self, slots: usize) {
        self.values.resize_with(slots, Multiset::default);
    }
    fn reset(&mut self, g: usize) {
        self.values[g] = Multiset::default();
    }
    fn update(&mut self, groups: &[u32], weights: &[i64], values: &ArrayRef) -> Result<()> {
        let ints = IntExtreme::as_i64(values)?;
        let raw = ints.as_primitive::<Int64Type>().values();
        let multisets = &mut self.values;
        for_each_valid(groups, weights, &ints, |i, g, w| {
            multisets[g].add(&raw[i], w)
        });
        Ok(())
    }
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let min = self.ints.min;
        self.ints.evaluate(
            groups
                .iter()
                .map(|&g| self.values[g as usize].best(min).copied()),
        )
    }
    fn save(&self, g: usize) -> AccRef<'_> {
        let multiset = &self.values[g];
        if multiset.is_stored() {
            AccRef::ExtremeEntries
        } else {
            AccRef::ExtremeInt(multiset.inline_ref())
        }
    }
    fn load(&mut self, g: usize, state: Acc) -> Result<()> {
        self.values[g] = match state {
            Acc::ExtremeInt(values) => Multiset::inline(values),
            Acc::ExtremeEntries => Multiset::stored(),
            other => return Err(unexpected(&other)),
        };
        Ok(())
    }
    fn drain_changed(&mut self, g: usize, f: &mut dyn FnMut(&[u8], i64)) -> Result<()> {
        self.values[g].drain_changed(f)
    }
    fn drop_group(&mut self, g: usize, f: &mut dyn FnMut(&[u8])) {
        self.values[g].drain_all(f);
    }
    fn load_value(&mut self, g: usize, value: &[u8], count: i64) -> Result<()> {
        self.values[g].load_value(value, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AccRef must write exactly what Acc reads, or stored state would not restore.
    #[test]
    fn borrowed_state_writes_the_stored_format() {
        let multiset = BTreeMap::from([(vec![1, 2], 3), (vec![4], -1)]);
        let inline = Multiset::inline(multiset.clone());
        let ints = Multiset::inline(BTreeMap::from([(-3, 2)]));
        let mut exact = ExactSum::default();
        exact.add(1e16, 1);
        exact.add(-0.25, 3);
        let pairs = [
            (Acc::Count(-7), AccRef::Count(-7)),
            (
                Acc::SumExact {
                    sum: -1 << 100,
                    n: 2,
                },
                AccRef::SumExact {
                    sum: -1 << 100,
                    n: 2,
                },
            ),
            (
                Acc::SumFloat { sum: 1.5, n: 1 },
                AccRef::SumFloat { sum: 1.5, n: 1 },
            ),
            (
                Acc::SumFloatExact {
                    sum: exact.clone(),
                    n: 2,
                },
                AccRef::SumFloatExact { sum: &exact, n: 2 },
            ),
            (
                Acc::Extreme(multiset.clone()),
                AccRef::Extreme(inline.inline_ref()),
            ),
            (Acc::Best(Some(vec![9, 8])), AccRef::Best(Some(&[9, 8]))),
            (Acc::Best(None), AccRef::Best(None)),
            (
                Acc::ExtremeInt(BTreeMap::from([(-3, 2)])),
                AccRef::ExtremeInt(ints.inline_ref()),
            ),
            (Acc::BestInt(Some(-9)), AccRef::BestInt(Some(-9))),
            (Acc::ExtremeEntries, AccRef::ExtremeEntries),
        ];
        for (owned, borrowed) in pairs {
            assert_eq!(
                postcard::to_stdvec(&owned).unwrap(),
                postcard::to_stdvec(&borrowed).unwrap(),
                "{owned:?}"
            );
        }
    }

    #[test]
    fn retractions_subtract_and_extremes_fall_back() {
        let groups = [0, 1, 0, 0];
        let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), Some(2), None, Some(3)]));
        let mut sum = accumulator(AggKind::Sum, &DataType::Int64, &DataType::Int64, false).unwrap();
        let mut max = accumulator(AggKind::Max, &DataType::Int64, &DataType::Int64, false).unwrap();
        let mut count =
            accumulator(AggKind::Count, &DataType::Int64, &DataType::Int64, false).unwrap();
        for acc in [&mut sum, &mut max, &mut count] {
            acc.resize(2);
            acc.update(&groups, &[1, 1, 1, 1], &values).unwrap();
            // Retract the 5 of group 0.
            acc.update(
                &[0],
                &[-1],
                &(Arc::new(Int64Array::from(vec![5])) as ArrayRef),
            )
            .unwrap();
        }
        let ints = |a: ArrayRef| a.as_primitive::<Int64Type>().iter().collect::<Vec<_>>();
        assert_eq!(ints(sum.evaluate(&[0, 1]).unwrap()), [Some(3), Some(2)]);
        assert_eq!(ints(max.evaluate(&[0, 1]).unwrap()), [Some(3), Some(2)]);
        assert_eq!(ints(count.evaluate(&[0, 1]).unwrap()), [Some(1), Some(1)]);
        sum.reset(0);
        assert_eq!(
            ints(sum.evaluate(&[0]).unwrap()),
            [None],
            "an empty sum is NULL"
        );
    }

    /// min/max kept as i64 give back values of the argument's own type, for every type kept so.
    #[test]
    fn integer_extremes_keep_their_type() {
        use datafusion::arrow::datatypes::TimeUnit;
        let types = [
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::UInt32,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        ];
        let ints = |v: Vec<Option<i64>>| -> ArrayRef { Arc::new(Int64Array::from(v)) };
        for t in types {
            assert!(integer_like(&t));
            let values = cast(&ints(vec![Some(3), None, Some(1)]), &t).unwrap();
            let expected = cast(&ints(vec![Some(1), None]), &t).unwrap();
            for append_only in [false, true] {
                let mut min = accumulator(AggKind::Min, &t, &t, append_only).unwrap();
                min.resize(2);
                min.update(&[0, 0, 0], &[1, 1, 1], &values).unwrap();
                let out = min.evaluate(&[0, 1]).unwrap();
                assert_eq!(&out, &expected, "{t}");
            }
        }
    }
}
