//! One pipeline's micro-batch loop: wait for the trigger, plan a batch in the offsets log, read,
//! run the operators, write the sinks, commit everything in one write, publish progress.
//!
//! Recovery is the same loop: a batch planned but not committed before a crash is replayed first,
//! with its id and range, before anything new is planned.

use super::blocking::blocking;
use super::error::BatchError;
use super::operator::{BatchContext, Operator};
use super::progress::{BatchProgress, Durations, PipelineMonitor, PipelineStatus};
use super::trigger::next_processing_time_tick;
use crate::config::Trigger;
use crate::sinks::Sink;
use crate::sources::{Chunk, ReadLimit, Source, SourceOffset, SourceTasks, Wakeup};
use crate::state::{Checkpoint, CheckpointError, CommitEntry, OffsetsEntry, WriteSet};
use arrow::datatypes::SchemaRef;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// Messages a running pipeline accepts between batches.
pub enum Control {
    /// Stop after the batch in flight commits (or at once if none is).
    Stop,
    /// Replace stages, named by their ids ([`Operator::stage_id`]), at the next batch
    /// boundary: never inside a batch, so every batch runs entirely on the old stages or
    /// entirely on the new ones. Each replacement must produce the same schema as the stage it
    /// replaces and restores its committed state ([`Operator::restore`]) first; if any one is
    /// refused, none is swapped. `done` answers whether they are in place.
    Swap {
        /// Stage id and replacement.
        stages: Vec<(String, Box<dyn Operator>)>,
        /// Answered once the swap is done or refused.
        done: oneshot::Sender<Result<(), SwapError>>,
    },
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Stop => f.write_str("Stop"),
            Control::Swap { stages, .. } => {
                let ids: Vec<&str> = stages.iter().map(|(id, _)| id.as_str()).collect();
                write!(f, "Swap({})", ids.join(", "))
            }
        }
    }
}

/// Why a stage swap was refused (the old stage stays in place).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwapError {
    /// No stage has that id.
    #[error("the pipeline has no stage `{id}` (its stages: {known})")]
    UnknownStage {
        /// The id asked for.
        id: String,
        /// The ids there are.
        known: String,
    },
    /// The replacement produces another schema than the stage it would replace.
    #[error("the new `{id}` produces {found}, the running one {expected}")]
    SchemaChanged {
        /// The stage.
        id: String,
        /// The running stage's output schema.
        expected: String,
        /// The replacement's.
        found: String,
    },
    /// The replacement could not restore the committed state.
    #[error("the new `{id}` cannot take the committed state: {message}")]
    Restore {
        /// The stage.
        id: String,
        /// Why.
        message: String,
    },
    /// The pipeline ended before the swap could happen.
    #[error("the pipeline is not running")]
    NotRunning,
}

/// How a pipeline's loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineExit {
    /// Stopped on request, at a batch boundary.
    Stopped,
    /// Its trigger ran out of input (`once`, `available_now`).
    Finished,
    /// A batch failed for good.
    Failed {
        /// Why, in the user's terms.
        message: String,
        /// Whose fault: decides whether restarting can help.
        class: super::ErrorClass,
    },
}

impl PipelineExit {
    /// The failure message, if the pipeline failed.
    pub fn failure(&self) -> Option<&str> {
        match self {
            PipelineExit::Failed { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// How often, and how patiently, a failed batch is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubles each time.
    pub first_backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// A pipeline's parts, ready to run.
pub struct Pipeline {
    name: String,
    trigger: Trigger,
    source: Box<dyn Source>,
    source_tasks: Option<SourceTasks>,
    operators: Vec<Box<dyn Operator>>,
    /// How a batch's chunks spread over cores (the leading stateless stages' replicas).
    lanes: super::Lanes,
    /// Each operator's stable id, for swaps: `transform #2`, `aggregate`.
    stage_ids: Vec<String>,
    sinks: Vec<(&'static str, Box<dyn Sink>)>,
    checkpoint: Checkpoint,
    monitor: Arc<PipelineMonitor>,
    retry: RetryPolicy,
    /// True while a planned batch has not committed: swaps wait for the boundary.
    in_batch: bool,
    /// Swaps that arrived inside a batch, applied after its commit.
    deferred: Vec<Control>,
    /// The wall clock: trigger ticks and batch timestamps.
    clock: Arc<dyn super::Clock>,
    /// Trouble that lasts (slow batches, a growing watermark lag, retries), logged once per
    /// episode.
    episodes: super::episodes::Episodes,
    /// A pipeline that runs beside this one and feeds its input (a repartition topic's
    /// writer): started, stopped and abandoned with it.
    feeder: Option<Box<Pipeline>>,
}

/// A running pipeline.
#[derive(Debug)]
pub struct PipelineHandle {
    /// Its name.
    pub name: String,
    /// Live status and recent progress.
    pub monitor: Arc<PipelineMonitor>,
    control: mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<PipelineExit>,
    checkpoint: Checkpoint,
    source_tasks: Option<SourceTasks>,
    /// The feeder's checkpoint, fenced with this one's when a stop is abandoned.
    feeder_checkpoint: Option<Checkpoint>,
}

/// How [`PipelineHandle::stop_within`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// The loop ended by itself (at a batch boundary, or it had already ended).
    Exited(PipelineExit),
    /// The batch in flight did not finish within the deadline: it was abandoned uncommitted
    /// (it can no longer commit) and will be replayed by the next run of the pipeline.
    Abandoned,
}

/// What a panicked task said, when it said something.
pub fn panic_message(err: tokio::task::JoinError) -> String {
    match err.try_into_panic() {
        Ok(payload) => crate::cores::panic_text(payload.as_ref()),
        Err(err) => err.to_string(),
    }
}

fn exit_of(joined: Result<PipelineExit, tokio::task::JoinError>) -> PipelineExit {
    match joined {
        Ok(exit) => exit,
        Err(err) => PipelineExit::Failed {
            message: format!("internal error (a bug in weir): {}", panic_message(err)),
            class: super::ErrorClass::Internal,
        },
    }
}

impl PipelineHandle {
    /// Asks the pipeline to stop at the next batch boundary.
    pub fn stop(&self) {
        let _ = self.control.send(Control::Stop);
    }

    /// Sends a control message; false if the pipeline has already ended.
    pub fn send(&self, message: Control) -> bool {
        self.control.send(message).is_ok()
    }

    /// Whether the loop has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the loop to end. A task that panicked (a bug) is reported as failed with the
    /// panic's message.
    pub async fn join(self) -> PipelineExit {
        exit_of(self.task.await)
    }

    /// Waits for the loop to end (without asking it to).
    pub async fn wait(&mut self) -> PipelineExit {
        exit_of((&mut self.task).await)
    }

    /// Waits for the loop to end by itself, for as long as `deadline`.
    pub async fn wait_within(&mut self, deadline: Duration) -> Option<PipelineExit> {
        tokio::time::timeout(deadline, &mut self.task)
            .await
            .ok()
            .map(exit_of)
    }

    /// Stops the pipeline at its next batch boundary, waiting at most `deadline` for the batch
    /// in flight. Past the deadline the batch is abandoned: the checkpoint is fenced so the
    /// stuck batch can never commit (it replays on the next run, so nothing is lost or
    /// counted twice), and the source's network tasks are closed so a new version can bind
    /// its port. The stuck task is left to end on its own (`join` still waits for it).
    pub async fn stop_within(&mut self, deadline: Duration) -> StopOutcome {
        self.stop();
        if let Some(exit) = self.wait_within(deadline).await {
            return StopOutcome::Exited(exit);
        }
        self.abandon().await;
        StopOutcome::Abandoned
    }

    /// Fences the checkpoint and closes the source's tasks (see [`Self::stop_within`]).
    pub async fn abandon(&self) {
        let checkpoint = self.checkpoint.clone();
        // Waits for a commit that is being written (a RocksDB write) to land first.
        let feeder = self.feeder_checkpoint.clone();
        let _ = tokio::task::spawn_blocking(move || {
            checkpoint.fence();
            if let Some(feeder) = feeder {
                feeder.fence();
            }
        })
        .await;
        if let Some(tasks) = &self.source_tasks {
            tasks.close().await;
        }
        self.monitor.set_status(PipelineStatus::Abandoned);
        tracing::warn!(
            pipeline = %self.name,
            "stopped with an abandoned batch: the batch in flight did not finish in time; it was not committed and will be replayed"
        );
    }
}

enum Waited {
    Ready,
    Stop,
}

struct BatchOutcome {
    rows_in: u64,
    malformed: crate::sources::MalformedCounts,
    rows_out: u64,
    watermark_ms: Option<i64>,
    durations: Durations,
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn schema_text(schema: &SchemaRef) -> String {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("({})", fields.join(", "))
}

impl Pipeline {
    /// Assembles a pipeline. `sinks` pairs each sink with its type name, for messages.
    pub fn new(
        name: &str,
        trigger: Trigger,
        source: Box<dyn Source>,
        operators: Vec<Box<dyn Operator>>,
        sinks: Vec<(&'static str, Box<dyn Sink>)>,
        checkpoint: Checkpoint,
    ) -> Pipeline {
        let stage_ids = operators
            .iter()
            .enumerate()
            .map(|(i, op)| op.stage_id().unwrap_or_else(|| format!("stage #{}", i + 1)))
            .collect();
        let mut pipeline = Pipeline {
            name: name.to_string(),
            trigger,
            source_tasks: source.tasks(),
            source,
            operators,
            lanes: super::Lanes::new(crate::cores::Spread::one()),
            stage_ids,
            sinks,
            checkpoint,
            monitor: Arc::new(PipelineMonitor::new(name)),
            retry: RetryPolicy::default(),
            in_batch: false,
            deferred: Vec::new(),
            clock: Arc::new(super::SystemClock),
            episodes: Default::default(),
            feeder: None,
        };
        pipeline.lend_metrics();
        pipeline
    }

    /// Gives the stages that report into the pipeline's metrics the current ones.
    fn lend_metrics(&mut self) {
        let metrics = self.monitor.metrics();
        for op in &mut self.operators {
            op.watch_metrics(&metrics);
        }
    }

    /// Reads wall time from `clock` instead of the system's (tests pause and advance it).
    pub fn with_clock(mut self, clock: Arc<dyn super::Clock>) -> Pipeline {
        self.clock = clock;
        self
    }

    /// Works on up to `spread.width` chunks of a batch at once: the source makes them, and
    /// the leading stateless stages run them, on that many cores (the output is the same at
    /// any width).
    pub fn with_parallelism(mut self, spread: crate::cores::Spread) -> Pipeline {
        self.source.spread_over(spread.clone());
        self.lanes = super::Lanes::new(spread);
        self
    }

    /// Runs `feeder` beside this pipeline, which reads what it writes (a repartition topic):
    /// the two start, stop and are abandoned together, and when the feeder fails, this one
    /// stops at its next batch boundary and fails with the feeder's message, so that whoever
    /// restarts it restarts both. With a trigger that ends (`once`, `available_now`), this one
    /// starts when the feeder has finished, so that it finds everything the feeder wrote.
    pub fn with_feeder(mut self, feeder: Pipeline) -> Pipeline {
        self.feeder = Some(Box::new(feeder));
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Pipeline {
        self.retry = retry;
        self
    }

    /// Counts its batches into `metrics` (which outlive this run: the daemon keeps one per
    /// pipeline name).
    /// It keeps the progress of its last `history` batches.
    pub fn with_metrics(
        mut self,
        metrics: Arc<super::PipelineMetrics>,
        history: usize,
    ) -> Pipeline {
        let monitor = PipelineMonitor::with_metrics(&self.name, metrics, history);
        monitor.set_identity(self.monitor.identity());
        self.monitor = Arc::new(monitor);
        self.lend_metrics();
        self.publish_plugin_costs();
        self
    }

    /// Shows the current stages' plugin costs in the metrics.
    fn publish_plugin_costs(&self) {
        let mut plugins: Vec<(String, Arc<super::PluginCosts>)> = Vec::new();
        for (op, id) in self.operators.iter().zip(&self.stage_ids) {
            for costs in op.plugin_costs() {
                // One series per stage and plugin: a plugin used twice in a stage (with two
                // configs) gets a numbered stage label.
                let mut stage = id.clone();
                let mut n = 1;
                while plugins
                    .iter()
                    .any(|(s, c)| *s == stage && c.plugin == costs.plugin)
                {
                    n += 1;
                    stage = format!("{id} ({n})");
                }
                plugins.push((stage, costs));
            }
        }
        self.monitor.metrics().set_plugins(plugins);
    }

    /// Names the checkpoint `id` and the source in its progress reports (a new run id is made
    /// for each pipeline built).
    pub fn with_identity(self, id: &str, source: &str) -> Pipeline {
        self.monitor.set_identity(super::progress::QueryIdentity {
            id: id.to_string(),
            run_id: super::progress::new_run_id(&self.name),
            source: source.to_string(),
            sinks: self
                .sinks
                .iter()
                .map(|(kind, _)| kind.to_string())
                .collect(),
        });
        self
    }

    /// Live status and progress, shared with the handle.
    pub fn monitor(&self) -> Arc<PipelineMonitor> {
        self.monitor.clone()
    }

    /// The schema of what the source reads.
    pub fn source_schema(&self) -> SchemaRef {
        self.source.schema()
    }

    /// The ids of the stages, in order.
    pub fn stage_ids(&self) -> &[String] {
        &self.stage_ids
    }

    /// The schema that reaches the sinks.
    pub fn output_schema(&self) -> SchemaRef {
        self.operators
            .last()
            .map_or_else(|| self.source.schema(), |op| op.output_schema())
    }

    /// Starts the loop on the current tokio runtime.
    pub fn spawn(self) -> PipelineHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let name = self.name.clone();
        let monitor = self.monitor.clone();
        let checkpoint = self.checkpoint.clone();
        let source_tasks = self.source_tasks.clone();
        let feeder_checkpoint = self.feeder.as_ref().map(|f| f.checkpoint.clone());
        let task = tokio::spawn(self.run(rx));
        PipelineHandle {
            name,
            monitor,
            control: tx,
            task,
            checkpoint,
            source_tasks,
            feeder_checkpoint,
        }
    }

    /// Runs the loop until stopped, finished or failed (with its feeder beside it, if it has
    /// one). The source's background tasks are closed before this returns, so a listening
    /// port is free again.
    pub async fn run(mut self, control: mpsc::UnboundedReceiver<Control>) -> PipelineExit {
        match self.feeder.take() {
            None => self.run_alone(control).await,
            Some(feeder) => self.run_fed(*feeder, control).await,
        }
    }

    /// [`Self::run`] with a feeder (see [`Self::with_feeder`]). Control messages pass through
    /// to this pipeline's loop; the feeder's failure is a `Stop` sent to it.
    async fn run_fed(
        self,
        feeder: Pipeline,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) -> PipelineExit {
        let monitor = self.monitor.clone();
        let checkpoint = self.checkpoint.clone();
        let name = self.name.clone();
        let feeder_name = feeder.name.clone();
        let ends = matches!(self.trigger, Trigger::Once | Trigger::AvailableNow);
        let mut feeder = feeder.spawn();
        monitor.set_feeder(Some(feeder.monitor.clone()));
        let mut feeder_exit = None;
        if ends {
            monitor.set_status(PipelineStatus::Waiting);
            monitor.set_source_status(Some(format!("waiting for `{feeder_name}` to finish")));
            let mut control_open = true;
            let exit = loop {
                tokio::select! {
                    exit = feeder.wait() => break exit,
                    message = control.recv(), if control_open => match message {
                        Some(Control::Stop) => {
                            feeder.stop();
                            let _ = feeder.wait().await;
                            monitor.set_status(PipelineStatus::Stopped);
                            return PipelineExit::Stopped;
                        }
                        // No stage of this pipeline has started yet: nothing to swap.
                        Some(Control::Swap { done, .. }) => {
                            let _ = done.send(Err(SwapError::NotRunning));
                        }
                        None => control_open = false,
                    },
                }
            };
            feeder_exit = Some(exit);
            if let Some(PipelineExit::Failed { message, class }) = feeder_exit {
                let message = format!("`{feeder_name}`: {message}");
                monitor.set_status(PipelineStatus::Failed(message.clone()));
                return PipelineExit::Failed { message, class };
            }
            monitor.set_source_status(None);
        }
        let (inner, inner_rx) = mpsc::unbounded_channel();
        let main = self.run_alone(inner_rx);
        tokio::pin!(main);
        let mut control_open = true;
        let exit = loop {
            tokio::select! {
                exit = &mut main => break exit,
                message = control.recv(), if control_open => match message {
                    Some(message) => { let _ = inner.send(message); }
                    // Nobody can send any more: the loop carries on, as it would alone.
                    None => control_open = false,
                },
                exit = feeder.wait(), if feeder_exit.is_none() => {
                    if matches!(exit, PipelineExit::Failed { .. }) {
                        let _ = inner.send(Control::Stop);
                    }
                    feeder_exit = Some(exit);
                }
            }
        };
        if feeder_exit.is_none() {
            feeder.stop();
            feeder_exit = Some(feeder.wait().await);
        }
        match (exit, feeder_exit) {
            (PipelineExit::Stopped, Some(PipelineExit::Failed { message, class })) => {
                let message = format!("`{feeder_name}`: {message}");
                tracing::error!(pipeline = %name, "pipeline failed: {message}");
                if !checkpoint.is_fenced() {
                    monitor.set_status(PipelineStatus::Failed(message.clone()));
                }
                PipelineExit::Failed { message, class }
            }
            (exit, _) => exit,
        }
    }

    /// The loop of this pipeline alone.
    async fn run_alone(mut self, mut control: mpsc::UnboundedReceiver<Control>) -> PipelineExit {
        let exit = match self.run_loop(&mut control).await {
            Ok(exit) => exit,
            // An abandoned run (see `PipelineHandle::stop_within`) ends quietly: its batch
            // replays in the next run.
            Err(BatchError::Checkpoint(CheckpointError::Fenced)) => PipelineExit::Stopped,
            Err(err) => {
                let class = err.class();
                let message = match class {
                    super::ErrorClass::Internal => format!("{err} (this is a bug in weir)"),
                    _ => err.to_string(),
                };
                tracing::error!(pipeline = %self.name, "pipeline failed: {message}");
                PipelineExit::Failed { message, class }
            }
        };
        for message in self.deferred.drain(..) {
            if let Control::Swap { done, .. } = message {
                let _ = done.send(Err(SwapError::NotRunning));
            }
        }
        if let Some(tasks) = &self.source_tasks {
            tasks.close().await;
        }
        if !self.checkpoint.is_fenced() {
            self.monitor.set_status(match &exit {
                PipelineExit::Stopped => PipelineStatus::Stopped,
                PipelineExit::Finished => PipelineStatus::Finished,
                PipelineExit::Failed { message, .. } => PipelineStatus::Failed(message.clone()),
            });
        }
        exit
    }

    /// Puts each replacement in place of its stage if all fit; restores their state first.
    fn swap(&mut self, stages: Vec<(String, Box<dyn Operator>)>) -> Result<(), SwapError> {
        let mut placed = Vec::with_capacity(stages.len());
        for (id, operator) in stages {
            let Some(index) = self.stage_ids.iter().position(|s| *s == id) else {
                return Err(SwapError::UnknownStage {
                    id,
                    known: if self.stage_ids.is_empty() {
                        "none".into()
                    } else {
                        self.stage_ids.join(", ")
                    },
                });
            };
            let (expected, found) = (
                self.operators[index].output_schema(),
                operator.output_schema(),
            );
            if expected != found {
                return Err(SwapError::SchemaChanged {
                    id,
                    expected: schema_text(&expected),
                    found: schema_text(&found),
                });
            }
            placed.push((index, id, operator));
        }
        for (_, id, operator) in &mut placed {
            blocking(|| operator.restore()).map_err(|err| SwapError::Restore {
                id: id.clone(),
                message: err.message,
            })?;
        }
        for (index, id, operator) in placed {
            self.operators[index] = operator;
            tracing::info!(pipeline = %self.name, stage = %id, "stage swapped at a batch boundary");
        }
        // The replicas are copies of the old stages.
        self.lanes.reset();
        self.publish_plugin_costs();
        Ok(())
    }

    fn apply_control(&mut self, message: Control) -> Option<Waited> {
        match message {
            Control::Stop => Some(Waited::Stop),
            swap @ Control::Swap { .. } if self.in_batch => {
                // Waiting to retry a batch: the swap lands after it commits.
                self.deferred.push(swap);
                None
            }
            Control::Swap { stages, done } => {
                let result = self.swap(stages);
                if let Err(err) = &result {
                    tracing::warn!(pipeline = %self.name, "stage swap refused: {err}");
                }
                let _ = done.send(result);
                None
            }
        }
    }

    /// Applies the swaps that waited for the batch to commit.
    fn apply_deferred(&mut self) {
        for message in std::mem::take(&mut self.deferred) {
            let _ = self.apply_control(message);
        }
    }

    /// Applies queued control messages; true when asked to stop.
    fn drain_control(&mut self, control: &mut mpsc::UnboundedReceiver<Control>) -> bool {
        while let Ok(message) = control.try_recv() {
            if let Some(Waited::Stop) = self.apply_control(message) {
                return true;
            }
        }
        false
    }

    /// Waits for `wakeup` (capped, so clock jumps cannot strand the loop) or a stop.
    async fn wait(
        &mut self,
        wakeup: Wakeup,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Waited {
        const LONGEST_NAP: Duration = Duration::from_secs(1);
        // What the source says about itself (a full log, a lost peer) stays current while the
        // loop waits, at least once a nap.
        self.monitor.set_source_status(self.source.status());
        let nap = match &wakeup {
            Wakeup::At(at) => {
                let at_ms = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let left = at_ms.saturating_sub(self.clock.wall_ms()).max(0);
                Duration::from_millis(left as u64).min(LONGEST_NAP)
            }
            Wakeup::Poll(d) => (*d).min(LONGEST_NAP),
            Wakeup::Notified(_) | Wakeup::Never => LONGEST_NAP,
        };
        if nap.is_zero() {
            return Waited::Ready;
        }
        let notified = async {
            match &wakeup {
                Wakeup::Notified(n) => n.notified().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            message = control.recv() => match message {
                Some(message) => self.apply_control(message).unwrap_or(Waited::Ready),
                // Nobody can send any more; carry on until the source or trigger wakes us.
                None => { tokio::time::sleep(nap).await; Waited::Ready }
            },
            () = tokio::time::sleep(nap) => Waited::Ready,
            () = notified => Waited::Ready,
        }
    }

    async fn run_loop(
        &mut self,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<PipelineExit, BatchError> {
        let checkpoint = self.checkpoint.clone();
        let (committed, planned) = blocking(|| {
            Ok::<_, BatchError>((checkpoint.last_committed()?, checkpoint.last_planned()?))
        })?;
        // Stateful stages load what the checkpoint committed (here, in the pipeline's own
        // task, so a large state never holds up whoever started the pipeline).
        for op in &mut self.operators {
            blocking(|| op.restore())?;
        }
        let (mut next_id, mut start, mut watermark) = match &committed {
            Some(c) => (c.batch_id + 1, c.end.clone(), c.watermark_ms),
            None => (0, self.source.initial_offset()?, None),
        };
        let mut replay = planned.filter(|p| p.batch_id == next_id);
        match (&committed, &replay) {
            (None, None) => {
                tracing::info!(pipeline = %self.name, "starting with a fresh checkpoint")
            }
            (_, Some(r)) => {
                tracing::info!(pipeline = %self.name, batch = r.batch_id, "replaying batch {} (planned, not committed before the last stop)", r.batch_id)
            }
            (Some(c), None) => {
                tracing::info!(pipeline = %self.name, "resuming after batch {}", c.batch_id)
            }
        }
        if let Some(r) = &replay {
            start = r.start.clone();
        }
        if self.trigger == Trigger::AvailableNow {
            self.source.prepare_available_now();
        }
        let limit = if self.trigger == Trigger::Once {
            ReadLimit::AllAvailable
        } else {
            ReadLimit::SourceLimits
        };
        // Spark runs batch 0 of a new query even when it is empty; so do we.
        let mut must_run = committed.is_none();
        let mut previous_trigger: Option<Instant> = None;
        let mut next_tick_ms: Option<i64> = None;

        loop {
            // Back-to-back batches never wait on anything; yield so that the runtime's other
            // tasks (signals, other pipelines, the admin API) get their turn.
            tokio::task::yield_now().await;
            if self.drain_control(control) {
                return Ok(PipelineExit::Stopped);
            }
            if let Trigger::ProcessingTime(interval) = self.trigger {
                if let Some(tick) = next_tick_ms {
                    while self.clock.wall_ms() < tick {
                        self.monitor.set_status(PipelineStatus::Waiting);
                        let at = crate::sources::system_time_from_ms(tick);
                        if let Waited::Stop = self.wait(Wakeup::At(at), control).await {
                            return Ok(PipelineExit::Stopped);
                        }
                    }
                }
                next_tick_ms = Some(next_processing_time_tick(self.clock.wall_ms(), interval));
            }

            let trigger_start = Instant::now();
            let mut durations = Durations::default();
            let mut backlog = None;
            let mut known_end = None;
            let entry = match replay.take() {
                Some(entry) => entry,
                None => {
                    let t = Instant::now();
                    let latest: SourceOffset =
                        match blocking(|| self.source.latest_offset(&start, limit)) {
                            Ok(latest) => latest,
                            Err(err) => {
                                // A source that cannot reach its input now (a broker down) is
                                // waited for, as long as it takes; anything else ends the run.
                                let err = BatchError::from(err);
                                if !err.retryable() {
                                    return Err(err);
                                }
                                self.monitor.set_status(PipelineStatus::Waiting);
                                self.monitor.set_source_status(
                                    self.source.status().or_else(|| Some(err.to_string())),
                                );
                                let wakeup = self.source.wakeup(&start);
                                if let Waited::Stop = self.wait(wakeup, control).await {
                                    return Ok(PipelineExit::Stopped);
                                }
                                continue;
                            }
                        };
                    durations.latest_offset = millis(t);
                    backlog = self.source.backlog();
                    known_end = self.source.known_end();
                    let has_data = latest != start;
                    self.monitor.set_source_status(self.source.status());
                    let wanted = must_run
                        || self
                            .operators
                            .iter()
                            .any(|op| op.wants_no_data_batch(watermark));
                    if !has_data && !wanted {
                        match self.trigger {
                            Trigger::Once | Trigger::AvailableNow => {
                                return Ok(PipelineExit::Finished);
                            }
                            Trigger::ProcessingTime(_) => continue,
                            Trigger::BackToBack => {
                                self.monitor.set_status(PipelineStatus::Waiting);
                                self.monitor.set_source_status(self.source.status());
                                let wakeup = self.source.wakeup(&start);
                                if let Waited::Stop = self.wait(wakeup, control).await {
                                    return Ok(PipelineExit::Stopped);
                                }
                                continue;
                            }
                        }
                    }
                    let entry = OffsetsEntry {
                        batch_id: next_id,
                        start: start.clone(),
                        end: latest,
                        batch_timestamp_ms: self.clock.wall_ms(),
                        watermark_ms: watermark,
                    };
                    let t = Instant::now();
                    blocking(|| self.checkpoint.plan(&entry))?;
                    durations.wal_commit = millis(t);
                    entry
                }
            };
            must_run = false;
            self.monitor.set_status(PipelineStatus::Running);

            self.in_batch = true;
            let ran = self.run_with_retries(&entry, durations, control).await;
            self.in_batch = false;
            let Some((outcome, attempts)) = ran? else {
                return Ok(PipelineExit::Stopped);
            };
            self.apply_deferred();
            let elapsed_since_previous =
                previous_trigger.map_or(0.0, |p| p.elapsed().as_secs_f64());
            previous_trigger = Some(trigger_start);
            let mut durations = outcome.durations;
            durations.trigger_execution = millis(trigger_start);
            let progress = BatchProgress {
                name: self.name.clone(),
                batch_id: entry.batch_id,
                timestamp: rfc3339(entry.batch_timestamp_ms),
                num_input_rows: outcome.rows_in,
                input_rows_per_second: if elapsed_since_previous > 0.0 {
                    outcome.rows_in as f64 / elapsed_since_previous
                } else {
                    0.0
                },
                processed_rows_per_second: if durations.trigger_execution > 0.0 {
                    outcome.rows_in as f64 * 1000.0 / durations.trigger_execution
                } else {
                    0.0
                },
                num_output_rows: outcome.rows_out,
                duration_ms: durations,
                start_offset: entry.start.clone(),
                end_offset: entry.end.clone(),
                watermark_ms: entry.watermark_ms,
                attempts,
                num_malformed_skipped: outcome.malformed.skipped,
                num_malformed_dead_lettered: outcome.malformed.dead_lettered,
                state_operators: self
                    .operators
                    .iter()
                    .filter_map(|op| op.state_progress())
                    .collect(),
                source_backlog: backlog,
                state_disk_bytes: self.checkpoint.disk_bytes(),
                source_known_end: known_end,
            };
            tracing::debug!(
                pipeline = %self.name,
                batch = progress.batch_id,
                rows = progress.num_input_rows,
                start_offset = %progress.start_offset,
                end_offset = %progress.end_offset,
                input_rows_per_second = progress.input_rows_per_second,
                processed_rows_per_second = progress.processed_rows_per_second,
                duration_ms = progress.duration_ms.trigger_execution,
                malformed_skipped = progress.num_malformed_skipped,
                malformed_dead_lettered = progress.num_malformed_dead_lettered,
                state_rows = progress.state_operators.iter().map(|s| s.num_rows_total).sum::<u64>(),
                state_memory_bytes = progress.state_operators.iter().map(|s| s.memory_used_bytes).sum::<u64>(),
                late_rows = progress.state_operators.iter().map(|s| s.num_rows_dropped_by_watermark).sum::<u64>(),
                source_backlog = ?progress.source_backlog.as_ref().map(|b| b.amount),
                watermark_ms = progress.watermark_ms,
                "batch committed"
            );
            let interval = match self.trigger {
                Trigger::ProcessingTime(interval) => Some(interval),
                _ => None,
            };
            let notices = self.episodes.committed(
                Duration::from_secs_f64(progress.duration_ms.trigger_execution.max(0.0) / 1000.0),
                interval,
                progress.num_input_rows > 0,
                progress
                    .watermark_ms
                    .map(|w| entry.batch_timestamp_ms.saturating_sub(w)),
            );
            for notice in notices {
                self.log(notice, entry.batch_id);
            }
            self.monitor.record(progress);
            next_id = entry.batch_id + 1;
            start = entry.end;
            watermark = outcome.watermark_ms;
            if self.trigger == Trigger::Once {
                return Ok(PipelineExit::Finished);
            }
        }
    }

    /// Runs a planned batch until it commits, retrying retryable failures with backoff.
    /// `None` means a stop arrived while waiting to retry (the batch replays on the next start).
    async fn run_with_retries(
        &mut self,
        entry: &OffsetsEntry,
        durations: Durations,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<Option<(BatchOutcome, u32)>, BatchError> {
        let mut attempt = 1;
        let mut backoff = self.retry.first_backoff;
        loop {
            match blocking(|| self.run_batch(entry, durations.clone())) {
                Ok(outcome) => {
                    if let Some(notice) = self.episodes.batch_succeeded(attempt) {
                        self.log(notice, entry.batch_id);
                    }
                    return Ok(Some((outcome, attempt)));
                }
                Err(err) => {
                    for op in &mut self.operators {
                        op.abort_batch();
                    }
                    self.lanes.abort_batch();
                    if !err.retryable() || attempt >= self.retry.attempts {
                        return Err(err);
                    }
                    let notice = self
                        .episodes
                        .attempt_failed(attempt, &err.to_string(), backoff);
                    self.log(notice, entry.batch_id);
                    self.monitor
                        .set_status(PipelineStatus::Retrying(err.to_string()));
                    // Monotonic: a wall clock stepped back must not stretch the wait.
                    let until = tokio::time::Instant::now() + backoff;
                    loop {
                        let left = until.saturating_duration_since(tokio::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        if let Waited::Stop = self.wait(Wakeup::Poll(left), control).await {
                            return Ok(None);
                        }
                    }
                    attempt += 1;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                }
            }
        }
    }

    /// Logs an episode's notice with the pipeline and batch as fields.
    fn log(&self, notice: super::episodes::Notice, batch: u64) {
        use super::episodes::Notice;
        match notice {
            Notice::Warn(m) => tracing::warn!(pipeline = %self.name, batch, "{m}"),
            Notice::Info(m) => tracing::info!(pipeline = %self.name, batch, "{m}"),
            Notice::Debug(m) => tracing::debug!(pipeline = %self.name, batch, "{m}"),
        }
    }

    /// One attempt at a batch: read, operators, sinks, commit. Synchronous.
    fn run_batch(
        &mut self,
        entry: &OffsetsEntry,
        mut durations: Durations,
    ) -> Result<BatchOutcome, BatchError> {
        let ctx = BatchContext {
            batch_id: entry.batch_id,
            batch_timestamp_ms: entry.batch_timestamp_ms,
            watermark_ms: entry.watermark_ms,
        };
        // A generator's chunks are made on the lanes (as Spark's `getBatch` plans and its
        // execution makes the rows): their making is then in `process`, not `get_batch`.
        let t = Instant::now();
        let chunks = self.source.read_chunks(&entry.start, &entry.end)?;
        durations.get_batch = millis(t);
        let malformed = self.source.malformed();
        let rows_in: usize = chunks.iter().map(Chunk::rows).sum();

        let t = Instant::now();
        let mut data = self.lanes.run(&mut self.operators, chunks, &ctx)?;
        data.retain(|b| b.num_rows() > 0);
        durations.process = millis(t);

        let t = Instant::now();
        let schema = self.output_schema();
        for (index, (kind, sink)) in self.sinks.iter_mut().enumerate() {
            sink.write_batch(entry.batch_id, &schema, &data)
                .map_err(|source| BatchError::Sink {
                    index: index + 1,
                    kind,
                    source,
                })?;
        }
        durations.add_batch = millis(t);

        let t = Instant::now();
        let mut changes = WriteSet::default();
        for op in &mut self.operators {
            op.prepare_commit(&mut changes)?;
        }
        let watermark_ms = self
            .operators
            .iter()
            .filter_map(|op| op.next_watermark())
            .min()
            .or(entry.watermark_ms);
        self.checkpoint.commit(
            &CommitEntry {
                batch_id: entry.batch_id,
                end: entry.end.clone(),
                watermark_ms,
                committed_at_ms: self.clock.wall_ms(),
            },
            changes,
        )?;
        durations.commit_offsets = millis(t);
        // From here on the batch is committed: nothing may fail it (a failure would run it
        // again and count it twice). Cleaning up after it is best effort; a source that
        // could not trim its log now trims below the next batch's start later.
        for op in &mut self.operators {
            op.committed();
        }
        if let Err(err) = self.source.committed(&entry.end) {
            tracing::warn!(
                pipeline = %self.name,
                batch = entry.batch_id,
                "cleaning up after committed batch {} failed (will be tried again after a later batch): {err}",
                entry.batch_id
            );
        }

        Ok(BatchOutcome {
            rows_in: rows_in as u64,
            malformed,
            rows_out: data.iter().map(|b| b.num_rows() as u64).sum(),
            watermark_ms,
            durations,
        })
    }
}
