//! Helpers the plugin benchmarks share (each benchmark is a binary of its own and includes
//! this module with `mod common;`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `$CARGO_TARGET_DIR/plugins`, where `scripts/build-plugins` puts the Rust components.
pub fn rust_plugins() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("plugins"))
        .unwrap_or_default()
}

/// Calls `f` once to warm up, then at least `min_calls` times and for at least `budget`; the
/// mean time per call.
#[allow(dead_code)] // not every benchmark times calls
pub fn time(budget: Duration, min_calls: u32, mut f: impl FnMut()) -> Duration {
    f();
    let started = Instant::now();
    let mut calls = 0u32;
    while calls < min_calls || started.elapsed() < budget {
        f();
        calls += 1;
    }
    started.elapsed() / calls
}
