//! `weir plugins DIR`: every `.wasm` file in a folder, loaded and described, or the reason it
//! cannot be loaded.

use super::error::PluginError;
use super::host::PluginHost;
use super::plugin::Plugin;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One file of a plugins folder.
#[derive(Debug)]
pub struct PluginListing {
    /// The file.
    pub path: PathBuf,
    /// Its size, bytes (0 if unreadable).
    pub size: u64,
    /// The loaded plugin, or why it cannot be loaded.
    pub plugin: Result<Arc<Plugin>, PluginError>,
}

/// Loads every `*.wasm` file directly in `dir`, in name order.
pub fn list_plugins(host: &PluginHost, dir: &Path) -> std::io::Result<Vec<PluginListing>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| PluginListing {
            size: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            plugin: host.load_file(&path),
            path,
        })
        .collect())
}
