//! Watching the pipelines and plugins folders (and the folders that symlinked pipeline files
//! point into). Any event in them means "something may have changed": the daemon waits until
//! the folders have been quiet for the debounce period and then reloads, which reads the
//! folders whole and compares contents. So no event needs interpreting, and every editor's way
//! of saving (write to a temporary file and rename, truncate and write, a burst of writes, a
//! symlink swap) comes down to one reload of the final content.
//!
//! Folders are watched, never files: a watch on a file is lost when an editor renames another
//! file over it. A folder that is deleted and made again is watched again at the next rescan.

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// The folders' watcher; events arrive on the receiver given to [`FolderWatch::new`].
pub struct FolderWatch {
    watcher: Option<RecommendedWatcher>,
    sender: mpsc::UnboundedSender<()>,
    /// Watched folders, with the identity (device, inode) they had when the watch was set.
    watched: BTreeSet<(PathBuf, Option<(u64, u64)>)>,
}

impl std::fmt::Debug for FolderWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatch")
            .field("watched", &self.watched)
            .finish()
    }
}

fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

impl FolderWatch {
    /// A watcher whose events are sent (as `()`) on `sender`.
    pub fn new(sender: mpsc::UnboundedSender<()>) -> FolderWatch {
        FolderWatch {
            watcher: None,
            sender,
            watched: BTreeSet::new(),
        }
    }

    /// Watches exactly `dirs` (those that exist), re-creating the watches when the set
    /// changed or a folder was replaced by another one at the same path.
    pub fn watch(&mut self, dirs: &[PathBuf]) {
        let wanted: BTreeSet<(PathBuf, Option<(u64, u64)>)> = dirs
            .iter()
            .filter(|d| d.is_dir())
            .map(|d| (d.clone(), identity(d)))
            .collect();
        if wanted == self.watched && self.watcher.is_some() {
            return;
        }
        let sender = self.sender.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            match event {
                Ok(event) if event.kind.is_access() => {}
                // An error (a queue overflow) may have hidden a change: reload to be sure.
                _ => {
                    let _ = sender.send(());
                }
            }
        });
        let mut watcher = match watcher {
            Ok(watcher) => watcher,
            Err(err) => {
                tracing::warn!(
                    "cannot watch folders ({err}); changes are picked up by the periodic rescan only"
                );
                self.watcher = None;
                return;
            }
        };
        for (dir, _) in &wanted {
            if let Err(err) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(
                    "cannot watch {} ({err}); its changes are picked up by the periodic rescan only",
                    dir.display()
                );
            }
        }
        self.watcher = Some(watcher);
        self.watched = wanted;
    }
}

/// The quiet period after file events: each event pushes the reload back to `quiet` after it,
/// so a burst of events (an editor's several writes) makes one reload, `quiet` after the last.
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    due: Option<tokio::time::Instant>,
}

impl Debounce {
    /// No reload due.
    pub fn new() -> Debounce {
        Debounce { due: None }
    }

    /// An event came: the reload is due `quiet` from now.
    pub fn poke(&mut self, quiet: std::time::Duration) {
        self.due = Some(tokio::time::Instant::now() + quiet);
    }

    /// Waits until the reload is due (forever when none is), then clears it.
    pub async fn due(&mut self) {
        match self.due {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                self.due = None;
            }
            None => std::future::pending().await,
        }
    }
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_events_makes_one_reload_a_quiet_period_after_the_last() {
        let quiet = Duration::from_millis(100);
        let start = tokio::time::Instant::now();
        let mut debounce = Debounce::new();
        // Events at 0, 60, 120 ms: each pushes the reload back.
        for at in [0u64, 60, 120] {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            debounce.poke(quiet);
        }
        debounce.due().await;
        assert_eq!(start.elapsed(), Duration::from_millis(220));
        // Nothing more is due until the next event.
        let nothing = tokio::time::timeout(Duration::from_secs(3600), debounce.due()).await;
        assert!(nothing.is_err());
    }
}
