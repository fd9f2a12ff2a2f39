//! Pure window arithmetic on microsecond timestamps: which windows a row falls in, aligned to the
//! epoch as Spark aligns them. A window is `[start, end)`.

/// Start of the tumbling window of length `size` that holds `ts`.
pub fn tumbling_start(ts: i64, size: i64) -> i64 {
    ts - ts.rem_euclid(size)
}

/// Calls `f(start)` for every sliding window (length `size`, a new one every `slide`) that
/// holds `ts`, latest start first.
pub fn for_each_sliding_start(ts: i64, size: i64, slide: i64, mut f: impl FnMut(i64)) {
    let mut start = ts - ts.rem_euclid(slide);
    while start > ts - size {
        f(start);
        start -= slide;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn tumbling_windows_are_epoch_aligned_half_open() {
        assert_eq!(tumbling_start(0, 10 * S), 0);
        assert_eq!(tumbling_start(10 * S - 1, 10 * S), 0);
        assert_eq!(tumbling_start(10 * S, 10 * S), 10 * S);
        assert_eq!(tumbling_start(-1, 10 * S), -10 * S);
        // 18:08:57.3 falls in [18:08:50, 18:09:00).
        let t = (18 * 3600 + 8 * 60 + 57) * S + 300_000;
        assert_eq!(tumbling_start(t, 10 * S), (18 * 3600 + 8 * 60 + 50) * S);
    }

    #[test]
    fn a_row_falls_in_every_overlapping_sliding_window() {
        let mut starts = Vec::new();
        for_each_sliding_start(12 * S, 10 * S, 5 * S, |s| starts.push(s / S));
        assert_eq!(starts, vec![10, 5]);
        starts.clear();
        for_each_sliding_start(10 * S, 10 * S, 5 * S, |s| starts.push(s / S));
        assert_eq!(
            starts,
            vec![10, 5],
            "a row at a window's start belongs to it, not to the one ending there"
        );
        starts.clear();
        for_each_sliding_start(7 * S, 10 * S, 3 * S, |s| starts.push(s / S));
        assert_eq!(starts, vec![6, 3, 0]);
    }
}
