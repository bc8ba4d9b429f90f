//! Arrow row format as Weir's binary encoding of keys and rows in the store and in operator
//! state. The bytes compare like the values they encode, so keys scan in order, and equal values
//! give equal bytes, so they work as hash-map keys. (The encoding is tied to the Arrow version:
//! a store written by one Arrow row format is read by the same.)

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, RowParser, Rows, SortField};

use crate::error::Result;

/// Encodes and decodes rows of a fixed list of column types.
#[derive(Debug)]
pub struct RowCodec {
    converter: RowConverter,
    parser: RowParser,
}

impl RowCodec {
    pub fn new(types: impl IntoIterator<Item = DataType>) -> Result<Self> {
        let fields = types.into_iter().map(SortField::new).collect();
        let converter = RowConverter::new(fields)?;
        let parser = converter.parser();
        Ok(RowCodec { converter, parser })
    }

    pub fn for_schema(schema: &SchemaRef) -> Result<Self> {
        Self::new(schema.fields().iter().map(|f| f.data_type().clone()))
    }

    /// Row `i` of the result is row `i` of the columns.
    pub fn encode(&self, columns: &[ArrayRef]) -> Result<Rows> {
        Ok(self.converter.convert_columns(columns)?)
    }

    /// Decodes encoded rows back into columns.
    pub fn decode<'a>(&self, rows: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let parsed = rows.into_iter().map(|bytes| self.parser.parse(bytes));
        Ok(self.converter.convert_rows(parsed)?)
    }
}
