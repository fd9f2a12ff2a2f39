//! The CLI's side of the control socket: one request, one response, over a blocking Unix
//! stream (the CLI has no runtime to speak of).

use super::protocol::{Request, Response};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there.
    #[error(
        "no weir daemon is listening on {path} ({source}); is it running? (`--control-socket` or $WEIR_CONTROL_SOCKET name another socket)"
    )]
    NotRunning {
        /// The socket.
        path: PathBuf,
        /// Why the connection failed.
        source: std::io::Error,
    },
    /// The socket's permissions keep this user out.
    #[error(
        "permission denied on {0}: the control socket is for the daemon's user and group (add yourself to its group, or use sudo)"
    )]
    Denied(PathBuf),
    /// The exchange failed halfway.
    #[error("talking to the daemon on {path} failed: {reason}")]
    Exchange {
        /// The socket.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl ClientError {
    /// True when no daemon listens (as opposed to one refusing or failing).
    pub fn is_not_running(&self) -> bool {
        matches!(self, ClientError::NotRunning { .. })
    }
}

/// Sends `request` to the daemon listening on `socket` and returns its response. `timeout`
/// bounds the wait for the answer (a reload may legitimately take a while).
pub fn ask(socket: &Path, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            ClientError::Denied(socket.to_path_buf())
        } else {
            ClientError::NotRunning {
                path: socket.to_path_buf(),
                source,
            }
        }
    })?;
    let fail = |reason: String| ClientError::Exchange {
        path: socket.to_path_buf(),
        reason,
    };
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| fail(e.to_string()))?;
    let mut line = serde_json::to_vec(request).map_err(|e| fail(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|e| fail(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| fail(format!("no answer: {e}")))?;
    if answer.is_empty() {
        return Err(fail("the daemon closed the connection".into()));
    }
    serde_json::from_str(&answer).map_err(|e| fail(format!("an unreadable answer: {e}")))
}
