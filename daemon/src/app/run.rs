//! `weir run`: assembles pipelines from validated plans, runs them on one RocksDB, and shuts them
//! down cleanly on SIGINT / SIGTERM (each finishes and commits its batch in flight; a second
//! signal exits at once, and the planned batch replays on the next start).

use crate::assemble::{Environment, assemble};
use crate::config::{PipelinePlan, SinkSpec};
use crate::engine::{Control, PipelineExit};
use crate::state::SharedStore;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Options of `weir run`.
#[derive(Clone)]
pub struct RunOptions {
    /// Where RocksDB keeps checkpoints and state.
    pub state_dir: PathBuf,
    /// How long stopping pipelines may take after a signal before weir gives up waiting.
    pub shutdown_deadline: Duration,
    /// Loads the wasm plugins that pipelines name.
    pub plugins: crate::wasm::PluginHost,
    /// The state store in `state_dir`, opened by the caller (which checks the pipelines against
    /// what their checkpoints kept before anything runs).
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Each pipeline's exit, in the order given.
    pub exits: Vec<(String, PipelineExit)>,
    /// A second signal cut the shutdown short, or the deadline passed.
    pub interrupted: bool,
}

impl RunSummary {
    /// Whether every pipeline ended well.
    pub fn success(&self) -> bool {
        !self.interrupted
            && self
                .exits
                .iter()
                .all(|(_, exit)| !matches!(exit, PipelineExit::Failed(_)))
    }
}

/// First signal: ask every pipeline to stop at its batch boundary. Second: give up waiting.
fn on_signal(
    stopping: bool,
    controls: &[mpsc::UnboundedSender<Control>],
    deadline: &mut tokio::time::Instant,
    options: &RunOptions,
    interrupted: &mut bool,
) -> bool {
    if stopping {
        tracing::warn!(
            "second signal: exiting without waiting (batches in flight will replay on the next start)"
        );
        *interrupted = true;
    } else {
        tracing::info!("stopping: finishing batches in flight");
        for control in controls {
            let _ = control.send(Control::Stop);
        }
        *deadline = tokio::time::Instant::now() + options.shutdown_deadline;
    }
    true
}

/// Runs `plans` until they all end or a signal stops them.
pub async fn run(plans: Vec<PipelinePlan>, options: RunOptions) -> Result<RunSummary, AppError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(AppError::Signals)?;

    let store = options.store.clone();
    tracing::info!(state_dir = %options.state_dir.display(), pipelines = plans.len(), "weir run starting");

    let mut exits: Exits = Vec::new();
    let mut controls: Vec<mpsc::UnboundedSender<Control>> = Vec::new();
    let mut running = JoinSet::new();
    // Which pipeline a task runs, for a task that panics instead of returning its exit.
    let mut slots_by_task = HashMap::new();
    let console_pipelines = plans
        .iter()
        .filter(|p| {
            p.sinks
                .iter()
                .any(|s| matches!(s, SinkSpec::Console { .. }))
        })
        .count();
    let env = Environment {
        store: store.clone(),
        state_dir: options.state_dir.clone(),
        label_console: console_pipelines > 1,
        plugins: options.plugins.clone(),
    };
    for plan in &plans {
        let slot = exits.len();
        exits.push((plan.name.clone(), None));
        // Loading plugins runs wasm (init, output-schema), which must not block the runtime.
        match crate::engine::blocking(|| assemble(plan, &env)) {
            Ok(pipeline) => {
                let (tx, rx) = mpsc::unbounded_channel();
                controls.push(tx);
                let task = running.spawn(async move { (slot, pipeline.run(rx).await) });
                slots_by_task.insert(task.id(), slot);
            }
            Err(err) => {
                let message = format!("cannot start: {err}");
                tracing::error!(pipeline = %plan.name, "{message}");
                exits[slot].1 = Some(PipelineExit::Failed(message));
            }
        }
    }

    let mut interrupted = false;
    let mut stopping = false;
    let far_future = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let mut deadline = far_future;
    loop {
        tokio::select! {
            joined = running.join_next() => match joined {
                None => break,
                Some(joined) => record_exit(joined, &slots_by_task, &mut exits),
            },
            _ = sigint.recv() => stopping = on_signal(stopping, &controls, &mut deadline, &options, &mut interrupted),
            _ = sigterm.recv() => stopping = on_signal(stopping, &controls, &mut deadline, &options, &mut interrupted),
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(
                    "pipelines did not stop within {:?}; exiting anyway (their batches in flight will replay on the next start)",
                    options.shutdown_deadline
                );
                interrupted = true;
            }
        }
        if interrupted {
            running.abort_all();
            break;
        }
    }
    let exits = exits
        .into_iter()
        .map(|(name, exit)| (name, exit.unwrap_or(PipelineExit::Stopped)))
        .collect();
    Ok(RunSummary { exits, interrupted })
}

type Exits = Vec<(String, Option<PipelineExit>)>;

/// Notes how a pipeline's task ended. A task that panicked (a bug) fails its pipeline with the
/// panic's message; the other pipelines go on.
fn record_exit(
    joined: Result<(usize, PipelineExit), tokio::task::JoinError>,
    slots_by_task: &HashMap<tokio::task::Id, usize>,
    exits: &mut Exits,
) {
    match joined {
        Ok((slot, exit)) => exits[slot].1 = Some(exit),
        Err(err) => {
            let task = err.id();
            let message = format!("internal error (a bug in weir): {}", panic_message(err));
            match slots_by_task.get(&task) {
                Some(&slot) => {
                    tracing::error!(pipeline = %exits[slot].0, "pipeline failed: {message}");
                    exits[slot].1 = Some(PipelineExit::Failed(message));
                }
                None => tracing::error!("{message}"),
            }
        }
    }
}

/// What a panicked task said, when it said something.
fn panic_message(err: tokio::task::JoinError) -> String {
    match err.try_into_panic() {
        Ok(payload) => match payload.downcast::<String>() {
            Ok(text) => *text,
            Err(payload) => match payload.downcast::<&'static str>() {
                Ok(text) => (*text).to_string(),
                Err(_) => "a panic without a message".to_string(),
            },
        },
        Err(err) => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_pipeline_task_fails_only_its_pipeline_with_the_message() {
        let mut running = JoinSet::new();
        let mut slots_by_task = HashMap::new();
        let mut exits: Exits = vec![("healthy".into(), None), ("buggy".into(), None)];
        let task = running.spawn(async { (0, PipelineExit::Stopped) });
        slots_by_task.insert(task.id(), 0);
        let task = running.spawn(async {
            let slot = 1;
            if slot == 1 {
                panic!("index out of bounds");
            }
            (slot, PipelineExit::Stopped)
        });
        slots_by_task.insert(task.id(), 1);
        while let Some(joined) = running.join_next().await {
            record_exit(joined, &slots_by_task, &mut exits);
        }
        assert_eq!(exits[0].1, Some(PipelineExit::Stopped));
        assert_eq!(
            exits[1].1,
            Some(PipelineExit::Failed(
                "internal error (a bug in weir): index out of bounds".into()
            ))
        );
    }
}
