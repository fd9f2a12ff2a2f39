//! State that survives upgrades: a state directory made by an earlier weir
//! (`tests/fixtures/state-v1`) is opened by this one, which carries the pipeline on exactly as
//! an uninterrupted run does — same checkpoint, same windows, same counts.

use crate::daemon_harness::parts;
use crate::harness::{TestResult, Weir, repo_root};
use std::path::Path;
use std::time::Duration;

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

fn run(state: &Path, pipeline: &Path) {
    let mut weir = Weir::start(&[
        "run",
        "--state-dir",
        &state.to_string_lossy(),
        &pipeline.to_string_lossy(),
    ]);
    let status = weir.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{}", weir.stderr());
}

#[test]
fn a_state_made_by_an_earlier_weir_is_continued_exactly_as_an_uninterrupted_run() -> TestResult {
    let fixture = repo_root().join("tests/fixtures/state-v1");
    let text =
        std::fs::read_to_string(fixture.join("counts.toml"))?.replace("rows = 1000", "rows = 2000");

    let continued = tempfile::tempdir()?;
    copy_dir(&fixture.join("state"), &continued.path().join("state"))?;
    std::fs::write(continued.path().join("counts.toml"), &text)?;
    run(
        &continued.path().join("state"),
        &continued.path().join("counts.toml"),
    );

    let fresh = tempfile::tempdir()?;
    std::fs::write(fresh.path().join("counts.toml"), &text)?;
    run(
        &fresh.path().join("state"),
        &fresh.path().join("counts.toml"),
    );

    let continued = parts(&continued.path().join("out"));
    let fresh = parts(&fresh.path().join("out"));
    assert_eq!(
        continued.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [2, 3],
        "batches 0 and 1 were committed by the earlier weir"
    );
    assert_eq!(fresh.len(), 4);
    assert_eq!(continued[..], fresh[2..]);
    // Batch 2 completes a window that batch 1 (in the fixture) began.
    let window_counts: i64 = continued[0]
        .1
        .iter()
        .filter(|r| r["window"]["start"] == "2023-11-14T22:13:21Z")
        .filter_map(|r| r["count"].as_i64())
        .sum();
    assert_eq!(window_counts, 700, "{:?}", continued[0].1);
    Ok(())
}
