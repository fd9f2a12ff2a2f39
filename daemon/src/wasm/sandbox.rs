//! What a plugin instance may touch: nothing but its own memory (up to a limit), a clock,
//! randomness, and stdout/stderr that go to weir's log. No preopened directories, no network,
//! no environment variables, no arguments, no stdin.

use super::host::Limits;
use super::log::{LogPipe, LogTags};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Caps linear memory; remembers a refusal so the failure can be reported as what it is, and
/// the most memory granted (the instance's high-water mark: wasm memories never shrink).
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub refused: Option<usize>,
    pub high_water: usize,
}

/// The error a refused `memory.grow` traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory limit reached")]
pub(crate) struct MemoryLimitReached;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            // Trapping at once (rather than returning -1 to the guest) gives a clear failure
            // instead of whatever the guest's allocator does on a failed grow.
            return Err(wasmtime::Error::new(MemoryLimitReached));
        }
        self.high_water = self.high_water.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any real plugin.
        Ok(desired <= 1_000_000)
    }
}

/// The host state of one plugin instance.
pub(crate) struct StoreData {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub stderr: LogPipe,
}

impl StoreData {
    pub fn new(limits: &Limits, tags: &LogTags) -> StoreData {
        let stdout = LogPipe::new(tags.clone(), "stdout");
        let stderr = LogPipe::new(tags.clone(), "stderr");
        let mut builder = WasiCtxBuilder::new();
        // The builder's defaults already deny files, environment, arguments and stdin; the
        // network is denied explicitly so that a change of default cannot open it.
        builder
            .stdout(stdout)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        StoreData {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
                refused: None,
                high_water: 0,
            },
            stderr,
        }
    }
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
