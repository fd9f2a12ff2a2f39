//! Why a batch failed, whose fault it is, and whether trying again can help.

use crate::sinks::SinkError;
use crate::sources::SourceError;
use crate::state::CheckpointError;

use super::operator::OperatorError;

/// Whose fault an error is: decides the message's wording and whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The pipeline's configuration or data (fix the pipeline).
    User,
    /// The outside world: disk, network, a peer (may pass).
    External,
    /// A bug in weir.
    Internal,
}

/// A batch failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Reading the source failed.
    #[error("source: {0}")]
    Source(#[from] SourceError),
    /// An operator (transform, aggregation) failed.
    #[error("{0}")]
    Operator(#[from] OperatorError),
    /// A sink failed.
    #[error("sink #{index} ({kind}): {source}")]
    Sink {
        /// Position in the pipeline's `[[sink]]` list, from 1.
        index: usize,
        /// Its type.
        kind: &'static str,
        /// What went wrong.
        source: SinkError,
    },
    /// Recording the plan or the commit failed.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
}

impl BatchError {
    /// Whose fault it is.
    pub fn class(&self) -> ErrorClass {
        match self {
            BatchError::Source(SourceError::BadOffset { .. }) => ErrorClass::User,
            BatchError::Source(SourceError::Arrow(_) | SourceError::Internal(_)) => {
                ErrorClass::Internal
            }
            BatchError::Source(SourceError::Store(_)) => ErrorClass::External,
            BatchError::Source(SourceError::Malformed { .. } | SourceError::Config(_)) => {
                ErrorClass::User
            }
            BatchError::Source(SourceError::Io { .. } | SourceError::Unavailable(_)) => {
                ErrorClass::External
            }
            BatchError::Source(SourceError::DataLoss(_)) => ErrorClass::User,
            BatchError::Operator(err) => err.class,
            BatchError::Sink {
                source: SinkError::Io { .. },
                ..
            } => ErrorClass::External,
            BatchError::Sink {
                source: SinkError::Encode { .. },
                ..
            } => ErrorClass::Internal,
            BatchError::Sink {
                source: SinkError::Unavailable(_),
                ..
            } => ErrorClass::External,
            BatchError::Sink {
                source: SinkError::Config(_),
                ..
            } => ErrorClass::User,
            BatchError::Checkpoint(CheckpointError::Store(_)) => ErrorClass::External,
            BatchError::Checkpoint(CheckpointError::Corrupt { .. }) => ErrorClass::User,
            BatchError::Checkpoint(CheckpointError::Fenced) => ErrorClass::External,
        }
    }

    /// Whether running the same batch again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            BatchError::Operator(err) => err.retryable,
            // Fenced is final: a newer run owns the checkpoint.
            BatchError::Checkpoint(CheckpointError::Fenced) => false,
            other => other.class() == ErrorClass::External,
        }
    }
}
