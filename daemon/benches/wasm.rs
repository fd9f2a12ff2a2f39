//! The plugin boundary's cost: keep-even-and-double on an Int64 column as a wasm transform
//! (host encode, one call, decode: end to end) against the same loop in native Rust, at 1k, 8k
//! and 64k rows; the per-call overhead of an empty batch; and loading a plugin the first time
//! (compiling) against loading it again from the compile cache (a restart).
//!
//! `./scripts/build-plugins && cargo bench -p weir --bench wasm` (a plain binary, not a test).

use arrow::array::{ArrayRef, AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::wasm::{Limits, PluginHost, WasmTransform};

/// The native baseline: the loop `plugins/fixtures/even_double` runs inside the sandbox.
fn native(batch: &RecordBatch) -> RecordBatch {
    let values = batch.column(0).as_primitive::<Int64Type>().values();
    let out: Vec<i64> = values
        .iter()
        .filter(|v| *v % 2 == 0)
        .map(|v| v * 2)
        .collect();
    let column: ArrayRef = Arc::new(Int64Array::from(out));
    RecordBatch::try_new(batch.schema(), vec![column]).unwrap_or_else(|e| panic!("{e}"))
}

fn batch(rows: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "value",
        DataType::Int64,
        false,
    )]));
    let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
    RecordBatch::try_new(schema, vec![column]).unwrap_or_else(|e| panic!("{e}"))
}

/// Calls `f` repeatedly for about `budget`; returns the mean time per call.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    for _ in 0..10 {
        f();
    }
    let started = Instant::now();
    let mut calls = 0u32;
    while started.elapsed() < budget {
        for _ in 0..16 {
            f();
        }
        calls += 16;
    }
    started.elapsed() / calls
}

fn plugins_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    target.join("plugins").join("fixtures")
}

fn main() {
    let dir = plugins_dir();
    assert!(
        dir.join("even_double.wasm").is_file(),
        "no {}: run ./scripts/build-plugins first",
        dir.join("even_double.wasm").display()
    );
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    // First load compiles; a second engine (as after a restart) reads the compile cache.
    let first = PluginHost::new(&dir, Some(cache.path())).unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let plugin = first.load("even_double").unwrap_or_else(|e| panic!("{e}"));
    let first_load = t.elapsed();
    let restarted = PluginHost::new(&dir, Some(cache.path())).unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let again = restarted
        .load("even_double")
        .unwrap_or_else(|e| panic!("{e}"));
    let cached_load = t.elapsed();
    println!(
        "load even_double.wasm ({} KiB): first {:.1} ms (compile {:.1} ms), after restart {:.2} ms (cache {:.2} ms)",
        plugin.size / 1024,
        first_load.as_secs_f64() * 1e3,
        plugin.compile_time.as_secs_f64() * 1e3,
        cached_load.as_secs_f64() * 1e3,
        again.compile_time.as_secs_f64() * 1e3,
    );

    let schema = batch(1).schema();
    let mut stage = WasmTransform::new(
        plugin,
        "bench",
        1,
        &serde_json::json!({}),
        &schema,
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    println!();
    println!("| rows per batch | native rows/s | wasm end to end rows/s | wasm / native |");
    println!("| ---: | ---: | ---: | ---: |");
    for rows in [1024, 8 * 1024, 64 * 1024] {
        let input = batch(rows);
        let want = native(&input);
        let got = stage.call(&input).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, want, "the plugin and the native loop disagree");
        let budget = Duration::from_millis(1500);
        let n = time(budget, || {
            black_box(native(black_box(&input)));
        });
        let w = time(budget, || {
            black_box(
                stage
                    .call(black_box(&input))
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        });
        let (n_rate, w_rate) = (rows as f64 / n.as_secs_f64(), rows as f64 / w.as_secs_f64());
        println!(
            "| {rows} | {:.0} M | {:.0} M | {:.0} % |",
            n_rate / 1e6,
            w_rate / 1e6,
            100.0 * w_rate / n_rate
        );
    }
    let empty = batch(0);
    let per_call = time(Duration::from_millis(1500), || {
        black_box(
            stage
                .call(black_box(&empty))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    });
    println!();
    println!(
        "empty batch, end to end: {:.2} µs per call",
        per_call.as_secs_f64() * 1e6
    );
}
