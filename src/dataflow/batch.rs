//! Change batches: Arrow rows plus a signed weight per row (+1 insert, −1 retract). Every
//! operator consumes and emits these, so retractions flow through every operator and any view
//! can be kept up to date.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{self, filter_record_batch};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};

use crate::error::Result;
use crate::formats::RowCodec;

#[derive(Debug, Clone)]
pub struct ChangeBatch {
    pub rows: RecordBatch,
    pub weights: Vec<i64>,
}

impl ChangeBatch {
    pub fn new(rows: RecordBatch, weights: Vec<i64>) -> Self {
        debug_assert_eq!(rows.num_rows(), weights.len(), "one weight per row");
        ChangeBatch { rows, weights }
    }

    /// All rows inserted once.
    pub fn inserts(rows: RecordBatch) -> Self {
        let weights = vec![1; rows.num_rows()];
        ChangeBatch { rows, weights }
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Keeps the rows where `mask` is true (NULL counts as false).
    pub fn filter(&self, mask: &BooleanArray) -> Result<ChangeBatch> {
        let rows = filter_record_batch(&self.rows, mask)?;
        let weights = self
            .weights
            .iter()
            .zip(mask.iter())
            .filter(|(_, keep)| keep.unwrap_or(false))
            .map(|(w, _)| *w)
            .collect();
        Ok(ChangeBatch { rows, weights })
    }

    /// Rows at `indices`, in that order.
    pub fn take(&self, indices: &[u32]) -> Result<ChangeBatch> {
        let idx = UInt32Array::from(indices.to_vec());
        let rows = compute::take_record_batch(&self.rows, &idx)?;
        let weights = indices.iter().map(|&i| self.weights[i as usize]).collect();
        Ok(ChangeBatch { rows, weights })
    }

    /// Concatenates batches of one schema.
    pub fn concat(schema: &SchemaRef, batches: &[ChangeBatch]) -> Result<ChangeBatch> {
        let rows = compute::concat_batches(schema, batches.iter().map(|b| &b.rows))?;
        let weights = batches
            .iter()
            .flat_map(|b| b.weights.iter().copied())
            .collect();
        Ok(ChangeBatch { rows, weights })
    }

    /// Sums the weights of equal rows and drops rows whose weight sums to zero.
    pub fn consolidate(&self, codec: &RowCodec) -> Result<ChangeBatch> {
        let encoded = codec.encode(self.rows.columns())?;
        let mut first_index: HashMap<&[u8], usize> = HashMap::with_capacity(self.len());
        let mut order: Vec<(u32, i64)> = Vec::new();
        for (i, row) in encoded.iter().enumerate() {
            match first_index.get(row.as_ref()) {
                Some(&slot) => order[slot].1 += self.weights[i],
                None => {
                    first_index.insert(row.data(), order.len());
                    order.push((i as u32, self.weights[i]));
                }
            }
        }
        order.retain(|(_, w)| *w != 0);
        let indices: Vec<u32> = order.iter().map(|(i, _)| *i).collect();
        let mut out = self.take(&indices)?;
        out.weights = order.into_iter().map(|(_, w)| w).collect();
        Ok(out)
    }
}

/// The same schema with every field nullable: what operator outputs are built with, since an
/// expression may produce NULL where the planner's schema promised none.
pub fn nullable_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// A batch of `schema` from columns, with the schema's field types.
pub fn batch_from_columns(schema: &SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    if schema.fields().is_empty() {
        let n = columns.first().map(|c| c.len()).unwrap_or(0);
        let options = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(n));
        return Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &options,
        )?);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
