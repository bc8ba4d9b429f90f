//! Inner equi-join with keyed state on both sides.
//!
//! Each side keeps `join key → (row → multiplicity)`. A change on one side is matched against
//! the other side's state (weights multiply), then added to its own side's state. Processing
//! the two sides one after the other gives exactly ΔL⋈R + L'⋈ΔR, the change of L⋈R. Rows with a
//! NULL in the key never match, as in SQL. A residual (non-equi) condition filters the output.
//!
//! State is written at checkpoint as `<side byte><key len u32><key><row> → multiplicity`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use super::{Operator, StateScope};
use crate::dataflow::ChangeBatch;
use crate::dataflow::batch::batch_from_columns;
use crate::error::{Result, WeirError};
use crate::formats::RowCodec;
use crate::state::WriteBatch;

type SideState = HashMap<Vec<u8>, HashMap<Vec<u8>, i64>>;

struct Side {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    row_codec: RowCodec,
    state: SideState,
    /// (key, row) pairs changed since the last checkpoint.
    unsaved: HashSet<(Vec<u8>, Vec<u8>)>,
}

pub struct Join {
    sides: [Side; 2],
    key_codec: RowCodec,
    filter: Option<Arc<dyn PhysicalExpr>>,
    output_schema: SchemaRef,
}

impl Join {
    pub fn new(
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        key_types: Vec<datafusion::arrow::datatypes::DataType>,
        left_schema: &SchemaRef,
        right_schema: &SchemaRef,
        filter: Option<Arc<dyn PhysicalExpr>>,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let side = |keys, schema: &SchemaRef| -> Result<Side> {
            Ok(Side {
                keys,
                row_codec: RowCodec::for_schema(schema)?,
                state: HashMap::new(),
                unsaved: HashSet::new(),
            })
        };
        Ok(Join {
            sides: [
                side(left_keys, left_schema)?,
                side(right_keys, right_schema)?,
            ],
            key_codec: RowCodec::new(key_types)?,
            filter,
            output_schema,
        })
    }
}

impl Operator for Join {
    fn process(&mut self, input: usize, batch: ChangeBatch) -> Result<Vec<ChangeBatch>> {
        let n = batch.len();
        let (this, other) = if input == 0 { (0, 1) } else { (1, 0) };
        let key_cols = self.sides[this]
            .keys
            .iter()
            .map(|e| e.evaluate(&batch.rows)?.into_array(n))
            .collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
        let keys = self.key_codec.encode(&key_cols)?;
        let rows = self.sides[this].row_codec.encode(batch.rows.columns())?;

        // Match against the other side.
        let mut this_idx: Vec<u32> = Vec::new();
        let mut other_rows: Vec<&[u8]> = Vec::new();
        let mut weights: Vec<i64> = Vec::new();
        for i in 0..n {
            if key_cols.iter().any(|c| c.is_null(i)) {
                continue;
            }
            if let Some(matches) = self.sides[other].state.get(keys.row(i).as_ref()) {
                for (row, w) in matches {
                    this_idx.push(i as u32);
                    other_rows.push(row.as_slice());
                    weights.push(batch.weights[i] * w);
                }
            }
        }
        let mut out = Vec::new();
        if !this_idx.is_empty() {
            let this_part = batch.take(&this_idx)?;
            let other_cols = self.sides[other].row_codec.decode(other_rows)?;
            let mut columns: Vec<ArrayRef> = Vec::new();
            if this == 0 {
                columns.extend(this_part.rows.columns().iter().cloned());
                columns.extend(other_cols);
            } else {
                columns.extend(other_cols);
                columns.extend(this_part.rows.columns().iter().cloned());
            }
            let joined =
                ChangeBatch::new(batch_from_columns(&self.output_schema, columns)?, weights);
            let joined = match &self.filter {
                Some(f) => {
                    let mask = f.evaluate(&joined.rows)?.into_array(joined.len())?;
                    let mask = mask
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .ok_or_else(|| WeirError::internal("join filter is not boolean"))?;
                    joined.filter(mask)?
                }
                None => joined,
            };
            if !joined.is_empty() {
                out.push(joined);
            }
        }

        // Then absorb into this side.
        let side = &mut self.sides[this];
        for i in 0..n {
            if key_cols.iter().any(|c| c.is_null(i)) {
                continue;
            }
            let key = keys.row(i).data();
            let row = rows.row(i).data();
            let bucket = side.state.entry(key.to_vec()).or_default();
            let count = bucket.entry(row.to_vec()).or_insert(0);
            *count += batch.weights[i];
            if *count == 0 {
                bucket.remove(row);
                if bucket.is_empty() {
                    side.state.remove(key);
                }
            }
            side.unsaved.insert((key.to_vec(), row.to_vec()));
        }
        Ok(out)
    }

    fn checkpoint(&mut self, scope: &StateScope, batch: &mut WriteBatch) -> Result<()> {
        for (side_no, side) in self.sides.iter_mut().enumerate() {
            for (key, row) in side.unsaved.drain() {
                let mut suffix = Vec::with_capacity(5 + key.len() + row.len());
                suffix.push(side_no as u8);
                suffix.extend_from_slice(&(key.len() as u32).to_be_bytes());
                suffix.extend_from_slice(&key);
                suffix.extend_from_slice(&row);
                let count = side
                    .state
                    .get(&key)
                    .and_then(|b| b.get(&row))
                    .copied()
                    .unwrap_or(0);
                if count == 0 {
                    batch.delete(scope.key(&suffix));
                } else {
                    batch.put(scope.key(&suffix), count.to_le_bytes().to_vec());
                }
            }
        }
        Ok(())
    }

    fn restore(&mut self, scope: &StateScope, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let corrupt = || WeirError::internal("corrupt join state");
        for side in &mut self.sides {
            side.state.clear();
            side.unsaved.clear();
        }
        for (full_key, value) in pairs {
            let k = &full_key[scope.prefix.len()..];
            let side_no = *k.first().ok_or_else(corrupt)? as usize;
            let key_len = u32::from_be_bytes(
                k.get(1..5)
                    .ok_or_else(corrupt)?
                    .try_into()
                    .map_err(|_| corrupt())?,
            ) as usize;
            let key = k.get(5..5 + key_len).ok_or_else(corrupt)?.to_vec();
            let row = k[5 + key_len..].to_vec();
            let count = i64::from_le_bytes(value.as_slice().try_into().map_err(|_| corrupt())?);
            let side = self.sides.get_mut(side_no).ok_or_else(corrupt)?;
            side.state.entry(key).or_default().insert(row, count);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let l: Vec<String> = self.sides[0].keys.iter().map(|e| e.to_string()).collect();
        let r: Vec<String> = self.sides[1].keys.iter().map(|e| e.to_string()).collect();
        let on: Vec<String> = l
            .iter()
            .zip(&r)
            .map(|(a, b)| format!("{a} = {b}"))
            .collect();
        match &self.filter {
            Some(f) => format!("HashJoin: on=[{}], filter={f}", on.join(", ")),
            None => format!("HashJoin: on=[{}]", on.join(", ")),
        }
    }
}
