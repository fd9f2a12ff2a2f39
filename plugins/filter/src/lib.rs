//! `filter`: keeps the rows whose numeric column compares true against a constant; nulls never
//! pass. Written on the SDK's whole-column fast path (`columns`): one comparison loop into a
//! bitmap, then Arrow's filter kernel over every column.
//!
//! ```toml
//! [[transform]]
//! plugin = "filter"
//! config = { column = "value", op = ">=", value = 10 }
//! ```

use weir_plugin_sdk::arrow_array::RecordBatch;
use weir_plugin_sdk::arrow_schema::SchemaRef;
use weir_plugin_sdk::{Config, Error, Transform, columns};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    column: String,
    op: String,
    value: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn parse(text: &str) -> Result<Op, Error> {
        Ok(match text {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "==" | "=" => Op::Eq,
            "!=" => Op::Ne,
            other => {
                return Err(Error::new(format!(
                    "op `{other}` is not one of < <= > >= == !="
                )));
            }
        })
    }
}

/// The plugin.
pub struct Filter {
    column: String,
    op: Op,
    value: f64,
}

impl Transform for Filter {
    fn new(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        Ok(Filter {
            op: Op::parse(&s.op)?,
            column: s.column,
            value: s.value,
        })
    }

    fn output_schema(&mut self, input: &SchemaRef) -> Result<SchemaRef, Error> {
        let field = input
            .field_with_name(&self.column)
            .map_err(|_| Error::new(format!("the input has no column `{}`", self.column)))?;
        if !field.data_type().is_numeric() {
            return Err(Error::new(format!(
                "column `{}` is {}, filter compares numbers",
                self.column,
                field.data_type()
            )));
        }
        Ok(input.clone())
    }

    fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch, Error> {
        let values = columns::as_f64(columns::column(&batch, &self.column)?)?;
        let c = self.value;
        // One monomorphic loop per operator, so the comparison vectorises.
        let keep = match self.op {
            Op::Lt => columns::compare_f64(&values, |v| v < c),
            Op::Le => columns::compare_f64(&values, |v| v <= c),
            Op::Gt => columns::compare_f64(&values, |v| v > c),
            Op::Ge => columns::compare_f64(&values, |v| v >= c),
            Op::Eq => columns::compare_f64(&values, |v| v == c),
            Op::Ne => columns::compare_f64(&values, |v| v != c),
        };
        columns::filter(&batch, &keep)
    }
}

weir_plugin_sdk::export_transform!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_plugin_sdk::arrow_array::cast::AsArray;
    use weir_plugin_sdk::arrow_array::types::Int64Type;
    use weir_plugin_sdk::arrow_array::{ArrayRef, Int64Array};

    fn run(config: &str, values: Vec<Option<i64>>) -> Vec<i64> {
        let mut plugin = Filter::new(&Config::from_json(config).unwrap()).unwrap();
        let batch =
            RecordBatch::try_from_iter([("value", Arc::new(Int64Array::from(values)) as ArrayRef)])
                .unwrap();
        plugin.output_schema(&batch.schema()).unwrap();
        let out = plugin.process(batch).unwrap();
        out.column(0).as_primitive::<Int64Type>().values().to_vec()
    }

    #[test]
    fn keeps_rows_that_compare_true_and_drops_nulls() {
        let values = vec![Some(5), None, Some(10), Some(11), Some(-3)];
        assert_eq!(
            run(r#"{"column":"value","op":">=","value":10}"#, values.clone()),
            [10, 11]
        );
        assert_eq!(
            run(r#"{"column":"value","op":"<","value":0}"#, values.clone()),
            [-3]
        );
        assert_eq!(
            run(r#"{"column":"value","op":"!=","value":5}"#, values),
            [10, 11, -3]
        );
    }

    #[test]
    fn keeps_the_rows_arrows_comparison_and_filter_kernels_keep() {
        // The same filter written with the kernels the SDK re-exports (the README's example).
        use weir_plugin_sdk::arrow_array::{Float64Array, Scalar};
        use weir_plugin_sdk::arrow_ord::cmp::gt_eq;
        use weir_plugin_sdk::arrow_select::filter::filter_record_batch;
        let values: Vec<Option<f64>> = (0..1000)
            .map(|i| (i % 7 != 0).then_some(((i * 37) % 101) as f64))
            .collect();
        let batch = RecordBatch::try_from_iter([(
            "value",
            Arc::new(Float64Array::from(values)) as ArrayRef,
        )])
        .unwrap();
        let config = Config::from_json(r#"{"column":"value","op":">=","value":50}"#).unwrap();
        let mut plugin = Filter::new(&config).unwrap();
        plugin.output_schema(&batch.schema()).unwrap();
        let by_plugin = plugin.process(batch.clone()).unwrap();
        let keep = gt_eq(
            batch.column(0),
            &Scalar::new(Float64Array::from(vec![50.0])),
        )
        .unwrap();
        let by_kernels = filter_record_batch(&batch, &keep).unwrap();
        assert_eq!(by_plugin, by_kernels);
        assert!(by_plugin.num_rows() > 300 && by_plugin.num_rows() < 700);
    }

    #[test]
    fn rejects_unknown_operators_and_keys() {
        assert!(
            Filter::new(&Config::from_json(r#"{"column":"v","op":"~","value":1}"#).unwrap())
                .is_err()
        );
        assert!(
            Filter::new(&Config::from_json(r#"{"column":"v","op":"<","value":1,"x":1}"#).unwrap())
                .is_err()
        );
    }
}
