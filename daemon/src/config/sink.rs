//! `[[sink]]`: the sink sections (`console`, `file`, `null`, `kafka`) and their validation.

use super::checker::Checker;
use super::kafka::{KafkaSinkSpec, RawKafkaSink, check_kafka_sink};
use super::tagged;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::DeValue;

const SINK_TYPES: &[&str] = &["console", "file", "null", "kafka"];

/// A validated sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// Spark's console table.
    Console {
        /// Rows shown per batch.
        num_rows: usize,
        /// Cut cells longer than this (and right-align); `None` shows whole cells, left-aligned.
        truncate: Option<usize>,
    },
    /// Files, one per batch.
    File(FileSinkSpec),
    /// Discard.
    Null,
    /// Records in Kafka topics.
    Kafka(Box<KafkaSinkSpec>),
}

impl SinkSpec {
    /// The `type` the section was written with.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkSpec::Console { .. } => "console",
            SinkSpec::File(_) => "file",
            SinkSpec::Null => "null",
            SinkSpec::Kafka(_) => "kafka",
        }
    }
}

/// The file sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkSpec {
    /// Output directory (absolute, resolved against the pipeline file's directory).
    pub path: PathBuf,
    /// Format.
    pub format: FileFormat,
    /// CSV header line.
    pub header: bool,
}

/// File formats the file sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// JSON lines.
    Json,
    /// CSV.
    Csv,
    /// Parquet.
    Parquet,
}

impl FileFormat {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Json => "json",
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
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
pub(super) fn check_sinks(
    c: &mut Checker<'_>,
    value: Spanned<DeValue<'_>>,
) -> Option<Vec<SinkSpec>> {
    let span = value.span();
    let tables = c.ok(tagged::tables("sink", value))?;
    if tables.is_empty() {
        c.error(span, "at least one [[sink]] is needed");
        return None;
    }
    let mut sinks = Vec::new();
    let mut ok = true;
    for table in tables {
        match check_sink(c, table) {
            Some(sink) => sinks.push(sink),
            None => ok = false,
        }
    }
    ok.then_some(sinks)
}

fn check_sink(c: &mut Checker<'_>, value: Spanned<DeValue<'_>>) -> Option<SinkSpec> {
    let tagged = c.ok(tagged::split_type("sink", value))?;
    match tagged.kind.as_str() {
        "console" => {
            let raw: RawConsole = c.ok(tagged::deserialize(tagged.body))?;
            let truncate = match raw.truncate.as_ref().map(|t| (t.span(), *t.get_ref())) {
                None | Some((_, RawTruncate::Flag(true))) => Some(20),
                Some((_, RawTruncate::Flag(false))) => None,
                Some((span, RawTruncate::Width(n))) => match usize::try_from(n) {
                    Ok(0) => None,
                    Ok(n) => Some(n),
                    Err(_) => {
                        c.error(span, "truncate must be true, false or a positive width");
                        return None;
                    }
                },
            };
            Some(SinkSpec::Console {
                num_rows: raw.num_rows.map_or(20, |n| n.into_inner()),
                truncate,
            })
        }
        "file" => {
            let raw: RawFileSink = c.ok(tagged::deserialize(tagged.body))?;
            let path_span = raw.path.span();
            let path = raw.path.into_inner();
            if path.trim().is_empty() {
                c.error(path_span, "path must not be empty");
                return None;
            }
            let base = c.file.parent().unwrap_or(Path::new("."));
            let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
            Some(SinkSpec::File(FileSinkSpec {
                path: base.join(path),
                format: raw.format.into_inner(),
                header: raw.header.unwrap_or(true),
            }))
        }
        "null" => {
            let _: RawNullSink = c.ok(tagged::deserialize(tagged.body))?;
            Some(SinkSpec::Null)
        }
        "kafka" => {
            let span = tagged.body.span();
            let raw: RawKafkaSink = c.ok(tagged::deserialize(tagged.body))?;
            check_kafka_sink(c, raw, span).map(|spec| SinkSpec::Kafka(Box::new(spec)))
        }
        _ => {
            let err = tagged::unknown_type("sink", &tagged, SINK_TYPES);
            c.span_error(err);
            None
        }
    }
}
