//! Where `./scripts/build-plugins` put the compiled plugins, checked to be newer than every
//! source they are built from, so that no test runs a stale plugin without saying so. Shared
//! (through `#[path]`) by the unit tests, the end-to-end tests and the benchmarks.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The repository's root: the parent of the crate's folder as cargo names it to the running
/// test or benchmark (so a binary built in a shared target folder from another checkout
/// looks at this one), or as it was at compile time.
fn repo_root() -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    crate_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The newest modification time of the files plugins are built from (sources, manifests,
/// lock files, the WIT contract) under `dir`, and which file it is.
fn newest_source(dir: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            // Build output, when someone built inside the folder.
            if name != "target" && !name.starts_with('.') {
                newest_source(&path, newest);
            }
            continue;
        }
        let source = name.ends_with(".rs")
            || name.ends_with(".wit")
            || name == "Cargo.toml"
            || name == "Cargo.lock";
        if !source {
            continue;
        }
        if let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            && newest.as_ref().is_none_or(|(t, _)| modified > *t)
        {
            *newest = Some((modified, path));
        }
    }
}

/// The oldest modification time of the `.wasm` files in `dir`, and which file it is.
fn oldest_plugin(dir: &Path, oldest: &mut Option<(SystemTime, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm")
            && let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            && oldest.as_ref().is_none_or(|(t, _)| modified < *t)
        {
            *oldest = Some((modified, path));
        }
    }
}

/// `target/plugins` under `target` (the cargo target folder): the example plugins, and the
/// test fixtures in `fixtures/`. Panics, saying what to run, when they are missing or when a
/// source under `plugins/` or `plugin-sdk/` changed after they were built.
pub fn built_plugins_in(target: &Path) -> PathBuf {
    let dir = target.join("plugins");
    assert!(
        dir.join("word_split.wasm").is_file() && dir.join("fixtures/trap.wasm").is_file(),
        "no plugins in {}: run ./scripts/build-plugins first",
        dir.display()
    );
    let mut newest = None;
    let root = repo_root();
    newest_source(&root.join("plugins"), &mut newest);
    newest_source(&root.join("plugin-sdk"), &mut newest);
    let mut oldest = None;
    oldest_plugin(&dir, &mut oldest);
    oldest_plugin(&dir.join("fixtures"), &mut oldest);
    if let (Some((source_time, source)), Some((built_time, built))) = (newest, oldest) {
        assert!(
            built_time >= source_time,
            "{} is older than {}: run ./scripts/build-plugins again",
            built.display(),
            source.display()
        );
    }
    dir
}
