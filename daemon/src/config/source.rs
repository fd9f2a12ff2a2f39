//! `[source]`: the tagged source section, and the `rate` and `rate_micro_batch` sources.
//! Each further source type has its own module and one arm in [`check_source`].

use super::checker::Checker;
use super::datagen::{DatagenSpec, RawDatagen, check_datagen};
use super::duration::HumanDuration;
use super::file_source::{FileSourceSpec, RawFileSource, check_file_source};
use super::kafka::{KafkaSourceSpec, RawKafkaSource, check_kafka_source};
use super::limits;
use super::socket::{RawSocket, SocketSpec, check_socket};
use super::tagged;
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

const SOURCE_TYPES: &[&str] = &[
    "rate",
    "rate_micro_batch",
    "datagen",
    "socket",
    "file",
    "kafka",
];

/// A validated source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// `rate`.
    Rate(RateSpec),
    /// `rate_micro_batch`.
    RateMicroBatch(RateMicroBatchSpec),
    /// `datagen`.
    Datagen(DatagenSpec),
    /// `socket`.
    Socket(SocketSpec),
    /// `file`.
    File(FileSourceSpec),
    /// `kafka`.
    Kafka(KafkaSourceSpec),
}

impl SourceSpec {
    /// The `type` the section was written with.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Rate(_) => "rate",
            SourceSpec::RateMicroBatch(_) => "rate_micro_batch",
            SourceSpec::Datagen(_) => "datagen",
            SourceSpec::Socket(_) => "socket",
            SourceSpec::File(_) => "file",
            SourceSpec::Kafka(_) => "kafka",
        }
    }
}

/// The `rate` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSpec {
    /// Rows per second once ramped up.
    pub rows_per_second: u64,
    /// Ramp-up time in whole seconds.
    pub ramp_up_seconds: u64,
    /// Upper bound on rows per batch.
    pub max_rows_per_batch: Option<u64>,
}

/// The `rate_micro_batch` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateMicroBatchSpec {
    /// Rows per batch.
    pub rows_per_batch: u64,
    /// Event time of batch 0, ms since the epoch.
    pub start_timestamp_ms: i64,
    /// Event-time advance per batch, ms.
    pub advance_millis_per_batch: i64,
}

fn thousand() -> i64 {
    1000
}

/// `type = "rate"`: Spark's rate source, `timestamp` and `value` columns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRate {
    /// Rows generated per second (default 1).
    #[serde(default)]
    pub rows_per_second: Option<Spanned<u64>>,
    /// Time to ramp up from 0 to `rows_per_second` (whole seconds, as in Spark).
    #[serde(default)]
    pub ramp_up_time: Option<Spanned<HumanDuration>>,
    /// Upper bound on rows per micro-batch (catch-up after a restart is split into batches).
    #[serde(default)]
    pub max_rows_per_batch: Option<Spanned<u64>>,
}

/// `type = "rate_micro_batch"`: a fixed number of rows per batch, with event time advancing by a
/// fixed step per batch regardless of the wall clock.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateMicroBatch {
    /// Rows in every micro-batch.
    pub rows_per_batch: Spanned<u64>,
    /// Event time (ms since the epoch) of the first batch's rows (default 0).
    #[serde(default)]
    pub start_timestamp: Option<Spanned<i64>>,
    /// How far event time advances per batch, in milliseconds (default 1000).
    #[serde(default = "thousand")]
    pub advance_millis_per_batch: i64,
}

pub(super) fn check_source(c: &mut Checker<'_>, value: Spanned<DeValue<'_>>) -> Option<SourceSpec> {
    let tagged = c.ok(tagged::split_type("source", value))?;
    match tagged.kind.as_str() {
        "rate" => {
            let raw: RawRate = c.ok(tagged::deserialize(tagged.body))?;
            check_rate(c, raw)
        }
        "rate_micro_batch" => {
            let raw: RawRateMicroBatch = c.ok(tagged::deserialize(tagged.body))?;
            let rows_per_batch = limits::rows_per_batch(c, "rows_per_batch", &raw.rows_per_batch);
            let start_timestamp_ms = match &raw.start_timestamp {
                Some(ts) => limits::timestamp_ms(c, "start_timestamp", ts),
                None => Some(0),
            };
            Some(SourceSpec::RateMicroBatch(RateMicroBatchSpec {
                rows_per_batch: rows_per_batch?,
                start_timestamp_ms: start_timestamp_ms?,
                advance_millis_per_batch: raw.advance_millis_per_batch,
            }))
        }
        "datagen" => {
            let span = tagged.body.span();
            let raw: RawDatagen = c.ok(tagged::deserialize(tagged.body))?;
            check_datagen(c, raw, span)
        }
        "socket" => {
            let span = tagged.body.span();
            let raw: RawSocket = c.ok(tagged::deserialize(tagged.body))?;
            check_socket(c, raw, span)
        }
        "file" => {
            let span = tagged.body.span();
            let raw: RawFileSource = c.ok(tagged::deserialize(tagged.body))?;
            check_file_source(c, raw, span)
        }
        "kafka" => {
            let span = tagged.body.span();
            let raw: RawKafkaSource = c.ok(tagged::deserialize(tagged.body))?;
            check_kafka_source(c, raw, span).map(SourceSpec::Kafka)
        }
        _ => {
            let err = tagged::unknown_type("source", &tagged, SOURCE_TYPES);
            c.span_error(err);
            None
        }
    }
}

pub(super) fn check_max_rows(
    c: &mut Checker<'_>,
    value: Option<Spanned<u64>>,
) -> Option<Option<u64>> {
    match value {
        Some(v) => limits::rows_per_batch(c, "max_rows_per_batch", &v).map(Some),
        None => Some(Some(limits::DEFAULT_MAX_ROWS_PER_BATCH)),
    }
}

fn check_rate(c: &mut Checker<'_>, raw: RawRate) -> Option<SourceSpec> {
    let rows_per_second = limits::rows_per_second(c, raw.rows_per_second);
    let ramp_up_seconds = match raw.ramp_up_time {
        Some(d) if d.get_ref().0.subsec_nanos() != 0 => {
            c.error(
                d.span(),
                "ramp_up_time must be a whole number of seconds (as in Spark)",
            );
            None
        }
        Some(d) => limits::at_most(
            c,
            "ramp_up_time",
            d.get_ref().0,
            d.span(),
            limits::MAX_RAMP_UP,
        )
        .map(|d| d.as_secs()),
        None => Some(0),
    };
    let max_rows_per_batch = check_max_rows(c, raw.max_rows_per_batch)?;
    Some(SourceSpec::Rate(RateSpec {
        rows_per_second: rows_per_second?,
        ramp_up_seconds: ramp_up_seconds?,
        max_rows_per_batch,
    }))
}
