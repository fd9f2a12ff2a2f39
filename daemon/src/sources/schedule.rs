//! The release schedule shared by `rate` and `datagen`: how many rows are due by a given time
//! and the due time (event time) of each row, as Spark's rate source computes them.
//!
//! Rows are released once per elapsed second; during ramp-up the rate grows linearly. The event
//! time of a row depends only on its index and the stream's start, so replay is exact.

/// A stream's schedule: rate, ramp-up and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseSchedule {
    /// Rows per second after ramp-up.
    pub rows_per_second: u64,
    /// Ramp-up length in whole seconds.
    pub ramp_up_seconds: u64,
    /// Start of the stream, ms since the epoch.
    pub start_ms: i64,
}

impl ReleaseSchedule {
    /// Rows released by the end of `seconds` elapsed seconds (Spark's `valueAtSecond`).
    pub fn rows_at_second(&self, seconds: u64) -> u64 {
        let rate = self.rows_per_second;
        let ramp = self.ramp_up_seconds;
        let delta = rate / ramp.saturating_add(1);
        if seconds <= ramp {
            // (delta * seconds) * (seconds + 1) / 2, ordered to stay exact and small; past
            // u64 (never for a validated ramp) it saturates instead of wrapping.
            if !seconds.is_multiple_of(2) {
                seconds
                    .div_ceil(2)
                    .saturating_mul(delta)
                    .saturating_mul(seconds)
            } else {
                (seconds / 2)
                    .saturating_mul(delta)
                    .saturating_mul(seconds.saturating_add(1))
            }
        } else {
            self.rows_at_second(ramp)
                .saturating_add((seconds - ramp).saturating_mul(rate))
        }
    }

    /// Rows due at wall-clock time `now_ms`.
    pub fn rows_due(&self, now_ms: i64) -> u64 {
        let elapsed = now_ms.saturating_sub(self.start_ms).max(0) as u64;
        self.rows_at_second(elapsed / 1000)
    }

    /// The next time more rows are released after `now_ms`.
    pub fn next_release_ms(&self, now_ms: i64) -> i64 {
        let elapsed = (now_ms.saturating_sub(self.start_ms).max(0) / 1000) as u64;
        let mut second = elapsed.saturating_add(1);
        // A ramp-up too slow to release a row each second (rate below ramp + 1 rows per second)
        // releases nothing until it ends. Otherwise every second releases rows.
        let delta = self.rows_per_second / self.ramp_up_seconds.saturating_add(1);
        if delta == 0 && second <= self.ramp_up_seconds {
            second = self.ramp_up_seconds.saturating_add(1);
        }
        let second_ms = i64::try_from(second)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        self.start_ms.saturating_add(second_ms)
    }

    /// The second during which `row` is released: `rows_at_second(s) <= row < rows_at_second(s + 1)`.
    fn second_of(&self, row: u64) -> u64 {
        let ramp_rows = self.rows_at_second(self.ramp_up_seconds);
        if row >= ramp_rows {
            return self
                .ramp_up_seconds
                .saturating_add((row - ramp_rows) / self.rows_per_second.max(1));
        }
        // Ramp-up: binary search over its few seconds.
        let (mut lo, mut hi) = (0, self.ramp_up_seconds);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.rows_at_second(mid) <= row {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// The due time of `row` in ms: rows of a second are spread evenly over it, rounded to the
    /// millisecond as Spark does (`start + round(i * 1000 / rate)` at a constant rate).
    pub fn event_time_ms(&self, row: u64) -> i64 {
        let second = self.second_of(row);
        let first = self.rows_at_second(second);
        let per_second = self
            .rows_at_second(second.saturating_add(1))
            .saturating_sub(first)
            .max(1);
        let within = row.saturating_sub(first);
        // round(within * 1000 / per_second), half up, in integers.
        let ms =
            (u128::from(within) * 2000 + u128::from(per_second)) / (2 * u128::from(per_second));
        // Far beyond any real stream (validation keeps the start within years 1..9999) the
        // time saturates instead of wrapping.
        let seconds_ms = i64::try_from(second)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        self.start_ms
            .saturating_add(seconds_ms)
            .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// `event_time_ms` of every row in `[from, to)`. At a constant rate this steps from row to
    /// row with integer arithmetic (no division per row); it is the sources' hot path.
    pub fn event_times_ms(&self, from: u64, to: u64) -> impl Iterator<Item = i64> + '_ {
        // round(row * 1000 / rate) = (row * 2000 + rate) div (2 * rate), stepped by 2000 a row,
        // in u64 when the whole range fits well inside it (any real rate and stream; anything
        // else takes the per-row formula).
        let steady = self.ramp_up_seconds == 0 && self.rows_per_second > 0;
        let d = u128::from(self.rows_per_second) * 2;
        let n = u128::from(from) * 2000 + u128::from(self.rows_per_second);
        let (q, r) = if steady { (n / d, n % d) } else { (0, 0) };
        let rows = u128::from(to.saturating_sub(from));
        let narrow = steady && d < 1 << 62 && q + rows * (2000 / d.max(1) + 1) < 1 << 62;
        let (mut q, mut r, d, step_q, step_r) = if narrow {
            (
                q as u64,
                r as u64,
                d as u64,
                (2000 / d) as u64,
                (2000 % d) as u64,
            )
        } else {
            (0, 0, 1, 0, 0)
        };
        (from..to).map(move |row| {
            if !narrow {
                return self.event_time_ms(row);
            }
            // q < 2^62: exact as an i64.
            let value = self.start_ms.saturating_add(q as i64);
            q += step_q;
            r += step_r;
            if r >= d {
                r -= d;
                q += 1;
            }
            value
        })
    }

    /// `event_times_ms(from, to)` as runs of (time, rows): above 1 000 rows a second, rows
    /// share each millisecond, and a source fills a run at memory speed instead of stepping
    /// row by row. Slower or ramping schedules give runs of one row.
    pub fn event_time_runs(&self, from: u64, to: u64) -> impl Iterator<Item = (i64, usize)> + '_ {
        let steady = self.ramp_up_seconds == 0 && self.rows_per_second > 1000;
        let d = u128::from(self.rows_per_second) * 2;
        let n = u128::from(from) * 2000 + u128::from(self.rows_per_second);
        let rows = to.saturating_sub(from);
        // Each run adds one to q: q stays far from 2^62 for any real stream.
        let narrow = steady && d < 1 << 62 && n / d + u128::from(rows) < 1 << 62;
        let mut per_row = (!narrow).then(|| self.event_times_ms(from, to));
        // With more than 1 000 rows a second, 2000 < d: a row adds 2000 to r and nothing to q.
        let (mut q, mut r, d) = if narrow {
            ((n / d) as u64, (n % d) as u64, d as u64)
        } else {
            (0, 0, 1)
        };
        let mut left = rows;
        std::iter::from_fn(move || {
            if let Some(times) = per_row.as_mut() {
                return times.next().map(|ms| (ms, 1));
            }
            if left == 0 {
                return None;
            }
            // Rows until r reaches d (q steps then): ceil((d - r) / 2000), at least one.
            let run = (d - r).div_ceil(2000).min(left);
            // q < 2^62: exact as an i64.
            let value = self.start_ms.saturating_add(q as i64);
            r += run * 2000;
            if r >= d {
                r -= d;
                q += 1;
            }
            left -= run;
            Some((value, usize::try_from(run).unwrap_or(usize::MAX)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_spark_value_at_second_with_ramp_up() {
        // Spark's own example: rampUpTimeSeconds = 4, rowsPerSecond = 10.
        let s = ReleaseSchedule {
            rows_per_second: 10,
            ramp_up_seconds: 4,
            start_ms: 0,
        };
        let ends: Vec<u64> = (0..=6).map(|t| s.rows_at_second(t)).collect();
        assert_eq!(ends, vec![0, 2, 6, 12, 20, 30, 40]);
    }

    #[test]
    fn constant_rate_event_times_are_start_plus_index_over_rate() {
        // The seed's first rows: 10 rows/s, value 0 at 17:51:28.436.
        let start = 1_697_997_088_436;
        let s = ReleaseSchedule {
            rows_per_second: 10,
            ramp_up_seconds: 0,
            start_ms: start,
        };
        for row in 0..100 {
            assert_eq!(s.event_time_ms(row), start + row as i64 * 100);
        }
        let s3 = ReleaseSchedule {
            rows_per_second: 3,
            ramp_up_seconds: 0,
            start_ms: 0,
        };
        assert_eq!(
            (0..4).map(|r| s3.event_time_ms(r)).collect::<Vec<_>>(),
            vec![0, 333, 667, 1000]
        );
    }

    #[test]
    fn stepped_event_times_equal_the_per_row_ones() {
        for (rate, ramp) in [
            (1, 0),
            (3, 0),
            (7, 0),
            (10, 0),
            (1000, 0),
            (1999, 0),
            (2000, 0),
            (3001, 0),
            (1_000_000, 0),
            (1_000_000_000, 0),
            // Beyond what u64 stepping takes: the per-row formula.
            (u64::MAX / 3, 0),
            (10, 4),
        ] {
            let s = ReleaseSchedule {
                rows_per_second: rate,
                ramp_up_seconds: ramp,
                start_ms: 1_000,
            };
            for from in [0, 1, 17, 5000, 1 << 40, u64::MAX / 4000] {
                let stepped: Vec<i64> = s.event_times_ms(from, from + 3000).collect();
                let one_by_one: Vec<i64> =
                    (from..from + 3000).map(|r| s.event_time_ms(r)).collect();
                assert_eq!(stepped, one_by_one, "rate {rate}, ramp {ramp}, from {from}");
            }
        }
    }

    #[test]
    fn runs_of_event_times_expand_to_the_row_by_row_times() {
        for (rate, ramp) in [
            (1, 0),
            (999, 0),
            (1000, 0),
            (1001, 0),
            (3000, 0),
            (1_000_000, 0),
            (7_654_321, 0),
            (1_000_000_000, 0),
            (u64::MAX / 3, 0),
            (10_000, 4),
        ] {
            let s = ReleaseSchedule {
                rows_per_second: rate,
                ramp_up_seconds: ramp,
                start_ms: 1_000,
            };
            for from in [0, 1, 17, 5000, 1 << 40, u64::MAX / 4000] {
                let mut runs = Vec::new();
                for (ms, n) in s.event_time_runs(from, from + 5000) {
                    assert!(n > 0, "an empty run at rate {rate}");
                    runs.extend(std::iter::repeat_n(ms, n));
                }
                let one_by_one: Vec<i64> =
                    (from..from + 5000).map(|r| s.event_time_ms(r)).collect();
                assert_eq!(runs, one_by_one, "rate {rate}, ramp {ramp}, from {from}");
            }
        }
    }

    #[test]
    fn rows_are_released_per_whole_second() {
        let s = ReleaseSchedule {
            rows_per_second: 10,
            ramp_up_seconds: 0,
            start_ms: 1000,
        };
        assert_eq!(s.rows_due(1000), 0);
        assert_eq!(s.rows_due(1999), 0);
        assert_eq!(s.rows_due(2000), 10);
        assert_eq!(s.rows_due(3500), 20);
        assert_eq!(s.next_release_ms(1500), 2000);
        assert_eq!(s.next_release_ms(2000), 3000);
    }

    #[test]
    fn every_row_during_ramp_up_falls_inside_its_second() {
        let s = ReleaseSchedule {
            rows_per_second: 10,
            ramp_up_seconds: 4,
            start_ms: 0,
        };
        let mut last = -1;
        for row in 0..60 {
            let t = s.event_time_ms(row);
            assert!(t > last || row == 0, "event times increase");
            let second = s.second_of(row);
            assert!(s.rows_at_second(second) <= row && row < s.rows_at_second(second + 1));
            let second_ms = second as i64 * 1000;
            assert!(
                (second_ms..second_ms + 1000).contains(&t),
                "row {row} at {t} ms, outside its second {second}"
            );
            last = t;
        }
    }
}
