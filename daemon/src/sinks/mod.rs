//! Sinks: where each batch's result goes. A sink receives the batch id with the rows so that it
//! can be idempotent: writing batch N again after a crash must not duplicate anything.

mod cells;
mod console;
mod file;
mod kafka;
mod null;
mod table;

pub use cells::CellFormatter;
pub use console::ConsoleSink;
pub use file::FileSink;
pub use kafka::KafkaSink;
pub use null::NullSink;
pub use table::render_table;

use crate::config::{Location, SinkSpec};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::path::PathBuf;

/// A sink failed to write a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The file system refused (permissions, a full disk, a missing mount).
    #[error("cannot write {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Encoding the rows failed.
    #[error("cannot encode batch as {format}: {reason}")]
    Encode {
        /// Format.
        format: &'static str,
        /// Why.
        reason: String,
    },
    /// A service the sink writes to cannot be reached or refused the batch (a Kafka broker):
    /// the batch is tried again with backoff.
    #[error("{0}")]
    Unavailable(String),
    /// The sink's settings do not fit the rows (a column that is not there).
    #[error("{0}")]
    Config(String),
}

/// A destination for batches.
pub trait Sink: Send {
    /// Writes the rows of batch `batch_id` (all chunks share `schema`). Must be idempotent per
    /// batch id: a batch replayed after a crash is written at most once in effect.
    fn write_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), SinkError>;
}

/// What a sink may need from its surroundings when it is built.
#[derive(Debug, Clone, Copy)]
pub struct SinkContext<'a> {
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// The sink's place in the pipeline's `[[sink]]` list, from 1.
    pub index: usize,
    /// Names the pipeline in console banners (when several pipelines share a terminal).
    pub console_label: Option<&'a str>,
    /// The checkpoint's id: it goes into the names of what a sink writes, so a state reset
    /// starts afresh.
    pub checkpoint_id: &'a str,
    /// The source's consumer group offsets, when it shares Kafka partitions: an exactly-once
    /// Kafka sink commits them in its transactions.
    pub group_link: Option<&'a std::sync::Arc<crate::kafka::GroupLink>>,
}

/// Why rows of `schema` cannot go to a sink of `spec`, each with where in the pipeline file
/// the column it is about is named. Checked by `prepare`, before any row is read.
pub fn column_problems(spec: &SinkSpec, schema: &Schema) -> Vec<(Location, String)> {
    match spec {
        SinkSpec::Kafka(spec) => kafka::column_problems(spec, schema)
            .into_iter()
            .filter_map(|(role, problem)| Some((spec.column_locations.get(role)?.clone(), problem)))
            .collect(),
        SinkSpec::Console { .. } | SinkSpec::File(_) | SinkSpec::Null => Vec::new(),
    }
}

/// Builds the runtime sink for a validated spec.
pub fn build(spec: &SinkSpec, ctx: SinkContext<'_>) -> Result<Box<dyn Sink>, SinkError> {
    let checkpoint_id = ctx.checkpoint_id;
    Ok(match spec {
        SinkSpec::Console { num_rows, truncate } => {
            let sink = ConsoleSink::new(*num_rows, *truncate);
            Box::new(match ctx.console_label {
                Some(label) => sink.with_label(label),
                None => sink,
            })
        }
        SinkSpec::File(spec) => Box::new(FileSink::open(spec.clone(), checkpoint_id)?),
        SinkSpec::Null => Box::new(NullSink),
        SinkSpec::Kafka(spec) => Box::new(KafkaSink::new(
            (**spec).clone(),
            ctx.pipeline,
            ctx.index,
            checkpoint_id,
            ctx.group_link.cloned(),
        )),
    })
}
