//! A model of shared partitions at a scale this machine cannot run: 100 daemons and 10 000
//! partitions, with an aggregation's state per partition. It simulates a sticky, balanced
//! assignment (what cooperative-sticky converges to: every member within one partition of the
//! mean, and as few partitions moved as that allows) through the events a deployment sees,
//! and prices each with what `window::restore` does when a partition arrives (the changelog
//! partition read whole, unless the daemon's own copy is up to date; four partitions at a
//! time, each read as soon as its own restore is done, beside the tasks that keep running) at
//! the restore rate measured here by the kafka bench (BENCHMARKS.md).
//!
//! Run: `cargo bench -p weir --bench scale_model` (a few milliseconds; no broker). What it
//! prints is discussed in ARCHITECTURE.md ("Scale-out at 100 daemons").

use std::collections::BTreeMap;

/// Measured by the kafka bench: restores four at a time, seconds per GiB of changelog read by
/// the four together (7.2 and 6.6 in two runs).
const RESTORE_SECONDS_PER_GIB: f64 = 6.9;
/// Partitions a daemon restores at once (`window::restore`).
const RESTORES_AT_ONCE: usize = 4;
const DAEMONS: usize = 100;
const PARTITIONS: usize = 10_000;

/// Who owns each partition.
struct Assignment {
    owner: Vec<usize>,
    members: Vec<usize>,
}

impl Assignment {
    fn round_robin(members: usize, partitions: usize) -> Assignment {
        Assignment {
            owner: (0..partitions).map(|p| p % members).collect(),
            members: (0..members).collect(),
        }
    }

    fn counts(&self) -> BTreeMap<usize, usize> {
        let mut counts: BTreeMap<usize, usize> = self.members.iter().map(|m| (*m, 0)).collect();
        for o in &self.owner {
            if let Some(c) = counts.get_mut(o) {
                *c += 1;
            }
        }
        counts
    }

    /// Rebalances for the current members, moving as few partitions as balance allows; returns
    /// the moved partitions and, per receiving member, how many it got.
    fn rebalance(&mut self) -> (usize, BTreeMap<usize, usize>) {
        let n = self.owner.len();
        let m = self.members.len();
        let (base, extra) = (n / m, n % m);
        // The members with the most partitions keep the one extra each.
        let mut counts = self.counts();
        let mut order: Vec<usize> = self.members.clone();
        order.sort_by_key(|member| std::cmp::Reverse(counts.get(member).copied().unwrap_or(0)));
        let target: BTreeMap<usize, usize> = order
            .iter()
            .enumerate()
            .map(|(i, member)| (*member, base + usize::from(i < extra)))
            .collect();
        let mut free = Vec::new();
        for (p, owner) in self.owner.iter().enumerate() {
            match counts.get_mut(owner) {
                Some(c) if *c > target[owner] => {
                    *c -= 1;
                    free.push(p);
                }
                Some(_) => {}
                None => free.push(p),
            }
        }
        let moved = free.len();
        let mut received = BTreeMap::new();
        for member in &self.members {
            let have = counts.get(member).copied().unwrap_or(0);
            for _ in have..target[member] {
                if let Some(p) = free.pop() {
                    self.owner[p] = *member;
                    *received.entry(*member).or_insert(0) += 1;
                }
            }
        }
        (moved, received)
    }
}

/// One event's cost: partitions moved, GiB restored, and for the daemon that receives most,
/// how long until the first of its arrivals is read and until the last is (restored four at
/// a time; the partitions it already ran do not wait for them).
fn price(
    event: &str,
    moved: usize,
    received: &BTreeMap<usize, usize>,
    state_gib: f64,
    reused: usize,
) {
    let restored = moved.saturating_sub(reused);
    let busiest = received.values().copied().max().unwrap_or(0);
    let seconds = |partitions: usize| partitions as f64 * state_gib * RESTORE_SECONDS_PER_GIB;
    println!(
        "  {event:<52} {moved:>5} moved, {:>8.1} GiB restored; busiest daemon reads its first arrival after {:>6.1} s, its last after {:>7.1} s",
        restored as f64 * state_gib,
        seconds(busiest.min(RESTORES_AT_ONCE)),
        seconds(busiest),
    );
}

fn main() {
    for state_mib in [10.0, 100.0, 1024.0] {
        let gib = state_mib / 1024.0;
        println!(
            "{DAEMONS} daemons, {PARTITIONS} partitions, {state_mib} MiB of state per partition ({:.0} GiB in all, the compacted changelog's size):",
            gib * PARTITIONS as f64
        );
        let mut a = Assignment::round_robin(DAEMONS, PARTITIONS);

        // One daemon killed: its partitions spread over the rest.
        a.members.retain(|m| *m != 7);
        let (moved, received) = a.rebalance();
        price("one daemon killed (kill -9)", moved, &received, gib, 0);

        // It comes back: the group takes a share from everyone; its own copy is stale (the
        // partitions moved on elsewhere), so it restores them all.
        a.members.push(7);
        let (moved, received) = a.rebalance();
        price(
            "it starts again (its copy is stale)",
            moved,
            &received,
            gib,
            0,
        );

        // A daemon added for more capacity.
        a.members.push(DAEMONS);
        let (moved, received) = a.rebalance();
        price("a 101st daemon joins", moved, &received, gib, 0);

        // A rolling restart, one daemon at a time, without static membership: each leaves
        // (its partitions move out) and joins again (a share moves back, restored again).
        let mut moved_all = 0;
        let mut worst: BTreeMap<usize, usize> = BTreeMap::new();
        for member in a.members.clone() {
            a.members.retain(|m| *m != member);
            let (out, got) = a.rebalance();
            a.members.push(member);
            let (back, got_back) = a.rebalance();
            moved_all += out + back;
            for (k, v) in got.into_iter().chain(got_back) {
                let w = worst.entry(k).or_insert(0);
                *w = (*w).max(v);
            }
        }
        price(
            "rolling restart of all 101, no static membership",
            moved_all,
            &worst,
            gib,
            0,
        );
        // With `group.instance.id` and a restart within session.timeout.ms nothing moves, and
        // each daemon goes on from its own store.
        price(
            "rolling restart with static membership",
            0,
            &BTreeMap::new(),
            gib,
            0,
        );
        println!();
    }
    // What every batch adds to the changelog on top of the state changes: one `o` record per
    // partition the daemon owns (16 bytes of key and value, plus Kafka's record overhead).
    let per_daemon = PARTITIONS / DAEMONS;
    println!(
        "each batch of each daemon writes {per_daemon} offset records to the changelog besides its state changes ({} per second in all at one batch per second)",
        per_daemon * DAEMONS
    );
}
