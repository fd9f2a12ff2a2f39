//! Where the micro-batch loop reads the time. Waiting is always on tokio's monotonic clock (so
//! a wall clock stepped backwards never stalls a retry, and tests can pause time); the wall
//! clock is read through a [`Clock`] for what is about wall time: when a `processing_time`
//! trigger fires (ticks are aligned to the epoch, as Spark aligns them) and the timestamp a
//! batch is planned with.

use std::time::SystemTime;

/// The wall clock the loop reads.
pub trait Clock: Send + Sync {
    /// Now, ms since the epoch.
    fn wall_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A wall clock that moves with tokio's clock from a fixed start: with tokio's time paused
/// (tests), wall time advances exactly as the test advances tokio's, and nothing else moves it.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_ms: i64,
    started: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start_ms` now.
    pub fn starting_at(start_ms: i64) -> TokioClock {
        TokioClock {
            start_ms,
            started: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn wall_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_ms.saturating_add(elapsed)
    }
}
