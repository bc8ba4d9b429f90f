//! Project: computes the output columns of each change from its row; the weight is unchanged.
//! A watermark on an input column carries over to each output column computed from it by a
//! non-decreasing expression (the planner says which: the column itself, `date_bin`, plus or
//! minus a constant), evaluated on the watermark's value.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, TimestampMicrosecondArray, new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use super::Operator;
use super::row_errors::{self, OnRowError};
use crate::dataflow::ChangeBatch;
use crate::dataflow::batch::batch_from_columns;
use crate::error::Result;

const TIMESTAMP_MICROS: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

pub struct Project {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    /// Output columns that carry a watermark: (input column, output column), and the input
    /// schema to evaluate them on.
    watermarks: Vec<(usize, usize)>,
    input_schema: Option<SchemaRef>,
    on_row_error: OnRowError,
}

impl Project {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        Project {
            exprs,
            schema,
            watermarks: Vec::new(),
            input_schema: None,
            on_row_error: None,
        }
    }

    /// Skips (and records) the rows an expression fails on instead of failing.
    pub fn on_row_error(mut self, skip: OnRowError) -> Self {
        self.on_row_error = skip;
        self
    }

    /// Carries watermarks from input to output columns (pairs of input, output column).
    pub fn with_watermarks(mut self, input_schema: SchemaRef, pairs: Vec<(usize, usize)>) -> Self {
        self.watermarks = pairs;
        self.input_schema = Some(input_schema);
        self
    }
}

impl Operator for Project {
    fn process(&mut self, _input: usize, batch: ChangeBatch) -> Result<Vec<ChangeBatch>> {
        let (batch, columns) =
            row_errors::evaluate(&self.exprs, batch, self.on_row_error.as_deref())?;
        let rows = batch_from_columns(&self.schema, columns)?;
        Ok(vec![ChangeBatch::new(rows, batch.weights)])
    }

    fn watermark(&mut self, _input: usize, column: usize, value: i64) -> Result<Vec<(usize, i64)>> {
        let Some(schema) = &self.input_schema else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for &(from, to) in &self.watermarks {
            if from != column {
                continue;
            }
            // One row: the watermark in its column, NULL elsewhere.
            let columns: Vec<ArrayRef> = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if i == column {
                        let ts = Arc::new(TimestampMicrosecondArray::from(vec![value])) as ArrayRef;
                        cast(&ts, f.data_type())
                    } else {
                        Ok(new_null_array(f.data_type(), 1))
                    }
                })
                .collect::<std::result::Result<_, _>>()?;
            let row = RecordBatch::try_new(schema.clone(), columns)?;
            let result = self.exprs[to].evaluate(&row)?.into_array(1)?;
            let micros = cast(&cast(&result, &TIMESTAMP_MICROS)?, &DataType::Int64)?;
            let micros = micros.as_primitive::<Int64Type>();
            if micros.is_valid(0) {
                out.push((to, micros.value(0)));
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        let exprs: Vec<String> = self.exprs.iter().map(|e| e.to_string()).collect();
        format!("Project: {}", exprs.join(", "))
    }
}
