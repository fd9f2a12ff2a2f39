//! What the control socket speaks: one JSON request per line, one JSON response per line.
//!
//! ```text
//! → {"verb":"status","pipeline":"iot-avg"}
//! ← {"ok":true,"result":{...}}
//! ```

use serde::{Deserialize, Serialize};

/// A request. Verbs that change something (`reload`, `stop`, `start`, `state_reset`) are
/// served only on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Every pipeline, or one (with its recent batches and errors).
    Status {
        /// One pipeline's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipeline: Option<String>,
    },
    /// What a reload would do now; changes nothing.
    Diff,
    /// Reload now (as SIGHUP or a file change would).
    Reload,
    /// Stop a pipeline at a batch boundary; it stays stopped until `start`.
    Stop {
        /// Its name.
        pipeline: String,
    },
    /// Start a stopped or failed pipeline.
    Start {
        /// Its name.
        pipeline: String,
    },
    /// The pipelines with state in the store, running or orphaned.
    StateList,
    /// Stop these pipelines (if running) and delete their checkpoints and state; a following
    /// reload starts their files afresh.
    StateReset {
        /// Their names.
        pipelines: Vec<String>,
        /// Also delete a shared aggregation's internal topics and its groups' offsets.
        #[serde(default)]
        topics: bool,
    },
}

impl Request {
    /// Whether serving it changes anything.
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Request::Reload
                | Request::Stop { .. }
                | Request::Start { .. }
                | Request::StateReset { .. }
        )
    }
}

/// A response: a result, or an error in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// What it produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success carrying `result`.
    pub fn ok(result: impl Serialize) -> Response {
        match serde_json::to_value(result) {
            Ok(value) => Response {
                ok: true,
                result: Some(value),
                error: None,
            },
            Err(err) => Response::error(format!("internal error (a bug in weir): {err}")),
        }
    }

    /// A failure.
    pub fn error(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }
}

/// One line of `weir diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    /// The pipeline, when known.
    pub pipeline: Option<String>,
    /// The file.
    pub file: String,
    /// `unchanged`, `start`, `stop`, `hot change`, `needs state reset`, `rejected`.
    pub kind: String,
    /// The one-line summary.
    pub summary: String,
    /// The whole message of a rejection or a needed reset (every error, with snippets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// One line of `weir state list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateLine {
    /// Pipeline name.
    pub pipeline: String,
    /// The last committed batch.
    pub last_committed: Option<u64>,
    /// No pipeline file declares it any more: its state waits for `weir state reset`.
    pub orphaned: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_one_json_object_with_a_verb() -> Result<(), serde_json::Error> {
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"verb":"status"}"#)?,
            Request::Status { pipeline: None }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"verb":"stop","pipeline":"p"}"#)?,
            Request::Stop {
                pipeline: "p".into()
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"verb":"rm -rf"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"verb":"status","extra":1}"#).is_err());
        Ok(())
    }
}
