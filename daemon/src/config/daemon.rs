//! `weir.toml`: the daemon's own settings (folders, control socket, HTTP address, logging,
//! plugin limits, restart policy, shutdown deadline). Every key is optional; the binary fills
//! in flags and defaults (`daemon::settings`). Errors are `file:line:column` like pipeline
//! files'.
//!
//! ```toml
//! pipelines_dir = "/etc/weir/pipelines"
//! http = "127.0.0.1:7361"
//! [restart]
//! policy = "on-failure"
//! ```

use super::checker::Checker;
use super::diagnostic::{Diagnostic, Diagnostics};
use super::duration::HumanDuration;
use super::tagged::SpanError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Whether a failed pipeline is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Restart after a failure the outside world caused (a disk, a peer), with exponential
    /// backoff; a failure of the pipeline's own making waits for its file or plugins to change.
    OnFailure,
    /// Never restart; the pipeline stays failed until its file or plugins change.
    Never,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line (for journald / log shippers that parse fields).
    Json,
}

/// The HTTP listener's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListen {
    /// No HTTP listener.
    Off,
    /// Listen here.
    At(SocketAddr),
}

impl HttpListen {
    /// Parses `"off"` or `host:port` (an IP address; port 0 picks a free one).
    pub fn parse(text: &str) -> Result<HttpListen, String> {
        if text == "off" {
            return Ok(HttpListen::Off);
        }
        text.parse().map(HttpListen::At).map_err(|_| {
            format!(
                "invalid HTTP address \"{text}\": expected an IP address and port such as \"127.0.0.1:7361\", or \"off\""
            )
        })
    }

    /// Whether the address is reachable only from this machine (or there is none).
    pub fn is_loopback(&self) -> bool {
        match self {
            HttpListen::Off => true,
            HttpListen::At(addr) => addr.ip().is_loopback(),
        }
    }
}

/// What `weir.toml` sets; `None` where it says nothing. Paths are absolute (relative ones are
/// resolved against the file's folder).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonFile {
    /// The file it was read from.
    pub file: Option<PathBuf>,
    /// Pipeline files (`*.toml`), watched.
    pub pipelines_dir: Option<PathBuf>,
    /// Plugins (`*.wasm`), watched.
    pub plugins_dir: Option<PathBuf>,
    /// The RocksDB of checkpoints and state.
    pub state_dir: Option<PathBuf>,
    /// The control socket (every verb of the CLI).
    pub control_socket: Option<PathBuf>,
    /// The read-only HTTP listener.
    pub http: Option<HttpListen>,
    /// Allow a non-loopback HTTP address.
    pub allow_remote: Option<bool>,
    /// How long stopping a pipeline may take before its batch is abandoned.
    pub shutdown_timeout: Option<Duration>,
    /// How often both folders are listed in full, whatever file events said.
    pub rescan_interval: Option<Duration>,
    /// How long folders must be quiet after a file event before a reload.
    pub watch_debounce: Option<Duration>,
    /// Log level or tracing filter.
    pub log_level: Option<String>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// Default memory limit of a plugin instance, bytes.
    pub plugin_memory_bytes: Option<u64>,
    /// Default deadline of one plugin call.
    pub plugin_timeout: Option<Duration>,
    /// Default restart policy of pipelines.
    pub restart_policy: Option<RestartPolicy>,
    /// First wait before restarting a failed pipeline.
    pub restart_first_backoff: Option<Duration>,
    /// Longest wait between restarts.
    pub restart_max_backoff: Option<Duration>,
    /// Batches of progress kept per pipeline for the progress API.
    pub progress_history: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    /// Folder of pipeline files.
    pipelines_dir: Option<PathBuf>,
    /// Folder of plugins.
    plugins_dir: Option<PathBuf>,
    /// State directory.
    state_dir: Option<PathBuf>,
    /// Control socket path.
    control_socket: Option<PathBuf>,
    /// `"127.0.0.1:7361"` or `"off"`.
    http: Option<Spanned<String>>,
    /// Allow a non-loopback HTTP address.
    allow_remote: Option<bool>,
    /// Shutdown deadline.
    shutdown_timeout: Option<Spanned<HumanDuration>>,
    /// Full rescan period.
    rescan_interval: Option<Spanned<HumanDuration>>,
    /// Quiet period after file events.
    watch_debounce: Option<Spanned<HumanDuration>>,
    /// Batches of progress kept per pipeline.
    progress_history: Option<Spanned<u64>>,
    /// `[log]`.
    log: Option<RawLog>,
    /// `[plugin_limits]`.
    plugin_limits: Option<RawPluginLimits>,
    /// `[restart]`.
    restart: Option<RawRestart>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    /// Level or tracing filter.
    level: Option<String>,
    /// `human` or `json`.
    format: Option<LogFormat>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPluginLimits {
    /// Memory limit, MiB.
    max_memory_mb: Option<Spanned<u64>>,
    /// Deadline per call.
    timeout: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    /// `on-failure` or `never`.
    policy: Option<RestartPolicy>,
    /// First backoff.
    first_backoff: Option<Spanned<HumanDuration>>,
    /// Longest backoff.
    max_backoff: Option<Spanned<HumanDuration>>,
}

/// Most batches of progress kept per pipeline (a batch's progress is a few hundred bytes, more
/// with many Kafka partitions).
const MAX_PROGRESS_HISTORY: u64 = 100_000;

/// Largest plugin memory limit: a 32-bit wasm memory cannot grow past 4 GiB.
const MAX_MEMORY_MB: u64 = 4096;

/// Reads and validates `weir.toml`.
pub fn load_daemon_file(path: &Path) -> Result<DaemonFile, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        Diagnostics::from(Diagnostic::whole_file(
            path,
            format!("cannot read the daemon config: {err}"),
        ))
    })?;
    parse_daemon_file(path, &text)
}

fn positive(
    c: &mut Checker<'_>,
    value: Option<Spanned<HumanDuration>>,
    key: &str,
) -> Option<Duration> {
    let value = value?;
    if value.get_ref().0.is_zero() {
        c.error(value.span(), format!("`{key}` must be longer than zero"));
        return None;
    }
    Some(value.into_inner().0)
}

/// Validates the text of `weir.toml`; `path` names it in errors and anchors relative paths.
pub fn parse_daemon_file(path: &Path, text: &str) -> Result<DaemonFile, Diagnostics> {
    let mut c = Checker {
        file: path,
        text,
        diagnostics: Diagnostics::default(),
    };
    let raw: RawDaemon = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            c.span_error(SpanError::from_toml(err, 0..0));
            return Err(c.diagnostics);
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let absolute = |p: Option<PathBuf>| p.map(|p| base.join(p));
    let mut out = DaemonFile {
        file: Some(path.to_path_buf()),
        pipelines_dir: absolute(raw.pipelines_dir),
        plugins_dir: absolute(raw.plugins_dir),
        state_dir: absolute(raw.state_dir),
        control_socket: absolute(raw.control_socket),
        allow_remote: raw.allow_remote,
        ..DaemonFile::default()
    };
    if let Some(http) = raw.http {
        match HttpListen::parse(http.get_ref()) {
            Ok(listen) if !listen.is_loopback() && raw.allow_remote != Some(true) => c.error_hint(
                http.span(),
                format!(
                    "HTTP address \"{}\" is reachable from other machines",
                    http.get_ref()
                ),
                "the HTTP API shows pipelines' files, errors and progress; listen on 127.0.0.1 (or ::1), or set `allow_remote = true` if other machines must reach it",
            ),
            Ok(listen) => out.http = Some(listen),
            Err(message) => c.error(http.span(), message),
        }
    }
    out.shutdown_timeout = positive(&mut c, raw.shutdown_timeout, "shutdown_timeout");
    out.rescan_interval = positive(&mut c, raw.rescan_interval, "rescan_interval");
    out.watch_debounce = raw.watch_debounce.map(|d| d.into_inner().0);
    if let Some(n) = raw.progress_history {
        if (1..=MAX_PROGRESS_HISTORY).contains(n.get_ref()) {
            out.progress_history = Some(n.into_inner() as usize);
        } else {
            c.error(
                n.span(),
                format!("`progress_history` must be between 1 and {MAX_PROGRESS_HISTORY} batches"),
            );
        }
    }
    if let Some(log) = raw.log {
        out.log_level = log.level;
        out.log_format = log.format;
    }
    if let Some(limits) = raw.plugin_limits {
        if let Some(mb) = limits.max_memory_mb {
            if *mb.get_ref() == 0 || *mb.get_ref() > MAX_MEMORY_MB {
                c.error(
                    mb.span(),
                    format!("`max_memory_mb` must be between 1 and {MAX_MEMORY_MB}"),
                );
            } else {
                out.plugin_memory_bytes = Some(mb.into_inner() * 1024 * 1024);
            }
        }
        out.plugin_timeout = positive(&mut c, limits.timeout, "timeout");
    }
    if let Some(restart) = raw.restart {
        out.restart_policy = restart.policy;
        out.restart_first_backoff = positive(&mut c, restart.first_backoff, "first_backoff");
        out.restart_max_backoff = positive(&mut c, restart.max_backoff, "max_backoff");
    }
    if c.diagnostics.is_empty() {
        Ok(out)
    } else {
        Err(c.diagnostics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        match parse_daemon_file(Path::new("/etc/weir/weir.toml"), text) {
            Ok(file) => panic!("expected errors, got {file:?}"),
            Err(diagnostics) => diagnostics.to_string(),
        }
    }

    #[test]
    fn every_key_is_read_and_relative_paths_are_anchored_at_the_file() -> Result<(), Diagnostics> {
        let file = parse_daemon_file(
            Path::new("/etc/weir/weir.toml"),
            r#"
pipelines_dir = "pipelines"
plugins_dir = "/opt/plugins"
state_dir = "/var/lib/weir"
control_socket = "/run/weir/control.sock"
http = "127.0.0.1:0"
shutdown_timeout = "5s"
rescan_interval = "1m"
watch_debounce = "50ms"
progress_history = 500
[log]
level = "debug"
format = "json"
[plugin_limits]
max_memory_mb = 64
timeout = "2s"
[restart]
policy = "never"
first_backoff = "100ms"
max_backoff = "10s"
"#,
        )?;
        assert_eq!(
            file.pipelines_dir,
            Some(PathBuf::from("/etc/weir/pipelines"))
        );
        assert_eq!(file.plugins_dir, Some(PathBuf::from("/opt/plugins")));
        assert_eq!(file.state_dir, Some(PathBuf::from("/var/lib/weir")));
        assert_eq!(
            file.control_socket,
            Some(PathBuf::from("/run/weir/control.sock"))
        );
        assert_eq!(
            file.http,
            Some(HttpListen::parse("127.0.0.1:0").map_err(|_| Diagnostics::default())?)
        );
        assert_eq!(file.shutdown_timeout, Some(Duration::from_secs(5)));
        assert_eq!(file.rescan_interval, Some(Duration::from_secs(60)));
        assert_eq!(file.watch_debounce, Some(Duration::from_millis(50)));
        assert_eq!(file.progress_history, Some(500));
        assert_eq!(file.log_level.as_deref(), Some("debug"));
        assert_eq!(file.log_format, Some(LogFormat::Json));
        assert_eq!(file.plugin_memory_bytes, Some(64 << 20));
        assert_eq!(file.plugin_timeout, Some(Duration::from_secs(2)));
        assert_eq!(file.restart_policy, Some(RestartPolicy::Never));
        assert_eq!(file.restart_first_backoff, Some(Duration::from_millis(100)));
        assert_eq!(file.restart_max_backoff, Some(Duration::from_secs(10)));
        Ok(())
    }

    #[test]
    /// That these values are weir's defaults is checked against the code in `app/settings.rs`.
    fn the_example_weir_toml_sets_every_key_to_the_documented_value() -> Result<(), Diagnostics> {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/weir.toml"));
        let text = include_str!("../../../config/weir.toml");
        let file = parse_daemon_file(path, text)?;
        assert_eq!(
            file.pipelines_dir,
            Some(PathBuf::from("/etc/weir/pipelines"))
        );
        assert_eq!(file.plugins_dir, Some(PathBuf::from("/etc/weir/plugins")));
        assert_eq!(file.state_dir, Some(PathBuf::from("/var/lib/weir")));
        assert_eq!(
            file.control_socket,
            Some(PathBuf::from("/run/weir/control.sock"))
        );
        assert_eq!(file.http.map(|h| h.is_loopback()), Some(true));
        assert_eq!(file.allow_remote, Some(false));
        assert_eq!(file.shutdown_timeout, Some(Duration::from_secs(30)));
        assert_eq!(file.rescan_interval, Some(Duration::from_secs(30)));
        assert_eq!(file.watch_debounce, Some(Duration::from_millis(100)));
        assert_eq!(file.progress_history, Some(crate::engine::RECENT_BATCHES));
        assert_eq!(file.log_level.as_deref(), Some("info"));
        assert_eq!(file.log_format, Some(LogFormat::Human));
        assert_eq!(file.plugin_memory_bytes, Some(128 << 20));
        assert_eq!(file.plugin_timeout, Some(Duration::from_secs(5)));
        assert_eq!(file.restart_policy, Some(RestartPolicy::OnFailure));
        assert_eq!(file.restart_first_backoff, Some(Duration::from_secs(1)));
        assert_eq!(file.restart_max_backoff, Some(Duration::from_secs(300)));
        Ok(())
    }

    #[test]
    fn a_progress_history_of_no_batches_is_refused_at_its_line() {
        let text = errors("progress_history = 0\n");
        assert!(
            text.starts_with("/etc/weir/weir.toml:1:20: error: `progress_history` must be between 1 and 100000 batches"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_key_is_reported_at_its_line_and_column_with_the_valid_keys() {
        let text = errors("pipelines_dir = \"p\"\nrescan_intervall = \"1s\"\n");
        assert!(
            text.starts_with("/etc/weir/weir.toml:2:1: error: unknown field `rescan_intervall`"),
            "{text}"
        );
        assert!(text.contains("`rescan_interval`"), "{text}");
    }

    #[test]
    fn a_non_loopback_http_address_is_refused_unless_allow_remote_is_set() {
        let text = errors("http = \"0.0.0.0:7361\"\n");
        assert!(
            text.starts_with("/etc/weir/weir.toml:1:8: error: HTTP address \"0.0.0.0:7361\" is reachable from other machines"),
            "{text}"
        );
        assert!(text.contains("allow_remote = true"), "{text}");
        let allowed = parse_daemon_file(
            Path::new("w.toml"),
            "http = \"0.0.0.0:7361\"\nallow_remote = true\n",
        );
        assert!(matches!(
            allowed,
            Ok(DaemonFile {
                http: Some(HttpListen::At(_)),
                ..
            })
        ));
    }

    #[test]
    fn bad_values_are_each_reported_where_they_are_written() {
        let text = errors(
            "http = \"localhost\"\nshutdown_timeout = \"0s\"\n[plugin_limits]\nmax_memory_mb = 0\n[log]\nformat = \"xml\"\n",
        );
        assert!(
            text.contains("weir.toml:6:10: error: unknown variant `xml`"),
            "{text}"
        );
        let text = errors(
            "http = \"localhost\"\nshutdown_timeout = \"0s\"\n[plugin_limits]\nmax_memory_mb = 0\n",
        );
        assert!(
            text.contains("weir.toml:1:8: error: invalid HTTP address \"localhost\""),
            "{text}"
        );
        assert!(
            text.contains("weir.toml:2:20: error: `shutdown_timeout` must be longer than zero"),
            "{text}"
        );
        assert!(
            text.contains("weir.toml:4:17: error: `max_memory_mb` must be between 1 and 4096"),
            "{text}"
        );
    }
}
