//! An ordered parallel map over a batch's chunks: several workers (each owning what it needs,
//! such as its own wasm instances) take items from a shared counter, and the results come back
//! in item order. Which worker ran which item never changes a result, because workers must be
//! interchangeable — that is what keeps a pipeline's output the same at any parallelism.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// What a panic's payload said, when it said something.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_string()
    } else {
        "a panic without a message".to_string()
    }
}

/// A worker thread panicked (a bug in weir or in a stage).
#[derive(Debug, Clone, thiserror::Error)]
#[error("a worker thread panicked: {0}")]
pub struct WorkerPanicked(pub String);

/// One worker's results (item index, result), or what its panic said.
type WorkerOutcome<R> = Result<Vec<(usize, R)>, String>;

/// Threads for the workers after the first, kept for the process's life: as many as the
/// machine has cores, and never fewer than four, so that workers meant to run at the same
/// time do (a pipeline borrows at most the machine's cores; tests ask for up to four). `None`
/// if the threads could not be started: workers then get threads of their own per call.
fn lane_threads() -> Option<&'static rayon_core::ThreadPool> {
    static POOL: std::sync::LazyLock<Option<rayon_core::ThreadPool>> =
        std::sync::LazyLock::new(|| {
            rayon_core::ThreadPoolBuilder::new()
                .num_threads(super::machine_cores().max(4))
                .thread_name(|i| format!("weir-lane-{i}"))
                .build()
                .ok()
        });
    POOL.as_ref()
}

/// Runs `work(worker, item)` for every item, one thread per worker (the first worker runs on
/// the calling thread, the others on the lane threads kept between calls), and returns the
/// results in item order. Once a result satisfies `stops`, no worker takes another item: the
/// results then cover a prefix-free subset, still in order, and the caller looks for the
/// failure among them.
pub fn ordered_map<W, T, R>(
    workers: &mut [W],
    items: Vec<T>,
    work: impl Fn(&mut W, T) -> R + Sync,
    stops: impl Fn(&R) -> bool + Sync,
) -> Result<Vec<R>, WorkerPanicked>
where
    W: Send,
    T: Send,
    R: Send,
{
    let total = items.len();
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let next = AtomicUsize::new(0);
    let stopped = AtomicBool::new(false);
    let run = |worker: &mut W| -> Vec<(usize, R)> {
        let mut done = Vec::new();
        while !stopped.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(i) else { break };
            let item = match slot.lock() {
                Ok(mut guard) => guard.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            };
            let Some(item) = item else { continue };
            let result = work(worker, item);
            if stops(&result) {
                stopped.store(true, Ordering::Relaxed);
            }
            done.push((i, result));
        }
        done
    };
    let mut results: Vec<(usize, R)> = Vec::with_capacity(total);
    let Some((first, others)) = workers.split_first_mut() else {
        return Ok(Vec::new());
    };
    // Each worker's results, or what its panic said: a panic is caught, so that it is
    // reported like the others' and the scope still waits for every worker.
    let outcomes: Mutex<Vec<WorkerOutcome<R>>> = Mutex::new(Vec::with_capacity(others.len() + 1));
    let guarded = |worker: &mut W| {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(worker)))
            .map_err(|payload| panic_text(payload.as_ref()));
        outcomes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(outcome);
    };
    match lane_threads() {
        // The other workers run on threads kept between calls: a thread spawned per call is
        // often placed on the busy core of its parent and shares it for the few milliseconds
        // a batch lasts (BENCHMARKS.md), while a parked thread wakes on an idle one.
        Some(pool) => pool.in_place_scope(|scope| {
            for worker in others.iter_mut() {
                scope.spawn(|_| guarded(worker));
            }
            guarded(first);
        }),
        None => std::thread::scope(|scope| {
            for worker in others.iter_mut() {
                scope.spawn(|| guarded(worker));
            }
            guarded(first);
        }),
    }
    let mut panicked = None;
    for outcome in outcomes
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        match outcome {
            Ok(mine) => results.extend(mine),
            Err(message) => panicked = Some(message),
        }
    }
    if let Some(message) = panicked {
        return Err(WorkerPanicked(message));
    }
    results.sort_unstable_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Condvar};
    use std::time::{Duration, Instant};

    #[test]
    fn results_come_back_in_item_order_whatever_the_number_of_workers() -> Result<(), WorkerPanicked>
    {
        let items: Vec<u64> = (0..1000).collect();
        let want: Vec<u64> = items.iter().map(|i| i * i).collect();
        for width in 1..=4 {
            let mut workers = vec![(); width];
            let got = ordered_map(&mut workers, items.clone(), |_, i| i * i, |_| false)?;
            assert_eq!(got, want, "{width} workers");
        }
        Ok(())
    }

    #[test]
    fn two_workers_run_at_the_same_time() -> Result<(), WorkerPanicked> {
        // Each item waits (with a deadline) until both workers hold an item at once: with one
        // thread doing all the work, the wait would time out.
        let meeting = Arc::new((Mutex::new(0usize), Condvar::new()));
        let mut workers = vec![meeting.clone(), meeting];
        let met = ordered_map(
            &mut workers,
            vec![1, 2],
            |meeting, _| {
                let (count, arrived) = &**meeting;
                let Ok(mut count) = count.lock() else {
                    return false;
                };
                *count += 1;
                arrived.notify_all();
                let deadline = Instant::now() + Duration::from_secs(20);
                while *count < 2 && Instant::now() < deadline {
                    count = match arrived.wait_timeout(count, deadline - Instant::now()) {
                        Ok((count, _)) => count,
                        Err(_) => return false,
                    };
                }
                *count >= 2
            },
            |_| false,
        )?;
        assert_eq!(met, [true, true]);
        Ok(())
    }

    #[test]
    fn the_workers_after_the_first_run_on_the_lane_threads_kept_between_calls()
    -> Result<(), WorkerPanicked> {
        // Each item waits until both workers hold one, so the second worker takes an item.
        for _ in 0..3 {
            let meeting = Arc::new((Mutex::new(0usize), Condvar::new()));
            let mut workers = vec![meeting.clone(), meeting];
            let names = ordered_map(
                &mut workers,
                vec![1, 2],
                |meeting, _| {
                    let (count, arrived) = &**meeting;
                    if let Ok(mut count) = count.lock() {
                        *count += 1;
                        arrived.notify_all();
                        let deadline = Instant::now() + Duration::from_secs(20);
                        while *count < 2 && Instant::now() < deadline {
                            count = match arrived.wait_timeout(count, deadline - Instant::now()) {
                                Ok((count, _)) => count,
                                Err(_) => break,
                            };
                        }
                    }
                    std::thread::current().name().map(str::to_string)
                },
                |_| false,
            )?;
            let on_lanes = names
                .iter()
                .filter(|name| name.as_deref().is_some_and(|n| n.starts_with("weir-lane-")))
                .count();
            assert_eq!(on_lanes, 1, "{names:?}");
        }
        Ok(())
    }

    #[test]
    fn a_stopping_result_keeps_workers_from_taking_more_items() -> Result<(), WorkerPanicked> {
        let mut workers = vec![()];
        let got = ordered_map(&mut workers, (0..10).collect(), |_, i: u32| i, |i| *i == 3)?;
        assert_eq!(got, [0, 1, 2, 3]);
        Ok(())
    }

    #[test]
    fn a_panicking_worker_is_an_error_not_a_crash() -> Result<(), WorkerPanicked> {
        let mut workers = vec![(), ()];
        let err = ordered_map(
            &mut workers,
            (0..4).collect(),
            |_, i: u32| {
                if i == 2 {
                    panic!("chunk {i} is cursed");
                }
                i
            },
            |_| false,
        );
        // The panic may land on either thread; both ways it is reported, never propagated.
        match err {
            Err(WorkerPanicked(message)) => assert!(message.contains("cursed"), "{message}"),
            Ok(_) => panic!("the panic vanished"),
        }
        Ok(())
    }
}
