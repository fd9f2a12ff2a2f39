//! Sources: where a pipeline's rows come from. Every source is replayable by offset: reading the
//! same `[start, end)` range again yields the same rows, which is what makes recovery exact.

mod bad_records;
mod datagen;
mod file;
mod kafka;
#[cfg(test)]
mod numeric_options_tests;
mod rate;
mod rate_micro_batch;
mod schedule;
mod socket;
mod socket_log;

pub use bad_records::{BadRecords, MalformedCounts, RecordLocation, dead_letter_dir};
pub use datagen::DatagenSource;
pub use file::FileSource;
pub use kafka::KafkaSource;
pub use rate::RateSource;
pub use rate_micro_batch::RateMicroBatchSource;
pub use schedule::ReleaseSchedule;
pub use socket::SocketSource;
pub use socket_log::SocketLog;

use crate::config::SourceSpec;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::time::{Duration, SystemTime};

/// Rows per Arrow record batch a source produces at most: large enough to amortise per-batch
/// costs (a wasm call, a RocksDB write), small enough to stay in cache.
pub const CHUNK_ROWS: usize = 64 * 1024;

/// One chunk of a batch: made already, or made by whichever lane takes it.
pub enum Chunk {
    /// Read or decoded by the source.
    Ready(RecordBatch),
    /// A chunk that depends on its rows alone (a generator's): the lane that makes it carries
    /// it through the pipeline's stages while its columns are still in that core's cache,
    /// instead of the whole batch being written out to memory first and read back. Spark's
    /// `getBatch` returns a plan in the same way, and the rows are made when it runs.
    Deferred {
        /// How many rows it will hold.
        rows: usize,
        /// Makes it.
        make: Box<dyn FnOnce() -> Result<RecordBatch, SourceError> + Send>,
    },
}

impl Chunk {
    /// How many rows it holds (or will).
    pub fn rows(&self) -> usize {
        match self {
            Chunk::Ready(batch) => batch.num_rows(),
            Chunk::Deferred { rows, .. } => *rows,
        }
    }

    /// Whether a lane makes it.
    pub fn is_deferred(&self) -> bool {
        matches!(self, Chunk::Deferred { .. })
    }

    /// The chunk, made now if it was deferred.
    pub fn make(self) -> Result<RecordBatch, SourceError> {
        match self {
            Chunk::Ready(batch) => Ok(batch),
            Chunk::Deferred { make, .. } => make(),
        }
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Chunk::Ready(batch) => write!(f, "Chunk::Ready({} rows)", batch.num_rows()),
            Chunk::Deferred { rows, .. } => write!(f, "Chunk::Deferred({rows} rows)"),
        }
    }
}

/// A position in a source, stored as JSON in the offsets log. Only the source interprets it.
pub type SourceOffset = serde_json::Value;

/// A source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An offset from the checkpoint does not fit this source (the pipeline's source changed).
    #[error("offset {offset} from the checkpoint is not a valid offset of this source: {reason}")]
    BadOffset {
        /// The offset.
        offset: String,
        /// Why.
        reason: String,
    },
    /// Building the Arrow batch failed (a bug).
    #[error("internal error building a batch (a bug): {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The source's durable log in the state store failed.
    #[error(transparent)]
    Store(#[from] crate::state::StoreError),
    /// A record could not be parsed and `on_error = "fail"`.
    #[error("malformed record at {location}: {reason} ({hint})")]
    Malformed {
        /// Where: file and line, or peer and offset.
        location: String,
        /// Why it could not be parsed.
        reason: String,
        /// What the user can do.
        hint: &'static str,
    },
    /// The file system or the network refused (a missing file, a port in use).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The pipeline's configuration cannot work with what is there (no file to infer a schema
    /// from, a schema that changed under a checkpoint).
    #[error("{0}")]
    Config(String),
    /// A service the source reads from cannot be reached now (a Kafka broker): the batch is
    /// tried again with backoff.
    #[error("{0}")]
    Unavailable(String),
    /// A bug in weir (a worker thread panicked).
    #[error("internal error (a bug in weir): {0}")]
    Internal(String),
    /// Input was lost before the pipeline read it (Kafka retention, a recreated topic) and
    /// `fail_on_data_loss` is on.
    #[error("data loss: {0} (set fail_on_data_loss = false to skip what is gone and go on)")]
    DataLoss(String),
}

/// What a source may need from its surroundings when it is built.
#[derive(Clone)]
pub struct SourceContext {
    /// The pipeline's name (its keys in the store live under `state::pipeline_prefix`).
    pub pipeline: String,
    /// The checkpoint's id, which names the files a source writes (dead letters).
    pub checkpoint_id: String,
    /// The state store, for sources that keep a durable log of their input (socket, file).
    pub store: crate::state::SharedStore,
    /// The state directory, for files a source writes beside the store (dead letters).
    pub state_dir: std::path::PathBuf,
}

impl SourceContext {
    /// A context for unit tests: pipeline `p`, checkpoint `c0ffee00`, a real store under `dir`.
    #[cfg(test)]
    pub(crate) fn for_test(
        dir: &std::path::Path,
    ) -> Result<SourceContext, crate::state::StoreError> {
        Ok(SourceContext {
            pipeline: "p".into(),
            checkpoint_id: "c0ffee00".into(),
            store: std::sync::Arc::new(crate::state::RocksStore::open(&dir.join("db"))?),
            state_dir: dir.to_path_buf(),
        })
    }
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("pipeline", &self.pipeline)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// How much the next batch may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// The source's own per-batch limits apply (`max_rows_per_batch` and the like).
    SourceLimits,
    /// Everything available (Spark's `once` trigger ignores per-batch limits).
    AllAvailable,
}

/// When it is worth asking a source for new data again.
#[derive(Debug, Clone)]
pub enum Wakeup {
    /// At this wall-clock time (a schedule-driven source's next release).
    At(SystemTime),
    /// After this long (sources that can only be polled).
    Poll(Duration),
    /// When this is notified (push-driven sources).
    Notified(std::sync::Arc<tokio::sync::Notify>),
    /// Never: the source is exhausted.
    Never,
}

/// The background tasks of a source (network I/O). Closing aborts them and waits until they
/// have ended, so what they held (a listening port) is free when [`SourceTasks::close`]
/// returns. Clones share the tasks; closing twice is harmless.
#[derive(Debug, Clone, Default)]
pub struct SourceTasks(std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>);

impl SourceTasks {
    /// Adds a task.
    pub fn push(&self, task: tokio::task::JoinHandle<()>) {
        if let Ok(mut tasks) = self.0.lock() {
            tasks.push(task);
        }
    }

    /// Aborts every task and waits for each to end.
    pub async fn close(&self) {
        let tasks = match self.0.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(_) => return,
        };
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Aborts every task without waiting (what dropping a source does).
    pub fn abort(&self) {
        if let Ok(tasks) = self.0.lock() {
            for task in tasks.iter() {
                task.abort();
            }
        }
    }
}

/// Input a source has found but not yet put in a batch: how much, in what unit (`records` of
/// Kafka, `files`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backlog {
    /// How much.
    pub amount: u64,
    /// Of what.
    pub unit: String,
    /// The same per partition of the input, for sources that have partitions (Kafka's
    /// `topic/partition`: each partition's lag behind its end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartBacklog>,
}

/// One partition's share of a [`Backlog`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartBacklog {
    /// The partition (`topic/partition`).
    pub part: String,
    /// How much of the backlog is in it.
    pub amount: u64,
}

/// How far a run with a known end has come: `done` of `total` (files of an `available_now` run
/// over files, rows of a generator with `rows`). Both count from the checkpoint's beginning, so
/// a run resumed after a stop starts part way.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KnownEnd {
    /// Through the batch just planned.
    pub done: u64,
    /// Where the run ends.
    pub total: u64,
    /// Of what: `files` or `rows`.
    pub unit: String,
}

/// A replayable source of record batches.
pub trait Source: Send {
    /// The schema of every batch.
    fn schema(&self) -> SchemaRef;

    /// The offset of a stream that has not started yet.
    fn initial_offset(&mut self) -> Result<SourceOffset, SourceError>;

    /// The newest offset available after `start`, within `limit`. Equal to `start` when there is
    /// nothing new.
    fn latest_offset(
        &mut self,
        start: &SourceOffset,
        limit: ReadLimit,
    ) -> Result<SourceOffset, SourceError>;

    /// The rows of `[start, end)`; the same range always gives the same rows.
    fn read(
        &mut self,
        start: &SourceOffset,
        end: &SourceOffset,
    ) -> Result<Vec<RecordBatch>, SourceError>;

    /// The rows of `[start, end)` as chunks the pipeline's lanes may make (the same rows as
    /// `read`). Only a source with nothing to report about a chunk (no malformed records, no
    /// state that reading changes) defers any; by default every chunk is `read`'s.
    fn read_chunks(
        &mut self,
        start: &SourceOffset,
        end: &SourceOffset,
    ) -> Result<Vec<Chunk>, SourceError> {
        Ok(self
            .read(start, end)?
            .into_iter()
            .map(Chunk::Ready)
            .collect())
    }

    /// How many chunks of a batch it may make at once (sources that generate or decode them
    /// independently); by default it makes them one after the other.
    fn spread_over(&mut self, _spread: crate::cores::Spread) {}

    /// What a Kafka source sharing its partitions through a consumer group hands to the
    /// pipeline's exactly-once Kafka sinks (its offsets and group generation per batch).
    fn group_link(&self) -> Option<std::sync::Arc<crate::kafka::GroupLink>> {
        None
    }

    /// When new data may be there after `at`.
    fn wakeup(&self, _at: &SourceOffset) -> Wakeup {
        Wakeup::Poll(Duration::from_millis(10))
    }

    /// For `available_now`: freeze what "available" means to what exists now.
    fn prepare_available_now(&mut self) {}

    /// Called after the batch ending at `end` committed; sources that keep logs trim them here.
    fn committed(&mut self, _end: &SourceOffset) -> Result<(), SourceError> {
        Ok(())
    }

    /// Malformed records the last `read` skipped or dead-lettered, for the batch's progress.
    fn malformed(&self) -> MalformedCounts {
        MalformedCounts::default()
    }

    /// What the last `latest_offset` found beyond the end it returned (the batch limits held it
    /// back), for the pipeline's progress; `None` where the source does not know.
    fn backlog(&self) -> Option<Backlog> {
        None
    }

    /// Where this run ends and how far the last `latest_offset` went, when the run has a known
    /// end; `None` for sources that run on (and until a file run is `available_now`).
    fn known_end(&self) -> Option<KnownEnd> {
        None
    }

    /// What the source itself is doing, for the pipeline's status ("waiting for peer ...").
    fn status(&self) -> Option<String> {
        None
    }

    /// The source's background tasks, if it runs any: the pipeline closes them when it ends
    /// (and whoever abandons a stuck pipeline closes them too).
    fn tasks(&self) -> Option<SourceTasks> {
        None
    }
}

/// Builds the runtime source for a validated spec.
pub fn build(spec: &SourceSpec, ctx: &SourceContext) -> Result<Box<dyn Source>, SourceError> {
    Ok(match spec {
        SourceSpec::Rate(spec) => Box::new(RateSource::new(spec.clone())),
        SourceSpec::RateMicroBatch(spec) => Box::new(RateMicroBatchSource::new(spec.clone())),
        SourceSpec::Datagen(spec) => Box::new(DatagenSource::new(spec.clone())),
        SourceSpec::Socket(spec) => Box::new(SocketSource::open(spec.clone(), ctx)?),
        SourceSpec::File(spec) => Box::new(FileSource::open(spec.clone(), ctx)?),
        SourceSpec::Kafka(spec) => Box::new(KafkaSource::open(spec.clone(), ctx)?),
    })
}

/// The schema a spec's source produces, known without opening the source. A file source whose
/// schema is inferred uses the schema its checkpoint kept when `checkpoint` (the store and the
/// pipeline's name) is given and has one — what the running source will use — and otherwise
/// infers from the first file there is now.
pub fn schema_of(
    spec: &SourceSpec,
    checkpoint: Option<(&crate::state::SharedStore, &str)>,
) -> SchemaRef {
    match spec {
        SourceSpec::Rate(spec) => RateSource::new(spec.clone()).schema(),
        SourceSpec::RateMicroBatch(spec) => RateMicroBatchSource::new(spec.clone()).schema(),
        SourceSpec::Datagen(spec) => DatagenSource::new(spec.clone()).schema(),
        SourceSpec::Socket(spec) => socket::schema(spec),
        SourceSpec::File(spec) => file::schema_for_check(spec, checkpoint),
        SourceSpec::Kafka(spec) => kafka::schema(spec),
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn system_time_from_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Refuses a range of row indices past what a `long` column numbers (2^63 - 1): a stream
/// that long does not happen (292 years at a billion rows a second), so such an offset is
/// damaged or not this source's.
pub(crate) fn check_row_range(end_rows: u64, end: &SourceOffset) -> Result<(), SourceError> {
    if end_rows > i64::MAX as u64 {
        return Err(SourceError::BadOffset {
            offset: end.to_string(),
            reason: "row index beyond 2^63 - 1, the largest a long column holds".into(),
        });
    }
    Ok(())
}

/// `{"rows": n, "start_ms": t}`: the offset of the schedule-driven sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduledOffset {
    pub rows: u64,
    pub start_ms: i64,
}

impl ScheduledOffset {
    pub fn parse(value: &SourceOffset) -> Result<ScheduledOffset, SourceError> {
        serde_json::from_value(value.clone()).map_err(|err| SourceError::BadOffset {
            offset: value.to_string(),
            reason: err.to_string(),
        })
    }

    pub fn to_json(self) -> SourceOffset {
        serde_json::json!({ "rows": self.rows, "start_ms": self.start_ms })
    }
}
