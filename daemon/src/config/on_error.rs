//! `on_error`: what a source does with a record it cannot parse. One setting, one meaning, for
//! every source that parses its input (socket, file and Kafka).

use serde::Deserialize;

/// What happens to a malformed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Stop the pipeline with the record's location and the reason (the default: nothing is
    /// lost without someone deciding so).
    #[default]
    Fail,
    /// Drop the record and count it in the batch progress.
    Skip,
    /// Write the raw record, where it came from and why it failed as a JSON line under the
    /// state directory, count it, and go on.
    DeadLetter,
}

impl OnError {
    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            OnError::Fail => "fail",
            OnError::Skip => "skip",
            OnError::DeadLetter => "dead_letter",
        }
    }
}
