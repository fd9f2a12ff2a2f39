//! Aggregate plugins, for the window operator: a loaded aggregate declares its input and output
//! Arrow types, and an [`AggregateInstance`] makes exactly one plugin call per batch for each of
//! `update`, `merge` and `finish`. States are opaque bytes owned by the caller (an empty state
//! is a fresh group); the plugin keeps nothing between calls, so an instance can be replaced at
//! any time, and is, transparently, after any failure.

use super::error::{CallFailure, PluginError};
use super::host::Limits;
use super::instance::Live;
use super::plugin::{Plugin, PluginKind};
use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use std::sync::Arc;
use wasmtime::component::{ComponentExportIndex, Val};
use weir_plugin_sdk::wire;

type States = Vec<Vec<u8>>;

#[derive(Clone, Copy)]
struct Funcs {
    init: ComponentExportIndex,
    update: ComponentExportIndex,
    merge: ComponentExportIndex,
    finish: ComponentExportIndex,
}

/// An aggregate plugin with its config, its declared types known.
pub struct AggregatePlugin {
    plugin: Arc<Plugin>,
    pipeline: String,
    config: String,
    limits: Limits,
    inputs: Vec<DataType>,
    output: DataType,
    funcs: Funcs,
    state_version: u32,
}

impl std::fmt::Debug for AggregatePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatePlugin")
            .field("plugin", &self.plugin.name)
            .field("inputs", &self.inputs)
            .field("output", &self.output)
            .finish()
    }
}

fn call_error(plugin: &Plugin, failure: CallFailure) -> PluginError {
    PluginError::Call {
        plugin: plugin.name.clone(),
        failure,
    }
}

fn schema_types(bytes: &[u8]) -> Result<Vec<DataType>, String> {
    let schema = wire::schema_from_bytes(bytes).map_err(|e| e.to_string())?;
    Ok(schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect())
}

/// Instantiates and initialises; returns the live instance and the declared types.
fn start(
    plugin: &Plugin,
    funcs: &Funcs,
    config: &str,
    limits: &Limits,
    pipeline: &str,
) -> Result<(Live, Vec<DataType>, DataType), PluginError> {
    let fail = |f| call_error(plugin, f);
    let mut live = plugin.instantiate(limits, pipeline).map_err(fail)?;
    let mut results = [Val::Bool(false)];
    live.call_dynamic(
        &funcs.init,
        &[Val::String(config.to_string())],
        &mut results,
    )
    .map_err(fail)?;
    let bad = |what: &str| fail(CallFailure::BadOutput(format!("init returned {what}")));
    let signature = match &results[0] {
        Val::Result(Ok(Some(signature))) => signature.as_ref().clone(),
        Val::Result(Err(Some(message))) => {
            let message = match message.as_ref() {
                Val::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            return Err(PluginError::Rejected {
                plugin: plugin.name.clone(),
                what: "its config".into(),
                message,
            });
        }
        _ => return Err(bad("no signature")),
    };
    let Val::Record(fields) = signature else {
        return Err(bad("a signature that is not a record"));
    };
    let bytes_of = |name: &str| -> Option<Vec<u8>> {
        fields.iter().find_map(|(n, v)| match v {
            Val::List(items) if n == name => items
                .iter()
                .map(|b| match b {
                    Val::U8(b) => Some(*b),
                    _ => None,
                })
                .collect(),
            _ => None,
        })
    };
    let (Some(inputs), Some(output)) = (bytes_of("inputs"), bytes_of("output")) else {
        return Err(bad("a signature without inputs or output"));
    };
    let inputs = schema_types(&inputs).map_err(|e| bad(&format!("unreadable input types: {e}")))?;
    let output =
        schema_types(&output).map_err(|e| bad(&format!("an unreadable output type: {e}")))?;
    let [output] = <[DataType; 1]>::try_from(output)
        .map_err(|o| bad(&format!("{} output types instead of one", o.len())))?;
    Ok((live, inputs, output))
}

impl AggregatePlugin {
    /// Checks that `plugin` is an aggregate, gives it `config` and reads its declared types.
    /// `pipeline` tags its log lines and messages.
    pub fn new(
        plugin: Arc<Plugin>,
        pipeline: &str,
        config: &serde_json::Value,
        limits: Limits,
    ) -> Result<AggregatePlugin, PluginError> {
        plugin.expect_kind(PluginKind::Aggregate)?;
        let func = |name: &str| plugin.func(name).map_err(|f| call_error(&plugin, f));
        let funcs = Funcs {
            init: func("init")?,
            update: func("update")?,
            merge: func("merge")?,
            finish: func("finish")?,
        };
        let config = config.to_string();
        let (mut live, inputs, output) = start(&plugin, &funcs, &config, &limits, pipeline)?;
        // Contract 1.1 added `state-version`; a 1.0 plugin has none, taken as 0.
        let state_version = match plugin.func("state-version") {
            Ok(index) => {
                let (version,): (u32,) =
                    live.call(&index, ()).map_err(|f| call_error(&plugin, f))?;
                version
            }
            Err(_) => 0,
        };
        Ok(AggregatePlugin {
            state_version,
            plugin,
            pipeline: pipeline.to_string(),
            config,
            limits,
            inputs,
            output,
            funcs,
        })
    }

    /// The plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The version of the state format the plugin declares (0 when it declares none): states
    /// are kept across a plugin upgrade only while it stays the same.
    pub fn state_version(&self) -> u32 {
        self.state_version
    }

    /// The argument types, in order: `update` takes one array of each.
    pub fn input_types(&self) -> &[DataType] {
        &self.inputs
    }

    /// The type of the values `finish` returns.
    pub fn output_type(&self) -> &DataType {
        &self.output
    }

    /// An instance to call (instantiated lazily, on the first call), counting what its calls
    /// cost into `costs`.
    pub fn instance(&self, costs: Arc<crate::engine::PluginCosts>) -> AggregateInstance {
        AggregateInstance {
            costs,
            plugin: self.plugin.clone(),
            pipeline: self.pipeline.clone(),
            config: self.config.clone(),
            limits: self.limits,
            inputs: self.inputs.clone(),
            output: self.output.clone(),
            funcs: self.funcs,
            live: None,
        }
    }
}

/// A sandboxed instance of an aggregate plugin. Each method is one call into the plugin.
/// After a failed call the instance is discarded and the next call starts a fresh one, so the
/// caller may simply retry.
pub struct AggregateInstance {
    costs: Arc<crate::engine::PluginCosts>,
    plugin: Arc<Plugin>,
    pipeline: String,
    config: String,
    limits: Limits,
    inputs: Vec<DataType>,
    output: DataType,
    funcs: Funcs,
    live: Option<Live>,
}

impl std::fmt::Debug for AggregateInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateInstance")
            .field("plugin", &self.plugin.name)
            .finish()
    }
}

impl AggregateInstance {
    fn misuse(&self, message: String) -> PluginError {
        PluginError::Misuse {
            plugin: self.plugin.name.clone(),
            message,
        }
    }

    /// Runs `f` on a live instance; drops the instance if anything fails.
    fn with_live<R>(
        &mut self,
        f: impl FnOnce(&mut Live, &Funcs) -> Result<R, CallFailure>,
    ) -> Result<R, PluginError> {
        if self.live.is_none() {
            let (live, inputs, output) = start(
                &self.plugin,
                &self.funcs,
                &self.config,
                &self.limits,
                &self.pipeline,
            )?;
            if inputs != self.inputs || output != self.output {
                return Err(call_error(
                    &self.plugin,
                    CallFailure::BadOutput("a fresh instance declared different types".into()),
                ));
            }
            self.live = Some(live);
            self.costs.instances.inc();
        }
        let Some(live) = self.live.as_mut() else {
            return Err(self.misuse("instance vanished".into()));
        };
        let funcs = &self.funcs;
        let result = live.measured(&self.costs, |live| f(live, funcs));
        if result.is_err() || live.outgrown() {
            self.live = None;
        }
        result.map_err(|f| call_error(&self.plugin, f))
    }

    /// Folds one batch into the groups' states: `states[g]` is group g's state (empty: a fresh
    /// group), `input` has one array per declared input type, and `group_of_row[i]` is row i's
    /// index into `states`. Returns the new states, same length and order.
    pub fn update(
        &mut self,
        states: &[Vec<u8>],
        input: &[ArrayRef],
        group_of_row: &[u32],
    ) -> Result<Vec<Vec<u8>>, PluginError> {
        if input.len() != self.inputs.len() {
            return Err(self.misuse(format!(
                "{} input arrays for {} declared inputs",
                input.len(),
                self.inputs.len()
            )));
        }
        for (i, (array, want)) in input.iter().zip(&self.inputs).enumerate() {
            if array.data_type() != want {
                return Err(self.misuse(format!(
                    "input {i} is {} but the plugin declared {want}",
                    array.data_type()
                )));
            }
            if array.len() != group_of_row.len() {
                return Err(self.misuse(format!(
                    "input {i} has {} rows for {} group indexes",
                    array.len(),
                    group_of_row.len()
                )));
            }
        }
        if let Some(g) = group_of_row.iter().find(|g| **g as usize >= states.len()) {
            return Err(self.misuse(format!("group index {g} with {} states", states.len())));
        }
        let rows = u32::try_from(group_of_row.len())
            .map_err(|_| self.misuse("more than 2^32 rows".into()))?;
        let data = wire::arrays_data(input);
        let names: Vec<String> = (0..input.len()).map(|i| format!("arg{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let headers =
            wire::encode_headers(&data, &names).map_err(|e| self.misuse(e.to_string()))?;
        let slices = wire::slices(&data, &headers);
        let want = states.len();
        let updated = self.with_live(|live, funcs| {
            let (result,): (Result<States, String>,) = live.call(
                &funcs.update,
                (states, rows, slices.as_slice(), group_of_row),
            )?;
            check(result, want)
        });
        if updated.is_ok() {
            self.costs.rows_in.inc_by(u64::from(rows));
        }
        updated
    }

    /// Merges `right[i]` into `left[i]` for every i; returns the merged states.
    pub fn merge(
        &mut self,
        left: &[Vec<u8>],
        right: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, PluginError> {
        if left.len() != right.len() {
            return Err(self.misuse(format!(
                "merge of {} states with {}",
                left.len(),
                right.len()
            )));
        }
        let want = left.len();
        self.with_live(|live, funcs| {
            let (result,): (Result<States, String>,) = live.call(&funcs.merge, (left, right))?;
            check(result, want)
        })
    }

    /// One output value per state, as an array of the declared output type.
    pub fn finish(&mut self, states: &[Vec<u8>]) -> Result<ArrayRef, PluginError> {
        let output = self.output.clone();
        let want = states.len();
        self.with_live(|live, funcs| {
            let (result,): (Result<Vec<Vec<u8>>, String>,) = live.call(&funcs.finish, (states,))?;
            let buffers = result.map_err(CallFailure::Plugin)?;
            let mut arrays = wire::decode_arrays(&[("output", &output)], buffers)
                .map_err(|e| CallFailure::BadOutput(e.to_string()))?;
            let array = arrays
                .pop()
                .ok_or_else(|| CallFailure::BadOutput("no output array".into()))?;
            if array.len() != want {
                return Err(CallFailure::BadOutput(format!(
                    "{} values for {want} states",
                    array.len()
                )));
            }
            Ok(array)
        })
    }
}

fn check(result: Result<States, String>, want: usize) -> Result<States, CallFailure> {
    let states = result.map_err(CallFailure::Plugin)?;
    if states.len() != want {
        return Err(CallFailure::BadOutput(format!(
            "{} states returned for {want}",
            states.len()
        )));
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::{PluginHost, testing::plugins_dir};
    use arrow::array::{Array, AsArray, Float64Array, StringArray};
    use arrow::datatypes::{Field, Float64Type};

    fn load(name: &str, config: serde_json::Value) -> AggregatePlugin {
        let host = PluginHost::new(plugins_dir(), None).unwrap_or_else(|e| panic!("{e}"));
        let plugin = host.load(name).unwrap_or_else(|e| panic!("{e}"));
        AggregatePlugin::new(plugin, "test", &config, Limits::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A deterministic stream of (group, value, weight) rows.
    fn rows(n: usize, seed: u64) -> Vec<(u32, f64, f64)> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let group = ((x >> 33) % 5) as u32;
                let value = ((x >> 20) % 10_000) as f64 / 7.0;
                let weight = ((x >> 45) % 9 + 1) as f64;
                (group, value, weight)
            })
            .collect()
    }

    /// Runs batches through `update` on two "partitions" whose states are merged at the end, as
    /// windows and restarts will; returns the finished array, one value per group 0..5.
    fn run_partitioned(
        agg: &AggregatePlugin,
        batches: &[Vec<(u32, f64, f64)>],
        input: impl Fn(&[(u32, f64, f64)]) -> Vec<ArrayRef>,
    ) -> ArrayRef {
        let mut instance = agg.instance(Arc::new(crate::engine::PluginCosts::new("test", 0)));
        let mut parts = [vec![Vec::new(); 5], vec![Vec::new(); 5]];
        for (i, batch) in batches.iter().enumerate() {
            let groups: Vec<u32> = batch.iter().map(|r| r.0).collect();
            let part = &mut parts[i % 2];
            *part = instance
                .update(part, &input(batch), &groups)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let merged = instance
            .merge(&parts[0], &parts[1])
            .unwrap_or_else(|e| panic!("{e}"));
        instance.finish(&merged).unwrap_or_else(|e| panic!("{e}"))
    }

    fn batches() -> Vec<Vec<(u32, f64, f64)>> {
        (0..6)
            .map(|i| rows(2_000 + i * 317, i as u64 + 1))
            .collect()
    }

    #[test]
    fn weighted_avg_over_batches_and_merges_equals_a_direct_computation() {
        let agg = load("weighted_avg", serde_json::json!({}));
        assert_eq!(agg.input_types(), &[DataType::Float64, DataType::Float64]);
        assert_eq!(agg.output_type(), &DataType::Float64);
        let batches = batches();
        let out = run_partitioned(&agg, &batches, |b| {
            vec![
                Arc::new(Float64Array::from_iter_values(b.iter().map(|r| r.1))),
                Arc::new(Float64Array::from_iter_values(b.iter().map(|r| r.2))),
            ]
        });
        let out = out.as_primitive::<Float64Type>();
        for group in 0..5u32 {
            let (mut wv, mut w) = (0.0, 0.0);
            for r in batches.iter().flatten().filter(|r| r.0 == group) {
                wv += r.1 * r.2;
                w += r.2;
            }
            let want = wv / w;
            let got = out.value(group as usize);
            assert!(
                (got - want).abs() <= want.abs() * 1e-12,
                "group {group}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn percentile_estimates_are_within_one_percent_of_the_exact_rank() {
        let batches = batches();
        for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
            let agg = load("percentile", serde_json::json!({ "percentile": name }));
            let out = run_partitioned(&agg, &batches, |b| {
                vec![Arc::new(Float64Array::from_iter_values(
                    b.iter().map(|r| r.1),
                ))]
            });
            let out = out.as_primitive::<Float64Type>();
            for group in 0..5u32 {
                let mut values: Vec<f64> = batches
                    .iter()
                    .flatten()
                    .filter(|r| r.0 == group)
                    .map(|r| r.1)
                    .collect();
                values.sort_by(f64::total_cmp);
                let got = out.value(group as usize);
                let rank = values.partition_point(|v| *v < got) as f64 / values.len() as f64;
                assert!((rank - q).abs() < 0.01, "{name} group {group}: rank {rank}");
            }
        }
    }

    #[test]
    fn top_k_returns_the_three_most_frequent_words_of_each_group() {
        let agg = load("top_k", serde_json::json!({ "k": 3 }));
        let word = |v: f64| format!("w{}", (v as u64) % 13);
        let batches = batches();
        let out = run_partitioned(&agg, &batches, |b| {
            vec![Arc::new(StringArray::from_iter_values(
                b.iter().map(|r| word(r.1)),
            ))]
        });
        let lists = out.as_list::<i32>();
        for group in 0..5u32 {
            let mut counts = std::collections::HashMap::<String, u64>::new();
            for r in batches.iter().flatten().filter(|r| r.0 == group) {
                *counts.entry(word(r.1)).or_default() += 1;
            }
            let mut want: Vec<(String, u64)> = counts.into_iter().collect();
            want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let want: Vec<String> = want.into_iter().take(3).map(|w| w.0).collect();
            let got = lists.value(group as usize);
            let got: Vec<String> = got
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(String::from)
                .collect();
            assert_eq!(got, want, "group {group}");
        }
        assert_eq!(
            agg.output_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        );
    }

    #[test]
    fn misuse_corrupt_states_and_bad_configs_are_refused_and_empty_groups_finish_as_null() {
        let agg = load("weighted_avg", serde_json::json!({}));
        let mut instance = agg.instance(Arc::new(crate::engine::PluginCosts::new("test", 0)));
        // A group that saw no rows finishes as null.
        let out = instance
            .finish(&[Vec::new()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.is_null(0));
        let v: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        let err = instance.update(&[], &[v.clone(), v.clone()], &[0]);
        assert!(matches!(err, Err(PluginError::Misuse { .. })), "{err:?}");
        let err = instance.update(&[Vec::new()], std::slice::from_ref(&v), &[0]);
        assert!(matches!(err, Err(PluginError::Misuse { .. })), "{err:?}");
        // A corrupt state is the plugin's error, and the next call works on a fresh instance.
        let err = instance.update(&[vec![0xff; 3]], &[v.clone(), v.clone()], &[0]);
        assert!(matches!(err, Err(PluginError::Call { .. })), "{err:?}");
        let ok = instance.update(&[Vec::new()], &[v.clone(), v], &[0]);
        assert_eq!(ok.map(|s| s.len()).ok(), Some(1));
        // Config is checked at load.
        let host = PluginHost::new(plugins_dir(), None).unwrap_or_else(|e| panic!("{e}"));
        let plugin = host.load("percentile").unwrap_or_else(|e| panic!("{e}"));
        let err = AggregatePlugin::new(
            plugin,
            "t",
            &serde_json::json!({"percentile": "p200"}),
            Limits::default(),
        );
        assert!(matches!(err, Err(PluginError::Rejected { .. })), "{err:?}");
    }
}
