//! Command-line flags (clap). Parsing only: `main.rs` turns them into calls into the library.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// weir: a stream processor daemon.
///
/// Pipelines are TOML files: a source, optional transforms and aggregation, and sinks, run as
/// micro-batches with Spark Structured Streaming's semantics. Checkpoints and state live in an
/// embedded RocksDB, so a restarted pipeline continues exactly where it stopped.
#[derive(Debug, Parser)]
#[command(name = "weir", version, propagate_version = true)]
pub struct Cli {
    /// Log filter: a level (error, warn, info, debug, trace) or a tracing directive such as
    /// "weir=debug". Defaults to $WEIR_LOG, then "info".
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pipelines in the foreground until they finish or Ctrl-C / SIGTERM stops them.
    ///
    /// On a signal each pipeline finishes and commits its batch in flight, then weir exits 0.
    /// A second signal exits at once; the interrupted batch is replayed on the next start.
    Run(RunArgs),
    /// Validate pipeline files without running anything.
    ///
    /// Prints every error as file:line:column with what was expected, and exits non-zero if
    /// any file is invalid.
    Check(CheckArgs),
    /// List the wasm plugins in a folder: name, version, kind, contract version, size, and
    /// any reason one cannot be loaded (then the exit status is 1).
    Plugins(PluginsArgs),
    /// Inspect or delete pipelines' checkpoints and state.
    #[command(subcommand)]
    State(StateCommand),
}

/// `weir state ...`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the pipelines that have a checkpoint, with their last committed batch.
    List(StateArgs),
    /// Delete a pipeline's checkpoint and state, so that its next run starts from scratch.
    ///
    /// Use it when the aggregation of a pipeline changed and weir refuses its old state. The
    /// source starts over too (rate and datagen from a new start time, files from the first
    /// file); weir must not be running on the same state directory.
    Reset(StateResetArgs),
}

/// `weir state list`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// State directory (default as for `weir run`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `weir state reset`.
#[derive(Debug, Args)]
pub struct StateResetArgs {
    /// Pipeline names.
    #[arg(required = true, value_name = "PIPELINE")]
    pub pipelines: Vec<String>,

    /// State directory (default as for `weir run`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `weir run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline files (one pipeline per file).
    #[arg(required = true, value_name = "FILE.toml")]
    pub files: Vec<PathBuf>,

    /// Directory of the RocksDB that holds checkpoints and state. Default: $WEIR_STATE_DIR,
    /// else $XDG_STATE_HOME/weir, else ~/.local/state/weir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Folder of wasm plugins that `[[transform]]` stages and `[aggregate]` functions name
    /// (`plugin = "x"` is x.wasm there). Default: $WEIR_PLUGINS_DIR, else
    /// $XDG_DATA_HOME/weir/plugins, else ~/.local/share/weir/plugins.
    #[arg(long, value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,

    /// After a stop signal, how long to wait for batches in flight before exiting anyway.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: std::time::Duration,
}

/// `weir check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Pipeline files.
    #[arg(required = true, value_name = "FILE.toml")]
    pub files: Vec<PathBuf>,

    /// Folder of wasm plugins, to type-check `[[transform]]` stages and plugin aggregates
    /// (default as for `weir run`; when the default folder does not exist, they are not
    /// type-checked).
    #[arg(long, value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,
}

/// `weir plugins`.
#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// The folder to list.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// The default plugins folder (see `--plugins-dir`).
pub fn default_plugins_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEIR_PLUGINS_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("weir/plugins");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/weir/plugins"),
        None => PathBuf::from("plugins"),
    }
}

/// The default state directory (see `--state-dir`).
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEIR_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("weir");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/weir"),
        None => PathBuf::from(".weir-state"),
    }
}
