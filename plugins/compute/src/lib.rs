//! `compute`: adds a column computed from two operands, each a numeric column or a constant:
//! `output = left op right`. Integer operands with + - * % give a long (wrapping on
//! overflow); anything with a double, or `/`, gives a double. A null operand, or an integer
//! division by zero, gives null.
//!
//! ```toml
//! [[transform]]
//! plugin = "compute"
//! config = { output = "total", left = "price", op = "*", right = "quantity" }
//! config = { output = "doubled", left = "value", op = "*", right = 2 }
//! ```

use weir_plugin_sdk::arrow_array::RecordBatch;
use weir_plugin_sdk::arrow_schema::{DataType, SchemaRef};
use weir_plugin_sdk::rows::{self, Row};
use weir_plugin_sdk::{Config, Error, Transform};

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

/// The plugin.
pub struct Compute {
    s: Settings,
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

fn int(row: &Row<'_>, operand: &Operand) -> Result<Option<i64>, Error> {
    match operand {
        Operand::Int(v) => Ok(Some(*v)),
        Operand::Float(v) => Ok(Some(*v as i64)),
        Operand::Column(name) => row.i64(name),
    }
}

fn float(row: &Row<'_>, operand: &Operand) -> Result<Option<f64>, Error> {
    match operand {
        Operand::Int(v) => Ok(Some(*v as f64)),
        Operand::Float(v) => Ok(Some(*v)),
        Operand::Column(name) => row.f64(name),
    }
}

impl Transform for Compute {
    fn new(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        if !matches!(s.op.as_str(), "+" | "-" | "*" | "/" | "%") {
            return Err(Error::new(format!("op `{}` is not one of + - * / %", s.op)));
        }
        Ok(Compute { s, integer: false })
    }

    fn output_schema(&mut self, input: &SchemaRef) -> Result<SchemaRef, Error> {
        self.integer = is_integer(input, &self.s.left)?
            && is_integer(input, &self.s.right)?
            && self.s.op != "/";
        if self.integer {
            rows::with_column::<i64>(input, &self.s.output)
        } else {
            rows::with_column::<f64>(input, &self.s.output)
        }
    }

    fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch, Error> {
        let s = &self.s;
        if self.integer {
            rows::add_column::<i64>(&batch, &s.output, |row| {
                let (Some(l), Some(r)) = (int(row, &s.left)?, int(row, &s.right)?) else {
                    return Ok(None);
                };
                Ok(match s.op.as_str() {
                    "+" => Some(l.wrapping_add(r)),
                    "-" => Some(l.wrapping_sub(r)),
                    "*" => Some(l.wrapping_mul(r)),
                    _ => l.checked_rem(r),
                })
            })
        } else {
            rows::add_column::<f64>(&batch, &s.output, |row| {
                let (Some(l), Some(r)) = (float(row, &s.left)?, float(row, &s.right)?) else {
                    return Ok(None);
                };
                Ok(Some(match s.op.as_str() {
                    "+" => l + r,
                    "-" => l - r,
                    "*" => l * r,
                    "/" => l / r,
                    _ => l % r,
                }))
            })
        }
    }
}

weir_plugin_sdk::export_transform!(Compute);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_plugin_sdk::arrow_array::cast::AsArray;
    use weir_plugin_sdk::arrow_array::types::{Float64Type, Int64Type};
    use weir_plugin_sdk::arrow_array::{Array, ArrayRef, Float64Array, Int64Array};

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

    fn plugin(config: &str) -> Compute {
        let mut p = Compute::new(&Config::from_json(config).unwrap()).unwrap();
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
        let mut p = Compute::new(
            &Config::from_json(r#"{"output":"x","left":"nope","op":"+","right":1}"#).unwrap(),
        )
        .unwrap();
        assert!(p.output_schema(&batch().schema()).is_err());
    }
}
