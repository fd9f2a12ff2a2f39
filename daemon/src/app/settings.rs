//! The daemon's settings: flags over `weir.toml` over defaults. The defaults follow where
//! the process runs: under systemd, the directories systemd made for the unit
//! (`$STATE_DIRECTORY`, `$CONFIGURATION_DIRECTORY`, `$RUNTIME_DIRECTORY`); otherwise the XDG
//! base directories, as `weir run` does.

use crate::config::{DaemonFile, HttpListen, LogFormat, RestartPolicy};
use crate::topology::runner::RestartSettings;
use crate::wasm::Limits;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The HTTP address when nothing says otherwise (loopback only).
pub const DEFAULT_HTTP: &str = "127.0.0.1:7361";

/// Everything `weir daemon` runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    /// The `weir.toml` it was read from, if any.
    pub config_file: Option<PathBuf>,
    /// Pipeline files.
    pub pipelines_dir: PathBuf,
    /// Plugins.
    pub plugins_dir: PathBuf,
    /// Checkpoints and state.
    pub state_dir: PathBuf,
    /// The control socket.
    pub control_socket: PathBuf,
    /// The read-only HTTP listener.
    pub http: HttpListen,
    /// How long a pipeline may take to stop before its batch in flight is abandoned.
    pub shutdown_timeout: Duration,
    /// Full rescan period.
    pub rescan_interval: Duration,
    /// Quiet period after file events.
    pub watch_debounce: Duration,
    /// Log level or tracing filter.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Default plugin limits.
    pub plugin_limits: Limits,
    /// Restarts of failed pipelines.
    pub restart: RestartSettings,
    /// Batches of progress kept per pipeline.
    pub progress_history: usize,
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> Option<PathBuf> {
    env_dir("HOME")
}

/// `$WEIR_STATE_DIR`, else `$STATE_DIRECTORY` (systemd), else `$XDG_STATE_HOME/weir`, else
/// `~/.local/state/weir`.
pub fn default_state_dir() -> PathBuf {
    env_dir("WEIR_STATE_DIR")
        .or_else(|| env_dir("STATE_DIRECTORY"))
        .or_else(|| env_dir("XDG_STATE_HOME").map(|d| d.join("weir")))
        .or_else(|| home().map(|h| h.join(".local/state/weir")))
        .unwrap_or_else(|| PathBuf::from(".weir-state"))
}

/// `$WEIR_PLUGINS_DIR`, else `$CONFIGURATION_DIRECTORY/plugins` (systemd), else
/// `$XDG_DATA_HOME/weir/plugins`, else `~/.local/share/weir/plugins`.
pub fn default_plugins_dir() -> PathBuf {
    env_dir("WEIR_PLUGINS_DIR")
        .or_else(|| env_dir("CONFIGURATION_DIRECTORY").map(|d| d.join("plugins")))
        .or_else(|| env_dir("XDG_DATA_HOME").map(|d| d.join("weir/plugins")))
        .or_else(|| home().map(|h| h.join(".local/share/weir/plugins")))
        .unwrap_or_else(|| PathBuf::from("plugins"))
}

/// `$WEIR_PIPELINES_DIR`, else `$CONFIGURATION_DIRECTORY/pipelines` (systemd), else
/// `$XDG_CONFIG_HOME/weir/pipelines`, else `~/.config/weir/pipelines`.
pub fn default_pipelines_dir() -> PathBuf {
    env_dir("WEIR_PIPELINES_DIR")
        .or_else(|| env_dir("CONFIGURATION_DIRECTORY").map(|d| d.join("pipelines")))
        .or_else(|| env_dir("XDG_CONFIG_HOME").map(|d| d.join("weir/pipelines")))
        .or_else(|| home().map(|h| h.join(".config/weir/pipelines")))
        .unwrap_or_else(|| PathBuf::from("pipelines"))
}

/// Where a control socket may be, in order: `$WEIR_CONTROL_SOCKET`,
/// `$RUNTIME_DIRECTORY/control.sock` (systemd), `$XDG_RUNTIME_DIR/weir/control.sock`,
/// `/run/weir/control.sock`, and `control.sock` in the default state directory. The daemon
/// listens at the first whose folder exists or can be made; clients use the first that
/// exists.
pub fn control_socket_candidates() -> Vec<PathBuf> {
    [
        env_dir("WEIR_CONTROL_SOCKET"),
        env_dir("RUNTIME_DIRECTORY").map(|d| d.join("control.sock")),
        env_dir("XDG_RUNTIME_DIR").map(|d| d.join("weir/control.sock")),
        Some(PathBuf::from("/run/weir/control.sock")),
        Some(default_state_dir().join("control.sock")),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The control socket a client talks to when not told: the first candidate that exists.
pub fn client_control_socket() -> PathBuf {
    let candidates = control_socket_candidates();
    candidates
        .iter()
        .find(|p| p.exists())
        .or_else(|| candidates.first())
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/run/weir/control.sock"))
}

fn daemon_control_socket(state_dir: &Path) -> PathBuf {
    let mut candidates = control_socket_candidates();
    // The state directory's socket follows the state directory actually used.
    if let Some(last) = candidates.last_mut() {
        *last = state_dir.join("control.sock");
    }
    candidates
        .iter()
        .find(|p| {
            p.parent()
                .is_some_and(|dir| dir.is_dir() || std::fs::create_dir_all(dir).is_ok())
        })
        .cloned()
        .unwrap_or_else(|| state_dir.join("control.sock"))
}

/// Combines flags (`overrides`), the config file and the defaults; says what is wrong with the
/// combination (a non-loopback HTTP address without `allow_remote`).
pub fn resolve(file: DaemonFile, overrides: DaemonFile) -> Result<DaemonSettings, String> {
    let restart_defaults = RestartSettings::default();
    let limits_defaults = Limits::default();
    let state_dir = overrides
        .state_dir
        .or(file.state_dir)
        .unwrap_or_else(default_state_dir);
    let http = match overrides.http.or(file.http) {
        Some(http) => http,
        None => HttpListen::parse(DEFAULT_HTTP)?,
    };
    let allow_remote = overrides
        .allow_remote
        .or(file.allow_remote)
        .unwrap_or(false);
    if !http.is_loopback() && !allow_remote {
        return Err(format!(
            "HTTP address {} is reachable from other machines; listen on 127.0.0.1 (or ::1), or allow it explicitly with `allow_remote = true` (--allow-remote)",
            match http {
                HttpListen::At(addr) => addr.to_string(),
                HttpListen::Off => "off".into(),
            }
        ));
    }
    if !http.is_loopback() {
        tracing::warn!(
            "the HTTP API listens on a non-loopback address (allow_remote = true): other machines can read pipeline files, errors and progress"
        );
    }
    let first_backoff = overrides
        .restart_first_backoff
        .or(file.restart_first_backoff)
        .unwrap_or(restart_defaults.first_backoff);
    let max_backoff = overrides
        .restart_max_backoff
        .or(file.restart_max_backoff)
        .unwrap_or(restart_defaults.max_backoff)
        .max(first_backoff);
    Ok(DaemonSettings {
        config_file: file.file,
        pipelines_dir: overrides
            .pipelines_dir
            .or(file.pipelines_dir)
            .unwrap_or_else(default_pipelines_dir),
        plugins_dir: overrides
            .plugins_dir
            .or(file.plugins_dir)
            .unwrap_or_else(default_plugins_dir),
        control_socket: overrides
            .control_socket
            .or(file.control_socket)
            .unwrap_or_else(|| daemon_control_socket(&state_dir)),
        state_dir,
        http,
        shutdown_timeout: overrides
            .shutdown_timeout
            .or(file.shutdown_timeout)
            .unwrap_or(Duration::from_secs(30)),
        rescan_interval: overrides
            .rescan_interval
            .or(file.rescan_interval)
            .unwrap_or(Duration::from_secs(30)),
        watch_debounce: overrides
            .watch_debounce
            .or(file.watch_debounce)
            .unwrap_or(Duration::from_millis(100)),
        log_level: overrides
            .log_level
            .or(file.log_level)
            .or_else(|| std::env::var("WEIR_LOG").ok())
            .unwrap_or_else(|| "info".into()),
        log_format: overrides
            .log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Human),
        plugin_limits: Limits {
            memory_bytes: overrides
                .plugin_memory_bytes
                .or(file.plugin_memory_bytes)
                .unwrap_or(limits_defaults.memory_bytes),
            call_timeout: overrides
                .plugin_timeout
                .or(file.plugin_timeout)
                .unwrap_or(limits_defaults.call_timeout),
        },
        progress_history: overrides
            .progress_history
            .or(file.progress_history)
            .unwrap_or(crate::engine::RECENT_BATCHES),
        restart: RestartSettings {
            policy: overrides
                .restart_policy
                .or(file.restart_policy)
                .unwrap_or(RestartPolicy::OnFailure),
            first_backoff,
            max_backoff,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() -> Result<(), String> {
        let file = DaemonFile {
            pipelines_dir: Some("/file/pipelines".into()),
            state_dir: Some("/file/state".into()),
            shutdown_timeout: Some(Duration::from_secs(7)),
            ..DaemonFile::default()
        };
        let flags = DaemonFile {
            state_dir: Some("/flag/state".into()),
            ..DaemonFile::default()
        };
        let settings = resolve(file, flags)?;
        assert_eq!(settings.pipelines_dir, PathBuf::from("/file/pipelines"));
        assert_eq!(settings.state_dir, PathBuf::from("/flag/state"));
        assert_eq!(settings.shutdown_timeout, Duration::from_secs(7));
        assert_eq!(settings.rescan_interval, Duration::from_secs(30));
        assert_eq!(settings.http, HttpListen::parse(DEFAULT_HTTP)?);
        Ok(())
    }

    #[test]
    fn the_example_weir_toml_sets_every_setting_but_the_folders_to_weirs_default()
    -> Result<(), String> {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/weir.toml"));
        let text = include_str!("../../../config/weir.toml");
        let file = crate::config::parse_daemon_file(path, text).map_err(|d| d.to_string())?;
        let mut example = resolve(file, DaemonFile::default())?;
        let defaults = resolve(DaemonFile::default(), DaemonFile::default())?;
        // The folders are systemd's in the example and depend on the environment otherwise.
        example.config_file = None;
        example.pipelines_dir = defaults.pipelines_dir.clone();
        example.plugins_dir = defaults.plugins_dir.clone();
        example.state_dir = defaults.state_dir.clone();
        example.control_socket = defaults.control_socket.clone();
        assert_eq!(example, defaults);
        Ok(())
    }

    #[test]
    fn a_non_loopback_flag_needs_allow_remote() {
        let flags = DaemonFile {
            http: HttpListen::parse("0.0.0.0:1").ok(),
            ..DaemonFile::default()
        };
        let refused = resolve(DaemonFile::default(), flags.clone());
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("reachable from other machines")),
            "{refused:?}"
        );
        let allowed = DaemonFile {
            allow_remote: Some(true),
            ..flags
        };
        assert!(resolve(DaemonFile::default(), allowed).is_ok());
    }
}
