//! Engine benchmark: `rate_micro_batch → null` through the real micro-batch loop with a real
//! RocksDB checkpoint (two synced writes per batch), at several batch sizes.
//!
//! Run: `cargo bench -p weir --bench engine` (add `-- --quick` for a short run). Prints rows/s
//! and batch latency percentiles; the numbers in BENCHMARKS.md come from this.

use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::config::{RateMicroBatchSpec, Trigger};
use weir::engine::Pipeline;
use weir::sinks::NullSink;
use weir::sources::RateMicroBatchSource;
use weir::state::{Checkpoint, RocksStore, SharedStore};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn run(rows_per_batch: u64, duration: Duration, store: SharedStore, name: &str) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => panic!("runtime: {err}"),
    };
    let source = RateMicroBatchSource::new(RateMicroBatchSpec {
        rows_per_batch,
        start_timestamp_ms: 0,
        advance_millis_per_batch: 1000,
    });
    let pipeline = Pipeline::new(
        name,
        Trigger::BackToBack,
        Box::new(source),
        Vec::new(),
        vec![("null", Box::new(NullSink))],
        Checkpoint::new(store, name),
    );
    let (batches, wall) = runtime.block_on(async move {
        let handle = pipeline.spawn();
        let started = Instant::now();
        tokio::time::sleep(duration).await;
        handle.stop();
        let monitor = handle.monitor.clone();
        handle.join().await;
        (monitor.recent(), started.elapsed())
    });
    // The monitor keeps the last 100 batches; skip the first few of a short run (empty batch 0).
    let steady: Vec<_> = batches.iter().skip(3).collect();
    let rows: u64 = steady.iter().map(|b| b.num_input_rows).sum();
    let busy_ms: f64 = steady.iter().map(|b| b.duration_ms.trigger_execution).sum();
    let mut latencies: Vec<f64> = steady
        .iter()
        .map(|b| b.duration_ms.trigger_execution)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let commit: f64 = steady
        .iter()
        .map(|b| b.duration_ms.commit_offsets + b.duration_ms.wal_commit)
        .sum::<f64>()
        / steady.len().max(1) as f64;
    println!(
        "rows/batch {:>8} | batches {:>6} | {:>12.0} rows/s | batch p50 {:>7.3} ms  p99 {:>7.3} ms | plan+commit (2 fsyncs) {:>6.3} ms/batch | wall {:.1}s",
        rows_per_batch,
        steady.len(),
        rows as f64 * 1000.0 / busy_ms.max(f64::MIN_POSITIVE),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        commit,
        wall.as_secs_f64(),
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let duration = if quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(8)
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("tempdir: {err}"),
    };
    let store: SharedStore = match RocksStore::open(dir.path()) {
        Ok(store) => Arc::new(store),
        Err(err) => panic!("rocksdb: {err}"),
    };
    println!(
        "rate_micro_batch -> null sink, back-to-back trigger, RocksDB checkpoint synced per batch"
    );
    for (i, rows) in [1u64, 8_192, 65_536, 1_048_576, 4_194_304]
        .into_iter()
        .enumerate()
    {
        run(rows, duration, store.clone(), &format!("bench-{i}"));
    }
}
