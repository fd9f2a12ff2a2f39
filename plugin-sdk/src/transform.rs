//! Transform plugins: a function from an Arrow `RecordBatch` to another, with any number of
//! output rows per input row (map, filter, flat-map).

use crate::error::{Config, Error};
use crate::{slot, wire};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

/// A transform stage. Implement it and register the type with
/// [`export_transform!`](crate::export_transform).
///
/// One instance serves one pipeline stage and is reused across batches; the host may drop it
/// and build a fresh one at any time (after a failed batch, say), so keep nothing in it that
/// cannot be rebuilt from the config.
pub trait Transform: Sized + 'static {
    /// Builds the plugin from the stage's `config` table (called once per instance).
    fn new(config: &Config) -> Result<Self, Error>;

    /// The schema `process` returns for batches of `input`. Called at load, so a pipeline is
    /// type-checked before it runs: reject inputs you cannot handle here, with a message
    /// naming the column and the type you need.
    fn output_schema(&mut self, input: &SchemaRef) -> Result<SchemaRef, Error>;

    /// Transforms one batch. The result must have the schema `output_schema` declared.
    fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch, Error>;
}

struct Instance<T> {
    plugin: T,
    schemas: Option<(SchemaRef, SchemaRef)>,
}

#[doc(hidden)]
pub fn init<T: Transform>(config: &str) -> Result<(), String> {
    let config = Config::from_json(config).map_err(|e| e.to_string())?;
    let plugin = T::new(&config).map_err(|e| e.to_string())?;
    slot::put(Instance {
        plugin,
        schemas: None,
    });
    Ok(())
}

#[doc(hidden)]
pub fn output_schema<T: Transform>(input: &[u8]) -> Result<Vec<u8>, String> {
    slot::with(|instance: &mut Instance<T>| {
        let input = wire::schema_from_bytes(input)?;
        let output = instance.plugin.output_schema(&input)?;
        let bytes = wire::schema_to_bytes(&output)?;
        instance.schemas = Some((input, output));
        Ok(bytes)
    })
}

#[doc(hidden)]
pub fn process<T: Transform>(
    rows: u32,
    columns: Vec<Vec<u8>>,
) -> Result<(u32, Vec<Vec<u8>>), String> {
    slot::with(|instance: &mut Instance<T>| {
        let (input, output) = instance
            .schemas
            .clone()
            .ok_or_else(|| Error::new("the host called process before output-schema"))?;
        let batch = wire::decode_batch(&input, rows as usize, columns)?;
        // What came in, to send back as references the columns returned unchanged.
        let inputs = batch.columns().to_vec();
        let out = instance.plugin.process(batch)?;
        check_declared(&output, &out)?;
        let rows = u32::try_from(out.num_rows())
            .map_err(|_| Error::new("process returned more than 2^32 rows"))?;
        Ok((rows, wire::encode_batch_reusing(&out, &inputs)?))
    })
}

/// Catches a plugin bug in the plugin, where the message can say what was declared.
fn check_declared(declared: &SchemaRef, batch: &RecordBatch) -> Result<(), Error> {
    let got = batch.schema();
    if got.fields().len() != declared.fields().len() {
        return Err(Error::new(format!(
            "process returned {} columns but output_schema declared {}",
            got.fields().len(),
            declared.fields().len()
        )));
    }
    for (g, d) in got.fields().iter().zip(declared.fields()) {
        if g.data_type() != d.data_type() {
            return Err(Error::new(format!(
                "process returned column `{}` as {} but output_schema declared `{}` as {}",
                g.name(),
                g.data_type(),
                d.name(),
                d.data_type()
            )));
        }
    }
    Ok(())
}
