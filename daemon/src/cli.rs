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
