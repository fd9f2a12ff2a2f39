//! Partial aggregation of one chunk: each output function's state per cell (a window and key
//! the chunk reaches), folded on a lane from the chunk alone. The pipeline's thread then adds
//! a handful of partial states per chunk to its groups instead of updating them row by row,
//! so the in-order part of an aggregation costs per cell, not per row.
//!
//! Serves the built-ins whose states add up: `count`, `sum` and `avg` of a numeric column. A
//! float sum is folded per cell in row order from zero and then added to the group's sum, as
//! Spark's partial aggregation does: the same chunks give the same sums bit for bit at any
//! parallelism, since a source cuts its chunks by rows, not by cores.

use super::resolve::AggregatePlan;
use crate::config::{BuiltinFunction, FunctionKind};
use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// How one function folds a chunk's values per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialKind {
    /// `count` of rows.
    Rows,
    /// `count` of a column's non-null values.
    NonNull(usize),
    /// `sum` of an integer column (Int64, wrapping).
    SumInt(usize),
    /// `sum` of a float column or `avg` of any numeric one: a Float64 sum and a count.
    SumFloat(usize),
}

impl PartialKind {
    /// The partial kind of every function of `plan`, or `None` when one of them cannot be
    /// folded per cell (min, max, first, last, count_distinct, plugins).
    pub fn for_plan(plan: &AggregatePlan) -> Option<Vec<PartialKind>> {
        plan.functions
            .iter()
            .map(|f| {
                let input = f.inputs.first().copied();
                let numeric = f.input_types.first().is_some_and(DataType::is_numeric);
                let floating = f.input_types.first().is_some_and(DataType::is_floating);
                match (&f.kind, input) {
                    (FunctionKind::Builtin(BuiltinFunction::Count), None) => {
                        Some(PartialKind::Rows)
                    }
                    (FunctionKind::Builtin(BuiltinFunction::Count), Some(c)) => {
                        Some(PartialKind::NonNull(c))
                    }
                    (FunctionKind::Builtin(BuiltinFunction::Sum), Some(c)) if floating => {
                        Some(PartialKind::SumFloat(c))
                    }
                    (FunctionKind::Builtin(BuiltinFunction::Sum), Some(c)) if numeric => {
                        Some(PartialKind::SumInt(c))
                    }
                    (FunctionKind::Builtin(BuiltinFunction::Avg), Some(c)) if numeric => {
                        Some(PartialKind::SumFloat(c))
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

/// A chunk's partial states: how many pairs each cell holds (what a late cell drops) and each
/// function's states, in the plan's order.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPartials {
    /// Pairs per cell.
    pub pairs_of_cell: Vec<u64>,
    /// By function, then by cell.
    pub functions: Vec<CellPartials>,
}

/// One function's partial states, by cell.
#[derive(Debug, Clone, PartialEq)]
pub enum CellPartials {
    /// Rows or non-null values per cell.
    Counts(Vec<i64>),
    /// Wrapping sums, and whether the cell saw a non-null value.
    SumInt { sums: Vec<i64>, seen: Vec<bool> },
    /// Sums in row order from zero, and how many values each holds.
    SumFloat { sums: Vec<f64>, counts: Vec<i64> },
}

/// The pairs of a grouped chunk, as the partial fold reads them.
pub struct Pairs<'a> {
    /// The cell of each pair.
    pub cell_of_pair: &'a [u32],
    /// The row of each pair; `None` when pair i is row i.
    pub row_of_pair: Option<&'a [u32]>,
    /// How many cells the chunk reaches.
    pub cells: usize,
}

impl Pairs<'_> {
    /// How many pairs each cell holds.
    fn per_cell(&self) -> Vec<u64> {
        tally(self.cell_of_pair, self.cells, |cell| cell as usize)
    }

    /// Calls `add(cell, row)` for every pair, in pair order.
    #[inline]
    fn for_each(&self, mut add: impl FnMut(usize, usize)) {
        match self.row_of_pair {
            None => {
                for (row, &cell) in self.cell_of_pair.iter().enumerate() {
                    add(cell as usize, row);
                }
            }
            Some(rows) => {
                for (&cell, &row) in self.cell_of_pair.iter().zip(rows) {
                    add(cell as usize, row as usize);
                }
            }
        }
    }
}

/// How many times each of `0..width` occurs in `ids`, each id made an index by `index` (ids
/// beyond are not counted). Four
/// interleaved tallies: consecutive equal ids then add to different counters, not each to the
/// one the id before just wrote.
pub fn tally<T: Copy>(ids: &[T], width: usize, index: impl Fn(T) -> usize) -> Vec<u64> {
    let mut tallies = vec![0u64; 4 * width];
    let mut quads = ids.chunks_exact(4);
    for quad in &mut quads {
        for (lane, &id) in quad.iter().enumerate() {
            let id = index(id);
            if id < width
                && let Some(count) = tallies.get_mut(lane * width + id)
            {
                *count += 1;
            }
        }
    }
    for &id in quads.remainder() {
        if let Some(count) = tallies.get_mut(index(id)) {
            *count += 1;
        }
    }
    (0..width)
        .map(|id| (0..4).map(|lane| tallies[lane * width + id]).sum())
        .collect()
}

impl ChunkPartials {
    /// The partial states of functions that all count rows (`PartialKind::Rows`), from how
    /// many pairs each cell holds.
    pub fn of_row_counts(functions: usize, pairs_of_cell: Vec<u64>) -> ChunkPartials {
        let counts: Vec<i64> = pairs_of_cell.iter().map(|&n| n as i64).collect();
        ChunkPartials {
            functions: vec![CellPartials::Counts(counts); functions],
            pairs_of_cell,
        }
    }
}

/// Folds `chunk` per cell for each kind, in the order of `kinds`.
pub fn fold(
    kinds: &[PartialKind],
    chunk: &RecordBatch,
    pairs: &Pairs<'_>,
) -> Result<ChunkPartials, ArrowError> {
    let pairs_of_cell = pairs.per_cell();
    let functions = kinds
        .iter()
        .map(|kind| fold_one(*kind, chunk, pairs, &pairs_of_cell))
        .collect::<Result<_, _>>()?;
    Ok(ChunkPartials {
        pairs_of_cell,
        functions,
    })
}

/// One function's partial states. Where the input has no nulls, a cell's count is its pairs,
/// so the loop over the values only adds.
fn fold_one(
    kind: PartialKind,
    chunk: &RecordBatch,
    pairs: &Pairs<'_>,
    pairs_of_cell: &[u64],
) -> Result<CellPartials, ArrowError> {
    let width = pairs.cells;
    let column = |c: usize| {
        chunk
            .columns()
            .get(c)
            .cloned()
            .ok_or_else(|| ArrowError::SchemaError(format!("no input column {c} (a bug)")))
    };
    let every_pair = || pairs_of_cell.iter().map(|&n| n as i64).collect::<Vec<_>>();
    Ok(match kind {
        PartialKind::Rows => CellPartials::Counts(every_pair()),
        PartialKind::NonNull(c) => {
            let column = column(c)?;
            if column.null_count() == 0 {
                return Ok(CellPartials::Counts(every_pair()));
            }
            let mut counts = vec![0i64; width];
            pairs.for_each(|cell, row| {
                if column.is_valid(row)
                    && let Some(count) = counts.get_mut(cell)
                {
                    *count += 1;
                }
            });
            CellPartials::Counts(counts)
        }
        PartialKind::SumInt(c) => {
            let column = column(c)?;
            let column = cast(&column, &DataType::Int64)?;
            let values = column.as_primitive::<Int64Type>();
            let mut sums = vec![0i64; width];
            if values.null_count() == 0 {
                let seen = pairs_of_cell.iter().map(|&n| n > 0).collect();
                let data = values.values();
                pairs.for_each(|cell, row| {
                    if let (Some(sum), Some(&v)) = (sums.get_mut(cell), data.get(row)) {
                        *sum = sum.wrapping_add(v);
                    }
                });
                return Ok(CellPartials::SumInt { sums, seen });
            }
            let mut seen = vec![false; width];
            for_each_valid(values, pairs, |cell, v| {
                if let (Some(sum), Some(seen)) = (sums.get_mut(cell), seen.get_mut(cell)) {
                    *sum = sum.wrapping_add(v);
                    *seen = true;
                }
            });
            CellPartials::SumInt { sums, seen }
        }
        PartialKind::SumFloat(c) => {
            let column = column(c)?;
            let mut sums = vec![0f64; width];
            if column.null_count() == 0 {
                // The common integer types convert as they are read (exactly what Arrow's
                // cast to Float64 gives, without a column written in between).
                let mut add = |cell: usize, v: f64| {
                    if let Some(sum) = sums.get_mut(cell) {
                        *sum += v;
                    }
                };
                match column.data_type() {
                    DataType::Int64 => {
                        let data = column.as_primitive::<Int64Type>().values();
                        pairs.for_each(|cell, row| {
                            if let Some(&v) = data.get(row) {
                                add(cell, v as f64);
                            }
                        });
                    }
                    DataType::Int32 => {
                        let data = column.as_primitive::<Int32Type>().values();
                        pairs.for_each(|cell, row| {
                            if let Some(&v) = data.get(row) {
                                add(cell, f64::from(v));
                            }
                        });
                    }
                    _ => {
                        let column = cast(&column, &DataType::Float64)?;
                        let data = column.as_primitive::<Float64Type>().values();
                        pairs.for_each(|cell, row| {
                            if let Some(&v) = data.get(row) {
                                add(cell, v);
                            }
                        });
                    }
                }
                return Ok(CellPartials::SumFloat {
                    sums,
                    counts: every_pair(),
                });
            }
            let mut counts = vec![0i64; width];
            let column = cast(&column, &DataType::Float64)?;
            let values = column.as_primitive::<Float64Type>();
            for_each_valid(values, pairs, |cell, v| {
                if let (Some(sum), Some(count)) = (sums.get_mut(cell), counts.get_mut(cell)) {
                    *sum += v;
                    *count += 1;
                }
            });
            CellPartials::SumFloat { sums, counts }
        }
    })
}

/// Calls `add(cell, value)` for every pair whose row's value is not null.
#[inline]
fn for_each_valid<T: arrow::datatypes::ArrowPrimitiveType>(
    values: &arrow::array::PrimitiveArray<T>,
    pairs: &Pairs<'_>,
    mut add: impl FnMut(usize, T::Native),
) {
    let data = values.values();
    if values.null_count() == 0 {
        pairs.for_each(|cell, row| {
            if let Some(&v) = data.get(row) {
                add(cell, v);
            }
        });
    } else {
        pairs.for_each(|cell, row| {
            if values.is_valid(row)
                && let Some(&v) = data.get(row)
            {
                add(cell, v);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::accumulators::{Count, GroupsAccumulator, SumAvgFloat, SumInt};
    use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, UInt64Array};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    /// Pairs over rows 0..6 (sliding windows repeat rows 1 and 4), three cells.
    const CELL_OF_PAIR: [u32; 8] = [0, 1, 2, 1, 0, 2, 2, 1];
    const ROW_OF_PAIR: [u32; 8] = [0, 1, 1, 2, 3, 4, 4, 5];

    fn chunk(column: ArrayRef) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("v", column.data_type().clone(), true)]);
        RecordBatch::try_new(Arc::new(schema), vec![column]).expect("one column")
    }

    /// What the per-row path leaves in each group: the accumulator updated pair by pair, the
    /// cells being the groups.
    fn per_row(acc: &mut dyn GroupsAccumulator, column: &ArrayRef) -> Vec<Vec<u8>> {
        let taken = arrow::compute::take(
            column.as_ref(),
            &arrow::array::UInt32Array::from(ROW_OF_PAIR.to_vec()),
            None,
        )
        .expect("take");
        acc.update(&[taken], &CELL_OF_PAIR, 3).expect("update");
        saved(acc)
    }

    /// The same accumulator, empty, with the chunk's partial states merged into groups 0..3.
    fn folded(
        acc: &mut dyn GroupsAccumulator,
        kind: PartialKind,
        column: &ArrayRef,
    ) -> Vec<Vec<u8>> {
        let pairs = Pairs {
            cell_of_pair: &CELL_OF_PAIR,
            row_of_pair: Some(&ROW_OF_PAIR),
            cells: 3,
        };
        let partials = fold(&[kind], &chunk(column.clone()), &pairs).expect("fold");
        assert_eq!(partials.pairs_of_cell, vec![2, 3, 3]);
        acc.merge_partials(&partials.functions[0], &[(0, 0), (1, 1), (2, 2)], 3)
            .expect("merge");
        saved(acc)
    }

    fn saved(acc: &dyn GroupsAccumulator) -> Vec<Vec<u8>> {
        (0..3)
            .map(|g| {
                let mut out = Vec::new();
                acc.save(g, &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn folding_per_cell_leaves_the_states_updating_pair_by_pair_leaves_with_nulls_and_repeated_rows()
     {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(5),
            None,
            Some(-7),
            Some(i64::MAX),
            Some(2),
            Some(9),
        ]));
        let small: ArrayRef = Arc::new(Int32Array::from(vec![
            Some(1),
            Some(-3),
            None,
            Some(4),
            Some(6),
            None,
        ]));
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(0.5),
            Some(1.25),
            None,
            Some(-2.0),
            None,
            Some(8.0),
        ]));
        // Past i64::MAX: Arrow's cast makes it null on both paths.
        let unsigned: ArrayRef = Arc::new(UInt64Array::from(vec![
            Some(1),
            Some(u64::MAX),
            Some(3),
            None,
            Some(5),
            Some(6),
        ]));
        // A cell whose rows are all null: the sum stays unseen (null), as per row.
        let one_null_cell: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1),
            None,
            Some(2),
            Some(3),
            None,
            Some(4),
        ]));
        for column in [&ints, &small, &floats, &unsigned, &one_null_cell] {
            let what = column.data_type();
            assert_eq!(
                folded(&mut Count::new(true), PartialKind::NonNull(0), column),
                per_row(&mut Count::new(true), column),
                "count of {what}"
            );
            assert_eq!(
                folded(&mut Count::new(false), PartialKind::Rows, column),
                per_row(&mut Count::new(false), column),
                "count of rows"
            );
            assert_eq!(
                folded(
                    &mut SumAvgFloat::new(true),
                    PartialKind::SumFloat(0),
                    column
                ),
                per_row(&mut SumAvgFloat::new(true), column),
                "avg of {what}"
            );
            if !what.is_floating() {
                assert_eq!(
                    folded(&mut SumInt::default(), PartialKind::SumInt(0), column),
                    per_row(&mut SumInt::default(), column),
                    "sum of {what}"
                );
            }
        }
    }

    #[test]
    fn partial_states_of_another_function_are_refused_not_misread() {
        let counts = CellPartials::Counts(vec![1, 2, 3]);
        let err = SumAvgFloat::new(true)
            .merge_partials(&counts, &[(0, 0)], 1)
            .expect_err("a count's states are not a sum's");
        assert!(err.to_string().contains("a bug"), "{err}");
    }
}
