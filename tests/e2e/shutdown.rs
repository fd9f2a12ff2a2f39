//! Clean shutdown under load: SIGTERM during busy batches exits 0 within 5 seconds, with the
//! batch in flight committed and nothing logged at ERROR or WARN.

use crate::harness::{TestResult, Weir, error_or_warn_lines, pipeline_file};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[test]
fn sigterm_during_a_busy_run_commits_the_batch_in_flight_and_exits_zero_within_five_seconds()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let text = format!(
        r#"name = "busy"
[source]
type = "rate"
rows_per_second = 400000

[[sink]]
type = "file"
path = "{}"
format = "csv"

[[sink]]
type = "null"
"#,
        out.display()
    );
    let file = pipeline_file(dir.path(), "busy.toml", &text);
    let state = dir.path().join("state");
    let (file, state) = (
        file.to_string_lossy().into_owned(),
        state.to_string_lossy().into_owned(),
    );
    let mut weir = Weir::start(&["run", "--log-level", "debug", "--state-dir", &state, &file]);
    // Wait until several full batches have been committed, so the signal lands mid-stream.
    weir.wait_for(
        "three committed batches",
        Duration::from_secs(20),
        |_, err| err.matches("batch committed").count() >= 3,
    );
    let signalled = Instant::now();
    weir.signal(Signal::SIGTERM);
    let status = weir.wait_exit(Duration::from_secs(10));
    let took = signalled.elapsed();
    let stderr = weir.stderr();
    assert!(status.success(), "exit {status:?}\n{stderr}");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(error_or_warn_lines(&stderr), Vec::<&str>::new());
    assert!(
        stderr.contains("stopping: finishing batches in flight"),
        "{stderr}"
    );
    // The batch in flight committed: the next run resumes after the last batch logged as
    // committed, with nothing to replay.
    let last = stderr
        .lines()
        .filter(|l| l.contains("batch committed"))
        .filter_map(|l| l.split(" batch=").nth(1)?.split_whitespace().next())
        .next_back()
        .ok_or("no committed batch logged")?
        .to_string();
    let mut again = Weir::start(&["run", "--state-dir", &state, &file]);
    again.wait_for("the resume", Duration::from_secs(20), |_, err| {
        err.contains("resuming after batch") || err.contains("replaying batch")
    });
    again.signal(Signal::SIGTERM);
    assert!(again.wait_exit(Duration::from_secs(10)).success());
    let resumed = again.stderr();
    assert!(
        resumed.contains(&format!("resuming after batch {last} pipeline=busy")),
        "last committed {last}:\n{resumed}"
    );
    Ok(())
}

#[test]
fn a_second_signal_exits_at_once_while_a_batch_is_stuck_and_leaves_it_planned_uncommitted()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let plugins = crate::daemon_harness::built_plugins().join("fixtures");
    let out = dir.path().join("out");
    // A plugin that loops with a one-hour deadline: the batch cannot finish by itself.
    let text = format!(
        "name = \"stuck\"\n[source]\ntype = \"rate_micro_batch\"\nrows_per_batch = 5\n\n[[transform]]\nplugin = \"endless_loop\"\ntimeout = \"1h\"\n\n[[sink]]\ntype = \"file\"\npath = \"{}\"\nformat = \"json\"\n",
        out.display()
    );
    let file = pipeline_file(dir.path(), "stuck.toml", &text);
    let state = dir.path().join("state");
    let (file, state, plugins) = (
        file.to_string_lossy().into_owned(),
        state.to_string_lossy().into_owned(),
        plugins.to_string_lossy().into_owned(),
    );
    let args = [
        "run",
        "--state-dir",
        &state,
        "--plugins-dir",
        &plugins,
        "--shutdown-timeout",
        "1h",
        &file,
    ];
    let mut weir = Weir::start(&args);
    // Batch 0 is planned (then it is stuck in the plugin): read the store alongside weir.
    let planned = |state: &str| -> Option<u64> {
        let store = weir::state::RocksStore::open_read_only(std::path::Path::new(state)).ok()?;
        let store: weir::state::SharedStore = std::sync::Arc::new(store);
        let entry = weir::state::Checkpoint::new(store, "stuck")
            .last_planned()
            .ok()??;
        Some(entry.batch_id)
    };
    weir.wait_for("the stuck batch", Duration::from_secs(30), |_, err| {
        err.contains("starting with a fresh checkpoint") && planned(&state) == Some(0)
    });
    weir.signal(Signal::SIGTERM);
    weir.wait_for("the first signal", Duration::from_secs(10), |_, err| {
        err.contains("stopping: finishing batches in flight")
    });
    let second = Instant::now();
    weir.signal(Signal::SIGTERM);
    let status = weir.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{}", weir.stderr());
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "the second signal took {:?}",
        second.elapsed()
    );
    assert!(
        weir.stderr()
            .contains("exiting without waiting (batches in flight will replay on the next start)"),
        "{}",
        weir.stderr()
    );
    // Nothing of the stuck batch was committed: the next run plans it again as batch 0.
    let store = weir::state::RocksStore::open_read_only(std::path::Path::new(&state))?;
    let store: weir::state::SharedStore = std::sync::Arc::new(store);
    let checkpoint = weir::state::Checkpoint::new(store, "stuck");
    assert_eq!(checkpoint.last_committed()?, None);
    assert_eq!(checkpoint.last_planned()?.map(|p| p.batch_id), Some(0));
    Ok(())
}
