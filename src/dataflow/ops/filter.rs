//! Filter: keeps the changes whose row satisfies the predicate. Stateless, so a retraction
//! passes exactly when its insertion did.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::physical_expr::PhysicalExpr;

use super::Operator;
use super::row_errors::{self, OnRowError};
use crate::dataflow::ChangeBatch;
use crate::error::{Result, WeirError};

pub struct Filter {
    predicate: Arc<dyn PhysicalExpr>,
    on_row_error: OnRowError,
}

impl Filter {
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        Filter {
            predicate,
            on_row_error: None,
        }
    }

    /// Skips (and records) the rows the predicate fails on instead of failing.
    pub fn on_row_error(mut self, skip: OnRowError) -> Self {
        self.on_row_error = skip;
        self
    }
}

impl Operator for Filter {
    fn process(&mut self, _input: usize, batch: ChangeBatch) -> Result<Vec<ChangeBatch>> {
        let skip = self.on_row_error.as_deref();
        let predicate = std::slice::from_ref(&self.predicate);
        let (batch, masks) = row_errors::evaluate(predicate, batch, skip)?;
        let mask = masks[0]
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| WeirError::internal("filter predicate is not boolean"))?;
        if mask.true_count() == batch.len() && mask.null_count() == 0 {
            return Ok(vec![batch]);
        }
        let out = batch.filter(mask)?;
        Ok(if out.is_empty() { vec![] } else { vec![out] })
    }

    fn watermark(&mut self, _input: usize, column: usize, value: i64) -> Result<Vec<(usize, i64)>> {
        Ok(vec![(column, value)])
    }

    fn describe(&self) -> String {
        format!("Filter: {}", self.predicate)
    }
}
