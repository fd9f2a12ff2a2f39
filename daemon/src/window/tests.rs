//! The aggregation operator through its `Operator` interface, on the real RocksDB store: each
//! output mode, windows of every kind, late rows, eviction, restart, and failed batches.

use super::*;
use crate::config::{SourceSpec, parse_pipeline};
use crate::engine::{BatchContext, Operator};
use crate::sinks::CellFormatter;
use crate::state::{RocksStore, SharedStore, WriteSet};
use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use std::path::Path;
use std::sync::Arc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const S: i64 = 1_000_000;

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("sensor", DataType::Utf8, true),
        Field::new("value", DataType::Int64, true),
    ]))
}

/// Rows of (seconds, sensor, value).
pub(super) fn chunk(rows: &[(i64, &str, i64)]) -> RecordBatch {
    let times = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.0 * S))
        .with_timezone("UTC");
    let sensors = StringArray::from_iter_values(rows.iter().map(|r| r.1));
    let values = Int64Array::from_iter_values(rows.iter().map(|r| r.2));
    match RecordBatch::try_new(
        input_schema(),
        vec![Arc::new(times), Arc::new(sensors), Arc::new(values)],
    ) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

pub(super) struct Harness {
    pub(super) op: AggregateOperator,
    /// Overrides the plan's spill threshold (0: spill every group after every commit).
    spill_above: Option<u64>,
    store: SharedStore,
    pub(super) batch_id: u64,
    pub(super) watermark_ms: Option<i64>,
    /// Groups every chunk of a batch through the operator's `chunk_preparer` before processing
    /// any, as the lanes do, and hands them to `process_prepared` (without its columns when
    /// the preparation holds all the stage reads, as the lanes hand them).
    pub(super) prepare_apart: bool,
    _dir: tempfile::TempDir,
}

fn plan_for(aggregate: &str, mode: &str) -> Result<AggregatePlan, Box<dyn std::error::Error>> {
    let text = format!(
        "name = \"t\"\noutput_mode = \"{mode}\"\n[source]\ntype = \"rate\"\n[[sink]]\ntype = \"null\"\n[aggregate]\n{aggregate}\n"
    );
    let plan = parse_pipeline(Path::new("t.toml"), &text).map_err(|d| d.to_string())?;
    assert!(matches!(plan.source, SourceSpec::Rate(_)));
    let spec = plan.aggregate.ok_or("no aggregate")?;
    Ok(resolve(
        &spec,
        plan.output_mode,
        &input_schema(),
        Path::new("t.toml"),
        None,
    )
    .map_err(|d| d.to_string())?)
}

impl Harness {
    pub(super) fn new(aggregate: &str, mode: &str) -> Result<Harness, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
        let op = AggregateOperator::open("t", plan_for(aggregate, mode)?, store.clone(), None)?;
        Ok(Harness {
            op,
            spill_above: None,
            store,
            batch_id: 0,
            watermark_ms: None,
            prepare_apart: false,
            _dir: dir,
        })
    }

    /// Reopens the operator on the same store (a restart).
    pub(super) fn restart(
        &mut self,
        aggregate: &str,
        mode: &str,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let mut plan = plan_for(aggregate, mode)?;
        if let Some(bytes) = self.spill_above {
            plan.spill_above_bytes = bytes;
        }
        self.op = AggregateOperator::open("t", plan, self.store.clone(), None)?;
        Ok(())
    }

    /// A harness whose operator spills every group after every commit.
    pub(super) fn spilling(
        aggregate: &str,
        mode: &str,
    ) -> Result<Harness, Box<dyn std::error::Error>> {
        Harness::spilling_above(aggregate, mode, 0)
    }

    /// A harness whose operator spills groups beyond `bytes` after a commit.
    fn spilling_above(
        aggregate: &str,
        mode: &str,
        bytes: u64,
    ) -> Result<Harness, Box<dyn std::error::Error>> {
        let mut h = Harness::new(aggregate, mode)?;
        h.spill_above = Some(bytes);
        h.restart(aggregate, mode)?;
        Ok(h)
    }

    /// Runs one batch and commits it; returns the emitted rows as text.
    fn batch(
        &mut self,
        chunks: &[&[(i64, &str, i64)]],
    ) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        Ok(render(&self.batch_output(chunks)?))
    }

    /// The context of the next batch.
    pub(super) fn context(&self) -> BatchContext {
        BatchContext {
            batch_id: self.batch_id,
            batch_timestamp_ms: 0,
            watermark_ms: self.watermark_ms,
        }
    }

    /// Runs one batch and commits it; returns what it emitted.
    pub(super) fn batch_output(
        &mut self,
        chunks: &[&[(i64, &str, i64)]],
    ) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error>> {
        let ctx = BatchContext {
            batch_id: self.batch_id,
            batch_timestamp_ms: 0,
            watermark_ms: self.watermark_ms,
        };
        let mut out = Vec::new();
        let chunks: Vec<RecordBatch> = chunks.iter().map(|rows| chunk(rows)).collect();
        match self.op.chunk_preparer().filter(|_| self.prepare_apart) {
            Some(preparer) => {
                let prepared = chunks
                    .iter()
                    .map(|c| preparer.prepare(c))
                    .collect::<Result<Vec<_>, _>>()?;
                for (c, p) in chunks.into_iter().zip(prepared) {
                    // As the lanes hand it on: without its columns when the preparation
                    // holds all the stage reads.
                    let c = preparer.hand_on(c, &p);
                    out.extend(self.op.process_prepared(c, p, &ctx)?);
                }
            }
            None => {
                for c in chunks {
                    out.extend(self.op.process(c, &ctx)?);
                }
            }
        }
        out.extend(self.op.finish_batch(&ctx)?);
        let mut ws = WriteSet::default();
        self.op.prepare_commit(&mut ws)?;
        self.store.write(ws, false)?;
        self.op.committed();
        self.watermark_ms = self.op.next_watermark().or(self.watermark_ms);
        self.batch_id += 1;
        Ok(out)
    }

    fn stored_groups(&self) -> Result<usize, Box<dyn std::error::Error>> {
        let prefix = [crate::state::pipeline_prefix("t"), b"a".to_vec()].concat();
        let mut n = 0;
        self.store.scan(
            &prefix,
            &crate::state::prefix_end(&prefix),
            false,
            &mut |_, _| {
                n += 1;
                true
            },
        )?;
        Ok(n)
    }
}

fn render(batches: &[RecordBatch]) -> Vec<String> {
    let f = CellFormatter { utc: true };
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    let mut s = String::new();
                    f.write(&mut s, c.as_ref(), r);
                    s
                })
                .collect();
            rows.push(cells.join(" | "));
        }
    }
    rows
}

const TUMBLING: &str = "group_by = [\"sensor\"]\nwindow = { column = \"time\", size = \"10s\" }\nwatermark = \"5s\"\nfunctions = [{ fn = \"count\" }, { fn = \"sum\", column = \"value\" }, { fn = \"avg\", column = \"value\" }, { fn = \"min\", column = \"value\" }, { fn = \"max\", column = \"sensor\" }]";

#[test]
fn append_emits_each_window_once_after_the_watermark_passes_its_end() -> TestResult {
    let mut h = Harness::new(TUMBLING, "append")?;
    // Batch 0: two windows open; no watermark yet.
    assert_eq!(
        h.batch(&[&[(1, "a", 1), (2, "b", 2), (12, "a", 3)]])?,
        Vec::<String>::new()
    );
    assert_eq!(h.watermark_ms, Some(7_000), "max event time 12 s minus 5 s");
    // Batch 1 evicts with watermark 7 s: nothing ends by then. Max event time becomes 25 s.
    assert_eq!(
        h.batch(&[&[(25, "a", 4), (3, "a", 10)]])?,
        Vec::<String>::new()
    );
    assert_eq!(h.watermark_ms, Some(20_000));
    // Batch 2 runs with watermark 20 s: windows [0,10) and [10,20) are final and emitted, sorted.
    let out = h.batch(&[])?;
    assert_eq!(
        out,
        vec![
            "{1970-01-01 00:00:00, 1970-01-01 00:00:10} | a | 2 | 11 | 5.5 | 1 | a",
            "{1970-01-01 00:00:00, 1970-01-01 00:00:10} | b | 1 | 2 | 2.0 | 2 | b",
            "{1970-01-01 00:00:10, 1970-01-01 00:00:20} | a | 1 | 3 | 3.0 | 3 | a",
        ]
    );
    assert_eq!(
        h.stored_groups()?,
        1,
        "only the open window [20,30) is left in the store"
    );
    // A row for an emitted window is late: dropped and counted, never emitted again.
    assert_eq!(
        h.batch(&[&[(5, "a", 100), (28, "b", 1)]])?,
        Vec::<String>::new()
    );
    let progress = h.op.state_progress().ok_or("no progress")?;
    assert_eq!(progress.num_rows_dropped_by_watermark, 1);
    assert_eq!(progress.num_rows_total, 2);
    Ok(())
}

#[test]
fn a_row_behind_the_watermark_still_counts_while_its_window_is_open() -> TestResult {
    let mut h = Harness::new(TUMBLING, "update")?;
    h.batch(&[&[(30, "a", 1)]])?; // watermark for batch 1: 25 s
    // 21 s is behind the watermark (25 s) but its window [20,30) has not been evicted yet:
    // Spark drops only rows whose window ended by the previous batch's eviction watermark.
    let out = h.batch(&[&[(21, "a", 5)]])?;
    assert_eq!(
        out,
        vec!["{1970-01-01 00:00:20, 1970-01-01 00:00:30} | a | 1 | 5 | 5.0 | 5 | a"]
    );
    assert_eq!(
        h.op.state_progress()
            .map(|p| p.num_rows_dropped_by_watermark),
        Some(0)
    );
    // Now [20,30) was evicted with watermark 25 s? No: it ends at 30 s > 25 s. A later row for it
    // after the watermark passes 30 s is dropped.
    h.batch(&[&[(40, "a", 1)]])?; // eviction watermark 25 s; next 35 s
    h.batch(&[])?; // eviction at 35 s removes [20,30) and [30,40)
    h.batch(&[&[(22, "a", 7)]])?;
    assert_eq!(
        h.op.state_progress()
            .map(|p| p.num_rows_dropped_by_watermark),
        Some(1)
    );
    Ok(())
}

#[test]
fn update_emits_only_changed_groups_and_complete_emits_all() -> TestResult {
    let agg = "group_by = [\"sensor\"]\nfunctions = [{ fn = \"count\" }, { fn = \"last\", column = \"value\" }, { fn = \"count_distinct\", column = \"value\" }]";
    let mut update = Harness::new(agg, "update")?;
    let mut complete = Harness::new(agg, "complete")?;
    let b0: &[(i64, &str, i64)] = &[(1, "a", 1), (1, "b", 2), (1, "a", 1)];
    let b1: &[(i64, &str, i64)] = &[(1, "b", 3)];
    assert_eq!(update.batch(&[b0])?, vec!["a | 2 | 1 | 1", "b | 1 | 2 | 1"]);
    assert_eq!(update.batch(&[b1])?, vec!["b | 2 | 3 | 2"]);
    assert_eq!(
        complete.batch(&[b0])?,
        vec!["a | 2 | 1 | 1", "b | 1 | 2 | 1"]
    );
    assert_eq!(
        complete.batch(&[b1])?,
        vec!["a | 2 | 1 | 1", "b | 2 | 3 | 2"]
    );
    Ok(())
}

#[test]
fn sliding_windows_count_a_row_in_every_window_that_covers_it() -> TestResult {
    let agg = "window = { column = \"time\", size = \"10s\", slide = \"5s\" }\nfunctions = [{ fn = \"count\" }]";
    let mut h = Harness::new(agg, "update")?;
    let out = h.batch(&[&[(7, "a", 1), (12, "a", 1)]])?;
    assert_eq!(
        out,
        vec![
            "{1970-01-01 00:00:00, 1970-01-01 00:00:10} | 1",
            "{1970-01-01 00:00:05, 1970-01-01 00:00:15} | 2",
            "{1970-01-01 00:00:10, 1970-01-01 00:00:20} | 1",
        ]
    );
    Ok(())
}

#[test]
fn session_windows_grow_and_merge_per_key() -> TestResult {
    let agg = "group_by = [\"sensor\"]\nwindow = { column = \"time\", gap = \"5s\" }\nwatermark = \"1m\"\nfunctions = [{ fn = \"count\" }, { fn = \"sum\", column = \"value\" }]";
    let mut h = Harness::new(agg, "update")?;
    let out = h.batch(&[&[(10, "a", 1), (12, "a", 1), (30, "a", 1), (11, "b", 5)]])?;
    assert_eq!(
        out,
        vec![
            "{1970-01-01 00:00:10, 1970-01-01 00:00:17} | a | 2 | 2",
            "{1970-01-01 00:00:11, 1970-01-01 00:00:16} | b | 1 | 5",
            "{1970-01-01 00:00:30, 1970-01-01 00:00:35} | a | 1 | 1",
        ]
    );
    // After a restart from the store: 20 s is more than the gap after a's last event (12 s),
    // so it opens a session of its own; 16 s then falls within the gap of both and merges them.
    h.restart(agg, "update")?;
    assert_eq!(
        h.batch(&[&[(20, "a", 10)]])?,
        vec!["{1970-01-01 00:00:20, 1970-01-01 00:00:25} | a | 1 | 10"]
    );
    assert_eq!(
        h.batch(&[&[(16, "a", 100)]])?,
        vec!["{1970-01-01 00:00:10, 1970-01-01 00:00:25} | a | 4 | 112"]
    );
    assert_eq!(
        h.stored_groups()?,
        3,
        "a's merged session, a's later one and b's; the merged-away key is deleted"
    );
    Ok(())
}

#[test]
fn state_survives_a_restart_and_a_failed_batch_leaves_no_trace() -> TestResult {
    let mut h = Harness::new(TUMBLING, "update")?;
    h.batch(&[&[(1, "a", 1)]])?;
    h.restart(TUMBLING, "update")?;
    // A batch that fails after processing is aborted: its changes must vanish.
    let ctx = BatchContext {
        batch_id: 1,
        batch_timestamp_ms: 0,
        watermark_ms: h.watermark_ms,
    };
    h.op.process(chunk(&[(2, "a", 1000)]), &ctx)?;
    h.op.abort_batch();
    let out = h.batch(&[&[(3, "a", 2)]])?;
    assert_eq!(
        out,
        vec!["{1970-01-01 00:00:00, 1970-01-01 00:00:10} | a | 2 | 3 | 1.5 | 1 | a"]
    );
    Ok(())
}

#[test]
fn a_changed_aggregation_refuses_the_old_state() -> TestResult {
    let mut h = Harness::new(TUMBLING, "update")?;
    h.batch(&[&[(1, "a", 1)]])?;
    let changed = TUMBLING.replace("size = \"10s\"", "size = \"20s\"");
    let err = AggregateOperator::open("t", plan_for(&changed, "update")?, h.store.clone(), None)
        .err()
        .ok_or("a changed window must not reuse the state")?;
    let message = err.to_string();
    assert!(
        message.contains("changed since its state was written"),
        "{message}"
    );
    assert!(message.contains("weir state reset t"), "{message}");
    // Renaming an output column is not a change of state.
    let renamed = TUMBLING.replace("{ fn = \"count\" }", "{ fn = \"count\", as = \"n\" }");
    assert!(
        AggregateOperator::open("t", plan_for(&renamed, "update")?, h.store.clone(), None).is_ok()
    );
    Ok(())
}

#[test]
fn schema_errors_name_the_column_and_its_place() -> TestResult {
    let cases = [
        (
            "group_by = [\"sensr\"]\nfunctions = [{ fn = \"count\" }]",
            "t.toml:8:13: error: unknown column `sensr`",
        ),
        (
            "functions = [{ fn = \"avg\", column = \"sensor\" }]",
            "t.toml:8:14: error: `avg` needs a numeric column; `sensor` is string",
        ),
        (
            "window = { column = \"value\", size = \"10s\" }\nfunctions = [{ fn = \"count\" }]",
            "t.toml:8:21: error: window column `value` is long, expected a timestamp",
        ),
    ];
    for (agg, want) in cases {
        let err = plan_for(agg, "update")
            .err()
            .ok_or("expected an error")?
            .to_string();
        assert!(err.starts_with(want), "got:\n{err}\nwant: {want}");
    }
    Ok(())
}

/// Ten minutes of event time, one second per batch, through the real engine loop: with a
/// watermark, the number of groups in RocksDB stays flat after warm-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_stays_bounded_under_a_watermark() -> TestResult {
    use crate::config::Trigger;
    use crate::engine::{Pipeline, PipelineExit};
    use crate::sinks::NullSink;
    use crate::sources::DatagenSource;
    use crate::state::Checkpoint;

    let text = r#"name = "bounded"
output_mode = "append"
trigger = "available_now"
[source]
type = "datagen"
rows_per_second = 1000
rows = 600000
max_rows_per_batch = 1000
start_timestamp = 1700000000000
[[source.column]]
name = "time"
type = "timestamp"
expr = "now"
[[source.column]]
name = "sensor"
type = "string"
values = ["sensor_1", "sensor_2", "sensor_3"]
[[source.column]]
name = "value"
type = "long"
min = 0
max = 10
random = true
[aggregate]
group_by = ["sensor"]
window = { column = "time", size = "10s" }
watermark = "5s"
functions = [{ fn = "avg", column = "value" }]
[[sink]]
type = "null"
"#;
    let plan = parse_pipeline(Path::new("bounded.toml"), text).map_err(|d| d.to_string())?;
    let SourceSpec::Datagen(spec) = plan.source.clone() else {
        return Err("not datagen".into());
    };
    let source = DatagenSource::new(spec);
    let agg = resolve(
        plan.aggregate.as_ref().ok_or("no aggregate")?,
        plan.output_mode,
        &crate::sources::Source::schema(&source),
        Path::new("bounded.toml"),
        None,
    )
    .map_err(|d| d.to_string())?;
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
    let op = AggregateOperator::open("bounded", agg, store.clone(), None)?;
    let pipeline = Pipeline::new(
        "bounded",
        Trigger::AvailableNow,
        Box::new(source),
        vec![Box::new(op)],
        vec![("null", Box::new(NullSink))],
        Checkpoint::new(store.clone(), "bounded"),
    );
    let monitor = pipeline.monitor();
    let mut committed = monitor.subscribe();
    let handle = pipeline.spawn();

    let prefix = [crate::state::pipeline_prefix("bounded"), b"a".to_vec()].concat();
    let count = || -> Result<usize, crate::state::StoreError> {
        let mut n = 0;
        store.scan(
            &prefix,
            &crate::state::prefix_end(&prefix),
            false,
            &mut |_, _| {
                n += 1;
                true
            },
        )?;
        Ok(n)
    };
    let mut after_warm_up = Vec::new();
    while !handle.is_finished() {
        if tokio::time::timeout(std::time::Duration::from_secs(60), committed.changed())
            .await
            .is_err()
        {
            break;
        }
        let batches = *committed.borrow_and_update();
        if batches > 30 {
            after_warm_up.push(count()?);
        }
    }
    assert_eq!(handle.join().await, PipelineExit::Finished);
    let batches = monitor.last().map_or(0, |b| b.batch_id);
    assert!(batches >= 599, "ran {} batches", batches + 1);
    assert!(
        after_warm_up.len() > 100,
        "sampled {} times",
        after_warm_up.len()
    );
    // 3 sensors × at most 2 open windows (the current one and the one the watermark has not
    // passed yet).
    let most = after_warm_up.iter().copied().max().unwrap_or(usize::MAX);
    assert!(most <= 6, "up to {most} groups stored: state grows");
    assert!(count()? <= 6);
    Ok(())
}

#[test]
fn dictionary_encoded_keys_group_like_plain_strings() -> TestResult {
    use arrow::array::DictionaryArray;
    use arrow::datatypes::Int32Type;
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new(
            "sensor",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new("value", DataType::Int64, true),
    ]));
    let text = "name = \"t\"\noutput_mode = \"update\"\n[source]\ntype = \"rate\"\n[[sink]]\ntype = \"null\"\n[aggregate]\ngroup_by = [\"sensor\"]\nfunctions = [{ fn = \"sum\", column = \"value\" }]\n";
    let plan = parse_pipeline(Path::new("t.toml"), text).map_err(|d| d.to_string())?;
    let spec = plan.aggregate.ok_or("aggregate")?;
    let resolved = resolve(&spec, plan.output_mode, &schema, Path::new("t.toml"), None)
        .map_err(|d| d.to_string())?;
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
    let mut op = AggregateOperator::open("t", resolved, store, None)?;
    let ctx = BatchContext {
        batch_id: 0,
        batch_timestamp_ms: 0,
        watermark_ms: None,
    };
    for (sensors, values) in [
        (
            vec![Some("b"), Some("a"), None, Some("b")],
            vec![1, 2, 3, 4],
        ),
        (vec![Some("a"), Some("c")], vec![10, 20]),
    ] {
        let keys: DictionaryArray<Int32Type> = sensors.into_iter().collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(keys), Arc::new(Int64Array::from(values))],
        )?;
        op.process(batch, &ctx)?;
    }
    let out = render(&op.finish_batch(&ctx)?);
    assert_eq!(out, vec!["null | 3", "a | 12", "b | 5", "c | 20"]);
    Ok(())
}

#[test]
fn state_past_max_state_memory_fails_the_batch_and_keeps_what_was_committed() -> TestResult {
    let small =
        "group_by = [\"sensor\"]\nfunctions = [{ fn = \"count\" }]\nmax_state_memory = \"4KiB\"";
    let mut h = Harness::new(small, "update")?;
    assert_eq!(
        h.batch(&[&[(1, "a", 1), (2, "b", 1)]])?,
        vec!["a | 1", "b | 1"]
    );

    let names: Vec<String> = (0..500).map(|i| format!("sensor_{i}")).collect();
    let rows: Vec<(i64, &str, i64)> = names.iter().map(|n| (3, n.as_str(), 1)).collect();
    let ctx = h.context();
    h.op.process(chunk(&rows), &ctx)?;
    let err =
        h.op.finish_batch(&ctx)
            .err()
            .ok_or("500 groups fit in 4 KiB")?;
    assert!(
        err.message.contains("holds 502 groups")
            && err.message.contains("more than max_state_memory (4.0 KiB)")
            && err.message.contains("add a watermark"),
        "{}",
        err.message
    );
    assert_eq!(err.class, crate::engine::ErrorClass::User);
    assert!(!err.retryable, "the same batch would fail again");
    h.op.abort_batch();

    // Raising the limit keeps the state (it is not part of the fingerprint), and the failed
    // batch left no trace in it.
    let larger = small.replace("4KiB", "1MiB");
    h.restart(&larger, "update")?;
    assert_eq!(h.batch(&[&[(4, "a", 1)]])?, vec!["a | 2"]);
    Ok(())
}

#[test]
fn spilled_groups_are_read_back_when_their_rows_return() -> TestResult {
    let counts = "group_by = [\"sensor\"]\nfunctions = [{ fn = \"count\" }, { fn = \"count_distinct\", column = \"value\" }]";
    let mut h = Harness::spilling(counts, "update")?;
    assert_eq!(
        h.batch(&[&[(1, "a", 1), (1, "b", 1), (1, "c", 1)]])?,
        vec!["a | 1 | 1", "b | 1 | 1", "c | 1 | 1"]
    );
    // Everything left memory at the commit; `b` comes back from the store with its count.
    assert_eq!(h.batch(&[&[(2, "b", 2)]])?, vec!["b | 2 | 2"]);
    let progress = h.op.state_progress().ok_or("no progress")?;
    assert_eq!(
        (progress.num_rows_total, progress.num_rows_in_memory),
        (3, 1),
        "a and c stayed in the store"
    );
    // Two spilled groups and a new one in one chunk, out of order.
    assert_eq!(
        h.batch(&[&[(3, "d", 1), (3, "c", 5), (3, "a", 1)]])?,
        vec!["a | 2 | 1", "c | 2 | 2", "d | 1 | 1"]
    );
    // A restart reads the state as committed.
    h.restart(counts, "update")?;
    assert_eq!(h.batch(&[&[(4, "b", 2)]])?, vec!["b | 3 | 2"]);
    Ok(())
}

#[test]
fn a_state_larger_than_the_budget_opens_partly_spilled_and_counts_on() -> TestResult {
    let counts = "group_by = [\"sensor\"]\nfunctions = [{ fn = \"count\" }]";
    let mut h = Harness::spilling(counts, "update")?;
    let names: Vec<String> = (0..3000).map(|i| format!("s{i:04}")).collect();
    let rows: Vec<(i64, &str, i64)> = names.iter().map(|n| (1, n.as_str(), 1)).collect();
    assert_eq!(h.batch(&[&rows])?.len(), 3000);
    // Reopened with a budget of nothing: some groups are read, the rest only remembered.
    h.restart(counts, "update")?;
    let out = h.batch(&[&rows[..10]])?;
    assert_eq!(
        out,
        names[..10]
            .iter()
            .map(|n| format!("{n} | 2"))
            .collect::<Vec<_>>()
    );
    let progress = h.op.state_progress().ok_or("no progress")?;
    assert_eq!(progress.num_rows_total, 3000);
    assert!(
        progress.num_rows_in_memory < 3000,
        "{} in memory",
        progress.num_rows_in_memory
    );
    // Every key, wherever it was, counts on from what was committed.
    let out = h.batch(&[&rows])?;
    assert_eq!(out.len(), 3000);
    assert!(
        out[..10].iter().all(|r| r.ends_with("| 3")),
        "{:?}",
        &out[..10]
    );
    assert!(
        out[10..].iter().all(|r| r.ends_with("| 2")),
        "{:?}",
        &out[10..20]
    );
    Ok(())
}

#[test]
fn the_least_recently_changed_groups_are_spilled_first() -> TestResult {
    let counts = "group_by = [\"sensor\"]\nfunctions = [{ fn = \"count\" }]";
    let old: Vec<String> = (0..10).map(|i| format!("old{i}")).collect();
    let new: Vec<String> = (0..10).map(|i| format!("new{i}")).collect();
    let rows = |names: &[String]| -> Vec<(i64, String, i64)> {
        names.iter().map(|n| (1, n.clone(), 1)).collect()
    };
    let run = |h: &mut Harness| -> Result<(), Box<dyn std::error::Error>> {
        for names in [&old, &new] {
            let owned = rows(names);
            let borrowed: Vec<(i64, &str, i64)> =
                owned.iter().map(|(t, n, v)| (*t, n.as_str(), *v)).collect();
            h.batch(&[&borrowed])?;
        }
        Ok(())
    };
    // How much the 20 groups take, measured without spilling.
    let mut plain = Harness::new(counts, "update")?;
    run(&mut plain)?;
    let used = plain
        .op
        .state_progress()
        .ok_or("no progress")?
        .memory_used_bytes;
    // Just under that: the second commit spills down to about half of the groups.
    let mut h = Harness::spilling_above(counts, "update", used * 9 / 10)?;
    run(&mut h)?;
    let resident = h.op.resident_keys();
    assert!(!resident.is_empty(), "everything was spilled");
    assert!(
        resident.iter().all(|k| k.starts_with("new")),
        "the groups of the older batch go first: {resident:?}"
    );
    Ok(())
}

#[test]
fn a_large_state_opens_with_its_latest_windows_in_memory() -> TestResult {
    let windowed = "group_by = [\"sensor\"]\nwindow = { column = \"time\", size = \"10s\" }\nfunctions = [{ fn = \"count\" }]";
    let mut h = Harness::spilling(windowed, "update")?;
    let old: Vec<String> = (0..1100).map(|i| format!("old{i:04}")).collect();
    let new: Vec<String> = (0..1100).map(|i| format!("new{i:04}")).collect();
    let mut rows: Vec<(i64, &str, i64)> = old.iter().map(|n| (1, n.as_str(), 1)).collect();
    rows.extend(new.iter().map(|n| (11, n.as_str(), 1)));
    h.batch(&[&rows])?;
    // Reopened with no budget: what is read before memory counts as full is the newest window.
    h.restart(windowed, "update")?;
    let resident = h.op.resident_keys();
    assert!(resident.len() >= 1000, "{} groups read", resident.len());
    assert!(
        resident.iter().all(|k| k.starts_with("new")),
        "an old window's group was read first"
    );
    Ok(())
}
