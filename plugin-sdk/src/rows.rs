//! Row-at-a-time helpers for simple maps and filters: write a closure over one [`Row`] and let
//! the helper build the Arrow arrays. Still one call per batch across the boundary; only the
//! closure runs per row, inside the plugin.

use crate::error::Error;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// One row of a batch, read by column name.
#[derive(Debug)]
pub struct Row<'a> {
    batch: &'a RecordBatch,
    index: usize,
}

impl<'a> Row<'a> {
    /// The row's position in its batch.
    pub fn index(&self) -> usize {
        self.index
    }

    fn column(&self, name: &str) -> Result<&'a ArrayRef, Error> {
        self.batch
            .column_by_name(name)
            .ok_or_else(|| Error::new(format!("no column `{name}` in the input")))
    }

    /// Whether the column is null in this row.
    pub fn is_null(&self, name: &str) -> Result<bool, Error> {
        Ok(self.column(name)?.is_null(self.index))
    }

    /// An integer column (8 to 64 bits) as `i64`; `None` when null.
    pub fn i64(&self, name: &str) -> Result<Option<i64>, Error> {
        let c = self.column(name)?;
        if c.is_null(self.index) {
            return Ok(None);
        }
        let i = self.index;
        Ok(Some(match c.data_type() {
            DataType::Int64 => c.as_primitive::<Int64Type>().value(i),
            DataType::Int32 => c.as_primitive::<Int32Type>().value(i).into(),
            DataType::Int16 => c.as_primitive::<Int16Type>().value(i).into(),
            DataType::Int8 => c.as_primitive::<Int8Type>().value(i).into(),
            other => {
                return Err(Error::new(format!(
                    "column `{name}` is {other}, not an integer"
                )));
            }
        }))
    }

    /// A numeric column as `f64` (integers converted); `None` when null.
    pub fn f64(&self, name: &str) -> Result<Option<f64>, Error> {
        let c = self.column(name)?;
        if c.is_null(self.index) {
            return Ok(None);
        }
        let i = self.index;
        Ok(Some(match c.data_type() {
            DataType::Float64 => c.as_primitive::<Float64Type>().value(i),
            DataType::Float32 => c.as_primitive::<Float32Type>().value(i).into(),
            // Large integers round to the nearest double, as a SQL cast would.
            _ => self.i64(name)?.map_or(0.0, |v| v as f64),
        }))
    }

    /// A string column; `None` when null.
    pub fn str(&self, name: &str) -> Result<Option<&'a str>, Error> {
        let c = self.column(name)?;
        match c.data_type() {
            DataType::Utf8 => {
                let a = c.as_string::<i32>();
                Ok((!a.is_null(self.index)).then(|| a.value(self.index)))
            }
            DataType::LargeUtf8 => {
                let a = c.as_string::<i64>();
                Ok((!a.is_null(self.index)).then(|| a.value(self.index)))
            }
            other => Err(Error::new(format!(
                "column `{name}` is {other}, not a string"
            ))),
        }
    }

    /// A boolean column; `None` when null.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Error> {
        let c = self.column(name)?;
        match c.data_type() {
            DataType::Boolean => {
                let a = c.as_boolean();
                Ok((!a.is_null(self.index)).then(|| a.value(self.index)))
            }
            other => Err(Error::new(format!(
                "column `{name}` is {other}, not a boolean"
            ))),
        }
    }
}

/// Keeps the rows for which `keep` returns true.
pub fn filter(
    batch: &RecordBatch,
    mut keep: impl FnMut(&Row<'_>) -> Result<bool, Error>,
) -> Result<RecordBatch, Error> {
    let mut mask = Vec::with_capacity(batch.num_rows());
    for index in 0..batch.num_rows() {
        mask.push(keep(&Row { batch, index })?);
    }
    Ok(arrow_select::filter::filter_record_batch(
        batch,
        &BooleanArray::from(mask),
    )?)
}

/// A type a computed column can hold.
pub trait ColumnValue: Sized {
    /// Its Arrow type.
    const DATA_TYPE: DataType;
    /// Builds the column.
    fn into_array(values: Vec<Option<Self>>) -> ArrayRef;
}

impl ColumnValue for i64 {
    const DATA_TYPE: DataType = DataType::Int64;
    fn into_array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(Int64Array::from(values))
    }
}

impl ColumnValue for f64 {
    const DATA_TYPE: DataType = DataType::Float64;
    fn into_array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(Float64Array::from(values))
    }
}

impl ColumnValue for bool {
    const DATA_TYPE: DataType = DataType::Boolean;
    fn into_array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(BooleanArray::from(values))
    }
}

impl ColumnValue for String {
    const DATA_TYPE: DataType = DataType::Utf8;
    fn into_array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(StringArray::from(values))
    }
}

/// The schema [`add_column`] produces: `input` plus a nullable column `name` of type `V`.
pub fn with_column<V: ColumnValue>(input: &SchemaRef, name: &str) -> Result<SchemaRef, Error> {
    if input.column_with_name(name).is_some() {
        return Err(Error::new(format!(
            "the input already has a column `{name}`"
        )));
    }
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(name, V::DATA_TYPE, true));
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        input.metadata().clone(),
    )))
}

/// Appends a column `name` computed from each row (`None` is a null).
pub fn add_column<V: ColumnValue>(
    batch: &RecordBatch,
    name: &str,
    mut compute: impl FnMut(&Row<'_>) -> Result<Option<V>, Error>,
) -> Result<RecordBatch, Error> {
    let mut values = Vec::with_capacity(batch.num_rows());
    for index in 0..batch.num_rows() {
        values.push(compute(&Row { batch, index })?);
    }
    let schema = with_column::<V>(&batch.schema(), name)?;
    let mut columns = batch.columns().to_vec();
    columns.push(V::into_array(values));
    Ok(RecordBatch::try_new(schema, columns)?)
}
