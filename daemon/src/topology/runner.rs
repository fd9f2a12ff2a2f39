//! One pipeline's life under the daemon: a task that owns the running version's handle,
//! restarts it after failures the outside world caused (exponential backoff), waits for a new
//! version after failures of its own making, and carries out the supervisor's commands: replace
//! the version (swapping plugin stages in place when only plugins changed), stop, start.
//!
//! Stopping never waits forever: the batch in flight gets the shutdown deadline, then it is
//! abandoned uncommitted (it replays on the next run).

use super::registry::{EntryState, PipelineEntry, PluginVersion, RunState};
use crate::assemble::{Environment, Prepared, build_stages, open};
use crate::config::{FunctionKind, RestartPolicy};
use crate::engine::{Control, ErrorClass, PipelineExit, PipelineHandle, StopOutcome, blocking};
use crate::wasm::transform_stage_id;
use arrow::datatypes::SchemaRef;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How failed pipelines are restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartSettings {
    /// For pipelines whose file does not say.
    pub policy: RestartPolicy,
    /// Wait before the first restart; doubles with each failure in a row.
    pub first_backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl Default for RestartSettings {
    fn default() -> Self {
        RestartSettings {
            policy: RestartPolicy::OnFailure,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// The settings a reload of `weir.toml` may change while pipelines run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knobs {
    /// How long a batch in flight may take to finish when its pipeline stops.
    pub stop_deadline: Duration,
    /// Restarts.
    pub restart: RestartSettings,
    /// Batches of progress each pipeline keeps for the status and progress APIs.
    pub progress_history: usize,
}

/// What every runner shares. Clones share the knobs: changing them reaches every runner.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Where pipelines open.
    pub env: Environment,
    knobs: Arc<std::sync::RwLock<Knobs>>,
}

impl RunnerSettings {
    /// Settings with these knobs.
    pub fn new(env: Environment, knobs: Knobs) -> RunnerSettings {
        RunnerSettings {
            env,
            knobs: Arc::new(std::sync::RwLock::new(knobs)),
        }
    }

    /// The knobs now.
    pub fn knobs(&self) -> Knobs {
        *self.knobs.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the knobs of every runner.
    pub fn set_knobs(&self, knobs: Knobs) {
        *self.knobs.write().unwrap_or_else(|e| e.into_inner()) = knobs;
    }
}

/// Why a pipeline stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `weir stop`: it stays stopped until `weir start`.
    Request,
    /// Its file is gone: the runner ends.
    Removed,
    /// The daemon shuts down: the runner ends.
    Shutdown,
}

impl StopReason {
    fn word(self) -> &'static str {
        match self {
            StopReason::Request => "request",
            StopReason::Removed => "removed",
            StopReason::Shutdown => "shutdown",
        }
    }
}

/// What the supervisor asks of a runner.
pub enum Command {
    /// Run `prepared` instead of the current version.
    Replace {
        /// The new version.
        prepared: Arc<Prepared>,
        /// Only plugin versions changed: try swapping the stages in place first.
        in_place: bool,
        /// The outcome: how it was applied, or why not (then the previous version runs).
        ack: oneshot::Sender<Result<Applied, String>>,
    },
    /// Stop (see [`StopReason`]); answers whether the batch in flight was abandoned.
    Stop {
        /// Why.
        reason: StopReason,
        /// Answered once stopped.
        ack: oneshot::Sender<bool>,
    },
    /// Start the current version if it is not running.
    Start {
        /// Answered once started, or with why it could not.
        ack: oneshot::Sender<Result<(), String>>,
    },
}

/// How a new version was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Its stages were swapped at a batch boundary; the source kept running.
    InPlace,
    /// The old version stopped after its commit and the new one opened the checkpoint.
    Restarted {
        /// The old version's batch in flight was abandoned (it replays).
        abandoned: bool,
    },
    /// Nothing was running; the new version is the one that will run.
    Replaced,
}

/// The supervisor's side of a runner.
pub struct RunnerHandle {
    /// Commands.
    pub commands: mpsc::UnboundedSender<Command>,
    /// The registry entry it keeps.
    pub entry: Arc<PipelineEntry>,
    /// The version it runs (or would run).
    pub prepared: Arc<Prepared>,
    /// The runner's task.
    pub task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RunnerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerHandle")
            .field("pipeline", &self.entry.name)
            .finish()
    }
}

/// The plugins of a prepared pipeline, as the registry shows them.
pub fn plugin_versions(prepared: &Prepared) -> Vec<PluginVersion> {
    prepared
        .plugins
        .as_ref()
        .map(|catalog| {
            catalog
                .plugins()
                .into_values()
                .map(|p| PluginVersion {
                    name: p.name.clone(),
                    version: p.info.version.clone(),
                    sha256: p.sha256.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a runner for `prepared`, which opens and starts the pipeline at once unless
/// `start` is false. `started` is answered once the first start was tried (the pipeline runs,
/// or it failed to open and says why in its entry).
pub fn spawn(
    prepared: Arc<Prepared>,
    entry: Arc<PipelineEntry>,
    settings: RunnerSettings,
    start: bool,
    started: oneshot::Sender<()>,
) -> RunnerHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let runner = Runner {
        name: prepared.plan.name.clone(),
        prepared: prepared.clone(),
        settings,
        entry: entry.clone(),
        handle: None,
        source_schema: None,
        restart_at: None,
        attempt: 0,
        held: !start,
    };
    let task = tokio::spawn(runner.run(rx, started));
    RunnerHandle {
        commands: tx,
        entry,
        prepared,
        task,
    }
}

struct Runner {
    name: String,
    prepared: Arc<Prepared>,
    settings: RunnerSettings,
    entry: Arc<PipelineEntry>,
    handle: Option<PipelineHandle>,
    source_schema: Option<SchemaRef>,
    restart_at: Option<Instant>,
    /// Failures in a row.
    attempt: u32,
    /// Stopped on request: stays stopped until `Start`.
    held: bool,
}

enum Event {
    Exited(PipelineExit),
    RestartDue,
    Command(Option<Command>),
}

async fn exit_of(handle: &mut Option<PipelineHandle>) -> PipelineExit {
    match handle {
        Some(handle) => handle.wait().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Runner {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        started: oneshot::Sender<()>,
    ) {
        if !self.held
            && let Err(err) = self.start()
        {
            self.failed_to_start(&err);
        }
        let _ = started.send(());
        loop {
            let event = {
                let handle = &mut self.handle;
                let restart_at = self.restart_at;
                tokio::select! {
                    exit = exit_of(handle) => Event::Exited(exit),
                    () = sleep_until(restart_at) => Event::RestartDue,
                    command = commands.recv() => Event::Command(command),
                }
            };
            match event {
                Event::Exited(exit) => {
                    self.handle = None;
                    self.on_exit(exit);
                }
                Event::RestartDue => {
                    self.restart_at = None;
                    self.entry.update(|s| s.restarts += 1);
                    tracing::info!(pipeline = %self.name, attempt = self.attempt, "restarting after a failure");
                    if let Err(err) = self.start() {
                        self.failed_to_start(&err);
                    }
                }
                // The supervisor is gone: stop as in a shutdown.
                Event::Command(None) => {
                    self.stop(StopReason::Shutdown).await;
                    return;
                }
                Event::Command(Some(command)) => {
                    if self.command(command).await {
                        return;
                    }
                }
            }
        }
    }

    /// Carries out a command; true when the runner should end.
    async fn command(&mut self, command: Command) -> bool {
        match command {
            Command::Replace {
                prepared,
                in_place,
                ack,
            } => {
                let result = self.replace(prepared, in_place).await;
                let _ = ack.send(result);
                false
            }
            Command::Stop { reason, ack } => {
                let abandoned = self.stop(reason).await;
                let _ = ack.send(abandoned);
                reason != StopReason::Request
            }
            Command::Start { ack } => {
                self.held = false;
                let result = if self.handle.is_some() {
                    Ok(())
                } else {
                    self.restart_at = None;
                    self.attempt = 0;
                    self.start()
                };
                if let Err(err) = &result {
                    self.failed_to_start(err);
                }
                let _ = ack.send(result);
                false
            }
        }
    }

    /// Opens the current version and starts its loop.
    fn start(&mut self) -> Result<(), String> {
        self.entry.update(|s| s.run = RunState::Starting);
        let prepared = self.prepared.clone();
        let env = self.settings.env.clone();
        let metrics = self.entry.snapshot().metrics;
        let pipeline = blocking(|| open(&prepared, &env))
            .map_err(|err| err.to_string())?
            .with_metrics(metrics, self.settings.knobs().progress_history);
        self.source_schema = Some(pipeline.source_schema());
        let monitor = pipeline.monitor();
        self.handle = Some(pipeline.spawn());
        self.entry.update(|s| {
            s.run = RunState::Running;
            s.monitor = Some(monitor);
        });
        Ok(())
    }

    fn failed_to_start(&mut self, err: &str) {
        let message = format!("cannot start: {err}");
        tracing::error!(pipeline = %self.name, "{message}");
        self.on_exit(PipelineExit::Failed {
            message,
            class: ErrorClass::External,
        });
    }

    fn policy(&self) -> RestartPolicy {
        self.prepared
            .plan
            .restart
            .unwrap_or(self.settings.knobs().restart.policy)
    }

    fn on_exit(&mut self, exit: PipelineExit) {
        match exit {
            PipelineExit::Finished => self.entry.update(|s| s.run = RunState::Finished),
            PipelineExit::Stopped => self.entry.update(|s| {
                s.run = RunState::Stopped {
                    by: "request".into(),
                    abandoned_batch: false,
                }
            }),
            PipelineExit::Failed { message, class } => {
                self.entry.record_error(&message);
                // A run that committed something was healthy for a while: count from one.
                let committed = self
                    .entry
                    .snapshot()
                    .monitor
                    .is_some_and(|m| m.last().is_some());
                if committed {
                    self.attempt = 0;
                }
                if self.policy() == RestartPolicy::OnFailure && class != ErrorClass::User {
                    let restart = self.settings.knobs().restart;
                    let backoff = restart
                        .first_backoff
                        .saturating_mul(1u32 << self.attempt.min(20))
                        .min(restart.max_backoff);
                    self.attempt += 1;
                    self.restart_at = Some(Instant::now() + backoff);
                    let at = SystemTime::now() + backoff;
                    tracing::warn!(
                        pipeline = %self.name,
                        "pipeline failed; restarting in {backoff:?} (attempt {}): {message}",
                        self.attempt
                    );
                    self.entry.update(|s| {
                        s.run = RunState::Restarting {
                            at_ms: at
                                .duration_since(SystemTime::UNIX_EPOCH)
                                .map_or(0, |d| d.as_millis() as i64),
                            attempt: self.attempt,
                            reason: message,
                        }
                    });
                } else {
                    tracing::error!(
                        pipeline = %self.name,
                        "pipeline failed; it waits for its file or plugins to change (or `weir start {}`): {message}",
                        self.name
                    );
                    self.entry
                        .update(|s| s.run = RunState::Failed { message, class });
                }
            }
        }
    }

    /// Stops the running version's loop (if one runs) within the deadline; true if its batch
    /// in flight was abandoned.
    async fn stop_running(&mut self) -> bool {
        match self.handle.take() {
            Some(mut handle) => {
                let deadline = self.settings.knobs().stop_deadline;
                handle.stop_within(deadline).await == StopOutcome::Abandoned
            }
            None => false,
        }
    }

    /// Stops the running version (if any); true if its batch in flight was abandoned.
    async fn stop(&mut self, reason: StopReason) -> bool {
        self.restart_at = None;
        if reason == StopReason::Request {
            self.held = true;
        }
        let abandoned = self.stop_running().await;
        self.entry.update(|s| {
            // A pipeline that had already failed or finished keeps saying so.
            if !matches!(s.run, RunState::Failed { .. } | RunState::Finished) || abandoned {
                s.run = RunState::Stopped {
                    by: reason.word().into(),
                    abandoned_batch: abandoned,
                }
            }
        });
        abandoned
    }

    async fn replace(
        &mut self,
        prepared: Arc<Prepared>,
        in_place: bool,
    ) -> Result<Applied, String> {
        let old = std::mem::replace(&mut self.prepared, prepared.clone());
        let versions = plugin_versions(&prepared);
        let file = prepared.plan.file.clone();
        let commit_version = |entry: &PipelineEntry| {
            entry.update(|s| {
                s.generation += 1;
                s.plugins = versions.clone();
                s.file = file.clone();
                s.pending = None;
                s.notes.clear();
            })
        };
        if self.handle.is_none() {
            // Nothing runs: a failed (or finished) pipeline starts on its new version; one
            // stopped on request keeps waiting for `weir start`.
            self.restart_at = None;
            self.attempt = 0;
            commit_version(&self.entry);
            if !self.held
                && let Err(err) = self.start()
            {
                self.failed_to_start(&err);
            }
            return Ok(Applied::Replaced);
        }
        if in_place {
            match self.swap_stages(&old, &prepared).await {
                Ok(()) => {
                    commit_version(&self.entry);
                    return Ok(Applied::InPlace);
                }
                Err(why) => tracing::info!(
                    pipeline = %self.name,
                    "plugin change cannot be swapped in place ({why}); restarting the pipeline at a batch boundary instead"
                ),
            }
        }
        let abandoned = self.stop_running().await;
        match self.start() {
            Ok(()) => {
                commit_version(&self.entry);
                Ok(Applied::Restarted { abandoned })
            }
            Err(err) => {
                // Roll back: the previous version runs again.
                self.prepared = old;
                let message = format!("cannot start the new version: {err}");
                match self.start() {
                    Ok(()) => Err(format!("{message}; the previous version was started again")),
                    Err(again) => {
                        self.failed_to_start(&again);
                        Err(format!(
                            "{message}; the previous version could not be started again either: {again}"
                        ))
                    }
                }
            }
        }
    }

    /// Swaps the stages that use a changed plugin into the running version.
    async fn swap_stages(&mut self, old: &Prepared, new: &Prepared) -> Result<(), String> {
        let (Some(handle), Some(source_schema)) = (&self.handle, self.source_schema.clone()) else {
            return Err("the pipeline is not running".into());
        };
        let (before, after) = (old.plugin_versions(), new.plugin_versions());
        let changed: BTreeSet<&String> = after
            .iter()
            .filter(|(name, hash)| before.get(*name) != Some(*hash))
            .map(|(name, _)| name)
            .collect();
        let plan = &new.plan;
        let mut ids: BTreeSet<String> = plan
            .transforms
            .iter()
            .enumerate()
            .filter(|(_, t)| changed.contains(&t.plugin))
            .map(|(i, _)| transform_stage_id(i + 1))
            .collect();
        if plan.aggregate.as_ref().is_some_and(|a| {
            a.functions.iter().any(
                |f| matches!(&f.kind, FunctionKind::Plugin { name, .. } if changed.contains(name)),
            )
        }) {
            ids.insert("aggregate".into());
        }
        if ids.is_empty() {
            return Err("no stage uses the changed plugins".into());
        }
        let store = self.settings.env.store.clone();
        let stages = blocking(|| build_stages(new, &store, source_schema, None))
            .map_err(|err| err.to_string())?;
        let stages: Vec<(String, Box<dyn crate::engine::Operator>)> = stages
            .into_iter()
            .filter_map(|op| {
                let id = op.stage_id()?;
                ids.contains(&id).then_some((id, op))
            })
            .collect();
        let (done, answer) = oneshot::channel();
        if !handle.send(Control::Swap { stages, done }) {
            return Err("the pipeline is not running".into());
        }
        // The swap waits for the batch in flight; a stuck batch makes it a restart instead.
        match tokio::time::timeout(self.settings.knobs().stop_deadline, answer).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(err))) => Err(err.to_string()),
            Ok(Err(_)) => Err("the pipeline ended before the swap".into()),
            Err(_) => Err(format!(
                "no batch boundary within {:?}",
                self.settings.knobs().stop_deadline
            )),
        }
    }
}

/// The registry entry of a version that is about to run.
pub fn new_entry_state(prepared: &Prepared) -> EntryState {
    EntryState {
        file: prepared.plan.file.clone(),
        run: RunState::Starting,
        monitor: None,
        metrics: Default::default(),
        plugins: plugin_versions(prepared),
        generation: 1,
        restarts: 0,
        pending: None,
        notes: Vec::new(),
        errors: Default::default(),
    }
}
