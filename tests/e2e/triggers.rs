//! Triggers end to end: `available_now` and `once` end by themselves; `processing_time` spaces
//! batches by its interval; datagen output is identical however it is split into batches.

use crate::harness::{TestResult, Weir, batches_printed, pipeline_file};
use std::path::Path;
use std::time::Duration;

fn datagen(name: &str, trigger: &str, max_rows: u64, out: &Path) -> String {
    format!(
        r#"name = "{name}"
trigger = {trigger}

[source]
type = "datagen"
rows_per_second = 1000
rows = 10000
seed = 11
max_rows_per_batch = {max_rows}

[[source.column]]
name = "time"
type = "timestamp"
expr = "now"

[[source.column]]
name = "word"
type = "string"
values = ["hello", "world", "ok", "no", "yes"]
weights = [1, 1, 2, 2, 2]

[[source.column]]
name = "value"
type = "double"
min = 0
max = 10
random = true
percent_nulls = 0.2

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
        out.display()
    )
}

fn output_rows(dir: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let mut rows = Vec::new();
    for path in names {
        rows.extend(std::fs::read_to_string(path)?.lines().map(|l| {
            // The event time depends on when the stream started; compare the rest.
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("time");
            }
            v.to_string()
        }));
    }
    Ok(rows)
}

#[test]
fn available_now_processes_everything_in_bounded_batches_the_same_however_split_and_exits()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let mut outputs = Vec::new();
    for (i, max_rows) in [(0, 3000), (1, 10_000)] {
        let out = dir.path().join(format!("out{i}"));
        let file = pipeline_file(
            dir.path(),
            &format!("p{i}.toml"),
            &datagen(&format!("p{i}"), "\"available_now\"", max_rows, &out),
        );
        let state = dir.path().join(format!("state{i}"));
        let (file, state) = (
            file.to_string_lossy().into_owned(),
            state.to_string_lossy().into_owned(),
        );
        let mut weir = Weir::start(&["run", "--state-dir", &state, &file]);
        let status = weir.wait_exit(Duration::from_secs(20));
        assert!(status.success(), "{}", weir.stderr());
        let mut per_file: Vec<usize> = Vec::new();
        for entry in std::fs::read_dir(&out)? {
            per_file.push(std::fs::read_to_string(entry?.path())?.lines().count());
        }
        assert_eq!(
            per_file.len(),
            10_000usize.div_ceil(max_rows as usize),
            "one file per batch"
        );
        assert!(
            per_file.iter().all(|&rows| rows <= max_rows as usize),
            "batches of at most {max_rows} rows: {per_file:?}"
        );
        outputs.push(output_rows(&out)?);
    }
    assert_eq!(outputs[0].len(), 10_000);
    assert_eq!(
        outputs[0], outputs[1],
        "the same seed gives the same rows in any batch split"
    );
    Ok(())
}

/// The last committed batch `weir state list` shows for the only pipeline in `state`.
fn last_committed(state: &str) -> String {
    let mut list = Weir::start(&["state", "list", "--state-dir", state]);
    assert!(list.wait_exit(Duration::from_secs(10)).success());
    list.stdout().trim().to_string()
}

#[test]
fn once_runs_one_batch_of_all_that_is_available_and_a_rerun_with_nothing_new_runs_none()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        // Started long ago: all 10 000 rows are released.
        &datagen("once", "\"once\"", 100, &out).replace(
            "seed = 11\n",
            "seed = 11\nstart_timestamp = 1700000000000\n",
        ),
    );
    let state = dir.path().join("state");
    let (file, state) = (
        file.to_string_lossy().into_owned(),
        state.to_string_lossy().into_owned(),
    );
    for _ in 0..2 {
        let mut weir = Weir::start(&["run", "--state-dir", &state, &file]);
        assert!(
            weir.wait_exit(Duration::from_secs(20)).success(),
            "{}",
            weir.stderr()
        );
        assert_eq!(last_committed(&state), "once\tlast committed batch 0");
    }
    // As Spark's Trigger.Once: one batch of everything, max_rows_per_batch notwithstanding.
    let mut rows: Vec<usize> = Vec::new();
    for entry in std::fs::read_dir(&out)? {
        rows.push(std::fs::read_to_string(entry?.path())?.lines().count());
    }
    assert_eq!(rows, [10_000]);
    Ok(())
}

#[test]
fn a_processing_time_trigger_keeps_firing_batches_until_stopped() -> TestResult {
    // When batches fire (on each tick of the interval, aligned to the epoch) is checked with
    // tokio's paused clock in the engine's tests; here, that the binary keeps firing them.
    let dir = tempfile::tempdir()?;
    let text = r#"name = "ticks"
trigger = { processing_time = "100ms" }
[source]
type = "rate_micro_batch"
rows_per_batch = 5
[[sink]]
type = "console"
"#;
    let file = pipeline_file(dir.path(), "p.toml", text);
    let state = dir.path().join("state");
    let (file, state) = (
        file.to_string_lossy().into_owned(),
        state.to_string_lossy().into_owned(),
    );
    let mut weir = Weir::start(&["run", "--state-dir", &state, &file]);
    weir.wait_for_stdout("Batch: 3\n", Duration::from_secs(20));
    weir.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(weir.wait_exit(Duration::from_secs(10)).success());
    assert!(batches_printed(&weir.stdout()) >= 4);
    Ok(())
}
