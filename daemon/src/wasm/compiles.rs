//! Plugin compiles on threads of their own, so that a large component (a Python plugin is
//! ~18 MB and takes ~15 s to compile the first time) does not hold up what does not use it.
//!
//! In the daemon, loading a plugin starts its compile on a thread and waits a short grace for
//! it: a compile-cache hit or a small Rust plugin is back well within it, and the load answers
//! as it always did. A compile that outlives the grace answers
//! [`PluginError::Compiling`]: the pipelines that need it wait (their status says so) while the
//! others are planned and started, and when it ends the daemon is told ([`Background::on_done`])
//! and plans again, which now finds the plugin loaded (or its error, remembered, so a broken
//! component is not compiled again until its file changes).
//!
//! One compile per file and content: a second load of the same bytes joins the first.

use super::error::PluginError;
use super::plugin::Plugin;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a load waits for a compile before answering "compiling".
pub const DEFAULT_COMPILE_GRACE: Duration = Duration::from_secs(2);

/// What a compile ended with: the loaded plugin, or why it cannot be loaded.
pub(crate) type Outcome = Result<Arc<Plugin>, Arc<PluginError>>;

/// Compiling in the background: how long a load waits, and whom to tell when a compile that
/// somebody was told to wait for ends.
#[derive(Clone)]
pub struct Background {
    /// How long a load waits for its compile before answering "compiling".
    pub grace: Duration,
    /// Called (on the compile's thread) when a compile that outlived its grace ends.
    pub on_done: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("grace", &self.grace)
            .finish()
    }
}

/// One file's latest compile.
struct Compile {
    sha256: String,
    size: u64,
    started: Instant,
    outcome: Option<Outcome>,
    /// A load was answered "compiling": its end must be announced.
    announced: bool,
}

/// The compiles of one host, by file.
#[derive(Default)]
pub(crate) struct Compiles {
    by_file: Mutex<HashMap<PathBuf, Compile>>,
    ended: Condvar,
    background: Mutex<Option<Background>>,
}

/// A compile under way (what the registry's tests look at; the status reads compiles through
/// the loads' `Compiling` answers).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileInProgress {
    /// The plugin file.
    pub path: PathBuf,
    /// Its size, bytes.
    pub size: u64,
    /// How long it has been compiling.
    pub elapsed: Duration,
}

impl Compiles {
    fn by_file(&self) -> MutexGuard<'_, HashMap<PathBuf, Compile>> {
        // Entries are always whole: a panic elsewhere while the lock was held leaves it usable.
        self.by_file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Compile in the background from now on (the daemon), or not (`None`: loads compile on
    /// the caller's thread, as `weir run` and `weir check` want).
    pub fn set_background(&self, background: Option<Background>) {
        *self.background.lock().unwrap_or_else(|e| e.into_inner()) = background;
    }

    pub fn background(&self) -> Option<Background> {
        self.background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The compiles still under way.
    #[cfg(test)]
    pub fn in_progress(&self) -> Vec<CompileInProgress> {
        self.by_file()
            .iter()
            .filter(|(_, c)| c.outcome.is_none())
            .map(|(path, c)| CompileInProgress {
                path: path.clone(),
                size: c.size,
                elapsed: c.started.elapsed(),
            })
            .collect()
    }

    /// The outcome of compiling `bytes` (of `path`, hashing to `sha256`) with `compile`, run on
    /// a thread of its own unless one is already compiling the same content; waits at most
    /// until `grace` after that compile started.
    pub fn load(
        &self,
        path: &Path,
        sha256: &str,
        size: u64,
        grace: Duration,
        start: impl FnOnce() -> std::io::Result<()>,
    ) -> Result<Outcome, PluginError> {
        let mut by_file = self.by_file();
        let same = by_file.get(path).is_some_and(|c| c.sha256 == sha256);
        if !same {
            by_file.insert(
                path.to_path_buf(),
                Compile {
                    sha256: sha256.to_string(),
                    size,
                    started: Instant::now(),
                    outcome: None,
                    announced: false,
                },
            );
            if let Err(err) = start() {
                by_file.remove(path);
                return Err(PluginError::Engine(format!(
                    "cannot start a thread to compile {}: {err}",
                    path.display()
                )));
            }
        }
        loop {
            let Some(compile) = by_file.get_mut(path).filter(|c| c.sha256 == sha256) else {
                // A newer content of the file replaced this one meanwhile.
                return Err(PluginError::Compiling {
                    path: path.to_path_buf(),
                    size,
                    elapsed: Duration::ZERO,
                });
            };
            if let Some(outcome) = &compile.outcome {
                return Ok(outcome.clone());
            }
            let waited = compile.started.elapsed();
            if waited >= grace {
                compile.announced = true;
                return Err(PluginError::Compiling {
                    path: path.to_path_buf(),
                    size: compile.size,
                    elapsed: waited,
                });
            }
            by_file = self
                .ended
                .wait_timeout(by_file, grace - waited)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Records how the compile of `path` at `sha256` ended; says whether a load was told to
    /// wait for it (then the daemon is to be told).
    pub fn finish(&self, path: &Path, sha256: &str, outcome: Outcome) -> bool {
        let announced = {
            let mut by_file = self.by_file();
            match by_file.get_mut(path).filter(|c| c.sha256 == sha256) {
                Some(compile) => {
                    compile.outcome = Some(outcome);
                    compile.announced
                }
                // Replaced by a newer content: nobody waits for this one.
                None => false,
            }
        };
        self.ended.notify_all();
        announced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn failed(message: &str) -> Outcome {
        Err(Arc::new(PluginError::Engine(message.into())))
    }

    fn outcome_message(outcome: &Outcome) -> String {
        match outcome {
            Ok(plugin) => plugin.name.clone(),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_compile_past_its_grace_answers_compiling_then_its_remembered_outcome_without_compiling_again()
     {
        let compiles = Compiles::default();
        let path = Path::new("/plugins/big.wasm");
        let started = AtomicUsize::new(0);
        let start = || {
            started.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        let first = compiles.load(path, "aa", 18_000_000, Duration::ZERO, start);
        assert!(
            matches!(
                first,
                Err(PluginError::Compiling {
                    size: 18_000_000,
                    ..
                })
            ),
            "{first:?}"
        );
        assert_eq!(compiles.in_progress().len(), 1);
        // A second load of the same content joins the compile under way.
        let again = compiles.load(path, "aa", 18_000_000, Duration::ZERO, || {
            started.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        assert!(matches!(again, Err(PluginError::Compiling { .. })));
        assert_eq!(started.load(Ordering::SeqCst), 1);

        // Somebody was told to wait: its end is to be announced.
        assert!(compiles.finish(path, "aa", failed("broken component")));
        assert!(compiles.in_progress().is_empty());
        let remembered = compiles.load(path, "aa", 18_000_000, Duration::ZERO, || {
            started.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        match remembered {
            Ok(outcome) => assert_eq!(
                outcome_message(&outcome),
                "cannot start the WebAssembly engine: broken component"
            ),
            Err(err) => panic!("{err}"),
        }
        assert_eq!(started.load(Ordering::SeqCst), 1, "compiled again");

        // New content of the file is compiled anew; the old compile's end is nobody's news.
        let newer = compiles.load(path, "bb", 1, Duration::ZERO, || {
            started.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        assert!(matches!(newer, Err(PluginError::Compiling { .. })));
        assert_eq!(started.load(Ordering::SeqCst), 2);
        assert!(!compiles.finish(path, "aa", failed("stale")));
    }

    #[test]
    fn a_compile_that_ends_within_its_grace_is_answered_directly_and_not_announced() {
        let compiles = Arc::new(Compiles::default());
        let path = Path::new("/plugins/small.wasm");
        let finisher = compiles.clone();
        let thread = Arc::new(Mutex::new(None));
        let handle = thread.clone();
        let start = move || {
            // The compile's thread: it ends long before the grace does.
            let joined = std::thread::spawn(move || {
                finisher.finish(Path::new("/plugins/small.wasm"), "cc", failed("done"))
            });
            *handle.lock().unwrap_or_else(|e| e.into_inner()) = Some(joined);
            Ok(())
        };
        let answer = compiles.load(path, "cc", 10, Duration::from_secs(60), start);
        match answer {
            Ok(outcome) => assert_eq!(
                outcome_message(&outcome),
                "cannot start the WebAssembly engine: done"
            ),
            Err(err) => panic!("{err}"),
        }
        let joined = thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let announced = joined.map(|j| j.join().unwrap_or(true));
        assert_eq!(announced, Some(false));
    }

    #[test]
    fn a_thread_that_cannot_start_is_an_error_and_leaves_nothing_compiling() {
        let compiles = Compiles::default();
        let path = Path::new("/plugins/p.wasm");
        let answer = compiles.load(path, "dd", 10, Duration::ZERO, || {
            Err(std::io::Error::other("no threads left"))
        });
        assert!(
            matches!(&answer, Err(PluginError::Engine(m)) if m.contains("no threads left")),
            "{answer:?}"
        );
        assert!(compiles.in_progress().is_empty());
    }
}
