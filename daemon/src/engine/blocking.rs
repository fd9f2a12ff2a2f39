//! Running synchronous work (RocksDB, file writes, wasm calls, batch computation) from the async
//! micro-batch loop without stalling the runtime's other tasks.

/// Runs `f` on this thread, telling a multi-threaded tokio runtime to move its other tasks
/// elsewhere meanwhile. On a current-thread runtime (tests with paused time) it just runs `f`.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
