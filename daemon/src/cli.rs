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
    /// Run as a long-lived service: every pipeline file in the pipelines folder runs, and
    /// changes to the files or to the plugins folder are applied as they happen.
    ///
    /// Settings come from flags, then the config file (`--config`), then defaults. SIGHUP
    /// reloads (as `weir reload` does); SIGTERM or SIGINT stop every pipeline at a batch
    /// boundary within the shutdown deadline and exit 0; a second one exits at once (batches
    /// in flight replay on the next start).
    Daemon(Box<DaemonArgs>),
    /// Every pipeline at a glance, or one pipeline in detail (asks the running daemon).
    Status(StatusArgs),
    /// A live view of every pipeline in the terminal: rows/s in and out, batch time, watermark
    /// lag, backlog, state and errors. Keys: ↑↓ select, enter details, s sort, r reverse, q quit.
    Top(TopArgs),
    /// What a reload would do now, for each pipeline file; changes nothing.
    Diff(DiffArgs),
    /// Reload now: read the folders and apply what changed (as SIGHUP or a file change would).
    Reload(ClientArgs),
    /// Stop a pipeline at a batch boundary; it stays stopped (across reloads) until `weir start`.
    Stop(PipelineArgs),
    /// Start a stopped or failed pipeline.
    Start(PipelineArgs),
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
    /// Write plugins: `weir plugin new NAME` makes a plugin folder, `weir plugin build DIR`
    /// builds it into NAME.wasm in a plugins folder.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Inspect or delete pipelines' checkpoints and state.
    #[command(subcommand)]
    State(StateCommand),
}

/// `weir plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// A folder NAME/ holding a plugin that builds and passes its test as it is: a transform
    /// that passes rows through unchanged, or an aggregate that counts rows.
    New(PluginNewArgs),
    /// Builds the plugin in DIR (Rust: Cargo.toml, Python: plugin.py, JavaScript: plugin.js)
    /// into NAME.wasm in the plugins folder; a Python plugin's test_*.py, a JavaScript
    /// plugin's *.test.js run first.
    Build(PluginBuildArgs),
}

/// `weir plugin new`.
#[derive(Debug, Args)]
pub struct PluginNewArgs {
    /// The plugin's name: lowercase letters, digits and `_` (its .wasm file's name).
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Its language.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: weir::develop::Language,

    /// Transform or aggregate.
    #[arg(long, value_enum, default_value = "transform")]
    pub kind: weir::develop::Kind,

    /// Where to make the folder.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// The Rust SDK's folder (`plugin-sdk` of weir's sources), for a Rust plugin. Default: the
    /// one weir was built from.
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

/// `weir plugin build`.
#[derive(Debug, Args)]
pub struct PluginBuildArgs {
    /// The plugin's folder.
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// The plugins folder to write NAME.wasm into. Default: $WEIR_PLUGINS_DIR, else
    /// $XDG_DATA_HOME/weir/plugins, else ~/.local/share/weir/plugins.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
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
    /// State directory (default as for `weir run`). Without it, a running daemon is asked
    /// first.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", env = "WEIR_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,
}

/// `weir state reset`.
#[derive(Debug, Args)]
pub struct StateResetArgs {
    /// Pipeline names.
    #[arg(required = true, value_name = "PIPELINE")]
    pub pipelines: Vec<String>,

    /// State directory (default as for `weir run`). Without it, a running daemon is asked
    /// first: it stops the pipelines, resets them, and starts their files afresh.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Also delete, for an aggregation on partitions shared through a consumer group, what
    /// the group keeps in Kafka: the changelog and repartition topics and the groups'
    /// committed offsets, so that the pipeline starts over from its `starting_offsets`. Every
    /// daemon of the group shares them: stop the pipeline on the others first. Asks the
    /// running daemon (which knows the pipeline's broker).
    #[arg(long)]
    pub topics: bool,

    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", env = "WEIR_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,
}

/// The daemon's control socket, for every client verb.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The daemon's control socket. Default: $WEIR_CONTROL_SOCKET, else the first that exists
    /// of $XDG_RUNTIME_DIR/weir/control.sock, /run/weir/control.sock and control.sock in the
    /// default state directory.
    #[arg(long, value_name = "PATH", env = "WEIR_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,
}

/// `weir status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One pipeline: its progress, recent batches, last errors, plugins and state.
    #[arg(value_name = "PIPELINE")]
    pub pipeline: Option<String>,

    /// Print the daemon's JSON instead of a table (for scripts).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// `weir top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// How often to ask the daemon.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: std::time::Duration,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// A refresh interval: a duration of at least 100 ms (faster only costs the daemon).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if interval < std::time::Duration::from_millis(100) {
        return Err(format!(
            "{text} is shorter than the shortest interval, 100ms"
        ));
    }
    Ok(interval)
}

/// `weir diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// `weir stop` / `weir start`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The pipeline.
    #[arg(value_name = "PIPELINE")]
    pub pipeline: String,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// `weir daemon`: every setting of `weir.toml` is also a flag, and a flag wins.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The daemon's config file (`weir.toml`). Default: $WEIR_CONFIG; without either, only
    /// flags and defaults apply.
    #[arg(long, value_name = "FILE", env = "WEIR_CONFIG")]
    pub config: Option<PathBuf>,

    /// Folder of pipeline files (`*.toml`), watched. Default: $WEIR_PIPELINES_DIR, else
    /// $CONFIGURATION_DIRECTORY/pipelines (under systemd), else $XDG_CONFIG_HOME/weir/pipelines,
    /// else ~/.config/weir/pipelines.
    #[arg(long, value_name = "DIR")]
    pub pipelines_dir: Option<PathBuf>,

    /// Folder of plugins (`*.wasm`), watched. Default: $WEIR_PLUGINS_DIR, else
    /// $CONFIGURATION_DIRECTORY/plugins, else $XDG_DATA_HOME/weir/plugins, else
    /// ~/.local/share/weir/plugins.
    #[arg(long, value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,

    /// Checkpoints and state (one RocksDB). Default: $WEIR_STATE_DIR, else $STATE_DIRECTORY
    /// (under systemd), else $XDG_STATE_HOME/weir, else ~/.local/state/weir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// The control socket. Default: $WEIR_CONTROL_SOCKET, else $RUNTIME_DIRECTORY/control.sock
    /// (under systemd), else $XDG_RUNTIME_DIR/weir/control.sock, else /run/weir/control.sock,
    /// else control.sock in the state directory.
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,

    /// The read-only HTTP API's address (`host:port`, port 0 picks one), or `off`. Default:
    /// 127.0.0.1:7361. A non-loopback address needs --allow-remote.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,

    /// Allow a non-loopback HTTP address (the API shows files, errors and progress).
    #[arg(long)]
    pub allow_remote: bool,

    /// How long a pipeline may take to stop (on shutdown or reload) before its batch in
    /// flight is abandoned, uncommitted, to replay later. Default: 30s.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Option<std::time::Duration>,

    /// How often both folders are read in full, whatever file events said. Default: 30s.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub rescan_interval: Option<std::time::Duration>,

    /// How long the folders must be quiet after a change before it is applied. Default: 100ms.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub watch_debounce: Option<std::time::Duration>,

    /// Batches of progress each pipeline keeps for `weir status NAME` and the progress API.
    /// Default: 100.
    #[arg(long, value_name = "BATCHES", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub progress_history: Option<u64>,

    /// Log format: `human` or `json`. Default: human.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Memory limit of a plugin instance, MiB, for stages that set none. Default: 128.
    #[arg(long, value_name = "MIB")]
    pub plugin_max_memory_mb: Option<u64>,

    /// Deadline of one plugin call, for stages that set none. Default: 5s.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub plugin_timeout: Option<std::time::Duration>,

    /// Restart policy for pipelines whose file does not set one: `on-failure` or `never`.
    /// Default: on-failure.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,

    /// First wait before restarting a failed pipeline; doubles per failure. Default: 1s.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub restart_first_backoff: Option<std::time::Duration>,

    /// Longest wait between restarts. Default: 5m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub restart_max_backoff: Option<std::time::Duration>,
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

    /// State directory whose checkpoints the files are checked against (read only; a running
    /// daemon may hold it). Default as for `weir run`; skipped when it does not exist.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

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
    weir::app::settings::default_plugins_dir()
}

/// The default state directory (see `--state-dir`).
pub fn default_state_dir() -> PathBuf {
    weir::app::settings::default_state_dir()
}
