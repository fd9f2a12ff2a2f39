//! Aggregate plugins as the window operator's user aggregates: the bridge between
//! [`AggregatePlugin`] and [`crate::window::UserAggregates`], so that `[aggregate]` functions
//! written `{ plugin = "name", ... }` run in the sandbox with one call per chunk.

use super::aggregate::{AggregateInstance, AggregatePlugin};
use super::catalog::PluginCatalog;
use super::error::PluginError;
use super::host::Limits;
use crate::engine::PluginCosts;
use crate::window::{AggregateError, UserAggregateFn, UserAggregates};
use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use std::sync::{Arc, Mutex};

/// The aggregate plugins of one pipeline, resolved through its plugin catalog.
#[derive(Debug, Clone)]
pub struct PluginAggregates {
    catalog: PluginCatalog,
    pipeline: String,
    limits: Limits,
    /// What each plugin (and config) has cost, shared by all its instances: the operator
    /// makes new instances when it restores its state.
    costs: Arc<Mutex<CostsByKey>>,
}

/// Each plugin's costs, by plugin name and config.
type CostsByKey = Vec<(String, Arc<PluginCosts>)>;

impl PluginAggregates {
    /// Aggregates of `pipeline` (which tags their log lines), with `limits` per instance.
    pub fn new(catalog: PluginCatalog, pipeline: &str, limits: Limits) -> PluginAggregates {
        PluginAggregates {
            catalog,
            pipeline: pipeline.to_string(),
            limits,
            costs: Arc::default(),
        }
    }

    fn load(&self, name: &str, config: &serde_json::Value) -> Result<AggregatePlugin, PluginError> {
        let plugin = self.catalog.get(name)?;
        AggregatePlugin::new(plugin, &self.pipeline, config, self.limits)
    }
}

impl UserAggregates for PluginAggregates {
    fn signature(
        &self,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<(Vec<DataType>, DataType), String> {
        let plugin = self.load(name, config).map_err(|e| e.to_string())?;
        Ok((plugin.input_types().to_vec(), plugin.output_type().clone()))
    }

    fn state_version(&self, name: &str, config: &serde_json::Value) -> Result<u32, String> {
        let plugin = self.load(name, config).map_err(|e| e.to_string())?;
        Ok(plugin.state_version())
    }

    fn instantiate(
        &self,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<Box<dyn UserAggregateFn>, String> {
        let plugin = self.load(name, config).map_err(|e| e.to_string())?;
        Ok(Box::new(PluginAggregateFn {
            output: plugin.output_type().clone(),
            instance: plugin.instance(self.costs_of(name, config)),
        }))
    }

    fn plugin_costs(&self) -> Vec<Arc<PluginCosts>> {
        self.costs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }
}

impl PluginAggregates {
    /// The costs of plugin `name` with `config`, made on first use.
    fn costs_of(&self, name: &str, config: &serde_json::Value) -> Arc<PluginCosts> {
        let key = format!("{name} {config}");
        let mut all = self.costs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = all.iter().find(|(k, _)| *k == key) {
            return c.clone();
        }
        let costs = Arc::new(PluginCosts::new(name, self.limits.memory_bytes));
        all.push((key, costs.clone()));
        costs
    }
}

/// One sandboxed instance behind the window operator's accumulator.
struct PluginAggregateFn {
    output: DataType,
    instance: AggregateInstance,
}

fn to_aggregate_error(err: PluginError) -> AggregateError {
    AggregateError {
        retryable: err.retryable(),
        message: err.to_string(),
    }
}

impl UserAggregateFn for PluginAggregateFn {
    fn output_type(&self) -> DataType {
        self.output.clone()
    }

    fn update(
        &mut self,
        states: &[Vec<u8>],
        input: &[ArrayRef],
        group_of_row: &[u32],
    ) -> Result<Vec<Vec<u8>>, AggregateError> {
        self.instance
            .update(states, input, group_of_row)
            .map_err(to_aggregate_error)
    }

    fn merge(
        &mut self,
        left: &[Vec<u8>],
        right: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, AggregateError> {
        self.instance.merge(left, right).map_err(to_aggregate_error)
    }

    fn finish(&mut self, states: &[Vec<u8>]) -> Result<ArrayRef, AggregateError> {
        self.instance.finish(states).map_err(to_aggregate_error)
    }
}
