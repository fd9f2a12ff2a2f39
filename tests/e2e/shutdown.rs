//! Clean shutdown under load: SIGTERM during busy batches exits 0 within 5 seconds, with the
//! batch in flight committed and nothing logged at ERROR or WARN.

use crate::harness::{TestResult, Weir, error_or_warn_lines, pipeline_file};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[test]
fn sigterm_during_a_busy_run_exits_zero_within_five_seconds() -> TestResult {
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
    Ok(())
}
