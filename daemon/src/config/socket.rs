//! `type = "socket"`: Spark's text socket source (one `value` row per line), as a client of a
//! peer or listening for any number of producers, and its validation.

use super::byte_size::ByteSize;
use super::checker::Checker;
use super::on_error::OnError;
use super::source::{SourceSpec, check_max_rows};
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// The `socket` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// Connect to a peer, or listen for producers.
    pub mode: SocketMode,
    /// Add a `timestamp` column: when weir received the line.
    pub include_timestamp: bool,
    /// Longest line accepted; a longer one closes its connection with an error.
    pub max_line_bytes: usize,
    /// Upper bound on rows per batch.
    pub max_rows_per_batch: Option<u64>,
    /// What to do with a line that is not UTF-8.
    pub on_error: OnError,
    /// Listen mode: most producers connected at once; one more is told so and closed.
    pub max_connections: usize,
    /// Most bytes of not yet complete lines held across all connections together; past it
    /// reading pauses (TCP pushes back on the producers).
    pub max_pending_bytes: u64,
    /// Most bytes of received lines kept in the durable log before their batches commit; past
    /// it reading pauses (TCP pushes back) instead of filling the disk.
    pub max_log_bytes: u64,
}

/// How the socket source reaches its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketMode {
    /// Connect to `host:port` (Spark's behaviour), reconnecting with backoff.
    Connect {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Listen on `bind` (`address:port`); producers connect to weir.
    Listen {
        /// Address and port to listen on.
        bind: String,
    },
}

/// The default longest line: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// The default most producers connected at once (listen mode).
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;
/// The default most bytes of partial lines across all connections: 64 MiB.
pub const DEFAULT_MAX_PENDING_BYTES: u64 = 64 << 20;
/// The default most bytes in the line log before batches commit them: 1 GiB.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawSocketMode {
    Connect,
    Listen,
}

/// `type = "socket"`: lines of text from TCP, one row each.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSocket {
    /// `"connect"` (default): weir connects to `host:port`; `"listen"`: producers connect to
    /// weir at `bind`.
    #[serde(default)]
    pub mode: Option<Spanned<RawSocketMode>>,
    /// Connect mode: the peer's host name or address.
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    /// Connect mode: the peer's port.
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    /// Listen mode: `address:port` to listen on, e.g. `"127.0.0.1:9999"`.
    #[serde(default)]
    pub bind: Option<Spanned<String>>,
    /// Add a `timestamp` column with each line's arrival time (default false).
    #[serde(default)]
    pub include_timestamp: bool,
    /// Longest line accepted (default 1 MiB); a longer line closes that connection.
    #[serde(default)]
    pub max_line_bytes: Option<Spanned<ByteSize>>,
    /// Upper bound on rows per micro-batch.
    #[serde(default)]
    pub max_rows_per_batch: Option<Spanned<u64>>,
    /// `fail` (default), `skip` or `dead_letter`: what to do with a line that is not UTF-8.
    #[serde(default)]
    pub on_error: Option<OnError>,
    /// Listen mode: most producers connected at once (default 100).
    #[serde(default)]
    pub max_connections: Option<Spanned<u64>>,
    /// Most bytes of incomplete lines held across all connections (default 64 MiB).
    #[serde(default)]
    pub max_pending_bytes: Option<Spanned<ByteSize>>,
    /// Most bytes of lines logged but not yet committed (default 1 GiB).
    #[serde(default)]
    pub max_log_bytes: Option<Spanned<ByteSize>>,
}

pub(super) fn check_socket(
    c: &mut Checker<'_>,
    raw: RawSocket,
    span: Range<usize>,
) -> Option<SourceSpec> {
    let errors_before = c.diagnostics.len();
    let listen = raw
        .mode
        .as_ref()
        .is_some_and(|m| *m.get_ref() == RawSocketMode::Listen);
    let mode = if listen {
        for (key, given) in [
            ("host", raw.host.as_ref().map(|h| h.span())),
            ("port", raw.port.as_ref().map(|p| p.span())),
        ] {
            if let Some(key_span) = given {
                c.error_hint(
                    key_span,
                    format!("`{key}` applies to mode = \"connect\""),
                    "in listen mode, say where to listen with bind = \"address:port\"",
                );
            }
        }
        match &raw.bind {
            None => {
                c.error_hint(
                    span,
                    "mode = \"listen\" needs `bind`",
                    "e.g. bind = \"127.0.0.1:9999\" (port 0 picks a free port, logged at start)",
                );
                None
            }
            Some(bind) => {
                let text = bind.get_ref();
                let valid = text
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if valid {
                    Some(SocketMode::Listen { bind: text.clone() })
                } else {
                    c.error_hint(
                        bind.span(),
                        format!("invalid bind address \"{text}\""),
                        "write address:port, e.g. \"127.0.0.1:9999\", \"0.0.0.0:9999\" or \"[::1]:9999\"",
                    );
                    None
                }
            }
        }
    } else {
        if let Some(bind) = &raw.bind {
            c.error_hint(
                bind.span(),
                "`bind` applies to mode = \"listen\"",
                "to accept connections from producers, add mode = \"listen\"",
            );
        }
        let host = match &raw.host {
            Some(h) if h.get_ref().trim().is_empty() => {
                c.error(h.span(), "host must not be empty");
                None
            }
            Some(h) => Some(h.get_ref().clone()),
            None => {
                c.error_hint(
                    span.clone(),
                    "a socket source needs `host` and `port`",
                    "e.g. host = \"localhost\", port = 9999 (or mode = \"listen\" with bind = \"127.0.0.1:9999\")",
                );
                None
            }
        };
        let port = match &raw.port {
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    c.error(p.span(), format!("port {} is not in 1..65535", p.get_ref()));
                    None
                }
            },
            None => {
                if raw.host.is_some() {
                    c.error(span.clone(), "a socket source needs `port`");
                }
                None
            }
        };
        match (host, port) {
            (Some(host), Some(port)) => Some(SocketMode::Connect { host, port }),
            _ => None,
        }
    };
    let max_line_bytes = match &raw.max_line_bytes {
        Some(m) if m.get_ref().0 == 0 => {
            c.error(m.span(), "max_line_bytes must be at least 1");
            None
        }
        Some(m) => match usize::try_from(m.get_ref().0) {
            Ok(n) if n <= 1 << 30 => Some(n),
            _ => {
                c.error(m.span(), "max_line_bytes must be at most 1 GiB");
                None
            }
        },
        None => Some(DEFAULT_MAX_LINE_BYTES),
    };
    let max_rows_per_batch = check_max_rows(c, raw.max_rows_per_batch);
    let max_connections = match &raw.max_connections {
        Some(n) if !listen => {
            c.error(n.span(), "`max_connections` applies to mode = \"listen\"");
            None
        }
        Some(n) if !(1..=100_000).contains(n.get_ref()) => {
            c.error(n.span(), "max_connections must be between 1 and 100000");
            None
        }
        Some(n) => Some(*n.get_ref() as usize),
        None => Some(DEFAULT_MAX_CONNECTIONS),
    };
    let max_pending_bytes = match &raw.max_pending_bytes {
        Some(m) => {
            let n = m.get_ref().0;
            let line = max_line_bytes.unwrap_or(DEFAULT_MAX_LINE_BYTES) as u64;
            if n <= line {
                c.error_hint(
                    m.span(),
                    format!("max_pending_bytes ({n}) must be more than max_line_bytes ({line})"),
                    "the longest line must fit in the pending budget, or it could never be completed",
                );
                None
            } else {
                Some(n)
            }
        }
        None => Some(DEFAULT_MAX_PENDING_BYTES.max(max_line_bytes.unwrap_or(0) as u64 * 2)),
    };
    let max_log_bytes = match &raw.max_log_bytes {
        Some(m) if m.get_ref().0 < 1 << 20 => {
            c.error(m.span(), "max_log_bytes must be at least 1 MiB");
            None
        }
        Some(m) => Some(m.get_ref().0),
        None => Some(DEFAULT_MAX_LOG_BYTES),
    };
    if c.diagnostics.len() != errors_before {
        return None;
    }
    Some(SourceSpec::Socket(SocketSpec {
        mode: mode?,
        include_timestamp: raw.include_timestamp,
        max_line_bytes: max_line_bytes?,
        max_rows_per_batch: max_rows_per_batch?,
        on_error: raw.on_error.unwrap_or_default(),
        max_connections: max_connections?,
        max_pending_bytes: max_pending_bytes?,
        max_log_bytes: max_log_bytes?,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::{SocketMode, SourceSpec, parse_pipeline};
    use std::path::Path;

    fn source(body: &str) -> Result<SourceSpec, String> {
        let text = format!(
            "name = \"p\"\n[source]\ntype = \"socket\"\n{body}\n[[sink]]\ntype = \"null\"\n"
        );
        parse_pipeline(Path::new("/x/p.toml"), &text)
            .map(|p| p.source)
            .map_err(|d| d.to_string())
    }

    #[test]
    fn socket_modes_parse_with_their_defaults_and_missing_or_misplaced_keys_are_errors() {
        match source("host = \"localhost\"\nport = 9999") {
            Ok(SourceSpec::Socket(s)) => {
                assert_eq!(
                    s.mode,
                    SocketMode::Connect {
                        host: "localhost".into(),
                        port: 9999
                    }
                );
                assert_eq!(s.max_line_bytes, 1 << 20);
            }
            other => panic!("{other:?}"),
        }
        match source("mode = \"listen\"\nbind = \"127.0.0.1:0\"\nmax_line_bytes = \"4KiB\"") {
            Ok(SourceSpec::Socket(s)) => assert_eq!(s.max_line_bytes, 4096),
            other => panic!("{other:?}"),
        }
        for (body, message) in [
            (
                "port = 9999",
                "/x/p.toml:2:1: error: a socket source needs `host` and `port`",
            ),
            (
                "host = \"h\"\nport = 70000",
                "/x/p.toml:5:8: error: port 70000 is not in 1..65535",
            ),
            ("mode = \"listen\"", "mode = \"listen\" needs `bind`"),
            (
                "mode = \"listen\"\nbind = \"9999\"",
                "invalid bind address \"9999\"",
            ),
            (
                "mode = \"listen\"\nbind = \"h:1\"\nhost = \"h\"",
                "`host` applies to mode = \"connect\"",
            ),
            (
                "host = \"h\"\nport = 1\nbind = \"h:1\"",
                "`bind` applies to mode = \"listen\"",
            ),
            (
                "host = \"h\"\nport = 1\non_error = \"ignore\"",
                "unknown variant `ignore`",
            ),
            (
                "host = \"h\"\nport = 1\nmax_line_bytes = \"1 parsec\"",
                "unknown size unit",
            ),
        ] {
            let err = source(body).err().unwrap_or_default();
            assert!(err.contains(message), "{body:?}: {err}");
        }
    }
}
