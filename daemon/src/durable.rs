//! Making file-system changes durable: a rename or a new folder survives a power loss only once
//! the directory that lists it has been synced too, not just the file.

use std::io;
use std::path::Path;

/// Syncs a directory's entries (its list of names) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, and syncs each new folder's parent, so the folders
/// are there after a power loss.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    // The ancestors that are missing, outermost first.
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    std::fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Renames `from` to `to` and syncs both directories, so the move is neither undone nor
/// doubled (the file in both places) after a power loss.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    let (from_dir, to_dir) = (from.parent(), to.parent());
    if let Some(dir) = to_dir.filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir)?;
    }
    if let Some(dir) = from_dir.filter(|d| !d.as_os_str().is_empty() && Some(*d) != to_dir) {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_folders_are_created_and_a_rename_moves_the_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep)?;
        assert!(deep.is_dir());
        create_dir_all(&deep)?;
        std::fs::write(dir.path().join("f"), "x")?;
        rename(&dir.path().join("f"), &deep.join("f"))?;
        assert!(!dir.path().join("f").exists());
        assert_eq!(std::fs::read_to_string(deep.join("f"))?, "x");
        Ok(())
    }
}
