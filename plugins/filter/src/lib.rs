//! `filter`: keeps the rows whose numeric column compares true against a constant; nulls never
//! pass. Written on the SDK's whole-column fast path (`columns`) as a `Filter`: only the
//! compared column enters the plugin, one comparison loop makes a bitmap, and the host keeps
//! the rows it selects with Arrow's filter kernel (no row crosses back).
//!
//! ```toml
//! [[transform]]
//! plugin = "filter"
//! config = { column = "value", op = ">=", value = 10 }
//! ```

use weir_plugin_sdk::arrow_array::{BooleanArray, RecordBatch};
use weir_plugin_sdk::arrow_schema::SchemaRef;
use weir_plugin_sdk::{Config, Error, Filter, columns};

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

/// The plugin: keeps rows where `column op value`.
pub struct Comparison {
    column: String,
    op: Op,
    value: f64,
}

impl Filter for Comparison {
    fn new(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        Ok(Comparison {
            op: Op::parse(&s.op)?,
            column: s.column,
            value: s.value,
        })
    }

    fn reads(&mut self, input: &SchemaRef) -> Result<Vec<String>, Error> {
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
        Ok(vec![self.column.clone()])
    }

    fn keep(&mut self, batch: &RecordBatch) -> Result<BooleanArray, Error> {
        let values = columns::as_f64(columns::column(batch, &self.column)?)?;
        let c = self.value;
        // One monomorphic loop per operator, so the comparison vectorises.
        Ok(match self.op {
            Op::Lt => columns::compare_f64(&values, |v| v < c),
            Op::Le => columns::compare_f64(&values, |v| v <= c),
            Op::Gt => columns::compare_f64(&values, |v| v > c),
            Op::Ge => columns::compare_f64(&values, |v| v >= c),
            Op::Eq => columns::compare_f64(&values, |v| v == c),
            Op::Ne => columns::compare_f64(&values, |v| v != c),
        })
    }
}

weir_plugin_sdk::export_filter!(Comparison);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_plugin_sdk::arrow_array::cast::AsArray;
    use weir_plugin_sdk::arrow_array::types::Int64Type;
    use weir_plugin_sdk::arrow_array::{ArrayRef, Int64Array};
    use weir_plugin_sdk::{Filtered, Transform};

    fn plugin(config: &str) -> Result<Filtered<Comparison>, Error> {
        Filtered::<Comparison>::new(&Config::from_json(config)?)
    }

    fn run(config: &str, values: Vec<Option<i64>>) -> Vec<i64> {
        let mut plugin = plugin(config).unwrap();
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
        let mut plugin = plugin(r#"{"column":"value","op":">=","value":50}"#).unwrap();
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
        assert!(plugin(r#"{"column":"v","op":"~","value":1}"#).is_err());
        assert!(plugin(r#"{"column":"v","op":"<","value":1,"x":1}"#).is_err());
    }
}
