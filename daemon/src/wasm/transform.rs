//! A transform plugin as a pipeline stage: type-checked at load (its output schema for the
//! stage's input schema), one instance reused across batches, one call per chunk, and a fresh
//! instance after any failure.

use super::error::{CallFailure, PluginError};
use super::host::Limits;
use super::instance::Live;
use super::plugin::{Plugin, PluginKind};
use crate::engine::{BatchContext, Operator, OperatorError, PluginCosts};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;
use wasmtime::component::ComponentExportIndex;
use weir_plugin_sdk::wire;

type Buffers = Vec<Vec<u8>>;

#[derive(Clone, Copy)]
struct Funcs {
    init: ComponentExportIndex,
    output_schema: ComponentExportIndex,
    process: ComponentExportIndex,
}

/// The stage id of the `index`-th (from 1) `[[transform]]`.
pub fn transform_stage_id(index: usize) -> String {
    format!("transform #{index}")
}

/// A `[[transform]]` stage backed by a wasm plugin.
pub struct WasmTransform {
    plugin: Arc<Plugin>,
    pipeline: String,
    /// Position in the `[[transform]]` list, from 1.
    index: usize,
    stage: String,
    config: String,
    limits: Limits,
    input_schema: Vec<u8>,
    output: SchemaRef,
    funcs: Funcs,
    live: Option<Live>,
    costs: Arc<PluginCosts>,
}

impl std::fmt::Debug for WasmTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmTransform")
            .field("stage", &self.stage)
            .finish()
    }
}

fn call_error(plugin: &Plugin, failure: CallFailure) -> PluginError {
    PluginError::Call {
        plugin: plugin.name.clone(),
        failure,
    }
}

impl WasmTransform {
    /// Instantiates the plugin for stage `index` (from 1) of `pipeline`, hands it its config
    /// and asks for its output schema given `input`: a plugin that rejects either fails here,
    /// before the pipeline runs.
    pub fn new(
        plugin: Arc<Plugin>,
        pipeline: &str,
        index: usize,
        config: &serde_json::Value,
        input: &SchemaRef,
        limits: Limits,
    ) -> Result<WasmTransform, PluginError> {
        plugin.expect_kind(PluginKind::Transform)?;
        let funcs = Funcs {
            init: plugin.func("init").map_err(|f| call_error(&plugin, f))?,
            output_schema: plugin
                .func("output-schema")
                .map_err(|f| call_error(&plugin, f))?,
            process: plugin.func("process").map_err(|f| call_error(&plugin, f))?,
        };
        let input_schema = wire::schema_to_bytes(input).map_err(|err| PluginError::Misuse {
            plugin: plugin.name.clone(),
            message: format!("cannot encode the input schema: {err}"),
        })?;
        let mut stage = WasmTransform {
            stage: format!(
                "transform #{index} (plugin `{}`, pipeline `{pipeline}`)",
                plugin.name
            ),
            pipeline: pipeline.to_string(),
            index,
            config: config.to_string(),
            limits,
            input_schema,
            output: input.clone(),
            funcs,
            live: None,
            costs: Arc::new(PluginCosts::new(&plugin.name, limits.memory_bytes)),
            plugin,
        };
        let (live, output) = stage.start()?;
        stage.output = output;
        stage.live = Some(live);
        Ok(stage)
    }

    /// Another stage like this one with an instance of its own, made at its first call (and
    /// checked then to declare the same output schema). It shares the costs.
    fn replica(&self) -> WasmTransform {
        WasmTransform {
            plugin: self.plugin.clone(),
            pipeline: self.pipeline.clone(),
            index: self.index,
            stage: self.stage.clone(),
            config: self.config.clone(),
            limits: self.limits,
            input_schema: self.input_schema.clone(),
            output: self.output.clone(),
            funcs: self.funcs,
            live: None,
            costs: self.costs.clone(),
        }
    }

    /// The plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// A fresh instance, initialised and told its input schema; returns the schema it declared.
    fn start(&self) -> Result<(Live, SchemaRef), PluginError> {
        let plugin = &self.plugin;
        let fail = |f| call_error(plugin, f);
        let mut live = plugin
            .instantiate(&self.limits, &self.pipeline)
            .map_err(fail)?;
        self.costs.instances.inc();
        let (init,): (Result<(), String>,) = live
            .call(&self.funcs.init, (self.config.as_str(),))
            .map_err(fail)?;
        init.map_err(|message| PluginError::Rejected {
            plugin: plugin.name.clone(),
            what: "its config".into(),
            message,
        })?;
        let (declared,): (Result<Vec<u8>, String>,) = live
            .call(&self.funcs.output_schema, (self.input_schema.as_slice(),))
            .map_err(fail)?;
        let declared = declared.map_err(|message| PluginError::Rejected {
            plugin: plugin.name.clone(),
            what: "its input schema".into(),
            message,
        })?;
        let output = wire::schema_from_bytes(&declared).map_err(|err| {
            fail(CallFailure::BadOutput(format!(
                "its output schema is not readable: {err}"
            )))
        })?;
        Ok((live, output))
    }

    fn fresh(&mut self) -> Result<&mut Live, PluginError> {
        if self.live.is_none() {
            let (live, output) = self.start()?;
            if wire::plain(&output) != wire::plain(&self.output) {
                return Err(call_error(
                    &self.plugin,
                    CallFailure::BadOutput(format!(
                        "a fresh instance declared {output:?} where the first declared {:?}",
                        self.output
                    )),
                ));
            }
            self.live = Some(live);
        }
        match self.live.as_mut() {
            Some(live) => Ok(live),
            None => Err(PluginError::Misuse {
                plugin: self.plugin.name.clone(),
                message: "instance vanished".into(),
            }),
        }
    }

    /// Runs one batch through the plugin.
    pub fn call(&mut self, batch: &RecordBatch) -> Result<RecordBatch, PluginError> {
        let rows = u32::try_from(batch.num_rows()).map_err(|_| PluginError::Misuse {
            plugin: self.plugin.name.clone(),
            message: "a batch of more than 2^32 rows".into(),
        })?;
        let data = wire::batch_data(batch);
        let schema = batch.schema();
        let names = wire::names(&schema);
        let headers = wire::encode_headers(&data, &names).map_err(|err| PluginError::Misuse {
            plugin: self.plugin.name.clone(),
            message: err.to_string(),
        })?;
        let slices = wire::slices(&data, &headers);
        let process = self.funcs.process;
        let costs = self.costs.clone();
        let output = self.output.clone();
        let live = self.fresh()?;
        let result = live.measured(&costs, |live| {
            let (result,): (Result<(u32, Buffers), String>,) =
                live.call(&process, (rows, slices.as_slice()))?;
            let (rows, buffers) = result.map_err(CallFailure::Plugin)?;
            wire::decode_batch_reusing(&output, rows as usize, buffers, batch.columns())
                .map_err(|err| CallFailure::BadOutput(err.to_string()))
        });
        if live.outgrown() {
            self.live = None;
        }
        costs.rows_in.inc_by(u64::from(rows));
        let out = result.map_err(|failure| call_error(&self.plugin, failure))?;
        costs.rows_out.inc_by(out.num_rows() as u64);
        Ok(out)
    }
}

impl Operator for WasmTransform {
    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn stage_id(&self) -> Option<String> {
        Some(transform_stage_id(self.index))
    }

    fn process(
        &mut self,
        chunk: RecordBatch,
        _ctx: &BatchContext,
    ) -> Result<Vec<RecordBatch>, OperatorError> {
        match self.call(&chunk) {
            Ok(out) => Ok(vec![out]),
            Err(err) => {
                // A failed instance may be in any state: the retry gets a new one.
                self.live = None;
                Err(OperatorError {
                    stage: self.stage.clone(),
                    class: err.class(),
                    retryable: err.retryable(),
                    message: err.to_string(),
                })
            }
        }
    }

    fn abort_batch(&mut self) {
        self.live = None;
    }

    fn replica(&self) -> Option<Box<dyn Operator>> {
        // A transform keeps nothing between calls (the SDKs' contract; instances are already
        // replaced at will), so copies are interchangeable.
        Some(Box::new(WasmTransform::replica(self)))
    }

    fn plugin_costs(&self) -> Vec<Arc<PluginCosts>> {
        vec![self.costs.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::PluginHost;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    /// `memory_hog` holding `mib` MiB per call under a 128 MiB limit, called four times: how
    /// many instances it took.
    fn instances_for_four_calls(mib: u64) -> Result<u64, Box<dyn std::error::Error>> {
        let host = PluginHost::new(super::super::testing::plugins_dir().join("fixtures"), None)?;
        let plugin = host.load("memory_hog")?;
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1]))])?;
        let limits = Limits {
            memory_bytes: 128 << 20,
            ..Limits::default()
        };
        let mut stage = WasmTransform::new(
            plugin,
            "test",
            1,
            &serde_json::json!({ "mib": mib }),
            &schema,
            limits,
        )?;
        for _ in 0..4 {
            assert_eq!(stage.call(&batch)?.num_rows(), 1);
        }
        Ok(stage.costs.instances.get())
    }

    #[test]
    fn an_instance_that_used_more_than_half_its_room_is_replaced_after_the_call_and_a_small_one_is_kept()
    -> Result<(), Box<dyn std::error::Error>> {
        // 80 MiB of 128: every call's instance has outgrown its room; each call gets a fresh one
        // (the one `new` checked the schema with, then three more), and none fails.
        assert_eq!(instances_for_four_calls(80)?, 4);
        // 8 MiB: the instance that checked the schema serves every call.
        assert_eq!(instances_for_four_calls(8)?, 1);
        Ok(())
    }
}
