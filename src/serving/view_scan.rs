//! A view's committed rows as a stream of batches, read from the query's store snapshot a page
//! at a time: a SELECT over a big view never holds it whole, reads only the key range its
//! filters allow ([`super::key_range`]), and stops at its LIMIT.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use super::providers::expand;
use crate::catalog::ViewDef;
use crate::config::SCAN_BATCH_ROWS;
use crate::error::Result;
use crate::state::{KeyRange, StoreSnapshot};

/// One scan of a view: what DataFusion runs for `FROM view`.
pub struct ViewScan {
    view: Arc<ViewDef>,
    snapshot: Arc<dyn StoreSnapshot>,
    range: KeyRange,
    /// Rows wanted at most (DataFusion's LIMIT, pushed down when no filter is left above).
    limit: Option<usize>,
}

impl std::fmt::Debug for ViewScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ViewScan({})", self.view.item.name)
    }
}

impl ViewScan {
    pub fn new(
        view: Arc<ViewDef>,
        snapshot: Arc<dyn StoreSnapshot>,
        range: KeyRange,
        limit: Option<usize>,
    ) -> ViewScan {
        ViewScan {
            view,
            snapshot,
            range,
            limit,
        }
    }
}

impl PartitionStream for ViewScan {
    fn schema(&self) -> &SchemaRef {
        &self.view.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let pages = Pages {
            view: self.view.clone(),
            snapshot: self.snapshot.clone(),
            range: self.range.clone(),
            rows_left: self.limit.unwrap_or(usize::MAX),
            done: false,
        };
        let stream = futures::stream::try_unfold(pages, |mut pages| async move {
            match pages.next_batch() {
                Ok(batch) => Ok(batch.map(|b| (b, pages))),
                Err(e) => Err(DataFusionError::External(Box::new(e))),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.view.schema.clone(),
            stream,
        ))
    }
}

/// Where a scan is: the keys still to read, and how many rows it may still return.
struct Pages {
    view: Arc<ViewDef>,
    snapshot: Arc<dyn StoreSnapshot>,
    range: KeyRange,
    rows_left: usize,
    done: bool,
}

impl Pages {
    /// The next page of rows (each row repeated by its multiplicity), or None at the end.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.done || self.rows_left == 0 {
            return Ok(None);
        }
        let want = SCAN_BATCH_ROWS.min(self.rows_left);
        let pairs = self.snapshot.scan(&self.range, want)?;
        self.done = pairs.len() < want;
        let Some((last, _)) = pairs.last() else {
            return Ok(None);
        };
        self.range.start = std::ops::Bound::Excluded(last.clone());
        let mut batch = expand(&self.view.rows.decode_pairs(pairs)?)?;
        if batch.num_rows() > self.rows_left {
            batch = batch.slice(0, self.rows_left);
        }
        self.rows_left -= batch.num_rows();
        Ok(Some(batch))
    }
}
