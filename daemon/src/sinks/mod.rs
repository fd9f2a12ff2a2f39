//! Sinks: where each batch's result goes. A sink receives the batch id with the rows so that it
//! can be idempotent: writing batch N again after a crash must not duplicate anything.

mod cells;
mod console;
mod file;
mod null;
mod table;

pub use cells::CellFormatter;
pub use console::ConsoleSink;
pub use file::FileSink;
pub use null::NullSink;
pub use table::render_table;

use crate::config::SinkSpec;
use arrow::datatypes::SchemaRef;
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

/// Builds the runtime sink for a validated spec; `console_label` names the pipeline in console
/// banners, `checkpoint_id` goes into the names of the files a sink writes.
pub fn build(
    spec: &SinkSpec,
    console_label: Option<&str>,
    checkpoint_id: &str,
) -> Result<Box<dyn Sink>, SinkError> {
    Ok(match spec {
        SinkSpec::Console { num_rows, truncate } => {
            let sink = ConsoleSink::new(*num_rows, *truncate);
            Box::new(match console_label {
                Some(label) => sink.with_label(label),
                None => sink,
            })
        }
        SinkSpec::File(spec) => Box::new(FileSink::open(spec.clone(), checkpoint_id)?),
        SinkSpec::Null => Box::new(NullSink),
    })
}
