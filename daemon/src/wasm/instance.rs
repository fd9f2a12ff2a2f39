//! One live plugin instance in its own `Store`: calls into it under a deadline, and turns
//! whatever went wrong into a [`CallFailure`] that says what happened. After a failure the
//! instance is dropped by its owner; the next call gets a fresh one.

use super::error::CallFailure;
use super::host::{Limits, Ticker};
use super::log::LogTags;
use super::plugin::Plugin;
use super::sandbox::{MemoryLimitReached, StoreData};
use crate::engine::PluginCosts;
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Func, Instance, Lift, Lower, Val,
};
use wasmtime::{Store, Trap};

pub(crate) struct Live {
    store: Store<StoreData>,
    instance: Instance,
    limits: Limits,
    ticker: Ticker,
    /// Linear memory right after instantiation, bytes.
    initial_memory: u64,
}

impl Live {
    pub fn new(plugin: &Plugin, limits: &Limits, tags: &LogTags) -> Result<Live, CallFailure> {
        let mut store = Store::new(&plugin.host.engine, StoreData::new(limits, tags));
        store.limiter(|data| &mut data.limiter);
        store.epoch_deadline_trap();
        // Instantiation runs the component's initialisers: bounded like any call.
        store.set_epoch_deadline(limits.deadline_ticks());
        let ticker = plugin.host.ticker.clone();
        let ticking = ticker.ticking();
        let instantiated = plugin.pre.instantiate(&mut store);
        drop(ticking);
        match instantiated {
            Ok(instance) => {
                let initial_memory = store.data().limiter.high_water as u64;
                Ok(Live {
                    store,
                    instance,
                    limits: *limits,
                    ticker,
                    initial_memory,
                })
            }
            Err(err) => {
                let failure = classify(&mut store, limits, err);
                Err(match failure {
                    CallFailure::Trap(message) => CallFailure::Instantiate(message),
                    other => other,
                })
            }
        }
    }

    /// Whether this instance has used more than half the room its memory limit leaves above
    /// its initial memory: then its owner drops it after the call and the next call gets a
    /// fresh one. A linear memory never shrinks, and the runtimes inside Python and JavaScript
    /// components keep some of what each call allocates (their allocators fragment; some
    /// bindings leak what crosses the boundary), so an instance called long enough would
    /// otherwise reach its limit with no single call needing it. A plugin keeps nothing between
    /// calls, so a fresh instance computes the same.
    pub fn outgrown(&self) -> bool {
        let room = self.limits.memory_bytes.saturating_sub(self.initial_memory);
        self.memory_high_water() > self.initial_memory + room / 2
    }

    /// The most linear memory this instance has had, bytes.
    pub fn memory_high_water(&self) -> u64 {
        self.store.data().limiter.high_water as u64
    }

    /// Runs `call` on this instance and counts it into `costs`: one call, its wall and CPU
    /// time, the memory the instance has reached, and the kind of its failure if it failed.
    pub fn measured<R>(
        &mut self,
        costs: &PluginCosts,
        call: impl FnOnce(&mut Live) -> Result<R, CallFailure>,
    ) -> Result<R, CallFailure> {
        let started = std::time::Instant::now();
        let cpu_before = thread_cpu_seconds();
        let result = call(self);
        let took = started.elapsed().as_secs_f64();
        costs.calls.inc();
        costs.call_duration.observe(took);
        costs.call_seconds.inc_by(took);
        costs
            .cpu_seconds
            .inc_by((thread_cpu_seconds() - cpu_before).max(0.0));
        costs.memory_reached(self.memory_high_water());
        if let Err(failure) = &result {
            costs.failed(failure.kind());
        }
        result
    }

    fn func(&mut self, index: &ComponentExportIndex) -> Result<Func, CallFailure> {
        self.instance
            .get_func(&mut self.store, index)
            .ok_or_else(|| CallFailure::Instantiate("an exported function is missing".into()))
    }

    /// Calls a function with typed parameters and results (the hot path: no intermediate
    /// values, lists are copied straight between host slices and guest memory).
    pub fn call<P, R>(&mut self, index: &ComponentExportIndex, params: P) -> Result<R, CallFailure>
    where
        P: ComponentNamedList + Lower,
        R: ComponentNamedList + Lift,
    {
        let func = self.func(index)?;
        let typed = func.typed::<P, R>(&self.store).map_err(|err| {
            CallFailure::Instantiate(format!("a function has the wrong signature: {err:#}"))
        })?;
        self.store.set_epoch_deadline(self.limits.deadline_ticks());
        let _ticking = self.ticker.ticking();
        typed
            .call(&mut self.store, params)
            .map_err(|err| classify(&mut self.store, &self.limits, err))
    }

    /// Calls a function through dynamic values (for the rare calls that return records).
    pub fn call_dynamic(
        &mut self,
        index: &ComponentExportIndex,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), CallFailure> {
        let func = self.func(index)?;
        self.store.set_epoch_deadline(self.limits.deadline_ticks());
        let _ticking = self.ticker.ticking();
        func.call(&mut self.store, params, results)
            .map_err(|err| classify(&mut self.store, &self.limits, err))
    }
}

/// CPU time of the calling thread, seconds (0 if the clock cannot be read): what a plugin call
/// costs in CPU, as opposed to the wall time it took.
fn thread_cpu_seconds() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

fn classify(store: &mut Store<StoreData>, limits: &Limits, err: wasmtime::Error) -> CallFailure {
    if let Some(wanted) = store.data().limiter.refused
        && (err.downcast_ref::<MemoryLimitReached>().is_some()
            || err.downcast_ref::<Trap>().is_some())
    {
        return CallFailure::OutOfMemory {
            wanted_mib: mib(wanted as u64),
            limit_mib: mib(limits.memory_bytes),
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallFailure::Deadline(limits.call_timeout),
        Some(trap) => {
            // A Rust plugin that panics prints the panic message, then traps: keep both.
            let said = store.data().stderr.last_line();
            match said {
                Some(line) if !line.is_empty() => {
                    CallFailure::Trap(format!("{trap} (its last words on stderr: {line})"))
                }
                _ => CallFailure::Trap(trap.to_string()),
            }
        }
        None => CallFailure::Trap(err.root_cause().to_string()),
    }
}
