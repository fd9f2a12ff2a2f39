//! The stateful aggregation operator: assigns rows to (window, key) groups, updates the
//! accumulators once per chunk, emits per output mode at the end of a batch, evicts windows the
//! watermark has passed, and writes its changes into the batch's commit.
//!
//! Live groups are held in memory and written through to the store at every commit. When they
//! take more than half of `max_state_memory` after a commit, the least recently changed are
//! spilled: dropped from memory, kept in the store, and remembered by hash so that a row that
//! reaches one again reads it back first (append mode also reads back spilled windows the
//! watermark closes, to emit them). Complete mode and session windows keep every group in memory.
//! A batch whose groups take more than `max_state_memory` fails rather than exhaust the process's
//! memory.

use super::accumulators::{AggregateError, GroupsAccumulator};
use super::assign::{for_each_sliding_start, tumbling_start};
use super::chunk_groups::{ChunkGrouper, ChunkTimes, GroupedChunk};
use super::groups::GroupTable;
use super::partials::CellPartials;
use super::persist::{Meta, STATE_FORMAT, StateKeys, encode_states};
use super::resolve::{AggregatePlan, UserAggregates, accumulators};
use crate::config::{ByteSize, OutputMode, WindowKind};
use crate::engine::{
    BatchContext, ErrorClass, Operator, OperatorError, PrepareChunk, PreparedChunk,
    StateOperatorProgress,
};
use crate::state::{SharedStore, WriteSet};
use arrow::array::{Array, ArrayRef, AsArray, StructArray, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use arrow::row::{Rows, SortField};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The aggregation could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The stored state was written by a different aggregation.
    #[error(
        "the [aggregate] of pipeline `{pipeline}` changed since its state was written\n  stored: {stored}\n  now:    {current}\nweir does not reuse state of a different aggregation: rename the pipeline to start it fresh, or delete its checkpoint and state with `weir state reset {pipeline}`"
    )]
    Mismatch {
        /// Pipeline.
        pipeline: String,
        /// The stored description.
        stored: String,
        /// The current one.
        current: String,
    },
    /// The state was written in a newer state format than this weir reads.
    #[error(
        "the aggregation state of pipeline `{pipeline}` is in state format {stored}, newer than this weir's ({STATE_FORMAT}): it was written by a newer weir; run that version, or reset the state with `weir state reset {pipeline}`"
    )]
    Format {
        /// Pipeline.
        pipeline: String,
        /// The stored format.
        stored: u32,
    },
    /// Reading the state failed.
    #[error("cannot load the aggregation state of pipeline `{pipeline}`: {reason}")]
    Load {
        /// Pipeline.
        pipeline: String,
        /// Why.
        reason: String,
    },
}

impl BatchState {
    /// Adds a chunk's event-time figures.
    fn absorb(&mut self, times: &ChunkTimes) {
        if let Some((lo, hi)) = times.range {
            self.min_time = Some(self.min_time.map_or(lo, |m| m.min(lo)));
            self.max_time = Some(self.max_time.map_or(hi, |m| m.max(hi)));
        }
        self.sum_time += times.sum;
        self.timed_rows += times.timed_rows;
        self.dropped += times.untimed_rows;
    }
}

#[derive(Debug, Default, Clone)]
struct BatchState {
    batch_id: u64,
    eviction: Option<i64>,
    late: Option<i64>,
    dropped: u64,
    rows: u64,
    min_time: Option<i64>,
    max_time: Option<i64>,
    sum_time: i128,
    timed_rows: u64,
}

/// The `[aggregate]` stage.
pub struct AggregateOperator {
    pipeline: String,
    plan: AggregatePlan,
    plugins: Option<Arc<dyn UserAggregates + Send + Sync>>,
    store: SharedStore,
    keys: StateKeys,
    meta: Meta,
    groups: GroupTable,
    accs: Vec<Box<dyn GroupsAccumulator>>,
    /// Changed since the last commit.
    dirty: Vec<bool>,
    dirty_list: Vec<u32>,
    /// (end, start) each group is stored under, once committed.
    persisted: Vec<Option<(i64, i64)>>,
    /// Stored keys to delete at the next commit (merged or re-keyed sessions).
    stale: Vec<Vec<u8>>,
    /// Session windows: each key's live sessions.
    sessions: HashMap<Box<[u8]>, Vec<u32>>,
    batch: Option<BatchState>,
    evicted_through: Option<i64>,
    last_progress: Option<StateOperatorProgress>,
    group_of_row: Vec<u32>,
    row_of_pair: Vec<u32>,
    /// The chunk's pairs are its rows one for one (`row_of_pair` is then left empty).
    pairs_are_rows: bool,
    /// Groups chunks apart from the state when the key is one simple column (or none) and
    /// windows are not sessions; `None`: keys go through the row format row by row.
    grouper: Option<Arc<ChunkGrouper>>,
    /// Spilled groups, in the store only: window end → group hash → how many share it.
    cold: BTreeMap<i64, HashMap<u64, u32>>,
    cold_groups: u64,
    /// The batch that last changed each group, to spill the least recently changed.
    last_used: Vec<u64>,
    /// The groups the last chunk touched, each once, when the fast path knows them.
    chunk_touched: Option<Vec<u32>>,
    /// What the last chunk's cells add to the groups, when the lanes folded it per cell:
    /// (cell, group) pairs and each function's partial states by cell.
    gained: Option<Gained>,
}

/// (cell, group) pairs of a chunk folded per cell, and each function's partial states by cell.
type Gained = (Vec<(u32, u32)>, Vec<CellPartials>);

impl std::fmt::Debug for AggregateOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateOperator")
            .field("pipeline", &self.pipeline)
            .field("groups", &self.groups.len())
            .finish()
    }
}

pub(super) fn op_error(err: impl std::fmt::Display, retryable: bool) -> OperatorError {
    OperatorError {
        stage: "aggregate".into(),
        message: err.to_string(),
        class: if retryable {
            ErrorClass::External
        } else {
            ErrorClass::Internal
        },
        retryable,
    }
}

fn agg_error(err: AggregateError) -> OperatorError {
    OperatorError {
        stage: "aggregate".into(),
        class: if err.retryable {
            ErrorClass::User
        } else {
            ErrorClass::Internal
        },
        retryable: err.retryable,
        message: err.message,
    }
}

/// Checks, reading only, that the state stored for `pipeline` (if any) was written by an
/// aggregation with this `fingerprint`, in a state format this weir reads.
pub fn check_stored_state(
    pipeline: &str,
    fingerprint: &str,
    store: &SharedStore,
) -> Result<(), OpenError> {
    check_state_at(
        &StateKeys::new(&crate::state::pipeline_prefix(pipeline)),
        pipeline,
        fingerprint,
        store,
    )
}

/// [`check_stored_state`] for the state under `keys` (a pipeline's, or one task's).
fn check_state_at(
    keys: &StateKeys,
    pipeline: &str,
    fingerprint: &str,
    store: &SharedStore,
) -> Result<(), OpenError> {
    let meta = keys.load_meta(store).map_err(|reason| OpenError::Load {
        pipeline: pipeline.to_string(),
        reason,
    })?;
    match meta {
        Some(meta) if meta.format > STATE_FORMAT => Err(OpenError::Format {
            pipeline: pipeline.to_string(),
            stored: meta.format,
        }),
        Some(meta) if meta.fingerprint != fingerprint => Err(OpenError::Mismatch {
            pipeline: pipeline.to_string(),
            stored: meta.fingerprint,
            current: fingerprint.to_string(),
        }),
        _ => Ok(()),
    }
}

impl AggregateOperator {
    /// Opens the aggregation of `pipeline`, restoring its committed state: [`Self::new`]
    /// followed by [`Operator::restore`].
    pub fn open(
        pipeline: &str,
        plan: AggregatePlan,
        store: SharedStore,
        plugins: Option<Arc<dyn UserAggregates + Send + Sync>>,
    ) -> Result<AggregateOperator, OpenError> {
        let mut op = Self::new(pipeline, plan, store, plugins)?;
        op.restore_state()?;
        Ok(op)
    }

    /// The aggregation of `pipeline`, not yet holding any state: nothing is read from the
    /// store until [`Operator::restore`] (the pipeline calls it before the first batch).
    pub fn new(
        pipeline: &str,
        plan: AggregatePlan,
        store: SharedStore,
        plugins: Option<Arc<dyn UserAggregates + Send + Sync>>,
    ) -> Result<AggregateOperator, OpenError> {
        let prefix = crate::state::pipeline_prefix(pipeline);
        Self::under(pipeline, &prefix, plan, store, plugins)
    }

    /// The aggregation of `pipeline` keeping its state under `prefix` (one task's, when the
    /// pipeline's partitions are shared: see `window::tasks`).
    pub fn under(
        pipeline: &str,
        prefix: &[u8],
        plan: AggregatePlan,
        store: SharedStore,
        plugins: Option<Arc<dyn UserAggregates + Send + Sync>>,
    ) -> Result<AggregateOperator, OpenError> {
        let keys = StateKeys::new(prefix);
        let load_error = |reason: String| OpenError::Load {
            pipeline: pipeline.to_string(),
            reason,
        };
        let key_fields = Self::key_fields(&plan);
        let mut op = AggregateOperator {
            pipeline: pipeline.to_string(),
            groups: GroupTable::new(key_fields).map_err(|e| load_error(e.to_string()))?,
            accs: accumulators(&plan, plugins.as_deref().map(|p| p as &dyn UserAggregates))
                .map_err(load_error)?,
            plan,
            plugins,
            store,
            keys,
            meta: Meta::default(),
            dirty: Vec::new(),
            dirty_list: Vec::new(),
            persisted: Vec::new(),
            stale: Vec::new(),
            sessions: HashMap::new(),
            batch: None,
            evicted_through: None,
            last_progress: None,
            group_of_row: Vec::new(),
            row_of_pair: Vec::new(),
            pairs_are_rows: false,
            grouper: None,
            chunk_touched: None,
            gained: None,
            cold: BTreeMap::new(),
            cold_groups: 0,
            last_used: Vec::new(),
        };
        op.grouper = ChunkGrouper::for_plan(&op.plan).map(Arc::new);
        Ok(op)
    }

    /// Checks the stored state against this aggregation's fingerprint, then loads it.
    fn restore_state(&mut self) -> Result<(), OpenError> {
        check_state_at(
            &self.keys,
            &self.pipeline,
            &self.plan.fingerprint,
            &self.store,
        )?;
        self.reload().map_err(|reason| OpenError::Load {
            pipeline: self.pipeline.clone(),
            reason,
        })
    }

    fn key_fields(plan: &AggregatePlan) -> Vec<SortField> {
        plan.key_types.iter().cloned().map(SortField::new).collect()
    }

    /// Drops everything in memory and loads the committed state.
    fn reload(&mut self) -> Result<(), String> {
        self.groups = GroupTable::new(Self::key_fields(&self.plan)).map_err(|e| e.to_string())?;
        self.accs = accumulators(
            &self.plan,
            self.plugins.as_deref().map(|p| p as &dyn UserAggregates),
        )?;
        self.dirty.clear();
        self.dirty_list.clear();
        self.persisted.clear();
        self.stale.clear();
        self.sessions.clear();
        self.cold.clear();
        self.cold_groups = 0;
        self.last_used.clear();
        self.batch = None;
        self.evicted_through = None;
        self.meta = self.keys.load_meta(&self.store)?.unwrap_or_else(|| Meta {
            fingerprint: self.plan.fingerprint.clone(),
            ..Meta::default()
        });
        // Groups are read latest window first while they fit in a quarter of the budget; the
        // rest are only remembered, so a state larger than memory opens too.
        let parser = self.groups.parser();
        let fits = self.plan.spill_above_bytes / 2;
        let can_spill = self.can_spill();
        let mut visited: u64 = 0;
        let mut full = false;
        let store = self.store.clone();
        let keys = self.keys.clone();
        keys.for_each_latest_first(&store, &mut |group| {
            if group.states.len() != self.accs.len() {
                return Err(format!(
                    "a stored group has {} states for {} functions",
                    group.states.len(),
                    self.accs.len()
                ));
            }
            visited += 1;
            // Measured every 1024 groups: some accumulators count their bytes group by group.
            if can_spill && !full && visited.is_multiple_of(1024) {
                full = self.state_bytes() > fits;
            }
            if full {
                *self
                    .cold
                    .entry(group.end)
                    .or_default()
                    .entry(self.groups.hash(group.start, &group.key))
                    .or_insert(0) += 1;
                self.cold_groups += 1;
                return Ok(());
            }
            let (g, _) = self
                .groups
                .intern(group.start, group.end, parser.parse(&group.key));
            for (acc, state) in self.accs.iter_mut().zip(&group.states) {
                acc.load(g, state).map_err(|e| e.message)?;
            }
            self.dirty.push(false);
            self.persisted.push(Some((group.end, group.start)));
            self.last_used.push(0);
            if matches!(self.plan.window, Some((_, WindowKind::Session { .. }))) {
                self.sessions
                    .entry(group.key.into_boxed_slice())
                    .or_default()
                    .push(g);
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Whether groups may leave memory: complete mode emits every group every batch, and
    /// sessions merge with the other sessions of their key.
    fn can_spill(&self) -> bool {
        self.plan.mode != OutputMode::Complete
            && !matches!(self.plan.window, Some((_, WindowKind::Session { .. })))
    }

    /// Per-group bookkeeping sized for group `g`.
    fn ensure_slots(&mut self, g: u32) {
        let len = g as usize + 1;
        if self.dirty.len() < len {
            self.dirty.resize(len, false);
            self.persisted.resize(len, None);
        }
        if self.last_used.len() < len {
            self.last_used.resize(len, 0);
        }
    }

    /// After a commit (every group is stored and clean): when the groups take more than
    /// `spill_above_bytes` (half of `max_state_memory`), the least recently changed leave memory
    /// until they take half that, so that spilling is not needed again at once.
    fn spill(&mut self) {
        let target = self.plan.spill_above_bytes;
        let used = self.state_bytes();
        let n = self.groups.len();
        if !self.can_spill() || used <= target || n == 0 {
            return;
        }
        let keep = (n as f64 * (target / 2) as f64 / used as f64) as usize;
        let count = n - keep.min(n);
        if count == 0 {
            return;
        }
        self.last_used.resize(n, 0);
        let mut order: Vec<u32> = (0..n as u32).collect();
        let last_used = &self.last_used;
        order.select_nth_unstable_by_key(count - 1, |&g| last_used[g as usize]);
        let victims = &order[..count];
        for &g in victims {
            *self
                .cold
                .entry(self.groups.end(g))
                .or_default()
                .entry(self.groups.group_hash(g))
                .or_insert(0) += 1;
        }
        self.cold_groups += count as u64;
        self.remove_groups(victims);
        tracing::debug!(pipeline = %self.pipeline, spilled = count, in_memory = self.groups.len(), "aggregation state spilled");
    }

    /// Groups the chunk created (`first_new..`) that were spilled get their stored state back
    /// before the chunk's rows are added.
    fn load_cold(&mut self, first_new: usize) -> Result<(), OperatorError> {
        if self.cold.is_empty() {
            return Ok(());
        }
        for g in first_new as u32..self.groups.len() as u32 {
            let (start, end, hash) = (
                self.groups.start(g),
                self.groups.end(g),
                self.groups.group_hash(g),
            );
            if !self.cold.get(&end).is_some_and(|w| w.contains_key(&hash)) {
                continue;
            }
            let stored = self
                .keys
                .load_group(&self.store, end, start, self.groups.key(g).as_ref())
                .map_err(|e| op_error(e, true))?;
            // Not stored: a new group that shares a spilled one's hash.
            let Some(states) = stored else { continue };
            self.take_cold(end, hash);
            self.restore(g, start, end, &states)?;
        }
        Ok(())
    }

    /// Forgets one spilled group of window `end` with `hash`.
    fn take_cold(&mut self, end: i64, hash: u64) {
        if let Some(window) = self.cold.get_mut(&end) {
            if let Some(count) = window.get_mut(&hash) {
                *count -= 1;
                if *count == 0 {
                    window.remove(&hash);
                }
                self.cold_groups = self.cold_groups.saturating_sub(1);
            }
            if window.is_empty() {
                self.cold.remove(&end);
            }
        }
    }

    /// Puts stored states into group `g`, which has none yet.
    fn restore(
        &mut self,
        g: u32,
        start: i64,
        end: i64,
        states: &[Vec<u8>],
    ) -> Result<(), OperatorError> {
        if states.len() != self.accs.len() {
            return Err(op_error(
                format!(
                    "a stored group has {} states for {} functions",
                    states.len(),
                    self.accs.len()
                ),
                false,
            ));
        }
        for (acc, state) in self.accs.iter_mut().zip(states) {
            // Groups created before `g` in this chunk get their empty state first.
            acc.resize(g as usize);
            acc.load(g, state).map_err(|e| op_error(e.message, false))?;
        }
        self.ensure_slots(g);
        self.persisted[g as usize] = Some((end, start));
        Ok(())
    }

    /// Spilled groups of windows the watermark has closed: append mode reads them back to emit
    /// them; either way they are no longer remembered (the commit deletes the closed windows
    /// from the store).
    fn evict_cold(&mut self, watermark: i64) -> Result<(), OperatorError> {
        let ended: Vec<i64> = self.cold.range(..=watermark).map(|(&end, _)| end).collect();
        if ended.is_empty() {
            return Ok(());
        }
        if self.plan.mode == OutputMode::Append {
            let stored = self
                .keys
                .load_ended_by(&self.store, watermark)
                .map_err(|e| op_error(e, true))?;
            let parser = self.groups.parser();
            for group in stored {
                let hash = self.groups.hash(group.start, &group.key);
                if !self
                    .cold
                    .get(&group.end)
                    .is_some_and(|w| w.contains_key(&hash))
                {
                    continue;
                }
                let (g, created) =
                    self.groups
                        .intern(group.start, group.end, parser.parse(&group.key));
                if !created {
                    continue; // held in memory; the stored copy is older
                }
                self.take_cold(group.end, hash);
                self.restore(g, group.start, group.end, &group.states)?;
            }
        }
        for end in ended {
            if let Some(window) = self.cold.remove(&end) {
                let count: u64 = window.values().map(|&c| u64::from(c)).sum();
                self.cold_groups = self.cold_groups.saturating_sub(count);
            }
        }
        Ok(())
    }

    fn begin(&mut self, ctx: &BatchContext) {
        if self
            .batch
            .as_ref()
            .is_some_and(|b| b.batch_id == ctx.batch_id)
        {
            return;
        }
        let watermarked = self.plan.delay_us.is_some();
        self.batch = Some(BatchState {
            batch_id: ctx.batch_id,
            // Both in µs; the engine carries ms.
            eviction: ctx
                .watermark_ms
                .filter(|_| watermarked)
                .map(|ms| ms.saturating_mul(1000)),
            late: self
                .meta
                .last_eviction_ms
                .filter(|_| watermarked)
                .map(|ms| ms.saturating_mul(1000)),
            ..BatchState::default()
        });
    }

    fn mark_dirty(&mut self, g: u32) {
        let gi = g as usize;
        if gi >= self.dirty.len() {
            self.dirty.resize(gi + 1, false);
            self.persisted.resize(gi + 1, None);
        }
        if !self.dirty[gi] {
            self.dirty[gi] = true;
            self.dirty_list.push(g);
        }
    }

    fn is_late(late: Option<i64>, end: i64) -> bool {
        late.is_some_and(|wm| end <= wm)
    }

    /// Assigns the chunk's rows to groups by their row-format keys (composite keys, session
    /// windows); fills `group_of_row` / `row_of_pair`. Returns the session groups merged away
    /// (to remove once the chunk is applied).
    fn assign(
        &mut self,
        times: Option<&TimestampMicrosecondArray>,
        rows: &Rows,
        n: usize,
    ) -> Result<Vec<u32>, OperatorError> {
        self.group_of_row.clear();
        self.row_of_pair.clear();
        self.pairs_are_rows = false;
        let batch = self.batch.get_or_insert_with(BatchState::default);
        let late = batch.late;
        self.chunk_touched = None;
        let (kind, times) = match (self.plan.window.map(|(_, kind)| kind), times) {
            (Some(kind), Some(times)) => (kind, times),
            (None, _) | (_, None) => {
                for i in 0..n {
                    let g = self.groups.intern(i64::MIN, i64::MAX, rows.row(i)).0;
                    self.group_of_row.push(g);
                    self.row_of_pair.push(i as u32);
                }
                return Ok(Vec::new());
            }
        };
        batch.absorb(&ChunkTimes::of(times));
        let values = times.values();
        let (size, slide) = match kind {
            WindowKind::Session { gap } => {
                return self.assign_sessions(times, rows, micros(gap), late);
            }
            WindowKind::Tumbling { size } => (micros(size), micros(size)),
            WindowKind::Sliding { size, slide } => (micros(size), micros(slide)),
        };
        self.group_of_row.reserve(n);
        self.row_of_pair.reserve(n);
        for (i, &ts) in values.iter().enumerate().take(n) {
            if times.is_null(i) {
                continue;
            }
            let (groups, group_of_row, row_of_pair) = (
                &mut self.groups,
                &mut self.group_of_row,
                &mut self.row_of_pair,
            );
            let mut pair = |start: i64| {
                if Self::is_late(late, start + size) {
                    batch.dropped += 1;
                } else {
                    group_of_row.push(groups.intern(start, start + size, rows.row(i)).0);
                    row_of_pair.push(i as u32);
                }
            };
            if size == slide {
                pair(tumbling_start(ts, size));
            } else {
                for_each_sliding_start(ts, size, slide, pair);
            }
        }
        Ok(Vec::new())
    }

    /// Applies a chunk grouped apart from the state ([`ChunkGrouper`]): interns its cells in
    /// the order the chunk reached them (the order the per-row path creates groups in), drops
    /// the pairs of windows the watermark has closed, and fills `group_of_row` /
    /// `row_of_pair`.
    fn apply_grouped(&mut self, grouped: GroupedChunk) -> Result<(), OperatorError> {
        let batch = self.batch.get_or_insert_with(BatchState::default);
        batch.absorb(&grouped.times);
        let late = batch.late;
        let distinct = match &grouped.distinct {
            Some(column) => self
                .groups
                .encode(std::slice::from_ref(column), column.len()),
            None => self.groups.encode(&[], 1),
        }
        .map_err(|e| op_error(e, false))?;
        let mut group_of_cell = Vec::with_capacity(grouped.cells.len());
        let mut touched = Vec::with_capacity(grouped.cells.len());
        for cell in &grouped.cells {
            if Self::is_late(late, cell.end) {
                group_of_cell.push(NO_GROUP);
            } else {
                let key = distinct.row(cell.key as usize);
                let g = self.groups.intern(cell.start, cell.end, key).0;
                group_of_cell.push(g);
                touched.push(g);
            }
        }
        self.group_of_row.clear();
        self.row_of_pair.clear();
        self.pairs_are_rows = false;
        if let Some(partials) = grouped.partials {
            let mut gained = Vec::with_capacity(touched.len());
            for (cell, (&g, &pairs)) in group_of_cell
                .iter()
                .zip(&partials.pairs_of_cell)
                .enumerate()
            {
                match g {
                    NO_GROUP => batch.dropped += pairs,
                    g => gained.push((cell as u32, g)),
                }
            }
            self.gained = Some((gained, partials.functions));
            self.chunk_touched = Some(touched);
            return Ok(());
        }
        let group = |c: u32| group_of_cell.get(c as usize).copied().unwrap_or(NO_GROUP);
        let row = |pair: usize| match &grouped.row_of_pair {
            Some(rows) => rows.get(pair).copied().unwrap_or(u32::MAX),
            None => pair as u32,
        };
        if touched.len() == grouped.cells.len() {
            self.group_of_row
                .extend(grouped.cell_of_pair.iter().map(|&c| group(c)));
            match &grouped.row_of_pair {
                Some(rows) => self.row_of_pair.extend_from_slice(rows),
                None => self.pairs_are_rows = true,
            }
        } else {
            for (pair, &c) in grouped.cell_of_pair.iter().enumerate() {
                match group(c) {
                    NO_GROUP => batch.dropped += 1,
                    g => {
                        self.group_of_row.push(g);
                        self.row_of_pair.push(row(pair));
                    }
                }
            }
        }
        self.chunk_touched = Some(touched);
        Ok(())
    }

    /// Updates every accumulator with the chunk's pairs (`group_of_row` / `row_of_pair`).
    fn update_per_pair(&mut self, chunk: &RecordBatch, total: usize) -> Result<(), OperatorError> {
        // Rows are assigned in order; only sliding windows repeat a row. With no row dropped
        // and none repeated, pair i is row i and the input columns serve as they are.
        let sliding = matches!(self.plan.window, Some((_, WindowKind::Sliding { .. })));
        let identity =
            self.pairs_are_rows || (!sliding && self.row_of_pair.len() == chunk.num_rows());
        let indices = (!identity).then(|| UInt32Array::from(self.row_of_pair.clone()));
        for (acc, f) in self.accs.iter_mut().zip(&self.plan.functions) {
            let mut inputs: Vec<ArrayRef> = Vec::with_capacity(f.inputs.len());
            for &c in &f.inputs {
                let column = chunk.column(c);
                inputs.push(match &indices {
                    Some(idx) => {
                        take(column.as_ref(), idx, None).map_err(|e| op_error(e, false))?
                    }
                    None => column.clone(),
                });
            }
            if inputs.is_empty() {
                // `count` of rows: only the number of pairs matters.
                inputs.push(Arc::new(arrow::array::NullArray::new(
                    self.group_of_row.len(),
                )));
            }
            acc.update(&inputs, &self.group_of_row, total)
                .map_err(agg_error)?;
        }
        Ok(())
    }

    /// One chunk, grouped on a lane already or not.
    fn process_chunk(
        &mut self,
        chunk: RecordBatch,
        grouped: Option<GroupedChunk>,
        ctx: &BatchContext,
    ) -> Result<Vec<RecordBatch>, OperatorError> {
        self.begin(ctx);
        // A chunk folded on a lane may come without its columns: its rows are counted there.
        let n = grouped.as_ref().map_or(chunk.num_rows(), |g| g.rows);
        if n == 0 {
            return Ok(Vec::new());
        }
        let first_new = self.groups.len();
        if let Some(b) = self.batch.as_mut() {
            b.rows += n as u64;
        }
        let grouped = match (grouped, &self.grouper) {
            (Some(grouped), _) => Some(grouped),
            (None, Some(grouper)) => Some(grouper.group(&chunk).map_err(|e| op_error(e, false))?),
            (None, None) => None,
        };
        let dead = match grouped {
            Some(grouped) => {
                self.apply_grouped(grouped)?;
                Vec::new()
            }
            None => {
                let times = match self.plan.window {
                    Some((i, _)) => {
                        let column = chunk.column(i);
                        let column = match column.data_type() {
                            DataType::Timestamp(TimeUnit::Microsecond, _) => column.clone(),
                            _ => cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                                .map_err(|e| op_error(e, false))?,
                        };
                        Some(column.as_primitive::<TimestampMicrosecondType>().clone())
                    }
                    None => None,
                };
                let key_columns: Vec<ArrayRef> = self
                    .plan
                    .keys
                    .iter()
                    .map(|&i| chunk.column(i).clone())
                    .collect();
                let rows = self
                    .groups
                    .encode(&key_columns, n)
                    .map_err(|e| op_error(e, false))?;
                self.assign(times.as_ref(), &rows, n)?
            }
        };
        if let Some(max) = self.batch.as_ref().and_then(|b| b.max_time) {
            self.meta.max_event_time_ms = Some(
                self.meta
                    .max_event_time_ms
                    .map_or(max / 1000, |m| m.max(max / 1000)),
            );
        }

        self.load_cold(first_new)?;

        let total = self.groups.len();
        match self.gained.take() {
            Some((gained, partials)) => {
                for (acc, partials) in self.accs.iter_mut().zip(&partials) {
                    acc.merge_partials(partials, &gained, total)
                        .map_err(agg_error)?;
                }
            }
            None => self.update_per_pair(&chunk, total)?,
        }
        // Mark what the chunk changed: the fast path knows each touched group once; otherwise
        // every pair names one.
        match self.chunk_touched.take() {
            Some(touched) => {
                for &g in &touched {
                    self.mark_dirty(g);
                }
            }
            None => {
                let pairs = std::mem::take(&mut self.group_of_row);
                for &g in &pairs {
                    self.mark_dirty(g);
                }
                self.group_of_row = pairs;
            }
        }
        if !dead.is_empty() {
            self.flush_accumulators()?;
            self.remove_groups(&dead);
        }
        Ok(Vec::new())
    }

    /// Session windows: each row opens a session `[ts, ts + gap)` of its key that merges with
    /// every session of that key it overlaps.
    fn assign_sessions(
        &mut self,
        times: &TimestampMicrosecondArray,
        rows: &Rows,
        gap: i64,
        late: Option<i64>,
    ) -> Result<Vec<u32>, OperatorError> {
        let mut redirect: HashMap<u32, u32> = HashMap::new();
        let mut dead: Vec<u32> = Vec::new();
        let values = times.values();
        for i in 0..times.len() {
            if times.is_null(i) {
                continue;
            }
            let (ts, key) = (values[i], rows.row(i));
            if Self::is_late(late, ts + gap) {
                if let Some(b) = self.batch.as_mut() {
                    b.dropped += 1;
                }
                continue;
            }
            let list = match self.sessions.get_mut(key.as_ref()) {
                Some(list) => list,
                None => self.sessions.entry(key.as_ref().into()).or_default(),
            };
            let overlapping: Vec<u32> = list
                .iter()
                .copied()
                .filter(|&g| self.groups.start(g) < ts + gap && ts < self.groups.end(g))
                .collect();
            let g = match overlapping.split_first() {
                None => {
                    let (g, _) = self.groups.intern(ts, ts + gap, key);
                    list.push(g);
                    for acc in &mut self.accs {
                        acc.resize(self.groups.len());
                    }
                    g
                }
                Some((&dst, others)) => {
                    let mut start = self.groups.start(dst).min(ts);
                    let mut end = self.groups.end(dst).max(ts + gap);
                    for &src in others {
                        start = start.min(self.groups.start(src));
                        end = end.max(self.groups.end(src));
                        for acc in &mut self.accs {
                            acc.merge_groups(dst, src).map_err(agg_error)?;
                        }
                        redirect.insert(src, dst);
                        dead.push(src);
                        self.groups.forget(src);
                        if let Some(Some((e, s))) = self.persisted.get(src as usize) {
                            self.stale
                                .push(self.keys.group(*e, *s, self.groups.key(src).as_ref()));
                        }
                    }
                    list.retain(|g| !others.contains(g));
                    self.groups.set_bounds(dst, start, end);
                    dst
                }
            };
            self.group_of_row.push(g);
            self.row_of_pair.push(i as u32);
        }
        if !dead.is_empty() {
            for g in &mut self.group_of_row {
                while let Some(&to) = redirect.get(g) {
                    *g = to;
                }
            }
        }
        Ok(dead)
    }

    /// Applies what accumulators buffered, so that states are complete.
    fn flush_accumulators(&mut self) -> Result<(), OperatorError> {
        for acc in &mut self.accs {
            acc.flush().map_err(agg_error)?;
        }
        Ok(())
    }

    /// Removes groups for good (evicted windows, merged sessions) and renumbers the rest.
    fn remove_groups(&mut self, remove: &[u32]) {
        if remove.is_empty() {
            return;
        }
        let mut keep = vec![true; self.groups.len()];
        for &g in remove {
            keep[g as usize] = false;
        }
        let mapping = self.groups.retain(&keep);
        let new_len = self.groups.len();
        for acc in &mut self.accs {
            acc.retain(&mapping, new_len);
        }
        let mut dirty = vec![false; new_len];
        let mut persisted = vec![None; new_len];
        let mut last_used = vec![0; new_len];
        for (old, new) in mapping.iter().enumerate() {
            if let Some(new) = new {
                dirty[*new as usize] = self.dirty.get(old).copied().unwrap_or(false);
                persisted[*new as usize] = self.persisted.get(old).copied().flatten();
                last_used[*new as usize] = self.last_used.get(old).copied().unwrap_or(0);
            }
        }
        self.dirty = dirty;
        self.persisted = persisted;
        self.last_used = last_used;
        self.dirty_list = self
            .dirty_list
            .iter()
            .filter_map(|&g| mapping.get(g as usize).copied().flatten())
            .collect();
        for list in self.sessions.values_mut() {
            *list = list
                .iter()
                .filter_map(|&g| mapping.get(g as usize).copied().flatten())
                .collect();
        }
        self.sessions.retain(|_, list| !list.is_empty());
    }

    /// The output rows of `groups`, sorted by window start, then key.
    fn output(&mut self, mut groups: Vec<u32>) -> Result<Option<RecordBatch>, OperatorError> {
        if groups.is_empty() {
            return Ok(None);
        }
        groups.sort_unstable_by(|&a, &b| {
            self.groups
                .start(a)
                .cmp(&self.groups.start(b))
                .then_with(|| self.groups.key(a).cmp(&self.groups.key(b)))
        });
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.plan.output_schema.fields().len());
        if self.plan.window.is_some() {
            let starts = TimestampMicrosecondArray::from_iter_values(
                groups.iter().map(|&g| self.groups.start(g)),
            )
            .with_timezone("UTC");
            let ends = TimestampMicrosecondArray::from_iter_values(
                groups.iter().map(|&g| self.groups.end(g)),
            )
            .with_timezone("UTC");
            let DataType::Struct(fields) = super::resolve::window_type() else {
                return Err(op_error("window type is not a struct (a bug)", false));
            };
            columns.push(Arc::new(StructArray::new(
                fields,
                vec![Arc::new(starts), Arc::new(ends)],
                None,
            )));
        }
        columns.extend(
            self.groups
                .key_columns(&groups)
                .map_err(|e| op_error(e, false))?,
        );
        for acc in &mut self.accs {
            columns.push(acc.evaluate(&groups).map_err(agg_error)?);
        }
        RecordBatch::try_new(self.plan.output_schema.clone(), columns)
            .map(Some)
            .map_err(|e| op_error(e, false))
    }

    /// The keys of the groups held in memory, as text (tests of spilling).
    #[cfg(test)]
    pub(super) fn resident_keys(&self) -> Vec<String> {
        let all: Vec<u32> = (0..self.groups.len() as u32).collect();
        let Ok(columns) = self.groups.key_columns(&all) else {
            return Vec::new();
        };
        let Some(column) = columns.first() else {
            return Vec::new();
        };
        let formatter = crate::sinks::CellFormatter { utc: true };
        (0..column.len())
            .map(|i| {
                let mut text = String::new();
                formatter.write(&mut text, column.as_ref(), i);
                text
            })
            .collect()
    }

    fn state_bytes(&self) -> u64 {
        (self.groups.size_bytes() + self.accs.iter().map(|a| a.size_bytes()).sum::<usize>()) as u64
    }

    /// Fails the batch, as the user's to fix, once the live groups outgrow `max_state_memory`:
    /// one pipeline's state must not take the whole process (and every pipeline) down with it.
    fn check_state_memory(&self, used: u64) -> Result<(), OperatorError> {
        let limit = self.plan.max_state_bytes;
        if used <= limit {
            return Ok(());
        }
        let hint = if self.plan.delay_us.is_none() {
            "add a watermark so that finished windows are dropped, group by fewer distinct keys, or raise max_state_memory in [aggregate]"
        } else {
            "group by fewer distinct keys, shorten the watermark or the windows, or raise max_state_memory in [aggregate]"
        };
        Err(OperatorError {
            stage: "aggregate".into(),
            message: format!(
                "the aggregation state holds {} groups in {}, more than max_state_memory ({}): {hint}",
                self.groups.len(),
                ByteSize(used),
                ByteSize(limit),
            ),
            class: ErrorClass::User,
            retryable: false,
        })
    }
}

impl Operator for AggregateOperator {
    fn output_schema(&self) -> SchemaRef {
        self.plan.output_schema.clone()
    }

    fn stage_id(&self) -> Option<String> {
        Some("aggregate".into())
    }

    fn restore(&mut self) -> Result<(), OperatorError> {
        self.restore_state().map_err(|err| OperatorError {
            stage: "aggregate".into(),
            class: match err {
                OpenError::Load { .. } => ErrorClass::External,
                _ => ErrorClass::User,
            },
            retryable: matches!(err, OpenError::Load { .. }),
            message: err.to_string(),
        })
    }

    fn process(
        &mut self,
        chunk: RecordBatch,
        ctx: &BatchContext,
    ) -> Result<Vec<RecordBatch>, OperatorError> {
        self.process_chunk(chunk, None, ctx)
    }

    fn chunk_preparer(&self) -> Option<Arc<dyn PrepareChunk>> {
        self.grouper.clone().map(|g| g as Arc<dyn PrepareChunk>)
    }

    fn process_prepared(
        &mut self,
        chunk: RecordBatch,
        prepared: PreparedChunk,
        ctx: &BatchContext,
    ) -> Result<Vec<RecordBatch>, OperatorError> {
        // Anything but a grouped chunk (a bug) is grouped again here.
        let grouped = prepared.downcast::<GroupedChunk>().ok().map(|g| *g);
        self.process_chunk(chunk, grouped, ctx)
    }
    fn finish_batch(&mut self, ctx: &BatchContext) -> Result<Vec<RecordBatch>, OperatorError> {
        self.begin(ctx);
        self.flush_accumulators()?;
        let eviction = self.batch.as_ref().and_then(|b| b.eviction);
        if let Some(wm) = eviction {
            self.evict_cold(wm)?;
        }
        let evictable: Vec<u32> = match eviction {
            Some(wm) => (0..self.groups.len() as u32)
                .filter(|&g| self.groups.end(g) <= wm)
                .collect(),
            None => Vec::new(),
        };
        let emit = match self.plan.mode {
            OutputMode::Append => evictable.clone(),
            OutputMode::Update => self.dirty_list.clone(),
            OutputMode::Complete => (0..self.groups.len() as u32).collect(),
        };
        let updated = self.dirty_list.len() as u64;
        let out = self.output(emit)?;
        self.remove_groups(&evictable);
        self.evicted_through = eviction;
        let batch = self.batch.clone().unwrap_or_default();
        let memory_used_bytes = self.state_bytes();
        self.last_progress = Some(StateOperatorProgress {
            num_rows_total: self.groups.len() as u64 + self.cold_groups,
            num_rows_in_memory: self.groups.len() as u64,
            num_rows_updated: updated,
            num_rows_removed: evictable.len() as u64,
            num_rows_dropped_by_watermark: batch.dropped,
            memory_used_bytes,
            event_time_min_ms: batch.min_time.map(|t| t.div_euclid(1000)),
            event_time_max_ms: batch.max_time.map(|t| t.div_euclid(1000)),
            event_time_avg_ms: (batch.timed_rows > 0)
                .then(|| (batch.sum_time / i128::from(batch.timed_rows)) as i64 / 1000),
        });
        // Measured once a batch (some accumulators count their bytes group by group), on what
        // the commit would keep.
        self.check_state_memory(memory_used_bytes)?;
        Ok(out.into_iter().collect())
    }

    fn prepare_commit(&mut self, changes: &mut WriteSet) -> Result<(), OperatorError> {
        for key in self.stale.drain(..) {
            changes.delete(key);
        }
        let mut states = Vec::with_capacity(self.accs.len());
        for &g in &self.dirty_list {
            let (start, end) = (self.groups.start(g), self.groups.end(g));
            if let Some(Some((old_end, old_start))) = self.persisted.get(g as usize)
                && (*old_end, *old_start) != (end, start)
            {
                changes.delete(
                    self.keys
                        .group(*old_end, *old_start, self.groups.key(g).as_ref()),
                );
            }
            states.clear();
            for acc in &self.accs {
                let mut bytes = Vec::new();
                acc.save(g, &mut bytes);
                states.push(bytes);
            }
            changes.put(
                self.keys.group(end, start, self.groups.key(g).as_ref()),
                encode_states(&states),
            );
        }
        if let Some(wm) = self.evicted_through {
            let (from, to) = self.keys.ended_by(wm);
            changes.delete_range(from, to);
            self.meta.last_eviction_ms = Some(wm.div_euclid(1000));
        }
        let meta = serde_json::to_vec(&self.meta).map_err(|e| op_error(e, false))?;
        changes.put(self.keys.meta(), meta);
        Ok(())
    }

    fn committed(&mut self) {
        let batch_id = self.batch.as_ref().map_or(0, |b| b.batch_id);
        // Groups created by this batch are the most recently changed, not the least.
        self.last_used.resize(self.groups.len(), 0);
        for &g in &self.dirty_list {
            if let Some(used) = self.last_used.get_mut(g as usize) {
                *used = batch_id;
            }
            if let Some(slot) = self.persisted.get_mut(g as usize) {
                *slot = Some((self.groups.end(g), self.groups.start(g)));
            }
            if let Some(d) = self.dirty.get_mut(g as usize) {
                *d = false;
            }
        }
        self.dirty_list.clear();
        self.batch = None;
        self.evicted_through = None;
        self.spill();
    }

    fn abort_batch(&mut self) {
        if let Err(err) = self.reload() {
            tracing::error!(pipeline = %self.pipeline, "cannot reload aggregation state after a failed batch: {err}");
        }
    }

    fn next_watermark(&self) -> Option<i64> {
        let delay = self.plan.delay_us?;
        let candidate = self.meta.max_event_time_ms? - delay / 1000;
        Some(
            self.meta
                .last_eviction_ms
                .map_or(candidate, |last| last.max(candidate)),
        )
    }

    fn wants_no_data_batch(&self, watermark_ms: Option<i64>) -> bool {
        let (Some(_), Some(wm)) = (self.plan.delay_us, watermark_ms) else {
            return false;
        };
        let advanced = self.meta.last_eviction_ms.is_none_or(|last| wm > last);
        let wm_us = wm.saturating_mul(1000);
        advanced
            && (self.groups.ends().iter().any(|&end| end <= wm_us)
                || self.cold.keys().next().is_some_and(|&end| end <= wm_us))
    }

    fn plugin_costs(&self) -> Vec<Arc<crate::engine::PluginCosts>> {
        self.plugins
            .as_ref()
            .map(|p| p.plugin_costs())
            .unwrap_or_default()
    }

    fn state_progress(&self) -> Option<StateOperatorProgress> {
        self.last_progress.clone()
    }
}

const NO_GROUP: u32 = u32::MAX;

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
