//! `kafka`: records of Kafka topics, Spark's Kafka source. weir assigns the partitions itself
//! (found through metadata at every batch, so topics and partitions created later are picked
//! up) and keeps each batch's per-partition offset range in its offsets log: a replay after a
//! crash reads exactly the same records. The consumer reads `read_committed` by default, so a
//! transactional producer's aborted records never appear and offsets stop at the last stable
//! one. After a batch commits, its end offsets are also committed to the consumer group (best
//! effort), so that ordinary lag tools see the pipeline.
//!
//! Offsets are `null` before the first batch (nothing resolved yet), then Spark's
//! `{"topic": {"partition": next offset}}`; see `offsets.rs`.

mod decode;
mod membership;
mod offsets;

use super::bad_records::{BadRecords, MalformedCounts};
use super::{ReadLimit, Source, SourceContext, SourceError, SourceOffset, Wakeup};
use crate::config::{KafkaSourceSpec, KafkaTopics, StartingOffsets};
use crate::kafka::{GroupBatch, GroupLink, WeirContext, client_config, offsets_list};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use decode::PartitionRecords;
use membership::{Membership, Partition};
use offsets::PartitionOffsets;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use decode::schema;

/// How long one metadata or offsets request to the broker may take.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between attempts while the broker cannot be reached.
const MAX_BROKER_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle source asks for new records.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// librdkafka properties weir sets unless `[source.options]` does.
///
/// - `read_committed`: a transactional producer's aborted records never appear.
/// - librdkafka's fetch queue backoff: once a partition's fetched-but-unread records pass a
///   threshold, the next fetch waits `fetch.queue.backoff.ms` (1 s by default) even if the
///   reader empties the queue a millisecond later. weir reads a batch's range as fast as it
///   arrives, so the default left it idle most of the time: 0.13–0.17 M records/s against
///   0.72–0.86 M with 10 ms (BENCHMARKS.md).
/// - The broker's long poll: weir only fetches ranges it knows exist, so a fetch that waits for
///   more data only delays the requests queued behind it on the connection (the next batch's
///   offsets).
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("isolation.level", "read_committed"),
    ("fetch.queue.backoff.ms", "10"),
    ("fetch.wait.max.ms", "50"),
];

/// Spark's `timestamp` value for "the latest offset" and "the earliest offset" in a ListOffsets
/// request.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// The Kafka source.
pub struct KafkaSource {
    spec: KafkaSourceSpec,
    pipeline: String,
    schema: SchemaRef,
    consumer: BaseConsumer<WeirContext>,
    pattern: Option<regex::Regex>,
    bad: BadRecords,
    malformed: MalformedCounts,
    status: Option<String>,
    broker_failures: u32,
    available_now: bool,
    frozen: Option<PartitionOffsets>,
    waiting_since: Option<Instant>,
    lost_records: u64,
    /// Records the last `latest_offset` left for later batches.
    backlog: Option<u64>,
    /// The same per partition (`topic/partition`).
    backlog_parts: Vec<super::PartBacklog>,
    /// With `group_id`: this daemon's member of the group that shares the partitions.
    membership: Option<Membership>,
    /// "joining consumer group …" until the group has given this daemon its partitions, then
    /// which of them it reads.
    group_status: Option<String>,
    /// The last `latest` waited for the group's first assignment (not for a broker).
    joining: bool,
    /// Partitions the group gave back to this daemon while its offsets still held a position
    /// for them: each is compared with the group's committed offset before it is read again.
    returning: BTreeSet<Partition>,
    /// With `group_id`: each batch's group offsets, for exactly-once Kafka sinks.
    group_link: Option<Arc<GroupLink>>,
    /// A client reading uncommitted offsets, made when a partition's read_committed offsets
    /// say records are gone (to tell an open transaction from lost records).
    uncommitted: Option<BaseConsumer<WeirContext>>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("pipeline", &self.pipeline)
            .field("topics", &self.spec.topics)
            .finish()
    }
}

pub(super) fn broker_error(what: &str, err: KafkaError) -> SourceError {
    SourceError::Unavailable(format!("{what}: {err}"))
}

impl KafkaSource {
    /// A source for `spec`; connects lazily (nothing here waits for the broker).
    pub fn open(spec: KafkaSourceSpec, ctx: &SourceContext) -> Result<KafkaSource, SourceError> {
        let group = spec
            .group_id
            .clone()
            .unwrap_or_else(|| format!("weir-{}", ctx.pipeline));
        let client_id = format!("weir-{}", ctx.pipeline);
        let mut config = client_config(
            &spec.bootstrap_servers,
            &spec.options,
            &[
                ("group.id", &group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "error"),
                ("enable.partition.eof", "true"),
            ],
        );
        for (key, value) in CONSUMER_DEFAULTS {
            if !spec.options.contains_key(*key) {
                config.set(*key, *value);
            }
        }
        if !spec.options.contains_key("client.id") {
            config.set("client.id", &client_id);
        }
        let consumer: BaseConsumer<WeirContext> = config
            .create_with_context(WeirContext::new(&ctx.pipeline, "source"))
            .map_err(|err| SourceError::Config(format!("kafka source: {err}")))?;
        let pattern = match &spec.topics {
            KafkaTopics::Pattern(p) => Some(
                regex::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|err| SourceError::Config(format!("subscribe_pattern: {err}")))?,
            ),
            _ => None,
        };
        // An explicit `group_id` shares the partitions with the other daemons in the group.
        let membership = match &spec.group_id {
            Some(group) => Some(Membership::new(&spec, group, &ctx.pipeline)?),
            None => None,
        };
        Ok(KafkaSource {
            group_link: membership.as_ref().map(|_| Arc::new(GroupLink::default())),
            membership,
            group_status: None,
            joining: false,
            returning: BTreeSet::new(),
            schema: decode::schema(&spec),
            bad: BadRecords::new(spec.on_error, "kafka", ctx),
            spec,
            pipeline: ctx.pipeline.clone(),
            consumer,
            pattern,
            malformed: MalformedCounts::default(),
            status: None,
            broker_failures: 0,
            available_now: false,
            frozen: None,
            waiting_since: None,
            lost_records: 0,
            backlog: None,
            backlog_parts: Vec::new(),
            uncommitted: None,
        })
    }

    /// The start and the end of `topic`/`partition` counting uncommitted records (its low and
    /// high watermarks).
    fn watermarks(&mut self, topic: &str, partition: i32) -> Result<(i64, i64), SourceError> {
        if self.uncommitted.is_none() {
            let group = format!("weir-{}-watermarks", self.pipeline);
            let mut weir = vec![
                ("group.id", group.as_str()),
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_uncommitted"),
            ];
            let client_id = format!("weir-{}", self.pipeline);
            if !self.spec.options.contains_key("client.id") {
                weir.push(("client.id", &client_id));
            }
            let consumer = client_config(&self.spec.bootstrap_servers, &self.spec.options, &weir)
                .create_with_context(WeirContext::new(&self.pipeline, "source"))
                .map_err(|err| SourceError::Config(format!("kafka source: {err}")))?;
            self.uncommitted = Some(consumer);
        }
        let Some(consumer) = &self.uncommitted else {
            return Err(SourceError::Unavailable("no consumer (a bug)".into()));
        };
        consumer
            .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
            .map_err(|err| broker_error("reading a partition's watermarks", err))
    }

    /// Records lost to retention or a recreated topic and skipped (`fail_on_data_loss = false`).
    pub fn lost_records(&self) -> u64 {
        self.lost_records
    }

    fn broker_down(&mut self, err: &SourceError) {
        self.broker_failures = self.broker_failures.saturating_add(1);
        let detail = self
            .consumer
            .context()
            .take_error()
            .unwrap_or_else(|| err.to_string());
        let status = format!(
            "waiting for broker {}: {detail}",
            self.spec.bootstrap_servers
        );
        if self.status.as_deref() != Some(status.as_str()) {
            tracing::warn!(pipeline = %self.pipeline, "{status}");
        }
        self.status = Some(status);
    }

    fn broker_up(&mut self) {
        if self.broker_failures > 0 {
            tracing::info!(pipeline = %self.pipeline, "kafka broker {} reachable again", self.spec.bootstrap_servers);
        }
        self.broker_failures = 0;
        self.status = None;
    }

    /// The partitions the source reads now, sorted.
    fn discover(&self) -> Result<Vec<(String, i32)>, SourceError> {
        if let KafkaTopics::Assign(assign) = &self.spec.topics {
            return Ok(assign
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect());
        }
        let metadata = self
            .consumer
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|err| broker_error("listing topics", err))?;
        let mut out = Vec::new();
        for topic in metadata.topics() {
            if topic.error().is_some() {
                continue;
            }
            let wanted = match (&self.spec.topics, &self.pattern) {
                (KafkaTopics::Subscribe(names), _) => names.iter().any(|n| n == topic.name()),
                (KafkaTopics::Pattern(_), Some(re)) => {
                    !topic.name().starts_with("__") && re.is_match(topic.name())
                }
                _ => false,
            };
            if wanted {
                for p in topic.partitions() {
                    out.push((topic.name().to_string(), p.id()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// ListOffsets for `wanted` (partition and "timestamp": a time, [`LATEST`] or
    /// [`EARLIEST`]). A time after the newest record resolves to the latest offset.
    fn list_offsets(&self, wanted: &[(String, i32, i64)]) -> Result<PartitionOffsets, SourceError> {
        let mut out = PartitionOffsets::new();
        if wanted.is_empty() {
            return Ok(out);
        }
        let mut tpl = TopicPartitionList::with_capacity(wanted.len());
        for (topic, partition, at) in wanted {
            let at = match *at {
                LATEST => Offset::End,
                EARLIEST => Offset::Beginning,
                time => Offset::Offset(time),
            };
            tpl.add_partition_offset(topic, *partition, at)
                .map_err(|err| broker_error("listing offsets", err))?;
        }
        let found = self
            .consumer
            .offsets_for_times(tpl, REQUEST_TIMEOUT)
            .map_err(|err| broker_error("listing offsets", err))?;
        let mut after_last = Vec::new();
        for elem in found.elements() {
            elem.error().map_err(|err| {
                broker_error(
                    &format!("listing offsets of {}/{}", elem.topic(), elem.partition()),
                    err,
                )
            })?;
            match elem.offset() {
                Offset::Offset(o) => {
                    out.entry(elem.topic().to_string())
                        .or_default()
                        .insert(elem.partition(), o);
                }
                // No record at or after the time: start after the newest.
                _ => after_last.push((elem.topic().to_string(), elem.partition(), LATEST)),
            }
        }
        if !after_last.is_empty() {
            for (topic, partitions) in self.list_offsets(&after_last)? {
                out.entry(topic).or_default().extend(partitions);
            }
        }
        Ok(out)
    }

    /// Where each new partition starts: the starting offsets before the first batch, the
    /// earliest offset for partitions that appear later (as Spark).
    fn starts_of(
        &self,
        new: &[(String, i32)],
        first: bool,
    ) -> Result<PartitionOffsets, SourceError> {
        // In a group, a partition goes on where its last owner left it.
        let mut fixed = match &self.membership {
            Some(member) => member.group_offsets(new)?,
            None => PartitionOffsets::new(),
        };
        let mut wanted = Vec::with_capacity(new.len());
        for (topic, partition) in new {
            if offsets::get(&fixed, topic, *partition).is_some() {
                continue;
            }
            let at = if !first {
                EARLIEST
            } else {
                match &self.spec.starting_offsets {
                    StartingOffsets::Earliest => EARLIEST,
                    StartingOffsets::Latest => LATEST,
                    StartingOffsets::Timestamp(ms) => *ms,
                    StartingOffsets::Offsets(map) => match offsets::get(map, topic, *partition) {
                        Some(o) if o >= 0 => {
                            fixed
                                .entry(topic.clone())
                                .or_default()
                                .insert(*partition, o);
                            continue;
                        }
                        Some(o) => o,
                        None => LATEST,
                    },
                    StartingOffsets::Timestamps(map) => {
                        offsets::get(map, topic, *partition).unwrap_or(LATEST)
                    }
                }
            };
            wanted.push((topic.clone(), *partition, at));
        }
        let mut out = self.list_offsets(&wanted)?;
        for (topic, partitions) in fixed {
            out.entry(topic).or_default().extend(partitions);
        }
        Ok(out)
    }

    fn latest(
        &mut self,
        start: &SourceOffset,
        limit: ReadLimit,
    ) -> Result<SourceOffset, SourceError> {
        let started = (!start.is_null())
            .then(|| offsets::parse(start))
            .transpose()?;
        let mut partitions = self.discover()?;
        let mut known = started.clone().unwrap_or_default();
        let topics_exist = !partitions.is_empty();
        // Without a group this changes nothing.
        if !self.follow_group(&mut partitions, &mut known)? {
            // Waited for like a broker that is not there yet (a run under `available_now`
            // must not end before it has partitions), without the broker's backoff.
            let group = self.spec.group_id.as_deref().unwrap_or_default();
            let joining = if topics_exist {
                format!("joining consumer group {group}")
            } else {
                format!(
                    "consumer group {group}: none of the topics the source subscribes to exists yet"
                )
            };
            self.group_status = Some(joining.clone());
            self.joining = true;
            return Err(SourceError::Unavailable(joining));
        }
        let held = self.held_back();
        let new: Vec<(String, i32)> = partitions
            .iter()
            .filter(|(t, p)| offsets::get(&known, t, *p).is_none())
            .cloned()
            .collect();
        let mut end = known.clone();
        for (topic, parts) in self.starts_of(&new, started.is_none())? {
            end.entry(topic).or_default().extend(parts);
        }
        let current: Vec<(String, i32, i64)> = partitions
            .iter()
            .filter(|(t, p)| offsets::get(&known, t, *p).is_some())
            .map(|(t, p)| (t.clone(), *p, LATEST))
            .collect();
        let mut latest = self.list_offsets(&current)?;
        for (topic, parts) in latest.iter_mut() {
            for (partition, newest) in parts.iter_mut() {
                let Some(from) = offsets::get(&known, topic, *partition) else {
                    continue;
                };
                // The last stable offset stops at a transaction still open (and Tansu 0.6.0
                // reports an earlier one while any is open): records up to where this
                // pipeline stopped are there, so the partition has nothing new yet.
                if *newest < from && self.watermarks(topic, *partition)?.1 >= from {
                    *newest = from;
                    continue;
                }
                if *newest < from {
                    let message = format!(
                        "{topic} partition {partition} ends at offset {newest}, before offset {from} where this pipeline stopped: the topic was deleted and created again, or truncated"
                    );
                    if self.spec.fail_on_data_loss {
                        return Err(SourceError::DataLoss(message));
                    }
                    tracing::warn!(pipeline = %self.pipeline, "{message}; going on from offset {newest} (fail_on_data_loss = false)");
                }
            }
        }
        for (topic, parts) in latest {
            end.entry(topic).or_default().extend(parts);
        }
        if started.is_none() {
            // The first batch only records where every partition starts.
            return Ok(offsets::to_json(&end));
        }
        if self.available_now {
            let sharing = self.membership.is_some();
            let cap = self.frozen.get_or_insert_with(|| {
                if sharing {
                    // Filled below with the partitions whose latest offset was asked for.
                    PartitionOffsets::new()
                } else {
                    end.clone()
                }
            });
            if sharing {
                // A partition the group gave this daemon after the cap was taken is read up to
                // where it was when this daemon first asked (another member read it up to its
                // own cap).
                for (topic, parts) in &end {
                    for (partition, offset) in parts {
                        if offsets::get(&known, topic, *partition).is_some() {
                            cap.entry(topic.clone())
                                .or_default()
                                .entry(*partition)
                                .or_insert(*offset);
                        }
                    }
                }
            }
            let mut next = offsets::cap_at(&end, cap);
            // Partitions the cap does not know keep their place; in a group, a partition that
            // has just come is registered (and capped by the next batch).
            for (topic, parts) in &known {
                for (partition, offset) in parts {
                    next.entry(topic.clone())
                        .or_default()
                        .entry(*partition)
                        .or_insert(*offset);
                }
            }
            if sharing {
                for (topic, partition) in &new {
                    if let Some(at) = offsets::get(&end, topic, *partition) {
                        next.entry(topic.clone())
                            .or_default()
                            .entry(*partition)
                            .or_insert(at);
                    }
                }
            }
            end = next;
        }
        let available = end.clone();
        // A batch held back by `min_offsets_per_trigger` leaves all of it behind.
        self.set_backlog(&known, &available);
        // A partition whose state is being restored stays where it is; the others go on.
        for (topic, partition) in &held {
            if let Some(at) = offsets::get(&known, topic, *partition)
                && let Some(parts) = end.get_mut(topic)
            {
                parts.insert(*partition, at);
            }
        }
        if self.available_now && !held.is_empty() && end == known {
            // Not the end of the input: what is left waits for its state.
            self.joining = true;
            return Err(SourceError::Unavailable(format!(
                "restoring the state of {} before reading {}",
                list_partitions(&held),
                if held.len() == 1 { "it" } else { "them" }
            )));
        }
        if limit == ReadLimit::SourceLimits {
            if let Some(max) = self.spec.max_offsets_per_trigger {
                end = offsets::rate_limit(&known, &end, max);
            }
            if let Some(min) = self.spec.min_offsets_per_trigger {
                let waited = self
                    .waiting_since
                    .get_or_insert_with(Instant::now)
                    .elapsed();
                if offsets::records_between(&known, &end) < min
                    && waited < self.spec.max_trigger_delay
                    && new.is_empty()
                {
                    return Ok(start.clone());
                }
            }
        }
        // What is there beyond this batch's end, in all and per partition.
        self.set_backlog(&end, &available);
        let end = offsets::to_json(&end);
        if end != *start {
            self.waiting_since = None;
        }
        Ok(end)
    }

    /// Records the backlog between `from` and `to`: per partition, and in all.
    fn set_backlog(&mut self, from: &PartitionOffsets, to: &PartitionOffsets) {
        self.backlog_parts = offsets::records_by_partition(from, to);
        self.backlog = Some(self.backlog_parts.iter().map(|p| p.amount).sum());
    }

    /// Narrows this batch's partitions and known offsets to what the group gives this daemon:
    /// revoked partitions leave the offsets (a partition that comes back later starts where
    /// the group says), and a partition that came back while the offsets still held it is left
    /// out of this batch when the group has moved on past it, so that the next batch registers
    /// it at the group's offset instead of reading what another daemon has read. `false`
    /// before the group's first assignment.
    fn follow_group(
        &mut self,
        partitions: &mut Vec<Partition>,
        known: &mut PartitionOffsets,
    ) -> Result<bool, SourceError> {
        let Some(member) = self.membership.as_mut() else {
            return Ok(true);
        };
        if self.group_link.as_ref().is_some_and(|l| l.transactional()) {
            member.commit_only_in_transactions();
        }
        let mut topics: Vec<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
        topics.dedup();
        member.follow(&topics)?;
        let Some(assigned) = member.assigned() else {
            return Ok(false);
        };
        self.returning.extend(member.take_arrived());
        let found = partitions.len();
        partitions.retain(|p| assigned.contains(p));
        self.group_status = self
            .spec
            .group_id
            .as_deref()
            .map(|group| group_status(group, partitions.as_slice(), found));
        for (topic, parts) in known.iter_mut() {
            parts.retain(|partition, _| assigned.contains(&(topic.clone(), *partition)));
        }
        known.retain(|_, parts| !parts.is_empty());
        // Arrivals the offsets do not hold are new partitions: registered at the group's
        // offset by `starts_of`.
        self.returning.retain(|(t, p)| {
            assigned.contains(&(t.clone(), *p)) && offsets::get(known, t, *p).is_some()
        });
        let returning: Vec<Partition> = self.returning.iter().cloned().collect();
        let group = member.group_offsets(&returning)?;
        for (topic, partition) in returning {
            let ours = offsets::get(known, &topic, partition);
            match offsets::get(&group, &topic, partition) {
                Some(theirs) if ours.is_some_and(|o| theirs > o) => {
                    tracing::info!(pipeline = %self.pipeline, "{topic}/{partition} was read up to offset {theirs} by another member of the group; this daemon goes on from there");
                    if let Some(parts) = known.get_mut(&topic) {
                        parts.remove(&partition);
                    }
                    partitions.retain(|(t, p)| !(t == &topic && *p == partition));
                }
                _ => {
                    self.returning.remove(&(topic, partition));
                }
            }
        }
        known.retain(|_, parts| !parts.is_empty());
        Ok(true)
    }

    /// The partitions the group gives this daemon that a shared aggregation is not ready to
    /// run yet (their state is being restored; `kafka::PartitionGate`): planned where they are.
    fn held_back(&self) -> BTreeSet<Partition> {
        let (Some(link), Some(member)) = (self.group_link.as_ref(), self.membership.as_ref())
        else {
            return BTreeSet::new();
        };
        let Some(gate) = link.gate().filter(|_| link.transactional()) else {
            return BTreeSet::new();
        };
        let topic = gate.topic().to_string();
        let owned: BTreeMap<i32, u64> = member
            .tenures()
            .into_iter()
            .filter(|((t, _), _)| *t == topic)
            .map(|((_, p), tenure)| (p, tenure))
            .collect();
        let mut group_offsets = |partitions: &[i32]| {
            let wanted: Vec<Partition> = partitions.iter().map(|p| (topic.clone(), *p)).collect();
            member
                .group_offsets(&wanted)
                .map(|found| found.get(&topic).cloned().unwrap_or_default())
                .map_err(|err| err.to_string())
        };
        gate.held(&owned, &mut group_offsets)
            .into_iter()
            .map(|p| (topic.clone(), p))
            .collect()
    }

    /// With an exactly-once sink on shared partitions, the part of a batch's planned ranges
    /// this daemon owns when it reads them, each starting where the group's offset is if
    /// another member has read past the planned start since (the batch is retried or replayed
    /// after its partitions moved and came back); the offsets it reaches and the member's
    /// metadata go to the sinks' transaction. A partition another member has moved past the
    /// planned end is not read, nor committed (the group's offset never moves back). Otherwise
    /// the ranges as planned: a replay reads the same records.
    fn owned_ranges(
        &mut self,
        mut from: PartitionOffsets,
        mut until: PartitionOffsets,
    ) -> Result<(PartitionOffsets, PartitionOffsets), SourceError> {
        let (Some(link), Some(member)) = (self.group_link.clone(), self.membership.as_mut()) else {
            return Ok((from, until));
        };
        if !link.transactional() {
            return Ok((from, until));
        }
        member.commit_only_in_transactions();
        link.set(None);
        let topics: Vec<String> = until.keys().cloned().collect();
        let assigned = member.current_assignment(&topics, self.spec.fetch_timeout)?;
        for (topic, parts) in until.iter_mut() {
            parts.retain(|partition, _| assigned.contains(&(topic.clone(), *partition)));
        }
        until.retain(|_, parts| !parts.is_empty());
        let read: Vec<Partition> = until
            .iter()
            .flat_map(|(topic, parts)| parts.keys().map(move |p| (topic.clone(), *p)))
            .filter(|(t, p)| offsets::get(&from, t, *p).is_some())
            .collect();
        let group = member.group_offsets(&read)?;
        let mut commit = PartitionOffsets::new();
        for (topic, partition) in read {
            let (Some(planned), Some(end)) = (
                offsets::get(&from, &topic, partition),
                offsets::get(&until, &topic, partition),
            ) else {
                continue;
            };
            let start = match offsets::get(&group, &topic, partition) {
                Some(theirs) if theirs > planned => {
                    tracing::info!(pipeline = %self.pipeline, "{topic}/{partition}: another member of the group has read up to offset {theirs}; this batch reads on from there");
                    theirs
                }
                _ => planned,
            };
            if start > end {
                // Nothing left to read; `read_range` skips a range that ends where it starts.
                from.entry(topic).or_default().insert(partition, end);
                continue;
            }
            from.entry(topic.clone())
                .or_default()
                .insert(partition, start);
            commit.entry(topic).or_default().insert(partition, end);
        }
        let metadata = member.group_metadata().ok_or_else(|| {
            SourceError::Unavailable("the consumer group member has no generation yet".into())
        })?;
        let tenures = member.tenures();
        link.set(Some(GroupBatch {
            tenures: commit
                .iter()
                .flat_map(|(topic, parts)| parts.keys().map(move |p| (topic.clone(), *p)))
                .map(|p| {
                    let tenure = tenures.get(&p).copied().unwrap_or_default();
                    (p, tenure)
                })
                .collect(),
            offsets: commit,
            metadata,
            group_offsets: group,
        }));
        Ok((from, until))
    }

    /// Reads `[start, end)` of every partition, in topic and partition order.
    fn read_range(
        &mut self,
        start: &PartitionOffsets,
        end: &PartitionOffsets,
    ) -> Result<Vec<PartitionRecords>, SourceError> {
        let mut ranges: Vec<(String, i32, i64, i64)> = Vec::new();
        for (topic, parts) in end {
            for (partition, until) in parts {
                if let Some(from) = offsets::get(start, topic, *partition)
                    && *until > from
                {
                    ranges.push((topic.clone(), *partition, from, *until));
                }
            }
        }
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        // Records below the earliest offset are gone (retention).
        let earliest = self.list_offsets(
            &ranges
                .iter()
                .map(|(t, p, _, _)| (t.clone(), *p, EARLIEST))
                .collect::<Vec<_>>(),
        )?;
        for (topic, partition, from, until) in ranges.iter_mut() {
            let mut first = offsets::get(&earliest, topic, *partition).unwrap_or(*from);
            // Tansu 0.6.0 answers a read_committed ListOffsets for the earliest offset past
            // records of transactions it still holds open; the log's start, as a client that
            // reads uncommitted records sees it, says whether anything was deleted.
            if first > *from {
                first = self.watermarks(topic, *partition)?.0;
            }
            if first > *from {
                let lost = (first.min(*until) - *from) as u64;
                let message = format!(
                    "{topic} partition {partition}: offsets {from}..{} were deleted (retention) before this pipeline read them",
                    first.min(*until)
                );
                if self.spec.fail_on_data_loss {
                    return Err(SourceError::DataLoss(message));
                }
                tracing::warn!(pipeline = %self.pipeline, "{message}; {lost} record(s) skipped (fail_on_data_loss = false)");
                self.lost_records += lost;
                *from = first.min(*until);
            }
        }
        ranges.retain(|(_, _, from, until)| until > from);

        let mut tpl = TopicPartitionList::with_capacity(ranges.len());
        for (topic, partition, from, _) in &ranges {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*from))
                .map_err(|err| broker_error("assigning partitions", err))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|err| broker_error("assigning partitions", err))?;
        let result = self.consume(&ranges);
        let _ = self.consumer.unassign();
        result
    }

    fn consume(
        &mut self,
        ranges: &[(String, i32, i64, i64)],
    ) -> Result<Vec<PartitionRecords>, SourceError> {
        let mut parts: Vec<PartitionRecords> = ranges
            .iter()
            .map(|(t, p, _, _)| PartitionRecords::new(t, *p))
            .collect();
        let mut done = vec![false; ranges.len()];
        // Each record finds its range in one probe, however many partitions a batch reads.
        let index: std::collections::HashMap<(&str, i32), usize> = ranges
            .iter()
            .enumerate()
            .map(|(i, (t, p, _, _))| ((t.as_str(), *p), i))
            .collect();
        let mut pending = ranges.len();
        let deadline = Instant::now() + self.spec.fetch_timeout;
        let with_headers = self.spec.include_headers;
        // The clock is read every 1024 records and whenever a poll comes back empty, not per
        // record (it showed as a tenth of the source's CPU time).
        let mut since_clock = 0u32;
        while pending > 0 {
            since_clock += 1;
            if since_clock >= 1024 && Instant::now() >= deadline {
                let waiting: Vec<String> = ranges
                    .iter()
                    .zip(&done)
                    .filter(|(_, d)| !**d)
                    .map(|((t, p, _, until), _)| format!("{t}/{p} up to offset {until}"))
                    .collect();
                let detail = self
                    .consumer
                    .context()
                    .take_error()
                    .map_or_else(String::new, |e| format!(" (last broker error: {e})"));
                return Err(SourceError::Unavailable(format!(
                    "records did not arrive within fetch_timeout ({:?}): {}{detail}",
                    self.spec.fetch_timeout,
                    waiting.join(", ")
                )));
            }
            if since_clock >= 1024 {
                since_clock = 0;
            }
            let mut check_positions = false;
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {
                    check_positions = true;
                    since_clock = 1024;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => check_positions = true,
                Some(Err(err)) => {
                    tracing::debug!(pipeline = %self.pipeline, "kafka source: {err}");
                    check_positions = true;
                }
                Some(Ok(message)) => {
                    let Some(&i) = index.get(&(message.topic(), message.partition())) else {
                        continue;
                    };
                    if done[i] {
                        continue;
                    }
                    let until = ranges[i].3;
                    if message.offset() < until {
                        parts[i].push(&message, with_headers);
                    }
                    if message.offset() >= until - 1 {
                        done[i] = true;
                        pending -= 1;
                    }
                }
            }
            if check_positions && pending > 0 {
                // A range may end in records read_committed never delivers (aborted ones and
                // transaction markers): the consumer's position says it has passed them.
                if let Ok(positions) = self.consumer.position() {
                    for elem in positions.elements() {
                        if let Offset::Offset(at) = elem.offset()
                            && let Some(&i) = index.get(&(elem.topic(), elem.partition()))
                            && !done[i]
                            && at >= ranges[i].3
                        {
                            done[i] = true;
                            pending -= 1;
                        }
                    }
                }
            }
        }
        Ok(parts)
    }
}

impl Source for KafkaSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn initial_offset(&mut self) -> Result<SourceOffset, SourceError> {
        // Resolved by the first `latest_offset`, which may wait for the broker; this may not.
        Ok(SourceOffset::Null)
    }

    fn latest_offset(
        &mut self,
        start: &SourceOffset,
        limit: ReadLimit,
    ) -> Result<SourceOffset, SourceError> {
        match self.latest(start, limit) {
            Ok(end) => {
                self.broker_up();
                Ok(end)
            }
            // A broker that cannot be reached is waited for, not a failure: the engine waits
            // for `wakeup` (backing off) with this status, and asks again.
            Err(err @ SourceError::Unavailable(_)) if std::mem::take(&mut self.joining) => {
                self.broker_up();
                Err(err)
            }
            Err(err @ SourceError::Unavailable(_)) => {
                self.broker_down(&err);
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    fn read(
        &mut self,
        start: &SourceOffset,
        end: &SourceOffset,
    ) -> Result<Vec<RecordBatch>, SourceError> {
        self.bad.begin();
        self.malformed = MalformedCounts::default();
        if start.is_null() {
            return Ok(Vec::new());
        }
        let (from, until) = self.owned_ranges(offsets::parse(start)?, offsets::parse(end)?)?;
        let parts = self.read_range(&from, &until)?;
        let mut out = Vec::new();
        decode::build(&self.spec, &self.schema, &parts, &mut self.bad, &mut out)?;
        let range = dead_letter_range(start, end);
        self.malformed = self.bad.finish(&range)?;
        Ok(out)
    }

    fn wakeup(&self, _at: &SourceOffset) -> Wakeup {
        if self.broker_failures == 0 {
            return Wakeup::Poll(IDLE_POLL);
        }
        let backoff = IDLE_POLL.saturating_mul(1u32 << self.broker_failures.min(6));
        Wakeup::Poll(backoff.min(MAX_BROKER_BACKOFF))
    }

    fn prepare_available_now(&mut self) {
        self.available_now = true;
    }

    fn committed(&mut self, end: &SourceOffset) -> Result<(), SourceError> {
        if end.is_null() {
            return Ok(());
        }
        if let Some(member) = &self.membership {
            return member.committed(&offsets::parse(end)?);
        }
        if !self.spec.commit_offsets {
            return Ok(());
        }
        let tpl = offsets_list(&offsets::parse(end)?)
            .map_err(|err| broker_error("committing offsets", err))?;
        if tpl.count() == 0 {
            return Ok(());
        }
        // Asynchronous: the outcome arrives at the context's commit callback; nothing here
        // waits for the broker or can fail the committed batch.
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(|err| broker_error("committing offsets to the consumer group", err))
    }

    fn malformed(&self) -> MalformedCounts {
        self.malformed
    }

    fn backlog(&self) -> Option<super::Backlog> {
        self.backlog.map(|amount| super::Backlog {
            amount,
            unit: "records".into(),
            parts: self.backlog_parts.clone(),
        })
    }

    fn status(&self) -> Option<String> {
        self.status.clone().or_else(|| self.group_status.clone())
    }

    fn group_link(&self) -> Option<Arc<GroupLink>> {
        self.group_link.clone()
    }
}

/// Most partitions the status line names one by one.
const PARTITIONS_NAMED: usize = 8;

/// The first [`PARTITIONS_NAMED`] of `partitions` by name (`topic/1`), and how many more
/// there are.
fn first_named<'a>(partitions: impl IntoIterator<Item = &'a Partition>) -> (Vec<String>, usize) {
    let mut named = Vec::new();
    let mut more = 0;
    for (topic, partition) in partitions {
        if named.len() < PARTITIONS_NAMED {
            named.push(format!("{topic}/{partition}"));
        } else {
            more += 1;
        }
    }
    (named, more)
}

/// `topic/1, topic/2, …` (the first few by name).
fn list_partitions(partitions: &BTreeSet<Partition>) -> String {
    let (mut named, more) = first_named(partitions);
    if more > 0 {
        named.push(format!("and {more} more"));
    }
    named.join(", ")
}

/// What `weir status` says of a source sharing partitions: the group, the partitions this
/// daemon reads (the first few by name) and how many the topics have.
fn group_status(group: &str, reads: &[Partition], found: usize) -> String {
    let (mut named, more) = first_named(reads);
    if more > 0 {
        named.push("…".into());
    }
    let list = if named.is_empty() {
        "none".to_string()
    } else {
        named.join(", ")
    };
    format!(
        "consumer group {group}: reads {list} ({} of {found} partitions)",
        reads.len()
    )
}

/// The name of a batch's dead-letter file: a hash of its offset range (the range itself is too
/// long for a file name with many partitions), the same on replay.
fn dead_letter_range(start: &SourceOffset, end: &SourceOffset) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{start}..{end}"));
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("kafka-{hex}")
}

#[cfg(test)]
mod tests {
    use super::group_status;

    #[test]
    fn the_group_status_names_the_first_eight_partitions_read_and_counts_them_against_all_found() {
        let reads: Vec<(String, i32)> = (0..10).map(|p| ("t".to_string(), p)).collect();
        assert_eq!(
            group_status("g", &reads[..2], 4),
            "consumer group g: reads t/0, t/1 (2 of 4 partitions)"
        );
        assert_eq!(
            group_status("g", &reads, 20),
            "consumer group g: reads t/0, t/1, t/2, t/3, t/4, t/5, t/6, t/7, … (10 of 20 partitions)"
        );
        assert_eq!(
            group_status("g", &[], 4),
            "consumer group g: reads none (0 of 4 partitions)"
        );
    }
}
