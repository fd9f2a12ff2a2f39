//! Sharing the machine between tests. Every running weir holds a share; a test that measures
//! time takes the machine alone, so that its limit measures weir and not the daemons other tests
//! run in parallel on the same two cores.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

#[derive(Default)]
struct Machine {
    /// Running weir processes per test thread.
    shares: HashMap<ThreadId, usize>,
    /// A timing test is waiting for the machine.
    wanted_alone: bool,
    /// The thread of the timing test that has it.
    alone: Option<ThreadId>,
}

static MACHINE: Mutex<Option<Machine>> = Mutex::new(None);
static CHANGED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Option<Machine>> {
    MACHINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One running weir's share of the machine, given back when dropped.
#[derive(Debug)]
pub struct Share {
    thread: ThreadId,
}

impl Share {
    /// Waits while a timing test has (or waits for) the machine. The timing test itself, and a
    /// thread that already runs a weir, get a share at once: they cannot wait for themselves.
    pub fn take() -> Share {
        let thread = std::thread::current().id();
        let mut guard = lock();
        loop {
            let machine = guard.get_or_insert_with(Machine::default);
            let running_here = machine.shares.get(&thread).copied().unwrap_or(0) > 0;
            let free = machine.alone.is_none() && !machine.wanted_alone;
            if running_here || free || machine.alone == Some(thread) {
                *machine.shares.entry(thread).or_insert(0) += 1;
                return Share { thread };
            }
            guard = CHANGED
                .wait(guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut guard = lock();
        if let Some(machine) = guard.as_mut()
            && let Some(count) = machine.shares.get_mut(&self.thread)
        {
            *count -= 1;
            if *count == 0 {
                machine.shares.remove(&self.thread);
            }
        }
        CHANGED.notify_all();
    }
}

/// The machine to one test, until dropped.
#[derive(Debug)]
pub struct Alone(());

impl Alone {
    /// Waits until no other test runs a weir, then keeps new ones from starting.
    pub fn take() -> Alone {
        let thread = std::thread::current().id();
        let mut guard = lock();
        loop {
            let machine = guard.get_or_insert_with(Machine::default);
            if machine.alone.is_none() {
                machine.wanted_alone = true;
                if machine.shares.is_empty() {
                    machine.alone = Some(thread);
                    machine.wanted_alone = false;
                    return Alone(());
                }
            }
            guard = CHANGED
                .wait(guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Drop for Alone {
    fn drop(&mut self) {
        if let Some(machine) = lock().as_mut() {
            machine.alone = None;
        }
        CHANGED.notify_all();
    }
}
