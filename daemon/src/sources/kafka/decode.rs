//! Kafka records to Arrow rows. Records of one partition are gathered into one byte buffer and
//! a table of positions (no allocation per record), then built into columns: Spark's raw
//! columns, or the value decoded as JSON, CSV or text under `on_error`.

use crate::config::{KafkaFormat, KafkaSourceSpec};
use crate::sources::bad_records::{BadRecords, RecordLocation};
use crate::sources::{CHUNK_ROWS, SourceError};
use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers, Timestamp};
use std::ops::Range;
use std::sync::Arc;

/// Spark's `timestampType` when a record has no timestamp (Kafka's `NO_TIMESTAMP_TYPE`).
const NO_TIMESTAMP_TYPE: i32 = -1;

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

/// The schema of a Kafka source.
pub fn schema(spec: &KafkaSourceSpec) -> SchemaRef {
    let timestamp = crate::sources::rate::timestamp_type();
    let mut fields = match spec.format {
        KafkaFormat::Raw => vec![
            Field::new("key", DataType::Binary, true),
            Field::new("value", DataType::Binary, true),
            Field::new("topic", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new("timestamp", timestamp.clone(), true),
            Field::new("timestampType", DataType::Int32, false),
        ],
        KafkaFormat::Json | KafkaFormat::Csv => spec
            .columns
            .iter()
            .map(|c| Field::new(&c.name, crate::sources::file::arrow_type(c.data_type), true))
            .collect(),
        KafkaFormat::Text => vec![Field::new("value", DataType::Utf8, true)],
    };
    if spec.format == KafkaFormat::Raw && spec.include_headers {
        fields.push(Field::new(
            "headers",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(header_fields()),
                true,
            ))),
            true,
        ));
    }
    if spec.format != KafkaFormat::Raw && spec.include_timestamp {
        fields.push(Field::new("timestamp", timestamp, true));
    }
    if spec.task_column {
        fields.push(Field::new(
            crate::kafka::TASK_COLUMN,
            DataType::Int32,
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

struct Record {
    offset: i64,
    timestamp_ms: Option<i64>,
    timestamp_type: i32,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    headers: Range<usize>,
}

struct Header {
    key: Range<usize>,
    value: Option<Range<usize>>,
}

/// The records of one partition read for a batch, in offset order.
pub struct PartitionRecords {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    bytes: Vec<u8>,
    records: Vec<Record>,
    headers: Vec<Header>,
}

impl PartitionRecords {
    /// An empty set for `topic`/`partition`.
    pub fn new(topic: &str, partition: i32) -> PartitionRecords {
        PartitionRecords {
            topic: topic.to_string(),
            partition,
            bytes: Vec::new(),
            records: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn keep(&mut self, data: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        start..self.bytes.len()
    }

    /// Adds a consumed record; `with_headers` keeps its headers.
    pub fn push(&mut self, message: &BorrowedMessage<'_>, with_headers: bool) {
        let key = message.key().map(|k| self.keep(k));
        let value = message.payload().map(|v| self.keep(v));
        let first_header = self.headers.len();
        if with_headers && let Some(headers) = message.headers() {
            for header in headers.iter() {
                let key = self.keep(header.key.as_bytes());
                let value = header.value.map(|v| self.keep(v));
                self.headers.push(Header { key, value });
            }
        }
        let (timestamp_ms, timestamp_type) = match message.timestamp() {
            Timestamp::NotAvailable => (None, NO_TIMESTAMP_TYPE),
            Timestamp::CreateTime(ms) => (Some(ms), 0),
            Timestamp::LogAppendTime(ms) => (Some(ms), 1),
        };
        self.records.push(Record {
            offset: message.offset(),
            timestamp_ms,
            timestamp_type,
            key,
            value,
            headers: first_header..self.headers.len(),
        });
    }

    fn location(&self, record: &Record) -> RecordLocation<'_> {
        RecordLocation {
            topic: Some(&self.topic),
            partition: Some(self.partition),
            offset: Some(record.offset.max(0) as u64),
            ..RecordLocation::default()
        }
    }

    fn value(&self, record: &Record) -> Option<&[u8]> {
        record.value.clone().map(|r| &self.bytes[r])
    }
}

/// Builds the rows of `parts` (in the order given) into chunks of at most [`CHUNK_ROWS`].
pub fn build(
    spec: &KafkaSourceSpec,
    schema: &SchemaRef,
    parts: &[PartitionRecords],
    bad: &mut BadRecords,
    out: &mut Vec<RecordBatch>,
) -> Result<(), SourceError> {
    // The task column is added to each chunk last, from its partition.
    let tasked = schema.clone();
    let schema = &if spec.task_column {
        Arc::new(Schema::new(
            tasked.fields()[..tasked.fields().len() - 1].to_vec(),
        ))
    } else {
        tasked.clone()
    };
    // What the JSON and CSV decoders produce: the schema without the `timestamp` column that
    // `include_timestamp` appends from the records themselves.
    let decoded_schema: SchemaRef = if spec.include_timestamp {
        Arc::new(Schema::new(
            schema.fields()[..schema.fields().len() - 1].to_vec(),
        ))
    } else {
        schema.clone()
    };
    for part in parts {
        for chunk in part.records.chunks(CHUNK_ROWS) {
            let mut batch = match spec.format {
                KafkaFormat::Raw => raw_chunk(spec, schema, part, chunk)?,
                KafkaFormat::Json | KafkaFormat::Csv => {
                    decoded_chunk(spec, schema, &decoded_schema, part, chunk, bad)?
                }
                KafkaFormat::Text => text_chunk(spec, schema, part, chunk, bad)?,
            };
            if spec.task_column {
                let mut columns = batch.columns().to_vec();
                columns.push(Arc::new(arrow::array::Int32Array::from_value(
                    part.partition,
                    batch.num_rows(),
                )));
                batch = RecordBatch::try_new(tasked.clone(), columns)?;
            }
            if batch.num_rows() > 0 {
                out.push(batch);
            }
        }
    }
    Ok(())
}

fn timestamps<'a>(records: impl Iterator<Item = &'a Record>) -> ArrayRef {
    let mut builder = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for r in records {
        builder.append_option(r.timestamp_ms.map(|ms| ms.saturating_mul(1000)));
    }
    Arc::new(builder.finish())
}

fn raw_chunk(
    spec: &KafkaSourceSpec,
    schema: &SchemaRef,
    part: &PartitionRecords,
    chunk: &[Record],
) -> Result<RecordBatch, SourceError> {
    let n = chunk.len();
    let bytes = &part.bytes;
    let mut keys = BinaryBuilder::with_capacity(n, 0);
    let mut values = BinaryBuilder::with_capacity(n, 0);
    let mut topics = StringBuilder::with_capacity(n, n * part.topic.len());
    let mut partitions = Int32Builder::with_capacity(n);
    let mut offsets = Int64Builder::with_capacity(n);
    let mut types = Int32Builder::with_capacity(n);
    for r in chunk {
        keys.append_option(r.key.clone().map(|k| &bytes[k]));
        values.append_option(r.value.clone().map(|v| &bytes[v]));
        topics.append_value(&part.topic);
        partitions.append_value(part.partition);
        offsets.append_value(r.offset);
        types.append_value(r.timestamp_type);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(keys.finish()),
        Arc::new(values.finish()),
        Arc::new(topics.finish()),
        Arc::new(partitions.finish()),
        Arc::new(offsets.finish()),
        timestamps(chunk.iter()),
        Arc::new(types.finish()),
    ];
    if spec.include_headers {
        let mut list = ListBuilder::new(StructBuilder::from_fields(header_fields(), 0));
        for r in chunk {
            let entries = list.values();
            for h in &part.headers[r.headers.clone()] {
                let key = String::from_utf8_lossy(&bytes[h.key.clone()]);
                if let Some(b) = entries.field_builder::<StringBuilder>(0) {
                    b.append_value(key);
                }
                if let Some(b) = entries.field_builder::<BinaryBuilder>(1) {
                    b.append_option(h.value.clone().map(|v| &bytes[v]));
                }
                entries.append(true);
            }
            list.append(true);
        }
        columns.push(Arc::new(list.finish()));
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// A decoder of values into columns, one value per row.
enum ValueDecoder {
    Json(arrow::json::reader::Decoder),
    Csv(Box<arrow::csv::reader::Decoder>),
}

impl ValueDecoder {
    fn new(
        spec: &KafkaSourceSpec,
        schema: &SchemaRef,
        rows: usize,
    ) -> Result<ValueDecoder, SourceError> {
        // One more than the rows, so that a value holding two records is seen rather than cut
        // off at the batch's end.
        let capacity = rows.max(1) + 1;
        Ok(match spec.format {
            KafkaFormat::Csv => ValueDecoder::Csv(Box::new(
                arrow::csv::ReaderBuilder::new(schema.clone())
                    .with_header(false)
                    .with_delimiter(spec.delimiter)
                    .with_quote(spec.quote)
                    .with_batch_size(capacity)
                    .build_decoder(),
            )),
            _ => ValueDecoder::Json(
                arrow::json::ReaderBuilder::new(schema.clone())
                    .with_batch_size(capacity)
                    .build_decoder()?,
            ),
        })
    }

    /// Decodes each value as exactly one row.
    fn decode_values<'a>(
        &mut self,
        values: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
        match self {
            ValueDecoder::Json(decoder) => {
                for value in values {
                    let before = decoder.len();
                    let used = decoder.decode(value)?;
                    if decoder.has_partial_record() {
                        return Err(arrow::error::ArrowError::JsonError(
                            "unterminated JSON value".into(),
                        ));
                    }
                    if decoder.len() != before + 1
                        || !value[used..].iter().all(u8::is_ascii_whitespace)
                    {
                        return Err(arrow::error::ArrowError::JsonError(
                            "the value is not exactly one JSON object".into(),
                        ));
                    }
                }
                decoder.flush()
            }
            ValueDecoder::Csv(decoder) => {
                for value in values {
                    let before = decoder.capacity();
                    // The record ends where the value ends: a line break ends it (a value
                    // that already ends in one gets an empty line, which the decoder skips).
                    let used = decoder.decode(value)?;
                    let ended = decoder.decode(b"\n")?;
                    if used != value.len() || ended != 1 || decoder.capacity() + 1 != before {
                        return Err(arrow::error::ArrowError::CsvError(
                            "the value is not exactly one CSV record".into(),
                        ));
                    }
                }
                decoder.flush()
            }
        }
    }
}

/// Decodes a chunk's values (JSON or CSV) into the declared columns under `on_error`.
fn decoded_chunk(
    spec: &KafkaSourceSpec,
    schema: &SchemaRef,
    decoded_schema: &SchemaRef,
    part: &PartitionRecords,
    chunk: &[Record],
    bad: &mut BadRecords,
) -> Result<RecordBatch, SourceError> {
    // Fast path: every value decodes.
    let all_present = chunk.iter().all(|r| r.value.is_some());
    let fast = if all_present {
        let mut decoder = ValueDecoder::new(spec, decoded_schema, chunk.len())?;
        decoder
            .decode_values(chunk.iter().map(|r| part.value(r).unwrap_or_default()))
            .ok()
    } else {
        None
    };
    let (decoded, good): (Option<RecordBatch>, Vec<&Record>) = match fast {
        Some(batch) => (batch, chunk.iter().collect()),
        None => {
            // Slow path: each record alone finds the malformed ones; the rest decode together.
            let mut good = Vec::with_capacity(chunk.len());
            for r in chunk {
                let Some(value) = part.value(r) else {
                    bad.record(
                        part.location(r),
                        "the record has no value (a tombstone)",
                        b"",
                    )?;
                    continue;
                };
                let mut alone = ValueDecoder::new(spec, decoded_schema, 1)?;
                match alone.decode_values(std::iter::once(value)) {
                    Ok(_) => good.push(r),
                    Err(err) => bad.record(
                        part.location(r),
                        &crate::sources::file::clean_reason(&err),
                        value,
                    )?,
                }
            }
            let mut decoder = ValueDecoder::new(spec, decoded_schema, good.len())?;
            let batch =
                decoder.decode_values(good.iter().map(|r| part.value(r).unwrap_or_default()))?;
            (batch, good)
        }
    };
    let Some(decoded) = decoded else {
        return Ok(RecordBatch::new_empty(schema.clone()));
    };
    if !spec.include_timestamp {
        return Ok(decoded);
    }
    let mut columns = decoded.columns().to_vec();
    columns.push(timestamps(good.into_iter()));
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn text_chunk(
    spec: &KafkaSourceSpec,
    schema: &SchemaRef,
    part: &PartitionRecords,
    chunk: &[Record],
    bad: &mut BadRecords,
) -> Result<RecordBatch, SourceError> {
    let mut values = StringBuilder::with_capacity(chunk.len(), 0);
    let mut good = Vec::with_capacity(if spec.include_timestamp {
        chunk.len()
    } else {
        0
    });
    for r in chunk {
        match part.value(r).map(std::str::from_utf8) {
            None => values.append_null(),
            Some(Ok(text)) => values.append_value(text),
            Some(Err(err)) => {
                let raw = part.value(r).unwrap_or_default();
                bad.record(
                    part.location(r),
                    &format!("the value is not valid UTF-8 ({err})"),
                    raw,
                )?;
                continue;
            }
        }
        if spec.include_timestamp {
            good.push(r);
        }
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(values.finish())];
    if spec.include_timestamp {
        columns.push(timestamps(good.into_iter()));
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
