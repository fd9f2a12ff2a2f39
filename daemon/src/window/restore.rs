//! Restoring beside the running tasks (Kafka Streams' state updater): when the group gives
//! this daemon a partition whose state its own copy does not hold, the [`RestoreGate`] reads
//! the partition's changelog on a thread of its own and holds the partition back from the
//! batches meanwhile (the source plans it where it is), so the tasks this daemon already runs
//! go on batch after batch instead of waiting for the arrival. When the restore is done the
//! partition is read again, and its task opens on the restored state, which the pipeline's
//! thread writes to the store before the task's first rows (the restore's thread never writes:
//! every write to a task's keys stays on the pipeline's thread, in batch order).
//!
//! A partition the group has no offset for, or whose copy here reached the group's offset
//! (a restart, a partition that went nowhere), is not held: its task opens at once.

use super::standby::{CopyReader, Standby};
use crate::engine::PipelineMetrics;
use crate::kafka::changelog::{ChangelogTopic, TaskState};
use crate::kafka::{GroupOffsets, PartitionGate};
use crate::state::SharedStore;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a task's restore may go without a record before it gives up on its changelog
/// reaching the group's offset (it is tried again).
pub(super) const RESTORE_PATIENCE: Duration = Duration::from_secs(30);
/// Changelog partitions read at once when several partitions arrive together (each with a
/// consumer of its own: a restore is bounded by the fetch, not by a core; BENCHMARKS.md).
pub(super) const RESTORE_THREADS: usize = 4;
/// How long a failed restore waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long an arrival waits for this daemon's standby copy to reach the group's offset
/// before its changelog is read from the start instead.
const STANDBY_GRACE: Duration = Duration::from_secs(5);

/// A partition's state as read from its changelog, for its task to open on.
#[derive(Debug)]
pub struct Restored {
    /// The group's offset the state goes with.
    pub until: i64,
    /// Each key under the task's prefix, with its value.
    pub state: TaskState,
    /// How long the restore it came with took.
    pub took: Duration,
    /// Taken from this daemon's standby copy, not read from the changelog.
    pub from_standby: bool,
}

/// What the gate knows of one partition under one tenure.
#[derive(Debug)]
enum Part {
    /// Its task may open: nothing to restore, or restored and handed over.
    Ready { tenure: u64 },
    /// Its state must be restored up to the group's offset `until`; held back until then.
    Waiting {
        tenure: u64,
        until: i64,
        /// When it arrived (a standby copy catching up is waited for a while).
        since: Instant,
        /// This daemon's standby copy has reached `until`: read that, not the changelog.
        copy: bool,
    },
    /// Restored, waiting for its task to open.
    Restored { tenure: u64, restored: Restored },
}

impl Part {
    fn tenure(&self) -> u64 {
        match self {
            Part::Ready { tenure }
            | Part::Waiting { tenure, .. }
            | Part::Restored { tenure, .. } => *tenure,
        }
    }
}

type JobResult = Vec<(i32, Option<i64>, Result<TaskState, String>)>;

/// A restore running on its thread.
struct Job {
    /// Each partition with the tenure and offset it restores for, and whether from this
    /// daemon's standby copy.
    partitions: Vec<(i32, u64, i64, bool)>,
    thread: JoinHandle<JobResult>,
    started: Instant,
}

#[derive(Default)]
struct GateState {
    parts: BTreeMap<i32, Part>,
    job: Option<Job>,
    /// No restore starts before this (after a failure).
    not_before: Option<Instant>,
}

/// See the module's documentation.
pub struct RestoreGate {
    pipeline: String,
    changelog: ChangelogTopic,
    store: SharedStore,
    metrics: Mutex<Option<Arc<PipelineMetrics>>>,
    state: Mutex<GateState>,
    /// With `[aggregate] standby = true`: the warm copies of the partitions it does not run.
    standby: Option<Standby>,
}

impl RestoreGate {
    /// The gate of `pipeline`'s tasks, restoring from `changelog` what `store` does not hold.
    pub fn new(pipeline: &str, changelog: ChangelogTopic, store: SharedStore) -> RestoreGate {
        RestoreGate {
            pipeline: pipeline.to_string(),
            changelog,
            store,
            metrics: Mutex::new(None),
            state: Mutex::new(GateState::default()),
            standby: None,
        }
    }

    /// The same, keeping standby copies of the partitions this daemon does not run.
    pub fn with_standby(
        pipeline: &str,
        changelog: ChangelogTopic,
        store: SharedStore,
    ) -> RestoreGate {
        let standby = Standby::start(pipeline, changelog.clone(), store.clone());
        RestoreGate {
            standby: Some(standby),
            ..RestoreGate::new(pipeline, changelog, store)
        }
    }

    /// The input offset this daemon's standby copy of `partition` has reached.
    fn copy_reach(&self, partition: i32) -> Option<i64> {
        self.standby.as_ref()?.reader().reached(partition)
    }

    /// Where restores say what they are doing.
    pub fn watch_metrics(&self, metrics: &Arc<PipelineMetrics>) {
        *self.metrics.lock().unwrap_or_else(|e| e.into_inner()) = Some(metrics.clone());
    }

    fn metrics(&self) -> Option<Arc<PipelineMetrics>> {
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `partition`'s task must not open yet under `tenure` (its restore runs).
    pub fn is_held(&self, partition: i32, tenure: u64) -> bool {
        matches!(
            self.lock().parts.get(&partition),
            Some(Part::Waiting { tenure: t, .. }) if *t == tenure
        )
    }

    /// The state restored for `partition` under `tenure` up to the group's offset `until`,
    /// handed over once; `None` when there is none (the task opens as it would have anyway).
    pub fn take(&self, partition: i32, tenure: u64, until: Option<i64>) -> Option<Restored> {
        let mut state = self.lock();
        let matches = matches!(
            state.parts.get(&partition),
            Some(Part::Restored { tenure: t, restored }) if *t == tenure && Some(restored.until) == until
        );
        if !matches {
            return None;
        }
        match state.parts.insert(partition, Part::Ready { tenure }) {
            Some(Part::Restored { restored, .. }) => Some(restored),
            _ => None,
        }
    }

    /// The offset this daemon's copy of `partition`'s state reaches, if it says.
    fn local_reach(&self, partition: i32) -> Option<i64> {
        let prefix = super::task_prefix(&self.pipeline, partition);
        let value = self
            .store
            .get(&super::tasks::reached_key(&prefix))
            .ok()
            .flatten()?;
        Some(i64::from_be_bytes(value.as_slice().try_into().ok()?))
    }

    /// Takes the result of a restore that has ended.
    fn collect(&self, state: &mut GateState) {
        if !state.job.as_ref().is_some_and(|j| j.thread.is_finished()) {
            return;
        }
        let Some(job) = state.job.take() else {
            return;
        };
        let took = job.started.elapsed();
        let results = job.thread.join().unwrap_or_else(|_| {
            job.partitions
                .iter()
                .map(|&(p, _, u, _)| (p, Some(u), Err("the restore's thread panicked".into())))
                .collect()
        });
        let metrics = self.metrics();
        let mut failed = Vec::new();
        for (partition, _, result) in results {
            let Some(&(_, tenure, until, copy)) = job.partitions.iter().find(|p| p.0 == partition)
            else {
                continue;
            };
            // The partition may have left (or left and come back) while it was read.
            let wanted = matches!(
                state.parts.get(&partition),
                Some(Part::Waiting { tenure: t, until: u, .. }) if *t == tenure && *u == until
            );
            match result {
                Ok(restored) if wanted => {
                    if copy {
                        tracing::info!(
                            pipeline = %self.pipeline,
                            "{}/{partition}: takes its state from this daemon's standby copy ({} keys, up to input offset {until}); nothing to read from changelog {}",
                            self.changelog.input,
                            restored.len(),
                            self.changelog.name()
                        );
                        if let Some(m) = &metrics {
                            m.state_standby_opens.inc();
                        }
                    }
                    state.parts.insert(
                        partition,
                        Part::Restored {
                            tenure,
                            restored: Restored {
                                until,
                                state: restored,
                                took,
                                from_standby: copy,
                            },
                        },
                    );
                }
                Ok(_) => {}
                Err(err) => {
                    // A copy that could not be read: the changelog next time.
                    if let Some(Part::Waiting { copy, .. }) = state.parts.get_mut(&partition) {
                        *copy = false;
                    }
                    failed.push(format!("{}/{partition}: {err}", self.changelog.input));
                }
            }
        }
        if failed.is_empty() {
            if let Some(m) = &metrics {
                m.set_restoring(None);
            }
            return;
        }
        let what = format!(
            "restoring from changelog {} failed ({}); trying again",
            self.changelog.name(),
            failed.join("; ")
        );
        tracing::warn!(pipeline = %self.pipeline, "{what}");
        if let Some(m) = &metrics {
            m.set_restoring(Some(what));
        }
        state.not_before = Some(Instant::now() + RETRY_AFTER);
    }

    /// Starts a restore of the first partitions waiting for one, when none runs.
    fn start(&self, state: &mut GateState) {
        if state.job.is_some() || state.not_before.is_some_and(|t| Instant::now() < t) {
            return;
        }
        // A few at a time, each read by a consumer of its own: each partition is released as
        // soon as its own group is restored, not after every arrival's.
        let partitions: Vec<(i32, u64, i64, bool)> = state
            .parts
            .iter()
            .filter_map(|(p, part)| match part {
                // A standby copy catching up is given a while before the changelog is read
                // from its start.
                Part::Waiting {
                    tenure,
                    until,
                    since,
                    copy,
                } if *copy || self.standby.is_none() || since.elapsed() >= STANDBY_GRACE => {
                    Some((*p, *tenure, *until, *copy))
                }
                _ => None,
            })
            .take(RESTORE_THREADS)
            .collect();
        if partitions.is_empty() {
            return;
        }
        let copies = partitions.iter().filter(|p| p.3).count();
        let what = if copies == partitions.len() {
            format!(
                "restoring the state of {} partition(s) of {} from this daemon's standby copies while the other tasks run",
                partitions.len(),
                self.changelog.input,
            )
        } else {
            format!(
                "restoring the state of {} partition(s) of {} from changelog {} while the other tasks run",
                partitions.len(),
                self.changelog.input,
                self.changelog.name()
            )
        };
        tracing::info!(pipeline = %self.pipeline, "{what}");
        let metrics = self.metrics();
        if let Some(m) = &metrics {
            m.set_restoring(Some(format!("{what}: 0 records read")));
        }
        let changelog = self.changelog.clone();
        let reader: Option<CopyReader> = self.standby.as_ref().map(Standby::reader);
        let copied: Vec<(i32, i64)> = partitions
            .iter()
            .filter(|p| p.3)
            .map(|&(p, _, u, _)| (p, u))
            .collect();
        let wanted: Vec<(i32, Option<i64>)> = partitions
            .iter()
            .filter(|p| !p.3)
            .map(|&(p, _, u, _)| (p, Some(u)))
            .collect();
        let spawned = std::thread::Builder::new()
            .name("weir-restore".into())
            .spawn(move || -> JobResult {
                // The copies in this daemon's store first (no broker needed), then the
                // changelog.
                let mut out: JobResult = copied
                    .iter()
                    .map(|&(p, u)| {
                        let state = match &reader {
                            Some(r) => r.copy_at(p, u).and_then(|copy| {
                                copy.ok_or_else(|| {
                                    format!("the standby copy is no longer at input offset {u}")
                                })
                            }),
                            None => Err("no standby copies here".into()),
                        };
                        (p, Some(u), state)
                    })
                    .collect();
                if wanted.is_empty() {
                    return out;
                }
                if let Err(err) = changelog.ensure() {
                    out.extend(wanted.iter().map(|&(p, u)| (p, u, Err(err.clone()))));
                    return out;
                }
                out.extend(changelog.restore_many(
                    &wanted,
                    RESTORE_THREADS,
                    RESTORE_PATIENCE,
                    &|n| {
                        if let Some(m) = &metrics {
                            m.set_restoring(Some(format!("{what}: {n} records read")));
                        }
                    },
                ));
                out
            });
        match spawned {
            Ok(thread) => {
                state.job = Some(Job {
                    partitions,
                    thread,
                    started: Instant::now(),
                })
            }
            Err(err) => {
                tracing::warn!(pipeline = %self.pipeline, "could not start a restore's thread: {err}; trying again");
                state.not_before = Some(Instant::now() + RETRY_AFTER);
            }
        }
    }
}

impl PartitionGate for RestoreGate {
    fn topic(&self) -> &str {
        &self.changelog.input
    }

    fn held(&self, owned: &BTreeMap<i32, u64>, group_offsets: GroupOffsets<'_>) -> BTreeSet<i32> {
        if let Some(standby) = &self.standby {
            standby.set_owned(owned.keys().copied().collect());
        }
        let mut state = self.lock();
        self.collect(&mut state);
        // What left, or left and came back under another tenure, starts over.
        state
            .parts
            .retain(|p, part| owned.get(p) == Some(&part.tenure()));
        let arrived: Vec<i32> = owned
            .keys()
            .filter(|p| !state.parts.contains_key(p))
            .copied()
            .collect();
        let mut undecided = BTreeSet::new();
        if !arrived.is_empty() {
            match group_offsets(&arrived) {
                Ok(offsets) => {
                    for p in &arrived {
                        let tenure = owned.get(p).copied().unwrap_or_default();
                        let part = match offsets.get(p) {
                            Some(&until) if self.local_reach(*p) != Some(until) => Part::Waiting {
                                tenure,
                                until,
                                since: Instant::now(),
                                copy: self.copy_reach(*p) == Some(until),
                            },
                            // Nothing committed (no state), or this daemon's copy is the state
                            // that goes with the group's offset.
                            _ => Part::Ready { tenure },
                        };
                        state.parts.insert(*p, part);
                    }
                }
                Err(err) => {
                    // Undecided: held, and asked again at the next batch.
                    tracing::debug!(pipeline = %self.pipeline, "reading the group's offsets of arriving partitions: {err}");
                    undecided.extend(arrived);
                }
            }
        }
        // Standby copies that have caught up since (read by the next restore).
        if self.standby.is_some() {
            for (p, part) in state.parts.iter_mut() {
                if let Part::Waiting { until, copy, .. } = part
                    && !*copy
                    && self.copy_reach(*p) == Some(*until)
                {
                    *copy = true;
                }
            }
        }
        self.start(&mut state);
        state
            .parts
            .iter()
            .filter(|(_, part)| matches!(part, Part::Waiting { .. }))
            .map(|(p, _)| *p)
            .chain(undecided)
            .collect()
    }
}
