//! The WebAssembly plugin host: loads plugin components, runs them sandboxed and bounded, and
//! adapts them to the engine (a transform stage is an [`Operator`](crate::engine::Operator); an
//! aggregate is an [`AggregateInstance`] the window operator calls).
//!
//! Only this module imports wasmtime. The contract is `plugin-sdk/wit/plugin.wit`; Arrow data
//! crosses it with `weir_plugin_sdk::wire`, once per call and never per row.

mod aggregate;
mod catalog;
mod compiles;
mod error;
mod host;
mod instance;
mod listing;
mod log;
mod plugin;
mod sandbox;
mod transform;
mod user_aggregates;

pub use aggregate::{AggregateInstance, AggregatePlugin};
pub use catalog::PluginCatalog;
pub use compiles::{Background, DEFAULT_COMPILE_GRACE};
pub use error::{CallFailure, PluginError};
pub use host::{DEFAULT_CALL_TIMEOUT, DEFAULT_MEMORY_LIMIT, Limits, PluginHost, content_hash};
pub use listing::{PluginListing, list_plugins};
pub use plugin::{Plugin, PluginInfo, PluginKind};
pub use transform::{WasmTransform, transform_stage_id};
pub use user_aggregates::PluginAggregates;

/// The plugin contract version this host implements (`plugin-sdk/wit/plugin.wit`). A plugin
/// is accepted when its major version is the same and its minor version is not newer.
pub const CONTRACT_VERSION: &str = weir_plugin_sdk::CONTRACT_VERSION;

#[cfg(test)]
pub(crate) mod testing;
