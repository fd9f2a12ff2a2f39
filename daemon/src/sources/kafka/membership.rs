//! The pipeline's membership of its consumer group (`group_id`): the daemons running the same
//! pipeline split the topics' partitions through Kafka's own group protocol (cooperative-sticky
//! unless `partition.assignment.strategy` says otherwise; `group.instance.id` in the options is
//! static membership), and a partition's position moves with it through the group's committed
//! offsets.
//!
//! The member is a consumer of its own that never reads a record: it subscribes, pauses what it
//! is given, commits, and is polled only between batches — in `latest_offset`, on the pipeline's
//! thread — so the rebalance callbacks run when no batch of this pipeline is in flight. The
//! records are read by the source's reader, which assigns exact ranges as without a group.
//!
//! Hand-over: when a partition is revoked, the member commits, synchronously and inside the
//! callback (so before the group can give the partition to anyone else), the end of the last
//! batch this daemon committed for it; the next owner starts there. A clean rebalance therefore
//! neither skips nor repeats a record. A daemon that dies leaves its last asynchronous commit,
//! and the batch it had planned is replayed when it comes back: at least once.
//!
//! With an exactly-once Kafka sink the offsets move only in the sink's transactions
//! ([`crate::kafka::GroupLink`]): the member then commits nothing itself, and is also polled
//! when a batch is read, so that a batch reads only what the group gives this daemon at that
//! moment, under the generation its transaction is fenced by.

use super::offsets::{self, PartitionOffsets};
use super::{REQUEST_TIMEOUT, broker_error};
use crate::config::KafkaSourceSpec;
use crate::kafka::{WeirContext, client_config, offsets_list};
use crate::sources::SourceError;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A topic and partition.
pub(super) type Partition = (String, i32);

/// Most events one poll serves: the member has nothing to read, so this only bounds a poll that
/// keeps finding events.
const MAX_EVENTS_PER_POLL: usize = 64;

/// This daemon's member of the pipeline's consumer group.
pub(super) struct Membership {
    consumer: BaseConsumer<MemberContext>,
    /// The topics subscribed to, sorted.
    subscribed: Vec<String>,
}

impl Membership {
    /// A member of `group` for `spec`; it joins at its first [`Membership::follow`].
    pub fn new(spec: &KafkaSourceSpec, group: &str, pipeline: &str) -> Result<Self, SourceError> {
        let mut config = client_config(
            &spec.bootstrap_servers,
            &spec.options,
            &[
                ("group.id", group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                // The member reads nothing (it pauses what it is given); where a fetch would
                // start does not matter.
                ("auto.offset.reset", "latest"),
            ],
        );
        // KIP-848's protocol assigns on the broker, incrementally, and refuses a client-side
        // strategy.
        let broker_assigns = spec
            .options
            .get("group.protocol")
            .is_some_and(|p| p == "consumer");
        if !broker_assigns && !spec.options.contains_key("partition.assignment.strategy") {
            // Partitions that stay with their member are not stopped by a rebalance.
            config.set("partition.assignment.strategy", "cooperative-sticky");
        }
        if !spec.options.contains_key("client.id") {
            config.set("client.id", format!("weir-{pipeline}-member"));
        }
        let consumer: BaseConsumer<MemberContext> = config
            .create_with_context(MemberContext {
                weir: WeirContext::new(pipeline, "group member"),
                pipeline: pipeline.to_string(),
                group: group.to_string(),
                transactional: AtomicBool::new(false),
                state: Mutex::new(MemberState::default()),
            })
            .map_err(|err| SourceError::Config(format!("kafka source: {err}")))?;
        Ok(Membership {
            consumer,
            subscribed: Vec::new(),
        })
    }

    /// Subscribes to `topics` (the ones the source wants that exist now) if they changed, and
    /// serves the group's events: joins, rebalances, commit results.
    pub fn follow(&mut self, topics: &[String]) -> Result<(), SourceError> {
        if topics != self.subscribed.as_slice() {
            if topics.is_empty() {
                self.consumer.unsubscribe();
            } else {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                self.consumer
                    .subscribe(&names)
                    .map_err(|err| broker_error("subscribing", err))?;
            }
            self.subscribed = topics.to_vec();
        }
        self.poll();
        Ok(())
    }

    /// Serves the group's events that have arrived.
    fn poll(&self) {
        for _ in 0..MAX_EVENTS_PER_POLL {
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                // Paused partitions deliver nothing; a record fetched before the pause is
                // read by the reader, not here.
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    tracing::debug!(pipeline = %self.consumer.context().pipeline, "kafka group member: {err}")
                }
            }
        }
    }

    /// The offsets move in an exactly-once sink's transactions: the member commits nothing.
    pub fn commit_only_in_transactions(&self) {
        self.consumer
            .context()
            .transactional
            .store(true, Ordering::SeqCst);
    }

    /// Serves the group's events and returns what it gives this daemon now, waiting up to
    /// `patience` for a first assignment (subscribing to `topics` if nothing is subscribed:
    /// a batch replayed after a restart is read before any plan has subscribed).
    pub fn current_assignment(
        &mut self,
        topics: &[String],
        patience: Duration,
    ) -> Result<BTreeSet<Partition>, SourceError> {
        if self.subscribed.is_empty() {
            self.follow(topics)?;
        }
        let deadline = Instant::now() + patience;
        loop {
            self.poll();
            if let Some(assigned) = self.assigned() {
                return Ok(assigned);
            }
            if Instant::now() >= deadline {
                return Err(SourceError::Unavailable(format!(
                    "consumer group {} gave this daemon no partitions within {patience:?}",
                    self.consumer.context().group
                )));
            }
            // Waits for the group's next event (the member has nothing to read).
            if let Some(Err(err)) = self.consumer.poll(Duration::from_millis(100)) {
                tracing::debug!(pipeline = %self.consumer.context().pipeline, "kafka group member: {err}");
            }
        }
    }

    /// The member's id and generation, which fence a transaction's offsets.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// The partitions the group gives this daemon, or `None` before its first assignment.
    pub fn assigned(&self) -> Option<BTreeSet<Partition>> {
        self.consumer
            .context()
            .with_state(|s| s.assigned.as_ref().map(|a| a.keys().cloned().collect()))
            .flatten()
    }

    /// Each assigned partition's tenure: a number that changes whenever the group gives the
    /// partition to this daemon again.
    pub fn tenures(&self) -> BTreeMap<Partition, u64> {
        self.consumer
            .context()
            .with_state(|s| s.assigned.clone())
            .flatten()
            .unwrap_or_default()
    }

    /// The partitions assigned since the last call (all of them after a start).
    pub fn take_arrived(&self) -> BTreeSet<Partition> {
        self.consumer
            .context()
            .with_state(|s| std::mem::take(&mut s.arrived))
            .unwrap_or_default()
    }

    /// Where the group says each of `partitions` goes on: the offset its last owner committed.
    /// Partitions the group has no offset for are left out.
    pub fn group_offsets(&self, partitions: &[Partition]) -> Result<PartitionOffsets, SourceError> {
        let mut out = PartitionOffsets::new();
        if partitions.is_empty() {
            return Ok(out);
        }
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            tpl.add_partition(topic, *partition);
        }
        let found = self
            .consumer
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .map_err(|err| broker_error("reading the group's offsets", err))?;
        for elem in found.elements() {
            if let Offset::Offset(at) = elem.offset()
                && at >= 0
            {
                out.entry(elem.topic().to_string())
                    .or_default()
                    .insert(elem.partition(), at);
            }
        }
        Ok(out)
    }

    /// Records the end of a committed batch for the partitions this daemon still owns and
    /// commits it to the group (asynchronously; a revocation commits it again, synchronously).
    /// Nothing when the offsets move in transactions.
    pub fn committed(&self, end: &PartitionOffsets) -> Result<(), SourceError> {
        if self.consumer.context().transactional.load(Ordering::SeqCst) {
            return Ok(());
        }
        let owned = self
            .consumer
            .context()
            .with_state(|s| {
                let assigned = s.assigned.clone().unwrap_or_default();
                let mut owned = PartitionOffsets::new();
                for (topic, parts) in end {
                    for (partition, offset) in parts {
                        if assigned.contains_key(&(topic.clone(), *partition)) {
                            owned
                                .entry(topic.clone())
                                .or_default()
                                .insert(*partition, *offset);
                        }
                    }
                }
                for (topic, parts) in &owned {
                    s.committed
                        .entry(topic.clone())
                        .or_default()
                        .extend(parts.iter().map(|(p, o)| (*p, *o)));
                }
                owned
            })
            .unwrap_or_default();
        let tpl = offsets_list(&owned).map_err(|err| broker_error("committing offsets", err))?;
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(|err| broker_error("committing offsets to the consumer group", err))
    }
}

#[derive(Debug, Default)]
struct MemberState {
    /// What the group gives this member, each partition with its tenure (the number of the
    /// assignment that gave it); `None` before the first assignment.
    assigned: Option<BTreeMap<Partition, u64>>,
    /// Assigned since the source last took them.
    arrived: BTreeSet<Partition>,
    /// The end of the last batch this daemon committed, for the partitions it owns.
    committed: PartitionOffsets,
    /// Assignments served so far.
    arrivals: u64,
}

/// The member's callbacks: librdkafka's log and errors as the other clients', and the
/// rebalance: commit what leaves, pause and record what arrives.
struct MemberContext {
    weir: WeirContext,
    pipeline: String,
    group: String,
    /// Offsets move only in an exactly-once sink's transactions: no hand-over commit.
    transactional: AtomicBool,
    state: Mutex<MemberState>,
}

impl MemberContext {
    fn with_state<T>(&self, f: impl FnOnce(&mut MemberState) -> T) -> Option<T> {
        self.state.lock().ok().map(|mut s| f(&mut s))
    }
}

fn names(tpl: &TopicPartitionList) -> Vec<Partition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

fn list(partitions: &[Partition]) -> String {
    partitions
        .iter()
        .map(|(t, p)| format!("{t}/{p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ClientContext for MemberContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.weir.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.weir.error(error, reason);
    }
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let leaving = names(tpl);
        if self.transactional.load(Ordering::SeqCst) {
            // The last transaction committed these partitions' offsets with their output.
            return;
        }
        if consumer.assignment_lost() {
            tracing::warn!(pipeline = %self.pipeline, group = %self.group, "the consumer group took {} from this daemon without a hand-over (its session expired): the next owner starts at the group's last committed offsets", list(&leaving));
            return;
        }
        let handed_over = self
            .with_state(|s| {
                let mut out = PartitionOffsets::new();
                for (topic, partition) in &leaving {
                    if let Some(at) = offsets::get(&s.committed, topic, *partition) {
                        out.entry(topic.clone()).or_default().insert(*partition, at);
                    }
                }
                out
            })
            .unwrap_or_default();
        let committed = offsets_list(&handed_over)
            .map_err(|err| broker_error("handing over offsets", err))
            .and_then(|tpl| {
                if tpl.count() == 0 {
                    return Ok(());
                }
                consumer
                    .commit(&tpl, CommitMode::Sync)
                    .map_err(|err| broker_error("handing over offsets", err))
            });
        if let Err(err) = committed {
            tracing::warn!(pipeline = %self.pipeline, group = %self.group, "{err}: the next owner of {} may read again records this daemon has written", list(&leaving));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let arriving = names(tpl);
                // The member reads nothing: the reader assigns the ranges it plans.
                if let Err(err) = consumer.pause(tpl) {
                    tracing::debug!(pipeline = %self.pipeline, "pausing the group member's partitions: {err}");
                }
                let now = self.with_state(|s| {
                    s.arrivals += 1;
                    let assigned = s.assigned.get_or_insert_with(BTreeMap::new);
                    for p in &arriving {
                        assigned.insert(p.clone(), s.arrivals);
                        s.arrived.insert(p.clone());
                    }
                    assigned.len()
                });
                tracing::info!(pipeline = %self.pipeline, group = %self.group, "consumer group gave this daemon {}; it reads {} partition(s)", list(&arriving), now.unwrap_or(0));
            }
            Rebalance::Revoke(tpl) => {
                let leaving = names(tpl);
                let now = self.with_state(|s| {
                    let assigned = s.assigned.get_or_insert_with(BTreeMap::new);
                    for (topic, partition) in &leaving {
                        assigned.remove(&(topic.clone(), *partition));
                        s.arrived.remove(&(topic.clone(), *partition));
                        if let Some(parts) = s.committed.get_mut(topic) {
                            parts.remove(partition);
                        }
                    }
                    assigned.len()
                });
                tracing::info!(pipeline = %self.pipeline, group = %self.group, "consumer group moved {} to another member; this daemon reads {} partition(s)", list(&leaving), now.unwrap_or(0));
            }
            Rebalance::Error(err) => {
                tracing::warn!(pipeline = %self.pipeline, group = %self.group, "consumer group rebalance failed: {err}");
            }
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(err) = result {
            tracing::warn!(pipeline = %self.pipeline, group = %self.group, "committing offsets to the consumer group failed (a partition that moves now may be read again by its next owner): {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceSpec;
    use std::path::Path;

    fn member(options: &str) -> Result<Membership, SourceError> {
        let text = format!(
            "name = \"p\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"localhost:9092\"\nsubscribe = [\"t\"]\ngroup_id = \"g\"\n[source.options]\n{options}\n[[sink]]\ntype = \"null\"\n"
        );
        let plan = crate::config::parse_pipeline(Path::new("/x/p.toml"), &text)
            .unwrap_or_else(|err| panic!("{err}"));
        let SourceSpec::Kafka(spec) = plan.source else {
            panic!("{:?}", plan.source);
        };
        Membership::new(&spec, "g", "p")
    }

    #[test]
    fn a_member_on_kip_848s_consumer_protocol_leaves_the_assignment_to_the_broker_and_one_on_the_classic_protocol_is_cooperative_sticky()
     {
        assert!(
            member("").is_ok(),
            "the classic protocol, cooperative-sticky"
        );
        match member("\"group.protocol\" = \"consumer\"") {
            Ok(_) => {}
            Err(err) => panic!("the consumer protocol with no client-side strategy: {err}"),
        }
        // librdkafka refuses a client-side strategy with the consumer protocol: weir sets none.
        let refused = member(
            "\"group.protocol\" = \"consumer\"\n\"partition.assignment.strategy\" = \"range\"",
        );
        assert!(refused.is_err(), "librdkafka refuses both together");
    }
}
