//! The one wasmtime `Engine` of the process, with its on-disk compile cache and the epoch ticker
//! that enforces per-call deadlines, plus the memo of loaded plugins.

use super::compiles::{Background, Compiles};
use super::error::PluginError;
use super::plugin::Plugin;
use super::sandbox::StoreData;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Cache, CacheConfig, Config, Engine};

/// Memory a plugin instance may use unless its pipeline says otherwise: 128 MiB, room for a
/// 64k-row batch of long strings in and out.
pub const DEFAULT_MEMORY_LIMIT: u64 = 128 * 1024 * 1024;

/// How long one call into a plugin may run unless its pipeline says otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the epoch advances: the granularity of deadlines. Checking an epoch is a load and
/// a compare in the plugin's loops, so a coarse tick costs nothing measurable.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bounds of one plugin instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, bytes.
    pub memory_bytes: u64,
    /// Wall time per call.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: DEFAULT_MEMORY_LIMIT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

impl Limits {
    /// The deadline in epoch ticks (rounded up, plus one for the tick in progress).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_nanos().max(1);
        (self.call_timeout.as_nanos().div_ceil(tick) as u64).saturating_add(1)
    }
}

/// The SHA-256 of a plugin file's bytes, in hex: what identifies a plugin's version. A file
/// rewritten with other bytes is another version even when its size and mtime are the same.
pub fn content_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

pub(crate) struct HostInner {
    pub engine: Engine,
    pub linker: Linker<StoreData>,
    /// Advances the epoch while calls are in flight (and sleeps otherwise).
    pub ticker: Ticker,
    plugins_dir: PathBuf,
    /// Plugins loaded so far, by file and content hash: loading the same bytes again is free.
    loaded: Mutex<HashMap<(PathBuf, String), Arc<Plugin>>>,
    /// Compiles on threads of their own (the daemon's).
    compiles: Compiles,
}

/// Loads plugins from one folder into one engine. Cheap to clone; every pipeline shares it.
#[derive(Clone)]
pub struct PluginHost {
    pub(crate) inner: Arc<HostInner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("plugins_dir", &self.inner.plugins_dir)
            .finish()
    }
}

fn engine_error(err: impl std::fmt::Display) -> PluginError {
    PluginError::Engine(err.to_string())
}

impl PluginHost {
    /// A host for the plugins in `plugins_dir`. Compiled components are cached in `cache_dir`
    /// (keyed by a hash of the component and the compiler settings), so a restart does not
    /// compile again; without it every start compiles.
    pub fn new(
        plugins_dir: impl Into<PathBuf>,
        cache_dir: Option<&Path>,
    ) -> Result<PluginHost, PluginError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        if let Some(dir) = cache_dir {
            match cache(dir) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                // A missing cache only costs compile time; say so and go on.
                Err(err) => tracing::warn!(
                    cache_dir = %dir.display(),
                    "plugin compile cache disabled: {err}"
                ),
            }
        }
        let engine = Engine::new(&config).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        let ticker = start_ticker(&engine)?;
        Ok(PluginHost {
            inner: Arc::new(HostInner {
                engine,
                linker,
                ticker,
                plugins_dir: plugins_dir.into(),
                loaded: Mutex::new(HashMap::new()),
                compiles: Compiles::default(),
            }),
        })
    }

    /// The plugins folder.
    pub fn plugins_dir(&self) -> &Path {
        &self.inner.plugins_dir
    }

    /// The file a plugin name refers to.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.inner.plugins_dir.join(format!("{name}.wasm"))
    }

    /// Loads `<plugins dir>/<name>.wasm`; a file already loaded and unchanged is not read again.
    pub fn load(&self, name: &str) -> Result<Arc<Plugin>, PluginError> {
        let path = self.path_of(name);
        if !path.is_file() {
            return Err(PluginError::NotFound {
                name: name.to_string(),
                path,
            });
        }
        self.load_file(&path)
    }

    /// Compile in the background from now on (see [`super::compiles`]): a load waits at most
    /// `background.grace` for a compile, then answers [`PluginError::Compiling`]. `None`
    /// compiles on the caller's thread, however long it takes.
    pub fn compile_in_background(&self, background: Option<Background>) {
        self.inner.compiles.set_background(background);
    }

    /// Loads a component file (compiling it, or reading the compile cache). The file is read
    /// and hashed every time; a content already loaded from that file is not compiled again.
    pub fn load_file(&self, path: &Path) -> Result<Arc<Plugin>, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let hash = content_hash(&bytes);
        let key = (path.to_path_buf(), hash);
        if let Ok(loaded) = self.inner.loaded.lock()
            && let Some(plugin) = loaded.get(&key)
        {
            return Ok(plugin.clone());
        }
        let Some(background) = self.inner.compiles.background() else {
            let plugin = Arc::new(Plugin::load(self, path, &bytes, key.1.clone())?);
            self.remember(path, key, &plugin);
            return Ok(plugin);
        };
        let (size, grace) = (bytes.len() as u64, background.grace);
        let (host, file, sha256) = (self.clone(), path.to_path_buf(), key.1.clone());
        let start = move || {
            std::thread::Builder::new()
                .name("weir-compile".into())
                .spawn(move || host.compile(&file, &bytes, sha256, background))
                .map(drop)
        };
        match self.inner.compiles.load(path, &key.1, size, grace, start)? {
            Ok(plugin) => Ok(plugin),
            Err(err) => Err(PluginError::Remembered(err)),
        }
    }

    /// A compile on its own thread (background mode): records the outcome, memoises a loaded
    /// plugin, and tells the daemon if a load was told to wait for it.
    fn compile(&self, path: &Path, bytes: &[u8], sha256: String, background: Background) {
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Plugin::load(self, path, bytes, sha256.clone())
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(PluginError::Engine(format!(
                "internal error (a bug in weir) compiling {}: {message}",
                path.display()
            )))
        })
        .map(Arc::new)
        .map_err(Arc::new);
        if let Ok(plugin) = &outcome {
            self.remember(path, (path.to_path_buf(), sha256.clone()), plugin);
        }
        let seconds = started.elapsed().as_secs_f64();
        if self.inner.compiles.finish(path, &sha256, outcome) {
            tracing::info!(
                plugin = %path.display(),
                "plugin {} compiled in {seconds:.1} s; planning again the pipelines that wait for it",
                path.display()
            );
            (background.on_done)();
        }
    }

    /// Adds a loaded plugin to the memo, dropping the versions of its file it replaces
    /// (pipelines that still run on them hold their own reference).
    fn remember(&self, path: &Path, key: (PathBuf, String), plugin: &Arc<Plugin>) {
        if let Ok(mut loaded) = self.inner.loaded.lock() {
            loaded.retain(|(p, _), _| p != path);
            loaded.insert(key, plugin.clone());
        }
    }
}

fn cache(dir: &Path) -> Result<Cache, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // wasmtime wants an absolute directory.
    let dir = std::path::absolute(dir).map_err(|e| e.to_string())?;
    let mut config = CacheConfig::new();
    config.with_directory(dir);
    Cache::new(config).map_err(|e| e.to_string())
}

/// The thread that advances the engine's epoch every tick, but only while a plugin call is in
/// flight: an idle daemon's plugins cost no wake-ups. A deadline counts ticks from the moment
/// its call starts, so the epoch standing still between calls changes no deadline.
#[derive(Clone)]
pub(crate) struct Ticker {
    calls: Arc<std::sync::atomic::AtomicUsize>,
    thread: std::thread::Thread,
}

/// A call in flight; the ticker runs while any exists.
pub(crate) struct Ticking(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Ticker {
    /// Keeps the epoch moving until the returned guard is dropped.
    pub fn ticking(&self) -> Ticking {
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        Ticking(self.calls.clone())
    }
}

fn start_ticker(engine: &Engine) -> Result<Ticker, PluginError> {
    let weak = engine.weak();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let in_flight = calls.clone();
    let handle = std::thread::Builder::new()
        .name("weir-wasm-epoch".into())
        .spawn(move || {
            loop {
                if in_flight.load(std::sync::atomic::Ordering::Acquire) == 0 {
                    // Woken by the next call (or spuriously: then it looks again).
                    std::thread::park();
                    continue;
                }
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        })
        .map_err(|e| PluginError::Engine(format!("cannot start the deadline ticker: {e}")))?;
    Ok(Ticker {
        calls,
        thread: handle.thread().clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends a custom section: another file content, the same code.
    fn with_custom_section(bytes: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out.push(0);
        out.push((2 + payload.len()) as u8);
        out.push(1);
        out.push(b'x');
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_rewrite_of_the_same_size_and_mtime_is_a_new_version()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let original = std::fs::read(super::super::testing::plugins_dir().join("filter.wasm"))?;
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, with_custom_section(&original, b"one"))?;
        let host = PluginHost::new(dir.path(), None)?;
        let first = host.load("p")?;
        let mtime = std::fs::metadata(&path)?.modified()?;
        assert!(
            Arc::ptr_eq(&first, &host.load("p")?),
            "unchanged content is not loaded again"
        );

        std::fs::write(&path, with_custom_section(&original, b"two"))?;
        std::fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(mtime)?;
        let meta = std::fs::metadata(&path)?;
        assert_eq!((meta.len(), meta.modified()?), (first.size, mtime));
        let second = host.load("p")?;
        assert_ne!(first.sha256, second.sha256);
        assert!(!Arc::ptr_eq(&first, &second));
        Ok(())
    }
}
