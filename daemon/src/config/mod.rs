//! Pipeline files: raw TOML structs, validation into a typed plan, and diagnostics that name
//! file, line and column.
//!
//! This module knows nothing about tokio, RocksDB or wasm: it turns text into a [`PipelinePlan`]
//! or a list of [`Diagnostic`]s, and that is all.

mod aggregate;
mod byte_size;
mod checker;
mod compare;
mod daemon;
mod datagen;
mod diagnostic;
mod duration;
mod file_source;
mod kafka;
pub mod limits;
#[cfg(test)]
mod mangled_input_tests;
mod on_error;
mod plan;
mod raw;
pub mod repartition;
mod sink;
mod socket;
mod source;
mod tagged;
mod transform;

pub use aggregate::{
    AggregateSpec, BuiltinFunction, ColumnRef, FunctionKind, FunctionSpec, WindowKind, WindowSpec,
};
pub use byte_size::{ByteSize, parse_byte_size};
pub use compare::plan_changes;
pub use daemon::{
    DaemonFile, HttpListen, LogFormat, RestartPolicy, load_daemon_file, parse_daemon_file,
};
pub use datagen::{ColumnSpec, ColumnType, DatagenSpec, Generator, Scalar, TemplatePart};
pub use diagnostic::{Diagnostic, Diagnostics, Location};
pub use duration::HumanDuration;
pub use file_source::{
    CleanSource, Compression, FileColumn, FileSourceSpec, InputFormat, glob_base,
};
pub use kafka::{
    KafkaDestination, KafkaFormat, KafkaSinkSpec, KafkaSourceSpec, KafkaTopics, KafkaValue,
    StartingOffsets,
};
pub use on_error::OnError;
pub use plan::{MAX_TASKS_PER_DAEMON, OutputMode, Parallelism, PipelinePlan, Trigger};
pub use repartition::Repartition;
pub use sink::{FileFormat, FileSinkSpec, SinkSpec};
pub use socket::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_LOG_BYTES,
    DEFAULT_MAX_PENDING_BYTES, SocketMode, SocketSpec,
};
pub use source::{RateMicroBatchSpec, RateSpec, SourceSpec};
pub use transform::TransformSpec;

use std::path::Path;

/// Reads and validates one pipeline file.
pub fn load_pipeline_file(path: &Path) -> Result<PipelinePlan, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        Diagnostics::from(Diagnostic::whole_file(
            path,
            format!("cannot read pipeline file: {err}"),
        ))
    })?;
    parse_pipeline(path, &text)
}

/// Validates pipeline text; `path` is used for messages and to resolve relative paths.
pub fn parse_pipeline(path: &Path, text: &str) -> Result<PipelinePlan, Diagnostics> {
    plan::parse(path, text)
}

/// Loads several files and checks what only shows across files (unique names).
pub fn load_pipeline_files(paths: &[impl AsRef<Path>]) -> Result<Vec<PipelinePlan>, Diagnostics> {
    let mut plans = Vec::new();
    let mut errors = Diagnostics::default();
    for path in paths {
        match load_pipeline_file(path.as_ref()) {
            Ok(plan) => plans.push(plan),
            Err(diags) => errors.extend(diags),
        }
    }
    // Two files claiming one name are both wrong: each error names the other file.
    for plan in &plans {
        let others: Vec<String> = plans
            .iter()
            .filter(|other| other.name == plan.name && other.file != plan.file)
            .map(|other| other.file.display().to_string())
            .collect();
        if !others.is_empty() {
            errors.push(
                Diagnostic::located(
                    &plan.file,
                    plan.name_location.clone(),
                    format!(
                        "pipeline name `{}` is also claimed by {}",
                        plan.name,
                        others.join(", ")
                    ),
                )
                .with_hint(
                    "the name identifies the pipeline's checkpoint and state, so it must be unique",
                ),
            );
        }
    }
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(errors)
    }
}
