//! Time limits. Each test takes the machine alone (see `machine.rs`): nothing else of the suite
//! competes for the two cores while it measures.

use crate::harness::{TestResult, Weir, repo_root};
use crate::machine::Alone;
use nix::sys::signal::Signal;
use std::time::Duration;

#[test]
fn first_batch_is_printed_within_100_ms_of_start() -> TestResult {
    let _alone = Alone::take();
    let dir = tempfile::tempdir()?;
    let state = dir.path().to_string_lossy().into_owned();
    let example = repo_root().join("config/examples/rate-console.toml");
    let example = example.to_string_lossy().into_owned();
    let mut weir = Weir::start(&["run", "--state-dir", &state, &example]);
    weir.wait_for_stdout("Batch: 0\n", Duration::from_secs(5));
    let first = weir.started.elapsed();
    weir.wait_for("batch 0's table", Duration::from_secs(5), |out, _| {
        out.matches("+---------+-----+").count() >= 3
    });
    let elapsed = weir.started.elapsed();
    weir.signal(Signal::SIGTERM);
    assert!(weir.wait_exit(Duration::from_secs(5)).success());
    assert!(
        elapsed < Duration::from_millis(100),
        "first batch after {elapsed:?} (banner after {first:?})"
    );
    Ok(())
}
