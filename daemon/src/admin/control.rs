//! The control socket: a Unix socket whose file permissions (0660: the daemon's user and
//! group) decide who may act. Each connection sends JSON requests, one per line, and gets one
//! JSON response per line ([`super::protocol`]).

use super::protocol::{Request, Response};
use crate::topology::registry::Registry;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Longest request line: requests are tiny; anything longer is refused.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// A request for the daemon's loop, with where to send the answer.
pub type Envelope = (Request, oneshot::Sender<Response>);

/// Serves requests: status from the registry, the rest through the daemon's loop.
#[derive(Clone)]
pub struct Handlers {
    registry: Arc<Registry>,
    daemon: mpsc::Sender<Envelope>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers").finish_non_exhaustive()
    }
}

impl Handlers {
    /// Handlers reading `registry` and passing other verbs to `daemon`.
    pub fn new(registry: Arc<Registry>, daemon: mpsc::Sender<Envelope>) -> Handlers {
        Handlers { registry, daemon }
    }

    /// The registry status is read from.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Status { pipeline: None } => Response::ok(self.registry.report()),
            Request::Status {
                pipeline: Some(name),
            } => self.status_of(&name),
            other => {
                let (reply, answer) = oneshot::channel();
                if self.daemon.send((other, reply)).await.is_err() {
                    return Response::error("the daemon is shutting down");
                }
                answer
                    .await
                    .unwrap_or_else(|_| Response::error("the daemon is shutting down"))
            }
        }
    }

    /// One pipeline's status, with its recent batches.
    pub fn status_of(&self, name: &str) -> Response {
        if let Some(entry) = self.registry.get(name) {
            return Response::ok(entry.report(true));
        }
        match self
            .registry
            .rejected()
            .into_iter()
            .find(|r| r.name.as_deref() == Some(name))
        {
            Some(rejected) => Response::error(format!(
                "pipeline `{name}` does not run: its file {} was not applied ({}):\n{}",
                rejected.file.display(),
                rejected.pending.kind.replace('_', " "),
                rejected.pending.message.trim_end()
            )),
            None => Response::error(format!("no pipeline named `{name}` is known to the daemon")),
        }
    }
}

/// Why the control socket cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlSocketError {
    /// Another daemon answers on it.
    #[error(
        "another weir daemon is listening on the control socket {0} (stop it, or give this one another --control-socket)"
    )]
    InUse(PathBuf),
    /// The file system refused.
    #[error("cannot listen on the control socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds the control socket at `path` (replacing a stale socket file left by a daemon that
/// died), readable and writable by the daemon's user and group only.
pub async fn bind(path: &Path) -> Result<UnixListener, ControlSocketError> {
    let io = |source| ControlSocketError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlSocketError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    Ok(listener)
}

/// Serves connections until the listener's task is aborted.
pub async fn serve(listener: UnixListener, handlers: Handlers) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let handlers = handlers.clone();
                tokio::spawn(async move {
                    if let Err(err) = connection(stream, handlers).await {
                        tracing::debug!("control connection ended: {err}");
                    }
                });
            }
            Err(err) => {
                tracing::warn!("control socket: accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, handlers: Handlers) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_REQUEST_BYTES + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let too_long = line.len() as u64 > MAX_REQUEST_BYTES;
        let response = if too_long {
            Response::error(format!(
                "request longer than {MAX_REQUEST_BYTES} bytes refused"
            ))
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(request) => handlers.handle(request).await,
                Err(err) => Response::error(format!("not a valid request: {err}")),
            }
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_default();
        out.push(b'\n');
        write.write_all(&out).await?;
        if too_long {
            return Ok(());
        }
    }
}
