//! Turns a validated plan into a runnable [`Pipeline`]: builds the source, the stages and the
//! sinks, checking on the way that each stage accepts the schema the previous one produces.

use crate::config::{Diagnostic, Diagnostics, PipelinePlan, SinkSpec, TransformSpec};
use crate::engine::{DecodeDictionaries, Operator, Pipeline, decoded_schema};
use crate::sinks::{self, SinkError};
use crate::sources::{self, SourceContext, SourceError};
use crate::state::{Checkpoint, SharedStore};
use crate::wasm::{Limits, PluginAggregates, PluginError, PluginHost, WasmTransform};
use crate::window::{self, AggregateOperator, OpenError, UserAggregates};
use arrow::datatypes::SchemaRef;
use std::path::PathBuf;
use std::sync::Arc;

/// What assembling a pipeline needs from the process around it.
#[derive(Clone)]
pub struct Environment {
    /// The shared state store.
    pub store: SharedStore,
    /// The state directory (the store lives in it).
    pub state_dir: PathBuf,
    /// Name the pipeline in console banners (several pipelines share the terminal).
    pub label_console: bool,
    /// Loads the plugins that `[[transform]]` stages name.
    pub plugins: PluginHost,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("state_dir", &self.state_dir)
            .field("plugins", &self.plugins)
            .finish()
    }
}

/// A pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// The source could not be opened.
    #[error("source: {0}")]
    Source(#[from] SourceError),
    /// A sink could not be opened.
    #[error("sink: {0}")]
    Sink(#[from] SinkError),
    /// The stages do not fit the data (unknown column, wrong type).
    #[error("{0}")]
    Check(Diagnostics),
    /// The aggregation's state cannot be used.
    #[error(transparent)]
    State(#[from] OpenError),
    /// The checkpoint cannot be read or written.
    #[error("checkpoint: {0}")]
    Checkpoint(crate::state::CheckpointError),
    /// A transform plugin could not be loaded, or rejected its config or input schema.
    #[error("{file}:{line}:{column}: transform #{index}: {source}")]
    Transform {
        /// The pipeline file.
        file: String,
        /// Where the stage names its plugin.
        line: usize,
        /// Column of that.
        column: usize,
        /// Position in the `[[transform]]` list, from 1.
        index: usize,
        /// What went wrong (names the plugin).
        source: Box<PluginError>,
    },
}

/// Loads each `[[transform]]` plugin and type-checks the chain: every stage gets the schema
/// the one before produces (the first, the source's) and declares its own output.
pub fn build_transforms(
    plan: &PipelinePlan,
    plugins: &PluginHost,
    source_schema: SchemaRef,
) -> Result<Vec<WasmTransform>, AssembleError> {
    // Plugins see plain types: dictionary columns are decoded before the first transform.
    let mut schema: SchemaRef = decoded_schema(&source_schema).unwrap_or(source_schema);
    let mut stages = Vec::with_capacity(plan.transforms.len());
    for (i, spec) in plan.transforms.iter().enumerate() {
        let stage = build_transform(plan, plugins, i + 1, spec, &schema).map_err(|source| {
            AssembleError::Transform {
                file: plan.file.display().to_string(),
                line: spec.plugin_location.line,
                column: spec.plugin_location.column,
                index: i + 1,
                source: Box::new(source),
            }
        })?;
        schema = Operator::output_schema(&stage);
        stages.push(stage);
    }
    Ok(stages)
}

fn build_transform(
    plan: &PipelinePlan,
    plugins: &PluginHost,
    index: usize,
    spec: &TransformSpec,
    input: &SchemaRef,
) -> Result<WasmTransform, PluginError> {
    let defaults = Limits::default();
    let limits = Limits {
        memory_bytes: spec.memory_limit.unwrap_or(defaults.memory_bytes),
        call_timeout: spec.timeout.unwrap_or(defaults.call_timeout),
    };
    let plugin = plugins.load(&spec.plugin)?;
    WasmTransform::new(plugin, &plan.name, index, &spec.config, input, limits)
}

/// Checks that every stage accepts what the one before produces, without opening anything;
/// returns the schema that reaches the sinks. `weir check` and `weir run` call it first.
///
/// Transforms are type-checked by loading their plugins from `plugins`; without a plugins
/// folder the stages after a transform cannot be checked, and the source's schema is returned.
pub fn check_schemas(
    plan: &PipelinePlan,
    plugins: Option<&PluginHost>,
    store: Option<&SharedStore>,
) -> Result<SchemaRef, Diagnostics> {
    let mut schema = sources::schema_of(&plan.source, store.map(|s| (s, plan.name.as_str())));
    match plugins {
        Some(plugins) => {
            if !plan.transforms.is_empty()
                && let Some(decoded) = decoded_schema(&schema)
            {
                schema = decoded;
            }
            for (i, spec) in plan.transforms.iter().enumerate() {
                let stage =
                    build_transform(plan, plugins, i + 1, spec, &schema).map_err(|err| {
                        Diagnostics::from(Diagnostic::located(
                            &plan.file,
                            spec.plugin_location.clone(),
                            format!("pipeline `{}`, transform #{}: {err}", plan.name, i + 1),
                        ))
                    })?;
                schema = Operator::output_schema(&stage);
            }
        }
        None if !plan.transforms.is_empty() => return Ok(schema),
        None => {}
    }
    match &plan.aggregate {
        // As with transforms: plugin aggregates cannot be checked without the plugins folder.
        Some(spec)
            if plugins.is_none()
                && spec
                    .functions
                    .iter()
                    .any(|f| matches!(f.kind, crate::config::FunctionKind::Plugin { .. })) =>
        {
            Ok(schema)
        }
        Some(spec) => {
            let aggregates = plugins.map(|host| plugin_aggregates(plan, host));
            let aggregates = aggregates.as_ref().map(|a| a as &dyn UserAggregates);
            let resolved =
                window::resolve(spec, plan.output_mode, &schema, &plan.file, aggregates)?;
            Ok(resolved.output_schema)
        }
        None => Ok(schema),
    }
}

/// The aggregate plugins a pipeline's `[aggregate]` may name.
fn plugin_aggregates(plan: &PipelinePlan, host: &PluginHost) -> PluginAggregates {
    PluginAggregates::new(host.clone(), &plan.name, Limits::default())
}

fn sink_kind(spec: &SinkSpec) -> &'static str {
    match spec {
        SinkSpec::Console { .. } => "console",
        SinkSpec::File(_) => "file",
        SinkSpec::Null => "null",
    }
}

/// Builds a runnable pipeline from its plan.
pub fn assemble(plan: &PipelinePlan, env: &Environment) -> Result<Pipeline, AssembleError> {
    let checkpoint = Checkpoint::new(env.store.clone(), &plan.name);
    let checkpoint_id = checkpoint.id().map_err(AssembleError::Checkpoint)?;
    let ctx = SourceContext {
        pipeline: plan.name.clone(),
        checkpoint_id: checkpoint_id.clone(),
        store: env.store.clone(),
        state_dir: env.state_dir.clone(),
    };
    let source = sources::build(&plan.source, &ctx)?;
    let source_schema = source.schema();
    let mut schema = source_schema.clone();
    let mut operators: Vec<Box<dyn Operator>> = Vec::new();
    if !plan.transforms.is_empty()
        && let Some(decode) = DecodeDictionaries::for_schema(&schema)
    {
        schema = decode.output_schema();
        operators.push(Box::new(decode));
    }
    for stage in build_transforms(plan, &env.plugins, source_schema)? {
        schema = Operator::output_schema(&stage);
        operators.push(Box::new(stage));
    }
    if let Some(spec) = &plan.aggregate {
        let aggregates = Arc::new(plugin_aggregates(plan, &env.plugins));
        let resolved = window::resolve(
            spec,
            plan.output_mode,
            &schema,
            &plan.file,
            Some(aggregates.as_ref() as &dyn UserAggregates),
        )
        .map_err(AssembleError::Check)?;
        let op =
            AggregateOperator::open(&plan.name, resolved, env.store.clone(), Some(aggregates))?;
        operators.push(Box::new(op));
    }
    let label = env.label_console.then_some(plan.name.as_str());
    let mut sinks = Vec::with_capacity(plan.sinks.len());
    for spec in &plan.sinks {
        sinks.push((sink_kind(spec), sinks::build(spec, label, &checkpoint_id)?));
    }
    Ok(Pipeline::new(
        &plan.name,
        plan.trigger,
        source,
        operators,
        sinks,
        checkpoint,
    ))
}
