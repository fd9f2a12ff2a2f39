//! The aggregation of a pipeline whose Kafka partitions are shared through a consumer group: one
//! task per input partition this daemon owns, each an [`AggregateOperator`] with its own state
//! (under `pipeline prefix | 't' | partition`), its own event-time clock and watermark (Kafka
//! Streams' stream time per task), restored from the changelog topic whenever the group gives
//! the partition to this daemon, and writing its changes to that changelog in the batch's
//! transaction (see `kafka::changelog`). A batch's rows wait, by partition, until the batch
//! finishes; then the tasks run side by side, up to `[parallelism] tasks_per_daemon` at once
//! on cores borrowed from the daemon's budget, their results taken in partition order.
//!
//! Rows reach it with the Kafka source's partition column ([`crate::kafka::TASK_COLUMN`]);
//! what it owns, under which tenure, and where the group's offsets stood come from the source
//! through the [`GroupLink`], set when the batch was read.

use super::operator::{AggregateOperator, op_error};
use super::resolve::{AggregatePlan, UserAggregates};
use super::restore::{RESTORE_PATIENCE, RESTORE_THREADS, RestoreGate, Restored};
use crate::cores::Spread;
use crate::engine::{
    BatchContext, Operator, OperatorError, PipelineMetrics, StateOperatorProgress, TaskFigures,
};
use crate::kafka::changelog::{self, ChangelogBatch, ChangelogTopic};
use crate::kafka::{GroupBatch, GroupLink, TASK_COLUMN};
use crate::state::{SharedStore, WriteSet, prefix_end};
use arrow::array::{AsArray, Int32Array};
use arrow::compute::kernels::cmp::eq;
use arrow::compute::{filter_record_batch, max, min};
use arrow::datatypes::{Int32Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A partition the group has given this daemon, for which no task runs here yet.
struct Arrival {
    partition: i32,
    tenure: u64,
    /// The group's committed offset when the batch was read.
    until: Option<i64>,
}

struct Task {
    op: AggregateOperator,
    tenure: u64,
    /// The state key prefix.
    prefix: Vec<u8>,
    /// The task's context for the batch in flight (its own watermark).
    ctx: Option<BatchContext>,
    /// When rows last came to it (or it was opened).
    last_rows: Instant,
    /// Whether its watermark follows the other tasks' this batch (`idle_timeout`).
    following: bool,
}

/// How the tasks run.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// How many run at once (`[parallelism] tasks_per_daemon`).
    pub spread: Spread,
    /// `[aggregate] idle_timeout`.
    pub idle_timeout: Option<Duration>,
    /// `[aggregate] standby`: keep warm copies of the partitions this daemon does not run.
    pub standby: bool,
}

/// See the module's documentation.
pub struct TaskedAggregate {
    pipeline: String,
    plan: AggregatePlan,
    store: SharedStore,
    plugins: Option<Arc<dyn UserAggregates + Send + Sync>>,
    link: Arc<GroupLink>,
    changelog: ChangelogTopic,
    topic_ready: bool,
    /// Restores arriving partitions' state beside the running tasks.
    gate: Arc<RestoreGate>,
    tasks: BTreeMap<i32, Task>,
    /// The batch being run, and what the source read for it.
    batch: Option<(u64, Option<Arc<GroupBatch>>)>,
    /// The tasks' changes for the batch's commit, made when the batch finished.
    pending: WriteSet,
    last_progress: Option<StateOperatorProgress>,
    /// Where restores are counted and said.
    metrics: Option<Arc<PipelineMetrics>>,
    /// The batch's rows so far, by partition: the tasks run them when the batch finishes.
    queued: BTreeMap<i32, Vec<RecordBatch>>,
    /// How many tasks run at once (`[parallelism] tasks_per_daemon`).
    spread: Spread,
    /// `[aggregate] idle_timeout`.
    idle_timeout: Option<Duration>,
}

/// The state key prefix of `partition`'s task.
pub fn task_prefix(pipeline: &str, partition: i32) -> Vec<u8> {
    let mut prefix = crate::state::pipeline_prefix(pipeline);
    prefix.push(b't');
    prefix.extend_from_slice(&((partition as u32) ^ (1 << 31)).to_be_bytes());
    prefix
}

/// The key under a task's prefix holding the input offset its stored state reaches (the
/// changelog's `o`, kept locally too).
pub(super) fn reached_key(prefix: &[u8]) -> Vec<u8> {
    [prefix, b"o"].concat()
}

impl TaskedAggregate {
    /// The aggregation `plan` of `pipeline`, run as tasks over the partitions `link` reports.
    pub fn new(
        pipeline: &str,
        plan: AggregatePlan,
        store: SharedStore,
        plugins: Option<Arc<dyn UserAggregates + Send + Sync>>,
        link: Arc<GroupLink>,
        changelog: ChangelogTopic,
        settings: TaskSettings,
    ) -> TaskedAggregate {
        let TaskSettings {
            spread,
            idle_timeout,
            standby,
        } = settings;
        let gate = Arc::new(if standby {
            RestoreGate::with_standby(pipeline, changelog.clone(), store.clone())
        } else {
            RestoreGate::new(pipeline, changelog.clone(), store.clone())
        });
        link.set_gate(gate.clone());
        TaskedAggregate {
            pipeline: pipeline.to_string(),
            plan,
            store,
            plugins,
            link,
            changelog,
            topic_ready: false,
            gate,
            tasks: BTreeMap::new(),
            batch: None,
            pending: WriteSet::default(),
            last_progress: None,
            metrics: None,
            queued: BTreeMap::new(),
            spread,
            idle_timeout,
        }
    }

    /// Starts batch `ctx` once: drops the tasks whose partition this daemon no longer owns,
    /// or owns again since (their state may have moved on elsewhere), and opens a task for
    /// every partition it owns and does not run yet.
    fn begin(&mut self, ctx: &BatchContext) -> Result<(), OperatorError> {
        if self
            .batch
            .as_ref()
            .is_some_and(|(id, _)| *id == ctx.batch_id)
        {
            return Ok(());
        }
        let read = self.link.current();
        let input = self.changelog.input.clone();
        self.tasks.retain(|partition, task| {
            let owned = read
                .as_ref()
                .and_then(|b| b.tenures.get(&(input.clone(), *partition)));
            owned == Some(&task.tenure)
        });
        for task in self.tasks.values_mut() {
            task.ctx = None;
        }
        self.batch = Some((ctx.batch_id, read.clone()));
        self.pending = WriteSet::default();
        let mut arriving = Vec::new();
        if let Some(b) = &read {
            for ((topic, partition), tenure) in &b.tenures {
                // A partition whose restore runs has no task yet (and no rows: the source
                // planned it where it was).
                if *topic != input
                    || self.tasks.contains_key(partition)
                    || self.gate.is_held(*partition, *tenure)
                {
                    continue;
                }
                arriving.push(Arrival {
                    partition: *partition,
                    tenure: *tenure,
                    until: b
                        .group_offsets
                        .get(&input)
                        .and_then(|parts| parts.get(partition))
                        .copied(),
                });
            }
        }
        self.open_tasks(arriving)
    }

    /// The task of `partition` (`begin` opened one for every partition the group gives this
    /// daemon), with its context for the batch.
    fn task(&mut self, partition: i32, ctx: &BatchContext) -> Result<&mut Task, OperatorError> {
        let input = &self.changelog.input;
        let task = self.tasks.get_mut(&partition).ok_or_else(|| {
            op_error(
                format!(
                    "rows of {input}/{partition}, a partition the consumer group does not give this daemon"
                ),
                true,
            )
        })?;
        if task.ctx.is_none() {
            task.ctx = Some(BatchContext {
                watermark_ms: task.op.next_watermark(),
                ..*ctx
            });
        }
        Ok(task)
    }

    /// Opens the tasks of the partitions arriving at this daemon, each on the state that goes
    /// with the group's offset: this daemon's own copy when its last commit reached exactly
    /// there (a restart, a partition that went nowhere else), else the changelog's, written
    /// over the copy.
    fn open_tasks(&mut self, arriving: Vec<Arrival>) -> Result<(), OperatorError> {
        if arriving.is_empty() {
            return Ok(());
        }
        let mut stale = Vec::new();
        let mut restored = Vec::new();
        for a in &arriving {
            if let Some(r) = self.gate.take(a.partition, a.tenure, a.until) {
                restored.push((a.partition, r));
                continue;
            }
            let prefix = task_prefix(&self.pipeline, a.partition);
            let local = self
                .store
                .get(&reached_key(&prefix))
                .map_err(|e| op_error(format!("reading the task's state: {e}"), true))?;
            if a.until
                .is_some_and(|g| local.as_deref() == Some(&g.to_be_bytes()[..]))
            {
                tracing::info!(
                    pipeline = %self.pipeline,
                    "{}/{}: this daemon's copy of the state is up to date (input offset {}); nothing to restore from changelog {}",
                    self.changelog.input,
                    a.partition,
                    a.until.unwrap_or_default(),
                    self.changelog.name(),
                );
            } else {
                stale.push(a);
            }
        }
        // Read beside the running tasks (`window::restore`), from the changelog or this
        // daemon's standby copy; written here, on the pipeline's thread, before the task's
        // first rows.
        let (standby, changelog): (Vec<_>, Vec<_>) =
            restored.into_iter().partition(|(_, r)| r.from_standby);
        for (restored, source) in [
            (changelog, RestoredFrom::Changelog),
            (standby, RestoredFrom::Standby),
        ] {
            if restored.is_empty() {
                continue;
            }
            let took = restored
                .iter()
                .map(|(_, r)| r.took)
                .max()
                .unwrap_or_default();
            let restored: Vec<(i32, Option<i64>, Result<_, String>)> = restored
                .into_iter()
                .map(|(p, Restored { until, state, .. })| (p, Some(until), Ok(state)))
                .collect();
            self.store_restored(restored, took, source)?;
        }
        if !stale.is_empty() {
            self.restore_from_changelog(&stale)?;
        }
        for a in arriving {
            let prefix = task_prefix(&self.pipeline, a.partition);
            let mut op = AggregateOperator::under(
                &self.pipeline,
                &prefix,
                self.plan.clone(),
                self.store.clone(),
                self.plugins.clone(),
            )
            .map_err(|e| op_error(e, false))?;
            op.restore()?;
            self.tasks.insert(
                a.partition,
                Task {
                    op,
                    tenure: a.tenure,
                    prefix,
                    ctx: None,
                    last_rows: Instant::now(),
                    following: false,
                },
            );
        }
        Ok(())
    }

    /// Writes the changelog's state of each of `stale` over this daemon's copy, in one synced
    /// write; the partitions are read [`RESTORE_THREADS`] at a time. Counted and said in the
    /// metrics (the records read so far, all partitions together).
    fn restore_from_changelog(&mut self, stale: &[&Arrival]) -> Result<(), OperatorError> {
        let started = Instant::now();
        if !self.topic_ready {
            self.changelog.ensure().map_err(|e| op_error(e, true))?;
            self.topic_ready = true;
        }
        let metrics = self.metrics.clone();
        let wanted: Vec<(i32, Option<i64>)> =
            stale.iter().map(|a| (a.partition, a.until)).collect();
        let what = format!(
            "restoring the state of {} partition(s) of {} from changelog {}",
            wanted.len(),
            self.changelog.input,
            self.changelog.name()
        );
        if let Some(m) = &metrics {
            m.set_restoring(Some(format!("{what}: 0 records read")));
        }
        let restored =
            self.changelog
                .restore_many(&wanted, RESTORE_THREADS, RESTORE_PATIENCE, &|n| {
                    if let Some(m) = &metrics {
                        m.set_restoring(Some(format!("{what}: {n} records read")));
                    }
                });
        if let Some(m) = &metrics {
            m.set_restoring(None);
        }
        self.store_restored(restored, started.elapsed(), RestoredFrom::Changelog)
    }

    /// Writes each partition's restored state over this daemon's copy, with the offset it
    /// reaches, in one synced write; counted in the metrics (`took`: the restore's time).
    fn store_restored(
        &mut self,
        restored: Vec<(i32, Option<i64>, Result<changelog::TaskState, String>)>,
        took: Duration,
        source: RestoredFrom,
    ) -> Result<(), OperatorError> {
        let mut changes = WriteSet::default();
        let mut read = 0;
        let mut keys = 0u64;
        for (partition, until, state) in restored {
            let state = state.map_err(|e| op_error(e, true))?;
            let prefix = task_prefix(&self.pipeline, partition);
            changes.delete_range(prefix.clone(), prefix_end(&prefix));
            match until {
                // Said where it was taken (`window::restore`).
                Some(_) if source == RestoredFrom::Standby => {}
                Some(offset) => tracing::info!(
                    pipeline = %self.pipeline,
                    "restored the state of {}/{partition} from changelog {} ({} keys, up to input offset {offset})",
                    self.changelog.input,
                    self.changelog.name(),
                    state.len(),
                ),
                None => tracing::info!(
                    pipeline = %self.pipeline,
                    "{}/{partition} starts with no state: the group has no offset for it yet",
                    self.changelog.input,
                ),
            }
            keys += state.len() as u64;
            read += usize::from(until.is_some());
            for (key, value) in state {
                changes.put([prefix.as_slice(), key.as_slice()].concat(), value);
            }
            if let Some(g) = until {
                changes.put(reached_key(&prefix), g.to_be_bytes().to_vec());
            }
        }
        self.store
            .write(changes, true)
            .map_err(|e| op_error(format!("writing restored state: {e}"), true))?;
        if source == RestoredFrom::Standby {
            return Ok(());
        }
        // Partitions the group has no offset for read nothing and are not counted.
        if let Some(m) = &self.metrics {
            m.state_restores.inc_by(read as u64);
            m.state_restored_keys.inc_by(keys);
            m.state_restore_seconds.inc_by(took.as_secs_f64());
        }
        tracing::info!(
            pipeline = %self.pipeline,
            "restored {read} task(s) from changelog {} in {} ms",
            self.changelog.name(),
            took.as_millis()
        );
        Ok(())
    }

    /// With `idle_timeout`: the tasks that have had no rows for that long run this batch at
    /// the least watermark of the others (Flink's idleness: an idle input stops holding the
    /// watermark back), when that is ahead of their own, so their windows close as the rest
    /// of the stream moves on. The raised watermark is kept as the task's own once it evicts
    /// (`last_eviction_ms`, in its state and changelog). With every task idle nothing moves.
    fn follow_when_idle(&mut self, ctx: &BatchContext) {
        for task in self.tasks.values_mut() {
            task.following = false;
        }
        let Some(timeout) = self.idle_timeout else {
            return;
        };
        let now = Instant::now();
        let idle = |task: &Task| now.duration_since(task.last_rows) >= timeout;
        let own = |task: &Task| {
            task.ctx
                .map_or_else(|| task.op.next_watermark(), |c| c.watermark_ms)
        };
        let Some(others) = self
            .tasks
            .values()
            .filter(|t| !idle(t))
            .filter_map(own)
            .min()
        else {
            return;
        };
        for (partition, task) in self.tasks.iter_mut() {
            task.following = idle(task) && own(task).is_none_or(|w| w < others);
            if !task.following {
                continue;
            }
            tracing::debug!(pipeline = %self.pipeline, "{}/{partition} has had no rows for {timeout:?}: its watermark follows the other partitions' to {others}", self.changelog.input);
            task.ctx = Some(BatchContext {
                watermark_ms: Some(others),
                ..*ctx
            });
        }
    }

    fn partitions_of(chunk: &RecordBatch) -> Result<Option<&Int32Array>, OperatorError> {
        let Some(column) = chunk.column_by_name(TASK_COLUMN) else {
            return Ok(None);
        };
        column
            .as_primitive_opt::<Int32Type>()
            .map(Some)
            .ok_or_else(|| op_error(format!("{TASK_COLUMN} is not an int32 column"), false))
    }
}

/// Where a restored state was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestoredFrom {
    Changelog,
    /// This daemon's standby copy (`window::standby`).
    Standby,
}

/// What one task made of a batch.
struct TaskDone {
    partition: i32,
    prefix: Vec<u8>,
    rows: Vec<RecordBatch>,
    /// Its state changes, for the changelog and the commit.
    changes: WriteSet,
    progress: Option<StateOperatorProgress>,
}

/// Runs `chunks` (partition `partition`'s rows of the batch) through `task` and finishes the
/// batch there; on whatever thread `finish_batch` gives it.
fn run_task(
    partition: i32,
    task: &mut Task,
    chunks: Vec<RecordBatch>,
    ctx: &BatchContext,
) -> Result<TaskDone, OperatorError> {
    let task_ctx = *task.ctx.get_or_insert(BatchContext {
        watermark_ms: task.op.next_watermark(),
        ..*ctx
    });
    let mut rows = Vec::new();
    for chunk in chunks {
        rows.extend(task.op.process(chunk, &task_ctx)?);
    }
    rows.extend(task.op.finish_batch(&task_ctx)?);
    // The changes are made now, not at the commit: the sink writes them to the changelog in
    // the batch's transaction, before the engine commits.
    let mut changes = WriteSet::default();
    task.op.prepare_commit(&mut changes)?;
    Ok(TaskDone {
        partition,
        prefix: task.prefix.clone(),
        rows,
        changes,
        progress: task.op.state_progress(),
    })
}

/// Adds one task's figures for the batch to the aggregation's (the average event time is
/// left out: the tasks' averages weigh their rows, which the figures do not carry).
fn add_progress(total: &mut StateOperatorProgress, task: &StateOperatorProgress) {
    total.num_rows_total += task.num_rows_total;
    total.num_rows_in_memory += task.num_rows_in_memory;
    total.num_rows_updated += task.num_rows_updated;
    total.num_rows_removed += task.num_rows_removed;
    total.num_rows_dropped_by_watermark += task.num_rows_dropped_by_watermark;
    total.memory_used_bytes += task.memory_used_bytes;
    // `Option`'s order puts `None` first: a task without rows must not hide the others'
    // earliest time.
    total.event_time_min_ms = match (total.event_time_min_ms, task.event_time_min_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    total.event_time_max_ms = total.event_time_max_ms.max(task.event_time_max_ms);
}

impl Operator for TaskedAggregate {
    fn output_schema(&self) -> SchemaRef {
        self.plan.output_schema.clone()
    }

    fn stage_id(&self) -> Option<String> {
        Some("aggregate".into())
    }

    fn process(
        &mut self,
        chunk: RecordBatch,
        ctx: &BatchContext,
    ) -> Result<Vec<RecordBatch>, OperatorError> {
        self.begin(ctx)?;
        let partitions = Self::partitions_of(&chunk)?
            .ok_or_else(|| op_error(format!("the rows have no {TASK_COLUMN} column"), false))?;
        let (Some(low), Some(high)) = (min(partitions), max(partitions)) else {
            return Ok(Vec::new());
        };
        // The rows wait for `finish_batch`, where the tasks run side by side.
        if low == high {
            self.task(low, ctx)?.last_rows = Instant::now();
            self.queued.entry(low).or_default().push(chunk);
            return Ok(Vec::new());
        }
        // A chunk of several partitions (the Kafka source cuts chunks per partition, so only a
        // stage that merges chunks would make one): each partition's rows go to its task.
        let mut seen: Vec<i32> = partitions.iter().flatten().collect();
        seen.sort_unstable();
        seen.dedup();
        for partition in seen {
            let mask = eq(partitions, &Int32Array::new_scalar(partition))
                .map_err(|e| op_error(e, false))?;
            let rows = filter_record_batch(&chunk, &mask).map_err(|e| op_error(e, false))?;
            self.task(partition, ctx)?.last_rows = Instant::now();
            self.queued.entry(partition).or_default().push(rows);
        }
        Ok(Vec::new())
    }

    fn finish_batch(&mut self, ctx: &BatchContext) -> Result<Vec<RecordBatch>, OperatorError> {
        self.begin(ctx)?;
        self.follow_when_idle(ctx);
        let mut queued = std::mem::take(&mut self.queued);
        let work: Vec<(i32, &mut Task, Vec<RecordBatch>)> = self
            .tasks
            .iter_mut()
            .map(|(&partition, task)| {
                (
                    partition,
                    task,
                    queued.remove(&partition).unwrap_or_default(),
                )
            })
            .collect();
        // Each task on a core of its own, up to `tasks_per_daemon` at once; the results come
        // back in partition order, so the output is the same at any width.
        let ran = self
            .spread
            .map(
                work,
                |(partition, task, chunks)| run_task(partition, task, chunks, ctx),
                Result::is_err,
            )
            .map_err(|e| op_error(e, false))?;
        let mut out = Vec::new();
        let mut records = Vec::new();
        let mut progress = StateOperatorProgress::default();
        let mut figures = Vec::with_capacity(ran.len());
        for result in ran {
            let mut done = result?;
            out.append(&mut done.rows);
            changelog::add_changes(&done.changes, &done.prefix, done.partition, &mut records);
            self.pending.append(&mut done.changes);
            if let Some(p) = &done.progress {
                add_progress(&mut progress, p);
            }
            let task = self.tasks.get(&done.partition);
            figures.push(TaskFigures {
                partition: format!("{}/{}", self.changelog.input, done.partition),
                groups: done.progress.as_ref().map_or(0, |p| p.num_rows_total),
                memory_bytes: done.progress.as_ref().map_or(0, |p| p.memory_used_bytes),
                watermark_ms: task.and_then(|t| t.ctx).and_then(|c| c.watermark_ms),
                idle: task.is_some_and(|t| t.following),
            });
        }
        self.last_progress = Some(progress);
        if let Some(m) = &self.metrics {
            m.set_tasks(figures);
        }
        // Every partition whose offsets the transaction commits says where its state stands,
        // also when no row of it reached a task (all filtered or malformed).
        let read = self.batch.as_ref().and_then(|(_, b)| b.clone());
        if let Some(parts) = read
            .as_ref()
            .and_then(|b| b.offsets.get(&self.changelog.input))
        {
            for (&partition, &end) in parts {
                // A partition held back while its state is restored (`window::restore`) has
                // no task and did not move: nothing to say of its state.
                if !self.tasks.contains_key(&partition) {
                    continue;
                }
                records.push(changelog::reached(partition, end));
                // This daemon's copy of a task it runs reaches the same offset once committed.
                if let Some(task) = self.tasks.get(&partition) {
                    self.pending
                        .put(reached_key(&task.prefix), end.to_be_bytes().to_vec());
                }
            }
        }
        if !records.is_empty() && !self.topic_ready {
            // Rows all malformed or filtered out open no task, but the offsets still move.
            self.changelog.ensure().map_err(|e| op_error(e, true))?;
            self.topic_ready = true;
        }
        self.link.set_changelog(Some(ChangelogBatch {
            topic: self.changelog.name(),
            records,
        }));
        Ok(out)
    }

    fn prepare_commit(&mut self, changes: &mut WriteSet) -> Result<(), OperatorError> {
        changes.append(&mut self.pending);
        Ok(())
    }

    fn committed(&mut self) {
        for task in self.tasks.values_mut() {
            task.op.committed();
        }
    }

    fn abort_batch(&mut self) {
        // Not reloaded here: the batch may have failed after its transaction committed (the
        // store's commit failed). The next batch opens the tasks again, each from this
        // daemon's copy only if that copy reached the group's offset, else from the changelog.
        self.tasks.clear();
        self.queued.clear();
        self.pending = WriteSet::default();
        self.link.set_changelog(None);
        self.batch = None;
    }

    fn next_watermark(&self) -> Option<i64> {
        self.tasks
            .values()
            .filter_map(|t| t.op.next_watermark())
            .min()
    }

    fn wants_no_data_batch(&self, _watermark_ms: Option<i64>) -> bool {
        self.tasks
            .values()
            .any(|t| t.op.wants_no_data_batch(t.op.next_watermark()))
    }

    fn state_progress(&self) -> Option<StateOperatorProgress> {
        self.last_progress.clone()
    }

    fn watch_metrics(&mut self, metrics: &Arc<PipelineMetrics>) {
        self.gate.watch_metrics(metrics);
        self.metrics = Some(metrics.clone());
    }

    fn plugin_costs(&self) -> Vec<Arc<crate::engine::PluginCosts>> {
        self.plugins
            .as_ref()
            .map(|p| p.plugin_costs())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(groups: u64, times: Option<(i64, i64)>) -> StateOperatorProgress {
        StateOperatorProgress {
            num_rows_total: groups,
            num_rows_updated: groups,
            event_time_min_ms: times.map(|t| t.0),
            event_time_max_ms: times.map(|t| t.1),
            ..StateOperatorProgress::default()
        }
    }

    #[test]
    fn the_tasks_figures_add_up_and_a_task_without_rows_hides_no_event_time() {
        let mut total = StateOperatorProgress::default();
        for t in [
            task(3, Some((20, 30))),
            task(2, None),
            task(1, Some((10, 25))),
        ] {
            add_progress(&mut total, &t);
        }
        assert_eq!(total.num_rows_total, 6);
        assert_eq!(total.num_rows_updated, 6);
        assert_eq!(total.event_time_min_ms, Some(10));
        assert_eq!(total.event_time_max_ms, Some(30));
        let mut total = StateOperatorProgress::default();
        for t in [task(1, Some((10, 25))), task(2, None)] {
            add_progress(&mut total, &t);
        }
        assert_eq!(total.event_time_min_ms, Some(10));
    }
}
