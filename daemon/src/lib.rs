//! weir: a stream processor daemon with Spark Structured Streaming's model.
//!
//! The library holds everything; the `weir` binary (`main.rs`) only parses flags and calls in.
//! Read `ARCHITECTURE.md` at the repository root for the code map.

pub mod admin;
pub mod app;
pub mod assemble;
pub mod config;
pub mod cores;
pub mod develop;
pub mod durable;
pub mod engine;
pub mod kafka;
pub mod sinks;
pub mod sources;
pub mod state;
pub mod top;
pub mod topology;
pub mod wasm;
pub mod window;

#[cfg(test)]
mod test_support {
    use std::path::PathBuf;

    /// The crate's folder as cargo names it to the running test, so that a test binary built
    /// in a shared target folder from another checkout reads this checkout's files; as it was
    /// at compile time when run outside cargo.
    pub(crate) fn crate_dir() -> PathBuf {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
    }
}
