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
