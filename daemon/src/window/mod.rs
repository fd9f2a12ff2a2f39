//! Stateful aggregation: group-by, event-time windows (tumbling, sliding, session), watermarks
//! and Spark's output modes, with state written through to the store at every commit.
//!
//! Pure parts (window arithmetic, grouping, accumulators) are separate from the operator that
//! ties them to batches and commits; only `persist.rs` knows the state's key layout.

mod accumulators;
mod assign;
mod chunk_groups;
mod fingerprint;
mod groups;
mod local_keys;
mod operator;
mod partials;
mod persist;
mod resolve;
mod restore;
mod standby;
mod tasks;

pub use accumulators::{AggregateError, GroupsAccumulator, UserAggregateFn};
pub use operator::{AggregateOperator, OpenError, check_stored_state};
pub use persist::STATE_FORMAT;
pub use resolve::{AggregatePlan, UserAggregates, resolve, window_type};
pub use restore::{RestoreGate, Restored};
pub use standby::standby_prefix;
pub use tasks::{TaskSettings, TaskedAggregate, task_prefix};

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
