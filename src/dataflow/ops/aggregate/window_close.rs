//! EMIT ON WINDOW CLOSE: an aggregate grouped by a window (a `window_start` or `window_end`
//! column whose values follow a source's watermark) emits each window's row once, when the
//! watermark passes it, and then forgets the window. Until then it emits nothing for it.
//!
//! A row whose window the watermark has already passed is late: it is dropped (its window's
//! row is out and will not change). The operator's watermark is stored with its state, so a
//! restart neither reopens a closed window nor lets a late row in.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};

use crate::dataflow::ops::OPERATOR_WIDE_STATE;
use crate::error::Result;

/// Where the operator's watermark is stored, under its prefix.
pub const WATERMARK_SUFFIX: &[u8] = &[OPERATOR_WIDE_STATE, b'w'];

pub struct WindowClose {
    /// The group key that holds the window.
    pub key: usize,
    /// The input column (the group key's expression) whose watermark closes windows.
    pub input_column: usize,
    /// Windows whose key is below this are closed.
    pub watermark: Option<i64>,
    /// The watermark last written to the store.
    pub saved: Option<i64>,
}

impl WindowClose {
    pub fn new(key: usize, input_column: usize) -> Self {
        WindowClose {
            key,
            input_column,
            watermark: None,
            saved: None,
        }
    }

    /// Raises the watermark (it never goes back).
    pub fn advance(&mut self, value: i64) {
        self.watermark = Some(self.watermark.map_or(value, |w| w.max(value)));
    }

    /// For each value of a window key column: whether its window is still open (a NULL
    /// window never closes, so it is not kept either).
    pub fn open(&self, keys: &ArrayRef) -> Result<BooleanArray> {
        let micros = as_micros(keys)?;
        let micros = micros.as_primitive::<Int64Type>();
        Ok(micros
            .iter()
            .map(|v| Some(v.is_some_and(|v| self.watermark.is_none_or(|w| v >= w))))
            .collect())
    }
}

/// A timestamp column as its microseconds.
pub fn as_micros(column: &ArrayRef) -> Result<ArrayRef> {
    let ts = cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    Ok(cast(&ts, &DataType::Int64)?)
}

/// Whether a group key value (a window) is closed by `watermark`.
pub fn closed(micros: &dyn Array, i: usize, watermark: i64) -> bool {
    let micros = micros.as_primitive::<Int64Type>();
    micros.is_valid(i) && micros.value(i) < watermark
}
