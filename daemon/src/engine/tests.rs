//! The micro-batch loop against the real RocksDB store, real sources and real file sinks:
//! replay of a planned batch, stop at a batch boundary, stage swap, retries.

use super::*;
use crate::config::{ColumnSpec, ColumnType, Generator};
use crate::config::{DatagenSpec, FileFormat, FileSinkSpec, RateMicroBatchSpec, Trigger};
use crate::sinks::{FileSink, NullSink, Sink};
use crate::sources::{DatagenSource, RateMicroBatchSource, Source};
use crate::state::{Checkpoint, OffsetsEntry, RocksStore, SharedStore};
use arrow::array::{AsArray, Int64Array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(20);

fn datagen(rows: u64, max_rows_per_batch: u64) -> DatagenSource {
    DatagenSource::new(DatagenSpec {
        rows_per_second: 1000,
        rows: Some(rows),
        seed: 1,
        max_rows_per_batch: Some(max_rows_per_batch),
        start_timestamp_ms: None,
        columns: vec![ColumnSpec {
            name: "id".into(),
            data_type: ColumnType::Long,
            generator: Generator::RowIndex,
            null_fraction: 0.0,
        }],
    })
}

fn file_sink(dir: &Path) -> Result<Box<dyn Sink>, Box<dyn std::error::Error>> {
    Ok(Box::new(FileSink::open(
        FileSinkSpec {
            path: dir.to_path_buf(),
            format: FileFormat::Csv,
            header: false,
        },
        "c0ffee00",
    )?))
}

fn ids_written(dir: &Path) -> Result<Vec<i64>, Box<dyn std::error::Error>> {
    let mut ids = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    for path in paths {
        for line in std::fs::read_to_string(path)?.lines() {
            // The last column is the id (datagen) or the value (rate_micro_batch).
            ids.push(line.rsplit(',').next().unwrap_or_default().parse()?);
        }
    }
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_but_uncommitted_batch_is_replayed_with_its_id_and_range() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("state"))?);
    let checkpoint = Checkpoint::new(store.clone(), "p");
    // A crash after planning batch 0 over rows [0, 700): the plan is all that survived.
    let mut source = datagen(1000, 300);
    let start = source.initial_offset()?;
    let mut end = start.clone();
    end["rows"] = serde_json::json!(700);
    checkpoint.plan(&OffsetsEntry {
        batch_id: 0,
        start,
        end: end.clone(),
        batch_timestamp_ms: 5,
        watermark_ms: None,
    })?;

    let out = dir.path().join("out");
    let pipeline = Pipeline::new(
        "p",
        Trigger::AvailableNow,
        Box::new(source),
        Vec::new(),
        vec![("file", file_sink(&out)?)],
        checkpoint.clone(),
    );
    let monitor = pipeline.monitor();
    let exit = pipeline.spawn().join().await;
    assert_eq!(exit, PipelineExit::Finished);
    let batches = monitor.recent();
    assert_eq!(batches[0].batch_id, 0);
    assert_eq!(
        batches[0].end_offset, end,
        "the replay keeps the planned range, not the 300-row limit"
    );
    assert_eq!(batches[0].num_input_rows, 700);
    assert_eq!(
        batches.iter().map(|b| b.num_input_rows).collect::<Vec<_>>(),
        vec![700, 300]
    );
    assert_eq!(ids_written(&out)?, (0..1000).collect::<Vec<_>>());
    assert_eq!(checkpoint.last_committed()?.map(|c| c.batch_id), Some(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lands_on_a_batch_boundary_and_a_restart_continues_from_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("state"))?);
    let source = || {
        RateMicroBatchSource::new(RateMicroBatchSpec {
            rows_per_batch: 10,
            start_timestamp_ms: 0,
            advance_millis_per_batch: 1000,
        })
    };
    let out = dir.path().join("out");
    let pipeline = Pipeline::new(
        "p",
        Trigger::BackToBack,
        Box::new(source()),
        Vec::new(),
        vec![("file", file_sink(&out)?)],
        Checkpoint::new(store.clone(), "p"),
    );
    let monitor = pipeline.monitor();
    let handle = pipeline.spawn();
    assert!(
        monitor.wait_for_batches(6, WAIT).await,
        "{:?} {:?}",
        monitor.status(),
        monitor.recent()
    );
    handle.stop();
    assert_eq!(handle.join().await, PipelineExit::Stopped);
    let checkpoint = Checkpoint::new(store.clone(), "p");
    let committed = checkpoint.last_committed()?.ok_or("nothing committed")?;
    let planned = checkpoint.last_planned()?.ok_or("nothing planned")?;
    assert_eq!(
        committed.batch_id, planned.batch_id,
        "stopped between batches"
    );

    let restarted = Pipeline::new(
        "p",
        Trigger::Once,
        Box::new(source()),
        Vec::new(),
        vec![("file", file_sink(&out)?)],
        checkpoint,
    );
    let monitor = restarted.monitor();
    assert_eq!(restarted.spawn().join().await, PipelineExit::Finished);
    assert_eq!(
        monitor.last().map(|b| b.batch_id),
        Some(committed.batch_id + 1)
    );
    let ids = ids_written(&out)?;
    assert_eq!(ids, (0..ids.len() as i64).collect::<Vec<_>>());
    Ok(())
}

/// Keeps rows whose `value` is divisible by `modulus`.
struct KeepMultiples {
    schema: SchemaRef,
    modulus: i64,
}

impl Operator for KeepMultiples {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(
        &mut self,
        chunk: RecordBatch,
        _: &BatchContext,
    ) -> Result<Vec<RecordBatch>, OperatorError> {
        let values = chunk.column(1).as_primitive::<Int64Type>();
        let keep = arrow::compute::kernels::cmp::eq(
            &arrow::compute::kernels::numeric::rem(values, &Int64Array::new_scalar(self.modulus))
                .map_err(internal)?,
            &Int64Array::new_scalar(0),
        )
        .map_err(internal)?;
        Ok(vec![filter_record_batch(&chunk, &keep).map_err(internal)?])
    }
}

fn internal(err: arrow::error::ArrowError) -> OperatorError {
    OperatorError {
        stage: "test".into(),
        message: err.to_string(),
        class: ErrorClass::Internal,
        retryable: false,
    }
}

/// Six rows a batch (values `6 * batch ..`) through a stage keeping the multiples of 2, into
/// JSON files in `out`; the stage is `stage #1`. Returns the pipeline and the rows' schema.
fn multiples_of_two(
    store: SharedStore,
    out: &Path,
) -> Result<(Pipeline, SchemaRef), Box<dyn std::error::Error>> {
    let source = rate_source(6);
    let schema = source.schema();
    let sink = Box::new(FileSink::open(
        FileSinkSpec {
            path: out.to_path_buf(),
            format: FileFormat::Json,
            header: false,
        },
        "c0ffee00",
    )?);
    let pipeline = Pipeline::new(
        "p",
        Trigger::BackToBack,
        Box::new(source),
        vec![Box::new(KeepMultiples {
            schema: schema.clone(),
            modulus: 2,
        })],
        vec![("file", sink as Box<dyn Sink>)],
        Checkpoint::new(store, "p"),
    );
    Ok((pipeline, schema))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_swapped_between_batches_applies_from_the_next_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("state"))?);
    let out = dir.path().join("out");
    let (pipeline, schema) = multiples_of_two(store, &out)?;
    let monitor = pipeline.monitor();
    let handle = pipeline.spawn();
    assert!(monitor.wait_for_batches(3, WAIT).await);
    let (done, swapped) = tokio::sync::oneshot::channel();
    assert!(handle.send(Control::Swap {
        stages: vec![(
            "stage #1".into(),
            Box::new(KeepMultiples { schema, modulus: 3 })
        )],
        done
    }));
    swapped.await??;
    let swapped_after = monitor.last().map_or(0, |b| b.batch_id);
    let seen = *monitor.subscribe().borrow();
    assert!(monitor.wait_for_batches(seen + 2, WAIT).await);
    handle.stop();
    handle.join().await;
    for batch in monitor.recent() {
        let path = out.join(format!("part-{:010}-c0ffee00.json", batch.batch_id));
        let text = std::fs::read_to_string(&path)?;
        let values: Vec<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["value"].as_i64())
                    .unwrap_or(-1)
            })
            .collect();
        let modulus = if batch.batch_id <= swapped_after {
            2
        } else {
            3
        };
        let first = batch.batch_id as i64 * 6;
        let expected: Vec<i64> = (first..first + 6).filter(|v| v % modulus == 0).collect();
        assert_eq!(values, expected, "batch {}", batch.batch_id);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_fails_only_its_pipeline_and_every_committed_row_stays_written_once()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("state"))?);
    let out = dir.path().join("out");
    let sink = file_sink(&out)?;
    let retry = RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(100),
    };
    let failing = Pipeline::new(
        "failing",
        Trigger::BackToBack,
        Box::new(datagen(100_000, 100)),
        Vec::new(),
        vec![("file", sink)],
        Checkpoint::new(store.clone(), "failing"),
    )
    .with_retry(retry);
    let healthy = Pipeline::new(
        "healthy",
        Trigger::BackToBack,
        Box::new(RateMicroBatchSource::new(RateMicroBatchSpec {
            rows_per_batch: 1,
            start_timestamp_ms: 0,
            advance_millis_per_batch: 1,
        })),
        Vec::new(),
        vec![("null", Box::new(NullSink) as Box<dyn Sink>)],
        Checkpoint::new(store.clone(), "healthy"),
    );
    let failing_monitor = failing.monitor();
    let healthy_monitor = healthy.monitor();
    let failing = failing.spawn();
    let healthy = healthy.spawn();
    // Let a few batches commit, then make the output directory unusable (as a vanished mount or
    // a full disk would): writes fail until the attempts are used up.
    assert!(failing_monitor.wait_for_batches(3, WAIT).await);
    // A rename is atomic, unlike removing a directory the sink may be writing into.
    std::fs::rename(&out, dir.path().join("out.moved"))?;
    std::fs::write(&out, b"not a directory")?;
    let exit = failing.join().await;
    let PipelineExit::Failed { message, .. } = exit else {
        panic!("expected a failure, got {exit:?}")
    };
    assert!(
        message.contains("sink #1 (file): cannot write"),
        "{message}"
    );
    assert!(matches!(
        failing_monitor.status(),
        PipelineStatus::Failed(_)
    ));
    // The other pipeline carried on.
    let seen = *healthy_monitor.subscribe().borrow();
    assert!(healthy_monitor.wait_for_batches(seen + 3, WAIT).await);
    healthy.stop();
    assert_eq!(healthy.join().await, PipelineExit::Stopped);
    // What was committed stays committed: a restart replays only the failed batch.
    let checkpoint = Checkpoint::new(store, "failing");
    let committed = checkpoint.last_committed()?.ok_or("nothing committed")?;
    let planned = checkpoint.last_planned()?.ok_or("nothing planned")?;
    assert_eq!(planned.batch_id, committed.batch_id + 1);
    // Every committed row is in the moved folder, once (the failed batch starts where the
    // committed ones end). A batch caught by the move mid-write may have landed there too,
    // uncommitted; it can only extend the run of ids, never leave a gap or repeat one.
    let committed_rows = planned.start["rows"]
        .as_u64()
        .ok_or("no rows in the offset")?;
    let mut ids: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("out.moved"))? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            ids.push(line.parse()?);
        }
    }
    ids.sort_unstable();
    // At least batches 1 and 2 (batch 0 of a fresh stream is empty) of 100 rows each.
    assert!(
        ids.len() as u64 >= committed_rows && committed_rows >= 200,
        "{} ids, {committed_rows} committed rows",
        ids.len()
    );
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    Ok(())
}

fn rate_source(rows_per_batch: u64) -> RateMicroBatchSource {
    RateMicroBatchSource::new(RateMicroBatchSpec {
        rows_per_batch,
        start_timestamp_ms: 0,
        advance_millis_per_batch: 1000,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_naming_an_unknown_stage_or_changing_the_schema_is_refused_and_changes_nothing()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("state"))?);
    let out = dir.path().join("out");
    let (pipeline, schema) = multiples_of_two(store, &out)?;
    assert_eq!(pipeline.stage_ids(), ["stage #1"]);
    let monitor = pipeline.monitor();
    let handle = pipeline.spawn();
    assert!(monitor.wait_for_batches(1, WAIT).await);

    let (done, answer) = tokio::sync::oneshot::channel();
    handle.send(Control::Swap {
        stages: vec![(
            "transform #7".into(),
            Box::new(KeepMultiples {
                schema: schema.clone(),
                modulus: 3,
            }),
        )],
        done,
    });
    assert_eq!(
        answer.await?,
        Err(SwapError::UnknownStage {
            id: "transform #7".into(),
            known: "stage #1".into()
        })
    );

    let narrower = Arc::new(arrow::datatypes::Schema::new(vec![schema.field(1).clone()]));
    let (done, answer) = tokio::sync::oneshot::channel();
    handle.send(Control::Swap {
        stages: vec![(
            "stage #1".into(),
            Box::new(KeepMultiples {
                schema: narrower,
                modulus: 3,
            }),
        )],
        done,
    });
    let refused = answer.await?;
    assert!(
        matches!(&refused, Err(SwapError::SchemaChanged { id, .. }) if id == "stage #1"),
        "{refused:?}"
    );
    let seen = *monitor.subscribe().borrow();
    assert!(
        monitor.wait_for_batches(seen + 2, WAIT).await,
        "still running"
    );
    handle.stop();
    assert_eq!(handle.join().await, PipelineExit::Stopped);
    // Every batch, before and after the refusals, kept the multiples of 2: 3 rows of 6.
    let mut files = 0;
    for entry in std::fs::read_dir(&out)? {
        let text = std::fs::read_to_string(entry?.path())?;
        assert_eq!(text.lines().count(), 3, "{text}");
        files += 1;
    }
    assert!(files >= 3, "{files} batches written");
    Ok(())
}

/// Blocks `process` while the gate is closed (a stuck sink or plugin, as far as the loop can
/// tell), then passes rows through.
struct Gate {
    schema: SchemaRef,
    closed: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl Operator for Gate {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(
        &mut self,
        chunk: RecordBatch,
        _: &BatchContext,
    ) -> Result<Vec<RecordBatch>, OperatorError> {
        let (lock, cvar) = &*self.closed;
        let mut closed = lock.lock().unwrap_or_else(|e| e.into_inner());
        while *closed {
            closed = cvar.wait(closed).unwrap_or_else(|e| e.into_inner());
        }
        Ok(vec![chunk])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_batch_is_abandoned_at_the_deadline_never_commits_and_replays_in_the_next_run()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("state"))?);
    let out = dir.path().join("out");
    let source = rate_source(5);
    let schema = source.schema();
    let closed = Arc::new((std::sync::Mutex::new(true), std::sync::Condvar::new()));
    let pipeline = Pipeline::new(
        "p",
        Trigger::BackToBack,
        Box::new(source),
        vec![Box::new(Gate {
            schema,
            closed: closed.clone(),
        })],
        vec![("file", file_sink(&out)?)],
        Checkpoint::new(store.clone(), "p"),
    );
    let monitor = pipeline.monitor();
    let mut handle = pipeline.spawn();
    // Batch 0 is planned and stuck in the gate.
    let checkpoint = Checkpoint::new(store.clone(), "p");
    let deadline = std::time::Instant::now() + WAIT;
    while checkpoint.last_planned()?.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "batch 0 was never planned"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let outcome = handle.stop_within(Duration::from_millis(200)).await;
    assert_eq!(outcome, StopOutcome::Abandoned);
    assert_eq!(monitor.status(), PipelineStatus::Abandoned);

    // The stuck batch finishes later, but cannot commit any more.
    {
        let (lock, cvar) = &*closed;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = false;
        cvar.notify_all();
    }
    assert_eq!(handle.join().await, PipelineExit::Stopped);
    assert_eq!(
        checkpoint.last_committed()?,
        None,
        "the abandoned batch committed"
    );

    // The next run replays batch 0 with its planned range, then goes on.
    let rerun = Pipeline::new(
        "p",
        Trigger::Once,
        Box::new(rate_source(5)),
        Vec::new(),
        vec![("file", file_sink(&out)?)],
        Checkpoint::new(store, "p"),
    );
    let monitor = rerun.monitor();
    assert_eq!(rerun.spawn().join().await, PipelineExit::Finished);
    assert_eq!(monitor.recent()[0].batch_id, 0);
    assert_eq!(ids_written(&out)?, (0..5).collect::<Vec<_>>());
    Ok(())
}

/// A source whose clean-up after a commit always fails (a log it cannot trim).
struct CleanupFails(RateMicroBatchSource);

impl crate::sources::Source for CleanupFails {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }
    fn initial_offset(
        &mut self,
    ) -> Result<crate::sources::SourceOffset, crate::sources::SourceError> {
        self.0.initial_offset()
    }
    fn latest_offset(
        &mut self,
        start: &crate::sources::SourceOffset,
        limit: crate::sources::ReadLimit,
    ) -> Result<crate::sources::SourceOffset, crate::sources::SourceError> {
        self.0.latest_offset(start, limit)
    }
    fn read(
        &mut self,
        start: &crate::sources::SourceOffset,
        end: &crate::sources::SourceOffset,
    ) -> Result<Vec<RecordBatch>, crate::sources::SourceError> {
        self.0.read(start, end)
    }
    fn committed(
        &mut self,
        _end: &crate::sources::SourceOffset,
    ) -> Result<(), crate::sources::SourceError> {
        Err(crate::sources::SourceError::Io {
            what: "cannot trim the log".into(),
            source: std::io::Error::other("disk gone"),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_commit_neither_fails_nor_repeats_the_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("state"))?);
    let out = dir.path().join("out");
    let pipeline = Pipeline::new(
        "p",
        Trigger::BackToBack,
        Box::new(CleanupFails(rate_source(3))),
        Vec::new(),
        vec![("file", file_sink(&out)?)],
        Checkpoint::new(store, "p"),
    );
    let monitor = pipeline.monitor();
    let handle = pipeline.spawn();
    assert!(
        monitor.wait_for_batches(5, WAIT).await,
        "{:?}",
        monitor.status()
    );
    handle.stop();
    assert_eq!(handle.join().await, PipelineExit::Stopped);
    let batches = monitor.recent();
    assert!(batches.iter().all(|b| b.attempts == 1), "{batches:?}");
    let ids = ids_written(&out)?;
    assert_eq!(ids, (0..ids.len() as i64).collect::<Vec<_>>());
    Ok(())
}

/// Batch timestamps of a monitor's recent batches, as ms since the epoch.
fn planned_at(monitor: &PipelineMonitor) -> Vec<i64> {
    monitor
        .recent()
        .iter()
        .filter_map(|b| chrono::DateTime::parse_from_rfc3339(&b.timestamp).ok())
        .map(|t| t.timestamp_millis())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn processing_time_batches_start_on_each_tick_of_the_interval_after_the_first() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("state"))?);
    let start = 1_700_000_000_250;
    let pipeline = Pipeline::new(
        "p",
        Trigger::ProcessingTime(Duration::from_secs(1)),
        Box::new(rate_source(5)),
        Vec::new(),
        vec![("null", Box::new(NullSink) as Box<dyn Sink>)],
        Checkpoint::new(store, "p"),
    )
    .with_clock(Arc::new(TokioClock::starting_at(start)));
    let monitor = pipeline.monitor();
    let handle = pipeline.spawn();
    // Tokio's clock is paused: it moves only when every task waits, straight to the next timer.
    assert!(monitor.wait_for_batches(4, Duration::from_secs(60)).await);
    handle.stop();
    handle.join().await;
    let at = planned_at(&monitor);
    assert_eq!(
        &at[..4],
        [
            start,
            1_700_000_001_000,
            1_700_000_002_000,
            1_700_000_003_000
        ],
        "the first batch at once, then one on each whole second"
    );
    Ok(())
}

/// A sink that fails its first `failures` writes, noting when each write came (tokio's clock),
/// and sets the wall clock back an hour at the first failure.
struct FlakySink {
    failures: usize,
    calls: Arc<std::sync::Mutex<Vec<tokio::time::Instant>>>,
    clock: Arc<SteppedClock>,
}

impl Sink for FlakySink {
    fn write_batch(
        &mut self,
        _batch_id: u64,
        _schema: &SchemaRef,
        _batches: &[RecordBatch],
    ) -> Result<(), crate::sinks::SinkError> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(tokio::time::Instant::now());
        if calls.len() == 1 {
            self.clock.step_back_an_hour();
        }
        if calls.len() <= self.failures {
            return Err(crate::sinks::SinkError::Io {
                path: "/flaky".into(),
                source: std::io::Error::other("not yet"),
            });
        }
        Ok(())
    }
}

/// Tokio's clock as wall time, which can be set back.
struct SteppedClock {
    inner: TokioClock,
    back: std::sync::atomic::AtomicI64,
}

impl SteppedClock {
    fn step_back_an_hour(&self) {
        self.back
            .fetch_add(3_600_000, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Clock for SteppedClock {
    fn wall_ms(&self) -> i64 {
        self.inner.wall_ms() - self.back.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[tokio::test(start_paused = true)]
async fn retries_wait_a_doubling_backoff_on_the_monotonic_clock_even_when_the_wall_clock_steps_back()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("state"))?);
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clock = Arc::new(SteppedClock {
        inner: TokioClock::starting_at(1_700_000_000_000),
        back: std::sync::atomic::AtomicI64::new(0),
    });
    let sink = FlakySink {
        failures: 3,
        calls: calls.clone(),
        clock: clock.clone(),
    };
    let pipeline = Pipeline::new(
        "p",
        Trigger::Once,
        Box::new(rate_source(5)),
        Vec::new(),
        vec![("flaky", Box::new(sink) as Box<dyn Sink>)],
        Checkpoint::new(store, "p"),
    )
    .with_retry(RetryPolicy {
        attempts: 4,
        first_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(10),
    })
    .with_clock(clock);
    let monitor = pipeline.monitor();
    assert_eq!(pipeline.spawn().join().await, PipelineExit::Finished);
    let calls = calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        [
            Duration::from_millis(500),
            Duration::from_millis(1000),
            Duration::from_millis(2000)
        ]
    );
    assert_eq!(monitor.last().map(|b| b.attempts), Some(4));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_trigger_that_ends_a_fed_pipeline_starts_when_its_feeder_has_finished_and_reads_everything_it_wrote()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(&dir.path().join("state"))?);
    let between = dir.path().join("between");
    let out = dir.path().join("out");
    // The feeder writes 1000 rows in 100 batches, a file each.
    let source = datagen(1000, 10);
    let feeder = Pipeline::new(
        "p/feed",
        Trigger::AvailableNow,
        Box::new(source),
        Vec::new(),
        vec![("file", file_sink(&between)?)],
        Checkpoint::new(store.clone(), "p/feed"),
    );
    // The fed pipeline reads the files there once: started with its feeder, it would find
    // only the first few.
    let text = format!(
        "name = \"p\"\ntrigger = \"once\"\n[source]\ntype = \"file\"\npath = \"{}\"\nformat = \"csv\"\nheader = false\n[[source.column]]\nname = \"id\"\ntype = \"long\"\n[[sink]]\ntype = \"file\"\npath = \"{}\"\nformat = \"csv\"\nheader = false\n",
        between.display(),
        out.display()
    );
    let plan =
        crate::config::parse_pipeline(Path::new("/t/p.toml"), &text).map_err(|d| d.to_string())?;
    let ctx = crate::assemble::PrepareContext {
        plugins: None,
        store: Some(&store),
        limits: Default::default(),
    };
    let prepared = crate::assemble::prepare(plan, ctx)?;
    let env = crate::assemble::Environment {
        store: store.clone(),
        state_dir: dir.path().to_path_buf(),
        label_console: false,
    };
    let fed = crate::assemble::open(&prepared, &env)?.with_feeder(feeder);
    let monitor = fed.monitor();
    let exit = tokio::time::timeout(WAIT, fed.spawn().join()).await?;
    assert_eq!(exit, PipelineExit::Finished);
    let mut ids = ids_written(&out)?;
    ids.sort_unstable();
    assert_eq!(ids, (0..1000).collect::<Vec<_>>());
    assert!(
        monitor
            .feeder()
            .is_some_and(|f| f.status() == PipelineStatus::Finished),
        "the feeder's monitor is shown, finished"
    );
    Ok(())
}
