//! For unit tests: where the build command put the compiled example and fixture plugins.

use std::path::PathBuf;

/// `$CARGO_TARGET_DIR/plugins` (or `target/plugins` in the repository).
pub(crate) fn plugins_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("plugins");
    assert!(
        dir.join("word_split.wasm").is_file(),
        "no plugins in {}: run ./scripts/build-plugins first",
        dir.display()
    );
    dir
}
