//! Per-batch progress (the analogue of Spark's `StreamingQueryProgress`) and the live status of a
//! pipeline, kept for the status API and logged at debug level.

use super::metrics::PipelineMetrics;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many recent batches a monitor keeps unless told otherwise (`progress_history`).
pub const RECENT_BATCHES: usize = 100;

/// Time spent per phase of a batch, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    /// Asking the source for its latest offset.
    pub latest_offset: f64,
    /// Writing the plan to the offsets log.
    pub wal_commit: f64,
    /// Reading the rows.
    pub get_batch: f64,
    /// Running the operators.
    pub process: f64,
    /// Writing to the sinks.
    pub add_batch: f64,
    /// The atomic commit.
    pub commit_offsets: f64,
    /// All of the batch.
    pub trigger_execution: f64,
}

/// What a stateful operator holds and did in one batch (Spark's `stateOperators[]`, with the
/// batch's event-time statistics).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateOperatorProgress {
    /// Groups (windows × keys) held after the batch.
    pub num_rows_total: u64,
    /// Of those, the groups held in memory; the others are only in the store (spilled).
    pub num_rows_in_memory: u64,
    /// Groups changed by the batch.
    pub num_rows_updated: u64,
    /// Groups evicted by the watermark.
    pub num_rows_removed: u64,
    /// Input rows (per window they fall in) dropped as late, or without an event time.
    pub num_rows_dropped_by_watermark: u64,
    /// Approximate memory held by the state, in bytes.
    pub memory_used_bytes: u64,
    /// Smallest event time in the batch, ms.
    pub event_time_min_ms: Option<i64>,
    /// Largest event time in the batch, ms.
    pub event_time_max_ms: Option<i64>,
    /// Mean event time in the batch, ms.
    pub event_time_avg_ms: Option<i64>,
}

/// What one batch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchProgress {
    /// Pipeline name.
    pub name: String,
    /// Batch id.
    pub batch_id: u64,
    /// When the batch was planned (RFC 3339).
    pub timestamp: String,
    /// Rows read from the source.
    pub num_input_rows: u64,
    /// Rows read per second of wall time since the previous batch started.
    pub input_rows_per_second: f64,
    /// Rows read per second of this batch's duration.
    pub processed_rows_per_second: f64,
    /// Rows written to each sink.
    pub num_output_rows: u64,
    /// Phase durations.
    pub duration_ms: Durations,
    /// Source offset the batch started at.
    pub start_offset: serde_json::Value,
    /// Source offset it ended at.
    pub end_offset: serde_json::Value,
    /// Watermark in force, ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// Attempts it took (1 when nothing failed).
    pub attempts: u32,
    /// Malformed input records the source dropped (`on_error = "skip"`).
    pub num_malformed_skipped: u64,
    /// Malformed input records the source wrote to its dead-letter folder.
    pub num_malformed_dead_lettered: u64,
    /// Stateful operators' figures.
    pub state_operators: Vec<StateOperatorProgress>,
    /// What the source had found beyond this batch's end when it was planned.
    #[serde(default)]
    pub source_backlog: Option<crate::sources::Backlog>,
    /// Approximate bytes the pipeline's keys take in the state store's files on disk after the
    /// commit (checkpoint, aggregation state, source logs; the last writes, still in memory,
    /// not yet).
    #[serde(default)]
    pub state_disk_bytes: Option<u64>,
    /// How far a run with a known end has come (files of an `available_now` file run, rows of
    /// a bounded generator).
    #[serde(default)]
    pub source_known_end: Option<crate::sources::KnownEnd>,
}

/// What a progress report names besides the batch: Spark's query `id` (the checkpoint's id,
/// kept until a state reset) and `runId` (new at every start), and the source and sinks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryIdentity {
    /// The checkpoint's id.
    pub id: String,
    /// This run's id.
    pub run_id: String,
    /// The source, as `kind` (Spark's `sources[].description`).
    pub source: String,
    /// Each sink's kind, in order.
    pub sinks: Vec<String>,
}

/// A new run id, shaped like Spark's (a UUID's 8-4-4-4-12 hex digits).
pub fn new_run_id(pipeline: &str) -> String {
    use std::hash::BuildHasher;
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        // A fresh RandomState has its own random keys.
        *half = std::collections::hash_map::RandomState::new().hash_one((
            pipeline,
            i,
            std::time::SystemTime::now(),
            std::process::id(),
        ));
    }
    let hex = format!("{:016x}{:016x}", halves[0], halves[1]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Where a pipeline is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum PipelineStatus {
    /// Recovering its checkpoint.
    Starting,
    /// Running a batch.
    Running,
    /// Waiting for its trigger or for data.
    Waiting,
    /// A batch failed and will be tried again.
    Retrying(String),
    /// Stopped on request.
    Stopped,
    /// Stopped without waiting any longer for a stuck batch: that batch was not committed and
    /// is replayed by the next run.
    Abandoned,
    /// Ran out of input (`once`, `available_now`).
    Finished,
    /// Gave up; the message says why.
    Failed(String),
}

/// A monitor's lock, whether or not a thread panicked while holding it: its values are plain
/// data, always whole, so the status after a panic is the last one set (not a made-up one).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Shared view of a running pipeline.
#[derive(Debug)]
pub struct PipelineMonitor {
    /// Pipeline name.
    pub name: String,
    status: Mutex<PipelineStatus>,
    /// What the source says about itself ("waiting for peer ..."), refreshed by the loop.
    source_status: Mutex<Option<String>>,
    recent: Mutex<VecDeque<BatchProgress>>,
    /// How many batches `recent` keeps.
    history: usize,
    /// Number of batches committed since start, for waiters.
    committed: tokio::sync::watch::Sender<u64>,
    /// Cumulative figures for `/metrics`.
    metrics: Arc<PipelineMetrics>,
    /// What its progress reports name.
    identity: Mutex<QueryIdentity>,
    /// The monitor of the pipeline that feeds this one (a repartition topic's writer), while
    /// it runs.
    feeder: Mutex<Option<Arc<PipelineMonitor>>>,
}

impl PipelineMonitor {
    /// A monitor for a pipeline that is starting.
    pub fn new(name: &str) -> PipelineMonitor {
        Self::with_metrics(name, Arc::default(), RECENT_BATCHES)
    }

    /// A monitor that counts into `metrics` and keeps the progress of the last `history`
    /// batches.
    pub fn with_metrics(
        name: &str,
        metrics: Arc<PipelineMetrics>,
        history: usize,
    ) -> PipelineMonitor {
        let history = history.max(1);
        PipelineMonitor {
            name: name.to_string(),
            status: Mutex::new(PipelineStatus::Starting),
            source_status: Mutex::new(None),
            recent: Mutex::new(VecDeque::with_capacity(history.min(RECENT_BATCHES))),
            history,
            committed: tokio::sync::watch::Sender::new(0),
            metrics,
            identity: Mutex::new(QueryIdentity::default()),
            feeder: Mutex::new(None),
        }
    }

    /// The monitor of the pipeline feeding this one, if one runs beside it.
    pub fn feeder(&self) -> Option<Arc<PipelineMonitor>> {
        lock(&self.feeder).clone()
    }

    /// Shows (or, with `None`, stops showing) the pipeline feeding this one.
    pub fn set_feeder(&self, feeder: Option<Arc<PipelineMonitor>>) {
        *lock(&self.feeder) = feeder;
    }

    /// What its progress reports name.
    pub fn identity(&self) -> QueryIdentity {
        lock(&self.identity).clone()
    }

    /// Sets what its progress reports name.
    pub fn set_identity(&self, identity: QueryIdentity) {
        *lock(&self.identity) = identity;
    }

    /// The cumulative figures it counts into.
    pub fn metrics(&self) -> Arc<PipelineMetrics> {
        self.metrics.clone()
    }

    /// The current status.
    pub fn status(&self) -> PipelineStatus {
        lock(&self.status).clone()
    }

    /// Sets the status.
    pub fn set_status(&self, status: PipelineStatus) {
        *lock(&self.status) = status;
    }

    /// The source's own status line, if it has one (e.g. "waiting for peer localhost:9999").
    pub fn source_status(&self) -> Option<String> {
        lock(&self.source_status).clone()
    }

    /// Sets the source's status line.
    pub fn set_source_status(&self, status: Option<String>) {
        *lock(&self.source_status) = status;
    }

    /// Records a finished batch.
    pub fn record(&self, progress: BatchProgress) {
        self.metrics.observe(&progress, crate::sources::now_ms());
        let mut recent = lock(&self.recent);
        while recent.len() >= self.history {
            recent.pop_front();
        }
        recent.push_back(progress);
        drop(recent);
        self.committed.send_modify(|n| *n += 1);
    }

    /// Watches how many batches this run has committed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Waits until this run has committed at least `count` batches, or `deadline` passes.
    pub async fn wait_for_batches(&self, count: u64, deadline: std::time::Duration) -> bool {
        let mut rx = self.subscribe();
        matches!(
            tokio::time::timeout(deadline, rx.wait_for(|n| *n >= count)).await,
            Ok(Ok(_))
        )
    }

    /// The most recent batches, oldest first.
    pub fn recent(&self) -> Vec<BatchProgress> {
        lock(&self.recent).iter().cloned().collect()
    }

    /// The latest batch.
    pub fn last(&self) -> Option<BatchProgress> {
        lock(&self.recent).back().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitor_keeps_the_progress_of_its_last_history_batches() {
        let monitor = PipelineMonitor::with_metrics("p", Arc::default(), 2);
        for batch_id in 0..5 {
            monitor.record(BatchProgress {
                name: "p".into(),
                batch_id,
                timestamp: String::new(),
                num_input_rows: 1,
                input_rows_per_second: 0.0,
                processed_rows_per_second: 0.0,
                num_output_rows: 0,
                duration_ms: Durations::default(),
                start_offset: serde_json::Value::Null,
                end_offset: serde_json::Value::Null,
                watermark_ms: None,
                attempts: 1,
                num_malformed_skipped: 0,
                num_malformed_dead_lettered: 0,
                state_operators: Vec::new(),
                source_backlog: None,
                state_disk_bytes: None,
                source_known_end: None,
            });
        }
        let kept: Vec<u64> = monitor.recent().iter().map(|p| p.batch_id).collect();
        assert_eq!(kept, vec![3, 4]);
        assert_eq!(monitor.metrics().batches.get(), 5);
    }

    #[test]
    fn a_panic_while_holding_the_status_lock_leaves_the_last_status_readable() {
        let monitor = std::sync::Arc::new(PipelineMonitor::new("p"));
        monitor.set_status(PipelineStatus::Failed("disk full".into()));
        let holder = monitor.clone();
        let poisoned = std::thread::spawn(move || {
            let _guard = holder.status.lock();
            panic!("a bug while holding the lock");
        })
        .join();
        assert!(poisoned.is_err());
        assert!(monitor.status.is_poisoned());
        assert_eq!(monitor.status(), PipelineStatus::Failed("disk full".into()));
        monitor.set_status(PipelineStatus::Running);
        assert_eq!(monitor.status(), PipelineStatus::Running);
    }
}
