//! Per-batch progress (the analogue of Spark's `StreamingQueryProgress`) and the live status of a
//! pipeline, kept for the status API and logged at debug level.

use super::metrics::PipelineMetrics;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many recent batches a monitor keeps.
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
    /// Number of batches committed since start, for waiters.
    committed: tokio::sync::watch::Sender<u64>,
    /// Cumulative figures for `/metrics`.
    metrics: Arc<PipelineMetrics>,
}

impl PipelineMonitor {
    /// A monitor for a pipeline that is starting.
    pub fn new(name: &str) -> PipelineMonitor {
        Self::with_metrics(name, Arc::default())
    }

    /// A monitor that counts into `metrics`.
    pub fn with_metrics(name: &str, metrics: Arc<PipelineMetrics>) -> PipelineMonitor {
        PipelineMonitor {
            name: name.to_string(),
            status: Mutex::new(PipelineStatus::Starting),
            source_status: Mutex::new(None),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_BATCHES)),
            committed: tokio::sync::watch::Sender::new(0),
            metrics,
        }
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
        if recent.len() == RECENT_BATCHES {
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
