//! File source benchmark: a folder of CSV files (1 GiB by default, generated here on first run
//! and kept under `target/bench-data/`, never committed) read by `file → null` under
//! `available_now`, through the real micro-batch loop and RocksDB checkpoint; then the same
//! columns from `datagen`, for comparison.
//!
//! Run: `cargo bench -p weir --bench file_source` (`WEIR_BENCH_CSV_MB=256` for a smaller
//! folder). Prints MB/s and rows/s; the numbers in BENCHMARKS.md come from this.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::config::Trigger;
use weir::engine::Pipeline;
use weir::sinks::NullSink;
use weir::sources::SourceContext;
use weir::state::{Checkpoint, RocksStore, SharedStore};

const FILE_MB: u64 = 64;
const SENSORS: [&str; 3] = ["sensor_1", "sensor_2", "sensor_3"];

/// Writes `mb` MiB of IoT readings as CSV files of 64 MiB; returns (bytes, rows).
fn generate(dir: &Path, mb: u64) -> std::io::Result<(u64, u64)> {
    let marker = dir.join("_complete");
    if let Ok(text) = std::fs::read_to_string(&marker)
        && let Some((bytes, rows)) = text.trim().split_once(' ')
        && let (Ok(bytes), Ok(rows)) = (bytes.parse(), rows.parse())
    {
        return Ok((bytes, rows));
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let (mut total, mut rows) = (0u64, 0u64);
    let t0: i64 = 1_795_482_540; // 2026-11-24T01:09:00Z
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let files = mb.div_ceil(FILE_MB);
    for f in 0..files {
        let path = dir.join(format!("readings-{f:04}.csv"));
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        let mut written = 0u64;
        out.write_all(b"time,sensor,value\n")?;
        while written < FILE_MB << 20 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let t = t0 + (rows / 30) as i64;
            let line = format!(
                "{},{},{}\n",
                chrono::DateTime::from_timestamp(t, 0)
                    .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                SENSORS[(rows % 3) as usize],
                state % 11
            );
            out.write_all(line.as_bytes())?;
            written += line.len() as u64;
            rows += 1;
        }
        out.flush()?;
        total += written + 18;
    }
    std::fs::write(&marker, format!("{total} {rows}"))?;
    Ok((total, rows))
}

fn run(name: &str, toml: &str, store: SharedStore, state_dir: &Path) -> (Duration, u64) {
    let plan = match weir::config::parse_pipeline(Path::new("/bench/p.toml"), toml) {
        Ok(plan) => plan,
        Err(err) => panic!("{err}"),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => panic!("runtime: {err}"),
    };
    runtime.block_on(async move {
        let ctx = SourceContext {
            pipeline: name.to_string(),
            checkpoint_id: "bench".into(),
            store: store.clone(),
            state_dir: state_dir.to_path_buf(),
        };
        let source = match weir::sources::build(&plan.source, &ctx) {
            Ok(source) => source,
            Err(err) => panic!("source: {err}"),
        };
        let pipeline = Pipeline::new(
            name,
            Trigger::AvailableNow,
            source,
            Vec::new(),
            vec![("null", Box::new(NullSink))],
            Checkpoint::new(store, name),
        );
        let started = Instant::now();
        let handle = pipeline.spawn();
        let monitor = handle.monitor.clone();
        handle.join().await;
        let rows = monitor.recent().iter().map(|b| b.num_input_rows).sum();
        (started.elapsed(), rows)
    })
}

fn main() {
    let mb: u64 = std::env::var("WEIR_BENCH_CSV_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-data")
        .join(format!("csv-{mb}mb"));
    let t = Instant::now();
    let (bytes, rows) = match generate(&data, mb) {
        Ok(x) => x,
        Err(err) => panic!("generating {}: {err}", data.display()),
    };
    println!(
        "data: {} ({} files, {:.0} MiB, {rows} rows; ready in {:.1}s)",
        data.display(),
        mb.div_ceil(FILE_MB),
        bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    let state = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("tempdir: {err}"),
    };
    let store: SharedStore = match RocksStore::open(state.path()) {
        Ok(store) => Arc::new(store),
        Err(err) => panic!("rocksdb: {err}"),
    };
    let columns = r#"
[[source.column]]
name = "time"
type = "timestamp"
{time}

[[source.column]]
name = "sensor"
type = "string"
{sensor}

[[source.column]]
name = "value"
type = "int"
{value}
"#;
    let file_toml = format!(
        "name = \"bench-file\"\n[source]\ntype = \"file\"\npath = \"{}\"\nformat = \"csv\"\nmax_bytes_per_trigger = \"256MiB\"\n{}\n[[sink]]\ntype = \"null\"\n",
        data.display(),
        columns
            .replace("{time}", "")
            .replace("{sensor}", "")
            .replace("{value}", "")
    );
    // Drop the page cache's advantage as far as a benchmark without root can: read once first.
    let (warm, _) = run(
        "bench-file-warmup",
        &file_toml.replace("bench-file", "bench-file-warmup"),
        store.clone(),
        state.path(),
    );
    let (took, read_rows) = run("bench-file", &file_toml, store.clone(), state.path());
    assert_eq!(read_rows, rows, "every row read once");
    println!(
        "file csv -> null: {:.0} MB/s ({:.0} MiB/s), {:.2} M rows/s, {:.1}s for {} rows (warm-up pass {:.1}s)",
        bytes as f64 / 1e6 / took.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64 / took.as_secs_f64(),
        rows as f64 / 1e6 / took.as_secs_f64(),
        took.as_secs_f64(),
        rows,
        warm.as_secs_f64()
    );

    // The same files with `time` left as a string: how much of the cost is parsing timestamps.
    let strings_toml = file_toml
        .replace("bench-file", "bench-file-strings")
        .replacen("type = \"timestamp\"", "type = \"string\"", 1);
    let (took, _) = run(
        "bench-file-strings",
        &strings_toml,
        store.clone(),
        state.path(),
    );
    println!(
        "file csv -> null, time as a string column: {:.0} MB/s, {:.2} M rows/s",
        bytes as f64 / 1e6 / took.as_secs_f64(),
        rows as f64 / 1e6 / took.as_secs_f64()
    );

    let datagen_toml = format!(
        "name = \"bench-datagen\"\n[source]\ntype = \"datagen\"\nrows_per_second = 1000000000\nrows = {rows}\nmax_rows_per_batch = 4000000\n{}\n[[sink]]\ntype = \"null\"\n",
        columns
            .replace("{time}", "expr = \"now\"")
            .replace(
                "{sensor}",
                "values = [\"sensor_1\", \"sensor_2\", \"sensor_3\"]"
            )
            .replace("{value}", "min = 0\nmax = 10\nrandom = true")
    );
    let (took, gen_rows) = run("bench-datagen", &datagen_toml, store, state.path());
    assert_eq!(gen_rows, rows);
    println!(
        "datagen -> null, same columns and rows: {:.2} M rows/s, {:.1}s",
        rows as f64 / 1e6 / took.as_secs_f64(),
        took.as_secs_f64()
    );
}
