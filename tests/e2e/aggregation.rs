//! Stateful aggregation end to end: every output mode against an independent, non-streaming
//! computation over the same rows; `kill -9` during an append-mode run changes nothing, with
//! the batches' chunks on one task or spread over two.

use crate::harness::{TestResult, Weir, pipeline_file};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const START_MS: i64 = 1_700_000_000_000;
const ROWS: u64 = 1_000_000;
const PER_BATCH: u64 = 50_000;
const WINDOW_MS: i64 = 10_000;
const DELAY_MS: i64 = 5_000;
const JITTER: &str = "20s";

fn source(rows: u64, per_batch: u64) -> String {
    format!(
        r#"trigger = "available_now"

[source]
type = "datagen"
rows_per_second = 1000
rows = {rows}
max_rows_per_batch = {per_batch}
start_timestamp = {START_MS}
seed = 5

[[source.column]]
name = "time"
type = "timestamp"
expr = "now"
jitter = "{JITTER}"

[[source.column]]
name = "sensor"
type = "string"
values = ["sensor_1", "sensor_2", "sensor_3"]
random = true

[[source.column]]
name = "value"
type = "long"
min = 0
max = 100
random = true
"#
    )
}

fn aggregated(name: &str, mode: &str, out: &Path, rows: u64, per_batch: u64) -> String {
    format!(
        r#"name = "{name}"
output_mode = "{mode}"
{}
[aggregate]
group_by = ["sensor"]
window = {{ column = "time", size = "10s" }}
watermark = "5s"
functions = [{{ fn = "count" }}, {{ fn = "sum", column = "value" }}, {{ fn = "avg", column = "value" }},
             {{ fn = "min", column = "value" }}, {{ fn = "max", column = "value" }}]

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
        source(rows, per_batch),
        out.display()
    )
}

fn run_to_end(dir: &Path, files: &[PathBuf]) {
    let state = dir.join("state").to_string_lossy().into_owned();
    let plugins = crate::daemon_harness::built_plugins()
        .to_string_lossy()
        .into_owned();
    let mut args = vec![
        "run".to_string(),
        "--state-dir".into(),
        state,
        "--plugins-dir".into(),
        plugins,
    ];
    args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut weir = Weir::start(&args);
    let status = weir.wait_exit(Duration::from_secs(240));
    assert!(status.success(), "{}", weir.stderr());
}

/// (window start ms, sensor) → (count, sum, avg, min, max)
type Row = ((i64, String), (i64, i64, f64, i64, i64));

fn ms(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text).map_or(i64::MIN, |t| t.timestamp_millis())
}

/// Each output file (batch id → its rows).
fn read_json_batches(dir: &Path) -> Result<BTreeMap<u64, Vec<Row>>, Box<dyn std::error::Error>> {
    let mut batches = BTreeMap::new();
    if !dir.exists() {
        return Ok(batches);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(id) = name
            .strip_prefix("part-")
            .and_then(|n| n.split(['-', '.']).next())
        else {
            continue;
        };
        let mut rows = Vec::new();
        for line in std::fs::read_to_string(&path)?.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let start = ms(v["window"]["start"].as_str().ok_or("window.start")?);
            assert_eq!(
                ms(v["window"]["end"].as_str().ok_or("window.end")?),
                start + WINDOW_MS
            );
            let int = |k: &str| v[k].as_i64().ok_or(format!("{k} in {line}"));
            rows.push((
                (start, v["sensor"].as_str().ok_or("sensor")?.to_string()),
                (
                    int("count")?,
                    int("sum(value)")?,
                    v["avg(value)"].as_f64().ok_or("avg")?,
                    int("min(value)")?,
                    int("max(value)")?,
                ),
            ));
        }
        batches.insert(id.parse()?, rows);
    }
    Ok(batches)
}

/// The input rows batch by batch, read from the raw pipeline's Parquet output.
/// Input rows: (event time ms, sensor, value), batch by batch.
type InputBatches = Vec<Vec<(i64, String, i64)>>;

fn read_input(dir: &Path) -> Result<InputBatches, Box<dyn std::error::Error>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let mut batches = Vec::new();
    for path in paths {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&path)?,
        )?
        .build()?;
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch?;
            let times = batch.column(0).as_primitive::<TimestampMicrosecondType>();
            // The generator dictionary-encodes `values` columns.
            let sensors = arrow::compute::cast(batch.column(1), &arrow::datatypes::DataType::Utf8)?;
            let sensors = sensors.as_string::<i32>();
            let values = batch.column(2).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                rows.push((
                    times.value(i) / 1000,
                    sensors.value(i).to_string(),
                    values.value(i),
                ));
            }
        }
        batches.push(rows);
    }
    Ok(batches)
}

/// A plain, row-at-a-time simulation of Spark's semantics: in batch k rows whose window ended by
/// the previous batch's eviction watermark are dropped, the rest aggregated; windows ending by
/// this batch's watermark (max event time of earlier batches minus the delay) are emitted in
/// append mode and forgotten; one more batch without data runs when that frees windows.
fn expected(input: &[Vec<(i64, String, i64)>], mode: &str) -> BTreeMap<u64, Vec<Row>> {
    #[derive(Clone, Copy)]
    struct Agg(i64, i64, f64, i64, i64);
    let mut state: BTreeMap<(i64, String), Agg> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let (mut max_seen, mut evicted_by): (Option<i64>, Option<i64>) = (None, None);
    let row = |k: &(i64, String), a: &Agg| (k.clone(), (a.0, a.1, a.2 / a.0 as f64, a.3, a.4));
    let mut batch_id = 0u64;
    let mut batches: Vec<&[(i64, String, i64)]> = input.iter().map(Vec::as_slice).collect();
    batches.push(&[]); // the no-data batch after the input runs dry (kept only if it frees windows)
    for (i, rows) in batches.into_iter().enumerate() {
        let watermark = max_seen.map(|m| (m - DELAY_MS).max(evicted_by.unwrap_or(i64::MIN)));
        let is_last = i == input.len();
        if is_last
            && !(watermark > evicted_by
                && state
                    .keys()
                    .any(|k| k.0 + WINDOW_MS <= watermark.unwrap_or(i64::MIN)))
        {
            break;
        }
        let mut dirty = BTreeSet::new();
        for (t, sensor, v) in rows {
            max_seen = Some(max_seen.map_or(*t, |m| m.max(*t)));
            let start = t - t.rem_euclid(WINDOW_MS);
            if evicted_by.is_some_and(|wm| start + WINDOW_MS <= wm) {
                continue;
            }
            let key = (start, sensor.clone());
            let a = state
                .entry(key.clone())
                .or_insert(Agg(0, 0, 0.0, i64::MAX, i64::MIN));
            *a = Agg(a.0 + 1, a.1 + v, a.2 + *v as f64, a.3.min(*v), a.4.max(*v));
            dirty.insert(key);
        }
        let closed: Vec<(i64, String)> = state
            .keys()
            .filter(|k| watermark.is_some_and(|wm| k.0 + WINDOW_MS <= wm))
            .cloned()
            .collect();
        let emitted: Vec<Row> = match mode {
            "append" => closed.iter().map(|k| row(k, &state[k])).collect(),
            "update" => dirty.iter().map(|k| row(k, &state[k])).collect(),
            _ => state.iter().map(|(k, a)| row(k, a)).collect(),
        };
        if !emitted.is_empty() {
            out.insert(batch_id, emitted);
        }
        for k in closed {
            state.remove(&k);
        }
        if watermark.is_some() {
            evicted_by = watermark;
        }
        batch_id += 1;
    }
    out
}

#[test]
fn every_output_mode_equals_an_independent_computation() -> TestResult {
    let dir = tempfile::tempdir()?;
    let raw_out = dir.path().join("raw");
    let raw = pipeline_file(
        dir.path(),
        "raw.toml",
        &format!(
            "name = \"raw\"\n{}\n[[sink]]\ntype = \"file\"\npath = \"{}\"\nformat = \"parquet\"\n",
            source(ROWS, PER_BATCH),
            raw_out.display()
        ),
    );
    let mut files = vec![raw];
    for mode in ["append", "update", "complete"] {
        let out = dir.path().join(mode);
        files.push(pipeline_file(
            dir.path(),
            &format!("{mode}.toml"),
            &aggregated(mode, mode, &out, ROWS, PER_BATCH),
        ));
    }
    run_to_end(dir.path(), &files);

    let input = read_input(&raw_out)?;
    assert_eq!(input.len() as u64, ROWS / PER_BATCH);
    assert_eq!(input.iter().map(Vec::len).sum::<usize>() as u64, ROWS);
    let mut late_rows_exist = false;
    for mode in ["append", "update", "complete"] {
        let want = expected(&input, mode);
        let got = read_json_batches(&dir.path().join(mode))?;
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{mode}: batches with output"
        );
        for (id, rows) in &want {
            let same = got[id].len() == rows.len()
                && got[id].iter().zip(rows).all(|(g, w)| {
                    // Averages travel through JSON text: allow for the last digit.
                    g.0 == w.0
                        && (g.1.0, g.1.1, g.1.3, g.1.4) == (w.1.0, w.1.1, w.1.3, w.1.4)
                        && (g.1.2 - w.1.2).abs() <= 1e-12 * w.1.2.abs()
                });
            assert!(
                same,
                "{mode}: batch {id}\n got: {:?}\nwant: {rows:?}",
                got[id]
            );
        }
        if mode == "append" {
            // Windows are 10 s, the watermark 5 s behind, event times up to 20 s late: some rows
            // must have been dropped for the comparison to mean anything.
            let counted: i64 = want.values().flatten().map(|r| r.1.0).sum();
            late_rows_exist = counted < ROWS as i64;
            // Each window is emitted exactly once.
            let keys: Vec<_> = got.values().flatten().map(|r| r.0.clone()).collect();
            assert_eq!(keys.len(), keys.iter().collect::<BTreeSet<_>>().len());
        }
    }
    assert!(late_rows_exist, "the workload produced no late rows");
    Ok(())
}

#[test]
fn kill_9_during_an_append_run_on_one_task_leaves_the_output_of_an_uninterrupted_one_task_run()
-> TestResult {
    kill_9_during_an_append_run_leaves_the_output_of_an_uninterrupted_one_task_run(1)
}

#[test]
fn kill_9_during_an_append_run_on_two_tasks_leaves_the_output_of_an_uninterrupted_one_task_run()
-> TestResult {
    kill_9_during_an_append_run_leaves_the_output_of_an_uninterrupted_one_task_run(2)
}

/// The windowed aggregation behind a stateless wasm stage (`filter`), in batches of three
/// chunks; the crashed run's chunks go through the stateless stage on `tasks` tasks.
fn kill_9_during_an_append_run_leaves_the_output_of_an_uninterrupted_one_task_run(
    tasks: usize,
) -> TestResult {
    const CRASH_ROWS: u64 = 3_000_000;
    // Three chunks a batch (65536 + 65536 + 18928 rows), so that two tasks have work; 15 000
    // rows a second of event time, so that a batch spans 10 s as it does in the other tests.
    const CRASH_BATCH: u64 = 150_000;
    let filtered = |name: &str, out: &Path, tasks: usize| {
        aggregated(name, "append", out, CRASH_ROWS, CRASH_BATCH)
            .replace("rows_per_second = 1000\n", "rows_per_second = 15000\n")
            .replace(
                "[aggregate]\n",
                &format!(
                    "[parallelism]\ntasks_per_daemon = {tasks}\n\n\
                 [[transform]]\nplugin = \"filter\"\n\
                 config = {{ column = \"value\", op = \">=\", value = 3 }}\n\n[aggregate]\n"
                ),
            )
    };
    let dir = tempfile::tempdir()?;
    let clean_out = dir.path().join("clean");
    let clean = pipeline_file(dir.path(), "clean.toml", &filtered("clean", &clean_out, 1));
    run_to_end(&dir.path().join("clean-run"), &[clean]);

    // The crashed run also spills: a tiny memory budget sends most groups to the store after
    // every commit, so crashes also land between spilling and reading back.
    let crashed_out = dir.path().join("crashed");
    let crashed = pipeline_file(
        dir.path(),
        "crashed.toml",
        &filtered("crashed", &crashed_out, tasks).replace(
            "watermark = \"5s\"\n",
            "watermark = \"5s\"\nmax_state_memory = \"2KiB\"\n",
        ),
    );
    let state = dir
        .path()
        .join("crash-state")
        .to_string_lossy()
        .into_owned();
    let file = crashed.to_string_lossy().into_owned();
    let plugins = crate::daemon_harness::built_plugins()
        .to_string_lossy()
        .into_owned();
    let args = [
        "run",
        "--log-level",
        "info,weir::window=debug",
        "--state-dir",
        &state,
        "--plugins-dir",
        &plugins,
        &file,
    ];
    let mut spilled = false;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut kills = 0;
    let files_in = |d: &Path| std::fs::read_dir(d).map_or(0, |e| e.count());
    loop {
        let before = files_in(&crashed_out);
        let mut weir = Weir::start(&args);
        if kills == 8 {
            let status = weir.wait_exit(Duration::from_secs(120));
            assert!(status.success(), "{}", weir.stderr());
            spilled |= weir.stderr().contains("aggregation state spilled");
            break;
        }
        // Let the run make progress (one more output file, or the end), then crash it a
        // pseudo-random few milliseconds later: between batches or in the middle of one.
        let out = crashed_out.clone();
        weir.wait_for("progress", Duration::from_secs(60), move |_, _| {
            files_in(&out) > before
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 25));
        if !weir.is_running() {
            assert!(
                weir.wait_exit(Duration::from_secs(5)).success(),
                "{}",
                weir.stderr()
            );
            break;
        }
        spilled |= weir.stderr().contains("aggregation state spilled");
        weir.kill9();
        kills += 1;
    }
    assert!(
        kills >= 3,
        "the run ended before it could be interrupted ({kills} kills)"
    );
    assert!(spilled, "the crashed run never spilled");

    // `part-<batch id>-<checkpoint id>.json` → batch id → name; the two runs have different
    // checkpoints, and every restart of the crashed run must have kept its own.
    let by_batch = |d: &Path| -> Result<BTreeMap<String, String>, Box<dyn std::error::Error>> {
        let mut files = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for entry in std::fs::read_dir(d)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let mut parts = name.split(['-', '.']);
            let (Some("part"), Some(batch), Some(id)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("unexpected file {name}").into());
            };
            ids.insert(id.to_string());
            files.insert(batch.to_string(), name);
        }
        assert_eq!(ids.len(), 1, "one checkpoint id across restarts: {ids:?}");
        Ok(files)
    };
    let (clean_files, crashed_files) = (by_batch(&clean_out)?, by_batch(&crashed_out)?);
    assert_eq!(
        clean_files.keys().collect::<Vec<_>>(),
        crashed_files.keys().collect::<Vec<_>>()
    );
    for (batch, name) in &clean_files {
        assert_eq!(
            std::fs::read(clean_out.join(name))?,
            std::fs::read(crashed_out.join(&crashed_files[batch]))?,
            "batch {batch} differs"
        );
    }
    assert!(clean_files.len() > 10);
    Ok(())
}

const SMALL: &str = r#"name = "small"
output_mode = "update"
trigger = "available_now"

[source]
type = "datagen"
rows = 100
start_timestamp = 0

[[source.column]]
name = "time"
type = "timestamp"
expr = "now"

[[source.column]]
name = "sensor"
type = "string"
values = ["a", "b"]

[[source.column]]
name = "value"
type = "long"

[aggregate]
group_by = ["sensor"]
window = { column = "time", size = "10s" }
functions = [{ fn = "avg", column = "value" }]

[[sink]]
type = "null"
"#;

#[test]
fn aggregations_that_break_a_rule_are_rejected_at_load_with_the_rule() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cases = [
        (
            SMALL.replace("output_mode = \"update\"", "output_mode = \"append\""),
            ":2:15: error: output_mode \"append\" with an aggregation needs a watermark",
        ),
        (
            SMALL.replace("group_by = [\"sensor\"]", "group_by = [\"sensr\"]"),
            ":25:13: error: unknown column `sensr`",
        ),
        (
            SMALL.replace("column = \"value\" }]", "column = \"sensor\" }]"),
            ":27:14: error: `avg` needs a numeric column; `sensor` is string",
        ),
        (
            SMALL.replace(
                "window = { column = \"time\", size = \"10s\" }",
                "watermark = \"5s\"",
            ),
            ":26:13: error: a watermark needs a window",
        ),
        (
            SMALL.replace(
                "functions = [{ fn = \"avg\", column = \"value\" }]",
                "functions = [{ fn = \"avg\", column = \"value\" }]\nmax_state_memory = 0",
            ),
            ":28:20: error: max_state_memory must be more than zero",
        ),
    ];
    for (text, want) in cases {
        let file = pipeline_file(dir.path(), "bad.toml", &text);
        let file = file.to_string_lossy().into_owned();
        let mut weir = Weir::start(&["check", &file]);
        assert_eq!(weir.wait_exit(Duration::from_secs(10)).code(), Some(1));
        let stderr = weir.stderr();
        assert!(
            stderr.starts_with(&format!("{file}{want}")),
            "want {want}, got:\n{stderr}"
        );
    }
    Ok(())
}

#[test]
fn changed_aggregation_refuses_old_state_until_it_is_reset() -> TestResult {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state").to_string_lossy().into_owned();
    let file = pipeline_file(dir.path(), "small.toml", SMALL)
        .to_string_lossy()
        .into_owned();
    let mut weir = Weir::start(&["run", "--state-dir", &state, &file]);
    assert!(
        weir.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        weir.stderr()
    );

    pipeline_file(
        dir.path(),
        "small.toml",
        &SMALL.replace("size = \"10s\"", "size = \"20s\""),
    );
    let mut weir = Weir::start(&["run", "--state-dir", &state, &file]);
    assert_eq!(weir.wait_exit(Duration::from_secs(20)).code(), Some(1));
    let stderr = weir.stderr();
    assert!(
        stderr.contains("the [aggregate] of pipeline `small` changed since its state was written"),
        "{stderr}"
    );
    assert!(stderr.contains("weir state reset small"), "{stderr}");

    let mut reset = Weir::start(&["state", "reset", "--state-dir", &state, "small"]);
    assert!(
        reset.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        reset.stderr()
    );
    let mut weir = Weir::start(&["run", "--state-dir", &state, &file]);
    assert!(
        weir.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        weir.stderr()
    );
    Ok(())
}

const PLUGIN_AGGREGATES: &str = r#"name = "plugin-aggregates"
output_mode = "update"
trigger = "available_now"

[source]
type = "datagen"
rows_per_second = 1000
rows = 30000
start_timestamp = 0
seed = 3

[[source.column]]
name = "time"
type = "timestamp"
expr = "now"

[[source.column]]
name = "sensor"
type = "string"
values = ["a", "b", "c"]

[[source.column]]
name = "value"
type = "double"
min = 0
max = 100
random = true

[[source.column]]
name = "weight"
type = "double"
values = [1.0]

[aggregate]
group_by = ["sensor"]
window = { column = "time", size = "10s" }
functions = [{ fn = "avg", column = "value" }, { fn = "min", column = "value" }, { fn = "max", column = "value" },
             { plugin = "weighted_avg", columns = ["value", "weight"] },
             { plugin = "percentile", column = "value", config = { percentile = "p50" }, as = "p50" }]
"#;

/// Runs `aggregation` (PLUGIN_AGGREGATES or a variant) into a JSON file sink and returns every
/// output row, each checked: weights of 1 make `weighted_avg` the plain mean, and the median
/// lies between min and max.
fn run_plugin_aggregates(
    aggregation: &str,
) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let text = format!(
        "{aggregation}\n[[sink]]\ntype = \"file\"\npath = \"{}\"\nformat = \"json\"\n",
        out.display()
    );
    let file = pipeline_file(dir.path(), "p.toml", &text)
        .to_string_lossy()
        .into_owned();
    let state = dir.path().join("state").to_string_lossy().into_owned();
    let plugins = crate::daemon_harness::built_plugins()
        .to_string_lossy()
        .into_owned();
    let mut weir = Weir::start(&[
        "run",
        "--state-dir",
        &state,
        "--plugins-dir",
        &plugins,
        &file,
    ]);
    assert!(
        weir.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        weir.stderr()
    );
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(&out)? {
        for line in std::fs::read_to_string(entry?.path())?.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let num = |k: &str| v[k].as_f64().ok_or(format!("{k} in {line}"));
            let (avg, weighted) = (num("avg(value)")?, num("weighted_avg(value, weight)")?);
            assert!(
                (avg - weighted).abs() < 1e-9 * avg.abs().max(1.0),
                "weights of 1 give the plain mean: {line}"
            );
            let (min, max, p50) = (num("min(value)")?, num("max(value)")?, num("p50")?);
            assert!(min <= p50 && p50 <= max, "{line}");
            rows.push(v);
        }
    }
    Ok(rows)
}

#[test]
fn plugin_aggregates_agree_with_the_built_in_ones() -> TestResult {
    let rows = run_plugin_aggregates(PLUGIN_AGGREGATES)?;
    for row in &rows {
        // About 3300 uniform values in [0, 100] per window and sensor.
        let p50 = row["p50"].as_f64().ok_or("p50")?;
        assert!((p50 - 50.0).abs() < 5.0, "median {p50}: {row}");
    }
    assert_eq!(rows.len(), 3 * 3, "three 10 s windows of three sensors");
    Ok(())
}

#[test]
fn a_plugin_aggregate_over_columns_of_the_wrong_type_is_rejected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let text = format!(
        "{}\n[[sink]]\ntype = \"null\"\n",
        PLUGIN_AGGREGATES.replace(
            "columns = [\"value\", \"weight\"]",
            "columns = [\"value\", \"sensor\"]"
        )
    );
    let file = pipeline_file(dir.path(), "p.toml", &text)
        .to_string_lossy()
        .into_owned();
    let plugins = crate::daemon_harness::built_plugins()
        .to_string_lossy()
        .into_owned();
    let mut weir = Weir::start(&["check", "--plugins-dir", &plugins, &file]);
    assert_eq!(weir.wait_exit(Duration::from_secs(30)).code(), Some(1));
    let stderr = weir.stderr();
    assert!(
        stderr.starts_with(&format!("{file}:38:14: error: aggregate plugin `weighted_avg` takes (double, double) but its columns are (double, string)")),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn plugin_aggregates_emit_each_of_15000_small_groups_once() -> TestResult {
    // 30 000 rows, 3 windows of 10 000, ids cycling through 5 000: every (window, id) group gets
    // two rows, so the plugin's states are passed once per batch rather than once per chunk.
    let text = PLUGIN_AGGREGATES.replace(
        "[aggregate]\ngroup_by = [\"sensor\"]",
        "[[source.column]]\nname = \"id\"\ntype = \"long\"\nmin = 0\nmax = 4999\n\n[aggregate]\ngroup_by = [\"id\"]",
    );
    let mut groups = BTreeSet::new();
    for row in run_plugin_aggregates(&text)? {
        let start = row["window"]["start"].as_str().ok_or("window")?.to_string();
        assert!(
            groups.insert((start, row["id"].as_i64().ok_or("id")?)),
            "a group twice: {row}"
        );
    }
    assert_eq!(groups.len(), 3 * 5000);
    Ok(())
}
