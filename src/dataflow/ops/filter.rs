//! Filter: keeps the changes whose row satisfies the predicate. Stateless, so a retraction
//! passes exactly when its insertion did.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::physical_expr::PhysicalExpr;

use super::Operator;
use crate::dataflow::ChangeBatch;
use crate::error::{Result, WeirError};

pub struct Filter {
    predicate: Arc<dyn PhysicalExpr>,
}

impl Filter {
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        Filter { predicate }
    }
}

impl Operator for Filter {
    fn process(&mut self, _input: usize, batch: ChangeBatch) -> Result<Vec<ChangeBatch>> {
        let mask = self
            .predicate
            .evaluate(&batch.rows)?
            .into_array(batch.len())?;
        let mask = mask
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
