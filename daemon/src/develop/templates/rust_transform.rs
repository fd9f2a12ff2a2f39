//! {name}: a weir transform plugin.
//!
//! A plugin that only adds or replaces columns is faster as a `Map`, one that only drops rows
//! as a `Filter` (the SDK's README shows both): weir then sends it only the columns it reads.

use weir_plugin_sdk::arrow_array::RecordBatch;
use weir_plugin_sdk::arrow_schema::SchemaRef;
use weir_plugin_sdk::{{Config, Error, Transform}};

/// The plugin.
pub struct {class_name};

impl Transform for {class_name} {{
    fn new(_config: &Config) -> Result<Self, Error> {{
        Ok({class_name})
    }}

    fn output_schema(&mut self, input: &SchemaRef) -> Result<SchemaRef, Error> {{
        Ok(input.clone())
    }}

    /// Passes every row through unchanged.
    fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch, Error> {{
        Ok(batch)
    }}
}}

weir_plugin_sdk::export_transform!({class_name});

#[cfg(test)]
mod tests {{
    use super::*;
    use std::sync::Arc;
    use weir_plugin_sdk::arrow_array::{{ArrayRef, Float64Array}};

    #[test]
    fn every_row_passes_through_unchanged() -> Result<(), Box<dyn std::error::Error>> {{
        let values: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.5), None]));
        let batch = RecordBatch::try_from_iter([("value", values)])?;
        let mut plugin = {class_name}::new(&Config::from_json("{{}}")?)?;
        assert_eq!(plugin.process(batch.clone())?, batch);
        Ok(())
    }}
}}
