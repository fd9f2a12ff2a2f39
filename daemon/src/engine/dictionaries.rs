//! Dictionary-encoded columns decoded to their plain type, for stages that expect plain types
//! (wasm transforms see `Utf8`, not `Dictionary(Int32, Utf8)`). Sources may produce
//! dictionaries (categorical datagen columns, Parquet files); the plugin contract stays simple.

use super::error::ErrorClass;
use super::operator::{BatchContext, Operator, OperatorError};
use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// The schema with every dictionary column replaced by its value type; `None` when there is
/// none.
pub fn decoded_schema(schema: &Schema) -> Option<SchemaRef> {
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Dictionary(_, _)))
    {
        return None;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, values) => {
                f.as_ref().clone().with_data_type(values.as_ref().clone())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Some(Arc::new(Schema::new(fields)))
}

/// Casts a value to its plain type if it is a dictionary.
pub fn decode_array(array: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    match array.data_type() {
        DataType::Dictionary(_, values) => cast(array, values),
        _ => Ok(array.clone()),
    }
}

/// The stage that decodes dictionary columns.
#[derive(Debug, Clone)]
pub struct DecodeDictionaries {
    output: SchemaRef,
}

impl DecodeDictionaries {
    /// A decoder for batches of `input`, if it has dictionary columns.
    pub fn for_schema(input: &Schema) -> Option<DecodeDictionaries> {
        decoded_schema(input).map(|output| DecodeDictionaries { output })
    }
}

impl Operator for DecodeDictionaries {
    fn stage_id(&self) -> Option<String> {
        Some("decode dictionaries".into())
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn replica(&self) -> Option<Box<dyn Operator>> {
        Some(Box::new(self.clone()))
    }

    fn process(
        &mut self,
        chunk: RecordBatch,
        _: &BatchContext,
    ) -> Result<Vec<RecordBatch>, OperatorError> {
        let error = |e: arrow::error::ArrowError| OperatorError {
            stage: "decoding dictionary columns".into(),
            message: e.to_string(),
            class: ErrorClass::Internal,
            retryable: false,
        };
        let columns = chunk
            .columns()
            .iter()
            .map(decode_array)
            .collect::<Result<Vec<_>, _>>()
            .map_err(error)?;
        Ok(vec![
            RecordBatch::try_new(self.output.clone(), columns).map_err(error)?,
        ])
    }
}
