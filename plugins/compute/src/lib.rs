//! `compute`: adds a column computed from two operands, each a numeric column or a constant:
//! `output = left op right`. Integer operands with + - * % give a long (wrapping on
//! overflow); anything with a double, or `/`, gives a double. A null operand, or an integer
//! division by zero, gives null. Written on the SDK's whole-column fast path (`columns`) as a
//! `Map`: only the operand columns enter the plugin and only the new column comes back.
//!
//! ```toml
//! [[transform]]
//! plugin = "compute"
//! config = { output = "total", left = "price", op = "*", right = "quantity" }
//! config = { output = "doubled", left = "value", op = "*", right = 2 }
//! ```

use std::sync::Arc;
use weir_plugin_sdk::arrow_array::types::{Float64Type, Int64Type};
use weir_plugin_sdk::arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use weir_plugin_sdk::arrow_schema::{DataType, Field, SchemaRef};
use weir_plugin_sdk::columns::{self, Operand as Side};
use weir_plugin_sdk::{Config, Error, Map, Plan};

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Operand {
    Int(i64),
    Float(f64),
    Column(String),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    output: String,
    left: Operand,
    op: String,
    right: Operand,
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// The plugin.
pub struct Compute {
    s: Settings,
    op: Op,
    integer: bool,
}

fn is_integer(input: &SchemaRef, operand: &Operand) -> Result<bool, Error> {
    match operand {
        Operand::Int(_) => Ok(true),
        Operand::Float(_) => Ok(false),
        Operand::Column(name) => {
            let field = input
                .field_with_name(name)
                .map_err(|_| Error::new(format!("the input has no column `{name}`")))?;
            match field.data_type() {
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Ok(true),
                DataType::Float32 | DataType::Float64 => Ok(false),
                other => Err(Error::new(format!(
                    "column `{name}` is {other}; compute needs numbers"
                ))),
            }
        }
    }
}

/// An operand's column as `i64` (read in place when it is Int64), or `None` for a constant.
fn int_column(batch: &RecordBatch, operand: &Operand) -> Result<Option<Int64Array>, Error> {
    match operand {
        Operand::Column(name) => Ok(Some(columns::as_i64(columns::column(batch, name)?)?)),
        _ => Ok(None),
    }
}

/// An operand's column as doubles (read in place when it is Float64), or `None` for a constant.
fn float_column(batch: &RecordBatch, operand: &Operand) -> Result<Option<Float64Array>, Error> {
    match operand {
        Operand::Column(name) => Ok(Some(columns::as_f64(columns::column(batch, name)?)?)),
        _ => Ok(None),
    }
}

fn int_side<'a>(column: &'a Option<Int64Array>, operand: &Operand) -> Side<'a, Int64Type> {
    match (column, operand) {
        (Some(array), _) => Side::Column(array),
        (None, Operand::Int(v)) => Side::Scalar(*v),
        (None, Operand::Float(v)) => Side::Scalar(*v as i64),
        (None, Operand::Column(_)) => Side::Scalar(0),
    }
}

fn float_side<'a>(column: &'a Option<Float64Array>, operand: &Operand) -> Side<'a, Float64Type> {
    match (column, operand) {
        (Some(array), _) => Side::Column(array),
        (None, Operand::Int(v)) => Side::Scalar(*v as f64),
        (None, Operand::Float(v)) => Side::Scalar(*v),
        (None, Operand::Column(_)) => Side::Scalar(0.0),
    }
}

impl Map for Compute {
    fn new(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        let op = match s.op.as_str() {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Rem,
            other => return Err(Error::new(format!("op `{other}` is not one of + - * / %"))),
        };
        Ok(Compute {
            s,
            op,
            integer: false,
        })
    }

    fn plan(&mut self, input: &SchemaRef) -> Result<Plan, Error> {
        self.integer = is_integer(input, &self.s.left)?
            && is_integer(input, &self.s.right)?
            && !matches!(self.op, Op::Div);
        if input.column_with_name(&self.s.output).is_some() {
            return Err(Error::new(format!(
                "the input already has a column `{}`",
                self.s.output
            )));
        }
        let data_type = if self.integer {
            DataType::Int64
        } else {
            DataType::Float64
        };
        let reads = [&self.s.left, &self.s.right]
            .into_iter()
            .filter_map(|operand| match operand {
                Operand::Column(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        Ok(Plan {
            reads,
            writes: vec![Field::new(&self.s.output, data_type, true)],
            drops: Vec::new(),
        })
    }

    /// One loop over whole columns per batch (`columns`), not a closure per row.
    fn map(&mut self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, Error> {
        let (s, rows) = (&self.s, batch.num_rows());
        let out: ArrayRef = if self.integer {
            let (l, r) = (int_column(batch, &s.left)?, int_column(batch, &s.right)?);
            let (l, r) = (int_side(&l, &s.left), int_side(&r, &s.right));
            Arc::new(match self.op {
                Op::Add => columns::map_i64(rows, l, r, i64::wrapping_add),
                Op::Sub => columns::map_i64(rows, l, r, i64::wrapping_sub),
                Op::Mul => columns::map_i64(rows, l, r, i64::wrapping_mul),
                // By zero, or i64::MIN % -1: null.
                Op::Rem | Op::Div => columns::try_map_i64(rows, l, r, i64::checked_rem),
            })
        } else {
            let (l, r) = (
                float_column(batch, &s.left)?,
                float_column(batch, &s.right)?,
            );
            let (l, r) = (float_side(&l, &s.left), float_side(&r, &s.right));
            Arc::new(match self.op {
                Op::Add => columns::map_f64(rows, l, r, |a, b| a + b),
                Op::Sub => columns::map_f64(rows, l, r, |a, b| a - b),
                Op::Mul => columns::map_f64(rows, l, r, |a, b| a * b),
                Op::Div => columns::map_f64(rows, l, r, |a, b| a / b),
                Op::Rem => columns::map_f64(rows, l, r, |a, b| a % b),
            })
        };
        Ok(vec![out])
    }
}

weir_plugin_sdk::export_map!(Compute);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_plugin_sdk::arrow_array::cast::AsArray;
    use weir_plugin_sdk::arrow_array::types::{Float64Type, Int64Type};
    use weir_plugin_sdk::arrow_array::{Array, ArrayRef, Float64Array, Int64Array};
    use weir_plugin_sdk::{Mapped, Transform};

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "qty",
                Arc::new(Int64Array::from(vec![Some(2), None, Some(7)])) as ArrayRef,
            ),
            (
                "price",
                Arc::new(Float64Array::from(vec![1.5, 2.0, 0.5])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    fn plugin(config: &str) -> Mapped<Compute> {
        let mut p = Mapped::<Compute>::new(&Config::from_json(config).unwrap()).unwrap();
        p.output_schema(&batch().schema()).unwrap();
        p
    }

    #[test]
    fn integers_stay_integers_and_nulls_propagate() {
        let mut p = plugin(r#"{"output":"r","left":"qty","op":"%","right":4}"#);
        let out = p.process(batch()).unwrap();
        let r = out.column(2).as_primitive::<Int64Type>();
        assert_eq!((r.value(0), r.is_null(1), r.value(2)), (2, true, 3));
    }

    #[test]
    fn mixing_in_a_double_gives_doubles() {
        let mut p = plugin(r#"{"output":"total","left":"qty","op":"*","right":"price"}"#);
        let out = p.process(batch()).unwrap();
        assert_eq!(out.schema().field(2).data_type(), &DataType::Float64);
        let t = out.column(2).as_primitive::<Float64Type>();
        assert_eq!((t.value(0), t.is_null(1), t.value(2)), (3.0, true, 3.5));
    }

    #[test]
    fn rejects_unknown_columns_at_load() {
        let mut p = Mapped::<Compute>::new(
            &Config::from_json(r#"{"output":"x","left":"nope","op":"+","right":1}"#).unwrap(),
        )
        .unwrap();
        assert!(p.output_schema(&batch().schema()).is_err());
    }
}
