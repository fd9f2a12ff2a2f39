//! What the Kafka source and sink share: librdkafka's configuration from a pipeline's settings,
//! and a client context that routes librdkafka's log and errors to tracing, remembers the last
//! error for the pipeline's status ("waiting for broker ...") and counts failed deliveries.
//!
//! Every client call weir makes is synchronous and bounded by a timeout; sources and sinks run
//! on the engine's blocking path, so a slow broker never stalls the tokio runtime.

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{ConsumerContext, ConsumerGroupMetadata};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::ProducerContext;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub mod changelog;
pub mod topics;

/// The column a Kafka source adds, for an aggregation shared through a consumer group, with
/// each row's partition: the task the row belongs to (`window::tasks`).
pub const TASK_COLUMN: &str = "__weir_partition";

/// A librdkafka configuration: weir's settings over the pipeline's `options`.
pub fn client_config(
    servers: &str,
    options: &BTreeMap<String, String>,
    weir: &[(&str, &str)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in options {
        config.set(key, value);
    }
    config.set("bootstrap.servers", servers);
    for (key, value) in weir {
        config.set(*key, *value);
    }
    config
}

/// Next offsets per topic and partition as librdkafka's list (what commits and transactions
/// take). Fails only on a topic name librdkafka cannot hold.
pub fn offsets_list(
    offsets: &BTreeMap<String, BTreeMap<i32, i64>>,
) -> Result<TopicPartitionList, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for (topic, parts) in offsets {
        for (partition, offset) in parts {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
    }
    Ok(tpl)
}

/// librdkafka's callbacks for one client of one pipeline.
#[derive(Debug)]
pub struct WeirContext {
    pipeline: String,
    role: &'static str,
    last_error: Mutex<Option<String>>,
    failed_deliveries: AtomicU64,
    first_failed_delivery: Mutex<Option<String>>,
}

impl WeirContext {
    /// A context for `pipeline`'s `role` ("source", "sink #2").
    pub fn new(pipeline: &str, role: &'static str) -> WeirContext {
        WeirContext {
            pipeline: pipeline.to_string(),
            role,
            last_error: Mutex::new(None),
            failed_deliveries: AtomicU64::new(0),
            first_failed_delivery: Mutex::new(None),
        }
    }

    /// The last error librdkafka reported (a broker down, a refused login), taken.
    pub fn take_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|mut e| e.take())
    }

    /// Failed deliveries since the last call, and the first one's reason.
    pub fn take_failed_deliveries(&self) -> (u64, Option<String>) {
        let n = self.failed_deliveries.swap(0, Ordering::SeqCst);
        let first = self
            .first_failed_delivery
            .lock()
            .ok()
            .and_then(|mut e| e.take());
        (n, first)
    }
}

impl ClientContext for WeirContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let pipeline = &self.pipeline;
        let role = self.role;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(pipeline = %pipeline, "kafka {role}: {facility}: {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(pipeline = %pipeline, "kafka {role}: {facility}: {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(pipeline = %pipeline, "kafka {role}: {facility}: {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(pipeline = %pipeline, "kafka {role}: {facility}: {message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // A broker that is down is reported every few seconds while it stays down: debug here,
        // the pipeline's status says it once.
        tracing::debug!(pipeline = %self.pipeline, "kafka {}: {error}: {reason}", self.role);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason.to_string());
        }
    }
}

impl ConsumerContext for WeirContext {
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &rdkafka::TopicPartitionList,
    ) {
        if let Err(err) = result {
            tracing::warn!(
                pipeline = %self.pipeline,
                "committing offsets to the consumer group failed (lag tools lag behind; the pipeline's own offsets are safe): {err}"
            );
        }
    }
}

impl ProducerContext for WeirContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((err, _)) = result {
            self.failed_deliveries.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut first) = self.first_failed_delivery.lock()
                && first.is_none()
            {
                *first = Some(err.to_string());
            }
        }
    }
}

/// What a Kafka source that shares its partitions through a consumer group (`group_id`) hands
/// to the pipeline's exactly-once Kafka sinks for the batch being written: the offsets its
/// partitions reach with this batch, and its group member's metadata (member id and
/// generation). The sinks commit both in the batch's transaction, so the group's offsets move
/// only with the output, and a daemon whose partitions have moved to another member (an older
/// generation) is fenced by the broker instead of writing them twice.
///
/// A shared aggregation (`window::tasks`) adds the batch's state changes for the changelog
/// topic, which the first exactly-once sink writes in the same transaction.
#[derive(Debug, Default)]
pub struct GroupLink {
    /// Set when an exactly-once sink is built on the link: the offsets move in its transactions.
    transactional: AtomicBool,
    batch: Mutex<Option<Arc<GroupBatch>>>,
    changelog: Mutex<Option<changelog::ChangelogBatch>>,
    /// Set by a shared aggregation: which partitions may be read yet.
    gate: Mutex<Option<Arc<dyn PartitionGate>>>,
}

/// Asked by the source before it plans a batch: which of the partitions the group gives this
/// daemon may be read in it. A shared aggregation (`window::restore`) holds a partition back
/// while it restores the partition's state from the changelog beside the tasks that go on, so
/// an arrival does not stop the partitions this daemon already runs.
pub trait PartitionGate: Send + Sync {
    /// The topic whose partitions it decides on.
    fn topic(&self) -> &str;

    /// Of `owned` (each partition of [`PartitionGate::topic`] the group gives this daemon, with
    /// its tenure), those the batch must not read yet. `group_offsets` reads the group's
    /// committed offsets of the partitions asked (those without one are left out).
    fn held(&self, owned: &BTreeMap<i32, u64>, group_offsets: GroupOffsets<'_>) -> BTreeSet<i32>;
}

/// Reads the group's committed offsets of some partitions of the gated topic.
pub type GroupOffsets<'a> = &'a mut dyn FnMut(&[i32]) -> Result<BTreeMap<i32, i64>, String>;

/// One batch's group offsets (see [`GroupLink`]).
pub struct GroupBatch {
    /// Next offset to read, per topic and partition this daemon read in the batch.
    pub offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    /// The member that owned them when the batch was read.
    pub metadata: ConsumerGroupMetadata,
    /// Where the group's committed offsets stood for those partitions when the batch was read
    /// (a partition with no committed offset is absent): the point a task's state is restored
    /// to from its changelog.
    pub group_offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Each partition's tenure on this daemon: a number that changes whenever the group gives
    /// the partition to this daemon again, so a task kept across a rebalance that took its
    /// partition away and back is known to be stale.
    pub tenures: BTreeMap<(String, i32), u64>,
}

impl std::fmt::Debug for dyn PartitionGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionGate")
            .field("topic", &self.topic())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for GroupBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupBatch")
            .field("offsets", &self.offsets)
            .finish_non_exhaustive()
    }
}

impl GroupLink {
    /// An exactly-once sink commits the source's offsets in its transactions from now on.
    pub fn commit_in_transactions(&self) {
        self.transactional.store(true, Ordering::SeqCst);
    }

    /// Whether the offsets move in the sinks' transactions.
    pub fn transactional(&self) -> bool {
        self.transactional.load(Ordering::SeqCst)
    }

    /// The source's offsets for the batch being written (`None`: nothing to commit).
    pub fn set(&self, batch: Option<GroupBatch>) {
        if let Ok(mut current) = self.batch.lock() {
            *current = batch.map(Arc::new);
        }
    }

    /// What the source read for the batch being written.
    pub fn current(&self) -> Option<Arc<GroupBatch>> {
        self.batch.lock().ok().and_then(|b| b.clone())
    }

    /// The batch's state changes for the changelog (`None`: none to write).
    pub fn set_changelog(&self, batch: Option<changelog::ChangelogBatch>) {
        if let Ok(mut current) = self.changelog.lock() {
            *current = batch;
        }
    }

    /// Gates the partitions the source reads from now on (a shared aggregation's restores).
    pub fn set_gate(&self, gate: Arc<dyn PartitionGate>) {
        if let Ok(mut current) = self.gate.lock() {
            *current = Some(gate);
        }
    }

    /// The gate, if an aggregation set one.
    pub fn gate(&self) -> Option<Arc<dyn PartitionGate>> {
        self.gate.lock().ok().and_then(|g| g.clone())
    }

    /// The batch's state changes, taken by the sink whose transaction writes them.
    pub fn take_changelog(&self) -> Option<changelog::ChangelogBatch> {
        self.changelog.lock().ok().and_then(|mut c| c.take())
    }
}
