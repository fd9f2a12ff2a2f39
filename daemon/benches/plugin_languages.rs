//! The same transform and aggregate written in Rust, Python and JavaScript, through the same
//! host calls a pipeline makes: `compute` (`vw = value * weight`, doubles with nulls) and
//! `weighted_avg(value, weight)` over 100 groups, at 64k-row batches; the per-call overhead
//! (a one-row batch); each component's size, its first load (compile) and its load from the
//! compile cache (a restart); and how long `weir plugin build` takes.
//!
//! `./scripts/build-plugins && cargo bench -p weir --bench plugin_languages` (a plain binary,
//! not a test). It builds the Python and JavaScript plugins from `plugins/python/` and
//! `plugins/js/` itself, with the tools `./scripts/setup` installs.

mod common;

use arrow::array::{ArrayRef, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use common::rust_plugins;
use common::time;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::engine::PluginCosts;
use weir::wasm::{AggregatePlugin, Limits, PluginHost, WasmTransform};

const ROWS: usize = 64 * 1024;
const GROUPS: u32 = 100;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Generated doubles (a fixed linear congruential sequence), every `null_every`th one null.
fn doubles(seed: u64, scale: f64, null_every: usize) -> ArrayRef {
    let mut x = seed;
    Arc::new(Float64Array::from_iter((0..ROWS).map(|i| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        (i % null_every != 0).then_some(unit * scale)
    })))
}

fn input() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("value", DataType::Float64, true),
        Field::new("weight", DataType::Float64, true),
    ]));
    RecordBatch::try_new(schema, vec![doubles(1, 200.0, 10), doubles(2, 10.0, 20)])
        .unwrap_or_else(|e| panic!("{e}"))
}

struct Figures {
    language: &'static str,
    build: Option<Duration>,
    size: u64,
    first_load: Duration,
    cached_load: Duration,
    transform_rows_per_s: f64,
    aggregate_rows_per_s: f64,
    per_call: Duration,
}

fn measure(language: &'static str, dir: &Path, build: Option<Duration>) -> Figures {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let first = PluginHost::new(dir, Some(cache.path())).unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let compute = first.load("compute").unwrap_or_else(|e| panic!("{e}"));
    let first_load = t.elapsed();
    let restarted = PluginHost::new(dir, Some(cache.path())).unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let compute = {
        let again = restarted.load("compute").unwrap_or_else(|e| panic!("{e}"));
        drop(compute);
        again
    };
    let cached_load = t.elapsed();
    let size = compute.size;

    let batch = input();
    let config =
        serde_json::json!({ "output": "vw", "left": "value", "op": "*", "right": "weight" });
    let mut stage = WasmTransform::new(
        compute,
        "bench",
        1,
        &config,
        &batch.schema(),
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = stage.call(&batch).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.num_rows(), ROWS);
    let per_batch = time(Duration::from_secs(3), 3, || {
        black_box(
            stage
                .call(black_box(&batch))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    });
    let one_row = batch.slice(0, 1);
    let per_call = time(Duration::from_secs(2), 20, || {
        black_box(
            stage
                .call(black_box(&one_row))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    });

    let weighted = restarted
        .load("weighted_avg")
        .unwrap_or_else(|e| panic!("{e}"));
    let aggregate =
        AggregatePlugin::new(weighted, "bench", &serde_json::json!({}), Limits::default())
            .unwrap_or_else(|e| panic!("{e}"));
    let mut instance = aggregate.instance(Arc::new(PluginCosts::new("weighted_avg", 0)));
    let groups: Vec<u32> = (0..ROWS as u32).map(|i| i % GROUPS).collect();
    let fresh = vec![Vec::new(); GROUPS as usize];
    let columns = batch.columns().to_vec();
    let per_update = time(Duration::from_secs(3), 3, || {
        black_box(
            instance
                .update(&fresh, &columns, &groups)
                .unwrap_or_else(|e| panic!("{e}")),
        );
    });

    Figures {
        language,
        build,
        size,
        first_load,
        cached_load,
        transform_rows_per_s: ROWS as f64 / per_batch.as_secs_f64(),
        aggregate_rows_per_s: ROWS as f64 / per_update.as_secs_f64(),
        per_call,
    }
}

/// Builds `compute` and `weighted_avg` of `plugins/<language>/` into `out`; the mean build time.
fn build(language: &str, out: &Path) -> Duration {
    let started = Instant::now();
    for plugin in ["compute", "weighted_avg"] {
        let dir = repo_root().join("plugins").join(language).join(plugin);
        weir::develop::build(&dir, out).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    started.elapsed() / 2
}

fn main() {
    let rust = rust_plugins();
    assert!(
        rust.join("compute.wasm").is_file(),
        "no {}: run ./scripts/build-plugins first",
        rust.join("compute.wasm").display()
    );
    let built = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (python, js) = (built.path().join("python"), built.path().join("js"));
    let python_build = build("python", &python);
    let js_build = build("js", &js);

    let figures = [
        measure("Rust", &rust, None),
        measure("Python", &python, Some(python_build)),
        measure("JavaScript", &js, Some(js_build)),
    ];
    let rust_rates = (
        figures[0].transform_rows_per_s,
        figures[0].aggregate_rows_per_s,
    );
    println!(
        "| language | compute rows/s (vs Rust) | weighted_avg rows/s (vs Rust) | one-row call | component | first load | cached load | weir plugin build |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for f in &figures {
        println!(
            "| {} | {:.2} M ({:.1} %) | {:.2} M ({:.1} %) | {:.0} µs | {:.1} MB | {:.1} s | {:.0} ms | {} |",
            f.language,
            f.transform_rows_per_s / 1e6,
            100.0 * f.transform_rows_per_s / rust_rates.0,
            f.aggregate_rows_per_s / 1e6,
            100.0 * f.aggregate_rows_per_s / rust_rates.1,
            f.per_call.as_secs_f64() * 1e6,
            f.size as f64 / 1e6,
            f.first_load.as_secs_f64(),
            f.cached_load.as_secs_f64() * 1e3,
            f.build.map_or(
                "cargo (see ./scripts/build-plugins)".to_string(),
                |b| format!("{:.1} s", b.as_secs_f64())
            ),
        );
    }
}
