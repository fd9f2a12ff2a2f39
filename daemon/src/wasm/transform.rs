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
    /// `reads`, which a plugin built for contract 1.2 or later has.
    reads: Option<ComponentExportIndex>,
}

/// What a fresh instance declared: its output schema, and the input columns it reads (`None`:
/// all of them).
struct Declared {
    output: SchemaRef,
    reads: Option<Vec<usize>>,
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
    input_columns: usize,
    output: SchemaRef,
    /// The input columns the plugin reads, as indices in increasing order (`None`: all); only
    /// these are sent to it.
    reads: Option<Vec<usize>>,
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
            reads: plugin.func("reads").ok(),
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
            input_columns: input.fields().len(),
            output: input.clone(),
            reads: None,
            funcs,
            live: None,
            costs: Arc::new(PluginCosts::new(&plugin.name, limits.memory_bytes)),
            plugin,
        };
        let (live, declared) = stage.start()?;
        stage.output = declared.output;
        stage.reads = declared.reads;
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
            input_columns: self.input_columns,
            output: self.output.clone(),
            reads: self.reads.clone(),
            funcs: self.funcs,
            live: None,
            costs: self.costs.clone(),
        }
    }

    /// The plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// A fresh instance, initialised and told its input schema; returns what it declared.
    fn start(&self) -> Result<(Live, Declared), PluginError> {
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
        let reads = match &self.funcs.reads {
            Some(reads) => {
                let (reads,): (Option<Vec<u32>>,) = live.call(reads, ()).map_err(fail)?;
                reads
                    .map(|reads| checked_reads(&reads, self.input_columns))
                    .transpose()
                    .map_err(|message| fail(CallFailure::BadOutput(message)))?
            }
            None => None,
        };
        Ok((live, Declared { output, reads }))
    }

    fn fresh(&mut self) -> Result<&mut Live, PluginError> {
        if self.live.is_none() {
            let (live, declared) = self.start()?;
            if wire::plain(&declared.output) != wire::plain(&self.output) {
                return Err(call_error(
                    &self.plugin,
                    CallFailure::BadOutput(format!(
                        "a fresh instance declared {:?} where the first declared {:?}",
                        declared.output, self.output
                    )),
                ));
            }
            if declared.reads != self.reads {
                return Err(call_error(
                    &self.plugin,
                    CallFailure::BadOutput(format!(
                        "a fresh instance reads columns {:?} where the first read {:?}",
                        declared.reads, self.reads
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
        // Only the columns the plugin reads cross; its output refers to the others by index.
        let (data, names) = match &self.reads {
            Some(reads) => {
                let schema = batch.schema();
                reads
                    .iter()
                    .map(|&i| {
                        let column = batch.columns().get(i)?;
                        Some((column.to_data(), schema.fields().get(i)?.name().clone()))
                    })
                    .collect::<Option<(Vec<_>, Vec<_>)>>()
                    .ok_or_else(|| PluginError::Misuse {
                        plugin: self.plugin.name.clone(),
                        message: format!(
                            "a batch of {} columns where the plugin reads {reads:?}",
                            batch.num_columns()
                        ),
                    })?
            }
            None => (
                wire::batch_data(batch),
                wire::names(&batch.schema())
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            ),
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
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

/// The columns a plugin said it reads, checked: indices of the input's `columns`, in
/// increasing order.
fn checked_reads(reads: &[u32], columns: usize) -> Result<Vec<usize>, String> {
    let reads: Vec<usize> = reads.iter().map(|&i| i as usize).collect();
    if reads.windows(2).any(|w| w[0] >= w[1]) || reads.last().is_some_and(|&i| i >= columns) {
        return Err(format!(
            "it reads input columns {reads:?}, not increasing indices of the input's {columns}"
        ));
    }
    Ok(reads)
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

    /// Rows with a text column no example plugin reads, then `value` and `weight`.
    fn three_columns() -> Result<RecordBatch, arrow::error::ArrowError> {
        use arrow::array::{Float64Array, StringArray};
        let rows = 1000;
        RecordBatch::try_from_iter([
            (
                "note",
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("row {i}")),
                )) as arrow::array::ArrayRef,
            ),
            (
                "value",
                Arc::new(Float64Array::from_iter(
                    (0..rows).map(|i| (i % 7 != 0).then_some((i % 200) as f64)),
                )),
            ),
            (
                "weight",
                Arc::new(Float64Array::from_iter_values(
                    (0..rows).map(|i| (i % 10) as f64),
                )),
            ),
        ])
    }

    fn stage(
        dir: std::path::PathBuf,
        plugin: &str,
        config: serde_json::Value,
        input: &SchemaRef,
    ) -> Result<WasmTransform, Box<dyn std::error::Error>> {
        let host = PluginHost::new(dir, None)?;
        Ok(WasmTransform::new(
            host.load(plugin)?,
            "test",
            1,
            &config,
            input,
            Limits::default(),
        )?)
    }

    #[test]
    fn a_map_is_sent_only_the_columns_it_reads_and_its_output_keeps_the_others_as_they_were()
    -> Result<(), Box<dyn std::error::Error>> {
        let input = three_columns()?;
        let config =
            serde_json::json!({ "output": "vw", "left": "value", "op": "*", "right": "weight" });
        let mut stage = stage(
            super::super::testing::plugins_dir(),
            "compute",
            config,
            &input.schema(),
        )?;
        assert_eq!(stage.reads, Some(vec![1, 2]), "value and weight, not note");
        let out = stage.call(&input)?;
        let schema = out.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["note", "value", "weight", "vw"]);
        for i in 0..3 {
            assert!(
                out.column(i).to_data().ptr_eq(&input.column(i).to_data()),
                "column {i} is the input's own"
            );
        }
        let expected = arrow::compute::kernels::numeric::mul(input.column(1), input.column(2))?;
        assert_eq!(out.column(3).as_ref(), expected.as_ref());
        Ok(())
    }

    #[test]
    fn a_filter_returns_a_selection_and_the_host_keeps_those_rows_of_every_column()
    -> Result<(), Box<dyn std::error::Error>> {
        let input = three_columns()?;
        let config = serde_json::json!({ "column": "value", "op": ">=", "value": 100 });
        let mut stage = stage(
            super::super::testing::plugins_dir(),
            "filter",
            config,
            &input.schema(),
        )?;
        assert_eq!(stage.reads, Some(vec![1]));
        let out = stage.call(&input)?;
        let keep = arrow::compute::kernels::cmp::gt_eq(
            input.column(1),
            &arrow::array::Float64Array::new_scalar(100.0),
        )?;
        let expected = arrow::compute::filter_record_batch(&input, &keep)?;
        assert_eq!(out, expected);
        assert!(
            out.num_rows() > 300 && out.num_rows() < 500,
            "{}",
            out.num_rows()
        );
        Ok(())
    }

    #[test]
    fn a_flat_map_returns_each_output_rows_input_row_and_the_host_repeats_the_unread_columns()
    -> Result<(), Box<dyn std::error::Error>> {
        use arrow::array::{AsArray, StringArray};
        let input = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(vec![7, 8, 9])) as arrow::array::ArrayRef,
            ),
            (
                "line",
                Arc::new(StringArray::from(vec![Some("a b"), None, Some("c")])),
            ),
        ])?;
        let config = serde_json::json!({ "column": "line", "output": "word" });
        let mut stage = stage(
            super::super::testing::plugins_dir(),
            "word_split",
            config,
            &input.schema(),
        )?;
        assert_eq!(stage.reads, Some(vec![1]), "the line alone");
        let out = stage.call(&input)?;
        let ids: Vec<i64> = out
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        let words: Vec<&str> = out.column(1).as_string::<i32>().iter().flatten().collect();
        assert_eq!((ids, words), (vec![7, 7, 9], vec!["a", "b", "c"]));
        Ok(())
    }

    #[test]
    fn a_plugin_built_for_contract_1_1_is_sent_every_column_and_runs()
    -> Result<(), Box<dyn std::error::Error>> {
        let input = three_columns()?;
        let mut stage = stage(
            super::super::testing::plugins_dir().join("fixtures"),
            "contract_1_1",
            serde_json::json!({}),
            &input.schema(),
        )?;
        assert_eq!(stage.plugin().contract, "1.1.0");
        assert_eq!(stage.reads, None);
        // It echoes what it was sent: the whole batch.
        assert_eq!(stage.call(&input)?, input);
        Ok(())
    }
}
