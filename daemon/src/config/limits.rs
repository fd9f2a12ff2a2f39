//! The bounds numeric options of the generators must stay within, checked when a file is read
//! so that no arithmetic on them can overflow later and no batch can outgrow memory by default.
//! Each bound is far beyond real use and is said in the message when crossed.

use super::checker::Checker;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// Most rows a generator may release per second.
pub const MAX_ROWS_PER_SECOND: u64 = 1_000_000_000;
/// Most rows one batch may be asked to hold (`max_rows_per_batch`, `rows_per_batch`).
pub const MAX_ROWS_PER_BATCH: u64 = 100_000_000;
/// `max_rows_per_batch` of `rate` and `datagen` when the file does not say: a catch-up after
/// downtime is split into batches of this many rows instead of one batch of everything.
pub const DEFAULT_MAX_ROWS_PER_BATCH: u64 = 10_000_000;
/// `max_bytes_per_trigger` of the file source when the file does not say (at least one file
/// goes into a batch, whatever its size).
pub const DEFAULT_MAX_BYTES_PER_TRIGGER: u64 = 256 << 20;
/// Longest `ramp_up_time`.
pub const MAX_RAMP_UP: Duration = Duration::from_secs(365 * 24 * 3600);
/// Longest `jitter` of a timestamp column.
pub const MAX_JITTER: Duration = Duration::from_secs(365 * 24 * 3600);
/// Earliest start timestamp: 0001-01-01T00:00:00Z, ms since the epoch.
pub const MIN_TIMESTAMP_MS: i64 = -62_135_596_800_000;
/// Latest start timestamp: 9999-12-31T23:59:59.999Z, ms since the epoch.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;
/// Most distinct values a stepped double range may hold: beyond 2^53, `min + i * step` no
/// longer tells its values apart.
pub const MAX_FLOAT_STEPS: f64 = 9_007_199_254_740_992.0;

/// `rows_per_second`: between 1 and [`MAX_ROWS_PER_SECOND`]; absent means 1.
pub(super) fn rows_per_second(c: &mut Checker<'_>, value: Option<Spanned<u64>>) -> Option<u64> {
    let Some(value) = value else { return Some(1) };
    let n = *value.get_ref();
    if n == 0 || n > MAX_ROWS_PER_SECOND {
        c.error(
            value.span(),
            format!("rows_per_second must be between 1 and {MAX_ROWS_PER_SECOND}, not {n}"),
        );
        return None;
    }
    Some(n)
}

/// A rows-per-batch count named `key`: between 1 and [`MAX_ROWS_PER_BATCH`].
pub(super) fn rows_per_batch(c: &mut Checker<'_>, key: &str, value: &Spanned<u64>) -> Option<u64> {
    let n = *value.get_ref();
    if n == 0 || n > MAX_ROWS_PER_BATCH {
        c.error_hint(
            value.span(),
            format!("{key} must be between 1 and {MAX_ROWS_PER_BATCH}, not {n}"),
            "a batch is held in memory whole; more rows go into more batches",
        );
        return None;
    }
    Some(n)
}

/// A start timestamp (ms since the epoch) within years 1 to 9999.
pub(super) fn timestamp_ms(c: &mut Checker<'_>, key: &str, value: &Spanned<i64>) -> Option<i64> {
    let ms = *value.get_ref();
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        c.error(
            value.span(),
            format!(
                "{key} must be between {MIN_TIMESTAMP_MS} and {MAX_TIMESTAMP_MS} (years 1 to 9999, ms since the epoch), not {ms}"
            ),
        );
        return None;
    }
    Some(ms)
}

/// A duration no longer than `max`.
pub(super) fn at_most(
    c: &mut Checker<'_>,
    key: &str,
    value: Duration,
    span: Range<usize>,
    max: Duration,
) -> Option<Duration> {
    if value > max {
        c.error(
            span,
            format!("{key} must be at most {}, not {}", days(max), days(value)),
        );
        return None;
    }
    Some(value)
}

/// A duration for a message: whole days as `N days`, anything else the human way.
fn days(d: Duration) -> String {
    if d.subsec_nanos() == 0 && d.as_secs().is_multiple_of(86_400) {
        format!("{} days", d.as_secs() / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}
