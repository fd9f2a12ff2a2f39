//! What the daemon knows about its pipelines, shared with whoever asks: `weir status`, the
//! HTTP API, the sd_notify status line. Runners write their pipeline's entry; readers take
//! snapshots without going through the supervisor, so status answers while a reload is busy.

use crate::engine::{
    BatchProgress, PipelineMetrics, PipelineMonitor, PipelineStatus, PluginCostReport,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// How many recent errors an entry keeps.
const RECENT_ERRORS: usize = 10;

/// Where a pipeline is in its life under the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RunState {
    /// Being opened.
    Starting,
    /// Its loop runs (the engine's status says whether it is waiting, running or retrying).
    Running,
    /// Failed; starts again at `at_ms` (attempt `attempt`).
    Restarting {
        /// When, ms since the epoch.
        at_ms: i64,
        /// Restarts in a row so far.
        attempt: u32,
        /// The failure.
        reason: String,
    },
    /// Failed and stays failed until its file or plugins change (or `weir start`).
    Failed {
        /// Why.
        message: String,
        /// Whose fault: `user`, `external`, `internal`.
        class: crate::engine::ErrorClass,
    },
    /// Its trigger ran out of input.
    Finished,
    /// Stopped on request, removed, or shut down.
    Stopped {
        /// `request` (`weir stop`), `removed` (its file is gone), `shutdown`.
        by: String,
        /// The batch in flight did not finish in time and was abandoned uncommitted; it is
        /// replayed by the next run.
        abandoned_batch: bool,
    },
}

/// A change that was not applied (the running version, if any, keeps running).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// `rejected` or `needs_state_reset`.
    pub kind: String,
    /// The first error's `file:line:column`, when it has one.
    pub position: Option<String>,
    /// The whole message (every error, with snippets).
    pub message: String,
}

/// A plugin a pipeline runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginVersion {
    /// Name (file stem).
    pub name: String,
    /// The version its package declares.
    pub version: String,
    /// SHA-256 of the file (hex).
    pub sha256: String,
}

/// An error a pipeline met, with when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// What.
    pub message: String,
}

/// One pipeline's entry, as runners update it.
#[derive(Debug, Clone)]
pub struct EntryState {
    /// The file the running version came from.
    pub file: PathBuf,
    /// Lifecycle state.
    pub run: RunState,
    /// The current run's monitor (progress, engine status).
    pub monitor: Option<Arc<PipelineMonitor>>,
    /// Cumulative figures for `/metrics`, kept across the pipeline's runs.
    pub metrics: Arc<PipelineMetrics>,
    /// The plugins the running version uses.
    pub plugins: Vec<PluginVersion>,
    /// Versions applied since the daemon started (1 = the first).
    pub generation: u64,
    /// Restarts after failures since the daemon started.
    pub restarts: u64,
    /// A newer version of the file that was not applied.
    pub pending: Option<Pending>,
    /// Remarks (a plugin file it runs on was removed...).
    pub notes: Vec<String>,
    /// The last errors, oldest first.
    pub errors: VecDeque<ErrorRecord>,
}

/// A pipeline's entry.
#[derive(Debug)]
pub struct PipelineEntry {
    /// Its name.
    pub name: String,
    state: Mutex<EntryState>,
    changed: Arc<tokio::sync::Notify>,
}

impl PipelineEntry {
    /// The current state.
    pub fn snapshot(&self) -> EntryState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the state and wakes whoever watches the registry.
    pub fn update(&self, change: impl FnOnce(&mut EntryState)) {
        change(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.notify_one();
    }

    /// Records an error.
    pub fn record_error(&self, message: &str) {
        self.update(|s| {
            if s.errors.len() == RECENT_ERRORS {
                s.errors.pop_front();
            }
            s.errors.push_back(ErrorRecord {
                at_ms: crate::sources::now_ms(),
                message: message.to_string(),
            });
        });
    }
}

/// A pipeline file that was rejected and has no running pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedFile {
    /// The pipeline it declares, if that much could be read.
    pub name: Option<String>,
    /// The file.
    pub file: PathBuf,
    /// What was wrong.
    pub pending: Pending,
}

/// A plugin file in the plugins folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginFileStatus {
    /// Name (file stem).
    pub name: String,
    /// SHA-256 (hex).
    pub sha256: String,
    /// `transform` or `aggregate` once loaded.
    pub kind: Option<String>,
    /// The version its package declares, once loaded.
    pub version: Option<String>,
    /// Why it cannot be loaded.
    pub error: Option<String>,
    /// The file's size, bytes (0 when it cannot be read).
    #[serde(default)]
    pub size: u64,
    /// How long loading it took (compiling, or reading the compile cache), once loaded.
    #[serde(default)]
    pub compile_ms: Option<u64>,
    /// While it compiles (in the background): since when (Unix milliseconds).
    #[serde(default)]
    pub compiling_since_ms: Option<i64>,
}

/// Everything the status API shows.
#[derive(Debug, Default)]
pub struct Registry {
    pipelines: RwLock<BTreeMap<String, Arc<PipelineEntry>>>,
    /// What the reload under way was caused by, while one is.
    reloading: RwLock<Option<String>>,
    rejected: RwLock<Vec<RejectedFile>>,
    plugins: RwLock<Vec<PluginFileStatus>>,
    changed: Arc<tokio::sync::Notify>,
    reloads: ReloadCounters,
}

/// What reloads have done since the daemon started, for `/metrics`.
#[derive(Debug, Default)]
pub struct ReloadCounters {
    /// Reload passes (start-up, file changes, SIGHUP, `weir reload`).
    pub passes: std::sync::atomic::AtomicU64,
    /// Pipelines started, replaced or stopped by them.
    pub applied: std::sync::atomic::AtomicU64,
    /// Files or versions they did not apply.
    pub rejected: std::sync::atomic::AtomicU64,
}

impl Registry {
    /// Counts a reload pass that applied `applied` changes and rejected `rejected`.
    pub fn record_reload(&self, applied: usize, rejected: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.reloads.passes.fetch_add(1, Relaxed);
        self.reloads.applied.fetch_add(applied as u64, Relaxed);
        self.reloads.rejected.fetch_add(rejected as u64, Relaxed);
    }

    /// What reloads have done so far.
    pub fn reloads(&self) -> &ReloadCounters {
        &self.reloads
    }

    /// A new entry for `name` (replacing any previous one).
    pub fn insert(&self, name: &str, state: EntryState) -> Arc<PipelineEntry> {
        let entry = Arc::new(PipelineEntry {
            name: name.to_string(),
            state: Mutex::new(state),
            changed: self.changed.clone(),
        });
        self.pipelines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), entry.clone());
        self.changed.notify_one();
        entry
    }

    /// Forgets a pipeline.
    pub fn remove(&self, name: &str) {
        self.pipelines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.changed.notify_one();
    }

    /// One pipeline's entry.
    pub fn get(&self, name: &str) -> Option<Arc<PipelineEntry>> {
        self.pipelines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every pipeline's entry, by name.
    pub fn entries(&self) -> Vec<Arc<PipelineEntry>> {
        self.pipelines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Replaces the list of rejected files without a pipeline.
    pub fn set_rejected(&self, files: Vec<RejectedFile>) {
        *self.rejected.write().unwrap_or_else(|e| e.into_inner()) = files;
        self.changed.notify_one();
    }

    /// Rejected files without a pipeline.
    pub fn rejected(&self) -> Vec<RejectedFile> {
        self.rejected
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the plugins folder's listing.
    pub fn set_plugins(&self, plugins: Vec<PluginFileStatus>) {
        *self.plugins.write().unwrap_or_else(|e| e.into_inner()) = plugins;
    }

    /// The plugins folder's listing.
    pub fn plugins(&self) -> Vec<PluginFileStatus> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Marks a reload as under way (with its cause), or over (`None`).
    pub fn set_reloading(&self, cause: Option<&str>) {
        *self.reloading.write().unwrap_or_else(|e| e.into_inner()) = cause.map(str::to_string);
    }

    /// Woken whenever an entry changes.
    pub fn changed(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Counts for the one-line summary: `4 running, 1 failed, 1 rejected`.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for entry in self.entries() {
            let state = entry.snapshot();
            match state.run {
                RunState::Starting | RunState::Running => counts.running += 1,
                RunState::Restarting { .. } => counts.restarting += 1,
                RunState::Failed { .. } => counts.failed += 1,
                RunState::Finished => counts.finished += 1,
                RunState::Stopped { .. } => counts.stopped += 1,
            }
            match &state.pending {
                Some(p) if p.kind == super::PENDING_COMPILING => counts.waiting += 1,
                Some(_) => counts.rejected += 1,
                None => {}
            }
        }
        for file in self.rejected() {
            if file.pending.kind == super::PENDING_COMPILING {
                counts.waiting += 1;
            } else {
                counts.rejected += 1;
            }
        }
        counts
    }
}

/// How many pipelines are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Running (or starting).
    pub running: usize,
    /// Waiting to restart.
    pub restarting: usize,
    /// Failed.
    pub failed: usize,
    /// Finished.
    pub finished: usize,
    /// Stopped.
    pub stopped: usize,
    /// Files (or new versions) rejected or needing a state reset.
    pub rejected: usize,
    /// Files (or new versions) waiting for their plugins to compile.
    #[serde(default)]
    pub waiting: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![format!("{} running", self.running)];
        for (n, what) in [
            (self.restarting, "restarting"),
            (self.failed, "failed"),
            (self.finished, "finished"),
            (self.stopped, "stopped"),
            (self.rejected, "rejected"),
            (self.waiting, "waiting for plugins to compile"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        f.write_str(&parts.join(", "))
    }
}

/// One pipeline as the status API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineReport {
    /// Name.
    pub name: String,
    /// File.
    pub file: PathBuf,
    /// Lifecycle state.
    #[serde(flatten)]
    pub run: RunState,
    /// The engine's own status of the current run (waiting, running, retrying ...).
    pub engine: Option<PipelineStatus>,
    /// What the source says about itself.
    pub source_status: Option<String>,
    /// Batches committed by the current run.
    pub batches: u64,
    /// The newest batch.
    pub last_batch: Option<BatchProgress>,
    /// Rows read from the source since the daemon started (all runs).
    #[serde(default)]
    pub input_rows_total: u64,
    /// Rows that reached the sinks since the daemon started (all runs).
    #[serde(default)]
    pub output_rows_total: u64,
    /// The plugins it runs on.
    pub plugins: Vec<PluginVersion>,
    /// Versions applied since the daemon started.
    pub generation: u64,
    /// Restarts after failures since the daemon started.
    pub restarts: u64,
    /// A newer version that was not applied.
    pub pending: Option<Pending>,
    /// Remarks.
    pub notes: Vec<String>,
    /// The last errors.
    pub errors: Vec<ErrorRecord>,
    /// Recent batches, oldest first (only when one pipeline is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent: Option<Vec<BatchProgress>>,
    /// What each plugin stage costs (since the stage was built).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugin_costs: Vec<PluginCostReport>,
    /// The pipeline feeding this one (a repartition topic's writer), if one runs beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feeder: Option<FeederReport>,
    /// The aggregation's tasks on this daemon (shared partitions), as of the last batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<crate::engine::TaskFigures>,
}

/// The pipeline that runs beside another and feeds it (`<pipeline>/repartition`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeederReport {
    /// Its name.
    pub name: String,
    /// The engine's status of its run.
    pub engine: PipelineStatus,
    /// What its source says about itself (the input partitions this daemon writes).
    pub source_status: Option<String>,
    /// Batches it committed in this run.
    pub batches: u64,
    /// Its newest batch.
    pub last_batch: Option<BatchProgress>,
}

impl FeederReport {
    fn of(monitor: &crate::engine::PipelineMonitor) -> FeederReport {
        FeederReport {
            name: monitor.name.clone(),
            engine: monitor.status(),
            source_status: monitor.source_status(),
            batches: *monitor.subscribe().borrow(),
            last_batch: monitor.last(),
        }
    }
}

impl PipelineEntry {
    /// The entry as the status API shows it; with `recent`, the recent batches too.
    pub fn report(&self, recent: bool) -> PipelineReport {
        let state = self.snapshot();
        let monitor = state.monitor.as_ref();
        PipelineReport {
            name: self.name.clone(),
            file: state.file,
            run: state.run,
            engine: monitor.map(|m| m.status()),
            // A restore holds up its batch: said instead of the source's line meanwhile.
            source_status: monitor
                .and_then(|m| m.metrics().restoring().or_else(|| m.source_status())),
            batches: monitor.map_or(0, |m| *m.subscribe().borrow()),
            last_batch: monitor.and_then(|m| m.last()),
            input_rows_total: state.metrics.input_rows.get(),
            output_rows_total: state.metrics.output_rows.get(),
            plugins: state.plugins,
            generation: state.generation,
            restarts: state.restarts,
            pending: state.pending,
            notes: state.notes,
            errors: state.errors.into_iter().collect(),
            recent: if recent {
                monitor.map(|m| m.recent())
            } else {
                None
            },
            plugin_costs: state
                .metrics
                .plugins()
                .iter()
                .map(|(stage, costs)| costs.report(stage))
                .collect(),
            feeder: monitor
                .and_then(|m| m.feeder())
                .map(|f| FeederReport::of(&f)),
            tasks: state.metrics.tasks(),
        }
    }
}

/// Everything, as `weir status` and `GET /pipelines` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// Every pipeline.
    pub pipelines: Vec<PipelineReport>,
    /// Rejected files without a pipeline.
    pub rejected_files: Vec<RejectedFile>,
    /// The plugins folder.
    pub plugins: Vec<PluginFileStatus>,
    /// Counts by state.
    pub counts: Counts,
    /// What the reload under way was caused by, while the daemon is busy with one.
    #[serde(default)]
    pub reloading: Option<String>,
}

impl Registry {
    /// The whole status.
    pub fn report(&self) -> StatusReport {
        StatusReport {
            pipelines: self.entries().iter().map(|e| e.report(false)).collect(),
            rejected_files: self.rejected(),
            plugins: self.plugins(),
            counts: self.counts(),
            reloading: self
                .reloading
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
