//! Reading the desired state off the folders: the pipeline files (`*.toml`) and the plugins
//! (`*.wasm`, identified by content hash). Files are read through symlinks, so a symlink swap
//! (configuration management, Kubernetes' `..data`) is seen as the new content. Hidden files
//! and editors' backups (`.p.toml.swp`, `p.toml~`) are not pipelines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A pipeline file as it is on disk now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineText {
    /// The path in the pipelines folder.
    pub path: PathBuf,
    /// Its content.
    pub text: String,
}

/// A plugin file as it is on disk now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFile {
    /// The path in the plugins folder.
    pub path: PathBuf,
    /// SHA-256 of its bytes (hex).
    pub sha256: String,
}

/// What the folders hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Pipeline files, by path.
    pub pipelines: Vec<PipelineText>,
    /// Files that could not be read (path, why).
    pub unreadable: Vec<(PathBuf, String)>,
    /// Plugins by name (file stem).
    pub plugins: BTreeMap<String, PluginFile>,
    /// Why a folder could not be listed, if one could not.
    pub folder_errors: Vec<String>,
}

fn is_candidate(path: &Path, extension: &str) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && path.extension().and_then(|e| e.to_str()) == Some(extension)
}

/// Lists `dir`'s files with `extension`, following symlinks, sorted by path.
fn list(dir: &Path, extension: &str, errors: &mut Vec<String>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            errors.push(format!("cannot list {}: {err}", dir.display()));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| is_candidate(path, extension))
        // `metadata` follows symlinks: a dangling link is no file.
        .filter(|path| std::fs::metadata(path).is_ok_and(|m| m.is_file()))
        .collect();
    paths.sort();
    paths
}

/// Reads the plugins folder into `snapshot`.
fn scan_plugins(dir: &Path, snapshot: &mut Snapshot) {
    add_plugins(dir, snapshot, |_| true);
}

/// Reads (and hashes) the plugins of `dir` whose names `wanted` accepts into `snapshot`:
/// `weir run` reads only those its files name.
pub fn add_plugins(dir: &Path, snapshot: &mut Snapshot, wanted: impl Fn(&str) -> bool) {
    for path in list(dir, "wasm", &mut snapshot.folder_errors) {
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|name| wanted(name))
            .map(str::to_string)
        else {
            continue;
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let sha256 = crate::wasm::content_hash(&bytes);
                snapshot.plugins.insert(name, PluginFile { path, sha256 });
            }
            Err(err) => snapshot.unreadable.push((path, err.to_string())),
        }
    }
}

/// Reads both folders. A folder that cannot be listed holds nothing (and is reported in
/// `folder_errors`).
pub fn scan(pipelines_dir: &Path, plugins_dir: Option<&Path>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for path in list(pipelines_dir, "toml", &mut snapshot.folder_errors) {
        match std::fs::read_to_string(&path) {
            Ok(text) => snapshot.pipelines.push(PipelineText { path, text }),
            Err(err) => snapshot.unreadable.push((path, err.to_string())),
        }
    }
    if let Some(dir) = plugins_dir {
        scan_plugins(dir, &mut snapshot);
    }
    snapshot
}

/// A snapshot of explicitly named pipeline files (`weir run`, `weir check`), with the plugins
/// folder as it is when there is one.
pub fn read_files(files: &[PathBuf], plugins_dir: Option<&Path>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for path in files {
        match std::fs::read_to_string(path) {
            Ok(text) => snapshot.pipelines.push(PipelineText {
                path: path.clone(),
                text,
            }),
            Err(err) => snapshot.unreadable.push((path.clone(), err.to_string())),
        }
    }
    if let Some(dir) = plugins_dir.filter(|d| d.is_dir()) {
        scan_plugins(dir, &mut snapshot);
    }
    snapshot
}

/// The folders whose changes matter besides the two watched ones: for each pipeline file that
/// is a symlink, the folder of the file it points to (an in-place edit of the target shows up
/// there, not in the pipelines folder).
pub fn symlink_target_dirs(snapshot: &Snapshot) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = snapshot
        .pipelines
        .iter()
        .filter(|p| std::fs::symlink_metadata(&p.path).is_ok_and(|m| m.file_type().is_symlink()))
        .filter_map(|p| std::fs::canonicalize(&p.path).ok())
        .filter_map(|target| target.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_toml_files_count_and_symlinks_are_followed() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let pipelines = dir.path().join("pipelines");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&pipelines)?;
        std::fs::create_dir_all(&elsewhere)?;
        std::fs::write(pipelines.join("a.toml"), "a")?;
        std::fs::write(pipelines.join(".a.toml.swp"), "swap")?;
        std::fs::write(pipelines.join("a.toml~"), "backup")?;
        std::fs::write(pipelines.join("notes.txt"), "notes")?;
        std::fs::write(elsewhere.join("b.toml"), "b")?;
        std::os::unix::fs::symlink(elsewhere.join("b.toml"), pipelines.join("b.toml"))?;
        std::os::unix::fs::symlink(elsewhere.join("gone.toml"), pipelines.join("c.toml"))?;
        let snapshot = scan(&pipelines, None);
        let seen: Vec<(String, String)> = snapshot
            .pipelines
            .iter()
            .map(|p| {
                (
                    p.path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    p.text.clone(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("a.toml".to_string(), "a".to_string()),
                ("b.toml".into(), "b".into())
            ]
        );
        assert_eq!(
            symlink_target_dirs(&snapshot),
            [std::fs::canonicalize(&elsewhere)?]
        );
        Ok(())
    }
}
