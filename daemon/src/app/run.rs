//! `weir run`: runs the given pipeline files in the foreground on the daemon's supervisor
//! ([`Topology`]), until they all end or SIGINT / SIGTERM stops them (each finishes and commits
//! its batch in flight; a second signal exits at once, and the planned batch replays on the
//! next start). Nothing starts unless every file is valid.

use crate::assemble::Environment;
use crate::config::{RestartPolicy, SinkSpec, parse_pipeline};
use crate::state::SharedStore;
use crate::topology::diff::Action;
use crate::topology::registry::RunState;
use crate::topology::runner::{Knobs, RestartSettings, RunnerSettings};
use crate::topology::{Topology, TopologySettings, folders};
use crate::wasm::{Limits, PluginHost};
use std::path::PathBuf;
use std::time::Duration;

/// How often the progress bars are brought up to date.
const BARS_REFRESH: Duration = Duration::from_millis(100);

/// Options of `weir run`.
#[derive(Clone)]
pub struct RunOptions {
    /// Where RocksDB keeps checkpoints and state.
    pub state_dir: PathBuf,
    /// How long stopping pipelines may take after a signal before weir gives up waiting.
    pub shutdown_deadline: Duration,
    /// Loads the wasm plugins that pipelines name.
    pub plugins: PluginHost,
    /// The state store in `state_dir`.
    pub store: SharedStore,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("state_dir", &self.state_dir)
            .field("shutdown_deadline", &self.shutdown_deadline)
            .finish_non_exhaustive()
    }
}

/// Why `weir run` could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Installing signal handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// How `weir run` ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunSummary {
    /// A file is invalid (or its state needs a reset): nothing was started. The text is
    /// every error.
    NotStarted(String),
    /// The pipelines ran.
    Ran {
        /// Each pipeline's final state, by name.
        exits: Vec<(String, RunState)>,
        /// A second signal cut the shutdown short.
        interrupted: bool,
    },
}

impl RunSummary {
    /// Whether every pipeline ended well.
    pub fn success(&self) -> bool {
        match self {
            RunSummary::NotStarted(_) => false,
            RunSummary::Ran { exits, interrupted } => {
                !interrupted
                    && exits
                        .iter()
                        .all(|(_, state)| !matches!(state, RunState::Failed { .. }))
            }
        }
    }
}

fn is_over(state: &RunState) -> bool {
    matches!(
        state,
        RunState::Failed { .. } | RunState::Finished | RunState::Stopped { .. }
    )
}

/// Runs `files` until they all end or a signal stops them.
pub async fn run(files: Vec<PathBuf>, options: RunOptions) -> Result<RunSummary, AppError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(AppError::Signals)?;

    let mut snapshot = folders::read_files(&files, None);
    let parsed: Vec<_> = snapshot
        .pipelines
        .iter()
        .filter_map(|f| parse_pipeline(&f.path, &f.text).ok())
        .collect();
    // A run reads, hashes, loads and reports only the plugins its files name: the other
    // files in the folder would cost a read and a hash each (a 17 MB folder: ~15 ms) and a
    // compile each on a first start, and change nothing it does.
    let named: std::collections::BTreeSet<&str> =
        parsed.iter().flat_map(|p| p.plugin_names()).collect();
    let plugins_dir = options.plugins.plugins_dir();
    if plugins_dir.is_dir() {
        folders::add_plugins(plugins_dir, &mut snapshot, |name| named.contains(name));
    }
    // Several pipelines printing to one terminal name themselves in the console banner.
    let console_pipelines = parsed
        .iter()
        .filter(|p| {
            p.sinks
                .iter()
                .any(|s| matches!(s, SinkSpec::Console { .. }))
        })
        .count();
    let env = Environment {
        store: options.store.clone(),
        state_dir: options.state_dir.clone(),
        label_console: console_pipelines > 1,
    };
    let settings = TopologySettings {
        runner: RunnerSettings::new(
            env,
            Knobs {
                stop_deadline: options.shutdown_deadline,
                // In the foreground a failure ends the run, unless a file asks for restarts.
                restart: RestartSettings {
                    policy: RestartPolicy::Never,
                    ..RestartSettings::default()
                },
                progress_history: crate::engine::RECENT_BATCHES,
            },
        ),
        limits: Limits::default(),
    };
    let mut topology = Topology::new(options.plugins.clone(), options.store.clone(), settings);
    let plan = topology.plan(snapshot).await;
    let errors: Vec<String> = plan
        .changes
        .iter()
        .filter_map(|change| match &change.action {
            Action::Rejected { diagnostics } => Some(diagnostics.to_string()),
            Action::NeedsStateReset { message } => {
                Some(format!("{}: error: {message}\n", change.file.display()))
            }
            _ => None,
        })
        .collect();
    if !errors.is_empty() {
        return Ok(RunSummary::NotStarted(errors.join("\n")));
    }
    tracing::info!(state_dir = %options.state_dir.display(), pipelines = plan.changes.len(), "weir run starting");
    topology.apply(plan).await;

    let registry = topology.registry();
    let changed = registry.changed();
    let all_over = || {
        registry
            .entries()
            .iter()
            .all(|e| is_over(&e.snapshot().run))
    };
    let mut bars = super::progress_bars::wanted(console_pipelines > 0)
        .then(super::progress_bars::ProgressBars::on_stderr);
    let mut redraw = tokio::time::interval(BARS_REFRESH);
    let mut signalled = false;
    while !all_over() {
        tokio::select! {
            () = changed.notified() => {}
            _ = redraw.tick(), if bars.is_some() => {
                if let Some(bars) = &mut bars {
                    bars.update(&registry);
                }
            }
            _ = sigint.recv() => { signalled = true; break; }
            _ = sigterm.recv() => { signalled = true; break; }
        }
    }
    if let Some(bars) = &mut bars {
        bars.update(&registry);
        bars.finish();
    }
    let mut interrupted = false;
    if signalled {
        tracing::info!("stopping: finishing batches in flight");
        tokio::select! {
            abandoned = topology.shutdown() => {
                if !abandoned.is_empty() {
                    tracing::warn!(
                        "pipelines did not stop within {:?}: {} (their batches in flight will replay on the next start)",
                        options.shutdown_deadline,
                        abandoned.join(", ")
                    );
                    interrupted = true;
                }
            }
            _ = sigint.recv() => interrupted = true,
            _ = sigterm.recv() => interrupted = true,
        }
        if interrupted {
            tracing::warn!(
                "exiting without waiting (batches in flight will replay on the next start)"
            );
        }
    }
    let exits = registry
        .entries()
        .iter()
        .map(|e| (e.name.clone(), e.snapshot().run))
        .collect();
    if !interrupted {
        topology.shutdown().await;
    }
    Ok(RunSummary::Ran { exits, interrupted })
}
