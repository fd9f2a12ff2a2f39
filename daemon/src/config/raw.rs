//! serde structs that mirror the pipeline TOML one to one. Unknown keys are rejected; values
//! that later checks need to point at keep their spans. Their `///` docs are the option reference
//! (the README's pipeline file reference is written from them).

use super::duration::HumanDuration;
use super::plan::{ColumnType, FileFormat, OutputMode};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The top level of a pipeline file, without the tagged sections (`[source]`, `[[sink]]`),
/// which are taken out and read by `tagged` first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHead {
    /// Unique name; identifies the pipeline's checkpoint and state.
    pub name: Spanned<String>,
    /// `append` (default), `update` or `complete`.
    #[serde(default)]
    pub output_mode: Option<Spanned<OutputMode>>,
    /// When batches fire; absent means back to back.
    #[serde(default)]
    pub trigger: Option<Spanned<RawTrigger>>,
    // Listed so that an unknown top-level key's message names every valid key; the real
    // sections are removed from the table before this struct is read.
    #[serde(default)]
    #[allow(dead_code)]
    source: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    sink: Option<IgnoredAny>,
}

/// `trigger = "available_now" | "once" | { processing_time = "5s" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RawTrigger {
    ProcessingTime(HumanDuration),
    Once,
    AvailableNow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessingTimeTable {
    processing_time: HumanDuration,
}

impl<'de> Deserialize<'de> for RawTrigger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawTrigger;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""available_now", "once" or { processing_time = "5s" }"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTrigger, E> {
                match v {
                    "available_now" => Ok(RawTrigger::AvailableNow),
                    "once" => Ok(RawTrigger::Once),
                    other => Err(E::custom(format!(
                        r#"unknown trigger "{other}", expected "available_now", "once" or {{ processing_time = "5s" }}"#
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawTrigger, A::Error> {
                let table = ProcessingTimeTable::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(RawTrigger::ProcessingTime(table.processing_time))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn one() -> u64 {
    1
}

fn thousand() -> i64 {
    1000
}

/// `type = "rate"`: Spark's rate source, `timestamp` and `value` columns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRate {
    /// Rows generated per second (default 1).
    #[serde(default = "one")]
    pub rows_per_second: u64,
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
    pub start_timestamp: i64,
    /// How far event time advances per batch, in milliseconds (default 1000).
    #[serde(default = "thousand")]
    pub advance_millis_per_batch: i64,
}

/// `type = "datagen"`: generated rows in the style of dbldatagen.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatagen {
    /// Rows released per second (default 1), on the same schedule as `rate`.
    #[serde(default = "one")]
    pub rows_per_second: u64,
    /// Total rows, after which the source is exhausted; absent means unbounded.
    #[serde(default)]
    pub rows: Option<u64>,
    /// Seed of every `random = true` column and of `percent_nulls` (default 42).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Upper bound on rows per micro-batch.
    #[serde(default)]
    pub max_rows_per_batch: Option<Spanned<u64>>,
    /// The generated columns, in order.
    #[serde(default)]
    pub column: Vec<Spanned<RawColumn>>,
}

/// One `[[source.column]]` of a datagen source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawColumn {
    /// Column name.
    pub name: Spanned<String>,
    /// `string`, `int`, `long`, `double`, `boolean` or `timestamp`.
    #[serde(rename = "type")]
    pub data_type: Spanned<ColumnType>,
    /// The values to pick from.
    #[serde(default)]
    pub values: Option<Spanned<Vec<Spanned<RawScalar>>>>,
    /// Relative weight of each of `values`.
    #[serde(default)]
    pub weights: Option<Spanned<Vec<f64>>>,
    /// Smallest value of a numeric range (or of the number after a string `prefix`).
    #[serde(default)]
    pub min: Option<Spanned<RawScalar>>,
    /// Largest value of a numeric range, inclusive.
    #[serde(default)]
    pub max: Option<Spanned<RawScalar>>,
    /// Step of a numeric range (default 1 for integers; continuous for doubles).
    #[serde(default)]
    pub step: Option<Spanned<RawScalar>>,
    /// Draw values at random from the pipeline seed instead of cycling through them.
    #[serde(default)]
    pub random: bool,
    /// `"now"`: the row's scheduled event time (timestamp columns).
    #[serde(default)]
    pub expr: Option<Spanned<String>>,
    /// String columns: `prefix_N`, N from `min`/`max` or the row index.
    #[serde(default)]
    pub prefix: Option<Spanned<String>>,
    /// String columns: a dbldatagen template (`d` digit, `a` letter, `\w` word, ...).
    #[serde(default)]
    pub template: Option<Spanned<String>>,
    /// Fraction of rows that are null, between 0 and 1 (dbldatagen's convention).
    #[serde(default)]
    pub percent_nulls: Option<Spanned<f64>>,
}

/// A literal from the TOML file whose type is checked against the column's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(super) enum RawScalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl RawScalar {
    pub fn type_name(&self) -> &'static str {
        match self {
            RawScalar::Bool(_) => "a boolean",
            RawScalar::Int(_) => "an integer",
            RawScalar::Float(_) => "a float",
            RawScalar::Str(_) => "a string",
        }
    }
}

/// `type = "console"`: prints every batch as Spark's console sink does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    /// Rows shown per batch (default 20).
    #[serde(default)]
    pub num_rows: Option<Spanned<usize>>,
    /// `true` (default) cuts cells at 20 characters and right-aligns; `false` shows them whole,
    /// left-aligned; a number cuts at that many characters.
    #[serde(default)]
    pub truncate: Option<Spanned<RawTruncate>>,
}

/// `truncate = true | false | N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(super) enum RawTruncate {
    Flag(bool),
    Width(i64),
}

/// `type = "file"`: one file per batch in a directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileSink {
    /// Output directory; relative paths are relative to the pipeline file's directory.
    pub path: Spanned<String>,
    /// `json` (JSON lines), `csv` or `parquet`.
    pub format: Spanned<FileFormat>,
    /// CSV only: write a header line (default true).
    #[serde(default)]
    pub header: Option<bool>,
}

/// `type = "null"`: discards everything (for benchmarks).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNullSink {}
