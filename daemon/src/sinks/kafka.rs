//! `kafka`: each batch's rows as records of a Kafka topic.
//!
//! The producer is always idempotent, and a batch commits in weir only after every record of it
//! is acknowledged by the broker: at-least-once by default (a batch retried after a failure may
//! be written again).
//!
//! `exactly_once = true` writes each batch in one Kafka transaction with a stable
//! `transactional.id`, so `read_committed` consumers see a batch whole or not at all. The same
//! transaction also commits, as a consumer-group offset, which batch it carried: `batch id + 1`
//! for the group `<transactional.id>.<checkpoint id>` on the topic's partition 0. Starting the
//! producer (`init_transactions`) aborts whatever transaction a killed weir left open; the
//! group's committed offset then says which batch Kafka has. A batch weir replays after a crash
//! between Kafka's commit and its own is recognised and not written again; one killed before
//! Kafka's commit was aborted and is written once. See ARCHITECTURE.md.
//!
//! When the source shares Kafka partitions through a consumer group (`group_id`), every daemon
//! of the group runs this sink: each takes a transactional id of its own (the configured or
//! default one, then `-<checkpoint id>`: stable across its restarts, so a restart fences its
//! previous run), and each transaction also commits the source's offsets for the batch with
//! the group member's metadata, so the offsets move only with the output and a daemon whose
//! partitions have moved on is fenced by the broker.

use super::SinkError;
use crate::config::{KafkaDestination, KafkaSinkSpec, KafkaValue};
use crate::kafka::changelog::ChangelogBatch;
use crate::kafka::{GroupLink, WeirContext, client_config, offsets_list};
use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;

/// Longest a batch's records may take to be acknowledged, and a transaction to commit.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest starting a transactional producer or reading the batch marker may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The Kafka sink.
pub struct KafkaSink {
    spec: KafkaSinkSpec,
    pipeline: String,
    transactional_id: String,
    marker_group: String,
    producer: Option<BaseProducer<WeirContext>>,
    marker: Option<BaseConsumer<WeirContext>>,
    /// The last batch Kafka has (exactly once), known once the producer started.
    last_in_kafka: Option<Option<u64>>,
    /// Reused between batches: the JSON lines of a chunk's values.
    json: Vec<u8>,
    /// With exactly once on shared partitions: the source's offsets to commit with each batch.
    group: Option<Arc<GroupLink>>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("pipeline", &self.pipeline)
            .field("destination", &self.spec.destination)
            .finish()
    }
}

fn unavailable(what: &str, err: impl std::fmt::Display) -> SinkError {
    SinkError::Unavailable(format!("{what}: {err}"))
}

/// The columns one chunk's records are made of.
struct RecordColumns {
    topic: Option<StringArray>,
    key: Option<ArrayRef>,
    value: ArrayRef,
    headers: Option<HeaderColumns>,
    timestamp: Option<ArrayRef>,
}

fn is_bytes(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Binary | DataType::LargeBinary | DataType::Utf8 | DataType::LargeUtf8
    )
}

/// Why a column of `data_type` cannot be `headers_column` `name`, if it cannot.
fn headers_type_problem(name: &str, data_type: &DataType) -> Option<String> {
    let entry = match data_type {
        DataType::Map(entries, _) => entries.data_type(),
        DataType::List(item) => item.data_type(),
        _ => data_type,
    };
    let fits = matches!(data_type, DataType::Map(..) | DataType::List(_))
        && matches!(entry, DataType::Struct(fields)
            if fields.len() == 2
                && arrow::compute::can_cast_types(fields[0].data_type(), &DataType::Utf8)
                && is_bytes(fields[1].data_type()));
    (!fits).then(|| {
        format!(
            "headers_column \"{name}\" must be a map or a list of {{key, value}} structs (string keys, string or binary values), not {data_type}"
        )
    })
}

/// Why the rows of `schema` cannot be written by a sink of `spec`: each problem with the
/// option it is about (`key_column`, ...). The same rules the sink applies to each chunk, for
/// `weir check` and reloads to find before any row is read.
pub fn column_problems(spec: &KafkaSinkSpec, schema: &Schema) -> Vec<(&'static str, String)> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut problems = Vec::new();
    let columns = [
        (
            "topic_column",
            match &spec.destination {
                KafkaDestination::Column(c) => Some(c),
                KafkaDestination::Topic(_) => None,
            },
        ),
        ("key_column", spec.key_column.as_ref()),
        (
            "value_column",
            match &spec.value {
                KafkaValue::Column(c) => Some(c),
                KafkaValue::Json => None,
            },
        ),
        ("headers_column", spec.headers_column.as_ref()),
        ("timestamp_column", spec.timestamp_column.as_ref()),
    ];
    for (role, name) in columns {
        let Some(name) = name else { continue };
        let Ok(field) = schema.field_with_name(name) else {
            problems.push((
                role,
                format!(
                    "{role} \"{name}\" is not a column of the rows (they have: {})",
                    names.join(", ")
                ),
            ));
            continue;
        };
        let data_type = field.data_type();
        let problem = match role {
            "headers_column" => headers_type_problem(name, data_type),
            "timestamp_column" => (!arrow::compute::can_cast_types(
                data_type,
                &DataType::Timestamp(TimeUnit::Millisecond, None),
            ))
            .then(|| format!("timestamp_column \"{name}\" of type {data_type} is not a time")),
            _ => (!is_bytes(data_type)
                && !arrow::compute::can_cast_types(data_type, &DataType::Utf8))
            .then(|| format!("{role} \"{name}\" of type {data_type} cannot be written as text")),
        };
        problems.extend(problem.map(|p| (role, p)));
    }
    problems
}

/// A headers column taken apart once per chunk: each row's entries are
/// `offsets[row]..offsets[row + 1]` of `keys` and `values`.
struct HeaderColumns {
    rows: ArrayRef,
    offsets: arrow::buffer::OffsetBuffer<i32>,
    keys: StringArray,
    values: ArrayRef,
}

impl HeaderColumns {
    /// A map column (string keys), or Spark's `headers` shape, a list of `{key, value}`
    /// structs (what the Kafka source's `include_headers` gives); values binary or string.
    fn new(name: &str, rows: ArrayRef) -> Result<HeaderColumns, SinkError> {
        if let Some(problem) = headers_type_problem(name, rows.data_type()) {
            return Err(SinkError::Config(problem));
        }
        // The type was checked above: a map, or a list of two-field structs.
        let (offsets, entries) = if let Some(map) = rows.as_map_opt() {
            (map.offsets().clone(), map.entries().clone())
        } else if let Some(entries) = rows.as_list_opt::<i32>().and_then(|list| {
            Some((
                list.offsets().clone(),
                list.values().as_struct_opt()?.clone(),
            ))
        }) {
            entries
        } else {
            return Err(SinkError::Config(format!(
                "headers_column \"{name}\" must be a map or a list of {{key, value}} structs, not {}",
                rows.data_type()
            )));
        };
        let keys = cast(entries.column(0), &DataType::Utf8)
            .map_err(|err| SinkError::Config(format!("headers_column \"{name}\" keys: {err}")))?
            .as_string::<i32>()
            .clone();
        let values = entries.column(1).clone();
        Ok(HeaderColumns {
            rows,
            offsets,
            keys,
            values,
        })
    }

    /// Row `row`'s headers, or none when the row's headers are null.
    fn of_row(&self, row: usize) -> Option<OwnedHeaders> {
        if self.rows.is_null(row) {
            return None;
        }
        let entries = self.offsets[row].max(0) as usize..self.offsets[row + 1].max(0) as usize;
        let mut headers = OwnedHeaders::new_with_capacity(entries.len());
        for i in entries {
            if self.keys.is_valid(i) {
                headers = headers.insert(Header {
                    key: self.keys.value(i),
                    value: bytes_at(&self.values, i),
                });
            }
        }
        Some(headers)
    }
}

fn column(batch: &RecordBatch, name: &str, role: &str) -> Result<ArrayRef, SinkError> {
    batch.column_by_name(name).cloned().ok_or_else(|| {
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        SinkError::Config(format!(
            "{role} \"{name}\" is not a column of the rows (they have: {})",
            names.join(", ")
        ))
    })
}

/// Bytes of a key or value column: binary as is, anything else as its text.
fn as_bytes_column(array: ArrayRef, role: &str) -> Result<ArrayRef, SinkError> {
    match array.data_type() {
        DataType::Binary | DataType::Utf8 => Ok(array),
        DataType::LargeBinary | DataType::LargeUtf8 => Ok(array),
        other => cast(&array, &DataType::Utf8).map_err(|err| {
            SinkError::Config(format!(
                "{role} of type {other} cannot be written as text: {err}"
            ))
        }),
    }
}

/// Each row's `columns` in Arrow's row format: equal values give equal bytes whatever the
/// columns' types (a repartition topic's keys; the partitioner hashes them).
fn row_keys(batch: &RecordBatch, columns: &[String]) -> Result<ArrayRef, SinkError> {
    let arrays = columns
        .iter()
        .map(|name| column(batch, name, "key"))
        .collect::<Result<Vec<_>, _>>()?;
    let fields = arrays
        .iter()
        .map(|a| SortField::new(a.data_type().clone()))
        .collect();
    let encode = |err: arrow::error::ArrowError| SinkError::Encode {
        format: "key",
        reason: err.to_string(),
    };
    let converter = RowConverter::new(fields).map_err(encode)?;
    let rows = converter.convert_columns(&arrays).map_err(encode)?;
    let mut keys = BinaryBuilder::with_capacity(rows.num_rows(), rows.size());
    for row in rows.iter() {
        keys.append_value(row.as_ref());
    }
    Ok(Arc::new(keys.finish()))
}

fn bytes_at(array: &ArrayRef, row: usize) -> Option<&[u8]> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Binary => Some(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => Some(array.as_binary::<i64>().value(row)),
        DataType::Utf8 => Some(array.as_string::<i32>().value(row).as_bytes()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row).as_bytes()),
        _ => None,
    }
}

impl KafkaSink {
    /// A sink for `spec`, the `index`-th (from 1) of `pipeline`; connects lazily.
    pub fn new(
        spec: KafkaSinkSpec,
        pipeline: &str,
        index: usize,
        checkpoint_id: &str,
        group: Option<Arc<GroupLink>>,
    ) -> KafkaSink {
        let configured = spec
            .transactional_id
            .clone()
            .unwrap_or_else(|| format!("weir-{pipeline}-sink-{index}"));
        let group = group.filter(|_| spec.exactly_once);
        let transactional_id = match &group {
            Some(link) => {
                link.commit_in_transactions();
                format!("{configured}-{checkpoint_id}")
            }
            None => configured,
        };
        let marker_group = format!("{transactional_id}.{checkpoint_id}");
        KafkaSink {
            spec,
            pipeline: pipeline.to_string(),
            transactional_id,
            marker_group,
            producer: None,
            marker: None,
            last_in_kafka: None,
            json: Vec::new(),
            group,
        }
    }

    fn marker_topic(&self) -> &str {
        match &self.spec.destination {
            KafkaDestination::Topic(t) => t,
            // Refused by the configuration check with exactly_once.
            KafkaDestination::Column(c) => c,
        }
    }

    fn producer(&mut self) -> Result<&BaseProducer<WeirContext>, SinkError> {
        if self.producer.is_none() {
            if let (Some(like), KafkaDestination::Topic(topic)) =
                (&self.spec.create_topic_like, &self.spec.destination)
            {
                let broker = crate::kafka::topics::Broker {
                    servers: &self.spec.bootstrap_servers,
                    options: &self.spec.options,
                    timeout: REQUEST_TIMEOUT,
                };
                // Rows the aggregation has read are not needed again: retention removes them
                // (said outright, whatever the broker's default policy is).
                crate::kafka::topics::ensure(
                    broker,
                    "repartition",
                    topic,
                    like,
                    &[("cleanup.policy", "delete")],
                )
                .map_err(SinkError::Unavailable)?;
            }
            let client_id = format!("weir-{}", self.pipeline);
            let mut weir: Vec<(&str, &str)> = vec![("enable.idempotence", "true")];
            if self.spec.exactly_once {
                weir.push(("transactional.id", &self.transactional_id));
            }
            if let Some(c) = &self.spec.compression {
                weir.push(("compression.type", c));
            }
            let mut config = client_config(&self.spec.bootstrap_servers, &self.spec.options, &weir);
            if !self.spec.options.contains_key("client.id") {
                config.set("client.id", &client_id);
            }
            let producer: BaseProducer<WeirContext> = config
                .create_with_context(WeirContext::new(&self.pipeline, "sink"))
                .map_err(|err| SinkError::Config(format!("kafka sink: {err}")))?;
            if self.spec.exactly_once {
                // Fences any older producer with this id and aborts its open transaction.
                producer
                    .init_transactions(REQUEST_TIMEOUT)
                    .map_err(|err| unavailable("starting the transactional producer", err))?;
            }
            self.producer = Some(producer);
            self.last_in_kafka = None;
        }
        self.producer
            .as_ref()
            .ok_or_else(|| SinkError::Unavailable("no producer (a bug)".into()))
    }

    fn marker_consumer(&mut self) -> Result<&BaseConsumer<WeirContext>, SinkError> {
        if self.marker.is_none() {
            let config = client_config(
                &self.spec.bootstrap_servers,
                &self.spec.options,
                &[
                    ("group.id", &self.marker_group),
                    ("enable.auto.commit", "false"),
                    ("isolation.level", "read_committed"),
                ],
            );
            let consumer: BaseConsumer<WeirContext> = config
                .create_with_context(WeirContext::new(&self.pipeline, "sink"))
                .map_err(|err| SinkError::Config(format!("kafka sink: {err}")))?;
            self.marker = Some(consumer);
        }
        self.marker
            .as_ref()
            .ok_or_else(|| SinkError::Unavailable("no consumer (a bug)".into()))
    }

    fn marker_partition(&self, offset: Offset) -> Result<TopicPartitionList, SinkError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(self.marker_topic(), 0, offset)
            .map_err(|err| unavailable("naming the batch marker", err))?;
        Ok(tpl)
    }

    /// The last batch a committed transaction carried (exactly once).
    fn last_in_kafka(&mut self) -> Result<Option<u64>, SinkError> {
        if let Some(known) = self.last_in_kafka {
            return Ok(known);
        }
        let tpl = self.marker_partition(Offset::Invalid)?;
        let committed = self
            .marker_consumer()?
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .map_err(|err| unavailable("reading which batch Kafka has", err))?;
        let last = committed.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(n) if n > 0 => Some(n as u64 - 1),
            _ => None,
        });
        self.last_in_kafka = Some(last);
        Ok(last)
    }

    fn record_columns(&mut self, batch: &RecordBatch) -> Result<RecordColumns, SinkError> {
        let topic = match &self.spec.destination {
            KafkaDestination::Topic(_) => None,
            KafkaDestination::Column(name) => {
                let array = cast(&column(batch, name, "topic_column")?, &DataType::Utf8)
                    .map_err(|err| SinkError::Config(format!("topic_column: {err}")))?;
                Some(array.as_string::<i32>().clone())
            }
        };
        let key = match &self.spec.key_column {
            Some(name) => Some(as_bytes_column(
                column(batch, name, "key_column")?,
                "key_column",
            )?),
            None if !self.spec.key_columns.is_empty() => {
                Some(row_keys(batch, &self.spec.key_columns)?)
            }
            None => None,
        };
        let headers = match &self.spec.headers_column {
            Some(name) => Some(HeaderColumns::new(
                name,
                column(batch, name, "headers_column")?,
            )?),
            None => None,
        };
        let timestamp = match &self.spec.timestamp_column {
            Some(name) => Some(
                cast(
                    &column(batch, name, "timestamp_column")?,
                    &DataType::Timestamp(TimeUnit::Millisecond, None),
                )
                .map_err(|err| SinkError::Config(format!("timestamp_column: {err}")))?,
            ),
            None => None,
        };
        let value = match &self.spec.value {
            KafkaValue::Column(name) => {
                as_bytes_column(column(batch, name, "value_column")?, "value_column")?
            }
            KafkaValue::Json => {
                let skip: Vec<&str> = [
                    match &self.spec.destination {
                        KafkaDestination::Column(c) => Some(c.as_str()),
                        KafkaDestination::Topic(_) => None,
                    },
                    self.spec.headers_column.as_deref(),
                ]
                .into_iter()
                .flatten()
                .collect();
                let keep: Vec<usize> = batch
                    .schema_ref()
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| !skip.contains(&f.name().as_str()))
                    .map(|(i, _)| i)
                    .collect();
                let rows = batch.project(&keep).map_err(|err| SinkError::Encode {
                    format: "json",
                    reason: err.to_string(),
                })?;
                self.json.clear();
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut self.json);
                writer.write(&rows).map_err(|err| SinkError::Encode {
                    format: "json",
                    reason: err.to_string(),
                })?;
                writer.finish().map_err(|err| SinkError::Encode {
                    format: "json",
                    reason: err.to_string(),
                })?;
                // One line per row; the lines become a string column without copying per row.
                let mut offsets = Vec::with_capacity(rows.num_rows() + 1);
                offsets.push(0i32);
                let mut values = Vec::with_capacity(self.json.len());
                for line in self.json.split(|b| *b == b'\n').take(rows.num_rows()) {
                    values.extend_from_slice(line);
                    let end = i32::try_from(values.len()).map_err(|_| SinkError::Encode {
                        format: "json",
                        reason: "a chunk's JSON is larger than 2 GiB".into(),
                    })?;
                    offsets.push(end);
                }
                std::sync::Arc::new(arrow::array::BinaryArray::new(
                    arrow::buffer::OffsetBuffer::new(offsets.into()),
                    values.into(),
                    None,
                ))
            }
        };
        Ok(RecordColumns {
            topic,
            key,
            value,
            headers,
            timestamp,
        })
    }

    /// A shared aggregation's state changes, to its changelog in the batch's transaction.
    fn produce_changelog(&mut self, changelog: &ChangelogBatch) -> Result<(), SinkError> {
        let producer = self.producer()?;
        for change in &changelog.records {
            let mut pending: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&changelog.topic)
                .partition(change.partition)
                .key(change.key.as_slice());
            if let Some(value) = &change.value {
                pending = pending.payload(value.as_slice());
            }
            send_waiting(producer, pending, "writing the aggregation's changelog")?;
        }
        Ok(())
    }

    fn produce_chunk(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let columns = self.record_columns(batch)?;
        let fixed_topic = match &self.spec.destination {
            KafkaDestination::Topic(t) => Some(t.clone()),
            KafkaDestination::Column(_) => None,
        };
        let producer = self.producer()?;
        for row in 0..batch.num_rows() {
            let topic = match (&fixed_topic, &columns.topic) {
                (Some(t), _) => t.as_str(),
                (None, Some(topics)) if topics.is_valid(row) => topics.value(row),
                _ => {
                    return Err(SinkError::Config(format!(
                        "row {row} of the batch has no topic (topic_column is null)"
                    )));
                }
            };
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
            if let Some(value) = bytes_at(&columns.value, row) {
                record = record.payload(value);
            }
            if let Some(keys) = &columns.key
                && let Some(key) = bytes_at(keys, row)
            {
                record = record.key(key);
            }
            if let Some(ts) = &columns.timestamp
                && ts.is_valid(row)
            {
                record = record.timestamp(ts.as_primitive::<TimestampMillisecondType>().value(row));
            }
            if let Some(headers) = columns.headers.as_ref().and_then(|h| h.of_row(row)) {
                record = record.headers(headers);
            }
            send_waiting(producer, record, "producing a record")?;
        }
        producer.poll(Duration::ZERO);
        Ok(())
    }

    fn write_transaction(
        &mut self,
        batch_id: u64,
        batches: &[RecordBatch],
    ) -> Result<(), SinkError> {
        if let Some(last) = self.last_in_kafka()?
            && batch_id <= last
        {
            tracing::info!(
                pipeline = %self.pipeline,
                "kafka sink: batch {batch_id} is already in Kafka (its transaction committed before weir's last stop); not writing it again"
            );
            return Ok(());
        }
        if let Err(err) = self.producer()?.begin_transaction() {
            // A producer that cannot begin is unusable: the next attempt starts a new one.
            self.producer = None;
            self.last_in_kafka = None;
            return Err(unavailable("beginning a transaction", err));
        }
        let written = (|| {
            for batch in batches {
                self.produce_chunk(batch)?;
            }
            if let Some(changelog) = self.group.as_ref().and_then(|link| link.take_changelog()) {
                self.produce_changelog(&changelog)?;
            }
            let marker = self.marker_partition(Offset::Offset(batch_id as i64 + 1))?;
            let metadata = self
                .marker_consumer()?
                .group_metadata()
                .ok_or_else(|| SinkError::Unavailable("no consumer group metadata".into()))?;
            let source = self.group.as_ref().and_then(|link| link.current());
            let producer = self.producer()?;
            producer
                .send_offsets_to_transaction(&marker, &metadata, REQUEST_TIMEOUT)
                .map_err(|err| unavailable("recording the batch in the transaction", err))?;
            if let Some(source) = source.filter(|b| !b.offsets.is_empty()) {
                let offsets = offsets_list(&source.offsets)
                    .map_err(|err| unavailable("naming the source's offsets", err))?;
                producer
                    .send_offsets_to_transaction(&offsets, &source.metadata, REQUEST_TIMEOUT)
                    .map_err(|err| {
                        unavailable(
                            "committing the source's offsets with the batch (this daemon's partitions may have moved to another member of the group)",
                            err,
                        )
                    })?;
            }
            producer
                .commit_transaction(DELIVERY_TIMEOUT)
                .map_err(|err| unavailable("committing the transaction", err))
        })();
        match written {
            Ok(()) => {
                self.last_in_kafka = Some(Some(batch_id));
                Ok(())
            }
            Err(err) => {
                self.abandon_transaction();
                Err(err)
            }
        }
    }

    /// After a failed transaction: abort it, or, when the producer can no longer be used
    /// (fenced, fatal), drop it — the next attempt starts a new one, which aborts the old
    /// transaction on the broker.
    fn abandon_transaction(&mut self) {
        if let Some(producer) = &self.producer
            && producer.abort_transaction(REQUEST_TIMEOUT).is_ok()
        {
            return;
        }
        self.producer = None;
        self.last_in_kafka = None;
    }

    fn write_at_least_once(&mut self, batches: &[RecordBatch]) -> Result<(), SinkError> {
        for batch in batches {
            self.produce_chunk(batch)?;
        }
        let producer = self.producer()?;
        let flushed = producer.flush(DELIVERY_TIMEOUT);
        let (failed, first) = producer.context().take_failed_deliveries();
        if let Err(err) = flushed {
            return Err(unavailable(
                "waiting for the broker to acknowledge the batch",
                err,
            ));
        }
        if failed > 0 {
            return Err(SinkError::Unavailable(format!(
                "{failed} record(s) were not acknowledged by the broker: {}",
                first.unwrap_or_default()
            )));
        }
        Ok(())
    }
}

impl super::Sink for KafkaSink {
    fn write_batch(
        &mut self,
        batch_id: u64,
        _schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), SinkError> {
        if self.spec.exactly_once {
            self.write_transaction(batch_id, batches)
        } else {
            self.write_at_least_once(batches)
        }
    }
}

/// Sends `record`; while librdkafka's queue is full, waits for acknowledgements
/// (back-pressure) and tries again.
fn send_waiting<K, P>(
    producer: &BaseProducer<WeirContext>,
    mut record: BaseRecord<'_, K, P>,
    what: &str,
) -> Result<(), SinkError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                producer.poll(Duration::from_millis(100));
                record = back;
            }
            Err((err, _)) => return Err(unavailable(what, err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BinaryBuilder, Int64Array, MapBuilder, StringBuilder};
    use rdkafka::message::Headers;
    use std::sync::Arc;

    fn pairs(headers: &OwnedHeaders) -> Vec<(String, Option<Vec<u8>>)> {
        headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn a_map_headers_column_gives_each_rows_entries_and_a_null_row_none() {
        let mut map = MapBuilder::new(None, StringBuilder::new(), BinaryBuilder::new());
        map.keys().append_value("a");
        map.values().append_value(b"1");
        map.keys().append_value("b");
        map.values().append_null();
        let _ = map.append(true);
        let _ = map.append(false);
        map.keys().append_value("c");
        map.values().append_value(b"3");
        let _ = map.append(true);
        let rows: ArrayRef = Arc::new(map.finish());
        let Ok(headers) = HeaderColumns::new("h", rows) else {
            panic!("a map column is a headers column");
        };
        assert_eq!(
            headers.of_row(0).as_ref().map(pairs),
            Some(vec![
                ("a".to_string(), Some(b"1".to_vec())),
                ("b".to_string(), None)
            ])
        );
        assert!(headers.of_row(1).is_none());
        assert_eq!(
            headers.of_row(2).as_ref().map(pairs),
            Some(vec![("c".to_string(), Some(b"3".to_vec()))])
        );
    }

    #[test]
    fn a_headers_column_of_another_type_is_refused_with_what_it_must_be() {
        let rows: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let err = HeaderColumns::new("h", rows).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("must be a map or a list of {key, value} structs")),
            "{err:?}"
        );
    }
}
