//! The JavaScript SDK, compiled into weir: `weir plugin build` writes it where a JavaScript
//! plugin's `import ... from "weir-plugin"` finds it (`node_modules/weir-plugin/`), for the
//! plugin's tests and for the bundle componentize-js makes into a component.

use super::{DevelopError, io};
use std::path::Path;

/// The `weir-plugin` package's files, by path inside the package.
const SDK: [(&str, &str); 12] = [
    (
        "package.json",
        include_str!("../../../plugin-sdk/js/package.json"),
    ),
    (
        "src/aggregate.js",
        include_str!("../../../plugin-sdk/js/src/aggregate.js"),
    ),
    (
        "src/batch.js",
        include_str!("../../../plugin-sdk/js/src/batch.js"),
    ),
    (
        "src/calls.js",
        include_str!("../../../plugin-sdk/js/src/calls.js"),
    ),
    (
        "src/component.js",
        include_str!("../../../plugin-sdk/js/src/component.js"),
    ),
    (
        "src/flatbuf.js",
        include_str!("../../../plugin-sdk/js/src/flatbuf.js"),
    ),
    (
        "src/index.js",
        include_str!("../../../plugin-sdk/js/src/index.js"),
    ),
    (
        "src/location.js",
        include_str!("../../../plugin-sdk/js/src/location.js"),
    ),
    (
        "src/registry.js",
        include_str!("../../../plugin-sdk/js/src/registry.js"),
    ),
    (
        "src/schema.js",
        include_str!("../../../plugin-sdk/js/src/schema.js"),
    ),
    (
        "src/transform.js",
        include_str!("../../../plugin-sdk/js/src/transform.js"),
    ),
    (
        "src/wire.js",
        include_str!("../../../plugin-sdk/js/src/wire.js"),
    ),
];

/// Writes the `weir-plugin` package into `dir/node_modules/weir-plugin/`.
pub fn write(dir: &Path) -> Result<(), DevelopError> {
    let package = dir.join("node_modules/weir-plugin");
    for (name, text) in SDK {
        let path = package.join(name);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(io(folder))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}

/// The paths of the SDK's files (for the test that none is missing).
#[cfg(test)]
pub fn file_names() -> Vec<&'static str> {
    SDK.iter().map(|(name, _)| *name).collect()
}
