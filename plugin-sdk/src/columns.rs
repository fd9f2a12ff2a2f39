//! Whole-column building blocks: the fast path for maps and filters. Each function reads or
//! writes an entire Arrow column in one loop over its values buffer (which the compiler
//! vectorises) and handles nulls as bitmaps, so nothing is done per cell beyond the arithmetic
//! itself. Compare [`crate::rows`], which calls a closure per row and is several times slower.
//!
//! ```ignore
//! use weir_plugin_sdk::columns::{self, Operand};
//!
//! // value * 2.5, nulls kept:
//! let value = columns::as_f64(columns::column(&batch, "value")?)?;
//! let out = columns::map_f64(batch.num_rows(), Operand::Column(&value), Operand::Scalar(2.5), |a, b| a * b);
//! let batch = columns::with_column(&batch, "scaled", std::sync::Arc::new(out))?;
//!
//! // keep rows whose value is at least 10 (nulls never pass):
//! let keep = columns::compare_f64(&value, |v| v >= 10.0);
//! let batch = columns::filter(&batch, &keep)?;
//! ```

use crate::error::Error;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, PrimitiveArray, RecordBatch,
};
use arrow_buffer::{BooleanBuffer, BooleanBufferBuilder, NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

/// The column called `name`, or an error naming it.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, Error> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::new(format!("no column `{name}` in the input")))
}

/// A numeric column as doubles (integers converted, nulls kept); the column itself, without a
/// copy, when it is already Float64.
pub fn as_f64(array: &ArrayRef) -> Result<Float64Array, Error> {
    Ok(match array.data_type() {
        DataType::Float64 => array.as_primitive::<Float64Type>().clone(),
        DataType::Float32 => array.as_primitive::<Float32Type>().unary(f64::from),
        DataType::Int8 => array.as_primitive::<Int8Type>().unary(f64::from),
        DataType::Int16 => array.as_primitive::<Int16Type>().unary(f64::from),
        DataType::Int32 => array.as_primitive::<Int32Type>().unary(f64::from),
        DataType::Int64 => array.as_primitive::<Int64Type>().unary(|v| v as f64),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().unary(f64::from),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().unary(f64::from),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().unary(f64::from),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().unary(|v| v as f64),
        other => return Err(Error::new(format!("a {other} column is not a number"))),
    })
}

/// A signed integer column as `i64` (nulls kept); the column itself, without a copy, when it is
/// already Int64.
pub fn as_i64(array: &ArrayRef) -> Result<Int64Array, Error> {
    Ok(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().clone(),
        DataType::Int8 => array.as_primitive::<Int8Type>().unary(i64::from),
        DataType::Int16 => array.as_primitive::<Int16Type>().unary(i64::from),
        DataType::Int32 => array.as_primitive::<Int32Type>().unary(i64::from),
        other => {
            return Err(Error::new(format!(
                "a {other} column is not a signed integer"
            )));
        }
    })
}

/// One side of a binary operation: a column, or the same value on every row.
pub enum Operand<'a, T: arrow_array::ArrowPrimitiveType> {
    /// A column of the batch.
    Column(&'a PrimitiveArray<T>),
    /// A constant.
    Scalar(T::Native),
}

impl<T: arrow_array::ArrowPrimitiveType> Clone for Operand<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: arrow_array::ArrowPrimitiveType> Copy for Operand<'_, T> {}

impl<T: arrow_array::ArrowPrimitiveType> Operand<'_, T> {
    fn nulls(&self) -> Option<&NullBuffer> {
        match self {
            Operand::Column(array) => array.nulls(),
            Operand::Scalar(_) => None,
        }
    }
}

/// `f(left, right)` on every row, as one loop over the values; a row where either side is null
/// is null. `f` also runs on the (meaningless) values under nulls, so it must not panic on
/// any input: use wrapping arithmetic for integers.
fn map<T, F>(rows: usize, left: Operand<'_, T>, right: Operand<'_, T>, f: F) -> PrimitiveArray<T>
where
    T: arrow_array::ArrowPrimitiveType,
    F: Fn(T::Native, T::Native) -> T::Native,
{
    let values: ScalarBuffer<T::Native> = match (left, right) {
        (Operand::Column(l), Operand::Column(r)) => l
            .values()
            .iter()
            .zip(r.values().iter())
            .map(|(a, b)| f(*a, *b))
            .collect(),
        (Operand::Column(l), Operand::Scalar(b)) => l.values().iter().map(|a| f(*a, b)).collect(),
        (Operand::Scalar(a), Operand::Column(r)) => r.values().iter().map(|b| f(a, *b)).collect(),
        (Operand::Scalar(a), Operand::Scalar(b)) => std::iter::repeat_n(f(a, b), rows).collect(),
    };
    let nulls = NullBuffer::union(left.nulls(), right.nulls());
    PrimitiveArray::new(values, nulls)
}

/// The number of rows an operation on `left` and `right` has (the columns' length; `rows` when
/// both are constants).
fn length<T: arrow_array::ArrowPrimitiveType>(
    rows: usize,
    left: &Operand<'_, T>,
    right: &Operand<'_, T>,
) -> usize {
    match (left, right) {
        (Operand::Column(a), _) => a.len(),
        (_, Operand::Column(b)) => b.len(),
        _ => rows,
    }
}

/// `f(left, right)` over doubles on every row (`rows` is the length when both are constants);
/// null where either side is null.
pub fn map_f64(
    rows: usize,
    left: Operand<'_, Float64Type>,
    right: Operand<'_, Float64Type>,
    f: impl Fn(f64, f64) -> f64,
) -> Float64Array {
    map(length(rows, &left, &right), left, right, f)
}

/// `f(left, right)` over `i64` on every row (`rows` is the length when both are constants);
/// null where either side is null. `f` runs on the values under nulls too: use wrapping
/// arithmetic, never operations that panic.
pub fn map_i64(
    rows: usize,
    left: Operand<'_, Int64Type>,
    right: Operand<'_, Int64Type>,
    f: impl Fn(i64, i64) -> i64,
) -> Int64Array {
    map(length(rows, &left, &right), left, right, f)
}

/// Like [`map_i64`] for an operation that can fail (`checked_rem`, `checked_div`): a row where
/// `f` gives `None` is null as well.
pub fn try_map_i64(
    rows: usize,
    left: Operand<'_, Int64Type>,
    right: Operand<'_, Int64Type>,
    f: impl Fn(i64, i64) -> Option<i64>,
) -> Int64Array {
    let rows = length(rows, &left, &right);
    let at = |operand: &Operand<'_, Int64Type>, i: usize| match operand {
        Operand::Column(a) => a.values()[i],
        Operand::Scalar(v) => *v,
    };
    // One call of `f` a row gives both the value and whether it is defined.
    let mut defined = BooleanBufferBuilder::new(rows);
    let values: ScalarBuffer<i64> = (0..rows)
        .map(|i| {
            let value = f(at(&left, i), at(&right, i));
            defined.append(value.is_some());
            value.unwrap_or(0)
        })
        .collect();
    let operands = NullBuffer::union(left.nulls(), right.nulls());
    let nulls = NullBuffer::union(operands.as_ref(), Some(&NullBuffer::new(defined.finish())));
    Int64Array::new(values, nulls)
}

/// Which rows of a double column satisfy `test`, as a mask for [`filter`]; a null row never
/// does.
pub fn compare_f64(values: &Float64Array, test: impl Fn(f64) -> bool) -> BooleanArray {
    let slice = values.values();
    let held = BooleanBuffer::collect_bool(slice.len(), |i| test(slice[i]));
    let held = match values.nulls() {
        Some(nulls) => &held & nulls.inner(),
        None => held,
    };
    BooleanArray::new(held, None)
}

/// The rows of `batch` where `mask` is true (Arrow's filter kernel, every column at once).
pub fn filter(batch: &RecordBatch, mask: &BooleanArray) -> Result<RecordBatch, Error> {
    arrow_select::filter::filter_record_batch(batch, mask)
        .map_err(|e| Error::new(format!("filtering the batch: {e}")))
}

/// `batch` with `array` appended as a nullable column `name`.
pub fn with_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> Result<RecordBatch, Error> {
    let schema = batch.schema();
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(name, array.data_type().clone(), true)));
    let mut arrays = batch.columns().to_vec();
    arrays.push(array);
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        arrays,
    )
    .map_err(|e| Error::new(format!("adding column `{name}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(values: &[Option<i64>]) -> Int64Array {
        Int64Array::from(values.to_vec())
    }

    #[test]
    fn a_null_on_either_side_gives_null_and_constants_apply_to_every_row() {
        let a = ints(&[Some(1), None, Some(3)]);
        let b = ints(&[Some(10), Some(20), None]);
        let sum = map_i64(
            3,
            Operand::Column(&a),
            Operand::Column(&b),
            i64::wrapping_add,
        );
        assert_eq!(sum, ints(&[Some(11), None, None]));
        let plus = map_i64(
            3,
            Operand::Column(&a),
            Operand::Scalar(5),
            i64::wrapping_add,
        );
        assert_eq!(plus, ints(&[Some(6), None, Some(8)]));
        let constant = map_i64(2, Operand::Scalar(2), Operand::Scalar(3), i64::wrapping_mul);
        assert_eq!(constant, ints(&[Some(6), Some(6)]));
    }

    #[test]
    fn a_failed_checked_operation_is_null_like_a_null_operand() {
        let a = ints(&[Some(7), Some(i64::MIN), Some(-7), None]);
        let b = ints(&[Some(0), Some(-1), Some(2), Some(1)]);
        let rem = try_map_i64(
            4,
            Operand::Column(&a),
            Operand::Column(&b),
            i64::checked_rem,
        );
        assert_eq!(rem, ints(&[None, None, Some(-1), None]));
    }

    #[test]
    fn numbers_of_every_width_read_as_doubles_and_other_types_are_refused() {
        let small: ArrayRef = Arc::new(arrow_array::Int8Array::from(vec![Some(-3), None]));
        assert_eq!(
            as_f64(&small).ok(),
            Some(Float64Array::from(vec![Some(-3.0), None]))
        );
        let text: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["1"]));
        assert!(as_f64(&text).is_err());
        assert!(as_i64(&text).is_err());
    }

    #[test]
    fn a_comparison_mask_never_keeps_a_null_row() {
        let v = Float64Array::from(vec![Some(1.0), None, Some(12.0), Some(10.0)]);
        let mask = compare_f64(&v, |x| x >= 10.0);
        assert_eq!(mask, BooleanArray::from(vec![false, false, true, true]));
    }
}
