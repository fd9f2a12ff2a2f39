//! Exactly-once across stops and crashes: rate → file sink, stopped with SIGTERM, restarted,
//! killed with `kill -9` several times, restarted; the union of the output files must hold every
//! value from 0 to the last exactly once, each with its scheduled timestamp.

use crate::harness::{TestResult, Weir, error_or_warn_lines, pipeline_file};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const ROWS_PER_SECOND: i64 = 20_000;

fn pipeline(out: &Path) -> String {
    format!(
        r#"name = "rate-to-files"
[source]
type = "rate"
rows_per_second = {ROWS_PER_SECOND}
max_rows_per_batch = 15000

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
        out.display()
    )
}

/// value → timestamp (ms) over every committed output file; panics on a duplicate value.
pub fn read_output(dir: &Path) -> Result<BTreeMap<i64, i64>, Box<dyn std::error::Error>> {
    let mut rows = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue; // a temporary file of a batch that never finished
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let row: serde_json::Value = serde_json::from_str(line)?;
            let value = row["value"].as_i64().ok_or("value")?;
            let ts = row["timestamp"].as_str().ok_or("timestamp")?;
            let ts = chrono::DateTime::parse_from_rfc3339(ts)?.timestamp_millis();
            if let Some(previous) = rows.insert(value, ts) {
                panic!("value {value} written twice ({previous} and {ts}); second copy in {name}");
            }
        }
    }
    Ok(rows)
}

pub fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .count()
        })
        .unwrap_or(0)
}

/// Starts weir and waits until at least `more` new batch files appeared.
fn run_until_more_files(args: &[&str], out: &Path, more: usize) -> Weir {
    let before = files_in(out);
    let weir = Weir::start(args);
    let out = out.to_path_buf();
    weir.wait_for("new output files", Duration::from_secs(20), move |_, _| {
        files_in(&out) >= before + more
    });
    weir
}

#[test]
fn sigterm_and_kill_9_neither_lose_nor_duplicate_rows() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let file = pipeline_file(dir.path(), "p.toml", &pipeline(&out));
    let state = dir.path().join("state");
    let (file, state) = (
        file.to_string_lossy().into_owned(),
        state.to_string_lossy().into_owned(),
    );
    let args = ["run", "--state-dir", &state, &file];

    let mut weir = run_until_more_files(&args, &out, 3);
    weir.signal(Signal::SIGTERM);
    assert!(
        weir.wait_exit(Duration::from_secs(5)).success(),
        "{}",
        weir.stderr()
    );
    assert_eq!(error_or_warn_lines(&weir.stderr()), Vec::<&str>::new());

    // Crash at varied points: right after a new file, and a little later.
    for round in 0..4 {
        let weir = run_until_more_files(&args, &out, 1 + round % 2);
        weir.kill9();
    }

    let mut weir = run_until_more_files(&args, &out, 2);
    weir.signal(Signal::SIGTERM);
    assert!(
        weir.wait_exit(Duration::from_secs(5)).success(),
        "{}",
        weir.stderr()
    );

    let rows = read_output(&out)?;
    let last = *rows.keys().last().ok_or("no rows")?;
    assert_eq!(
        rows.len() as i64,
        last + 1,
        "values 0..={last} are not all there"
    );
    let start = rows[&0];
    for (value, ts) in &rows {
        // 20k rows/s: value v is due start + v / 20 ms, rounded half up to the millisecond.
        let expected = start + (value * 1000 * 2 + ROWS_PER_SECOND) / (2 * ROWS_PER_SECOND);
        assert_eq!(*ts, expected, "timestamp of value {value}");
    }
    assert!(
        last > 3 * 15_000,
        "too little data to mean anything: {last}"
    );
    Ok(())
}

/// After `weir state reset`, batch ids start again from 0; the new run's files must be written
/// beside the old ones, not taken for them (file names carry the checkpoint id).
#[test]
fn a_reset_pipeline_writes_its_files_beside_the_old_ones() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let text = format!(
        r#"name = "ticks"
trigger = {{ processing_time = "100ms" }}
[source]
type = "rate_micro_batch"
rows_per_batch = 2
[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
        out.display()
    );
    let file = pipeline_file(dir.path(), "p.toml", &text);
    let state = dir.path().join("state");
    let (file, state) = (
        file.to_string_lossy().into_owned(),
        state.to_string_lossy().into_owned(),
    );
    let args = ["run", "--state-dir", &state, &file];
    let part_names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("part-"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };

    let mut weir = run_until_more_files(&args, &out, 3);
    weir.signal(Signal::SIGTERM);
    assert!(weir.wait_exit(Duration::from_secs(5)).success());
    let first_run = part_names(&out);

    let reset = std::process::Command::new(crate::harness::weir_bin())
        .args(["state", "reset", "--state-dir", &state, "ticks"])
        .output()?;
    assert!(reset.status.success(), "{reset:?}");

    let mut weir = run_until_more_files(&args, &out, 3);
    weir.signal(Signal::SIGTERM);
    assert!(weir.wait_exit(Duration::from_secs(5)).success());
    let after = part_names(&out);
    for name in &first_run {
        assert!(after.contains(name), "{name} of the first run is gone");
    }
    let new: Vec<&String> = after.iter().filter(|n| !first_run.contains(n)).collect();
    // Batch 0 of the new run is a new file: the reset did not make it look written already.
    let id_of = |name: &str| name.split(['-', '.']).nth(2).map(str::to_string);
    let old_id = id_of(&first_run[0]).ok_or("no checkpoint id in the first run's names")?;
    let new_zero = new
        .iter()
        .find(|n| n.starts_with("part-0000000000-"))
        .ok_or_else(|| format!("no batch 0 among the new files {new:?}"))?;
    assert_ne!(id_of(new_zero), Some(old_id));
    let text = std::fs::read_to_string(out.join(new_zero))?;
    let first: serde_json::Value = serde_json::from_str(text.lines().next().ok_or("empty")?)?;
    assert_eq!(first["value"], 0, "the new run starts from the beginning");
    Ok(())
}
