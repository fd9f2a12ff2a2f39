//! The generators' numeric options, from the pipeline file to rows: random values (extremes
//! included) for every number `rate`, `rate_micro_batch` and `datagen` take are written into a
//! pipeline file, checked as `weir check` does, and the pipelines that pass are run for a few
//! reads. Whatever the numbers, nothing panics, and every rejection points at a line and a
//! column of the file.

use super::{DatagenSource, RateMicroBatchSource, RateSource, ReadLimit, Source, SourceOffset};
use crate::config::{SourceSpec, parse_pipeline};
use proptest::prelude::*;
use std::path::Path;

/// Numbers as TOML writes them: the extremes of each type, the awkward floats, and ordinary
/// values.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("2".to_string()),
        Just("1000".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("4294967295".to_string()),
        Just("2147483647".to_string()),
        Just("-2147483648".to_string()),
        Just("1e-300".to_string()),
        Just("1e308".to_string()),
        Just("-1e308".to_string()),
        Just("1.7976931348623157e308".to_string()),
        Just("5e-324".to_string()),
        Just("0.25".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("9007199254740993".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<i32>().prop_map(|v| v.to_string()),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("{v:e}")),
        (0u32..10).prop_map(|e| format!("1e{}", e * 3)),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0s".to_string()),
        Just("1ms".to_string()),
        Just("1s".to_string()),
        Just("10m".to_string()),
        Just("1000y".to_string()),
        Just("18446744073709551615s".to_string()),
        Just("584942417355y".to_string()),
        (0u64..u64::MAX).prop_map(|s| format!("{s}s")),
        (0u64..100_000).prop_map(|ms| format!("{ms}ms")),
    ]
}

/// An optional `key = value` line.
fn line(key: &'static str, value: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        value.prop_map(move |v| format!("{key} = {v}\n")),
    ]
}

fn quoted(value: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    value.prop_map(|v| format!("\"{v}\""))
}

fn datagen_column() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("int"),
            Just("long"),
            Just("double"),
            Just("timestamp"),
            Just("string")
        ],
        line("min", number()),
        line("max", number()),
        line("step", number()),
        line("jitter", quoted(duration())),
        line("percent_nulls", number()),
        any::<bool>(),
    )
        .prop_map(|(ty, min, max, step, jitter, nulls, random)| {
            let (range, jitter) = match ty {
                "timestamp" => (String::new(), format!("expr = \"now\"\n{jitter}")),
                _ => (format!("{min}{max}{step}"), String::new()),
            };
            let prefix = if ty == "string" { "prefix = \"k\"\n" } else { "" };
            format!(
                "[[source.column]]\nname = \"c\"\ntype = \"{ty}\"\n{prefix}{range}{jitter}{nulls}random = {random}\n"
            )
        })
}

fn source_section() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            line("rows_per_second", number()),
            line("ramp_up_time", quoted(duration())),
            line("max_rows_per_batch", number()),
        )
            .prop_map(|(a, b, c)| format!("[source]\ntype = \"rate\"\n{a}{b}{c}")),
        (
            number(),
            line("start_timestamp", number()),
            line("advance_millis_per_batch", number()),
        )
            .prop_map(|(rows, b, c)| format!(
                "[source]\ntype = \"rate_micro_batch\"\nrows_per_batch = {rows}\n{b}{c}"
            )),
        (
            line("rows_per_second", number()),
            line("rows", number()),
            line("max_rows_per_batch", number()),
            line("start_timestamp", number()),
            line("seed", number()),
            datagen_column(),
        )
            .prop_map(|(a, b, c, d, e, column)| format!(
                "[source]\ntype = \"datagen\"\n{a}{b}{c}{d}{e}\n{column}"
            )),
    ]
}

fn with_rows(offset: &SourceOffset, rows: u64) -> SourceOffset {
    let mut offset = offset.clone();
    offset["rows"] = serde_json::json!(rows);
    offset
}

/// A few reads, as the engine would make them: what is due now, the first rows, and rows far
/// along the stream (as after a long run). All of them must succeed; a range past the largest
/// row index a `long` column holds must be refused with an error.
fn run_briefly(mut source: Box<dyn Source>) -> Result<(), String> {
    let fail = |what: &str, err: super::SourceError| format!("{what}: {err}");
    let start = source.initial_offset().map_err(|e| fail("initial", e))?;
    let latest = source
        .latest_offset(&start, ReadLimit::SourceLimits)
        .map_err(|e| fail("latest", e))?;
    let due = latest["rows"].as_u64().unwrap_or(0).min(1000);
    source
        .read(&start, &with_rows(&start, due))
        .map_err(|e| fail("due rows", e))?;
    source
        .read(&start, &with_rows(&start, 100))
        .map_err(|e| fail("first rows", e))?;
    for far in [1u64 << 40, i64::MAX as u64 - 10] {
        let rows = source
            .read(&with_rows(&start, far), &with_rows(&start, far + 5))
            .map_err(|e| fail("far rows", e))?;
        let n: usize = rows.iter().map(|b| b.num_rows()).sum();
        if n != 5 {
            return Err(format!("far rows at {far}: {n} rows instead of 5"));
        }
    }
    match source.read(
        &with_rows(&start, u64::MAX - 10),
        &with_rows(&start, u64::MAX - 5),
    ) {
        Err(super::SourceError::BadOffset { .. }) => Ok(()),
        Err(other) => Err(format!("past 2^63: {other}")),
        Ok(_) => Err("past 2^63: rows that a long column cannot number".into()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_numeric_generator_options_are_rejected_at_a_position_or_run_without_panicking(
        source in source_section()
    ) {
        let text = format!("name = \"p\"\n{source}\n[[sink]]\ntype = \"null\"\n");
        match parse_pipeline(Path::new("p.toml"), &text) {
            Err(diagnostics) => {
                for d in diagnostics.iter() {
                    prop_assert!(d.location.is_some(), "no position: {d}\n{text}");
                }
            }
            Ok(plan) => {
                let source: Box<dyn Source> = match plan.source {
                    SourceSpec::Rate(spec) => Box::new(RateSource::new(spec)),
                    SourceSpec::RateMicroBatch(spec) => Box::new(RateMicroBatchSource::new(spec)),
                    SourceSpec::Datagen(spec) => Box::new(DatagenSource::new(spec)),
                    other => panic!("unexpected source {other:?}"),
                };
                let ran = run_briefly(source);
                prop_assert!(ran.is_ok(), "{}\n{text}", ran.err().unwrap_or_default());
            }
        }
    }
}

/// The first error of a pipeline file made of `source`, rendered.
fn first_error(source: &str) -> String {
    let text = format!("name = \"p\"\n{source}\n[[sink]]\ntype = \"null\"\n");
    match parse_pipeline(Path::new("p.toml"), &text) {
        Ok(plan) => panic!("accepted: {:?}", plan.source),
        Err(diagnostics) => diagnostics
            .iter()
            .next()
            .map(|d| format!("{}: {}", d.position(), d.message))
            .unwrap_or_default(),
    }
}

#[test]
fn each_out_of_range_number_is_refused_at_its_position_with_the_bound() {
    let cases = [
        (
            "[source]\ntype = \"rate\"\nrows_per_second = 0\n",
            "p.toml:4:19: rows_per_second must be between 1 and 1000000000, not 0",
        ),
        (
            "[source]\ntype = \"rate\"\nrows_per_second = 2000000000\n",
            "p.toml:4:19: rows_per_second must be between 1 and 1000000000, not 2000000000",
        ),
        (
            "[source]\ntype = \"rate\"\nramp_up_time = \"2years\"\n",
            "p.toml:4:16: ramp_up_time must be at most 365 days, not 2years",
        ),
        (
            "[source]\ntype = \"rate\"\nmax_rows_per_batch = 200000000\n",
            "p.toml:4:22: max_rows_per_batch must be between 1 and 100000000, not 200000000",
        ),
        (
            "[source]\ntype = \"rate_micro_batch\"\nrows_per_batch = 0\n",
            "p.toml:4:18: rows_per_batch must be between 1 and 100000000, not 0",
        ),
        (
            "[source]\ntype = \"rate_micro_batch\"\nrows_per_batch = 1\nstart_timestamp = 9223372036854775807\n",
            "p.toml:5:19: start_timestamp must be between -62135596800000 and 253402300799999 (years 1 to 9999, ms since the epoch), not 9223372036854775807",
        ),
        (
            "[source]\ntype = \"datagen\"\n[[source.column]]\nname = \"t\"\ntype = \"timestamp\"\nexpr = \"now\"\njitter = \"400days\"\n",
            "p.toml:8:10: jitter must be at most 365 days, not 400 days",
        ),
        (
            "[source]\ntype = \"datagen\"\n[[source.column]]\nname = \"d\"\ntype = \"double\"\nmin = -1e308\nmax = 1e308\n",
            "p.toml:5:8: the range from -1e308 to 1e308 is wider than a double can hold",
        ),
        (
            "[source]\ntype = \"datagen\"\n[[source.column]]\nname = \"d\"\ntype = \"double\"\nmin = 0\nmax = 1\nstep = 1e-300\n",
            "p.toml:5:8: from 0 to 1 by 1e-300 makes more than 2^53 values",
        ),
    ];
    for (source, expected) in cases {
        assert_eq!(first_error(source), expected, "{source}");
    }
}

#[test]
fn rate_and_datagen_default_max_rows_per_batch_to_ten_million() {
    for source in [
        "[source]\ntype = \"rate\"\n",
        "[source]\ntype = \"datagen\"\n[[source.column]]\nname = \"v\"\ntype = \"long\"\n",
    ] {
        let text = format!("name = \"p\"\n{source}\n[[sink]]\ntype = \"null\"\n");
        let plan = parse_pipeline(Path::new("p.toml"), &text);
        let max = match plan.map(|p| p.source) {
            Ok(SourceSpec::Rate(spec)) => spec.max_rows_per_batch,
            Ok(SourceSpec::Datagen(spec)) => spec.max_rows_per_batch,
            other => panic!("{other:?}"),
        };
        // The documented value, not the constant: a changed default must change the docs.
        assert_eq!(max, Some(10_000_000));
    }
}
