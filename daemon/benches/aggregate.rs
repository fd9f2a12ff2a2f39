//! Aggregation benchmark: the IoT windowed average (10 s tumbling windows, 10 s watermark,
//! `avg(value)` per sensor) through the real `AggregateOperator` with its state committed to a
//! real RocksDB (synced) after every batch, beside a hand-written native loop over the same Arrow
//! arrays (the limit), for 3 and for 100k distinct keys; then batch latency at 1k rows/s through
//! the whole engine.
//!
//! Run: `cargo bench -p weir --bench aggregate` (`-- --quick` for a short run). With the
//! plugins built (`scripts/build-plugins`), a wasm aggregate (`weighted_avg` with weight 1)
//! is measured too. The numbers in BENCHMARKS.md come from this.

use arrow::array::{ArrayRef, AsArray, Float64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::config::parse_pipeline;
use weir::engine::{BatchContext, BatchProgress, Operator};
use weir::state::{RocksStore, SharedStore, WriteSet};
use weir::window::{AggregateOperator, UserAggregates, resolve};

const CHUNK: usize = 64 * 1024;
/// Event time advances 1 µs per row: the input is a stream of a million rows per second of event
/// time, so a 10 s window holds 10 M rows and a 1 Mi-row batch about a tenth of one.
const STEP_US: i64 = 1;

/// Whether the sensor column is plain strings or dictionary encoded (as a columnar source of
/// categorical values would produce it).
static DICTIONARY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn dictionary() -> bool {
    DICTIONARY.load(std::sync::atomic::Ordering::Relaxed)
}

fn sensor_type() -> DataType {
    if dictionary() {
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    } else {
        DataType::Utf8
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("sensor", sensor_type(), false),
        Field::new("value", DataType::Float64, false),
        Field::new("weight", DataType::Float64, false),
    ]))
}

/// Chunks for rows `[from, from + n)`: sensors cycle through `keys` names.
fn chunks(from: usize, n: usize, names: &[String]) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut row = from;
    while row < from + n {
        let end = (row + CHUNK).min(from + n);
        let times =
            TimestampMicrosecondArray::from_iter_values((row..end).map(|i| i as i64 * STEP_US))
                .with_timezone("UTC");
        let sensors: ArrayRef = if dictionary() {
            let keys = arrow::array::Int32Array::from_iter_values(
                (row..end).map(|i| ((i * 7919) % names.len()) as i32),
            );
            let values: ArrayRef = Arc::new(StringArray::from_iter_values(names.iter()));
            match arrow::array::DictionaryArray::<arrow::datatypes::Int32Type>::try_new(
                keys, values,
            ) {
                Ok(d) => Arc::new(d),
                Err(e) => panic!("{e}"),
            }
        } else {
            Arc::new(StringArray::from_iter_values(
                (row..end).map(|i| names[(i * 7919) % names.len()].as_str()),
            ))
        };
        let values =
            Float64Array::from_iter_values((row..end).map(|i| ((i * 2_654_435_761) % 11) as f64));
        let weights = Float64Array::from_iter_values(std::iter::repeat_n(1.0, end - row));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(times),
            sensors,
            Arc::new(values),
            Arc::new(weights),
        ];
        match RecordBatch::try_new(schema(), columns) {
            Ok(b) => out.push(b),
            Err(e) => panic!("{e}"),
        }
        row = end;
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or(0.0)
}

fn operator(
    function: &str,
    store: SharedStore,
    name: &str,
    plugins: Option<Arc<dyn UserAggregates + Send + Sync>>,
) -> AggregateOperator {
    let text = format!(
        "name = \"{name}\"\noutput_mode = \"update\"\n[source]\ntype = \"rate\"\n[[sink]]\ntype = \"null\"\n[aggregate]\ngroup_by = [\"sensor\"]\nwindow = {{ column = \"time\", size = \"10s\" }}\nwatermark = \"10s\"\nfunctions = [{function}]\n{}",
        MAX_STATE_MEMORY
            .get()
            .map(|m| format!("max_state_memory = \"{m}\"\n"))
            .unwrap_or_default()
    );
    let plan = match parse_pipeline(Path::new("bench.toml"), &text) {
        Ok(p) => p,
        Err(d) => panic!("{d}"),
    };
    let Some(spec) = plan.aggregate else {
        panic!("no aggregate")
    };
    let resolved = match resolve(
        &spec,
        plan.output_mode,
        &schema(),
        Path::new("bench.toml"),
        plugins.as_deref().map(|p| p as &dyn UserAggregates),
    ) {
        Ok(r) => r,
        Err(d) => panic!("{d}"),
    };
    match AggregateOperator::open(name, resolved, store, plugins) {
        Ok(op) => op,
        Err(e) => panic!("{e}"),
    }
}

struct Measured {
    rows_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Mean ms per batch in: process, finish (emit/evict), prepare_commit, store write.
    phases: [f64; 4],
    /// Groups in memory and in all after the last batch (they differ once groups spill).
    groups: (u64, u64),
}

/// Runs `batches` batches of `rows` rows through the operator, committing each; times only the
/// operator and the commit, not the input generation.
fn run_operator(
    mut op: AggregateOperator,
    store: &SharedStore,
    batches: usize,
    rows: usize,
    names: &[String],
) -> Measured {
    let mut latencies = Vec::new();
    let mut watermark = None;
    let mut total = Duration::ZERO;
    let mut phases = [Duration::ZERO; 4];
    for b in 0..batches {
        let input = chunks(b * rows, rows, names);
        let ctx = BatchContext {
            batch_id: b as u64,
            batch_timestamp_ms: 0,
            watermark_ms: watermark,
        };
        let started = Instant::now();
        for chunk in input {
            if let Err(e) = op.process(chunk, &ctx) {
                panic!("{e}");
            }
        }
        let t1 = Instant::now();
        let out = op.finish_batch(&ctx).unwrap_or_else(|e| panic!("{e}"));
        std::hint::black_box(out);
        let t2 = Instant::now();
        let mut ws = WriteSet::default();
        op.prepare_commit(&mut ws).unwrap_or_else(|e| panic!("{e}"));
        let t3 = Instant::now();
        store.write(ws, true).unwrap_or_else(|e| panic!("{e}"));
        op.committed();
        let took = started.elapsed();
        if b > 0 {
            phases[0] += t1 - started;
            phases[1] += t2 - t1;
            phases[2] += t3 - t2;
            phases[3] += t3.elapsed();
        }
        watermark = op.next_watermark().or(watermark);
        if b > 0 {
            total += took;
            latencies.push(took.as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    Measured {
        rows_per_second: (rows * (batches - 1)) as f64 / total.as_secs_f64(),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        phases: phases.map(|d| d.as_secs_f64() * 1000.0 / (batches - 1) as f64),
        groups: op
            .state_progress()
            .map_or((0, 0), |p| (p.num_rows_in_memory, p.num_rows_total)),
    }
}

/// The limit: a plain loop over the same arrays into a hash map, no state store.
fn run_native(batches: usize, rows: usize, names: &[String]) -> f64 {
    let mut total = Duration::ZERO;
    let mut sensor_ids: HashMap<Box<str>, u32, foldhash::fast::FixedState> = HashMap::default();
    let mut state: HashMap<(i64, u32), (f64, i64), foldhash::fast::FixedState> = HashMap::default();
    for b in 0..batches {
        let input = chunks(b * rows, rows, names);
        let started = Instant::now();
        for chunk in &input {
            let times = chunk
                .column(0)
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .values();
            let values = chunk
                .column(2)
                .as_primitive::<arrow::datatypes::Float64Type>()
                .values();
            let mut add = |i: usize, id: u32| {
                let window = times[i] - times[i].rem_euclid(10_000_000);
                let slot = state.entry((window, id)).or_insert((0.0, 0));
                slot.0 += values[i];
                slot.1 += 1;
            };
            if dictionary() {
                // The dictionary key is the sensor's id already.
                let keys = chunk
                    .column(1)
                    .as_dictionary::<arrow::datatypes::Int32Type>()
                    .keys()
                    .values();
                for (i, k) in keys.iter().enumerate() {
                    add(i, *k as u32);
                }
            } else {
                let sensors = chunk.column(1).as_string::<i32>();
                for i in 0..chunk.num_rows() {
                    let sensor = sensors.value(i);
                    let id = match sensor_ids.get(sensor) {
                        Some(id) => *id,
                        None => {
                            let id = sensor_ids.len() as u32;
                            sensor_ids.insert(sensor.into(), id);
                            id
                        }
                    };
                    add(i, id);
                }
            }
        }
        // Emit and forget windows more than 10 s behind, as the operator does.
        let max = input.last().map_or(0, |c| {
            let t = c
                .column(0)
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            t.value(t.len() - 1)
        });
        let averages: Vec<f64> = state.values().map(|(s, n)| s / *n as f64).collect();
        std::hint::black_box(averages);
        state.retain(|(w, _), _| w + 10_000_000 > max - 10_000_000);
        if b > 0 {
            total += started.elapsed();
        }
    }
    (rows * (batches - 1)) as f64 / total.as_secs_f64()
}

const ENGINE_PIPELINE: &str = r#"name = "engine"
output_mode = "update"
[source]
type = "datagen"
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
type = "int"
min = 0
max = 10
random = true
[aggregate]
group_by = ["sensor"]
window = { column = "time", size = "10s" }
watermark = "10s"
functions = [{ fn = "avg", column = "value" }]
[[sink]]
type = "null"
"#;

/// Runs the IoT pipeline through the whole engine (datagen → aggregation → null, plan and
/// commit synced), with `source` lines added to its `[source]`, until it finishes or `limit`
/// passes; returns the batches and the wall time.
fn run_engine(
    source: &str,
    trigger: weir::config::Trigger,
    limit: Duration,
) -> (Vec<weir::engine::BatchProgress>, Duration) {
    use weir::config::SourceSpec;
    use weir::engine::Pipeline;
    use weir::sinks::NullSink;
    use weir::sources::{DatagenSource, Source};
    use weir::state::Checkpoint;
    let text = ENGINE_PIPELINE.replace(
        "type = \"datagen\"\n",
        &format!("type = \"datagen\"\n{source}\n"),
    );
    let plan = parse_pipeline(Path::new("engine.toml"), &text).unwrap_or_else(|d| panic!("{d}"));
    let SourceSpec::Datagen(spec) = plan.source.clone() else {
        panic!("datagen")
    };
    let source = DatagenSource::new(spec);
    let Some(agg) = plan.aggregate.as_ref() else {
        panic!("aggregate")
    };
    let resolved = resolve(
        agg,
        plan.output_mode,
        &source.schema(),
        Path::new("engine.toml"),
        None,
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store: SharedStore =
        Arc::new(RocksStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    let op = AggregateOperator::open("engine", resolved, store.clone(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let pipeline = Pipeline::new(
        "engine",
        trigger,
        Box::new(source),
        vec![Box::new(op)],
        vec![("null", Box::new(NullSink))],
        Checkpoint::new(store, "engine"),
    )
    // As `weir run` and the daemon run it: one task per core.
    .with_parallelism(weir::cores::Spread::machine(weir::cores::machine_cores()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async move {
        let started = Instant::now();
        let handle = pipeline.spawn();
        let monitor = handle.monitor.clone();
        let mut handle = Some(handle);
        // The monitor keeps only the last RECENT_BATCHES (100) batches: gather them by batch id
        // every second, so a long run reports every batch (both runs here make fewer than 100
        // batches a second).
        let mut seen = std::collections::BTreeMap::new();
        let mut gathered = Instant::now();
        if tokio::time::timeout(limit, async {
            while handle.as_ref().is_some_and(|h| !h.is_finished()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if gathered.elapsed() >= Duration::from_secs(1) {
                    seen.extend(monitor.recent().into_iter().map(|b| (b.batch_id, b)));
                    gathered = Instant::now();
                }
            }
        })
        .await
        .is_err()
            && let Some(h) = handle.as_ref()
        {
            h.stop();
        }
        if let Some(h) = handle.take() {
            h.join().await;
        }
        let elapsed = started.elapsed();
        seen.extend(monitor.recent().into_iter().map(|b| (b.batch_id, b)));
        (seen.into_values().collect(), elapsed)
    })
}

/// Batch latency through the whole engine when input arrives at 1000 rows a second: the
/// batches' count, p50, p90, p99 and slowest latency, and the slowest batches themselves (so a
/// slow one can be attributed to a phase: plan, read, operators, sinks, commit).
fn latency_at_1k_rows_per_second(seconds: u64) -> LatencyRun {
    let (batches, _) = run_engine(
        "rows_per_second = 1000",
        weir::config::Trigger::BackToBack,
        Duration::from_secs(seconds),
    );
    let mut with_rows: Vec<BatchProgress> = batches
        .into_iter()
        .filter(|b| b.num_input_rows > 0)
        .collect();
    with_rows.sort_by(|a, b| {
        a.duration_ms
            .trigger_execution
            .total_cmp(&b.duration_ms.trigger_execution)
    });
    let latencies: Vec<f64> = with_rows
        .iter()
        .map(|b| b.duration_ms.trigger_execution)
        .collect();
    // What weir itself spends: the batch without its two synced writes, whose time is mostly
    // the disk's (the slow batches measured on this VM were slow in the plan's sync,
    // BENCHMARKS.md).
    let mut own: Vec<f64> = with_rows
        .iter()
        .map(|b| {
            let d = &b.duration_ms;
            d.trigger_execution - d.wal_commit - d.commit_offsets
        })
        .collect();
    own.sort_by(f64::total_cmp);
    LatencyRun {
        batches: latencies.len(),
        percentiles: spread(&latencies),
        without_syncs: spread(&own),
        slowest_batches: with_rows.into_iter().rev().take(5).collect(),
    }
}

/// p50, p90, p99 and the largest of sorted values.
fn spread(sorted: &[f64]) -> [f64; 4] {
    [
        percentile(sorted, 50.0),
        percentile(sorted, 90.0),
        percentile(sorted, 99.0),
        sorted.last().copied().unwrap_or(0.0),
    ]
}

/// What one latency run measured.
struct LatencyRun {
    batches: usize,
    /// p50, p90, p99 and the slowest, in ms.
    percentiles: [f64; 4],
    /// The same for each batch less its two synced writes (the plan and the commit).
    without_syncs: [f64; 4],
    /// The slowest batches, slowest first.
    slowest_batches: Vec<BatchProgress>,
}

/// One line per batch: its id and where its time went, in ms.
fn phases(batch: &BatchProgress) -> String {
    let d = &batch.duration_ms;
    format!(
        "batch {:>4}: {:7.2} ms = latest offset {:.2} + plan (synced) {:.2} + read {:.2} + operators {:.2} + sinks {:.2} + commit (synced) {:.2}",
        batch.batch_id,
        d.trigger_execution,
        d.latest_offset,
        d.wal_commit,
        d.get_batch,
        d.process,
        d.add_batch,
        d.commit_offsets
    )
}

/// Rows per second through the whole engine, generation included: `rows` rows that are all
/// due at once, read in batches of 1 Mi rows.
fn engine_throughput(rows: u64) -> f64 {
    let (batches, wall) = run_engine(
        &format!(
            "rows_per_second = 1000000\nrows = {rows}\nstart_timestamp = 0\nmax_rows_per_batch = 1048576"
        ),
        weir::config::Trigger::AvailableNow,
        Duration::from_secs(600),
    );
    let total: u64 = batches.iter().map(|b| b.num_input_rows).sum();
    assert_eq!(total, rows, "every row went through");
    total as f64 / wall.as_secs_f64()
}

/// The example plugins built by `scripts/build-plugins`, if they are there.
fn wasm_aggregates() -> Option<Arc<dyn UserAggregates + Send + Sync>> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("plugins");
    if !dir.join("weighted_avg.wasm").is_file() {
        return None;
    }
    let host = weir::wasm::PluginHost::new(dir, Some(&target.join("plugin-cache"))).ok()?;
    Some(Arc::new(weir::wasm::PluginAggregates::new(
        weir::wasm::PluginCatalog::from_folder(host),
        "bench",
        weir::wasm::Limits::default(),
    )))
}

/// `--max-state-memory SIZE`: the aggregation's memory budget (groups beyond half of it spill).
static MAX_STATE_MEMORY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(size) = args
        .iter()
        .position(|a| a == "--max-state-memory")
        .and_then(|i| args.get(i + 1))
    {
        let _ = MAX_STATE_MEMORY.set(size.clone());
        println!("max_state_memory = {size}");
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--keys N` runs one key count only; `--builtin-only` skips the wasm and latency runs
    // (for profiling).
    let only_keys: Option<usize> = args
        .iter()
        .position(|a| a == "--keys")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    let builtin_only = args.iter().any(|a| a == "--builtin-only");
    // `--engine-only`: only the runs through the whole engine (throughput and latency).
    let engine_only = args.iter().any(|a| a == "--engine-only");
    let dictionary_only = args.iter().any(|a| a == "--dictionary-only");
    let plain_only = args.iter().any(|a| a == "--plain-only");
    let batches = if quick { 6 } else { 21 };
    // `--rows N`: rows per batch (default 1 Mi).
    let rows: usize = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1 << 20);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store: SharedStore =
        Arc::new(RocksStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    println!(
        "IoT windowed average: 10 s tumbling windows, watermark 10 s, update mode, {rows} rows per batch, state committed (fsync) every batch"
    );
    for (keys, dict) in [(3usize, false), (3, true), (100_000, false)] {
        if engine_only
            || only_keys.is_some_and(|k| k != keys)
            || (dictionary_only && !dict)
            || (plain_only && dict)
        {
            continue;
        }
        DICTIONARY.store(dict, std::sync::atomic::Ordering::Relaxed);
        println!(
            "{keys} keys, sensor column {}:",
            if dict {
                "dictionary encoded"
            } else {
                "plain strings"
            }
        );
        let names: Vec<String> = (0..keys).map(|k| format!("sensor_{k}")).collect();
        let native = run_native(batches, rows, &names);
        let builtin = run_operator(
            operator(
                "{ fn = \"avg\", column = \"value\" }",
                store.clone(),
                &format!("builtin-{keys}-{dict}"),
                None,
            ),
            &store,
            batches,
            rows,
            &names,
        );
        println!(
            "{keys:>6} keys | native loop {:>6.1} M rows/s | built-in avg {:>6.1} M rows/s ({:>3.0}% of native), batch p50 {:.1} ms p99 {:.1} ms",
            native / 1e6,
            builtin.rows_per_second / 1e6,
            100.0 * builtin.rows_per_second / native,
            builtin.p50_ms,
            builtin.p99_ms
        );
        println!(
            "       | built-in per batch: process {:.1} ms, emit+evict {:.1} ms, prepare commit {:.1} ms, RocksDB write and commit {:.1} ms; groups in memory at the end {} of {}",
            builtin.phases[0],
            builtin.phases[1],
            builtin.phases[2],
            builtin.phases[3],
            builtin.groups.0,
            builtin.groups.1
        );
        if builtin_only {
            continue;
        }
        if let Some(plugins) = wasm_aggregates() {
            let wasm = run_operator(
                operator(
                    "{ plugin = \"weighted_avg\", columns = [\"value\", \"weight\"] }",
                    store.clone(),
                    &format!("wasm-{keys}-{dict}"),
                    Some(plugins),
                ),
                &store,
                batches,
                rows,
                &names,
            );
            println!(
                "{keys:>6} keys | wasm weighted_avg {:>6.1} M rows/s ({:.2}x the built-in's time), batch p50 {:.1} ms p99 {:.1} ms",
                wasm.rows_per_second / 1e6,
                builtin.rows_per_second / wasm.rows_per_second,
                wasm.p50_ms,
                wasm.p99_ms
            );
        } else {
            println!(
                "{keys:>6} keys | wasm aggregate skipped: build the plugins first (scripts/build-plugins)"
            );
        }
    }
    if builtin_only {
        return;
    }
    let rows_through = if quick { 4_000_000 } else { 20_000_000 };
    println!(
        "datagen -> windowed avg -> null through the engine (3 sensors, generation included): {:.1} M rows/s over {rows_through} rows",
        engine_throughput(rows_through) / 1e6
    );
    // `--latency-seconds N`: how long the 1 000 rows/s run lasts (about one batch a second;
    // with the default 30 batches the p99 is the slowest batch, so a longer run is what shows
    // a percentile).
    let seconds = args
        .iter()
        .position(|a| a == "--latency-seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 5 } else { 30 });
    let run = latency_at_1k_rows_per_second(seconds);
    let [p50, p90, p99, slowest] = run.percentiles;
    println!(
        "1000 rows/s through the engine (3 sensors, windowed avg, plan + commit synced): {} batches, latency p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, slowest {slowest:.2} ms",
        run.batches
    );
    let [p50, p90, p99, slowest] = run.without_syncs;
    println!(
        "  less the two synced writes (weir's own work): p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, slowest {slowest:.2} ms"
    );
    println!("  the slowest batches:");
    for batch in &run.slowest_batches {
        println!("  {}", phases(batch));
    }
}
