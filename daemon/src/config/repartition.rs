//! The repartition topic of an aggregation on partitions shared through a consumer group
//! whose groups are not known to sit in one partition each (Kafka Streams' repartition
//! topics). The pipeline file then runs as two parts: a *writer* reads the file's source in
//! its group and writes every row, exactly once, to `<group>-<pipeline>-repartition` keyed by
//! the `group_by` columns; the aggregation reads that topic in a group of its own, one task
//! per partition, where each group's rows now all are.

use super::aggregate::AggregateSpec;
use super::datagen::ColumnType;
use super::file_source::FileColumn;
use super::kafka::{
    KafkaDestination, KafkaFormat, KafkaSinkSpec, KafkaSourceSpec, KafkaTopics, KafkaValue,
    StartingOffsets,
};
use super::on_error::OnError;
use super::source::SourceSpec;
use std::collections::BTreeMap;

/// How a pipeline file's rows reach its aggregation through a repartition topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Repartition {
    /// The topic: `<group>-<pipeline>-repartition`.
    pub topic: String,
    /// The pipeline file's consumer group (the writer reads the input in it; the changelog is
    /// named after it).
    pub group: String,
    /// Writes the file's source's rows to `topic`, keyed by the group columns, exactly once.
    pub writer: KafkaSinkSpec,
    /// Reads `topic` for the aggregation, in the group `<group>-<pipeline>-aggregate`.
    pub reader: SourceSpec,
}

/// The repartition topic's name.
pub fn topic_name(group: &str, pipeline: &str) -> String {
    format!("{group}-{pipeline}-repartition")
}

/// The name the writer runs under (its checkpoint, logs and client ids): `<pipeline>/repartition`,
/// which no pipeline file can take (`/` is not allowed in names).
pub fn writer_name(pipeline: &str) -> String {
    format!("{pipeline}/repartition")
}

/// The consumer group the aggregation reads the repartition topic in.
pub fn reader_group(group: &str, pipeline: &str) -> String {
    format!("{group}-{pipeline}-aggregate")
}

/// Whether an aggregation by `aggregate` on `source` (shared through a group) must go through
/// a repartition topic: unless the source says it is partitioned by columns the aggregation
/// groups by, a group's rows may be in several partitions.
pub fn needed(source: &KafkaSourceSpec, aggregate: &AggregateSpec) -> bool {
    source.partitioned_by.is_empty()
        || !source
            .partitioned_by
            .iter()
            .all(|p| aggregate.group_by.iter().any(|g| &g.name == p))
}

/// Consumer-only librdkafka properties, left out of the writer's producer (librdkafka would
/// warn about each one).
const CONSUMER_ONLY: &[&str] = &[
    "group.",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "auto.offset.reset",
    "auto.commit.",
    "enable.auto.",
    "enable.partition.eof",
    "isolation.level",
    "fetch.",
    "queued.",
    "check.crcs",
    "coordinator.query.interval.ms",
];

/// The columns the reader decodes: the file's source's rows, as the writer encodes them.
fn row_columns(source: &KafkaSourceSpec) -> Option<Vec<FileColumn>> {
    let mut columns = match source.format {
        KafkaFormat::Json | KafkaFormat::Csv => source.columns.clone(),
        KafkaFormat::Text => vec![FileColumn {
            name: "value".into(),
            data_type: ColumnType::String,
        }],
        // Binary columns have no JSON form the reader could decode.
        KafkaFormat::Raw => return None,
    };
    if source.include_timestamp {
        columns.push(FileColumn {
            name: "timestamp".into(),
            data_type: ColumnType::Timestamp,
        });
    }
    Some(columns)
}

/// The two parts of `pipeline`, whose source `source` is shared through `group`; `None` when
/// the source's rows cannot be written as JSON (`format = "raw"`) or it reads no single topic.
pub fn plan(
    pipeline: &str,
    group: &str,
    source: &KafkaSourceSpec,
    aggregate: &AggregateSpec,
) -> Option<Repartition> {
    let KafkaTopics::Subscribe(topics) = &source.topics else {
        return None;
    };
    let input = topics.first()?.clone();
    let columns = row_columns(source)?;
    let topic = topic_name(group, pipeline);
    let keys: Vec<String> = aggregate.group_by.iter().map(|g| g.name.clone()).collect();
    let producer_options: BTreeMap<String, String> = source
        .options
        .iter()
        .filter(|(k, _)| !CONSUMER_ONLY.iter().any(|c| k.starts_with(c)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let writer = KafkaSinkSpec {
        bootstrap_servers: source.bootstrap_servers.clone(),
        destination: KafkaDestination::Topic(topic.clone()),
        key_column: None,
        value: KafkaValue::Json,
        headers_column: None,
        timestamp_column: None,
        exactly_once: true,
        transactional_id: None,
        compression: None,
        options: producer_options,
        key_columns: keys.clone(),
        create_topic_like: Some(input),
        column_locations: BTreeMap::new(),
    };
    let reader = KafkaSourceSpec {
        bootstrap_servers: source.bootstrap_servers.clone(),
        topics: KafkaTopics::Subscribe(vec![topic.clone()]),
        starting_offsets: StartingOffsets::Earliest,
        max_offsets_per_trigger: source.max_offsets_per_trigger,
        min_offsets_per_trigger: None,
        max_trigger_delay: source.max_trigger_delay,
        fail_on_data_loss: true,
        format: KafkaFormat::Json,
        columns,
        delimiter: source.delimiter,
        quote: source.quote,
        include_headers: false,
        include_timestamp: false,
        // weir wrote every record: one it cannot decode is a fault to stop at, not to skip.
        on_error: OnError::Fail,
        group_id: Some(reader_group(group, pipeline)),
        commit_offsets: true,
        partitioned_by: keys,
        task_column: true,
        fetch_timeout: source.fetch_timeout,
        options: source.options.clone(),
    };
    Some(Repartition {
        topic,
        group: group.to_string(),
        writer,
        reader: SourceSpec::Kafka(reader),
    })
}
