//! Grouped accumulators in the style of DataFusion's `GroupsAccumulator`: each holds one column
//! of states indexed by group and updates many groups from one chunk in a single pass.
//!
//! Built-ins cover count, sum, avg, min, max, first, last and count_distinct; a user aggregate
//! (a wasm plugin behind [`UserAggregateFn`]) gets exactly one call per chunk.

use super::partials::CellPartials;
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::row::{RowConverter, SortField};
use std::collections::HashSet;
use std::sync::Arc;

/// An accumulator failed (bad state bytes, an Arrow error, a plugin failure).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AggregateError {
    /// What happened.
    pub message: String,
    /// Whether retrying the batch may help (a plugin trap may be transient; corrupt state not).
    pub retryable: bool,
}

impl AggregateError {
    fn internal(message: impl Into<String>) -> Self {
        AggregateError {
            message: message.into(),
            retryable: false,
        }
    }
}

impl From<arrow::error::ArrowError> for AggregateError {
    fn from(err: arrow::error::ArrowError) -> Self {
        AggregateError::internal(err.to_string())
    }
}

/// A user-defined aggregate, one call per chunk; states are opaque bytes the host keeps.
/// An empty state means a group the function has not seen yet.
pub trait UserAggregateFn: Send {
    /// Type of the finished values.
    fn output_type(&self) -> DataType;
    /// New states of `states.len()` groups after adding the rows; `group_of_row[i]` indexes
    /// `states`.
    fn update(
        &mut self,
        states: &[Vec<u8>],
        input: &[ArrayRef],
        group_of_row: &[u32],
    ) -> Result<Vec<Vec<u8>>, AggregateError>;
    /// Pairwise merge of two lists of states.
    fn merge(
        &mut self,
        left: &[Vec<u8>],
        right: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, AggregateError>;
    /// One output value per state.
    fn finish(&mut self, states: &[Vec<u8>]) -> Result<ArrayRef, AggregateError>;
}

/// One output column's states, by group index.
pub trait GroupsAccumulator: Send {
    /// Adds pair i (a row in one of its windows) to group `group_of_row[i]`; groups up to
    /// `total_groups` may be new.
    fn update(
        &mut self,
        values: &[ArrayRef],
        group_of_row: &[u32],
        total_groups: usize,
    ) -> Result<(), AggregateError>;
    /// Adds a chunk's partial states (one per cell, folded on a lane) to the groups
    /// `gained` pairs them with: (cell, group). Only the accumulators whose states add up
    /// take them; the operator folds per cell only when every function's does.
    fn merge_partials(
        &mut self,
        _partials: &CellPartials,
        _gained: &[(u32, u32)],
        _total_groups: usize,
    ) -> Result<(), AggregateError> {
        Err(AggregateError::internal(
            "partial states given to an aggregate whose states do not add up (a bug)",
        ))
    }
    /// Makes room for `total_groups` groups (new ones start empty).
    fn resize(&mut self, total_groups: usize);
    /// Applies rows that `update` buffered (accumulators that work per batch rather than per
    /// chunk). Called before a batch's results are read or its groups renumbered.
    fn flush(&mut self) -> Result<(), AggregateError> {
        Ok(())
    }
    /// Folds group `src` into group `dst` (session windows that grew together).
    fn merge_groups(&mut self, dst: u32, src: u32) -> Result<(), AggregateError>;
    /// The output values of `groups`, in order.
    fn evaluate(&mut self, groups: &[u32]) -> Result<ArrayRef, AggregateError>;
    /// Appends group `g`'s state.
    fn save(&self, g: u32, out: &mut Vec<u8>);
    /// Restores group `g` (which must be the next index) from saved bytes.
    fn load(&mut self, g: u32, bytes: &[u8]) -> Result<(), AggregateError>;
    /// Keeps the groups `mapping` maps to new indices (`new_len` of them).
    fn retain(&mut self, mapping: &[Option<u32>], new_len: usize);
    /// Approximate memory held.
    fn size_bytes(&self) -> usize;
}

fn retain_vec<T: Clone + Default>(v: &mut Vec<T>, mapping: &[Option<u32>], new_len: usize) {
    let mut out = vec![T::default(); new_len];
    for (old, new) in mapping.iter().enumerate() {
        if let (Some(new), Some(value)) = (new, v.get(old)) {
            out[*new as usize] = value.clone();
        }
    }
    *v = out;
}

/// Calls `add(group, value)` for every row whose value is not null; rows without nulls take a
/// loop without a validity check.
fn for_each_valid<T: Copy>(
    column: &dyn Array,
    data: &[T],
    group_of_row: &[u32],
    mut add: impl FnMut(usize, T),
) {
    if column.null_count() == 0 {
        for (&g, &v) in group_of_row.iter().zip(data) {
            add(g as usize, v);
        }
    } else {
        for (i, (&g, &v)) in group_of_row.iter().zip(data).enumerate() {
            if column.is_valid(i) {
                add(g as usize, v);
            }
        }
    }
}

fn mismatched_partials(accumulator: &str) -> AggregateError {
    AggregateError::internal(format!(
        "partial states of another function given to a {accumulator} (a bug)"
    ))
}

/// Group `g`'s state, which `resize` made room for.
fn group_slot<T>(states: &mut [T], g: u32) -> Result<&mut T, AggregateError> {
    states
        .get_mut(g as usize)
        .ok_or_else(|| AggregateError::internal("a partial state for no group (a bug)"))
}

/// Cell `cell`'s partial state.
fn cell_value<T: Copy>(partials: &[T], cell: u32) -> Result<T, AggregateError> {
    partials
        .get(cell as usize)
        .copied()
        .ok_or_else(|| AggregateError::internal("a group gained a cell the chunk lacks (a bug)"))
}

fn read_i64(bytes: &[u8], at: usize) -> Result<i64, AggregateError> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_le_bytes)
        .ok_or_else(|| AggregateError::internal("stored aggregate state is truncated"))
}

fn ensure_len<T: Clone + Default>(v: &mut Vec<T>, g: u32) -> Result<(), AggregateError> {
    if g as usize != v.len() {
        return Err(AggregateError::internal(
            "aggregate state loaded out of order (a bug)",
        ));
    }
    v.push(T::default());
    Ok(())
}

/// `count` of rows, or of non-null values when it has an input column.
#[derive(Debug, Default)]
pub struct Count {
    counts: Vec<i64>,
    of_column: bool,
}

impl Count {
    /// Counts rows (`of_column = false`) or non-null values.
    pub fn new(of_column: bool) -> Count {
        Count {
            counts: Vec::new(),
            of_column,
        }
    }
}

impl GroupsAccumulator for Count {
    fn resize(&mut self, total: usize) {
        self.counts.resize(total, 0);
    }
    fn update(
        &mut self,
        values: &[ArrayRef],
        group_of_row: &[u32],
        total: usize,
    ) -> Result<(), AggregateError> {
        self.counts.resize(total, 0);
        match values
            .first()
            .filter(|v| self.of_column && v.null_count() > 0)
        {
            Some(column) => {
                for (i, &g) in group_of_row.iter().enumerate() {
                    if column.is_valid(i) {
                        self.counts[g as usize] += 1;
                    }
                }
            }
            None => {
                for &g in group_of_row {
                    self.counts[g as usize] += 1;
                }
            }
        }
        Ok(())
    }
    fn merge_partials(
        &mut self,
        partials: &CellPartials,
        gained: &[(u32, u32)],
        total: usize,
    ) -> Result<(), AggregateError> {
        let CellPartials::Counts(counts) = partials else {
            return Err(mismatched_partials("count"));
        };
        self.counts.resize(total, 0);
        for &(cell, g) in gained {
            *group_slot(&mut self.counts, g)? += cell_value(counts, cell)?;
        }
        Ok(())
    }
    fn merge_groups(&mut self, dst: u32, src: u32) -> Result<(), AggregateError> {
        self.counts[dst as usize] += self.counts[src as usize];
        Ok(())
    }
    fn evaluate(&mut self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        Ok(Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|&g| self.counts[g as usize]),
        )))
    }
    fn save(&self, g: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.counts[g as usize].to_le_bytes());
    }
    fn load(&mut self, g: u32, bytes: &[u8]) -> Result<(), AggregateError> {
        ensure_len(&mut self.counts, g)?;
        self.counts[g as usize] = read_i64(bytes, 0)?;
        Ok(())
    }
    fn retain(&mut self, mapping: &[Option<u32>], new_len: usize) {
        retain_vec(&mut self.counts, mapping, new_len);
    }
    fn size_bytes(&self) -> usize {
        self.counts.len() * 8
    }
}

/// `sum` of integers (Int64 result, wrapping as Spark does outside ANSI mode).
#[derive(Debug, Default)]
pub struct SumInt {
    sums: Vec<i64>,
    seen: Vec<bool>,
}

impl GroupsAccumulator for SumInt {
    fn resize(&mut self, total: usize) {
        self.sums.resize(total, 0);
        self.seen.resize(total, false);
    }
    fn update(
        &mut self,
        values: &[ArrayRef],
        group_of_row: &[u32],
        total: usize,
    ) -> Result<(), AggregateError> {
        self.sums.resize(total, 0);
        self.seen.resize(total, false);
        let column = cast(&values[0], &DataType::Int64)?;
        let column = column.as_primitive::<Int64Type>();
        let data = column.values();
        let (sums, seen) = (&mut self.sums, &mut self.seen);
        for_each_valid(column, data, group_of_row, |g, v| {
            sums[g] = sums[g].wrapping_add(v);
            seen[g] = true;
        });
        Ok(())
    }
    fn merge_partials(
        &mut self,
        partials: &CellPartials,
        gained: &[(u32, u32)],
        total: usize,
    ) -> Result<(), AggregateError> {
        let CellPartials::SumInt { sums, seen } = partials else {
            return Err(mismatched_partials("integer sum"));
        };
        self.resize(total);
        for &(cell, g) in gained {
            let sum = group_slot(&mut self.sums, g)?;
            *sum = sum.wrapping_add(cell_value(sums, cell)?);
            *group_slot(&mut self.seen, g)? |= cell_value(seen, cell)?;
        }
        Ok(())
    }
    fn merge_groups(&mut self, dst: u32, src: u32) -> Result<(), AggregateError> {
        let (d, s) = (dst as usize, src as usize);
        self.sums[d] = self.sums[d].wrapping_add(self.sums[s]);
        self.seen[d] |= self.seen[s];
        Ok(())
    }
    fn evaluate(&mut self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        Ok(Arc::new(
            groups
                .iter()
                .map(|&g| self.seen[g as usize].then_some(self.sums[g as usize]))
                .collect::<Int64Array>(),
        ))
    }
    fn save(&self, g: u32, out: &mut Vec<u8>) {
        out.push(u8::from(self.seen[g as usize]));
        out.extend_from_slice(&self.sums[g as usize].to_le_bytes());
    }
    fn load(&mut self, g: u32, bytes: &[u8]) -> Result<(), AggregateError> {
        ensure_len(&mut self.sums, g)?;
        ensure_len(&mut self.seen, g)?;
        self.seen[g as usize] = bytes.first().copied().unwrap_or(0) == 1;
        self.sums[g as usize] = read_i64(bytes, 1)?;
        Ok(())
    }
    fn retain(&mut self, mapping: &[Option<u32>], new_len: usize) {
        retain_vec(&mut self.sums, mapping, new_len);
        retain_vec(&mut self.seen, mapping, new_len);
    }
    fn size_bytes(&self) -> usize {
        self.sums.len() * 9
    }
}

/// `sum` (Float64 result, for float inputs) and `avg` (always Float64).
#[derive(Debug, Default)]
pub struct SumAvgFloat {
    sums: Vec<f64>,
    counts: Vec<i64>,
    avg: bool,
}

impl SumAvgFloat {
    /// `avg = true` for the mean, false for the sum.
    pub fn new(avg: bool) -> SumAvgFloat {
        SumAvgFloat {
            avg,
            ..Default::default()
        }
    }
}

impl GroupsAccumulator for SumAvgFloat {
    fn resize(&mut self, total: usize) {
        self.sums.resize(total, 0.0);
        self.counts.resize(total, 0);
    }
    fn update(
        &mut self,
        values: &[ArrayRef],
        group_of_row: &[u32],
        total: usize,
    ) -> Result<(), AggregateError> {
        self.sums.resize(total, 0.0);
        self.counts.resize(total, 0);
        let column = cast(&values[0], &DataType::Float64)?;
        let column = column.as_primitive::<Float64Type>();
        let data = column.values();
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        for_each_valid(column, data, group_of_row, |g, v| {
            sums[g] += v;
            counts[g] += 1;
        });
        Ok(())
    }
    fn merge_partials(
        &mut self,
        partials: &CellPartials,
        gained: &[(u32, u32)],
        total: usize,
    ) -> Result<(), AggregateError> {
        let CellPartials::SumFloat { sums, counts } = partials else {
            return Err(mismatched_partials("float sum or average"));
        };
        self.resize(total);
        for &(cell, g) in gained {
            *group_slot(&mut self.sums, g)? += cell_value(sums, cell)?;
            *group_slot(&mut self.counts, g)? += cell_value(counts, cell)?;
        }
        Ok(())
    }
    fn merge_groups(&mut self, dst: u32, src: u32) -> Result<(), AggregateError> {
        let (d, s) = (dst as usize, src as usize);
        self.sums[d] += self.sums[s];
        self.counts[d] += self.counts[s];
        Ok(())
    }
    fn evaluate(&mut self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        Ok(Arc::new(
            groups
                .iter()
                .map(|&g| {
                    let (sum, n) = (self.sums[g as usize], self.counts[g as usize]);
                    match (n, self.avg) {
                        (0, _) => None,
                        (n, true) => Some(sum / n as f64),
                        (_, false) => Some(sum),
                    }
                })
                .collect::<Float64Array>(),
        ))
    }
    fn save(&self, g: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sums[g as usize].to_le_bytes());
        out.extend_from_slice(&self.counts[g as usize].to_le_bytes());
    }
    fn load(&mut self, g: u32, bytes: &[u8]) -> Result<(), AggregateError> {
        ensure_len(&mut self.sums, g)?;
        ensure_len(&mut self.counts, g)?;
        self.sums[g as usize] = f64::from_bits(read_i64(bytes, 0)? as u64);
        self.counts[g as usize] = read_i64(bytes, 8)?;
        Ok(())
    }
    fn retain(&mut self, mapping: &[Option<u32>], new_len: usize) {
        retain_vec(&mut self.sums, mapping, new_len);
        retain_vec(&mut self.counts, mapping, new_len);
    }
    fn size_bytes(&self) -> usize {
        self.sums.len() * 16
    }
}

/// Which value a [`Slot`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotPolicy {
    /// Smallest non-null.
    Min,
    /// Largest non-null.
    Max,
    /// First value in processing order (nulls included, as Spark's `first`).
    First,
    /// Last value in processing order.
    Last,
}

/// `min`, `max`, `first`, `last` of any type: values are kept in Arrow's row format, whose byte
/// order is the value order, so one code path serves every type.
pub struct Slot {
    policy: SlotPolicy,
    converter: RowConverter,
    data_type: DataType,
    /// Row-format bytes of the kept value, if any value was kept.
    values: Vec<Option<Box<[u8]>>>,
    /// Per chunk: the row index that wins for each group (reused buffer).
    winners: Vec<u32>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("policy", &self.policy)
            .finish()
    }
}

const NONE: u32 = u32::MAX;

impl Slot {
    /// A slot accumulator for values of `data_type`.
    pub fn new(policy: SlotPolicy, data_type: DataType) -> Result<Slot, AggregateError> {
        Ok(Slot {
            policy,
            converter: RowConverter::new(vec![SortField::new(data_type.clone())])?,
            data_type,
            values: Vec::new(),
            winners: Vec::new(),
        })
    }

    fn better(&self, candidate: &[u8], kept: &[u8]) -> bool {
        match self.policy {
            SlotPolicy::Min => candidate < kept,
            SlotPolicy::Max => candidate > kept,
            SlotPolicy::First => false,
            SlotPolicy::Last => true,
        }
    }
}

impl GroupsAccumulator for Slot {
    fn resize(&mut self, total: usize) {
        self.values.resize(total, None);
    }
    fn update(
        &mut self,
        values: &[ArrayRef],
        group_of_row: &[u32],
        total: usize,
    ) -> Result<(), AggregateError> {
        self.values.resize(total, None);
        let column = &values[0];
        let rows = self
            .converter
            .convert_columns(std::slice::from_ref(column))?;
        let ignore_nulls = matches!(self.policy, SlotPolicy::Min | SlotPolicy::Max);
        // First find each group's winning row inside the chunk, then copy at most once per group.
        self.winners.clear();
        self.winners.resize(total, NONE);
        let mut touched = Vec::new();
        for (i, &g) in group_of_row.iter().enumerate() {
            if ignore_nulls && column.is_null(i) {
                continue;
            }
            let w = &mut self.winners[g as usize];
            if *w == NONE {
                *w = i as u32;
                touched.push(g);
            } else {
                let wins = match self.policy {
                    SlotPolicy::First => false,
                    SlotPolicy::Last => true,
                    SlotPolicy::Min => rows.row(i) < rows.row(*w as usize),
                    SlotPolicy::Max => rows.row(i) > rows.row(*w as usize),
                };
                if wins {
                    *w = i as u32;
                }
            }
        }
        for g in touched {
            let row = rows.row(self.winners[g as usize] as usize);
            let bytes = row.as_ref();
            let replace = match &self.values[g as usize] {
                None => true,
                Some(kept) => self.better(bytes, kept),
            };
            if replace {
                self.values[g as usize] = Some(bytes.into());
            }
        }
        Ok(())
    }
    fn merge_groups(&mut self, dst: u32, src: u32) -> Result<(), AggregateError> {
        let src_value = self.values[src as usize].clone();
        if let Some(src_value) = src_value {
            let replace = match &self.values[dst as usize] {
                None => true,
                Some(kept) => self.better(&src_value, kept),
            };
            if replace {
                self.values[dst as usize] = Some(src_value);
            }
        }
        Ok(())
    }
    fn evaluate(&mut self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        let null = new_null_array(&self.data_type, 1);
        let null_rows = self.converter.convert_columns(&[null])?;
        let parser = self.converter.parser();
        let mut columns =
            self.converter.convert_rows(groups.iter().map(|&g| {
                match &self.values[g as usize] {
                    Some(bytes) => parser.parse(bytes),
                    None => null_rows.row(0),
                }
            }))?;
        columns
            .pop()
            .ok_or_else(|| AggregateError::internal("row conversion returned no column"))
    }
    fn save(&self, g: u32, out: &mut Vec<u8>) {
        if let Some(bytes) = &self.values[g as usize] {
            out.push(1);
            out.extend_from_slice(bytes);
        } else {
            out.push(0);
        }
    }
    fn load(&mut self, g: u32, bytes: &[u8]) -> Result<(), AggregateError> {
        ensure_len(&mut self.values, g)?;
        self.values[g as usize] = match bytes.first() {
            Some(1) => Some(bytes[1..].into()),
            _ => None,
        };
        Ok(())
    }
    fn retain(&mut self, mapping: &[Option<u32>], new_len: usize) {
        retain_vec(&mut self.values, mapping, new_len);
    }
    fn size_bytes(&self) -> usize {
        self.values
            .iter()
            .map(|v| v.as_ref().map_or(8, |b| b.len() + 16))
            .sum()
    }
}

/// `count_distinct`: the set of distinct non-null values per group, in row format.
pub struct CountDistinct {
    converter: RowConverter,
    sets: Vec<HashSet<Box<[u8]>>>,
}

impl std::fmt::Debug for CountDistinct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountDistinct")
            .field("groups", &self.sets.len())
            .finish()
    }
}

impl CountDistinct {
    /// Distinct counting of values of `data_type`.
    pub fn new(data_type: DataType) -> Result<CountDistinct, AggregateError> {
        Ok(CountDistinct {
            converter: RowConverter::new(vec![SortField::new(data_type)])?,
            sets: Vec::new(),
        })
    }
}

impl GroupsAccumulator for CountDistinct {
    fn resize(&mut self, total: usize) {
        self.sets.resize_with(total, HashSet::new);
    }
    fn update(
        &mut self,
        values: &[ArrayRef],
        group_of_row: &[u32],
        total: usize,
    ) -> Result<(), AggregateError> {
        self.sets.resize_with(total, HashSet::new);
        let column = &values[0];
        let rows = self
            .converter
            .convert_columns(std::slice::from_ref(column))?;
        for (i, &g) in group_of_row.iter().enumerate() {
            if column.is_valid(i) {
                let bytes = rows.row(i);
                let set = &mut self.sets[g as usize];
                if !set.contains(bytes.as_ref()) {
                    set.insert(bytes.as_ref().into());
                }
            }
        }
        Ok(())
    }
    fn merge_groups(&mut self, dst: u32, src: u32) -> Result<(), AggregateError> {
        let src_set = std::mem::take(&mut self.sets[src as usize]);
        self.sets[dst as usize].extend(src_set);
        Ok(())
    }
    fn evaluate(&mut self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        Ok(Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|&g| self.sets[g as usize].len() as i64),
        )))
    }
    fn save(&self, g: u32, out: &mut Vec<u8>) {
        let set = &self.sets[g as usize];
        out.extend_from_slice(&(set.len() as u32).to_le_bytes());
        // Sorted, so equal sets always save to equal bytes.
        let mut values: Vec<&Box<[u8]>> = set.iter().collect();
        values.sort();
        for v in values {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
    fn load(&mut self, g: u32, bytes: &[u8]) -> Result<(), AggregateError> {
        if g as usize != self.sets.len() {
            return Err(AggregateError::internal(
                "aggregate state loaded out of order (a bug)",
            ));
        }
        let truncated = || AggregateError::internal("stored count_distinct state is truncated");
        let read_u32 = |at: usize| -> Result<usize, AggregateError> {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(|b| u32::from_le_bytes(b) as usize)
                .ok_or_else(truncated)
        };
        let n = read_u32(0)?;
        let mut set = HashSet::with_capacity(n);
        let mut at = 4;
        for _ in 0..n {
            let len = read_u32(at)?;
            let value = bytes.get(at + 4..at + 4 + len).ok_or_else(truncated)?;
            set.insert(value.into());
            at += 4 + len;
        }
        self.sets.push(set);
        Ok(())
    }
    fn retain(&mut self, mapping: &[Option<u32>], new_len: usize) {
        let mut out: Vec<HashSet<Box<[u8]>>> = (0..new_len).map(|_| HashSet::new()).collect();
        for (old, new) in mapping.iter().enumerate() {
            if let Some(new) = new {
                out[*new as usize] = std::mem::take(&mut self.sets[old]);
            }
        }
        self.sets = out;
    }
    fn size_bytes(&self) -> usize {
        self.sets
            .iter()
            .map(|s| s.iter().map(|v| v.len() + 24).sum::<usize>() + 48)
            .sum()
    }
}

/// A user aggregate's states, kept by the host and passed in and out once per chunk.
pub struct UserAggregate {
    function: Box<dyn UserAggregateFn>,
    states: Vec<Vec<u8>>,
    /// Per call: each group's index among the groups the call touches (reused buffer).
    local: Vec<u32>,
    /// Per call: each row's index among the touched groups (reused buffer).
    local_of_row: Vec<u32>,
    /// Rows of this batch not yet handed to the function: it gets one call per batch, so each
    /// group's state crosses the boundary once per batch rather than once per chunk.
    pending_inputs: Vec<Vec<ArrayRef>>,
    pending_groups: Vec<u32>,
}

impl std::fmt::Debug for UserAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAggregate")
            .field("groups", &self.states.len())
            .finish()
    }
}

impl UserAggregate {
    /// Wraps a user aggregate function.
    pub fn new(function: Box<dyn UserAggregateFn>) -> UserAggregate {
        UserAggregate {
            function,
            states: Vec::new(),
            local: Vec::new(),
            local_of_row: Vec::new(),
            pending_inputs: Vec::new(),
            pending_groups: Vec::new(),
        }
    }

    /// One call into the function with these rows.
    /// Numbers the groups `group_of_row` touches in order of appearance: fills
    /// `self.local_of_row` and returns the groups.
    fn map_groups(&mut self, group_of_row: &[u32]) -> Vec<u32> {
        let total = self.states.len();
        self.local.clear();
        self.local.resize(total, NONE);
        self.local_of_row.clear();
        let mut touched: Vec<u32> = Vec::new();
        for &g in group_of_row {
            let l = &mut self.local[g as usize];
            if *l == NONE {
                *l = touched.len() as u32;
                touched.push(g);
            }
            self.local_of_row.push(*l);
        }
        touched
    }

    /// One call into the function with these rows, whose groups `map_groups` numbered.
    fn apply(&mut self, values: &[ArrayRef], touched: Vec<u32>) -> Result<(), AggregateError> {
        let local_of_row = std::mem::take(&mut self.local_of_row);
        let result = self.call(values, &touched, &local_of_row);
        self.local_of_row = local_of_row;
        result
    }

    fn call(
        &mut self,
        values: &[ArrayRef],
        touched: &[u32],
        local_of_row: &[u32],
    ) -> Result<(), AggregateError> {
        // Plugins see plain types: dictionary columns are decoded for them.
        let values: Vec<ArrayRef> = values
            .iter()
            .map(crate::engine::decode_array)
            .collect::<Result<_, _>>()?;
        let states: Vec<Vec<u8>> = touched
            .iter()
            .map(|&g| std::mem::take(&mut self.states[g as usize]))
            .collect();
        let result = self.function.update(&states, &values, local_of_row);
        match result {
            Ok(new_states) if new_states.len() == touched.len() => {
                for (g, state) in touched.iter().zip(new_states) {
                    self.states[*g as usize] = state;
                }
                Ok(())
            }
            other => {
                // Put the old states back: the batch will be retried from them.
                for (g, state) in touched.iter().zip(states) {
                    self.states[*g as usize] = state;
                }
                match other {
                    Ok(new_states) => Err(AggregateError::internal(format!(
                        "returned {} states for {} groups",
                        new_states.len(),
                        touched.len()
                    ))),
                    Err(err) => Err(err),
                }
            }
        }
    }
}

impl GroupsAccumulator for UserAggregate {
    fn resize(&mut self, total: usize) {
        self.states.resize(total, Vec::new());
    }
    fn update(
        &mut self,
        values: &[ArrayRef],
        group_of_row: &[u32],
        total: usize,
    ) -> Result<(), AggregateError> {
        self.states.resize(total, Vec::new());
        // Many rows per group: states are few and cheap to pass, call now. Few rows per
        // group: keep the rows, so that each state crosses the boundary once per batch.
        if self.pending_inputs.is_empty() {
            let touched = self.map_groups(group_of_row);
            if touched.len() <= group_of_row.len() / 8 {
                return self.apply(values, touched);
            }
        }
        self.pending_inputs.push(values.to_vec());
        self.pending_groups.extend_from_slice(group_of_row);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), AggregateError> {
        if self.pending_inputs.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::take(&mut self.pending_inputs);
        let group_of_row = std::mem::take(&mut self.pending_groups);
        let columns = chunks.first().map_or(0, Vec::len);
        let mut values = Vec::with_capacity(columns);
        for c in 0..columns {
            let parts: Vec<&dyn Array> = chunks.iter().map(|chunk| chunk[c].as_ref()).collect();
            values.push(arrow::compute::concat(&parts)?);
        }
        let touched = self.map_groups(&group_of_row);
        self.apply(&values, touched)
    }
    fn merge_groups(&mut self, dst: u32, src: u32) -> Result<(), AggregateError> {
        self.flush()?;
        let left = vec![std::mem::take(&mut self.states[dst as usize])];
        let right = vec![std::mem::take(&mut self.states[src as usize])];
        let mut merged = self.function.merge(&left, &right)?;
        self.states[dst as usize] = merged.pop().unwrap_or_default();
        Ok(())
    }
    fn evaluate(&mut self, groups: &[u32]) -> Result<ArrayRef, AggregateError> {
        self.flush()?;
        let states: Vec<Vec<u8>> = groups
            .iter()
            .map(|&g| self.states[g as usize].clone())
            .collect();
        let out = self.function.finish(&states)?;
        if out.len() != groups.len() || out.data_type() != &self.function.output_type() {
            return Err(AggregateError::internal(format!(
                "finish returned {} values of type {} for {} groups of declared type {}",
                out.len(),
                out.data_type(),
                groups.len(),
                self.function.output_type()
            )));
        }
        Ok(out)
    }
    fn save(&self, g: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.states[g as usize]);
    }
    fn load(&mut self, g: u32, bytes: &[u8]) -> Result<(), AggregateError> {
        ensure_len(&mut self.states, g)?;
        self.states[g as usize] = bytes.to_vec();
        Ok(())
    }
    fn retain(&mut self, mapping: &[Option<u32>], new_len: usize) {
        let mut out = vec![Vec::new(); new_len];
        for (old, new) in mapping.iter().enumerate() {
            if let Some(new) = new {
                out[*new as usize] = std::mem::take(&mut self.states[old]);
            }
        }
        self.states = out;
    }
    fn size_bytes(&self) -> usize {
        self.states.iter().map(|s| s.len() + 24).sum()
    }
}
