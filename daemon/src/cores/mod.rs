//! The machine's cores as pipelines share them: a process-wide budget of spare cores that a
//! batch borrows for as long as it runs chunks in parallel, and the ordered parallel map that
//! runs them. Sources (making chunks) and the engine (running them through stages) both use
//! it, so it sits below both.

mod ordered;

pub use ordered::{WorkerPanicked, ordered_map, panic_text};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The cores a process's pipelines may borrow beyond the thread each one runs on.
#[derive(Debug, Clone)]
pub struct CoreBudget {
    spare: Arc<AtomicUsize>,
}

impl CoreBudget {
    /// A budget of `spare` cores.
    pub fn new(spare: usize) -> CoreBudget {
        CoreBudget {
            spare: Arc::new(AtomicUsize::new(spare)),
        }
    }

    /// The process's budget: every core but one (the one a pipeline runs on anyway).
    pub fn machine() -> CoreBudget {
        static MACHINE: std::sync::LazyLock<CoreBudget> =
            std::sync::LazyLock::new(|| CoreBudget::new(machine_cores().saturating_sub(1)));
        MACHINE.clone()
    }

    /// Takes up to `wanted` cores; they return when the loan is dropped.
    pub fn borrow(&self, wanted: usize) -> Loan {
        let mut taken = 0;
        let _ = self
            .spare
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |spare| {
                taken = spare.min(wanted);
                Some(spare - taken)
            });
        Loan {
            budget: self.spare.clone(),
            cores: taken,
        }
    }

    /// Cores not lent at the moment.
    pub fn spare(&self) -> usize {
        self.spare.load(Ordering::Acquire)
    }
}

/// The cores this machine offers the process.
pub fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Cores lent until dropped.
pub struct Loan {
    /// How many.
    pub cores: usize,
    budget: Arc<AtomicUsize>,
}

impl Drop for Loan {
    fn drop(&mut self) {
        self.budget.fetch_add(self.cores, Ordering::AcqRel);
    }
}

/// How many chunks a pipeline works on at once, and where the extra cores come from.
#[derive(Debug, Clone)]
pub struct Spread {
    /// The most chunks at once (`[parallelism] tasks_per_daemon`).
    pub width: usize,
    /// Where cores beyond the pipeline's own thread are borrowed.
    pub budget: CoreBudget,
}

impl Spread {
    /// One chunk at a time, on the caller's thread.
    pub fn one() -> Spread {
        Spread {
            width: 1,
            budget: CoreBudget::new(0),
        }
    }

    /// Up to `width` chunks at once, borrowing from the process's budget.
    pub fn machine(width: usize) -> Spread {
        Spread {
            width: width.max(1),
            budget: CoreBudget::machine(),
        }
    }

    /// `work` over `items` on the caller's thread and as many more as the budget lends (up to
    /// `width` in all), results in item order; see [`ordered_map`].
    pub fn map<T, R>(
        &self,
        items: Vec<T>,
        work: impl Fn(T) -> R + Sync,
        stops: impl Fn(&R) -> bool + Sync,
    ) -> Result<Vec<R>, WorkerPanicked>
    where
        T: Send,
        R: Send,
    {
        // One item, or a width of one, borrows nothing: the caller's thread does it all.
        let wanted = self.width.min(items.len()).saturating_sub(1);
        let loan = self.budget.borrow(wanted);
        let mut workers = vec![(); loan.cores + 1];
        ordered_map(&mut workers, items, |_, item| work(item), stops)
    }
}
