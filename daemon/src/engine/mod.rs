//! The micro-batch engine: operators, triggers, progress, and the loop that runs one pipeline.
//!
//! A batch flows one way: source → operators → sinks, then one atomic commit. Between batches the
//! loop listens for control messages (stop at the boundary, swap a stage), which is all the
//! daemon's hot reload needs.

mod blocking;
mod clock;
mod dictionaries;
mod episodes;
mod error;
mod lanes;
mod metrics;
mod operator;
mod pipeline;
mod progress;
mod trigger;

pub use blocking::blocking;
pub use clock::{Clock, SystemClock, TokioClock};
pub use dictionaries::{DecodeDictionaries, decode_array, decoded_schema};
pub use error::{BatchError, ErrorClass};
pub use lanes::Lanes;
pub use metrics::{
    FAILURE_KINDS, LastBatch, PHASES, PipelineMetrics, PluginCostReport, PluginCosts, TaskFigures,
};
pub use operator::{BatchContext, Operator, OperatorError, PrepareChunk, PreparedChunk};
pub use pipeline::{
    Control, Pipeline, PipelineExit, PipelineHandle, RetryPolicy, StopOutcome, SwapError,
    panic_message,
};
pub use progress::{
    BatchProgress, Durations, PipelineMonitor, PipelineStatus, QueryIdentity, RECENT_BATCHES,
    StateOperatorProgress,
};
pub use trigger::next_processing_time_tick;

#[cfg(test)]
mod tests;
