//! What can go wrong with a plugin, worded for the person running the pipeline.

use crate::engine::ErrorClass;
use std::path::PathBuf;
use std::time::Duration;

/// A plugin could not be loaded, type-checked or run.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No such file in the plugins folder.
    #[error("plugin `{name}` not found: there is no {}", path.display())]
    NotFound {
        /// The name the pipeline used.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not WebAssembly at all.
    #[error("{} is not a WebAssembly file (corrupt, truncated, or not a plugin)", path.display())]
    NotWasm {
        /// The file.
        path: PathBuf,
    },
    /// A core module rather than a component.
    #[error(
        "{} is a core WebAssembly module, not a component: build plugins with `--target wasm32-wasip2` against weir-plugin-sdk (see the README's plugins section)",
        path.display()
    )]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// wasmtime refused the component.
    #[error("{} is not a valid WebAssembly component: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// wasmtime's reason.
        message: String,
    },
    /// A component that is not a weir plugin.
    #[error(
        "{} is not a weir plugin: it exports neither `weir:plugin/transformer` nor `weir:plugin/aggregator` (its exports: {exports})",
        path.display()
    )]
    NotAPlugin {
        /// The file.
        path: PathBuf,
        /// What it exports.
        exports: String,
    },
    /// Built for a contract version this host does not speak.
    #[error(
        "{} was built for plugin contract {found}, but this weir speaks contract {host}: rebuild the plugin against a weir-plugin-sdk {host_major}.x that is not newer than this weir",
        path.display()
    )]
    Contract {
        /// The file.
        path: PathBuf,
        /// The plugin's contract version.
        found: String,
        /// Ours.
        host: &'static str,
        /// Our major version.
        host_major: String,
    },
    /// It imports something the sandbox does not provide.
    #[error(
        "{} imports `{import}`, which weir does not provide (plugins get WASI preview 2 and nothing else)",
        path.display()
    )]
    Import {
        /// The file.
        path: PathBuf,
        /// The import.
        import: String,
    },
    /// A transform where an aggregate was wanted, or the reverse.
    #[error("plugin `{plugin}` is a {found} plugin, but it is used as a {wanted}")]
    WrongKind {
        /// The plugin.
        plugin: String,
        /// What it is.
        found: &'static str,
        /// What the pipeline wanted.
        wanted: &'static str,
    },
    /// The plugin refused its config or its input schema at load.
    #[error("plugin `{plugin}` rejected {what}: {message}")]
    Rejected {
        /// The plugin.
        plugin: String,
        /// `its config`, `the input schema ...`.
        what: String,
        /// The plugin's message.
        message: String,
    },
    /// A call into the plugin failed.
    #[error("plugin `{plugin}` {failure}")]
    Call {
        /// The plugin.
        plugin: String,
        /// What happened.
        failure: CallFailure,
    },
    /// The caller broke a rule of the host API (a bug in weir).
    #[error("internal error calling plugin `{plugin}` (a bug in weir): {message}")]
    Misuse {
        /// The plugin.
        plugin: String,
        /// What was wrong.
        message: String,
    },
    /// The wasm engine could not be set up.
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    /// Still compiling (in the daemon, on a thread of its own): what uses it waits.
    #[error(
        "{} is compiling ({:.1} MB, {} s so far); what uses it starts when it is ready",
        path.display(),
        *size as f64 / 1e6,
        elapsed.as_secs()
    )]
    Compiling {
        /// The file.
        path: PathBuf,
        /// Its size, bytes.
        size: u64,
        /// How long it has been compiling.
        elapsed: Duration,
    },
    /// A load of this content failed before, for this reason (not tried again until the file
    /// changes).
    #[error("{0}")]
    Remembered(std::sync::Arc<PluginError>),
}

impl PluginError {
    /// Whose fault it is.
    pub fn class(&self) -> ErrorClass {
        match self {
            PluginError::Read { .. } => ErrorClass::External,
            PluginError::Misuse { .. } | PluginError::Engine(_) => ErrorClass::Internal,
            PluginError::Remembered(err) => err.class(),
            _ => ErrorClass::User,
        }
    }

    /// Whether the same work may succeed on a fresh instance: every failure of a running
    /// plugin (trap, deadline, memory, its own error, bad output) is retried; load errors are not.
    pub fn retryable(&self) -> bool {
        matches!(self, PluginError::Call { .. })
    }

    /// Whether it only says "not compiled yet": the plugin itself may be fine.
    pub fn is_compiling(&self) -> bool {
        matches!(self, PluginError::Compiling { .. })
    }
}

impl CallFailure {
    /// Its kind, as the plugin cost metrics count it (one of `engine::FAILURE_KINDS`).
    pub fn kind(&self) -> &'static str {
        match self {
            CallFailure::Deadline(_) => "deadline",
            CallFailure::OutOfMemory { .. } => "out_of_memory",
            CallFailure::Trap(_) | CallFailure::Instantiate(_) => "trap",
            CallFailure::Plugin(_) => "plugin_error",
            CallFailure::BadOutput(_) => "bad_output",
        }
    }
}

/// How one call into a plugin failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallFailure {
    /// The per-call deadline passed (epoch interruption).
    #[error(
        "did not return within its deadline of {0:?} and was stopped (an endless loop?); raise `timeout` in the pipeline if the work is legitimately slow"
    )]
    Deadline(Duration),
    /// It tried to grow its memory past the limit.
    #[error(
        "ran out of memory: it tried to grow its memory to {wanted_mib} MiB, past its limit of {limit_mib} MiB (`max_memory_mb` in the pipeline)"
    )]
    OutOfMemory {
        /// What it asked for.
        wanted_mib: u64,
        /// The limit.
        limit_mib: u64,
    },
    /// A WebAssembly trap.
    #[error("crashed: {0}")]
    Trap(String),
    /// The plugin returned an error.
    #[error("failed: {0}")]
    Plugin(String),
    /// It returned data that is not what it declared.
    #[error("returned a batch that does not match its declared output schema: {0}")]
    BadOutput(String),
    /// Instantiating it failed.
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
}
