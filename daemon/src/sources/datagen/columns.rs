//! Whole columns at once: each generator's per-column work (step counts, choice tables, the
//! first row's place in a cycle) is done once, then one tight loop writes the values straight
//! into the column's buffer, computing a row's random word only when the generator draws one.
//! Every value is bit for bit what the row-at-a-time functions in `mod.rs` give (the tests
//! compare them), so replay and the stored checkpoints do not notice the difference.

use super::{GOLDEN, NULL_SALT, below, float_steps, mix, unit};
use crate::config::{Generator, Scalar};
use arrow::buffer::{BooleanBuffer, NullBuffer};

/// Rows `[from, to)` of one column: where its random words come from.
#[derive(Debug, Clone, Copy)]
pub(super) struct ColumnRows {
    /// The source's seed.
    pub seed: u64,
    /// The column's key.
    pub key: u64,
    /// First row.
    pub from: u64,
    /// One past the last row.
    pub to: u64,
}

impl ColumnRows {
    fn len(&self) -> usize {
        (self.to - self.from) as usize
    }

    fn hash(&self, row: u64) -> u64 {
        mix(self.seed, self.key, row)
    }

    /// `f(row % n)` for every row, in order, without a division per row.
    fn for_each_cycle(&self, n: u64, mut f: impl FnMut(u64)) {
        let n = n.max(1);
        let mut at = self.from % n;
        for _ in self.from..self.to {
            f(at);
            at += 1;
            if at == n {
                at = 0;
            }
        }
    }

    /// `f(index)` for every row: its choice among `n`, as `choose` in `mod.rs` makes it.
    fn for_each_choice(
        &self,
        n: usize,
        cumulative: Option<&[f64]>,
        random: bool,
        mut f: impl FnMut(usize),
    ) {
        match (cumulative, random) {
            (None, false) => self.for_each_cycle(n as u64, |i| f(i as usize)),
            (None, true) => {
                (self.from..self.to).for_each(|row| f(below(self.hash(row), n as u64) as usize))
            }
            (Some(cum), random) => {
                // The first weight above u is the number of weights at or below it (they never
                // decrease): counted without a branch, over a fixed row of eight when it fits.
                let mut padded = [f64::INFINITY; 8];
                let fixed = cum.len() <= padded.len();
                if fixed {
                    padded[..cum.len()].copy_from_slice(cum);
                }
                let index = |u: f64| {
                    let below_u = if fixed {
                        padded.iter().map(|c| usize::from(u >= *c)).sum::<usize>()
                    } else {
                        cum.iter().filter(|c| u >= **c).count()
                    };
                    below_u.min(n - 1)
                };
                if random {
                    (self.from..self.to).for_each(|row| f(index(unit(self.hash(row)))));
                } else if self.to < (1 << 53) {
                    // Below 2^53 a row index is exact as a double, and so is adding one to it.
                    let mut row_f = self.from as f64;
                    for _ in self.from..self.to {
                        f(index(fract_of_non_negative(row_f * GOLDEN)));
                        row_f += 1.0;
                    }
                } else {
                    (self.from..self.to)
                        .for_each(|row| f(index(fract_of_non_negative(row as f64 * GOLDEN))));
                }
            }
        }
    }
}

/// `x.fract()` for `x >= 0`, without the call to `trunc` the target lacks an instruction for:
/// below 2^63 the integer part is `x as i64` exactly (one instruction each way); above 2^53
/// every double is whole.
fn fract_of_non_negative(x: f64) -> f64 {
    if x < 9_223_372_036_854_775_808.0 {
        x - (x as i64) as f64
    } else {
        x.fract()
    }
}

/// Which rows are null (drawn from the column's key salted apart from its values): `None`
/// when none is.
pub(super) fn validity(null_fraction: f64, rows: ColumnRows) -> Option<NullBuffer> {
    if null_fraction <= 0.0 {
        return None;
    }
    let salted = ColumnRows {
        key: rows.key ^ NULL_SALT,
        ..rows
    };
    let valid = BooleanBuffer::collect_bool(rows.len(), |i| {
        unit(salted.hash(rows.from + i as u64)) >= null_fraction
    });
    Some(NullBuffer::new(valid)).filter(|n| n.null_count() > 0)
}

/// 2^52: from here up every double is whole, and below it adding and taking away 2^52 rounds a
/// non-negative double to a whole number.
const TWO_POW_52: f64 = 4_503_599_627_370_496.0;

/// `fract_of_non_negative`, exactly (both subtract the exact integer part), written with adds,
/// compares and selects only, so that a loop of it runs on vector lanes.
fn fract_by_rounding(x: f64) -> f64 {
    let nearest = (x + TWO_POW_52) - TWO_POW_52;
    let floor = if nearest > x { nearest - 1.0 } else { nearest };
    if x < TWO_POW_52 { x - floor } else { 0.0 }
}

/// The weighted choices of rows `from..from + out.len()` in order (the golden-ratio sequence),
/// for at most eight weights: the same values as `for_each_choice` gives, in a loop with no
/// call and no carried sum, which the compiler vectorises.
fn golden_choices(from: u64, cumulative: &[f64], out: &mut [i32]) {
    // One compare per weight, their count known to the compiler.
    fn of<const N: usize>(from: u64, cumulative: &[f64], out: &mut [i32]) {
        let mut weights = [f64::INFINITY; N];
        let given = cumulative.len().min(N);
        weights[..given].copy_from_slice(&cumulative[..given]);
        let last = N.saturating_sub(1) as i32;
        let base = from as f64;
        for (offset, slot) in out.iter_mut().enumerate() {
            // Exact: both are whole numbers whose sum is below 2^53 (the caller checks).
            let row = base + offset as i32 as f64;
            let u = fract_by_rounding(row * GOLDEN);
            let below_u: i32 = weights.iter().map(|c| i32::from(u >= *c)).sum();
            *slot = below_u.min(last);
        }
    }
    match cumulative.len() {
        1 => of::<1>(from, cumulative, out),
        2 => of::<2>(from, cumulative, out),
        3 => of::<3>(from, cumulative, out),
        4 => of::<4>(from, cumulative, out),
        5 => of::<5>(from, cumulative, out),
        6 => of::<6>(from, cumulative, out),
        7 => of::<7>(from, cumulative, out),
        _ => of::<8>(from, cumulative, out),
    }
}

/// The choice (an index into `values`) of every row of a `values` generator.
pub(super) fn choices(g: &Generator, rows: ColumnRows) -> Vec<i32> {
    let mut out = vec![0; rows.len()];
    if let Generator::Values {
        values,
        cumulative_weights: Some(cumulative),
        random: false,
    } = g
        && cumulative.len() <= 8
        && cumulative.len() == values.len()
        && rows.to < (1 << 53)
        && rows.len() < i32::MAX as usize
    {
        golden_choices(rows.from, cumulative, &mut out);
        return out;
    }
    if let Generator::Values {
        values,
        cumulative_weights,
        random,
    } = g
    {
        let mut slots = out.iter_mut();
        rows.for_each_choice(values.len(), cumulative_weights.as_deref(), *random, |i| {
            if let Some(slot) = slots.next() {
                *slot = i as i32;
            }
        });
    }
    out
}

/// The values of an integer column (`int` wraps them to 32 bits, as `int_value` is used).
pub(super) fn int_values(g: &Generator, rows: ColumnRows) -> Vec<i64> {
    let mut out = Vec::with_capacity(rows.len());
    match g {
        Generator::IntRange {
            min,
            max,
            step,
            random,
        } => {
            let count = ((i128::from(*max) - i128::from(*min)) / i128::from(*step) + 1) as u128;
            let count = u64::try_from(count).unwrap_or(u64::MAX);
            // (min + index * step) in i128, then cut to 64 bits, is the same as wrapping i64.
            let (min, step) = (*min, *step);
            let value = |index: u64| min.wrapping_add((index as i64).wrapping_mul(step));
            if *random {
                out.extend((rows.from..rows.to).map(|row| value(below(rows.hash(row), count))));
            } else {
                rows.for_each_cycle(count, |i| out.push(value(i)));
            }
        }
        Generator::Values {
            values,
            cumulative_weights,
            random,
        } => {
            let table: Vec<i64> = values
                .iter()
                .map(|v| match v {
                    Scalar::Int(i) => *i,
                    Scalar::Float(f) => *f as i64,
                    Scalar::Bool(b) => i64::from(*b),
                    Scalar::Str(_) => 0,
                })
                .collect();
            rows.for_each_choice(table.len(), cumulative_weights.as_deref(), *random, |i| {
                out.push(table[i])
            });
        }
        Generator::FloatRange { .. } => {
            out.extend(float_values(g, rows).into_iter().map(|f| f as i64));
        }
        // Every other generator gives the row index (see `int_value`).
        _ => out.extend((rows.from..rows.to).map(|row| row as i64)),
    }
    out
}

/// The values of a double column.
pub(super) fn float_values(g: &Generator, rows: ColumnRows) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len());
    match g {
        Generator::Values {
            values,
            cumulative_weights,
            random,
        } => {
            let table: Vec<f64> = values
                .iter()
                .map(|v| match v {
                    Scalar::Float(f) => *f,
                    Scalar::Int(i) => *i as f64,
                    _ => 0.0,
                })
                .collect();
            rows.for_each_choice(table.len(), cumulative_weights.as_deref(), *random, |i| {
                out.push(table[i])
            });
        }
        Generator::FloatRange {
            min,
            max,
            step: None,
            ..
        } => {
            let (min, max) = (*min, *max);
            out.extend((rows.from..rows.to).map(|row| min + unit(rows.hash(row)) * (max - min)));
        }
        Generator::FloatRange {
            min,
            max,
            step: Some(step),
            random,
        } => {
            let count = float_steps(*min, *max, *step);
            let (min, step) = (*min, *step);
            if *random {
                out.extend(
                    (rows.from..rows.to)
                        .map(|row| min + below(rows.hash(row), count) as f64 * step),
                );
            } else {
                rows.for_each_cycle(count, |i| out.push(min + i as f64 * step));
            }
        }
        Generator::IntRange { .. } => {
            out.extend(int_values(g, rows).into_iter().map(|i| i as f64));
        }
        _ => out.extend((rows.from..rows.to).map(|row| row as f64)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{RowDraw, choose, float_value, int_value};
    use super::*;

    fn generators() -> Vec<Generator> {
        let ints = |v: &[i64]| v.iter().map(|&i| Scalar::Int(i)).collect::<Vec<_>>();
        let weights = Some(vec![0.125, 0.25, 0.5, 1.0]);
        let mut all = Vec::new();
        for random in [false, true] {
            all.extend([
                Generator::IntRange {
                    min: 0,
                    max: 10,
                    step: 1,
                    random,
                },
                Generator::IntRange {
                    min: -1_000_003,
                    max: 7_000_001,
                    step: 7,
                    random,
                },
                Generator::IntRange {
                    min: i64::MIN,
                    max: i64::MAX,
                    step: 3,
                    random,
                },
                Generator::Values {
                    values: ints(&[5, -6, 7, 8]),
                    cumulative_weights: None,
                    random,
                },
                Generator::Values {
                    values: vec![
                        Scalar::Int(1),
                        Scalar::Float(2.5),
                        Scalar::Bool(true),
                        Scalar::Int(-9),
                    ],
                    cumulative_weights: weights.clone(),
                    random,
                },
                Generator::Values {
                    // A weight of zero: its value is never chosen.
                    values: ints(&[1, 2, 3, 4]),
                    cumulative_weights: Some(vec![0.25, 0.25, 0.75, 1.0]),
                    random,
                },
                Generator::Values {
                    // More weights than the fixed row of eight.
                    values: ints(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
                    cumulative_weights: Some((1..=10).map(|i| f64::from(i) / 10.0).collect()),
                    random,
                },
                Generator::FloatRange {
                    min: -2.5,
                    max: 9.75,
                    step: None,
                    random,
                },
                Generator::FloatRange {
                    min: 0.1,
                    max: 1000.0,
                    step: Some(0.3),
                    random,
                },
                Generator::Bool { random },
            ]);
        }
        all.push(Generator::RowIndex);
        all
    }

    /// Row ranges from the start, across a chunk boundary, and far along the stream.
    fn ranges() -> [(u64, u64); 4] {
        [
            (0, 3000),
            (65_536 * 3 - 17, 65_536 * 3 + 4000),
            (1 << 40, (1 << 40) + 3000),
            // Where row × the golden ratio crosses 2^52.
            (7_287_592_000_000_000, 7_287_592_000_003_000),
        ]
    }

    #[test]
    fn whole_columns_are_bit_for_bit_the_row_at_a_time_values() {
        let (seed, key) = (42, 0x1234_5678_9abc_def0);
        for g in generators() {
            for (from, to) in ranges() {
                let rows = ColumnRows {
                    seed,
                    key,
                    from,
                    to,
                };
                let draw = |row| RowDraw {
                    row,
                    hash: mix(seed, key, row),
                };
                let ints = int_values(&g, rows);
                let want: Vec<i64> = (from..to).map(|row| int_value(&g, draw(row))).collect();
                assert_eq!(ints, want, "{g:?} rows {from}..{to}");
                let floats: Vec<u64> = float_values(&g, rows).iter().map(|f| f.to_bits()).collect();
                let want: Vec<u64> = (from..to)
                    .map(|row| float_value(&g, draw(row)).to_bits())
                    .collect();
                assert_eq!(floats, want, "{g:?} rows {from}..{to}");
                if let Generator::Values {
                    values,
                    cumulative_weights,
                    random,
                } = &g
                {
                    let want: Vec<i32> = (from..to)
                        .map(|row| {
                            choose(
                                values.len(),
                                cumulative_weights.as_deref(),
                                *random,
                                draw(row),
                            ) as i32
                        })
                        .collect();
                    assert_eq!(choices(&g, rows), want, "{g:?} rows {from}..{to}");
                }
            }
        }
    }

    #[test]
    fn validity_marks_the_rows_whose_draw_falls_under_the_null_fraction() {
        let rows = ColumnRows {
            seed: 9,
            key: 77,
            from: 1000,
            to: 21_000,
        };
        assert!(validity(0.0, rows).is_none());
        let Some(nulls) = validity(0.25, rows) else {
            panic!("a quarter of 20 000 rows are null");
        };
        for (i, row) in (rows.from..rows.to).enumerate() {
            let null = unit(mix(rows.seed, rows.key ^ NULL_SALT, row)) < 0.25;
            assert_eq!(nulls.is_null(i), null, "row {row}");
        }
        let share = nulls.null_count() as f64 / 20_000.0;
        assert!((share - 0.25).abs() < 0.02, "{share}");
    }

    #[test]
    fn the_fraction_of_a_row_times_the_golden_ratio_is_what_fract_gives() {
        for row in [
            0u64,
            1,
            2,
            1000,
            1 << 40,
            (1 << 53) + 1,
            u64::MAX / 2,
            u64::MAX,
        ] {
            let x = row as f64 * GOLDEN;
            assert_eq!(
                fract_of_non_negative(x).to_bits(),
                x.fract().to_bits(),
                "{row}"
            );
            assert_eq!(fract_by_rounding(x).to_bits(), x.fract().to_bits(), "{row}");
        }
        // Halves (which rounding to nearest takes to an even neighbour) and the edge at 2^52.
        for x in [
            0.0,
            0.5,
            1.5,
            2.5,
            3.5,
            0.999_999_999_999_999_9,
            TWO_POW_52 - 1.5,
            TWO_POW_52 - 0.5,
            TWO_POW_52,
            TWO_POW_52 + 2.0,
        ] {
            assert_eq!(fract_by_rounding(x).to_bits(), x.fract().to_bits(), "{x}");
        }
    }
}
