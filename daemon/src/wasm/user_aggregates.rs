//! Aggregate plugins as the window operator's user aggregates: the bridge between
//! [`AggregatePlugin`] and [`crate::window::UserAggregates`], so that `[aggregate]` functions
//! written `{ plugin = "name", ... }` run in the sandbox with one call per chunk.

use super::aggregate::{AggregateInstance, AggregatePlugin};
use super::catalog::PluginCatalog;
use super::error::PluginError;
use super::host::Limits;
use crate::window::{AggregateError, UserAggregateFn, UserAggregates};
use arrow::array::ArrayRef;
use arrow::datatypes::DataType;

/// The aggregate plugins of one pipeline, resolved through its plugin catalog.
#[derive(Debug, Clone)]
pub struct PluginAggregates {
    catalog: PluginCatalog,
    pipeline: String,
    limits: Limits,
}

impl PluginAggregates {
    /// Aggregates of `pipeline` (which tags their log lines), with `limits` per instance.
    pub fn new(catalog: PluginCatalog, pipeline: &str, limits: Limits) -> PluginAggregates {
        PluginAggregates {
            catalog,
            pipeline: pipeline.to_string(),
            limits,
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
            instance: plugin.instance(),
        }))
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
