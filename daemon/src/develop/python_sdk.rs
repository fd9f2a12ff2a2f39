//! The Python SDK and the WIT contract, compiled into weir: `weir plugin build` writes them
//! next to a Python plugin for componentize-py, and runs the plugin's tests against them.

use super::{DevelopError, io};
use std::path::Path;

/// The `weir_plugin` package's files.
const SDK: [(&str, &str); 11] = [
    (
        "__init__.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/__init__.py"),
    ),
    (
        "aggregate.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/aggregate.py"),
    ),
    (
        "batch.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/batch.py"),
    ),
    (
        "calls.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/calls.py"),
    ),
    (
        "component_aggregate.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/component_aggregate.py"),
    ),
    (
        "component_transform.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/component_transform.py"),
    ),
    (
        "flatbuf.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/flatbuf.py"),
    ),
    (
        "registry.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/registry.py"),
    ),
    (
        "schema.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/schema.py"),
    ),
    (
        "transform.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/transform.py"),
    ),
    (
        "wire.py",
        include_str!("../../../plugin-sdk/python/weir_plugin/wire.py"),
    ),
];

/// The plugin contract.
pub const WIT: &str = include_str!("../../../plugin-sdk/wit/plugin.wit");

/// Writes the `weir_plugin` package into `dir/weir_plugin/` and the contract into
/// `dir/wit/plugin.wit`.
pub fn write(dir: &Path) -> Result<(), DevelopError> {
    let package = dir.join("weir_plugin");
    std::fs::create_dir_all(&package).map_err(io(&package))?;
    for (name, text) in SDK {
        let path = package.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    let wit = dir.join("wit");
    std::fs::create_dir_all(&wit).map_err(io(&wit))?;
    let path = wit.join("plugin.wit");
    std::fs::write(&path, WIT).map_err(io(&path))
}

/// The names of the SDK's files (for the test that none is missing).
#[cfg(test)]
pub fn file_names() -> Vec<&'static str> {
    SDK.iter().map(|(name, _)| *name).collect()
}
