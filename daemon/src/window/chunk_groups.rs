//! The part of grouping that depends on one chunk alone: its keys' local dictionary, each row's
//! window, and the distinct (window, key) cells the chunk reaches, in the order it first
//! reaches them. It reads nothing of the operator's state, so the lanes run it on several
//! chunks at once; the operator then interns a chunk's few cells and updates its accumulators
//! on the pipeline's thread, chunk after chunk, exactly as one thread alone would.
//!
//! It serves aggregations keyed by one simple column (or none) in tumbling, sliding or no
//! windows; session windows and composite keys take the operator's per-row path.

use super::assign::{for_each_sliding_start, tumbling_start};
use super::local_keys::{self, LocalKeys};
use super::partials::{self, ChunkPartials, Pairs, PartialKind};
use super::resolve::AggregatePlan;
use crate::config::WindowKind;
use arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int32Type, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// Groups chunks of one aggregation: what it needs of the plan, nothing of the state.
#[derive(Debug, Clone)]
pub struct ChunkGrouper {
    /// The grouping column; `None` when the aggregation has no `group_by`.
    key: Option<usize>,
    /// The event-time column and its (tumbling or sliding) windows, in µs: (column, size, slide).
    window: Option<(usize, i64, i64)>,
    /// Every output function's state adds up per cell ([`partials`]): the lanes fold each
    /// chunk per cell, and the pipeline's thread adds a few states per chunk to its groups.
    partials: Option<Vec<PartialKind>>,
}

/// A (window, key) pair a chunk reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// Window start, µs (`i64::MIN` without windows).
    pub start: i64,
    /// Window end, µs (`i64::MAX` without windows).
    pub end: i64,
    /// Local id of the key: its row in [`GroupedChunk::distinct`].
    pub key: u32,
}

/// Event-time figures of one chunk's rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkTimes {
    /// Earliest and latest event time, µs, of the rows that have one.
    pub range: Option<(i64, i64)>,
    /// Sum of those event times.
    pub sum: i128,
    /// How many rows have an event time.
    pub timed_rows: u64,
    /// How many rows have none (they are dropped).
    pub untimed_rows: u64,
}

/// One chunk, grouped.
#[derive(Debug)]
pub struct GroupedChunk {
    /// The distinct keys, by local id; `None` without a `group_by`.
    pub distinct: Option<ArrayRef>,
    /// The distinct cells, in the order the chunk first reaches them.
    pub cells: Vec<Cell>,
    /// The cell of each pair (a row in one of its windows), pairs in row order.
    pub cell_of_pair: Vec<u32>,
    /// The row of each pair, when pairs are not the rows one for one (sliding windows, rows
    /// without an event time).
    pub row_of_pair: Option<Vec<u32>>,
    /// Event-time figures (without windows: nothing).
    pub times: ChunkTimes,
    /// The chunk folded per cell, when every function's state adds up; `cell_of_pair` and
    /// `row_of_pair` are then left empty, as nothing after the fold reads them.
    pub partials: Option<ChunkPartials>,
    /// The chunk's rows (its columns may be gone once folded).
    pub rows: usize,
}

const NO_CELL: u32 = u32::MAX;

impl ChunkGrouper {
    /// A grouper for `plan`, or `None` when its chunks need the per-row path.
    pub fn for_plan(plan: &AggregatePlan) -> Option<ChunkGrouper> {
        let key = match (plan.keys.as_slice(), plan.key_types.as_slice()) {
            ([], []) => None,
            ([k], [t]) if local_keys::supports(t) => Some(*k),
            _ => return None,
        };
        let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let window = match plan.window {
            None => None,
            Some((column, WindowKind::Tumbling { size })) => {
                Some((column, micros(size), micros(size)))
            }
            Some((column, WindowKind::Sliding { size, slide })) => {
                Some((column, micros(size), micros(slide)))
            }
            Some((_, WindowKind::Session { .. })) => return None,
        };
        Some(ChunkGrouper {
            key,
            window,
            partials: PartialKind::for_plan(plan),
        })
    }

    /// Groups `chunk`.
    pub fn group(&self, chunk: &RecordBatch) -> Result<GroupedChunk, ArrowError> {
        let mut grouped = self.pairs(chunk)?;
        if grouped.partials.is_none()
            && let Some(kinds) = &self.partials
        {
            let pairs = Pairs {
                cell_of_pair: &grouped.cell_of_pair,
                row_of_pair: grouped.row_of_pair.as_deref(),
                cells: grouped.cells.len(),
            };
            grouped.partials = Some(partials::fold(kinds, chunk, &pairs)?);
            grouped.cell_of_pair = Vec::new();
            grouped.row_of_pair = None;
        }
        Ok(grouped)
    }

    /// Only rows are counted (every function is `count` of rows), without windows.
    fn rows_per_key_alone(&self) -> Option<usize> {
        match (&self.window, &self.partials) {
            (None, Some(kinds)) if kinds.iter().all(|kind| *kind == PartialKind::Rows) => {
                Some(kinds.len())
            }
            _ => None,
        }
    }

    /// The chunk's keys, cells and pairs.
    fn pairs(&self, chunk: &RecordBatch) -> Result<GroupedChunk, ArrowError> {
        let n = chunk.num_rows();
        if let (Some(functions), Some(k)) = (self.rows_per_key_alone(), self.key)
            && let Some(dictionary) = chunk.column(k).as_dictionary_opt::<Int32Type>()
            && dictionary.keys().null_count() == 0
        {
            // A dictionary's keys are its rows' local ids already: they are tallied as they are.
            let distinct = local_keys::every_value_once(dictionary, false)?;
            let width = distinct.len();
            let keys = dictionary.keys().values();
            return Ok(Self::rows_per_key(Some(distinct), keys, width, functions));
        }
        let mut local = LocalKeys::default();
        let distinct = match self.key {
            Some(k) => {
                let column = chunk.column(k);
                local.build(column)?;
                Some(local.distinct(column)?)
            }
            None => {
                local.id_of_row.resize(n, 0);
                None
            }
        };
        let width = distinct.as_ref().map_or(1, |d| d.len());
        let ids = &local.id_of_row;
        let Some((column, size, slide)) = self.window else {
            if let Some(functions) = self.rows_per_key_alone() {
                return Ok(Self::rows_per_key(distinct, ids, width, functions));
            }
            // One window: a key's cell is one lookup.
            let mut cell_of_key = vec![NO_CELL; width];
            let mut list = Vec::new();
            let cell_of_pair = ids.iter().map(|&id| {
                let slot = &mut cell_of_key[id as usize];
                if *slot == NO_CELL {
                    *slot = list.len() as u32;
                    list.push(Cell {
                        start: i64::MIN,
                        end: i64::MAX,
                        key: id,
                    });
                }
                *slot
            });
            let cell_of_pair = cell_of_pair.collect();
            return Ok(GroupedChunk {
                distinct,
                cells: list,
                cell_of_pair,
                row_of_pair: None,
                times: ChunkTimes::default(),
                partials: None,
                rows: n,
            });
        };
        let column = chunk.column(column);
        let column = match column.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => column.clone(),
            _ => cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))?,
        };
        let times = column.as_primitive::<TimestampMicrosecondType>();
        let values = &times.values()[..n];
        let mut cells = Cells::new(width);
        let mut cell_of_pair = Vec::with_capacity(n);
        let no_nulls = times.null_count() == 0;
        let figures = ChunkTimes::of(times);
        let mut row_of_pair = (!no_nulls || size != slide).then(|| Vec::with_capacity(n));
        if size == slide {
            // The window of the previous row: most rows fall in it, and checking is much
            // cheaper than the division that finds a window.
            let (mut start, mut end, mut base) = (i64::MAX, i64::MIN, 0);
            for (i, (&ts, &id)) in values.iter().zip(ids).enumerate() {
                if !no_nulls && times.is_null(i) {
                    continue;
                }
                if ts < start || ts >= end {
                    start = tumbling_start(ts, size);
                    end = start.saturating_add(size);
                    base = cells.window(start);
                }
                cell_of_pair.push(cells.of(base, start, end, id));
                if let Some(rows) = row_of_pair.as_mut() {
                    rows.push(i as u32);
                }
            }
        } else {
            let rows = row_of_pair.get_or_insert_with(Vec::new);
            for (i, (&ts, &id)) in values.iter().zip(ids).enumerate() {
                if !no_nulls && times.is_null(i) {
                    continue;
                }
                for_each_sliding_start(ts, size, slide, |start| {
                    let base = cells.window(start);
                    cell_of_pair.push(cells.of(base, start, start.saturating_add(size), id));
                    rows.push(i as u32);
                });
            }
        }
        Ok(GroupedChunk {
            distinct,
            cells: cells.list,
            cell_of_pair,
            row_of_pair,
            times: figures,
            partials: None,
            rows: n,
        })
    }
}

impl ChunkGrouper {
    /// Without windows, when every function counts rows: each key's rows are tallied by local
    /// id, and the cells (one per key present) are put in the order the chunk first reaches
    /// them by reading only as far as the last key's first row. No per-row cell is written.
    fn rows_per_key<T: Copy + TryInto<u32>>(
        distinct: Option<ArrayRef>,
        ids: &[T],
        width: usize,
        functions: usize,
    ) -> GroupedChunk {
        // Ids outside u32 (a negative dictionary key, which Arrow refuses) are left out.
        let index = |id: T| id.try_into().map_or(usize::MAX, |id: u32| id as usize);
        let per_id = partials::tally(ids, width, index);
        let present = per_id.iter().filter(|&&n| n > 0).count();
        let mut reached = vec![false; width];
        let mut cells = Vec::with_capacity(present);
        for &id in ids {
            if cells.len() == present {
                break;
            }
            let id = index(id);
            if let Some(seen) = reached.get_mut(id)
                && !*seen
            {
                *seen = true;
                cells.push(Cell {
                    start: i64::MIN,
                    end: i64::MAX,
                    key: id as u32,
                });
            }
        }
        let pairs_of_cell = cells
            .iter()
            .map(|cell| per_id.get(cell.key as usize).copied().unwrap_or(0))
            .collect();
        GroupedChunk {
            distinct,
            cells,
            cell_of_pair: Vec::new(),
            row_of_pair: None,
            times: ChunkTimes::default(),
            partials: Some(ChunkPartials::of_row_counts(functions, pairs_of_cell)),
            rows: ids.len(),
        }
    }
}

impl ChunkTimes {
    /// Figures of an event-time column.
    pub fn of(times: &TimestampMicrosecondArray) -> ChunkTimes {
        match times.nulls() {
            None => ChunkTimes::of_all(times.values()),
            Some(valid) => ChunkTimes::of_valid(times.values(), |i| valid.is_valid(i)),
        }
    }

    /// Figures of a column without nulls. Baseline x86-64 has no 64-bit vector compare, so
    /// the minimum and maximum are kept in eight independent lanes (one chain of compares per
    /// lane instead of one for the whole chunk), and the sum in i128 lanes (exact for any
    /// values).
    fn of_all(values: &[i64]) -> ChunkTimes {
        const LANES: usize = 8;
        let Some(&first) = values.first() else {
            return ChunkTimes::default();
        };
        let (mut lo, mut hi, mut sum) = ([first; LANES], [first; LANES], [0i128; LANES]);
        let mut blocks = values.chunks_exact(LANES);
        for block in &mut blocks {
            for (j, &v) in block.iter().enumerate() {
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
                sum[j] += i128::from(v);
            }
        }
        for (j, &v) in blocks.remainder().iter().enumerate() {
            lo[j] = lo[j].min(v);
            hi[j] = hi[j].max(v);
            sum[j] += i128::from(v);
        }
        ChunkTimes {
            range: Some((
                lo.iter().copied().fold(first, i64::min),
                hi.iter().copied().fold(first, i64::max),
            )),
            sum: sum.iter().sum(),
            timed_rows: values.len() as u64,
            untimed_rows: 0,
        }
    }

    fn of_valid(values: &[i64], valid: impl Fn(usize) -> bool) -> ChunkTimes {
        let mut figures = ChunkTimes::default();
        for (i, &ts) in values.iter().enumerate() {
            if valid(i) {
                figures.range = Some(
                    figures
                        .range
                        .map_or((ts, ts), |(lo, hi)| (lo.min(ts), hi.max(ts))),
                );
                figures.sum += i128::from(ts);
                figures.timed_rows += 1;
            } else {
                figures.untimed_rows += 1;
            }
        }
        figures
    }
}

/// (window start, local id) → cell, so that a row whose key and window the chunk has already
/// reached costs one array lookup: a flat table, one row of `width` slots per window.
struct Cells {
    starts: Vec<i64>,
    slots: Vec<u32>,
    /// The window found last, as its row's first slot.
    last: usize,
    width: usize,
    list: Vec<Cell>,
}

impl Cells {
    fn new(width: usize) -> Cells {
        Cells {
            starts: Vec::new(),
            slots: Vec::new(),
            last: 0,
            width,
            list: Vec::new(),
        }
    }

    /// The first slot of window `start`'s row (made on first use).
    #[inline]
    fn window(&mut self, start: i64) -> usize {
        if self.starts.get(self.last / self.width.max(1)) == Some(&start) {
            return self.last;
        }
        let row = match self.starts.iter().position(|&s| s == start) {
            Some(row) => row,
            None => {
                self.starts.push(start);
                self.slots.resize(self.slots.len() + self.width, NO_CELL);
                self.starts.len() - 1
            }
        };
        self.last = row * self.width;
        self.last
    }

    /// The cell of `key` in the window whose row starts at `base`.
    #[inline]
    fn of(&mut self, base: usize, start: i64, end: i64, key: u32) -> u32 {
        let slot = &mut self.slots[base + key as usize];
        if *slot == NO_CELL {
            *slot = self.list.len() as u32;
            self.list.push(Cell { start, end, key });
        }
        *slot
    }
}

impl crate::engine::PrepareChunk for ChunkGrouper {
    fn prepare(
        &self,
        chunk: &RecordBatch,
    ) -> Result<crate::engine::PreparedChunk, crate::engine::OperatorError> {
        match self.group(chunk) {
            Ok(grouped) => Ok(Box::new(grouped)),
            Err(err) => Err(crate::engine::OperatorError {
                stage: "aggregate".into(),
                message: err.to_string(),
                class: crate::engine::ErrorClass::Internal,
                retryable: false,
            }),
        }
    }

    fn holds_all_it_reads(&self, prepared: &crate::engine::PreparedChunk) -> bool {
        prepared
            .downcast_ref::<GroupedChunk>()
            .is_some_and(|grouped| grouped.partials.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Int64Array, StringArray};
    use arrow::datatypes::{Field, Int32Type, Schema};
    use std::sync::Arc;

    #[test]
    fn counting_rows_per_key_without_windows_gives_the_cells_and_counts_the_general_fold_gives()
    -> Result<(), ArrowError> {
        // Keys 0..4, with nulls or without; key 3 appears only in the last row, key 4 never.
        for nulls in [true, false] {
            let mut keys: Vec<Option<i32>> = (0..1000)
                .map(|i| match i % 7 {
                    0 | 3 => Some(2),
                    1 if nulls => None,
                    2 | 5 => Some(0),
                    _ => Some(1),
                })
                .collect();
            keys.push(Some(3));
            let words = DictionaryArray::<Int32Type>::try_new(
                keys.into_iter().collect(),
                Arc::new(StringArray::from(vec!["a", "b", "c", "d", "e"])),
            )?;
            let n = words.len();
            let schema = Schema::new(vec![
                Field::new("word", words.data_type().clone(), true),
                Field::new("v", DataType::Int64, false),
            ]);
            let chunk = RecordBatch::try_new(
                Arc::new(schema),
                vec![Arc::new(words), Arc::new(Int64Array::from(vec![1i64; n]))],
            )?;
            let grouper = |partials| ChunkGrouper {
                key: Some(0),
                window: None,
                partials: Some(partials),
            };
            let fast = grouper(vec![PartialKind::Rows, PartialKind::Rows]).group(&chunk)?;
            // A sum besides the count takes the general path: per-row cells, then the fold.
            let general = grouper(vec![PartialKind::Rows, PartialKind::SumInt(1)]).group(&chunk)?;
            assert_eq!(fast.cells, general.cells, "nulls: {nulls}");
            let order: &[u32] = if nulls {
                &[2, 5, 0, 1, 3]
            } else {
                &[2, 1, 0, 3]
            };
            assert_eq!(fast.cells.iter().map(|c| c.key).collect::<Vec<_>>(), order);
            assert_eq!(
                fast.distinct.as_ref().map(|d| d.len()),
                general.distinct.as_ref().map(|d| d.len())
            );
            let (Some(fast), Some(general)) = (fast.partials, general.partials) else {
                return Err(ArrowError::ComputeError("no partial states".into()));
            };
            assert_eq!(fast.pairs_of_cell, general.pairs_of_cell, "nulls: {nulls}");
            assert_eq!(fast.pairs_of_cell.iter().sum::<u64>(), n as u64);
            assert_eq!(fast.functions[0], general.functions[0]);
            assert_eq!(fast.functions[1], general.functions[0]);
        }
        Ok(())
    }

    #[test]
    fn the_lane_figures_of_a_column_without_nulls_equal_the_row_by_row_figures() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state
        };
        for len in 0..40 {
            for spread in [0u64, 1000, u64::MAX] {
                let values: Vec<i64> = (0..len)
                    .map(|_| match spread {
                        0 => 1_700_000_000_000_000,
                        u64::MAX => next() as i64,
                        s => 1_700_000_000_000_000 + (next() % s) as i64,
                    })
                    .collect();
                assert_eq!(
                    ChunkTimes::of_all(&values),
                    ChunkTimes::of_valid(&values, |_| true),
                    "{len} values spread over {spread}"
                );
            }
        }
        let extremes = [
            i64::MIN,
            i64::MAX,
            i64::MIN,
            i64::MAX,
            0,
            -1,
            i64::MAX,
            i64::MAX,
            i64::MAX,
        ];
        assert_eq!(
            ChunkTimes::of_all(&extremes),
            ChunkTimes::of_valid(&extremes, |_| true)
        );
    }
}
