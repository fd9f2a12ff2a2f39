//! A pipeline's cumulative figures for `GET /metrics`: counters and histograms fed by each
//! committed batch's progress, kept by the pipeline's registry entry so that they survive the
//! pipeline's restarts and hot reloads (Prometheus sees one counter per pipeline, not one per
//! run). Updating them is a few atomic additions per batch, never per row.

use super::progress::BatchProgress;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The upper bounds (seconds) of the batch and phase duration histograms: from a millisecond
/// (an idle micro-batch) to a minute (a large catch-up batch).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// The phases of a batch, as the `phase` label names them.
pub const PHASES: [&str; 5] = ["plan", "read", "process", "sinks", "commit"];

/// Ways a plugin call fails, as the `kind` label names them.
pub const FAILURE_KINDS: [&str; 5] = [
    "trap",
    "deadline",
    "out_of_memory",
    "plugin_error",
    "bad_output",
];

/// What one plugin stage costs (no stream processor we know of shows this): calls, their wall
/// and CPU time, rows through it, its instance's linear memory against its limit, failures by
/// kind. Updated once per call (a call per chunk, never per row).
#[derive(Debug)]
pub struct PluginCosts {
    /// The plugin's name.
    pub plugin: String,
    /// Calls made.
    pub calls: Counter,
    /// Each call's wall time, seconds.
    pub call_duration: Histogram,
    /// Wall time spent in calls, seconds.
    pub call_seconds: Counter<f64, AtomicU64>,
    /// CPU time spent in calls (the calling thread's), seconds.
    pub cpu_seconds: Counter<f64, AtomicU64>,
    /// Rows handed to it.
    pub rows_in: Counter,
    /// Rows it returned.
    pub rows_out: Counter,
    /// Fresh instances made (the first, and one after each failure).
    pub instances: Counter,
    /// Failed calls, in [`FAILURE_KINDS`] order.
    pub failures: [Counter; 5],
    memory_high_water: AtomicU64,
    memory_limit: AtomicU64,
}

impl PluginCosts {
    /// Costs of `plugin`, whose instances may grow to `memory_limit` bytes.
    pub fn new(plugin: &str, memory_limit: u64) -> PluginCosts {
        PluginCosts {
            plugin: plugin.to_string(),
            calls: Counter::default(),
            call_duration: Histogram::new(DURATION_BUCKETS),
            call_seconds: Counter::default(),
            cpu_seconds: Counter::default(),
            rows_in: Counter::default(),
            rows_out: Counter::default(),
            instances: Counter::default(),
            failures: Default::default(),
            memory_high_water: AtomicU64::new(0),
            memory_limit: AtomicU64::new(memory_limit),
        }
    }

    /// Notes that an instance's linear memory has reached `bytes`.
    pub fn memory_reached(&self, bytes: u64) {
        self.memory_high_water.fetch_max(bytes, Ordering::Relaxed);
    }

    /// The most linear memory any of its instances has had, bytes.
    pub fn memory_high_water(&self) -> u64 {
        self.memory_high_water.load(Ordering::Relaxed)
    }

    /// The memory limit of its instances, bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit.load(Ordering::Relaxed)
    }

    /// Its figures as `weir status NAME` shows them.
    pub fn report(&self, stage: &str) -> PluginCostReport {
        PluginCostReport {
            stage: stage.to_string(),
            plugin: self.plugin.clone(),
            calls: self.calls.get(),
            rows_in: self.rows_in.get(),
            rows_out: self.rows_out.get(),
            call_seconds: self.call_seconds.get(),
            cpu_seconds: self.cpu_seconds.get(),
            instances: self.instances.get(),
            memory_high_water_bytes: self.memory_high_water(),
            memory_limit_bytes: self.memory_limit(),
            failures: FAILURE_KINDS
                .iter()
                .zip(&self.failures)
                .filter(|(_, n)| n.get() > 0)
                .map(|(kind, n)| (kind.to_string(), n.get()))
                .collect(),
        }
    }

    /// Counts a failed call of `kind` (one of [`FAILURE_KINDS`]).
    pub fn failed(&self, kind: &str) {
        if let Some(i) = FAILURE_KINDS.iter().position(|k| *k == kind) {
            self.failures[i].inc();
        }
    }
}

/// A plugin stage's costs in the status API.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PluginCostReport {
    /// The stage (`transform #1`).
    pub stage: String,
    /// The plugin.
    pub plugin: String,
    /// Calls made.
    pub calls: u64,
    /// Rows handed to it.
    pub rows_in: u64,
    /// Rows it returned.
    pub rows_out: u64,
    /// Wall time in calls, seconds.
    pub call_seconds: f64,
    /// CPU time in calls, seconds.
    pub cpu_seconds: f64,
    /// Instances made.
    pub instances: u64,
    /// Most linear memory an instance had, bytes.
    pub memory_high_water_bytes: u64,
    /// The memory limit, bytes.
    pub memory_limit_bytes: u64,
    /// Failed calls by kind (only kinds that happened).
    pub failures: std::collections::BTreeMap<String, u64>,
}

/// The last committed batch's point-in-time figures (gauges).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastBatch {
    /// What the source had found beyond the batch's end.
    pub source_backlog: Option<crate::sources::Backlog>,
    /// Rows read per second of wall time since the previous batch started.
    pub input_rows_per_second: f64,
    /// Rows read per second of the batch's own duration.
    pub processed_rows_per_second: f64,
    /// The watermark after the batch, ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// Groups held by the aggregation, and of those, in memory.
    pub state_groups: Option<(u64, u64)>,
    /// Approximate bytes of aggregation state in memory.
    pub state_memory_bytes: u64,
    /// When it committed, ms since the epoch.
    pub committed_at_ms: i64,
    /// Approximate bytes of the pipeline's keys in the store's files on disk.
    pub state_disk_bytes: Option<u64>,
}

/// One task of an aggregation on shared partitions, after the last batch it finished.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskFigures {
    /// Its partition, `topic/partition`.
    pub partition: String,
    /// Groups (window × key) in its state, in memory or spilled.
    pub groups: u64,
    /// Approximate bytes of its state in memory.
    pub memory_bytes: u64,
    /// Its watermark, ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// Whether it has had no rows for `idle_timeout` (its watermark follows the others').
    pub idle: bool,
}

/// One pipeline's counters and histograms.
#[derive(Debug)]
pub struct PipelineMetrics {
    /// Rows read from the source.
    pub input_rows: Counter,
    /// Rows written to the sinks (each sink's rows counted once: the rows leaving the last
    /// stage).
    pub output_rows: Counter,
    /// Batches committed.
    pub batches: Counter,
    /// Batch attempts that failed and were tried again.
    pub batch_retries: Counter,
    /// Input rows dropped by the aggregation as late (behind the watermark).
    pub late_rows: Counter,
    /// Malformed records skipped (`on_error = "skip"`).
    pub malformed_skipped: Counter,
    /// Malformed records written to the dead-letter folder.
    pub malformed_dead_lettered: Counter,
    /// Aggregation tasks whose state was restored from a changelog (shared partitions).
    pub state_restores: Counter,
    /// State keys those restores wrote.
    pub state_restored_keys: Counter,
    /// Aggregation tasks opened on this daemon's standby copy instead of the changelog.
    pub state_standby_opens: Counter,
    /// Time those restores took, seconds.
    pub state_restore_seconds: Counter<f64, AtomicU64>,
    /// What is being restored now, for the status.
    restoring: Mutex<Option<String>>,
    /// The aggregation's tasks (shared partitions), as of the last batch.
    tasks: Mutex<Vec<TaskFigures>>,
    /// Whole-batch durations, seconds.
    pub batch_duration: Histogram,
    /// Each phase's durations, seconds, in [`PHASES`] order.
    pub phase_durations: [Histogram; 5],
    last: Mutex<Option<LastBatch>>,
    /// The plugin stages of the running version, by stage id.
    plugins: Mutex<Vec<(String, Arc<PluginCosts>)>>,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        let histogram = || Histogram::new(DURATION_BUCKETS);
        PipelineMetrics {
            input_rows: Counter::default(),
            output_rows: Counter::default(),
            batches: Counter::default(),
            batch_retries: Counter::default(),
            late_rows: Counter::default(),
            malformed_skipped: Counter::default(),
            malformed_dead_lettered: Counter::default(),
            state_restores: Counter::default(),
            state_standby_opens: Counter::default(),
            state_restored_keys: Counter::default(),
            state_restore_seconds: Counter::default(),
            restoring: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            batch_duration: histogram(),
            phase_durations: [
                histogram(),
                histogram(),
                histogram(),
                histogram(),
                histogram(),
            ],
            last: Mutex::new(None),
            plugins: Mutex::new(Vec::new()),
        }
    }
}

impl PipelineMetrics {
    /// Counts a committed batch.
    pub fn observe(&self, progress: &BatchProgress, committed_at_ms: i64) {
        self.input_rows.inc_by(progress.num_input_rows);
        self.output_rows.inc_by(progress.num_output_rows);
        self.batches.inc();
        self.batch_retries
            .inc_by(u64::from(progress.attempts.saturating_sub(1)));
        self.malformed_skipped
            .inc_by(progress.num_malformed_skipped);
        self.malformed_dead_lettered
            .inc_by(progress.num_malformed_dead_lettered);
        let states = &progress.state_operators;
        self.late_rows
            .inc_by(states.iter().map(|s| s.num_rows_dropped_by_watermark).sum());
        let d = &progress.duration_ms;
        self.batch_duration.observe(d.trigger_execution / 1000.0);
        let phases = [
            d.latest_offset + d.wal_commit,
            d.get_batch,
            d.process,
            d.add_batch,
            d.commit_offsets,
        ];
        for (histogram, ms) in self.phase_durations.iter().zip(phases) {
            histogram.observe(ms / 1000.0);
        }
        let last = LastBatch {
            source_backlog: progress.source_backlog.clone(),
            input_rows_per_second: progress.input_rows_per_second,
            processed_rows_per_second: progress.processed_rows_per_second,
            watermark_ms: progress.watermark_ms,
            state_groups: (!states.is_empty()).then(|| {
                (
                    states.iter().map(|s| s.num_rows_total).sum(),
                    states.iter().map(|s| s.num_rows_in_memory).sum(),
                )
            }),
            state_memory_bytes: states.iter().map(|s| s.memory_used_bytes).sum(),
            committed_at_ms,
            state_disk_bytes: progress.state_disk_bytes,
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(last);
    }

    /// Shows the costs of these plugin stages (the running version's: a stage swapped out or
    /// removed disappears).
    pub fn set_plugins(&self, plugins: Vec<(String, Arc<PluginCosts>)>) {
        *self.plugins.lock().unwrap_or_else(|e| e.into_inner()) = plugins;
    }

    /// The plugin stages' costs, by stage id.
    pub fn plugins(&self) -> Vec<(String, Arc<PluginCosts>)> {
        self.plugins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the aggregation's tasks as of the batch that finished.
    pub fn set_tasks(&self, tasks: Vec<TaskFigures>) {
        *self.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
    }

    /// The aggregation's tasks (shared partitions) as of the last batch.
    pub fn tasks(&self) -> Vec<TaskFigures> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Says what state is being restored now (`None`: nothing).
    pub fn set_restoring(&self, what: Option<String>) {
        *self.restoring.lock().unwrap_or_else(|e| e.into_inner()) = what;
    }

    /// What state is being restored now.
    pub fn restoring(&self) -> Option<String> {
        self.restoring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last committed batch's figures, if one committed since the daemon started.
    pub fn last(&self) -> Option<LastBatch> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::progress::{Durations, StateOperatorProgress};

    fn batch(rows: u64, attempts: u32, late: u64) -> BatchProgress {
        BatchProgress {
            name: "p".into(),
            batch_id: 0,
            timestamp: String::new(),
            num_input_rows: rows,
            input_rows_per_second: 10.0,
            processed_rows_per_second: 20.0,
            num_output_rows: rows / 2,
            duration_ms: Durations {
                get_batch: 30.0,
                trigger_execution: 40.0,
                ..Durations::default()
            },
            start_offset: serde_json::Value::Null,
            end_offset: serde_json::Value::Null,
            watermark_ms: Some(5_000),
            attempts,
            num_malformed_skipped: 1,
            num_malformed_dead_lettered: 2,
            state_operators: vec![StateOperatorProgress {
                num_rows_total: 7,
                num_rows_in_memory: 3,
                num_rows_dropped_by_watermark: late,
                ..StateOperatorProgress::default()
            }],
            source_backlog: Some(crate::sources::Backlog {
                amount: rows,
                unit: "records".into(),
                parts: Vec::new(),
            }),
            state_disk_bytes: Some(8192),
            source_known_end: None,
        }
    }

    #[test]
    fn batches_add_up_into_the_counters_and_the_last_one_sets_the_gauges() {
        let metrics = PipelineMetrics::default();
        metrics.observe(&batch(100, 1, 4), 1_000);
        metrics.observe(&batch(50, 3, 1), 2_000);
        assert_eq!(metrics.input_rows.get(), 150);
        assert_eq!(metrics.output_rows.get(), 75);
        assert_eq!(metrics.batches.get(), 2);
        assert_eq!(metrics.batch_retries.get(), 2);
        assert_eq!(metrics.late_rows.get(), 5);
        assert_eq!(metrics.malformed_skipped.get(), 2);
        assert_eq!(metrics.malformed_dead_lettered.get(), 4);
        let last = metrics.last();
        assert_eq!(last.as_ref().map(|l| l.committed_at_ms), Some(2_000));
        assert_eq!(last.as_ref().and_then(|l| l.state_groups), Some((7, 3)));
        assert_eq!(last.as_ref().and_then(|l| l.watermark_ms), Some(5_000));
        assert_eq!(last.as_ref().and_then(|l| l.state_disk_bytes), Some(8192));
        assert_eq!(
            last.and_then(|l| l.source_backlog).map(|b| b.amount),
            Some(50)
        );
    }
}
