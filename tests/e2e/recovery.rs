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
