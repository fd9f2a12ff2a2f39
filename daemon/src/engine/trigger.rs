//! Trigger timing: when the next batch of a `processing_time` trigger is due.

use std::time::Duration;

/// The next tick after `now_ms` for an interval trigger: ticks are multiples of the interval
/// since the epoch, as Spark's `ProcessingTimeExecutor` computes them. A batch that overran its
/// interval is followed at once by the next (the tick it missed is already in the past).
pub fn next_processing_time_tick(now_ms: i64, interval: Duration) -> i64 {
    let interval = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    now_ms - now_ms.rem_euclid(interval) + interval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_aligned_to_the_interval() {
        let five = Duration::from_secs(5);
        assert_eq!(next_processing_time_tick(0, five), 5000);
        assert_eq!(next_processing_time_tick(4999, five), 5000);
        assert_eq!(next_processing_time_tick(5000, five), 10_000);
        assert_eq!(next_processing_time_tick(12_345, five), 15_000);
    }
}
