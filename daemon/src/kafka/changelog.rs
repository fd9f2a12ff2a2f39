//! The changelog topic of an aggregation whose partitions are shared through a consumer group
//! (`window::tasks`): every task's state changes, written by the exactly-once sink in the same
//! transaction as the batch's output and the source's offsets, so a partition that moves to
//! another daemon finds there exactly the state that goes with the group's offset.
//!
//! Topic `<group>-<pipeline>-changelog`, compacted, partitioned like the input: the changes of
//! the task reading input partition `p` go to changelog partition `p`. A record's key is the
//! state key under the task's prefix (a group's window and key, or the task's metadata); its
//! value is the stored value, or none for a deletion. Two keys of weir's own:
//!
//! - `r`: the windows a batch evicted, a key range `[from, to)`. Ranges always start at the first
//!   window and grow with the watermark, so the latest covers every earlier one, and compaction
//!   keeping only the latest loses nothing.
//! - `o`: the input offset the task's state has reached, written in every transaction for every
//!   partition whose offsets it commits. A restore reads up to the `o` record that equals the
//!   group's committed offset: what lies beyond it (a transaction a broker let through although
//!   it was aborted) is not state that goes with that offset.

use super::{WeirContext, client_config};
use crate::state::{WriteOp, WriteSet};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Key of the record naming the input offset a transaction's changes reach.
const REACHED: &[u8] = b"o";
/// Key of an eviction's key range.
const EVICTED: &[u8] = b"r";
/// How long a restore waits past the end of a changelog partition that has never said which
/// offset it reached before it takes the partition for empty (a broker may report the end
/// before the last records; see ARCHITECTURE.md on Tansu).
const EMPTY_GRACE: Duration = Duration::from_secs(1);
/// A restore reports its progress every this many records.
const PROGRESS_EVERY: usize = 10_000;

/// A task's state: each key under its prefix and the value.
pub type TaskState = BTreeMap<Vec<u8>, Vec<u8>>;

/// One change to a task's state, for the changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// The changelog partition: the task's input partition.
    pub partition: i32,
    /// The state key under the task's prefix, or one of weir's own (`r`, `o`).
    pub key: Vec<u8>,
    /// The value; `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

/// A batch's changelog records and the topic they go to.
#[derive(Debug, Clone, Default)]
pub struct ChangelogBatch {
    /// `<group>-<pipeline>-changelog`.
    pub topic: String,
    /// In the order they were made.
    pub records: Vec<ChangelogRecord>,
}

/// The changelog topic of `pipeline` sharing its partitions through `group`.
pub fn topic_name(group: &str, pipeline: &str) -> String {
    format!("{group}-{pipeline}-changelog")
}

/// Adds to `out` the changes in `changes` to keys under `prefix` (one task's), as changelog
/// records of `partition`. Keys outside the prefix are not the task's and are left out.
pub fn add_changes(
    changes: &WriteSet,
    prefix: &[u8],
    partition: i32,
    out: &mut Vec<ChangelogRecord>,
) {
    for op in changes.ops() {
        let (key, value) = match op {
            WriteOp::Put(key, value) => match key.strip_prefix(prefix) {
                Some(k) => (k.to_vec(), Some(value.clone())),
                None => continue,
            },
            WriteOp::Delete(key) => match key.strip_prefix(prefix) {
                Some(k) => (k.to_vec(), None),
                None => continue,
            },
            WriteOp::DeleteRange(from, to) => {
                let (Some(from), Some(to)) = (from.strip_prefix(prefix), to.strip_prefix(prefix))
                else {
                    continue;
                };
                (EVICTED.to_vec(), Some(encode_range(from, to)))
            }
        };
        out.push(ChangelogRecord {
            partition,
            key,
            value,
        });
    }
}

/// The record saying that `partition`'s state has reached input offset `offset`.
pub fn reached(partition: i32, offset: i64) -> ChangelogRecord {
    ChangelogRecord {
        partition,
        key: REACHED.to_vec(),
        value: Some(offset.to_be_bytes().to_vec()),
    }
}

fn encode_range(from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + from.len() + to.len());
    out.extend_from_slice(&(from.len() as u32).to_be_bytes());
    out.extend_from_slice(from);
    out.extend_from_slice(to);
    out
}

fn decode_range(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let rest = bytes.get(4..)?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

fn reached_offset(record: &(Vec<u8>, Option<Vec<u8>>)) -> Option<i64> {
    if record.0 != REACHED {
        return None;
    }
    let bytes: [u8; 8] = record.1.as_deref()?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

/// Adds to `out` what one changelog record does to a copy of the task's state kept under
/// `prefix` (a put, a deletion, an eviction's key range); `Ok(Some(offset))` for the record
/// saying which input offset the state has reached, which changes no key.
pub fn apply_record(
    prefix: &[u8],
    key: &[u8],
    value: Option<&[u8]>,
    out: &mut WriteSet,
) -> Result<Option<i64>, String> {
    let under = |k: &[u8]| [prefix, k].concat();
    if key == REACHED {
        let offset = value
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .ok_or("a changelog offset record is malformed")?;
        return Ok(Some(i64::from_be_bytes(offset)));
    }
    if key == EVICTED {
        let (from, to) = value
            .and_then(decode_range)
            .ok_or("a changelog eviction record is malformed")?;
        out.delete_range(under(from), under(to));
        return Ok(None);
    }
    match value {
        Some(v) => out.put(under(key), v.to_vec()),
        None => out.delete(under(key)),
    }
    Ok(None)
}

/// The state a partition's changelog records leave, in offset order: each key under the task's
/// prefix and its value (weir's own keys are applied, not kept).
pub fn replay(
    records: &[(Vec<u8>, Option<Vec<u8>>)],
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, String> {
    let mut state = BTreeMap::new();
    for (key, value) in records {
        if key == REACHED {
            continue;
        }
        if key == EVICTED {
            let Some((from, to)) = value.as_deref().and_then(decode_range) else {
                return Err("a changelog eviction record is malformed".into());
            };
            let gone: Vec<Vec<u8>> = state
                .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
                .map(|(k, _): (&Vec<u8>, _)| k.clone())
                .collect();
            for key in gone {
                state.remove(&key);
            }
            continue;
        }
        match value {
            Some(v) => {
                state.insert(key.clone(), v.clone());
            }
            None => {
                state.remove(key);
            }
        }
    }
    Ok(state)
}

/// Of a partition's changelog records in offset order, those that go with input offset
/// `until` (the group's committed offset): up to the last `o` record equal to it. `None` when
/// no record says it has reached `until` yet.
pub fn cut_at(records: &[(Vec<u8>, Option<Vec<u8>>)], until: i64) -> Option<usize> {
    records
        .iter()
        .rposition(|r| reached_offset(r) == Some(until))
        .map(|i| i + 1)
}

/// Where a pipeline's changelog lives and how it is reached.
#[derive(Debug, Clone)]
pub struct ChangelogTopic {
    /// `bootstrap.servers`.
    pub servers: String,
    /// The source's librdkafka options (security settings apply here too).
    pub options: BTreeMap<String, String>,
    /// The consumer group the partitions are shared through.
    pub group: String,
    /// The pipeline.
    pub pipeline: String,
    /// The input topic, partitioned as the changelog is.
    pub input: String,
    /// Longest one broker request may take.
    pub timeout: Duration,
}

impl ChangelogTopic {
    /// The changelog's name.
    pub fn name(&self) -> String {
        topic_name(&self.group, &self.pipeline)
    }

    /// Creates the changelog (compacted, with as many partitions as the input) unless it
    /// exists.
    pub fn ensure(&self) -> Result<(), String> {
        let broker = super::topics::Broker {
            servers: &self.servers,
            options: &self.options,
            timeout: self.timeout,
        };
        super::topics::ensure(
            broker,
            "changelog",
            &self.name(),
            &self.input,
            &[("cleanup.policy", "compact")],
        )
    }

    /// How many partitions the changelog has (`None`: it does not exist yet), asking the
    /// broker for at most `timeout`.
    pub fn partition_count(&self, timeout: Duration) -> Result<Option<usize>, String> {
        let consumer = self.consumer("changelog metadata")?;
        let name = self.name();
        let metadata = consumer
            .fetch_metadata(Some(&name), timeout)
            .map_err(|err| format!("changelog {name}: {err}"))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .map(|t| t.partitions().len())
            .filter(|n| *n > 0))
    }

    /// A reader of the changelog (`read_committed`, no group offsets), for `role`.
    pub fn reader(&self, role: &'static str) -> Result<BaseConsumer<WeirContext>, String> {
        self.consumer(role)
    }

    /// Whether the partition holds records beyond what `committed` (a `read_committed`
    /// reader) can reach: its high watermark, as a `read_uncommitted` client (made once, kept
    /// in `uncommitted`) sees it, past the last stable offset.
    fn open_transaction_ahead(
        &self,
        committed: &BaseConsumer<WeirContext>,
        partition: i32,
        uncommitted: &mut Option<BaseConsumer<WeirContext>>,
    ) -> Result<bool, String> {
        let name = self.name();
        let reader = match uncommitted {
            Some(c) => c,
            None => {
                uncommitted.insert(self.consumer_isolated("changelog restore", "read_uncommitted")?)
            }
        };
        let (_, high) = reader
            .fetch_watermarks(&name, partition, self.timeout)
            .map_err(|err| format!("changelog {name}/{partition}: {err}"))?;
        let (_, stable) = committed
            .fetch_watermarks(&name, partition, self.timeout)
            .map_err(|err| format!("changelog {name}/{partition}: {err}"))?;
        Ok(high > stable)
    }

    fn consumer(&self, role: &'static str) -> Result<BaseConsumer<WeirContext>, String> {
        self.consumer_isolated(role, "read_committed")
    }

    fn consumer_isolated(
        &self,
        role: &'static str,
        isolation: &str,
    ) -> Result<BaseConsumer<WeirContext>, String> {
        let group = format!("{}-restore", self.group);
        client_config(
            &self.servers,
            &self.options,
            &[
                ("group.id", &group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("isolation.level", isolation),
                ("enable.partition.eof", "true"),
                ("auto.offset.reset", "earliest"),
                // A restore holds up its batch: no waiting for a fuller fetch.
                ("fetch.wait.max.ms", "10"),
                ("fetch.queue.backoff.ms", "10"),
            ],
        )
        .create_with_context(WeirContext::new(&self.pipeline, role))
        .map_err(|err| format!("kafka changelog reader: {err}"))
    }

    /// [`ChangelogTopic::restore`] of several partitions, `threads` at a time (each reads
    /// with a consumer of its own); `progress` hears the records read by all of them so far.
    /// The results are in the order of `wanted`.
    pub fn restore_many(
        &self,
        wanted: &[(i32, Option<i64>)],
        threads: usize,
        patience: Duration,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Vec<(i32, Option<i64>, Result<TaskState, String>)> {
        let read = AtomicUsize::new(0);
        let mut out = Vec::with_capacity(wanted.len());
        for group in wanted.chunks(threads.max(1)) {
            std::thread::scope(|scope| {
                let running: Vec<_> = group
                    .iter()
                    .map(|&(partition, until)| {
                        let read = &read;
                        let thread = scope.spawn(move || {
                            let mut seen = 0;
                            self.restore(partition, until, patience, &mut |n| {
                                let more = n.saturating_sub(seen);
                                let total = read.fetch_add(more, Ordering::Relaxed) + more;
                                seen = n;
                                progress(total);
                            })
                        });
                        (partition, until, thread)
                    })
                    .collect();
                for (partition, until, thread) in running {
                    let state = thread
                        .join()
                        .unwrap_or_else(|_| Err("a restore's thread panicked".into()));
                    out.push((partition, until, state));
                }
            });
        }
        out
    }

    /// The state of `partition`'s task that goes with input offset `until` (the group's
    /// committed offset; `None`: nothing committed, so no state). Reads the changelog
    /// partition from its start up to the `o` record equal to `until`, giving up when no
    /// record has come for `patience`; `progress` hears how many records have been read, now
    /// and then.
    pub fn restore(
        &self,
        partition: i32,
        until: Option<i64>,
        patience: Duration,
        progress: &mut dyn FnMut(usize),
    ) -> Result<TaskState, String> {
        let Some(until) = until else {
            return Ok(BTreeMap::new());
        };
        let name = self.name();
        let consumer = self.consumer("changelog restore")?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&name, partition, Offset::Beginning)
            .map_err(|err| format!("changelog {name}/{partition}: {err}"))?;
        consumer
            .assign(&tpl)
            .map_err(|err| format!("reading changelog {name}/{partition}: {err}"))?;
        // Patience is for a changelog that stops short of the offset, not for a long one: it
        // starts again with every record read.
        let mut deadline = Instant::now() + patience;
        let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut at_end = false;
        // When the end was reached with nothing read since, and whether any record said which
        // offset it reached.
        let mut quiet_end: Option<Instant> = None;
        let mut any_reached = false;
        let mut uncommitted = None;
        let mut said_open = false;
        loop {
            if at_end && let Some(cut) = cut_at(&records, until) {
                records.truncate(cut);
                return replay(&records);
            }
            if !any_reached
                && quiet_end.is_some_and(|t| t.elapsed() >= EMPTY_GRACE)
                && self.open_transaction_ahead(&consumer, partition, &mut uncommitted)?
            {
                // Records are there that a transaction still open hides (a producer that died
                // in it, until the broker aborts it): not an empty changelog. Looked at again
                // a grace later; `patience` bounds the wait.
                if !said_open {
                    tracing::info!(pipeline = %self.pipeline, "changelog {name}/{partition}: a transaction still open holds its records back; waiting for it");
                    said_open = true;
                }
                quiet_end = Some(Instant::now());
            }
            if !any_reached && quiet_end.is_some_and(|t| t.elapsed() >= EMPTY_GRACE) {
                // Never written, or deleted (with `weir state reset`'s advice): there is no
                // state to restore, only offsets to go on from.
                tracing::warn!(
                    pipeline = %self.pipeline,
                    "changelog {name}/{partition} holds no state for input offset {until} (it was deleted, or the group's offsets were committed without it): the task starts empty from there"
                );
                return Ok(TaskState::new());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "changelog {name}/{partition} does not reach input offset {until} (the group's committed offset): {} records read, none in the last {patience:?}",
                    records.len()
                ));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(message)) => {
                    deadline = Instant::now() + patience;
                    quiet_end = None;
                    any_reached |= message.key() == Some(REACHED);
                    if records.len().is_multiple_of(PROGRESS_EVERY) {
                        progress(records.len());
                    }
                    records.push((
                        message.key().unwrap_or_default().to_vec(),
                        message.payload().map(<[u8]>::to_vec),
                    ));
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    at_end = true;
                    quiet_end.get_or_insert_with(Instant::now);
                }
                Some(Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::UnknownTopicOrPartition,
                ))) => {
                    // Created a moment ago; its metadata has not reached every broker yet.
                }
                Some(Err(err)) => {
                    return Err(format!("reading changelog {name}/{partition}: {err}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &WriteSet, prefix: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut state = BTreeMap::new();
        for op in changes.ops() {
            match op {
                WriteOp::Put(k, v) => {
                    state.insert(k[prefix.len()..].to_vec(), v.clone());
                }
                WriteOp::Delete(k) => {
                    state.remove(&k[prefix.len()..]);
                }
                WriteOp::DeleteRange(from, to) => {
                    state.retain(|k: &Vec<u8>, _| {
                        k.as_slice() < &from[prefix.len()..] || k.as_slice() >= &to[prefix.len()..]
                    });
                }
            }
        }
        state
    }

    fn as_read(records: &[ChangelogRecord]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        records
            .iter()
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect()
    }

    #[test]
    fn replaying_a_tasks_changelog_gives_the_state_its_write_sets_left() -> Result<(), String> {
        let prefix = b"p\0x\0t\x80\0\0\x01".to_vec();
        let key = |k: &str| [prefix.as_slice(), k.as_bytes()].concat();
        let mut changes = WriteSet::default();
        changes.put(key("a1w1"), b"10".to_vec());
        changes.put(key("a2w2"), b"20".to_vec());
        changes.put(key("a3w3"), b"30".to_vec());
        changes.put(key("m"), b"meta".to_vec());
        changes.put(b"p\0x\0t\x80\0\0\x02a1".to_vec(), b"other task".to_vec());
        changes.delete(key("a3w3"));
        changes.delete_range(key("a"), key("a2"));
        changes.put(key("a9w9"), b"90".to_vec());
        let mut records = Vec::new();
        add_changes(&changes, &prefix, 1, &mut records);
        records.push(reached(1, 42));
        assert!(records.iter().all(|r| r.partition == 1));
        let state = replay(&as_read(&records))?;
        assert_eq!(state, applied(&changes, &prefix));
        assert_eq!(
            state.keys().cloned().collect::<Vec<_>>(),
            [b"a2w2".to_vec(), b"a9w9".to_vec(), b"m".to_vec()]
        );
        Ok(())
    }

    #[test]
    fn a_restore_stops_at_the_last_record_reaching_the_groups_offset() {
        let records = vec![
            (b"a1".to_vec(), Some(b"1".to_vec())),
            (REACHED.to_vec(), Some(10i64.to_be_bytes().to_vec())),
            (b"a1".to_vec(), Some(b"2".to_vec())),
            (REACHED.to_vec(), Some(20i64.to_be_bytes().to_vec())),
            (b"a1".to_vec(), Some(b"garbage".to_vec())),
        ];
        assert_eq!(cut_at(&records, 10), Some(2));
        assert_eq!(cut_at(&records, 20), Some(4));
        assert_eq!(cut_at(&records, 30), None);
    }

    #[test]
    fn a_malformed_eviction_record_is_an_error_not_a_panic() {
        let records = vec![(EVICTED.to_vec(), Some(vec![0, 0, 0, 9, 1]))];
        assert!(replay(&records).is_err());
        let records = vec![(EVICTED.to_vec(), None)];
        assert!(replay(&records).is_err());
    }
}
