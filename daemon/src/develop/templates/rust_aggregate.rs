//! {name}: a weir aggregate plugin.

use std::sync::Arc;
use weir_plugin_sdk::arrow_array::{{ArrayRef, Int64Array}};
use weir_plugin_sdk::arrow_schema::DataType;
use weir_plugin_sdk::{{Aggregate, Config, Error, Signature}};

/// The plugin.
pub struct {class_name};

impl Aggregate for {class_name} {{
    /// A group's row count.
    type State = i64;

    fn new(_config: &Config) -> Result<Self, Error> {{
        Ok({class_name})
    }}

    fn signature(&self) -> Signature {{
        Signature {{
            inputs: vec![DataType::Float64],
            output: DataType::Int64,
        }}
    }}

    /// Counts a group's rows.
    fn update(&self, states: &mut [i64], _input: &[ArrayRef], group_of_row: &[u32]) -> Result<(), Error> {{
        for group in group_of_row {{
            if let Some(count) = states.get_mut(*group as usize) {{
                *count += 1;
            }}
        }}
        Ok(())
    }}

    fn merge(&self, state: &mut i64, other: i64) -> Result<(), Error> {{
        *state += other;
        Ok(())
    }}

    fn finish(&self, states: Vec<i64>) -> Result<ArrayRef, Error> {{
        Ok(Arc::new(Int64Array::from(states)))
    }}
}}

weir_plugin_sdk::export_aggregate!({class_name});

#[cfg(test)]
mod tests {{
    use super::*;
    use weir_plugin_sdk::arrow_array::Float64Array;

    #[test]
    fn each_group_counts_its_rows() -> Result<(), Box<dyn std::error::Error>> {{
        let plugin = {class_name}::new(&Config::from_json("{{}}")?)?;
        let mut states = vec![0, 0];
        let input: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0)]));
        plugin.update(&mut states, &[input], &[0, 1, 0])?;
        assert_eq!(states, vec![2, 1]);
        Ok(())
    }}
}}
