//! `file`: new files in a folder or matching a glob, each read once, as CSV, JSON lines, Parquet
//! or text.
//!
//! Which files make up a batch is durable: files are appended to a file log in the state store
//! (synced) before a batch is planned, and offsets are positions in that log, so a replay reads
//! the same files — and the same bytes of each, even if a file grew since. Files taken are
//! remembered, so a restart reads nothing twice. `clean_source` moves or deletes a file only
//! after the batch that read it has committed.

mod compression;
mod discovery;
mod log;
mod readers;
mod timestamps;

pub use log::{FileEntry, FileLog};
pub(crate) use readers::clean_reason;

use super::bad_records::{BadRecords, MalformedCounts, RecordLocation};
use super::{ReadLimit, Source, SourceContext, SourceError, SourceOffset, Wakeup};
use crate::config::{CleanSource, ColumnType, FileSourceSpec, InputFormat};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use discovery::{Discovery, Matcher, ReadyFile};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Records read to infer a schema.
const INFER_RECORDS: usize = 1000;

fn parse_offset(value: &SourceOffset) -> Result<u64, SourceError> {
    value
        .get("files")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| SourceError::BadOffset {
            offset: value.to_string(),
            reason: "expected {\"files\": n}".into(),
        })
}

fn offset(files: u64) -> SourceOffset {
    serde_json::json!({ "files": files })
}

pub(crate) fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int => DataType::Int32,
        ColumnType::Long => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Timestamp => super::rate::timestamp_type(),
    }
}

/// The schema when it does not depend on the files: text, or declared columns.
fn fixed_schema(spec: &FileSourceSpec) -> Option<Schema> {
    if spec.format == InputFormat::Text {
        return Some(Schema::new(vec![Field::new(
            "value",
            DataType::Utf8,
            false,
        )]));
    }
    (!spec.columns.is_empty()).then(|| {
        Schema::new(
            spec.columns
                .iter()
                .map(|c| Field::new(&c.name, arrow_type(c.data_type), true))
                .collect::<Vec<_>>(),
        )
    })
}

/// The oldest file there is now (by modification time, then name): the one inferred from.
fn first_file(matcher: &Matcher) -> Result<Option<PathBuf>, String> {
    Ok(matcher
        .list()?
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .min()
        .map(|(_, p)| p))
}

/// Infers a schema from one file: CSV and JSON from their first 1000 records (Arrow's
/// inference), Parquet from its footer.
fn infer(spec: &FileSourceSpec, path: &Path) -> Result<Schema, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let plain = || {
        compression::decoder(compression::codec(spec.compression, path), &file)
            .map_err(|e| e.to_string())
    };
    let schema = match spec.format {
        InputFormat::Csv => {
            arrow::csv::reader::Format::default()
                .with_header(spec.header)
                .with_delimiter(spec.delimiter)
                .with_quote(spec.quote)
                .infer_schema(plain()?, Some(INFER_RECORDS))
                .map_err(|e| e.to_string())?
                .0
        }
        InputFormat::Json => {
            arrow::json::reader::infer_json_schema(plain()?, Some(INFER_RECORDS))
                .map_err(|e| e.to_string())?
                .0
        }
        InputFormat::Parquet => {
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| e.to_string())?;
            Schema::new(builder.schema().fields().clone())
        }
        InputFormat::Text => Schema::new(vec![Field::new("value", DataType::Utf8, false)]),
    };
    // Inferred columns may hold nulls in later files even if the first had none.
    Ok(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// The schema for type checks before a pipeline runs: the declared one; else the one the
/// pipeline's checkpoint kept; else as it would be inferred now (empty when there is no file to
/// infer from).
pub fn schema_for_check(
    spec: &FileSourceSpec,
    checkpoint: Option<(&crate::state::SharedStore, &str)>,
) -> SchemaRef {
    let kept = || {
        let (store, pipeline) = checkpoint?;
        let schema = FileLog::new(store.clone(), pipeline).schema().ok()??;
        Some(schema.as_ref().clone())
    };
    let decoded = fixed_schema(spec)
        .or_else(kept)
        .or_else(|| {
            first_file(&Matcher::new(spec))
                .ok()
                .flatten()
                .and_then(|p| infer(spec, &p).ok())
        })
        .unwrap_or_else(Schema::empty);
    with_file_column(spec, &decoded)
}

/// The schema rows leave with: what the files decode to, plus `file` with `include_file_name`.
fn with_file_column(spec: &FileSourceSpec, decoded: &Schema) -> SchemaRef {
    if !spec.include_file_name {
        return Arc::new(decoded.clone());
    }
    let mut fields: Vec<Field> = decoded
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("file", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// Appends the constant `file` column to a file's batches.
fn add_file_column(
    schema: &SchemaRef,
    path: &Path,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, SourceError> {
    let name = path.to_string_lossy();
    batches
        .into_iter()
        .map(|batch| {
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(arrow::array::StringArray::from_iter_values(
                std::iter::repeat_n(name.as_ref(), batch.num_rows()),
            )));
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        })
        .collect()
}

/// The file source.
#[derive(Debug)]
pub struct FileSource {
    spec: FileSourceSpec,
    /// What rows leave with.
    schema: SchemaRef,
    /// What the files decode to (`schema` without the `file` column).
    decoded: SchemaRef,
    log: FileLog,
    next: u64,
    discovery: Discovery,
    /// Files already logged (and not cleaned away), with their modification times.
    taken: HashMap<PathBuf, i64>,
    /// Files ignored as older than `max_file_age` (said once).
    too_old: HashSet<PathBuf>,
    newest_mtime_ms: i64,
    bad: BadRecords,
    malformed: MalformedCounts,
    /// `available_now`: the files there were at start, not yet logged.
    frozen: Option<VecDeque<ReadyFile>>,
    cleaned_below: u64,
    /// How many files `read` decodes at once.
    spread: crate::cores::Spread,
}

fn config_error(message: String) -> SourceError {
    SourceError::Config(message)
}

impl FileSource {
    /// Opens the file log and starts watching the folder.
    pub fn open(spec: FileSourceSpec, ctx: &SourceContext) -> Result<FileSource, SourceError> {
        let matcher = Matcher::new(&spec);
        if !matcher.dir().is_dir() {
            return Err(config_error(format!(
                "the file source's folder {} does not exist (create it, or fix `path`)",
                matcher.dir().display()
            )));
        }
        let log = FileLog::new(ctx.store.clone(), &ctx.pipeline);
        let corrupt = |e: log::FileLogError| match e {
            log::FileLogError::Store(e) => SourceError::Store(e),
            other => config_error(other.to_string()),
        };
        let decoded = match fixed_schema(&spec) {
            Some(schema) => Arc::new(schema),
            None => match log.schema().map_err(corrupt)? {
                Some(schema) => schema,
                None => {
                    let Some(first) = first_file(&matcher)
                        .map_err(|err| config_error(format!("cannot infer the schema: {err}")))?
                    else {
                        return Err(config_error(format!(
                            "no file in {} to infer the schema from; declare the columns with [[source.column]] or add a file before the first start",
                            matcher.dir().display()
                        )));
                    };
                    let schema = infer(&spec, &first).map_err(|reason| {
                        config_error(format!(
                            "cannot infer a schema from {}: {reason}",
                            first.display()
                        ))
                    })?;
                    tracing::info!(pipeline = %ctx.pipeline, "file source: schema inferred from {}: {}", first.display(), describe(&schema));
                    log.set_schema(&schema).map_err(corrupt)?;
                    Arc::new(schema)
                }
            },
        };
        let mut taken = log.seen()?;
        let newest_mtime_ms = taken.values().copied().max().unwrap_or(i64::MIN);
        if !(spec.latest_first && spec.max_files_per_trigger.is_some()) {
            // Files older than max_file_age are ignored anyway; stop remembering them.
            let max_age = i64::try_from(spec.max_file_age.as_millis()).unwrap_or(i64::MAX);
            let threshold = newest_mtime_ms.saturating_sub(max_age);
            let old: Vec<PathBuf> = taken
                .iter()
                .filter(|(_, mtime)| **mtime < threshold)
                .map(|(p, _)| p.clone())
                .collect();
            if !old.is_empty() {
                log.forget(&old)?;
                for path in &old {
                    taken.remove(path);
                }
            }
        }
        Ok(FileSource {
            next: log.next_seq()?,
            discovery: Discovery::start(&spec),
            bad: BadRecords::new(spec.on_error, "file", ctx),
            schema: with_file_column(&spec, &decoded),
            decoded,
            spec,
            log,
            taken,
            too_old: HashSet::new(),
            newest_mtime_ms,
            malformed: MalformedCounts::default(),
            frozen: None,
            cleaned_below: 0,
            // Until a pipeline says otherwise: one file per core.
            spread: crate::cores::Spread::machine(crate::cores::machine_cores()),
        })
    }

    /// Complete new files, in processing order, within `max_file_age`.
    fn candidates(&mut self) -> Vec<ReadyFile> {
        let mut ready = match &mut self.frozen {
            Some(frozen) => frozen.drain(..).collect(),
            None => self.discovery.poll(&self.taken, false),
        };
        let age_applies = !(self.spec.latest_first && self.spec.max_files_per_trigger.is_some());
        let newest = ready
            .iter()
            .map(|f| f.mtime_ms)
            .max()
            .unwrap_or(i64::MIN)
            .max(self.newest_mtime_ms);
        if age_applies && newest != i64::MIN {
            let max_age = i64::try_from(self.spec.max_file_age.as_millis()).unwrap_or(i64::MAX);
            let threshold = newest.saturating_sub(max_age);
            ready.retain(|f| {
                let keep = f.mtime_ms >= threshold;
                if !keep && self.too_old.insert(f.path.clone()) {
                    tracing::info!(
                        "file source: ignoring {}: older than the newest file by more than max_file_age",
                        f.path.display()
                    );
                }
                keep
            });
        }
        ready.sort_by(|a, b| (a.mtime_ms, &a.path).cmp(&(b.mtime_ms, &b.path)));
        if self.spec.latest_first {
            ready.reverse();
        }
        ready
    }

    /// Cleans up after committed batches: files of log entries below `to`.
    fn clean_below(&mut self, to: u64) -> Result<(), SourceError> {
        if to <= self.cleaned_below {
            return Ok(());
        }
        let entries = self.log.entries(0, to).map_err(|e| match e {
            log::FileLogError::Store(e) => SourceError::Store(e),
            other => config_error(other.to_string()),
        })?;
        let mut gone: Vec<PathBuf> = Vec::new();
        for (_, entry) in &entries {
            let result = match &self.spec.clean_source {
                CleanSource::Off => continue,
                CleanSource::Delete => match std::fs::remove_file(&entry.path) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
                    // Synced, so the file cannot come back after a power loss.
                    _ => entry.path.parent().map_or(Ok(()), crate::durable::sync_dir),
                },
                CleanSource::Archive(dir) => {
                    archive(&entry.path, self.discovery.matcher().dir(), dir)
                }
            };
            match result {
                Ok(()) => gone.push(entry.path.clone()),
                Err(err) => tracing::warn!(
                    "file source: clean_source could not {} {}: {err}; it stays where it is and is not read again",
                    if matches!(self.spec.clean_source, CleanSource::Delete) {
                        "delete"
                    } else {
                        "archive"
                    },
                    entry.path.display()
                ),
            }
        }
        let gone_refs: Vec<&Path> = gone.iter().map(PathBuf::as_path).collect();
        self.log.remove_below(to, &gone_refs)?;
        for path in &gone {
            self.taken.remove(path);
        }
        self.cleaned_below = to;
        Ok(())
    }
}

/// Reads one logged file into batches (only the bytes logged for it).
fn read_entry(
    spec: &FileSourceSpec,
    schema: &SchemaRef,
    entry: &FileEntry,
    bad: &mut BadRecords,
    out: &mut Vec<RecordBatch>,
) -> Result<(), SourceError> {
    let io = |e| SourceError::Io {
        what: format!(
            "cannot read {} (taken for this batch)",
            entry.path.display()
        ),
        source: e,
    };
    let file = std::fs::File::open(&entry.path).map_err(io)?;
    if spec.format == InputFormat::Parquet {
        return readers::read_parquet(schema, &entry.path, file, bad, out);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
    file.take(entry.size).read_to_end(&mut bytes).map_err(io)?;
    if (bytes.len() as u64) < entry.size {
        return Err(SourceError::Io {
            what: format!(
                "cannot read {} (taken for this batch)",
                entry.path.display()
            ),
            source: std::io::Error::other(format!(
                "it shrank from {} to {} bytes after it was taken",
                entry.size,
                bytes.len()
            )),
        });
    }
    let codec = compression::codec(spec.compression, &entry.path);
    let bytes = match compression::decompress(codec, bytes, spec.max_decompressed_size) {
        Ok(plain) => plain,
        // Like an unreadable Parquet file: one malformed record, the whole file.
        Err(reason) => {
            return bad.record(
                RecordLocation {
                    file: Some(&entry.path),
                    ..RecordLocation::default()
                },
                &format!("corrupt {codec} file: {reason}"),
                b"",
            );
        }
    };
    readers::read_bytes(spec, schema, &entry.path, &bytes, bad, out)
}

/// What reading one file gave: its batches and its malformed records.
type FileResult = Result<(Vec<RecordBatch>, BadRecords), SourceError>;

/// Reads the files of a batch on up to `spread.width` threads; results come back in file
/// order, so batches and dead letters are the same however the work was spread.
fn read_entries(
    spread: &crate::cores::Spread,
    spec: &FileSourceSpec,
    schema: &SchemaRef,
    entries: &[FileEntry],
    bad: &BadRecords,
) -> Vec<FileResult> {
    let one = |entry: &FileEntry| -> FileResult {
        let mut mine = bad.fork();
        let mut out = Vec::new();
        read_entry(spec, schema, entry, &mut mine, &mut out)?;
        Ok((out, mine))
    };
    match spread.map(entries.iter().collect(), one, |_| false) {
        Ok(results) => results,
        Err(panicked) => vec![Err(SourceError::Internal(panicked.to_string()))],
    }
}

/// Moves `path` under `archive`, keeping its path relative to `base`; never overwrites.
fn archive(path: &Path, base: &Path, archive: &Path) -> std::io::Result<()> {
    let relative = path
        .strip_prefix(base)
        .ok()
        .map(Path::to_path_buf)
        .or_else(|| path.file_name().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("file"));
    let mut target = archive.join(&relative);
    if let Some(parent) = target.parent() {
        crate::durable::create_dir_all(parent)?;
    }
    let mut n = 1;
    while target.exists() {
        target = archive.join(format!("{}.{n}", relative.display()));
        n += 1;
    }
    // Synced on both sides: after a power loss the file must not be back in the input folder
    // (it would be read a second time).
    match crate::durable::rename(path, &target) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::CrossesDevices => {
            std::fs::copy(path, &target)?;
            std::fs::File::open(&target)?.sync_all()?;
            if let Some(dir) = target.parent() {
                crate::durable::sync_dir(dir)?;
            }
            std::fs::remove_file(path)?;
            match path.parent() {
                Some(dir) => crate::durable::sync_dir(dir),
                None => Ok(()),
            }
        }
        Err(err) => Err(err),
    }
}

fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Source for FileSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn initial_offset(&mut self) -> Result<SourceOffset, SourceError> {
        Ok(offset(self.next))
    }

    fn latest_offset(
        &mut self,
        start: &SourceOffset,
        limit: ReadLimit,
    ) -> Result<SourceOffset, SourceError> {
        let start = parse_offset(start)?;
        self.clean_below(start)?;
        if self.next > start {
            // Logged before a stop but never planned: those files, as chosen then.
            return Ok(offset(self.next));
        }
        let ready = self.candidates();
        let mut chosen = Vec::new();
        let mut rest = Vec::new();
        let mut bytes = 0u64;
        for file in ready {
            let within = match limit {
                ReadLimit::AllAvailable => true,
                ReadLimit::SourceLimits => {
                    let files_ok = self
                        .spec
                        .max_files_per_trigger
                        .is_none_or(|max| (chosen.len() as u64) < max);
                    let bytes_ok = self
                        .spec
                        .max_bytes_per_trigger
                        .is_none_or(|max| chosen.is_empty() || bytes + file.size <= max);
                    files_ok && bytes_ok && rest.is_empty()
                }
            };
            if within {
                bytes += file.size;
                chosen.push(file);
            } else {
                rest.push(file);
            }
        }
        match &mut self.frozen {
            Some(frozen) => frozen.extend(rest),
            None => self.discovery.put_back(rest),
        }
        if chosen.is_empty() {
            return Ok(offset(start));
        }
        let entries: Vec<FileEntry> = chosen
            .into_iter()
            .map(|f| FileEntry {
                path: f.path,
                size: f.size,
                mtime_ms: f.mtime_ms,
            })
            .collect();
        self.log.append(start, &entries)?;
        for e in &entries {
            self.taken.insert(e.path.clone(), e.mtime_ms);
            self.newest_mtime_ms = self.newest_mtime_ms.max(e.mtime_ms);
        }
        self.next = start + entries.len() as u64;
        Ok(offset(self.next))
    }

    fn read(
        &mut self,
        start: &SourceOffset,
        end: &SourceOffset,
    ) -> Result<Vec<RecordBatch>, SourceError> {
        let (start, end) = (parse_offset(start)?, parse_offset(end)?);
        let entries = self.log.entries(start, end).map_err(|e| match e {
            log::FileLogError::Store(e) => SourceError::Store(e),
            other => config_error(other.to_string()),
        })?;
        if entries.len() as u64 != end.saturating_sub(start) {
            return Err(config_error(format!(
                "the file log lacks entries {start}..{end} of this batch (the state directory was damaged or edited)"
            )));
        }
        self.bad.begin();
        let files: Vec<FileEntry> = entries.into_iter().map(|(_, e)| e).collect();
        let mut out = Vec::new();
        let results = read_entries(&self.spread, &self.spec, &self.decoded, &files, &self.bad);
        for (result, file) in results.into_iter().zip(&files) {
            let (batches, bad) = result?;
            if self.spec.include_file_name {
                out.extend(add_file_column(&self.schema, &file.path, batches)?);
            } else {
                out.extend(batches);
            }
            self.bad.absorb(bad);
        }
        self.malformed = self.bad.finish(&format!("files-{start:020}-{end:020}"))?;
        Ok(out)
    }

    fn spread_over(&mut self, spread: crate::cores::Spread) {
        self.spread = spread;
    }

    fn wakeup(&self, _at: &SourceOffset) -> Wakeup {
        match self.discovery.next_check() {
            Some(wait) => Wakeup::Poll(wait.max(Duration::from_millis(20))),
            None => Wakeup::Notified(self.discovery.notify()),
        }
    }

    fn prepare_available_now(&mut self) {
        let files = self.discovery.poll(&self.taken, true);
        self.frozen = Some(files.into());
    }

    fn committed(&mut self, end: &SourceOffset) -> Result<(), SourceError> {
        let end = parse_offset(end)?;
        self.clean_below(end)
    }

    fn malformed(&self) -> MalformedCounts {
        self.malformed
    }

    fn backlog(&self) -> Option<super::Backlog> {
        // Files found and not yet logged: what `latest_offset` put back for later batches.
        let amount = match &self.frozen {
            Some(frozen) => frozen.len(),
            None => self.discovery.pending(),
        };
        Some(super::Backlog {
            amount: amount as u64,
            unit: "files".into(),
            parts: Vec::new(),
        })
    }

    fn known_end(&self) -> Option<super::KnownEnd> {
        // `next` is the end `latest_offset` returned; the frozen files are the rest of the run.
        let frozen = self.frozen.as_ref()?;
        Some(super::KnownEnd {
            done: self.next,
            total: self.next + frozen.len() as u64,
            unit: "files".into(),
        })
    }

    fn status(&self) -> Option<String> {
        if let Some(err) = self.discovery.listing_error() {
            return Some(format!(
                "{err}: no new files are found until it can be listed"
            ));
        }
        match self.discovery.pending() {
            0 => None,
            n => Some(format!(
                "{n} new file(s) not yet complete (waiting for stable_for)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnError;
    use crate::state::{RocksStore, SharedStore};
    use std::time::SystemTime;

    pub(super) fn spec(path: &Path, is_glob: bool) -> FileSourceSpec {
        FileSourceSpec {
            path: path.to_path_buf(),
            is_glob,
            format: InputFormat::Text,
            columns: Vec::new(),
            header: false,
            delimiter: b',',
            quote: b'"',
            max_files_per_trigger: None,
            max_bytes_per_trigger: None,
            latest_first: false,
            max_file_age: Duration::from_secs(7 * 24 * 3600),
            clean_source: CleanSource::Off,
            stable_for: Duration::ZERO,
            list_interval: Duration::from_secs(3600),
            watch: true,
            on_error: OnError::Fail,
            include_file_name: false,
            compression: crate::config::Compression::Auto,
            max_decompressed_size: 1 << 30,
        }
    }

    /// A file of `size` bytes last modified `age` ago.
    fn file(dir: &Path, name: &str, size: usize, age: Duration) -> std::io::Result<()> {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, "x".repeat(size.saturating_sub(1)) + "\n")?;
        std::fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(SystemTime::now() - age)
    }

    struct Fixture {
        dir: tempfile::TempDir,
        store: SharedStore,
    }

    impl Fixture {
        fn new() -> Result<Fixture, Box<dyn std::error::Error>> {
            let dir = tempfile::tempdir()?;
            std::fs::create_dir(dir.path().join("in"))?;
            let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("db"))?);
            Ok(Fixture { dir, store })
        }
        fn input(&self) -> PathBuf {
            self.dir.path().join("in")
        }
        fn open(&self, spec: FileSourceSpec) -> Result<FileSource, SourceError> {
            FileSource::open(
                spec,
                &SourceContext {
                    pipeline: "p".into(),
                    checkpoint_id: "c0ffee00".into(),
                    store: self.store.clone(),
                    state_dir: self.dir.path().to_path_buf(),
                },
            )
        }
    }

    /// The names of the files each successive batch takes.
    fn batches(source: &mut FileSource) -> Result<Vec<Vec<String>>, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        let mut start = source.initial_offset()?;
        loop {
            let end = source.latest_offset(&start, ReadLimit::SourceLimits)?;
            if end == start {
                return Ok(out);
            }
            let names = source
                .log
                .entries(parse_offset(&start)?, parse_offset(&end)?)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(_, e)| {
                    e.path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect();
            out.push(names);
            source.committed(&end)?;
            start = end;
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn oldest_first_or_latest_first_within_the_per_trigger_limits()
    -> Result<(), Box<dyn std::error::Error>> {
        let fx = Fixture::new()?;
        for (name, size, age) in [("a", 100, 4), ("b", 100, 3), ("c", 500, 2), ("d", 100, 1)] {
            file(&fx.input(), name, size, MIN * age)?;
        }
        let mut by_bytes = spec(&fx.input(), false);
        by_bytes.max_bytes_per_trigger = Some(250);
        assert_eq!(
            batches(&mut fx.open(by_bytes)?)?,
            [vec!["a", "b"], vec!["c"], vec!["d"]],
            "oldest first; a file larger than the limit makes a batch alone"
        );

        let fx = Fixture::new()?;
        for (name, size, age) in [("a", 1, 4), ("b", 1, 3), ("c", 1, 2), ("d", 1, 1)] {
            file(&fx.input(), name, size, MIN * age)?;
        }
        let mut newest = spec(&fx.input(), false);
        newest.latest_first = true;
        newest.max_files_per_trigger = Some(3);
        assert_eq!(
            batches(&mut fx.open(newest)?)?,
            [vec!["d", "c", "b"], vec!["a"]]
        );
        Ok(())
    }

    #[test]
    fn a_folder_that_cannot_be_listed_says_so_in_the_status_and_recovers()
    -> Result<(), Box<dyn std::error::Error>> {
        let fx = Fixture::new()?;
        let mut listing_always = spec(&fx.input(), false);
        listing_always.list_interval = Duration::ZERO;
        let mut source = fx.open(listing_always)?;
        let start = source.initial_offset()?;
        assert_eq!(
            source.latest_offset(&start, ReadLimit::SourceLimits)?,
            start
        );
        assert_eq!(source.status(), None);
        // The folder is replaced by a file: listing fails (root may list any folder, so
        // permissions would not do).
        std::fs::remove_dir(fx.input())?;
        std::fs::write(fx.input(), "not a folder")?;
        assert_eq!(
            source.latest_offset(&start, ReadLimit::SourceLimits)?,
            start
        );
        let status = source.status().unwrap_or_default();
        assert!(
            status.starts_with(&format!("cannot list {}: ", fx.input().display()))
                && status.ends_with("no new files are found until it can be listed"),
            "{status}"
        );
        std::fs::remove_file(fx.input())?;
        std::fs::create_dir(fx.input())?;
        file(&fx.input(), "a", 10, MIN)?;
        assert_ne!(
            source.latest_offset(&start, ReadLimit::SourceLimits)?,
            start
        );
        assert_eq!(source.status(), None);
        Ok(())
    }

    /// All rows of every batch as `id|name` text, in file order.
    fn read_all(source: &mut FileSource) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        use arrow::array::{Array, AsArray};
        let start = source.initial_offset()?;
        let end = source.latest_offset(&start, ReadLimit::AllAvailable)?;
        let mut rows = Vec::new();
        for batch in source.read(&start, &end)? {
            let ids = batch
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>();
            let names = batch.column(1).as_string::<i32>();
            for i in 0..batch.num_rows() {
                let name = if names.is_null(i) {
                    "null"
                } else {
                    names.value(i)
                };
                rows.push(format!("{}|{name}", ids.value(i)));
            }
        }
        source.committed(&end)?;
        Ok(rows)
    }

    #[test]
    fn gzip_and_zstd_files_are_read_as_their_contents() -> Result<(), Box<dyn std::error::Error>> {
        use std::io::Write;
        let fx = Fixture::new()?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all("id,name\n1,ünï\n2,\n".as_bytes())?;
        std::fs::write(fx.input().join("a.csv.gz"), gz.finish()?)?;
        let older = SystemTime::now() - MIN;
        std::fs::File::options()
            .write(true)
            .open(fx.input().join("a.csv.gz"))?
            .set_modified(older)?;
        let zst = zstd::encode_all("id,name\n3,z\n".as_bytes(), 3)?;
        std::fs::write(fx.input().join("b.csv.zst"), zst)?;
        std::fs::write(fx.input().join("c.csv"), "id,name\n4,plain\n")?;
        let mut csv = spec(&fx.input(), false);
        csv.format = InputFormat::Csv;
        csv.header = true;
        // No declared columns: inferred from the oldest file, the gzip one, through gzip.
        let mut source = fx.open(csv)?;
        let types: Vec<String> = source
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect();
        assert_eq!(types, ["id:Int64", "name:Utf8"]);
        let mut rows = read_all(&mut source)?;
        rows.sort();
        assert_eq!(rows, ["1|ünï", "2|null", "3|z", "4|plain"]);
        Ok(())
    }

    #[test]
    fn a_corrupt_compressed_file_follows_on_error_as_one_record()
    -> Result<(), Box<dyn std::error::Error>> {
        for policy in [OnError::Fail, OnError::Skip, OnError::DeadLetter] {
            let fx = Fixture::new()?;
            std::fs::write(fx.input().join("good.csv"), "id,name\n1,a\n")?;
            std::fs::write(
                fx.input().join("bad.csv.gz"),
                b"\x1f\x8b\x08 not really gzip",
            )?;
            let mut csv = spec(&fx.input(), false);
            csv.format = InputFormat::Csv;
            csv.columns = vec![
                crate::config::FileColumn {
                    name: "id".into(),
                    data_type: ColumnType::Long,
                },
                crate::config::FileColumn {
                    name: "name".into(),
                    data_type: ColumnType::String,
                },
            ];
            csv.header = true;
            csv.on_error = policy;
            let mut source = fx.open(csv)?;
            match (policy, read_all(&mut source)) {
                (OnError::Fail, Err(err)) => {
                    let text = err.to_string();
                    assert!(
                        text.contains("bad.csv.gz") && text.contains("corrupt gzip file"),
                        "{text}"
                    );
                }
                (OnError::Fail, Ok(rows)) => panic!("fail mode read {rows:?}"),
                (_, rows) => {
                    assert_eq!(rows?, ["1|a"]);
                    let counts = source.malformed();
                    assert_eq!(counts.total(), 1, "{policy:?}");
                }
            }
            if policy == OnError::DeadLetter {
                let dir = crate::sources::dead_letter_dir(fx.dir.path(), "p");
                let letters: String = std::fs::read_dir(&dir)?
                    .map(|e| std::fs::read_to_string(e?.path()))
                    .collect::<Result<_, _>>()?;
                assert!(
                    letters.contains("bad.csv.gz") && letters.contains("corrupt gzip file"),
                    "{letters}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn include_file_name_adds_each_rows_path() -> Result<(), Box<dyn std::error::Error>> {
        let fx = Fixture::new()?;
        std::fs::write(fx.input().join("a.txt"), "one\ntwo\n")?;
        std::fs::write(fx.input().join("b.txt"), "three\n")?;
        let mut named = spec(&fx.input(), false);
        named.include_file_name = true;
        let mut source = fx.open(named)?;
        let schema = source.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["value", "file"]);
        let start = source.initial_offset()?;
        let end = source.latest_offset(&start, ReadLimit::AllAvailable)?;
        let mut rows = Vec::new();
        for batch in source.read(&start, &end)? {
            use arrow::array::AsArray;
            let values = batch.column(0).as_string::<i32>();
            let files = batch.column(1).as_string::<i32>();
            for i in 0..batch.num_rows() {
                let file = Path::new(files.value(i))
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                rows.push((values.value(i).to_string(), file.unwrap_or_default()));
            }
        }
        rows.sort();
        let expected: Vec<(String, String)> =
            [("one", "a.txt"), ("three", "b.txt"), ("two", "a.txt")]
                .iter()
                .map(|(v, f)| (v.to_string(), f.to_string()))
                .collect();
        assert_eq!(rows, expected);
        Ok(())
    }

    #[test]
    fn files_much_older_than_the_newest_are_ignored() -> Result<(), Box<dyn std::error::Error>> {
        let fx = Fixture::new()?;
        file(&fx.input(), "new", 1, MIN)?;
        file(&fx.input(), "fairly-new", 1, MIN * 30)?;
        file(&fx.input(), "ancient", 1, MIN * 60 * 24)?;
        let mut aged = spec(&fx.input(), false);
        aged.max_file_age = MIN * 60;
        assert_eq!(batches(&mut fx.open(aged)?)?, [vec!["fairly-new", "new"]]);
        Ok(())
    }

    #[test]
    fn globs_match_nested_files_and_hidden_files_are_never_read()
    -> Result<(), Box<dyn std::error::Error>> {
        let fx = Fixture::new()?;
        for name in [
            "x.csv",
            "a/y.csv",
            "a/b/z.csv",
            "a/.hidden.csv",
            "a/_tmp.csv",
            "a/w.txt",
        ] {
            file(&fx.input(), name, 1, MIN)?;
        }
        let pattern = fx.input().join("**/*.csv");
        let mut names: Vec<String> = batches(&mut fx.open(spec(&pattern, true))?)?.concat();
        names.sort();
        assert_eq!(names, ["x.csv", "y.csv", "z.csv"]);
        Ok(())
    }

    #[test]
    fn a_restart_takes_no_file_twice_and_cleaning_frees_the_name()
    -> Result<(), Box<dyn std::error::Error>> {
        let fx = Fixture::new()?;
        file(&fx.input(), "a", 1, MIN)?;
        let mut deleting = spec(&fx.input(), false);
        deleting.clean_source = CleanSource::Delete;
        let mut source = fx.open(deleting.clone())?;
        let start = source.initial_offset()?;
        let end = source.latest_offset(&start, ReadLimit::SourceLimits)?;
        assert_eq!(end, offset(1));
        drop(source);
        // Restarted before the batch committed: the planned file is still there, and it is
        // not taken a second time.
        let mut source = fx.open(deleting.clone())?;
        assert_eq!(source.latest_offset(&start, ReadLimit::SourceLimits)?, end);
        assert!(
            fx.input().join("a").exists(),
            "not deleted before its batch committed"
        );
        source.committed(&end)?;
        assert!(!fx.input().join("a").exists());
        // A new file with the same name is new data.
        file(&fx.input(), "a", 1, MIN)?;
        let mut source = fx.open(deleting)?;
        assert_eq!(batches(&mut source)?, [vec!["a"]]);
        Ok(())
    }
}
