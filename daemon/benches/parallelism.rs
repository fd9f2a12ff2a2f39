//! Pipelines on one task and on every core: each is a pipeline file, prepared and opened as
//! `weir run` and the daemon do it (`assemble::prepare`, `assemble::open`), run through the
//! real micro-batch loop with a real RocksDB checkpoint, once with `tasks_per_daemon = 1` and
//! once per larger number up to the machine's cores. Prints rows/s, where a batch's time goes,
//! and the ratio to one task.
//!
//! - `words`: datagen lines of six random words → `word_split` → null: CPU-bound in the plugin.
//! - `t1`: Spark's stateless shape (keep the even values, double them) with the example
//!   plugins: `compute` → `filter` → `compute`, over a `long` column.
//! - `t2`: the seed's windowed average (datagen → aggregation → null): the source's chunks and
//!   the aggregation's grouping of them run on the tasks, the aggregation's updates in order.
//!
//! It allocates with mimalloc, as the `weir` binary does.
//!
//! `./scripts/build-plugins && cargo bench -p weir --bench parallelism` (a plain binary, not a
//! test; `-- --quick` for a short run, `-- NAME` for one pipeline).

mod common;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use common::rust_plugins;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::assemble::{Environment, PrepareContext, open, prepare};
use weir::config::parse_pipeline;
use weir::cores::machine_cores;
use weir::engine::Durations;
use weir::state::{RocksStore, SharedStore};
use weir::wasm::{Limits, PluginCatalog, PluginHost};

const SOURCE: &str = r#"trigger = "available_now"
[parallelism]
tasks_per_daemon = TASKS

[source]
type = "datagen"
rows_per_second = 1000000
rows = 1000000000
max_rows_per_batch = 1048576
start_timestamp = 1700000000000
"#;

const WORDS: &str = r#"
[[source.column]]
name = "id"
type = "long"

[[source.column]]
name = "line"
type = "string"
template = "\\w \\w \\w \\w \\w \\w"

[[transform]]
plugin = "word_split"
config = { column = "line", output = "word" }

[[sink]]
type = "null"
"#;

const T1: &str = r#"
[[source.column]]
name = "timestamp"
type = "timestamp"
expr = "now"

[[source.column]]
name = "value"
type = "long"

[[transform]]
plugin = "compute"
config = { output = "parity", left = "value", op = "%", right = 2 }

[[transform]]
plugin = "filter"
config = { column = "parity", op = "==", value = 0 }

[[transform]]
plugin = "compute"
config = { output = "doubled", left = "value", op = "*", right = 2 }

[[sink]]
type = "null"
"#;

const T2: &str = r#"
[[source.column]]
name = "time"
type = "timestamp"
expr = "now"

[[source.column]]
name = "sensor"
type = "string"
values = ["sensor_0", "sensor_1", "sensor_2"]

[[source.column]]
name = "value"
type = "long"
min = 0
max = 10
random = true

[aggregate]
group_by = ["sensor"]
window = { column = "time", size = "10s" }
watermark = "10s"
functions = [{ fn = "avg", column = "value" }]

[[sink]]
type = "null"
"#;

/// Rows per second of busy time over the steady batches of a `duration` run on `tasks`.
fn run(catalog: &PluginCatalog, name: &str, body: &str, tasks: usize, duration: Duration) -> f64 {
    let output_mode = if body.contains("[aggregate]") {
        "output_mode = \"update\"\n"
    } else {
        ""
    };
    let text = format!(
        "name = \"{name}\"\n{output_mode}{}{body}",
        SOURCE.replace("TASKS", &tasks.to_string())
    );
    let plan =
        parse_pipeline(Path::new("bench.toml"), &text).unwrap_or_else(|d| panic!("{name}: {d}"));
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store: SharedStore =
        Arc::new(RocksStore::open(state.path()).unwrap_or_else(|e| panic!("{e}")));
    let prepared = prepare(
        plan,
        PrepareContext {
            plugins: Some(catalog),
            store: Some(&store),
            limits: Limits::default(),
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let env = Environment {
        store,
        state_dir: state.path().to_path_buf(),
        label_console: false,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let batches = runtime.block_on(async move {
        let pipeline = open(&prepared, &env).unwrap_or_else(|e| panic!("{e}"));
        let handle = pipeline.spawn();
        tokio::time::sleep(duration).await;
        handle.stop();
        let monitor = handle.monitor.clone();
        handle.join().await;
        monitor.recent()
    });
    // Skip the empty batch 0 and the first batches (instances made, caches warmed).
    let steady: Vec<_> = batches.iter().skip(3).collect();
    let rows: u64 = steady.iter().map(|b| b.num_input_rows).sum();
    let busy_ms: f64 = steady.iter().map(|b| b.duration_ms.trigger_execution).sum();
    let per_second = rows as f64 * 1000.0 / busy_ms.max(f64::MIN_POSITIVE);
    let mean = |phase: fn(&Durations) -> f64| {
        steady.iter().map(|b| phase(&b.duration_ms)).sum::<f64>() / steady.len().max(1) as f64
    };
    println!(
        "{name} | tasks {tasks} | {:>3} batches | {:>6.1} M rows/s | per batch: read {:.1} ms, stages {:.1} ms, sink {:.1} ms, plan and commit {:.1} ms",
        steady.len(),
        per_second / 1e6,
        mean(|d| d.get_batch),
        mean(|d| d.process),
        mean(|d| d.add_batch),
        mean(|d| d.wal_commit + d.commit_offsets),
    );
    per_second
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let duration = Duration::from_secs(if quick { 5 } else { 20 });
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let host =
        PluginHost::new(rust_plugins(), Some(cache.path())).unwrap_or_else(|e| panic!("{e}"));
    let catalog = PluginCatalog::from_folder(host);
    let cores = machine_cores();
    println!("1 Mi rows a batch (datagen: 32 chunks of 32 Ki rows), {cores} cores");
    let started = Instant::now();
    for (name, body) in [("words", WORDS), ("t1", T1), ("t2", T2)] {
        if !only.is_empty() && !only.iter().any(|o| o.as_str() == name) {
            continue;
        }
        let one = run(&catalog, name, body, 1, duration);
        for tasks in 2..=cores.max(2) {
            let many = run(&catalog, name, body, tasks, duration);
            println!("{name} | tasks {tasks} / tasks 1: {:.2}×", many / one);
        }
    }
    println!("({:.0} s)", started.elapsed().as_secs_f64());
}
