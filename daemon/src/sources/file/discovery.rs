//! Finding new files: file system events (notify) make new files visible at once, a full listing
//! every `list_interval` catches what events miss (network file systems), and a file is handed
//! over only when it is complete — renamed into place, or unchanged for `stable_for`.
//!
//! A folder that cannot be watched (it does not exist yet) or whose watch was lost (it was
//! removed and made again) is watched again by the next listing that works; a listing that
//! failed is tried again at every poll, not only every `list_interval`.

use crate::config::FileSourceSpec;
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;

/// A file that may be new: what it looked like when last seen, and since when.
#[derive(Debug, Clone)]
struct Candidate {
    size: u64,
    mtime: SystemTime,
    unchanged_since: Instant,
    /// It was renamed into place, so it is complete now.
    renamed: bool,
}

/// A complete file, ready to be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Size.
    pub size: u64,
    /// Modification time, ms since the epoch.
    pub mtime_ms: i64,
    /// Modification time as the file system gave it.
    pub mtime: SystemTime,
}

#[derive(Debug, Default)]
struct Events {
    /// Paths that changed, and whether each arrived by rename.
    changed: Vec<(PathBuf, bool)>,
    /// The watched folder itself was removed or renamed: its watch is gone with it.
    watch_lost: bool,
}

/// Which paths belong to the source.
#[derive(Debug, Clone)]
pub struct Matcher {
    dir: PathBuf,
    pattern: Option<glob::Pattern>,
    recursive: bool,
}

impl Matcher {
    /// The matcher of a spec; `dir` is the folder to watch.
    pub fn new(spec: &FileSourceSpec) -> Matcher {
        if spec.is_glob {
            let text = spec.path.to_string_lossy();
            Matcher {
                dir: crate::config::glob_base(&spec.path),
                pattern: glob::Pattern::new(&text).ok(),
                recursive: true,
            }
        } else {
            Matcher {
                dir: spec.path.clone(),
                pattern: None,
                recursive: false,
            }
        }
    }

    /// The folder watched and listed.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `path` is one of the source's files. Hidden files (`.name`) and files starting
    /// with `_` are never read, as in Spark: writers put temporary files there.
    pub fn matches(&self, path: &Path) -> bool {
        let hidden = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .is_none_or(|n| n.starts_with('.') || n.starts_with('_'));
        if hidden {
            return false;
        }
        match &self.pattern {
            Some(pattern) => pattern.matches_path_with(
                path,
                glob::MatchOptions {
                    case_sensitive: true,
                    require_literal_separator: true,
                    require_literal_leading_dot: true,
                },
            ),
            None => path.parent() == Some(self.dir.as_path()),
        }
    }

    /// Every matching regular file now, or why the folder could not be listed.
    pub fn list(&self) -> Result<Vec<PathBuf>, String> {
        let mut out = Vec::new();
        match &self.pattern {
            Some(pattern) => {
                let paths = glob::glob(pattern.as_str())
                    .map_err(|err| format!("invalid pattern {}: {err}", pattern.as_str()))?;
                for path in paths {
                    match path {
                        Ok(p) if p.is_file() && self.matches(&p) => out.push(p),
                        Ok(_) => {}
                        // A folder under the pattern that cannot be read.
                        Err(err) => return Err(err.to_string()),
                    }
                }
            }
            None => {
                let entries = std::fs::read_dir(&self.dir)
                    .map_err(|err| format!("cannot list {}: {err}", self.dir.display()))?;
                for entry in entries {
                    let entry = entry
                        .map_err(|err| format!("cannot list {}: {err}", self.dir.display()))?;
                    let path = entry.path();
                    if entry.file_type().is_ok_and(|t| t.is_file()) && self.matches(&path) {
                        out.push(path);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Watches and lists the source's folder and says which new files are complete.
pub struct Discovery {
    matcher: Matcher,
    stable_for: Duration,
    list_interval: Duration,
    /// Whether to watch at all (`watch = false` lists only).
    watch: bool,
    events: Arc<Mutex<Events>>,
    notify: Arc<Notify>,
    last_listing: Option<Instant>,
    /// Why the last listing failed, if it did (shown in the status, logged once).
    listing_error: Option<String>,
    pending: HashMap<PathBuf, Candidate>,
    /// None while the folder is not watched; dropping the watcher stops its thread.
    watcher: Option<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("dir", &self.matcher.dir)
            .field("pending", &self.pending.len())
            .finish()
    }
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Discovery {
    /// Starts watching; without events (`watch = false`, a folder that cannot be watched)
    /// listing still works.
    pub fn start(spec: &FileSourceSpec) -> Discovery {
        let mut discovery = Discovery {
            matcher: Matcher::new(spec),
            stable_for: spec.stable_for,
            list_interval: spec.list_interval,
            watch: spec.watch,
            events: Arc::new(Mutex::new(Events::default())),
            notify: Arc::new(Notify::new()),
            last_listing: None,
            listing_error: None,
            pending: HashMap::new(),
            watcher: None,
        };
        if discovery.watch {
            match discovery.start_watching() {
                Ok(watcher) => discovery.watcher = Some(watcher),
                Err(err) => tracing::warn!(
                    "file source: {err}; new files are found by listing every {:?} until it can be watched",
                    spec.list_interval
                ),
            }
        }
        discovery
    }

    /// A watcher of the folder that records changes in `events` and rings `notify`.
    fn start_watching(&self) -> Result<notify::RecommendedWatcher, String> {
        let (sink, ring) = (self.events.clone(), self.notify.clone());
        let dir = self.matcher.dir.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                let renamed_to = match event.kind {
                    EventKind::Modify(ModifyKind::Name(RenameMode::To)) => event.paths.first(),
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => event.paths.get(1),
                    _ => None,
                };
                let lost = matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                ) && event.paths.first() == Some(&dir);
                let wanted = matches!(
                    event.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Access(_)
                );
                if !wanted && !lost {
                    return;
                }
                if let Ok(mut e) = sink.lock() {
                    e.watch_lost |= lost;
                    match renamed_to {
                        Some(path) => e.changed.push((path.clone(), true)),
                        None => e
                            .changed
                            .extend(event.paths.iter().map(|p| (p.clone(), false))),
                    }
                }
                ring.notify_one();
            })
            .map_err(|err| format!("no file system events ({err})"))?;
        let mode = if self.matcher.recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        watcher
            .watch(&self.matcher.dir, mode)
            .map_err(|err| format!("cannot watch {} ({err})", self.matcher.dir.display()))?;
        Ok(watcher)
    }

    /// The matcher.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// Rung when the folder changes.
    pub fn notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Why the folder cannot be listed, if it cannot.
    pub fn listing_error(&self) -> Option<&str> {
        self.listing_error.as_deref()
    }

    /// Files not yet complete.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// How long until a pending file may become complete.
    pub fn next_check(&self) -> Option<Duration> {
        let now = Instant::now();
        self.pending
            .values()
            .map(|c| (c.unchanged_since + self.stable_for).saturating_duration_since(now))
            .min()
    }

    fn observe(&mut self, path: PathBuf, renamed: bool, now: Instant) {
        let Ok(meta) = std::fs::metadata(&path) else {
            self.pending.remove(&path);
            return;
        };
        if !meta.is_file() {
            return;
        }
        let (size, mtime) = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        );
        match self.pending.get_mut(&path) {
            Some(c) if c.size == size && c.mtime == mtime => c.renamed |= renamed,
            Some(c) => {
                *c = Candidate {
                    size,
                    mtime,
                    unchanged_since: now,
                    renamed,
                };
            }
            None => {
                // A file untouched for `stable_for` already (by its own modification time) is
                // complete now: no need to watch it for another interval.
                let idle = SystemTime::now()
                    .duration_since(mtime)
                    .is_ok_and(|age| age >= self.stable_for);
                let unchanged_since = if idle {
                    now.checked_sub(self.stable_for).unwrap_or(now)
                } else {
                    now
                };
                self.pending.insert(
                    path,
                    Candidate {
                        size,
                        mtime,
                        unchanged_since,
                        renamed,
                    },
                );
            }
        }
    }

    /// Takes events, lists when due, and returns the complete files that `taken` does not hold.
    /// `everything` treats every file there as complete (`available_now`).
    pub fn poll(&mut self, taken: &HashMap<PathBuf, i64>, everything: bool) -> Vec<ReadyFile> {
        self.poll_at(taken, everything, Instant::now())
    }

    /// [`Discovery::poll`] at `now` (tests step time).
    fn poll_at(
        &mut self,
        taken: &HashMap<PathBuf, i64>,
        everything: bool,
        now: Instant,
    ) -> Vec<ReadyFile> {
        let (changed, watch_lost) = self
            .events
            .lock()
            .map(|mut e| {
                (
                    std::mem::take(&mut e.changed),
                    std::mem::take(&mut e.watch_lost),
                )
            })
            .unwrap_or_default();
        if watch_lost && self.watcher.take().is_some() {
            // List (and watch again) at once rather than after list_interval.
            self.last_listing = None;
            tracing::info!(
                "file source: {} was removed or moved; it is watched again once it can be listed",
                self.matcher.dir.display()
            );
        }
        for (path, renamed) in changed {
            if self.matcher.matches(&path) && !taken.contains_key(&path) {
                self.observe(path, renamed, now);
            }
        }
        let due = self.listing_error.is_some()
            || self
                .last_listing
                .is_none_or(|at| now.duration_since(at) >= self.list_interval);
        if due || everything {
            self.last_listing = Some(now);
            // Watching starts before the listing, so a file made between the two is seen.
            if self.watch && self.watcher.is_none() && self.matcher.dir.is_dir() {
                self.watcher = self.start_watching().ok();
                if self.watcher.is_some() {
                    tracing::info!("file source: watching {}", self.matcher.dir.display());
                }
            }
            match self.matcher.list() {
                Ok(paths) => {
                    if let Some(was) = self.listing_error.take() {
                        tracing::info!("file source: listing works again (it failed: {was})");
                    }
                    for path in paths {
                        if !taken.contains_key(&path) && !self.pending.contains_key(&path) {
                            self.observe(path, false, now);
                        }
                    }
                }
                Err(err) => {
                    if self.listing_error.as_ref() != Some(&err) {
                        tracing::warn!(
                            "file source: {err}; no new files are found until it can be listed"
                        );
                    }
                    self.listing_error = Some(err);
                }
            }
        }
        // Re-check what is pending: a file still being written keeps changing, and one that
        // vanished is dropped.
        let paths: Vec<PathBuf> = self.pending.keys().cloned().collect();
        for path in paths {
            self.observe(path, false, now);
        }
        let mut ready = Vec::new();
        self.pending.retain(|path, c| {
            let complete =
                everything || c.renamed || now.duration_since(c.unchanged_since) >= self.stable_for;
            if complete {
                ready.push(ReadyFile {
                    path: path.clone(),
                    size: c.size,
                    mtime_ms: ms(c.mtime),
                    mtime: c.mtime,
                });
            }
            !complete
        });
        ready
    }

    /// Puts files back that were not taken this time (limits), keeping them complete.
    pub fn put_back(&mut self, files: Vec<ReadyFile>) {
        let now = Instant::now();
        for f in files {
            self.pending.insert(
                f.path,
                Candidate {
                    size: f.size,
                    mtime: f.mtime,
                    unchanged_since: now.checked_sub(self.stable_for).unwrap_or(now),
                    renamed: true,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::file::tests::spec;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn names(files: &[ReadyFile]) -> Vec<String> {
        files
            .iter()
            .filter_map(|f| f.path.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }

    /// Polls at `now` until a file is found, waiting for file system events in between (so
    /// only events can find it while `now` is before the next listing), for at most 10 s.
    fn poll_until_found(discovery: &mut Discovery, now: Instant) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let Ok(runtime) = runtime else {
            return Vec::new();
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = names(&discovery.poll_at(&HashMap::new(), false, now));
            let left = deadline.saturating_duration_since(Instant::now());
            if !found.is_empty() || left.is_zero() {
                return found;
            }
            let notify = discovery.notify();
            // The timer is made inside the runtime, which it needs.
            let _ = runtime.block_on(async { tokio::time::timeout(left, notify.notified()).await });
        }
    }

    /// A discovery that lists at every poll and sees no events, whose files are complete once
    /// unchanged for an hour (of stepped time).
    fn listing_every_poll(dir: &Path) -> Discovery {
        let mut spec = spec(dir, false);
        spec.watch = false;
        spec.list_interval = Duration::ZERO;
        spec.stable_for = Duration::from_secs(3600);
        Discovery::start(&spec)
    }

    #[test]
    fn a_file_written_in_place_is_complete_once_unchanged_for_stable_for() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut discovery = listing_every_poll(dir.path());
        let nothing = HashMap::new();
        std::fs::write(dir.path().join("b.csv"), "id\n1\n")?;
        let seen = Instant::now();
        assert!(discovery.poll_at(&nothing, false, seen).is_empty());
        assert_eq!(discovery.pending(), 1);
        let hour = Duration::from_secs(3600);
        let almost = seen + hour - Duration::from_millis(1);
        assert!(discovery.poll_at(&nothing, false, almost).is_empty());
        assert_eq!(
            names(&discovery.poll_at(&nothing, false, seen + hour)),
            ["b.csv"]
        );
        Ok(())
    }

    #[test]
    fn a_file_still_growing_is_complete_only_stable_for_after_its_last_change() -> TestResult {
        use std::io::Write;
        let dir = tempfile::tempdir()?;
        let mut discovery = listing_every_poll(dir.path());
        let nothing = HashMap::new();
        let mut file = std::fs::File::create(dir.path().join("slow.csv"))?;
        let t0 = Instant::now();
        let mut now = t0;
        // A chunk every ten minutes, for almost two hours: never an hour unchanged.
        for chunk in 0..10 {
            writeln!(file, "{chunk}")?;
            file.flush()?;
            now = t0 + Duration::from_secs(600 * chunk);
            assert!(
                discovery.poll_at(&nothing, false, now).is_empty(),
                "complete while still growing (chunk {chunk})"
            );
        }
        let hour = Duration::from_secs(3600);
        let almost = now + hour - Duration::from_millis(1);
        assert!(discovery.poll_at(&nothing, false, almost).is_empty());
        let ready = discovery.poll_at(&nothing, false, now + hour);
        assert_eq!(names(&ready), ["slow.csv"]);
        // All of it: ten lines of two bytes.
        assert_eq!(ready[0].size, 20);
        Ok(())
    }

    #[test]
    fn a_file_renamed_into_the_folder_is_complete_at_once() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut spec = spec(dir.path(), false);
        spec.list_interval = Duration::from_secs(3600);
        spec.stable_for = Duration::from_secs(3600);
        let mut discovery = Discovery::start(&spec);
        let t0 = Instant::now();
        assert!(discovery.poll_at(&HashMap::new(), false, t0).is_empty());
        let tmp = dir.path().join(".a.csv.tmp");
        std::fs::write(&tmp, "id\n1\n")?;
        std::fs::rename(&tmp, dir.path().join("a.csv"))?;
        // A millisecond later, an hour before it could be complete by being unchanged.
        let next = t0 + Duration::from_millis(1);
        assert_eq!(poll_until_found(&mut discovery, next), ["a.csv"]);
        Ok(())
    }

    #[test]
    fn with_watch_off_a_new_file_is_found_by_the_listing_once_list_interval_has_passed()
    -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut spec = spec(dir.path(), false);
        spec.watch = false;
        spec.list_interval = Duration::from_secs(10);
        let mut discovery = Discovery::start(&spec);
        let t0 = Instant::now();
        let nothing = HashMap::new();
        assert!(discovery.poll_at(&nothing, false, t0).is_empty());
        std::fs::write(dir.path().join("a.txt"), "1\n")?;
        let early = t0 + Duration::from_millis(9_999);
        assert!(discovery.poll_at(&nothing, false, early).is_empty());
        let due = t0 + Duration::from_secs(10);
        assert_eq!(names(&discovery.poll_at(&nothing, false, due)), ["a.txt"]);
        Ok(())
    }

    #[test]
    fn a_folder_made_after_start_is_listed_at_the_next_poll_and_watched_from_then_on() -> TestResult
    {
        let root = tempfile::tempdir()?;
        let dir = root.path().join("in");
        let mut spec = spec(&dir, false);
        spec.list_interval = Duration::from_secs(3600);
        let mut discovery = Discovery::start(&spec);
        assert!(discovery.watcher.is_none());
        let t0 = Instant::now();
        let nothing = HashMap::new();
        assert!(discovery.poll_at(&nothing, false, t0).is_empty());
        assert!(discovery.listing_error().is_some());
        // The failed listing is tried again at the next poll, an hour before list_interval.
        std::fs::create_dir(&dir)?;
        std::fs::write(dir.join("first.txt"), "1\n")?;
        let next = t0 + Duration::from_millis(1);
        assert_eq!(
            names(&discovery.poll_at(&nothing, false, next)),
            ["first.txt"]
        );
        assert_eq!(discovery.listing_error(), None);
        assert!(discovery.watcher.is_some());
        // Now watched: a new file is seen through its event, with no listing due.
        std::fs::write(dir.join("second.txt"), "2\n")?;
        let later = t0 + Duration::from_millis(2);
        assert_eq!(poll_until_found(&mut discovery, later), ["second.txt"]);
        Ok(())
    }

    #[test]
    fn a_folder_removed_and_made_again_is_watched_again() -> TestResult {
        let root = tempfile::tempdir()?;
        let dir = root.path().join("in");
        std::fs::create_dir(&dir)?;
        let mut spec = spec(&dir, false);
        spec.list_interval = Duration::from_secs(3600);
        let mut discovery = Discovery::start(&spec);
        let t0 = Instant::now();
        let nothing = HashMap::new();
        assert!(discovery.poll_at(&nothing, false, t0).is_empty());
        std::fs::remove_dir(&dir)?;
        // Wait for the folder's own removal event.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !discovery.events.lock().is_ok_and(|e| e.watch_lost) && Instant::now() < deadline {
            let notify = discovery.notify();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()?;
            let wait = Duration::from_millis(100);
            let _ = runtime.block_on(async { tokio::time::timeout(wait, notify.notified()).await });
        }
        assert!(
            discovery.events.lock().is_ok_and(|e| e.watch_lost),
            "the folder's removal was never reported"
        );
        std::fs::create_dir(&dir)?;
        let next = t0 + Duration::from_millis(1);
        assert!(discovery.poll_at(&nothing, false, next).is_empty());
        assert!(discovery.watcher.is_some(), "watched again");
        std::fs::write(dir.join("after.txt"), "1\n")?;
        let later = t0 + Duration::from_millis(2);
        assert_eq!(poll_until_found(&mut discovery, later), ["after.txt"]);
        Ok(())
    }
}
