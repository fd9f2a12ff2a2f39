//! For unit tests: where the build command put the compiled example and fixture plugins.

use std::path::PathBuf;

#[path = "../../../tests/built_plugins.rs"]
mod built_plugins;

/// `$CARGO_TARGET_DIR/plugins` (or `target/plugins` in the repository), checked to be newer
/// than the plugins' sources.
pub(crate) fn plugins_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::test_support::crate_dir().join("../target"));
    built_plugins::built_plugins_in(&target)
}
