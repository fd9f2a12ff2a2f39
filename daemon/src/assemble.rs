//! Turns a validated plan into a runnable [`Pipeline`]: builds the source, the stages and the
//! sinks, checking on the way that each stage accepts the schema the previous one produces.

use crate::config::{Diagnostics, PipelinePlan, SinkSpec};
use crate::engine::{Operator, Pipeline};
use crate::window::{self, AggregateOperator, OpenError, UserAggregates};
use arrow::datatypes::SchemaRef;
use std::sync::Arc;
use crate::sinks::{self, SinkError};
use crate::sources::{self, SourceContext, SourceError};
use crate::state::{Checkpoint, SharedStore};
use std::path::PathBuf;

/// What assembling a pipeline needs from the process around it.
#[derive(Clone)]
pub struct Environment {
    /// The shared state store.
    pub store: SharedStore,
    /// The state directory (the store lives in it).
    pub state_dir: PathBuf,
    /// Name the pipeline in console banners (several pipelines share the terminal).
    pub label_console: bool,
    /// Where user aggregate functions come from (the wasm plugin host), if anywhere.
    pub aggregates: Option<Arc<dyn UserAggregates + Send + Sync>>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("state_dir", &self.state_dir)
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
}

/// Checks that every stage accepts what the one before produces, without opening anything;
/// returns the schema that reaches the sinks. `weir check` and `weir run` call it first.
pub fn check_schemas(
    plan: &PipelinePlan,
    aggregates: Option<&dyn UserAggregates>,
) -> Result<SchemaRef, Diagnostics> {
    let schema = sources::schema_of(&plan.source);
    match &plan.aggregate {
        Some(spec) => {
            let resolved = window::resolve(spec, plan.output_mode, &schema, &plan.file, aggregates)?;
            Ok(resolved.output_schema)
        }
        None => Ok(schema),
    }
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
    let ctx = SourceContext {
        pipeline: plan.name.clone(),
        store: env.store.clone(),
        state_dir: env.state_dir.clone(),
    };
    let source = sources::build(&plan.source, &ctx)?;
    let schema = source.schema();
    let mut operators: Vec<Box<dyn Operator>> = Vec::new();
    if let Some(spec) = &plan.aggregate {
        let aggregates = env.aggregates.as_deref().map(|a| a as &dyn UserAggregates);
        let resolved = window::resolve(spec, plan.output_mode, &schema, &plan.file, aggregates)
            .map_err(AssembleError::Check)?;
        let op = AggregateOperator::open(&plan.name, resolved, env.store.clone(), env.aggregates.clone())?;
        operators.push(Box::new(op));
    }
    let label = env.label_console.then_some(plan.name.as_str());
    let mut sinks = Vec::with_capacity(plan.sinks.len());
    for spec in &plan.sinks {
        sinks.push((sink_kind(spec), sinks::build(spec, label)?));
    }
    Ok(Pipeline::new(
        &plan.name,
        plan.trigger,
        source,
        operators,
        sinks,
        Checkpoint::new(env.store.clone(), &plan.name),
    ))
}
