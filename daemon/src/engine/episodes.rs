//! What a long-running pipeline says about trouble that lasts: a batch slower than its trigger
//! interval, a watermark lag that grows batch after batch, a batch that fails and is retried.
//! Each is logged once when it starts and once when it ends, with what happened in between —
//! not once per batch, which would bury the log of a daemon that runs for weeks.

use std::time::Duration;

/// Batches in a row whose watermark lag grew before that is reported.
pub const LAG_GROWTH_BATCHES: u32 = 10;

/// Batches in a row slower than the trigger interval before that is reported: one slow batch
/// (a compaction, a busy disk) is not a pipeline falling behind.
pub const SLOW_BATCHES: u64 = 3;

/// A line to log, by level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Something started going wrong.
    Warn(String),
    /// It is over.
    Info(String),
    /// More of the same, for whoever runs at debug level.
    Debug(String),
}

/// The episodes under way in one pipeline.
#[derive(Debug, Default)]
pub struct Episodes {
    /// Slow batches in a row, while some are.
    slow: u64,
    /// Batches in a row (with rows) whose watermark lag grew, and the last lag seen.
    lag_growth: u32,
    last_lag_ms: Option<i64>,
    lag_reported: bool,
    /// The failed attempts of the batch being retried, and the last error.
    failures: u32,
    last_failure: Option<String>,
}

impl Episodes {
    /// Notes a committed batch: how long it took, the trigger's interval (none for triggers
    /// that run batches back to back), whether it read rows, and its watermark lag.
    pub fn committed(
        &mut self,
        took: Duration,
        interval: Option<Duration>,
        had_rows: bool,
        lag_ms: Option<i64>,
    ) -> Vec<Notice> {
        let mut notices = Vec::new();
        match interval {
            Some(interval) if took > interval => {
                self.slow += 1;
                if self.slow == SLOW_BATCHES {
                    notices.push(Notice::Warn(format!(
                        "{SLOW_BATCHES} batches in a row took longer than the trigger interval of {interval:?} (the last {took:.0?}): the pipeline is falling behind its trigger (logged again when it keeps up)"
                    )));
                }
            }
            _ if self.slow > 0 => {
                if self.slow >= SLOW_BATCHES {
                    notices.push(Notice::Info(format!(
                        "batches keep up with the trigger again, after {} slow one(s)",
                        self.slow
                    )));
                }
                self.slow = 0;
            }
            _ => {}
        }
        if had_rows && let Some(lag) = lag_ms {
            match self.last_lag_ms {
                Some(last) if lag > last => self.lag_growth += 1,
                Some(_) => {
                    if self.lag_reported {
                        notices.push(Notice::Info(format!(
                            "the watermark lag stopped growing ({})",
                            seconds(lag)
                        )));
                    }
                    self.lag_growth = 0;
                    self.lag_reported = false;
                }
                None => {}
            }
            self.last_lag_ms = Some(lag);
            if self.lag_growth >= LAG_GROWTH_BATCHES && !self.lag_reported {
                self.lag_reported = true;
                notices.push(Notice::Warn(format!(
                    "the watermark lag has grown for {} batches in a row, to {}: event time falls further behind the wall clock (logged again when it stops growing)",
                    self.lag_growth,
                    seconds(lag)
                )));
            }
        }
        notices
    }

    /// Notes a failed attempt at a batch that will be retried after `backoff`.
    pub fn attempt_failed(&mut self, attempt: u32, error: &str, backoff: Duration) -> Notice {
        self.failures += 1;
        let same = self.last_failure.as_deref() == Some(error);
        self.last_failure = Some(error.to_string());
        if self.failures == 1 || !same {
            Notice::Warn(format!(
                "batch failed, retrying in {backoff:?} (attempt {attempt}; logged again if the error changes or the batch succeeds): {error}"
            ))
        } else {
            Notice::Debug(format!(
                "batch failed again, retrying in {backoff:?} (attempt {attempt}): {error}"
            ))
        }
    }

    /// Notes that a batch committed after `attempts` attempts.
    pub fn batch_succeeded(&mut self, attempts: u32) -> Option<Notice> {
        let failed = std::mem::take(&mut self.failures);
        self.last_failure = None;
        (failed > 0).then(|| {
            Notice::Info(format!(
                "the batch succeeded at attempt {attempts}, after {failed} failed attempt(s)"
            ))
        })
    }
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn warnings(notices: &[Notice]) -> usize {
        notices
            .iter()
            .filter(|n| matches!(n, Notice::Warn(_)))
            .count()
    }

    #[test]
    fn three_slow_batches_in_a_row_are_reported_once_and_once_more_when_batches_keep_up() {
        let mut episodes = Episodes::default();
        let mut all = Vec::new();
        // One slow batch alone is no episode.
        assert!(
            episodes
                .committed(2 * SECOND, Some(SECOND), true, None)
                .is_empty()
        );
        assert!(
            episodes
                .committed(SECOND / 2, Some(SECOND), true, None)
                .is_empty()
        );
        for took in [0.5, 2.0, 3.0, 2.5, 4.0, 0.2, 0.3] {
            all.extend(episodes.committed(Duration::from_secs_f64(took), Some(SECOND), true, None));
        }
        assert_eq!(warnings(&all), 1, "{all:?}");
        assert_eq!(
            all.last(),
            Some(&Notice::Info(
                "batches keep up with the trigger again, after 4 slow one(s)".into()
            ))
        );
        // Back-to-back triggers have no interval to be late for.
        assert!(episodes.committed(10 * SECOND, None, true, None).is_empty());
    }

    #[test]
    fn a_watermark_lag_growing_for_ten_batches_is_reported_once_until_it_stops_growing() {
        let mut episodes = Episodes::default();
        let mut all = Vec::new();
        for lag in (0..30).map(|i| 1_000 + i * 500) {
            all.extend(episodes.committed(SECOND / 10, Some(SECOND), true, Some(lag)));
        }
        assert_eq!(warnings(&all), 1, "{all:?}");
        // Batches without rows do not count either way.
        assert!(
            episodes
                .committed(SECOND / 10, Some(SECOND), false, Some(0))
                .is_empty()
        );
        let ended = episodes.committed(SECOND / 10, Some(SECOND), true, Some(2_000));
        assert_eq!(
            ended,
            vec![Notice::Info(
                "the watermark lag stopped growing (2.0 s)".into()
            )]
        );
    }

    #[test]
    fn retries_of_one_error_warn_once_and_the_success_says_how_many_attempts_failed() {
        let mut episodes = Episodes::default();
        assert!(matches!(
            episodes.attempt_failed(1, "disk full", SECOND),
            Notice::Warn(_)
        ));
        assert!(matches!(
            episodes.attempt_failed(2, "disk full", 2 * SECOND),
            Notice::Debug(_)
        ));
        assert!(matches!(
            episodes.attempt_failed(3, "broker gone", 4 * SECOND),
            Notice::Warn(_)
        ));
        assert_eq!(
            episodes.batch_succeeded(4),
            Some(Notice::Info(
                "the batch succeeded at attempt 4, after 3 failed attempt(s)".into()
            ))
        );
        assert_eq!(episodes.batch_succeeded(1), None);
    }
}
