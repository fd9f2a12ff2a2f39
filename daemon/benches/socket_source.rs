//! Socket source benchmark: three producers on loopback send lines as fast as they can to a
//! `listen` socket source; every line is logged to RocksDB (synced, one write per burst) before
//! a batch may read it, and read by `socket → null` through the real micro-batch loop.
//!
//! Run: `cargo bench -p weir --bench socket_source` (`WEIR_BENCH_LINES=1000000` lines per
//! producer, default 2 M). Prints lines/s end to end and how many synced log writes it took.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::config::{OnError, SocketMode, SocketSpec, Trigger};
use weir::engine::Pipeline;
use weir::sinks::NullSink;
use weir::sources::{SocketSource, SourceContext};
use weir::state::{Checkpoint, RocksStore, SharedStore};

fn main() {
    let per_producer: u64 = std::env::var("WEIR_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("tempdir: {err}"),
    };
    let store: SharedStore = match RocksStore::open(dir.path()) {
        Ok(store) => Arc::new(store),
        Err(err) => panic!("rocksdb: {err}"),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => panic!("runtime: {err}"),
    };
    let total = 3 * per_producer;
    let (took, rows, batches) = runtime.block_on(async {
        let ctx = SourceContext {
            pipeline: "bench-socket".into(),
            checkpoint_id: "bench".into(),
            store: store.clone(),
            state_dir: dir.path().to_path_buf(),
        };
        let spec = SocketSpec {
            mode: SocketMode::Listen {
                bind: "127.0.0.1:0".into(),
            },
            include_timestamp: false,
            max_line_bytes: 1 << 20,
            max_rows_per_batch: None,
            on_error: OnError::Fail,
            max_connections: weir::config::DEFAULT_MAX_CONNECTIONS,
            max_pending_bytes: weir::config::DEFAULT_MAX_PENDING_BYTES,
            max_log_bytes: weir::config::DEFAULT_MAX_LOG_BYTES,
        };
        let source = match SocketSource::open(spec, &ctx) {
            Ok(source) => source,
            Err(err) => panic!("source: {err}"),
        };
        let addr = source.local_addr.unwrap_or_else(|| panic!("no address"));
        let pipeline = Pipeline::new(
            "bench-socket",
            Trigger::BackToBack,
            Box::new(source),
            Vec::new(),
            vec![("null", Box::new(NullSink))],
            Checkpoint::new(store.clone(), "bench-socket"),
        );
        let handle = pipeline.spawn();
        let monitor = handle.monitor.clone();
        let started = Instant::now();
        let producers: Vec<_> = (0..3)
            .map(|p| {
                std::thread::spawn(move || -> std::io::Result<()> {
                    let stream = std::net::TcpStream::connect(addr)?;
                    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stream);
                    for i in 0..per_producer {
                        writeln!(out, "producer {p} sends line number {i:010}")?;
                    }
                    out.flush()
                })
            })
            .collect();
        for p in producers {
            if let Ok(Err(err)) = p.join() {
                panic!("producer: {err}");
            }
        }
        let mut rows = 0;
        let mut batches = 0;
        while rows < total && started.elapsed() < Duration::from_secs(300) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            // The end offset of the last batch is the number of lines read so far.
            if let Some(last) = monitor.last() {
                batches = last.batch_id;
                rows = last.end_offset["lines"].as_u64().unwrap_or(0);
            }
        }
        let took = started.elapsed();
        handle.stop();
        handle.join().await;
        (took, rows, batches)
    });
    assert_eq!(rows, total, "every line read once");
    let log = weir::sources::SocketLog::new(store, "bench-socket");
    let bytes = total * "producer 0 sends line number 0000000000\n".len() as u64;
    println!(
        "socket (listen, 3 producers) -> null: {:.2} M lines/s, {:.0} MB/s, {:.1}s for {} lines of 40 bytes in {} batches; {} lines logged",
        total as f64 / 1e6 / took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64(),
        took.as_secs_f64(),
        total,
        batches,
        log.next_seq().unwrap_or(0),
    );
}
