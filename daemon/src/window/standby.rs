//! Standby copies (`[aggregate] standby = true`; Kafka Streams' standby replicas): a thread
//! that follows the changelog of every partition of a shared aggregation this daemon does not
//! run, and keeps a warm copy of each partition's state in the local store, so that when the
//! group gives the daemon one of them (another daemon died or left) the task opens on that copy
//! instead of reading the changelog from its start.
//!
//! The copy of partition `p` lives under `pipeline prefix | 'w' | p`, apart from the tasks'
//! state: the same keys as the task's (its groups and metadata), plus `o` (the input offset the
//! copy has reached, from the changelog's offset records) and `c` (the changelog offset to read
//! on from). Records are written to it only in whole steps, up to an offset record each, so the
//! copy always holds a state that goes with its `o`; the writes are not synced (a copy lost in
//! a crash is a copy behind, which is still one that goes with its `o`).
//!
//! One follower runs per pipeline in the process: a new one (a reload) stops the last before
//! it writes.

use crate::kafka::changelog::{ChangelogTopic, TaskState, apply_record};
use crate::state::{SharedStore, WriteSet, pipeline_prefix, prefix_end};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Key under a copy's prefix: the input offset it has reached.
const REACHED: &[u8] = b"o";
/// Key under a copy's prefix: the changelog offset to read on from.
const POSITION: &[u8] = b"c";
/// How often the follower looks at what it should follow, and waits for a missing changelog.
const TICK: Duration = Duration::from_millis(100);

/// The prefix of the standby copy of `partition`'s state.
pub fn standby_prefix(pipeline: &str, partition: i32) -> Vec<u8> {
    let mut prefix = pipeline_prefix(pipeline);
    prefix.push(b'w');
    prefix.extend_from_slice(&((partition as u32) ^ (1 << 31)).to_be_bytes());
    prefix
}

/// What the follower and the gate share.
struct Shared {
    pipeline: String,
    store: SharedStore,
    /// Partitions this daemon runs: not followed.
    owned: Mutex<BTreeSet<i32>>,
    stop: AtomicBool,
    /// Held while a step is written and while a copy is read, so a read sees whole steps.
    writing: Mutex<()>,
}

/// The running follower of one pipeline in this process, stopped by the next.
struct Running {
    shared: Arc<Shared>,
    thread: JoinHandle<()>,
}

fn followers() -> &'static Mutex<HashMap<String, Running>> {
    static FOLLOWERS: OnceLock<Mutex<HashMap<String, Running>>> = OnceLock::new();
    FOLLOWERS.get_or_init(Default::default)
}

/// See the module's documentation. Dropping it stops its thread.
pub struct Standby {
    shared: Arc<Shared>,
}

impl Standby {
    /// Starts following `changelog` for `pipeline`, into `store`.
    pub fn start(pipeline: &str, changelog: ChangelogTopic, store: SharedStore) -> Standby {
        let shared = Arc::new(Shared {
            pipeline: pipeline.to_string(),
            store,
            owned: Mutex::new(BTreeSet::new()),
            stop: AtomicBool::new(false),
            writing: Mutex::new(()),
        });
        let for_thread = shared.clone();
        let mut all = followers().lock().unwrap_or_else(|e| e.into_inner());
        let before = all.remove(pipeline);
        if let Some(before) = &before {
            before.shared.stop.store(true, Ordering::SeqCst);
        }
        let spawned = std::thread::Builder::new()
            .name("weir-standby".into())
            .spawn(move || {
                // The last follower of this pipeline writes nothing more once it has ended.
                if let Some(before) = before {
                    let _ = before.thread.join();
                }
                follow(&for_thread, &changelog);
            });
        match spawned {
            Ok(thread) => {
                all.insert(
                    pipeline.to_string(),
                    Running {
                        shared: shared.clone(),
                        thread,
                    },
                );
            }
            Err(err) => {
                tracing::warn!(pipeline, "standby copies: could not start a thread: {err}");
            }
        }
        Standby { shared }
    }

    /// The partitions this daemon runs now (their copies are no longer kept).
    pub fn set_owned(&self, owned: BTreeSet<i32>) {
        *self.shared.owned.lock().unwrap_or_else(|e| e.into_inner()) = owned;
    }

    /// A reader of the copies, for a thread of its own.
    pub fn reader(&self) -> CopyReader {
        CopyReader {
            shared: self.shared.clone(),
        }
    }
}

/// Reads the standby copies (see [`Standby::reader`]).
#[derive(Clone)]
pub struct CopyReader {
    shared: Arc<Shared>,
}

impl CopyReader {
    /// The input offset the copy of `partition` has reached, if there is one.
    pub fn reached(&self, partition: i32) -> Option<i64> {
        let key = [
            standby_prefix(&self.shared.pipeline, partition).as_slice(),
            REACHED,
        ]
        .concat();
        let value = self.shared.store.get(&key).ok().flatten()?;
        Some(i64::from_be_bytes(value.as_slice().try_into().ok()?))
    }

    /// The copy of `partition`'s state if it has reached input offset `until` exactly.
    pub fn copy_at(&self, partition: i32, until: i64) -> Result<Option<TaskState>, String> {
        let prefix = standby_prefix(&self.shared.pipeline, partition);
        let _whole = self
            .shared
            .writing
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let store = &self.shared.store;
        let reached = store
            .get(&[prefix.as_slice(), REACHED].concat())
            .map_err(|e| e.to_string())?;
        if reached.as_deref() != Some(&until.to_be_bytes()[..]) {
            return Ok(None);
        }
        let mut state = TaskState::new();
        store
            .scan(&prefix, &prefix_end(&prefix), false, &mut |key, value| {
                let key = &key[prefix.len()..];
                if key != REACHED && key != POSITION {
                    state.insert(key.to_vec(), value.to_vec());
                }
                true
            })
            .map_err(|e| e.to_string())?;
        Ok(Some(state))
    }
}

impl Drop for Standby {
    /// Stops the follower and waits for it (a tick at most): once its pipeline is gone nothing
    /// writes its copies, so a `weir state reset` after a stop deletes them for good.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut all = followers().lock().unwrap_or_else(|e| e.into_inner());
        let ours = all
            .get(&self.shared.pipeline)
            .is_some_and(|r| Arc::ptr_eq(&r.shared, &self.shared));
        let running = if ours {
            all.remove(&self.shared.pipeline)
        } else {
            None
        };
        drop(all);
        if let Some(running) = running {
            let _ = running.thread.join();
        }
    }
}

/// The follower's loop: until stopped, reads every partition it should follow from where its
/// copy stands and writes each step.
fn follow(shared: &Shared, changelog: &ChangelogTopic) {
    let name = changelog.name();
    let mut consumer: Option<BaseConsumer<_>> = None;
    let mut partitions = 0usize;
    let mut following: BTreeSet<i32> = BTreeSet::new();
    // Each followed partition's records since its last offset record.
    let mut pending: BTreeMap<i32, WriteSet> = BTreeMap::new();
    let mut failure: Option<String> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let step = (|| -> Result<(), String> {
            if partitions == 0 {
                partitions = changelog.partition_count(TICK * 10)?.unwrap_or(0);
                if partitions == 0 {
                    std::thread::sleep(TICK);
                    return Ok(());
                }
            }
            let reader = match &consumer {
                Some(c) => c,
                None => consumer.insert(changelog.reader("changelog standby")?),
            };
            let owned = shared
                .owned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let wanted: BTreeSet<i32> = (0..partitions as i32)
                .filter(|p| !owned.contains(p))
                .collect();
            if wanted != following {
                let mut tpl = TopicPartitionList::with_capacity(wanted.len());
                for p in &wanted {
                    let at = position(shared, *p)?;
                    tpl.add_partition_offset(
                        &name,
                        *p,
                        at.map_or(Offset::Beginning, Offset::Offset),
                    )
                    .map_err(|e| e.to_string())?;
                }
                reader.assign(&tpl).map_err(|e| e.to_string())?;
                pending.clear();
                following = wanted;
            }
            for _ in 0..1000 {
                match reader.poll(TICK) {
                    None => break,
                    Some(Ok(message)) => {
                        let p = message.partition();
                        if !following.contains(&p) {
                            continue;
                        }
                        let prefix = standby_prefix(&shared.pipeline, p);
                        let step = pending.entry(p).or_default();
                        if let Some(offset) = apply_record(
                            &prefix,
                            message.key().unwrap_or_default(),
                            message.payload(),
                            step,
                        )? {
                            let mut step = pending.remove(&p).unwrap_or_default();
                            step.put(
                                [prefix.as_slice(), REACHED].concat(),
                                offset.to_be_bytes().to_vec(),
                            );
                            step.put(
                                [prefix.as_slice(), POSITION].concat(),
                                (message.offset() + 1).to_be_bytes().to_vec(),
                            );
                            let _whole = shared.writing.lock().unwrap_or_else(|e| e.into_inner());
                            shared.store.write(step, false).map_err(|e| e.to_string())?;
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    Some(Err(err)) => return Err(err.to_string()),
                }
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            Ok(())
        })();
        match step {
            Ok(()) => {
                if failure.take().is_some() {
                    tracing::info!(pipeline = %shared.pipeline, "standby copies: following changelog {name} again");
                }
            }
            Err(err) => {
                if failure.as_deref() != Some(err.as_str()) {
                    tracing::warn!(pipeline = %shared.pipeline, "standby copies: reading changelog {name}: {err}; trying again");
                }
                failure = Some(err);
                // Read again from where the copies stand.
                consumer = None;
                following.clear();
                pending.clear();
                for _ in 0..10 {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(TICK);
                }
            }
        }
    }
}

/// The changelog offset the copy of `partition` reads on from (`None`: from its start).
fn position(shared: &Shared, partition: i32) -> Result<Option<i64>, String> {
    let key = [
        standby_prefix(&shared.pipeline, partition).as_slice(),
        POSITION,
    ]
    .concat();
    let Some(value) = shared.store.get(&key).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = value
        .as_slice()
        .try_into()
        .map_err(|_| "a standby copy's position is malformed".to_string())?;
    Ok(Some(i64::from_be_bytes(bytes)))
}
