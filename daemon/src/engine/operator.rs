//! The operator trait: a stage between source and sinks (a wasm transform, the stateful
//! aggregation). One required method; lifecycle hooks default to nothing.

use super::error::ErrorClass;
use super::progress::StateOperatorProgress;
use crate::state::WriteSet;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::any::Any;
use std::sync::Arc;

/// What an operator knows about the batch it is processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchContext {
    /// Batch id.
    pub batch_id: u64,
    /// Wall-clock time the batch was planned, ms since the epoch (the same on replay).
    pub batch_timestamp_ms: i64,
    /// Watermark in force for this batch.
    pub watermark_ms: Option<i64>,
}

/// An operator failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct OperatorError {
    /// Which stage, e.g. `transform #1 (word_split)`.
    pub stage: String,
    /// What happened, in the user's terms.
    pub message: String,
    /// Whose fault.
    pub class: ErrorClass,
    /// Whether running the batch again (on a fresh instance) may succeed.
    pub retryable: bool,
}

/// What a stage's [`PrepareChunk`] made of a chunk, for that stage alone to read.
pub type PreparedChunk = Box<dyn Any + Send>;

/// A stage's per-chunk work that reads nothing but the chunk: shared by the lanes.
pub trait PrepareChunk: Send + Sync {
    /// Prepares `chunk` for [`Operator::process_prepared`].
    fn prepare(&self, chunk: &RecordBatch) -> Result<PreparedChunk, OperatorError>;

    /// Whether `prepared` holds all the stage will read of its chunk: the lane then lets the
    /// chunk's columns go at once (the stage is given an empty chunk of the same schema), so
    /// the next chunk that lane makes reuses memory still in its core's cache.
    fn holds_all_it_reads(&self, _prepared: &PreparedChunk) -> bool {
        false
    }

    /// The chunk to hand the stage with `prepared`: without its columns (an empty chunk of the
    /// same schema) when the preparation holds all the stage reads.
    fn hand_on(&self, chunk: RecordBatch, prepared: &PreparedChunk) -> RecordBatch {
        if self.holds_all_it_reads(prepared) {
            RecordBatch::new_empty(chunk.schema())
        } else {
            chunk
        }
    }
}

/// A stage of a pipeline.
pub trait Operator: Send {
    /// Schema of what `process` and `finish_batch` return.
    fn output_schema(&self) -> SchemaRef;

    /// The stage's stable id within its pipeline (`transform #2`, `aggregate`): what a swap
    /// names. `None` gets a positional id.
    fn stage_id(&self) -> Option<String> {
        None
    }

    /// Loads the state the checkpoint committed. Called once before the stage's first batch:
    /// when its pipeline starts, and when it replaces another stage at a batch boundary.
    fn restore(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Processes one chunk of the batch; may return any number of chunks.
    fn process(
        &mut self,
        chunk: RecordBatch,
        ctx: &BatchContext,
    ) -> Result<Vec<RecordBatch>, OperatorError>;

    /// Called after the last chunk of a batch: stateful operators emit their results here.
    fn finish_batch(&mut self, _ctx: &BatchContext) -> Result<Vec<RecordBatch>, OperatorError> {
        Ok(Vec::new())
    }

    /// Adds this batch's state changes to the commit.
    fn prepare_commit(&mut self, _changes: &mut WriteSet) -> Result<(), OperatorError> {
        Ok(())
    }

    /// The commit is durable.
    fn committed(&mut self) {}

    /// The batch failed: forget whatever it changed, it will be run again.
    fn abort_batch(&mut self) {}

    /// The watermark (in force for the next batch) after the batch that just finished, if this
    /// operator tracks event time.
    fn next_watermark(&self) -> Option<i64> {
        None
    }

    /// Whether a batch without new rows is worth running (a moved watermark frees windows).
    fn wants_no_data_batch(&self, _watermark_ms: Option<i64>) -> bool {
        false
    }

    /// A stateful operator's figures for the batch that just finished.
    fn state_progress(&self) -> Option<StateOperatorProgress> {
        None
    }

    /// Another copy of this stage, for running chunks of a batch in parallel; `None` (the
    /// default) keeps the stage and every stage after it on one thread.
    ///
    /// Offer one only when the stage keeps nothing between chunks: what it yields for a chunk
    /// depends on that chunk alone, `finish_batch` yields nothing, and it holds no state to
    /// commit. Replicas then are interchangeable, and the output does not depend on which one
    /// ran which chunk or on how many there are. A replica shares its original's plugin
    /// costs.
    fn replica(&self) -> Option<Box<dyn Operator>> {
        None
    }

    /// The work on a chunk that depends on the chunk alone (the aggregation's grouping), which
    /// the lanes may do for several chunks at once before handing each, in chunk order, to
    /// [`Operator::process_prepared`]. `None` (the default): the stage does all its work in
    /// `process`.
    fn chunk_preparer(&self) -> Option<Arc<dyn PrepareChunk>> {
        None
    }

    /// Processes a chunk that this stage's [`PrepareChunk`] has prepared; the result must be
    /// what `process` gives for the chunk alone.
    fn process_prepared(
        &mut self,
        chunk: RecordBatch,
        _prepared: PreparedChunk,
        ctx: &BatchContext,
    ) -> Result<Vec<RecordBatch>, OperatorError> {
        self.process(chunk, ctx)
    }

    /// The pipeline's metrics, for a stage that reports work of its own there (the shared
    /// aggregation's state restores). Called when the pipeline is built and when its metrics
    /// are replaced.
    fn watch_metrics(&mut self, _metrics: &Arc<super::PipelineMetrics>) {}

    /// What the plugins of this stage cost, shown per pipeline, stage and plugin.
    fn plugin_costs(&self) -> Vec<Arc<super::PluginCosts>> {
        Vec::new()
    }
}
