//! `type = "file"`: new files in a folder or matching a glob, read as CSV, JSON lines, Parquet or
//! text, and the validation of the section.

use super::byte_size::ByteSize;
use super::checker::Checker;
use super::datagen::ColumnType;
use super::duration::HumanDuration;
use super::on_error::OnError;
use super::source::SourceSpec;
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The `file` source.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSourceSpec {
    /// The folder, or the glob pattern, absolute.
    pub path: PathBuf,
    /// True when `path` is a glob pattern rather than a folder.
    pub is_glob: bool,
    /// How files are parsed.
    pub format: InputFormat,
    /// Declared columns; empty means "infer from the first file" (csv, json) or "the file's own
    /// schema" (parquet). Text files always have one `value` column.
    pub columns: Vec<FileColumn>,
    /// CSV: the first line of each file is a header.
    pub header: bool,
    /// CSV: field delimiter.
    pub delimiter: u8,
    /// CSV: quote character.
    pub quote: u8,
    /// Most files per batch.
    pub max_files_per_trigger: Option<u64>,
    /// Most bytes per batch (at least one file is always taken).
    pub max_bytes_per_trigger: Option<u64>,
    /// Newest files first.
    pub latest_first: bool,
    /// Files older than the newest seen file by more than this are ignored.
    pub max_file_age: Duration,
    /// What happens to a file after the batch that read it committed.
    pub clean_source: CleanSource,
    /// A file is read once its size and modification time have not changed for this long (or
    /// at once when it was renamed into place).
    pub stable_for: Duration,
    /// How often the folder is listed in full, besides file system events.
    pub list_interval: Duration,
    /// Watch the folder for file system events (false: find new files by listing only).
    pub watch: bool,
    /// What to do with a malformed record.
    pub on_error: OnError,
    /// Add a `file` column with the path each row was read from.
    pub include_file_name: bool,
    /// How csv, json and text files are compressed.
    pub compression: Compression,
    /// Most bytes one compressed file may decompress to.
    pub max_decompressed_size: u64,
}

/// `max_decompressed_size` when the pipeline does not say.
pub const DEFAULT_MAX_DECOMPRESSED_SIZE: u64 = 1 << 30;

/// Compression of csv, json and text input files (Parquet compresses inside the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// By extension: `.gz` is gzip, `.zst` is zstd, anything else is plain.
    #[default]
    Auto,
    /// Plain, whatever the name.
    None,
    /// gzip (one or more concatenated members), whatever the name.
    Gzip,
    /// zstd, whatever the name.
    Zstd,
}

/// One declared column of a file source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileColumn {
    /// Name (CSV: matched by position; JSON and Parquet: by name).
    pub name: String,
    /// Type, with datagen's names.
    pub data_type: ColumnType,
}

/// File formats the file source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// CSV (RFC 4180 quoting).
    Csv,
    /// JSON lines: one object per line.
    Json,
    /// Parquet.
    Parquet,
    /// Plain text: one `value` row per line.
    Text,
}

impl InputFormat {
    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Csv => "csv",
            InputFormat::Json => "json",
            InputFormat::Parquet => "parquet",
            InputFormat::Text => "text",
        }
    }
}

/// What the file source does with a file once its batch has committed (Spark's `cleanSource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanSource {
    /// Leave it.
    Off,
    /// Move it under this folder, keeping its path relative to the source folder.
    Archive(PathBuf),
    /// Delete it.
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawCleanSource {
    Off,
    Archive,
    Delete,
}

/// `type = "file"`: new files in a folder (or matching a glob), each read once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileSource {
    /// A folder (its files, not sub-folders) or a glob such as `"in/**/*.csv"`; relative to the
    /// pipeline file's folder.
    pub path: Spanned<String>,
    /// `csv`, `json` (JSON lines), `parquet` or `text`.
    pub format: Spanned<InputFormat>,
    /// CSV: the first line is a header (default true).
    #[serde(default)]
    pub header: Option<Spanned<bool>>,
    /// CSV: field delimiter, one character (default `,`).
    #[serde(default)]
    pub delimiter: Option<Spanned<String>>,
    /// CSV: quote character (default `"`).
    #[serde(default)]
    pub quote: Option<Spanned<String>>,
    /// Most new files per micro-batch.
    #[serde(default)]
    pub max_files_per_trigger: Option<Spanned<u64>>,
    /// Most bytes per micro-batch (a larger file still makes a batch of its own).
    #[serde(default)]
    pub max_bytes_per_trigger: Option<Spanned<ByteSize>>,
    /// Process the newest files first (default false: oldest first).
    #[serde(default)]
    pub latest_first: bool,
    /// Ignore files older than the newest file by more than this (default "7d", as Spark).
    #[serde(default)]
    pub max_file_age: Option<Spanned<HumanDuration>>,
    /// `off` (default), `archive` (needs `archive_dir`) or `delete`, after the batch commits.
    #[serde(default)]
    pub clean_source: Option<Spanned<RawCleanSource>>,
    /// Where `clean_source = "archive"` moves files; relative to the pipeline file's folder.
    #[serde(default)]
    pub archive_dir: Option<Spanned<String>>,
    /// Read a file once it has not changed for this long (default "500ms"); files renamed into
    /// the folder are read at once.
    #[serde(default)]
    pub stable_for: Option<Spanned<HumanDuration>>,
    /// How often to list the folder in full, for file systems without change events (default
    /// "10s").
    #[serde(default)]
    pub list_interval: Option<Spanned<HumanDuration>>,
    /// Watch the folder for file system events (default true). False finds new files only by
    /// listing every `list_interval`: for network file systems, whose events never come, and
    /// trees too big to watch (each folder costs one of the kernel's limited inotify watches).
    #[serde(default)]
    pub watch: Option<bool>,
    /// `fail` (default), `skip` or `dead_letter`: what to do with a malformed record.
    #[serde(default)]
    pub on_error: Option<OnError>,
    /// Add a `file` column: the path each row was read from (default false).
    #[serde(default)]
    pub include_file_name: bool,
    /// `auto` (default: `.gz` gzip, `.zst` zstd, else plain), `none`, `gzip` or `zstd`.
    #[serde(default)]
    pub compression: Option<Spanned<Compression>>,
    /// Most bytes one compressed file may decompress to (default 1 GiB): a larger one is
    /// malformed input, not a reason to run out of memory.
    #[serde(default)]
    pub max_decompressed_size: Option<Spanned<ByteSize>>,
    /// The columns, in order; without them the schema is inferred (csv, json) or read from the
    /// files (parquet).
    #[serde(default)]
    pub column: Vec<Spanned<RawFileColumn>>,
}

/// One `[[source.column]]` of a file source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileColumn {
    /// Column name.
    pub name: Spanned<String>,
    /// `string`, `int`, `long`, `double`, `boolean` or `timestamp`.
    #[serde(rename = "type")]
    pub data_type: Spanned<ColumnType>,
}

const GLOB_CHARS: &[char] = &['*', '?', '['];

pub(super) fn one_byte(
    c: &mut Checker<'_>,
    key: &str,
    value: &Option<Spanned<String>>,
    default: u8,
) -> u8 {
    match value {
        None => default,
        Some(v) => match v.get_ref().as_bytes() {
            [b] if b.is_ascii() && *b != b'\n' && *b != b'\r' => *b,
            _ => {
                c.error(
                    v.span(),
                    format!("{key} must be one ASCII character other than a line break"),
                );
                default
            }
        },
    }
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    base.join(path)
}

/// The folder a glob searches: its longest leading part without pattern characters.
pub fn glob_base(pattern: &Path) -> PathBuf {
    let mut base = PathBuf::new();
    for part in pattern.components() {
        if part.as_os_str().to_string_lossy().contains(GLOB_CHARS) {
            break;
        }
        base.push(part);
    }
    base
}

pub(super) fn check_file_source(
    c: &mut Checker<'_>,
    raw: RawFileSource,
    span: Range<usize>,
) -> Option<SourceSpec> {
    let errors_before = c.diagnostics.len();
    let base_dir = c.file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let format = *raw.format.get_ref();

    let path_text = raw.path.get_ref();
    if path_text.trim().is_empty() {
        c.error(raw.path.span(), "path must not be empty");
    }
    let path = resolve(&base_dir, path_text);
    let is_glob = path_text.contains(GLOB_CHARS);
    if is_glob && let Err(err) = glob::Pattern::new(&path.to_string_lossy()) {
        c.error(
            raw.path.span(),
            format!("invalid glob pattern \"{path_text}\": {err}"),
        );
    }

    if format != InputFormat::Csv {
        for (key, given) in [
            ("header", raw.header.as_ref().map(|h| h.span())),
            ("delimiter", raw.delimiter.as_ref().map(|d| d.span())),
            ("quote", raw.quote.as_ref().map(|q| q.span())),
        ] {
            if let Some(key_span) = given {
                c.error(key_span, format!("`{key}` applies to format = \"csv\""));
            }
        }
    }
    let delimiter = one_byte(c, "delimiter", &raw.delimiter, b',');
    let quote = one_byte(c, "quote", &raw.quote, b'"');

    let mut columns = Vec::new();
    let mut names = std::collections::HashSet::new();
    if format == InputFormat::Text
        && let Some(first) = raw.column.first()
    {
        c.error_hint(
            first.span(),
            "format = \"text\" has one column, `value`; it takes no [[source.column]]",
            "parse the lines with a transform, or use csv or json",
        );
    }
    for col in &raw.column {
        let col = col.get_ref();
        let name = col.name.get_ref();
        if name.is_empty() {
            c.error(col.name.span(), "column name must not be empty");
        } else if !names.insert(name.clone()) {
            c.error(col.name.span(), format!("duplicate column name \"{name}\""));
        }
        columns.push(FileColumn {
            name: name.clone(),
            data_type: *col.data_type.get_ref(),
        });
    }

    if raw.include_file_name
        && let Some(col) = raw
            .column
            .iter()
            .find(|c| c.get_ref().name.get_ref() == "file")
    {
        c.error(
            col.get_ref().name.span(),
            "column name \"file\" is taken by include_file_name = true",
        );
    }

    let positive = |c: &mut Checker<'_>, key: &str, value: &Option<Spanned<u64>>| match value {
        Some(v) if *v.get_ref() == 0 => {
            c.error(v.span(), format!("{key} must be at least 1"));
            None
        }
        Some(v) => Some(*v.get_ref()),
        None => None,
    };
    let max_files_per_trigger = positive(c, "max_files_per_trigger", &raw.max_files_per_trigger);
    let max_bytes_per_trigger = match &raw.max_bytes_per_trigger {
        Some(v) if v.get_ref().0 == 0 => {
            c.error(v.span(), "max_bytes_per_trigger must be at least 1");
            None
        }
        Some(v) => Some(v.get_ref().0),
        // A folder full of files is not read into one batch: a batch is held in memory whole.
        None => Some(super::limits::DEFAULT_MAX_BYTES_PER_TRIGGER),
    };

    let clean_source = match (
        raw.clean_source.as_ref().map(|c| *c.get_ref()),
        &raw.archive_dir,
    ) {
        (Some(RawCleanSource::Archive), Some(dir)) => {
            let archive = resolve(&base_dir, dir.get_ref());
            let searched = if is_glob {
                glob_base(&path)
            } else {
                path.clone()
            };
            let inside = if is_glob {
                archive.starts_with(&searched)
            } else {
                archive == searched
            };
            if dir.get_ref().trim().is_empty() {
                c.error(dir.span(), "archive_dir must not be empty");
            } else if inside {
                c.error_hint(
                    dir.span(),
                    "archive_dir is where the source looks for new files",
                    "archived files would be read again; choose a folder outside the source path",
                );
            }
            CleanSource::Archive(archive)
        }
        (Some(RawCleanSource::Archive), None) => {
            let at = raw.clean_source.as_ref().map_or(span.clone(), |c| c.span());
            c.error_hint(
                at,
                "clean_source = \"archive\" needs `archive_dir`",
                "e.g. archive_dir = \"done\"",
            );
            CleanSource::Off
        }
        (other, Some(dir)) => {
            if other != Some(RawCleanSource::Archive) {
                c.error(
                    dir.span(),
                    "`archive_dir` applies to clean_source = \"archive\"",
                );
            }
            CleanSource::Off
        }
        (Some(RawCleanSource::Delete), None) => CleanSource::Delete,
        (Some(RawCleanSource::Off) | None, None) => CleanSource::Off,
    };

    let duration = |c: &mut Checker<'_>,
                    key: &str,
                    value: &Option<Spanned<HumanDuration>>,
                    default: Duration,
                    zero_ok: bool| match value {
        Some(v) if v.get_ref().0.is_zero() && !zero_ok => {
            c.error(v.span(), format!("{key} must be longer than zero"));
            default
        }
        Some(v) => v.get_ref().0,
        None => default,
    };
    let max_file_age = duration(
        c,
        "max_file_age",
        &raw.max_file_age,
        Duration::from_secs(7 * 24 * 3600),
        false,
    );
    let stable_for = duration(
        c,
        "stable_for",
        &raw.stable_for,
        Duration::from_millis(500),
        true,
    );
    let list_interval = duration(
        c,
        "list_interval",
        &raw.list_interval,
        Duration::from_secs(10),
        false,
    );

    let compression = match &raw.compression {
        Some(v) if format == InputFormat::Parquet && *v.get_ref() != Compression::Auto => {
            c.error_hint(
                v.span(),
                "`compression` applies to csv, json and text",
                "Parquet files carry their own compression and are read as they are",
            );
            Compression::Auto
        }
        Some(v) => *v.get_ref(),
        None => Compression::Auto,
    };
    let max_decompressed_size = match &raw.max_decompressed_size {
        Some(v) if format == InputFormat::Parquet => {
            c.error(
                v.span(),
                "`max_decompressed_size` applies to compressed csv, json and text",
            );
            DEFAULT_MAX_DECOMPRESSED_SIZE
        }
        Some(v) if v.get_ref().0 == 0 => {
            c.error(v.span(), "max_decompressed_size must be at least 1");
            DEFAULT_MAX_DECOMPRESSED_SIZE
        }
        Some(v) => v.get_ref().0,
        None => DEFAULT_MAX_DECOMPRESSED_SIZE,
    };

    if c.diagnostics.len() != errors_before {
        return None;
    }
    Some(SourceSpec::File(FileSourceSpec {
        path,
        is_glob,
        format,
        columns,
        header: raw.header.is_none_or(|h| *h.get_ref()),
        delimiter,
        quote,
        max_files_per_trigger,
        max_bytes_per_trigger,
        latest_first: raw.latest_first,
        max_file_age,
        clean_source,
        stable_for,
        list_interval,
        watch: raw.watch.unwrap_or(true),
        on_error: raw.on_error.unwrap_or_default(),
        include_file_name: raw.include_file_name,
        compression,
        max_decompressed_size,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::{CleanSource, InputFormat, SourceSpec, parse_pipeline};
    use std::path::{Path, PathBuf};

    fn source(body: &str) -> Result<SourceSpec, String> {
        let text =
            format!("name = \"p\"\n[source]\ntype = \"file\"\n{body}\n[[sink]]\ntype = \"null\"\n");
        parse_pipeline(Path::new("/x/p.toml"), &text)
            .map(|p| p.source)
            .map_err(|d| d.to_string())
    }

    #[test]
    fn paths_resolve_and_defaults_hold() {
        match source(
            "path = \"in/*.csv\"\nformat = \"csv\"\nclean_source = \"archive\"\narchive_dir = \"done\"",
        ) {
            Ok(SourceSpec::File(s)) => {
                assert_eq!(s.path, PathBuf::from("/x/in/*.csv"));
                assert!(s.is_glob);
                assert_eq!(s.format, InputFormat::Csv);
                assert!(s.header);
                assert_eq!(
                    s.clean_source,
                    CleanSource::Archive(PathBuf::from("/x/done"))
                );
                assert_eq!(s.stable_for, std::time::Duration::from_millis(500));
                assert_eq!(s.compression, crate::config::Compression::Auto);
                assert_eq!(s.max_decompressed_size, 1 << 30);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_file_source_mistake_is_refused_with_its_message() {
        for (body, message) in [
            ("path = \"in\"\nformat = \"xml\"", "unknown variant `xml`"),
            (
                "path = \"in\"\nformat = \"json\"\nheader = false",
                "`header` applies to format = \"csv\"",
            ),
            (
                "path = \"in\"\nformat = \"csv\"\ndelimiter = \"ab\"",
                "delimiter must be one ASCII character",
            ),
            (
                "path = \"in\"\nformat = \"text\"\n[[source.column]]\nname = \"a\"\ntype = \"string\"",
                "takes no [[source.column]]",
            ),
            (
                "path = \"in\"\nformat = \"csv\"\nclean_source = \"archive\"",
                "/x/p.toml:6:16: error: clean_source = \"archive\" needs `archive_dir`",
            ),
            (
                "path = \"in\"\nformat = \"csv\"\nclean_source = \"archive\"\narchive_dir = \"in\"",
                "archive_dir is where the source looks for new files",
            ),
            ("path = \"in/[a\"\nformat = \"csv\"", "invalid glob pattern"),
            (
                "path = \"in\"\nformat = \"csv\"\nmax_files_per_trigger = 0",
                "max_files_per_trigger must be at least 1",
            ),
            (
                "path = \"in\"\nformat = \"csv\"\n[[source.column]]\nname = \"a\"\ntype = \"long\"\n[[source.column]]\nname = \"a\"\ntype = \"int\"",
                "duplicate column name \"a\"",
            ),
            (
                "path = \"in\"\nformat = \"csv\"\n[[source.column]]\nname = \"a\"\ntype = \"decimal\"",
                "unknown variant `decimal`",
            ),
            (
                "path = \"in\"\nformat = \"parquet\"\ncompression = \"gzip\"",
                "/x/p.toml:6:15: error: `compression` applies to csv, json and text",
            ),
            (
                "path = \"in\"\nformat = \"csv\"\nmax_decompressed_size = 0",
                "max_decompressed_size must be at least 1",
            ),
            (
                "path = \"in\"\nformat = \"csv\"\ncompression = \"bzip2\"",
                "unknown variant `bzip2`, expected one of `auto`, `none`, `gzip`, `zstd`",
            ),
        ] {
            let err = source(body).err().unwrap_or_default();
            assert!(err.contains(message), "{body:?}: {err}");
        }
    }
}
