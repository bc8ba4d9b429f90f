//! Project: computes the output columns of each change from its row; the weight is unchanged.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use super::Operator;
use crate::dataflow::ChangeBatch;
use crate::dataflow::batch::batch_from_columns;
use crate::error::Result;

pub struct Project {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl Project {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        Project { exprs, schema }
    }
}

impl Operator for Project {
    fn process(&mut self, _input: usize, batch: ChangeBatch) -> Result<Vec<ChangeBatch>> {
        let n = batch.len();
        let columns = self
            .exprs
            .iter()
            .map(|e| e.evaluate(&batch.rows)?.into_array(n))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let rows = batch_from_columns(&self.schema, columns)?;
        Ok(vec![ChangeBatch::new(rows, batch.weights)])
    }

    fn describe(&self) -> String {
        let exprs: Vec<String> = self.exprs.iter().map(|e| e.to_string()).collect();
        format!("Project: {}", exprs.join(", "))
    }
}
