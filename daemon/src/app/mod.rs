//! The process around the pipelines: `weir run` in the foreground ([`run`]) and `weir daemon`
//! ([`daemon`]): signals, the folders' watcher, the control socket and HTTP listener, systemd
//! notifications, the shutdown deadline. Nothing else in the library imports this module.

pub mod daemon;
pub mod progress_bars;
pub mod run;
pub mod settings;
mod systemd;
mod watch;

pub use run::{AppError, RunOptions, RunSummary, run};
