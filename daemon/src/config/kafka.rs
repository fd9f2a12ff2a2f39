//! `type = "kafka"`: the Kafka source and sink sections and their validation. The names follow
//! Spark's Kafka options (`subscribe`, `startingOffsets`, `maxOffsetsPerTrigger`, ...) in
//! snake_case; `[source.options]` / `[sink.options]` pass librdkafka properties through (checked
//! against librdkafka's own list here, without creating a client).

use super::checker::Checker;
use super::diagnostic::Location;
use super::duration::HumanDuration;
use super::file_source::{FileColumn, RawFileColumn};
use super::limits;
use super::on_error::OnError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// Which partitions a Kafka source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaTopics {
    /// Every partition of these topics (partitions added later are read from their start).
    Subscribe(Vec<String>),
    /// Every partition of every topic whose whole name matches this regular expression (topics
    /// created later are picked up at the next batch).
    Pattern(String),
    /// Exactly these partitions.
    Assign(BTreeMap<String, Vec<i32>>),
}

/// Where a Kafka source without a checkpoint starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartingOffsets {
    /// The oldest record each partition still has.
    Earliest,
    /// After the newest record there is at the first start (Spark's default for streams).
    Latest,
    /// Per topic and partition: an offset, `-2` for earliest or `-1` for latest; partitions
    /// not named start at `latest`.
    Offsets(BTreeMap<String, BTreeMap<i32, i64>>),
    /// The first record whose timestamp is at or after this (ms since the epoch), in every
    /// partition.
    Timestamp(i64),
    /// The same per topic and partition; partitions not named start at `latest`.
    Timestamps(BTreeMap<String, BTreeMap<i32, i64>>),
}

/// How a Kafka source turns records into rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaFormat {
    /// Spark's columns: key, value (binary), topic, partition, offset, timestamp,
    /// timestampType (and headers when asked for).
    Raw,
    /// Each value is one JSON object, decoded into the declared columns.
    Json,
    /// Each value is one line of text: a `value` string column.
    Text,
    /// Each value is one CSV record (no header line), decoded into the declared columns.
    Csv,
}

impl KafkaFormat {
    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            KafkaFormat::Raw => "raw",
            KafkaFormat::Json => "json",
            KafkaFormat::Text => "text",
            KafkaFormat::Csv => "csv",
        }
    }
}

/// The Kafka source.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSourceSpec {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Which partitions.
    pub topics: KafkaTopics,
    /// Where a stream without a checkpoint starts.
    pub starting_offsets: StartingOffsets,
    /// Most records per batch, spread over the partitions in proportion to their backlog.
    pub max_offsets_per_trigger: Option<u64>,
    /// Fewest records a batch waits for, unless `max_trigger_delay` has passed.
    pub min_offsets_per_trigger: Option<u64>,
    /// Longest a batch waits for `min_offsets_per_trigger`.
    pub max_trigger_delay: Duration,
    /// Records lost before they were read (retention, a recreated topic) stop the pipeline;
    /// `false` skips them with a warning and a count.
    pub fail_on_data_loss: bool,
    /// How records become rows.
    pub format: KafkaFormat,
    /// `json` and `csv`: the columns.
    pub columns: Vec<FileColumn>,
    /// `csv`: field delimiter.
    pub delimiter: u8,
    /// `csv`: quote character.
    pub quote: u8,
    /// `raw`: add Spark's `headers` column.
    pub include_headers: bool,
    /// `json`, `csv` and `text`: add a `timestamp` column with the record's timestamp (for event
    /// time).
    pub include_timestamp: bool,
    /// What to do with a record that cannot be decoded.
    pub on_error: OnError,
    /// The consumer group this pipeline's daemons share the partitions through (Kafka's group
    /// protocol). `None`: this daemon reads every partition, and commits its offsets to
    /// `weir-<pipeline>` for lag tools only.
    pub group_id: Option<String>,
    /// Commit each batch's end offsets to the consumer group after the batch commits.
    pub commit_offsets: bool,
    /// The columns the topic's records are partitioned by (they were written keyed by them):
    /// every row with the same values is in one partition. An aggregation on shared partitions
    /// whose `group_by` includes them all runs on the partitions as they are; any other goes
    /// through a repartition topic. Empty: not known.
    pub partitioned_by: Vec<String>,
    /// Add each row's partition as a last column (`kafka::TASK_COLUMN`): set by the plan when
    /// an aggregation runs on partitions shared through `group_id`, one task per partition.
    pub task_column: bool,
    /// Longest a batch's records may take to arrive before the batch fails (and is retried).
    pub fetch_timeout: Duration,
    /// librdkafka properties, passed through.
    pub options: BTreeMap<String, String>,
}

/// How the Kafka sink makes each row's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaValue {
    /// A JSON object of every column (but the ones the record's key, topic, headers and
    /// timestamp come from).
    Json,
    /// The bytes (binary) or UTF-8 text (string) of this column.
    Column(String),
}

/// Where the Kafka sink's records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaDestination {
    /// One topic.
    Topic(String),
    /// Each row's topic is in this string column.
    Column(String),
}

/// The Kafka sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSinkSpec {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Where records go.
    pub destination: KafkaDestination,
    /// The column whose value is each record's key (none: no key).
    pub key_column: Option<String>,
    /// How each record's value is made.
    pub value: KafkaValue,
    /// A map column (string keys, string or binary values) whose entries become headers.
    pub headers_column: Option<String>,
    /// A timestamp column whose value becomes each record's timestamp.
    pub timestamp_column: Option<String>,
    /// Each batch is one transaction, committed once even across crashes.
    pub exactly_once: bool,
    /// The transactional id (default `weir-<pipeline>-sink-<n>`).
    pub transactional_id: Option<String>,
    /// `compression.type`.
    pub compression: Option<String>,
    /// librdkafka properties, passed through.
    pub options: BTreeMap<String, String>,
    /// Set by the plan for a repartition topic (never by a pipeline file): each record's key
    /// is these columns' values in Arrow's row format, so rows equal in them go to the same
    /// partition whatever their types; `key_column` is then unused.
    pub key_columns: Vec<String>,
    /// Set by the plan for a repartition topic: the destination is created (unless it exists)
    /// with as many partitions as this topic, before the first batch is written.
    pub create_topic_like: Option<String>,
    /// Where each column option (`key_column`, `value_column`, ...) is written, for errors
    /// found when the rows' schema is known.
    pub column_locations: BTreeMap<&'static str, Location>,
}

/// `starting_offsets = "earliest" | "latest" | { topic = { "0" = 42 } }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawStartingOffsets {
    Named(String),
    Table(BTreeMap<String, BTreeMap<String, i64>>),
}

/// A librdkafka property value: TOML strings, integers, floats and booleans are all accepted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawProperty {
    Text(String),
    Integer(i64),
    Float(f64),
    Flag(bool),
}

impl RawProperty {
    fn text(&self) -> String {
        match self {
            RawProperty::Text(s) => s.clone(),
            RawProperty::Integer(n) => n.to_string(),
            RawProperty::Float(x) => x.to_string(),
            RawProperty::Flag(b) => b.to_string(),
        }
    }
}

/// `[source] type = "kafka"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKafkaSource {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: Spanned<String>,
    /// Topics to read.
    #[serde(default)]
    pub subscribe: Option<Spanned<Vec<String>>>,
    /// A regular expression matching the topics to read.
    #[serde(default)]
    pub subscribe_pattern: Option<Spanned<String>>,
    /// Exactly these partitions: `{ topic = [0, 1] }`.
    #[serde(default)]
    pub assign: Option<Spanned<BTreeMap<String, Vec<i64>>>>,
    /// `latest` (default), `earliest`, or offsets per topic and partition.
    #[serde(default)]
    pub starting_offsets: Option<Spanned<RawStartingOffsets>>,
    /// Start at the first record at or after this time, in every partition (ms since the
    /// epoch, or an RFC 3339 time).
    #[serde(default)]
    pub starting_timestamp: Option<Spanned<RawTimestamp>>,
    /// Start at a timestamp per topic and partition.
    #[serde(default)]
    pub starting_offsets_by_timestamp: Option<Spanned<BTreeMap<String, BTreeMap<String, i64>>>>,
    /// Most records per batch.
    #[serde(default)]
    pub max_offsets_per_trigger: Option<Spanned<u64>>,
    /// Fewest records a batch waits for.
    #[serde(default)]
    pub min_offsets_per_trigger: Option<Spanned<u64>>,
    /// Longest a batch waits for `min_offsets_per_trigger` (default "15m", as Spark).
    #[serde(default)]
    pub max_trigger_delay: Option<Spanned<HumanDuration>>,
    /// Stop when records were lost before they were read (default true).
    #[serde(default)]
    pub fail_on_data_loss: Option<bool>,
    /// `raw` (default), `json`, `csv` or `text`.
    #[serde(default)]
    pub format: Option<Spanned<KafkaFormat>>,
    /// `csv`: field delimiter, one character (default `,`).
    #[serde(default)]
    pub delimiter: Option<Spanned<String>>,
    /// `csv`: quote character (default `"`).
    #[serde(default)]
    pub quote: Option<Spanned<String>>,
    /// `raw`: add the `headers` column (default false).
    #[serde(default)]
    pub include_headers: Option<Spanned<bool>>,
    /// `json`, `text`: add a `timestamp` column, the record's timestamp (default false).
    #[serde(default)]
    pub include_timestamp: Option<Spanned<bool>>,
    /// `fail` (default), `skip` or `dead_letter`.
    #[serde(default)]
    pub on_error: Option<Spanned<OnError>>,
    /// The consumer group whose members share the partitions; without it, this daemon reads
    /// every partition and commits to `weir-<pipeline>` for lag tools.
    #[serde(default)]
    pub group_id: Option<Spanned<String>>,
    /// Commit each batch's end offsets to the group after the batch commits (default true).
    #[serde(default)]
    pub commit_offsets: Option<Spanned<bool>>,
    /// The columns the topic's records are keyed (partitioned) by.
    #[serde(default)]
    pub partitioned_by: Option<Spanned<Vec<String>>>,
    /// Longest a batch's records may take to arrive (default "60s").
    #[serde(default)]
    pub fetch_timeout: Option<Spanned<HumanDuration>>,
    /// librdkafka properties.
    #[serde(default)]
    pub options: BTreeMap<String, Spanned<RawProperty>>,
    /// `json`, `csv`: the columns.
    #[serde(default)]
    pub column: Vec<Spanned<RawFileColumn>>,
}

/// A timestamp: ms since the epoch, or RFC 3339 text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawTimestamp {
    Millis(i64),
    Text(String),
}

/// `[[sink]] type = "kafka"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKafkaSink {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: Spanned<String>,
    /// The topic every record goes to.
    #[serde(default)]
    pub topic: Option<Spanned<String>>,
    /// A string column naming each row's topic.
    #[serde(default)]
    pub topic_column: Option<Spanned<String>>,
    /// The column each record's key comes from.
    #[serde(default)]
    pub key_column: Option<Spanned<String>>,
    /// `json` (default): each value is a JSON object of the row.
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    /// The column each record's value comes from, as bytes (instead of `format`).
    #[serde(default)]
    pub value_column: Option<Spanned<String>>,
    /// A map column whose entries become each record's headers.
    #[serde(default)]
    pub headers_column: Option<Spanned<String>>,
    /// A timestamp column: each record's timestamp.
    #[serde(default)]
    pub timestamp_column: Option<Spanned<String>>,
    /// One transaction per batch (default false: at-least-once).
    #[serde(default)]
    pub exactly_once: Option<bool>,
    /// The transactional id (default `weir-<pipeline>-sink-<n>`).
    #[serde(default)]
    pub transactional_id: Option<Spanned<String>>,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default)]
    pub compression: Option<Spanned<String>>,
    /// librdkafka properties.
    #[serde(default)]
    pub options: BTreeMap<String, Spanned<RawProperty>>,
}

/// Properties weir sets itself: passing them would break its guarantees.
const RESERVED_SOURCE_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "use bootstrap_servers"),
    ("group.id", "use group_id"),
    (
        "enable.auto.commit",
        "offsets are weir's: commit_offsets = false turns the group commit off",
    ),
    (
        "enable.auto.offset.store",
        "offsets are weir's: each batch's range is in its offsets log",
    ),
    (
        "auto.offset.reset",
        "use starting_offsets and fail_on_data_loss",
    ),
    (
        "enable.partition.eof",
        "weir needs partition ends to know a batch is complete",
    ),
];

const RESERVED_SINK_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "use bootstrap_servers"),
    ("transactional.id", "use transactional_id"),
    ("compression.type", "use compression"),
    ("enable.idempotence", "weir's producer is always idempotent"),
];

const COMPRESSIONS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];

fn properties(
    c: &mut Checker<'_>,
    raw: &BTreeMap<String, Spanned<RawProperty>>,
    reserved: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in raw {
        if let Some((_, hint)) = reserved.iter().find(|(name, _)| name == key) {
            c.error_hint(
                value.span(),
                format!("option \"{key}\" is set by weir"),
                hint,
            );
            continue;
        }
        let text = value.get_ref().text();
        // librdkafka knows its properties and their values: asking it here turns a typo into
        // an error at the option's line instead of a pipeline that fails to start.
        let mut probe = rdkafka::ClientConfig::new();
        probe.set(key, &text);
        if let Err(err) = probe.create_native_config() {
            c.error_hint(
                value.span(),
                format!("option \"{key}\" = \"{text}\": {err}"),
                "options are librdkafka properties: https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md",
            );
            continue;
        }
        out.insert(key.clone(), text);
    }
    out
}

fn servers(c: &mut Checker<'_>, raw: &Spanned<String>) -> Option<String> {
    let text = raw.get_ref().trim();
    let valid = !text.is_empty()
        && text.split(',').all(|server| {
            server
                .trim()
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        });
    if !valid {
        c.error_hint(
            raw.span(),
            format!("invalid bootstrap_servers \"{text}\""),
            "write host:port, several separated by commas, e.g. \"localhost:9092\"",
        );
        return None;
    }
    Some(text.to_string())
}

fn partition_number(c: &mut Checker<'_>, span: Range<usize>, text: &str) -> Option<i32> {
    match text.parse::<i32>() {
        Ok(n) if n >= 0 => Some(n),
        _ => {
            c.error(
                span,
                format!("partition \"{text}\" is not a partition number (0, 1, ...)"),
            );
            None
        }
    }
}

fn per_partition(
    c: &mut Checker<'_>,
    key: &str,
    raw: &Spanned<BTreeMap<String, BTreeMap<String, i64>>>,
    valid: impl Fn(i64) -> bool,
    expected: &str,
) -> Option<BTreeMap<String, BTreeMap<i32, i64>>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (topic, partitions) in raw.get_ref() {
        let mut parts = BTreeMap::new();
        for (partition, value) in partitions {
            match partition_number(c, raw.span(), partition) {
                Some(p) if valid(*value) => {
                    parts.insert(p, *value);
                }
                Some(_) => {
                    c.error(
                        raw.span(),
                        format!("{key}: {topic} partition {partition}: {value} is not {expected}"),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        out.insert(topic.clone(), parts);
    }
    ok.then_some(out)
}

fn timestamp(c: &mut Checker<'_>, key: &str, raw: &Spanned<RawTimestamp>) -> Option<i64> {
    let ms = match raw.get_ref() {
        RawTimestamp::Millis(ms) => *ms,
        RawTimestamp::Text(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => t.timestamp_millis(),
            Err(err) => {
                c.error_hint(
                    raw.span(),
                    format!("{key}: \"{text}\" is not an RFC 3339 time ({err})"),
                    "e.g. \"2026-12-01T00:00:00Z\", or milliseconds since the epoch",
                );
                return None;
            }
        },
    };
    limits::timestamp_ms(c, key, &Spanned::new(raw.span(), ms))
}

fn column_name(c: &mut Checker<'_>, key: &str, raw: &Option<Spanned<String>>) -> Option<String> {
    let raw = raw.as_ref()?;
    if raw.get_ref().trim().is_empty() {
        c.error(raw.span(), format!("{key} must not be empty"));
        return None;
    }
    Some(raw.get_ref().clone())
}

pub(super) fn check_kafka_source(
    c: &mut Checker<'_>,
    raw: RawKafkaSource,
    span: Range<usize>,
) -> Option<KafkaSourceSpec> {
    let errors_before = c.diagnostics.len();
    let bootstrap_servers = servers(c, &raw.bootstrap_servers);

    let given: Vec<Range<usize>> = [
        raw.subscribe.as_ref().map(Spanned::span),
        raw.subscribe_pattern.as_ref().map(Spanned::span),
        raw.assign.as_ref().map(Spanned::span),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() != 1 {
        c.error_hint(
            given.get(1).cloned().unwrap_or(span.clone()),
            "a kafka source needs exactly one of `subscribe`, `subscribe_pattern` and `assign`",
            "e.g. subscribe = [\"sensors\"], subscribe_pattern = \"sensor-.*\" or assign = { sensors = [0, 1] }",
        );
    }
    let topics = if let Some(topics) = &raw.subscribe {
        if topics.get_ref().is_empty() || topics.get_ref().iter().any(|t| t.trim().is_empty()) {
            c.error(topics.span(), "subscribe needs one or more topic names");
        }
        KafkaTopics::Subscribe(topics.get_ref().clone())
    } else if let Some(pattern) = &raw.subscribe_pattern {
        if let Err(err) = regex::Regex::new(&format!("^(?:{})$", pattern.get_ref())) {
            c.error(
                pattern.span(),
                format!("subscribe_pattern is not a regular expression: {err}"),
            );
        }
        KafkaTopics::Pattern(pattern.get_ref().clone())
    } else if let Some(assign) = &raw.assign {
        let mut map = BTreeMap::new();
        for (topic, partitions) in assign.get_ref() {
            let mut parts = Vec::new();
            for p in partitions {
                match i32::try_from(*p) {
                    Ok(p) if p >= 0 => parts.push(p),
                    _ => c.error(
                        assign.span(),
                        format!("assign: {topic}: {p} is not a partition number"),
                    ),
                }
            }
            if parts.is_empty() {
                c.error(
                    assign.span(),
                    format!("assign: {topic} needs one or more partitions"),
                );
            }
            parts.sort_unstable();
            parts.dedup();
            map.insert(topic.clone(), parts);
        }
        if map.is_empty() {
            c.error(assign.span(), "assign needs one or more topics");
        }
        KafkaTopics::Assign(map)
    } else {
        KafkaTopics::Subscribe(Vec::new())
    };

    let starting = [
        raw.starting_offsets.as_ref().map(Spanned::span),
        raw.starting_timestamp.as_ref().map(Spanned::span),
        raw.starting_offsets_by_timestamp
            .as_ref()
            .map(Spanned::span),
    ];
    if let Some(second) = starting.iter().flatten().nth(1) {
        c.error(
            second.clone(),
            "give one of `starting_offsets`, `starting_timestamp` and `starting_offsets_by_timestamp`",
        );
    }
    let starting_offsets = if let Some(so) = &raw.starting_offsets {
        match so.get_ref() {
            RawStartingOffsets::Named(name) if name == "earliest" => {
                Some(StartingOffsets::Earliest)
            }
            RawStartingOffsets::Named(name) if name == "latest" => Some(StartingOffsets::Latest),
            RawStartingOffsets::Named(name) => {
                c.error_hint(
                    so.span(),
                    format!("starting_offsets \"{name}\" is not \"earliest\" or \"latest\""),
                    "or give offsets per partition: { sensors = { \"0\" = 42, \"1\" = -2 } } (-2 earliest, -1 latest)",
                );
                None
            }
            RawStartingOffsets::Table(table) => per_partition(
                c,
                "starting_offsets",
                &Spanned::new(so.span(), table.clone()),
                |o| o >= -2,
                "an offset, -2 (earliest) or -1 (latest)",
            )
            .map(StartingOffsets::Offsets),
        }
    } else if let Some(ts) = &raw.starting_timestamp {
        timestamp(c, "starting_timestamp", ts).map(StartingOffsets::Timestamp)
    } else if let Some(by) = &raw.starting_offsets_by_timestamp {
        per_partition(
            c,
            "starting_offsets_by_timestamp",
            by,
            |t| (limits::MIN_TIMESTAMP_MS..=limits::MAX_TIMESTAMP_MS).contains(&t),
            "a timestamp in ms since the epoch",
        )
        .map(StartingOffsets::Timestamps)
    } else {
        Some(StartingOffsets::Latest)
    };

    let count = |c: &mut Checker<'_>, key: &str, v: &Option<Spanned<u64>>| match v {
        Some(v) => limits::rows_per_batch(c, key, v).map(Some),
        None => Some(None),
    };
    let max_offsets_per_trigger = count(c, "max_offsets_per_trigger", &raw.max_offsets_per_trigger);
    let min_offsets_per_trigger = count(c, "min_offsets_per_trigger", &raw.min_offsets_per_trigger);
    if let (Some(Some(min)), Some(Some(max)), Some(at)) = (
        min_offsets_per_trigger,
        max_offsets_per_trigger,
        raw.min_offsets_per_trigger.as_ref(),
    ) && min > max
    {
        c.error(
            at.span(),
            format!("min_offsets_per_trigger ({min}) is more than max_offsets_per_trigger ({max})"),
        );
    }
    let max_trigger_delay = match &raw.max_trigger_delay {
        Some(d) if raw.min_offsets_per_trigger.is_none() => {
            c.error(
                d.span(),
                "`max_trigger_delay` applies with min_offsets_per_trigger",
            );
            d.get_ref().0
        }
        Some(d) => d.get_ref().0,
        None => Duration::from_secs(15 * 60),
    };

    let format = raw
        .format
        .as_ref()
        .map_or(KafkaFormat::Raw, |f| *f.get_ref());
    let mut columns = Vec::new();
    let mut names = std::collections::HashSet::new();
    match format {
        KafkaFormat::Json | KafkaFormat::Csv => {
            if raw.column.is_empty() {
                c.error_hint(
                    raw.format.as_ref().map_or(span.clone(), Spanned::span),
                    format!("format = \"{}\" needs its columns", format.name()),
                    "declare them with [[source.column]] name = \"...\" type = \"string\" (or int, long, double, boolean, timestamp)",
                );
            }
        }
        KafkaFormat::Raw | KafkaFormat::Text => {
            if let Some(first) = raw.column.first() {
                c.error_hint(
                    first.span(),
                    format!(
                        "format = \"{}\" has fixed columns; it takes no [[source.column]]",
                        format.name()
                    ),
                    "use format = \"json\" or \"csv\" to decode values into columns",
                );
            }
        }
    }
    for (key, value) in [("delimiter", &raw.delimiter), ("quote", &raw.quote)] {
        if let Some(v) = value
            && format != KafkaFormat::Csv
        {
            c.error(v.span(), format!("`{key}` applies to format = \"csv\""));
        }
    }
    let delimiter = super::file_source::one_byte(c, "delimiter", &raw.delimiter, b',');
    let quote = super::file_source::one_byte(c, "quote", &raw.quote, b'"');
    let include_timestamp = raw.include_timestamp.as_ref().is_some_and(|b| *b.get_ref());
    for col in &raw.column {
        let col = col.get_ref();
        let name = col.name.get_ref();
        if name.is_empty() {
            c.error(col.name.span(), "column name must not be empty");
        } else if !names.insert(name.clone()) {
            c.error(col.name.span(), format!("duplicate column name \"{name}\""));
        } else if include_timestamp && name == "timestamp" {
            c.error(
                col.name.span(),
                "column name \"timestamp\" is taken by include_timestamp = true",
            );
        }
        columns.push(FileColumn {
            name: name.clone(),
            data_type: *col.data_type.get_ref(),
        });
    }
    if let Some(flag) = &raw.include_headers
        && format != KafkaFormat::Raw
    {
        c.error(flag.span(), "`include_headers` applies to format = \"raw\"");
    }
    if let Some(flag) = &raw.include_timestamp
        && format == KafkaFormat::Raw
    {
        c.error(
            flag.span(),
            "format = \"raw\" always has the `timestamp` column; `include_timestamp` applies to json, csv and text",
        );
    }
    if let Some(on_error) = &raw.on_error
        && format == KafkaFormat::Raw
        && *on_error.get_ref() != OnError::Fail
    {
        c.error(
            on_error.span(),
            "format = \"raw\" decodes nothing, so no record is malformed; `on_error` applies to json, csv and text",
        );
    }
    let group_id = column_name(c, "group_id", &raw.group_id);
    if let (Some(group), Some(_)) = (&raw.group_id, &raw.assign) {
        c.error_hint(
            group.span(),
            "group_id shares the topics' partitions among the daemons in the group; `assign` fixes them",
            "use subscribe or subscribe_pattern with group_id, or leave group_id out to read exactly the assigned partitions",
        );
    }
    if let (Some(_), Some(flag)) = (&raw.group_id, &raw.commit_offsets)
        && !*flag.get_ref()
    {
        c.error_hint(
            flag.span(),
            "commit_offsets = false cannot go with group_id",
            "the group's committed offsets are how a partition moves to another daemon of the group without being read twice",
        );
    }
    let fetch_timeout = match &raw.fetch_timeout {
        Some(d) if d.get_ref().0 < Duration::from_secs(1) => {
            c.error(d.span(), "fetch_timeout must be at least 1s");
            None
        }
        Some(d) => Some(d.get_ref().0),
        None => Some(Duration::from_secs(60)),
    };
    let options = properties(c, &raw.options, RESERVED_SOURCE_PROPERTIES);
    let partitioned_by = partitioned_by(c, &raw, format, &columns, include_timestamp);

    if c.diagnostics.len() != errors_before {
        return None;
    }
    Some(KafkaSourceSpec {
        bootstrap_servers: bootstrap_servers?,
        topics,
        starting_offsets: starting_offsets?,
        max_offsets_per_trigger: max_offsets_per_trigger?,
        min_offsets_per_trigger: min_offsets_per_trigger?,
        max_trigger_delay,
        fail_on_data_loss: raw.fail_on_data_loss.unwrap_or(true),
        format,
        columns,
        delimiter,
        quote,
        include_headers: raw.include_headers.is_some_and(|b| b.into_inner()),
        include_timestamp,
        on_error: raw.on_error.map_or(OnError::Fail, Spanned::into_inner),
        group_id,
        commit_offsets: raw.commit_offsets.as_ref().is_none_or(|b| *b.get_ref()),
        partitioned_by,
        task_column: false,
        fetch_timeout: fetch_timeout?,
        options,
    })
}

pub(super) fn check_kafka_sink(
    c: &mut Checker<'_>,
    raw: RawKafkaSink,
    span: Range<usize>,
) -> Option<KafkaSinkSpec> {
    let errors_before = c.diagnostics.len();
    let bootstrap_servers = servers(c, &raw.bootstrap_servers);
    let destination = match (&raw.topic, &raw.topic_column) {
        (Some(topic), None) => {
            if topic.get_ref().trim().is_empty() {
                c.error(topic.span(), "topic must not be empty");
            }
            Some(KafkaDestination::Topic(topic.get_ref().clone()))
        }
        (None, Some(_)) => {
            column_name(c, "topic_column", &raw.topic_column).map(KafkaDestination::Column)
        }
        (Some(_), Some(column)) => {
            c.error(column.span(), "give one of `topic` and `topic_column`");
            None
        }
        (None, None) => {
            c.error_hint(
                span.clone(),
                "a kafka sink needs `topic` (or `topic_column`)",
                "e.g. topic = \"sensor-averages\"",
            );
            None
        }
    };
    let value = match (&raw.format, &raw.value_column) {
        (Some(format), Some(_)) => {
            c.error(
                format.span(),
                "give one of `format` and `value_column`: the value is a JSON object of the row, or one column's bytes",
            );
            None
        }
        (Some(format), None) if format.get_ref() != "json" => {
            c.error_hint(
                format.span(),
                format!("format \"{}\" is not \"json\"", format.get_ref()),
                "for other encodings, build the value in a transform and name it with value_column",
            );
            None
        }
        (_, Some(_)) => column_name(c, "value_column", &raw.value_column).map(KafkaValue::Column),
        (_, None) => Some(KafkaValue::Json),
    };
    let compression = match &raw.compression {
        Some(comp) if !COMPRESSIONS.contains(&comp.get_ref().as_str()) => {
            c.error(
                comp.span(),
                format!(
                    "compression \"{}\" is not one of {}",
                    comp.get_ref(),
                    COMPRESSIONS.join(", ")
                ),
            );
            None
        }
        Some(comp) => Some(comp.get_ref().clone()),
        None => None,
    };
    let exactly_once = raw.exactly_once.unwrap_or(false);
    if let Some(id) = &raw.transactional_id {
        if !exactly_once {
            c.error(
                id.span(),
                "`transactional_id` applies with exactly_once = true",
            );
        } else if id.get_ref().trim().is_empty() {
            c.error(id.span(), "transactional_id must not be empty");
        }
    }
    if exactly_once && let Some(KafkaDestination::Column(_)) = &destination {
        c.error_hint(
            raw.topic_column
                .as_ref()
                .map_or(span.clone(), Spanned::span),
            "exactly_once = true needs a fixed `topic`",
            "each transaction records the batch it carried on the topic's first partition",
        );
    }
    let key_column = column_name(c, "key_column", &raw.key_column);
    let headers_column = column_name(c, "headers_column", &raw.headers_column);
    let timestamp_column = column_name(c, "timestamp_column", &raw.timestamp_column);
    let options = properties(c, &raw.options, RESERVED_SINK_PROPERTIES);
    if c.diagnostics.len() != errors_before {
        return None;
    }
    let column_locations = [
        ("topic_column", &raw.topic_column),
        ("key_column", &raw.key_column),
        ("value_column", &raw.value_column),
        ("headers_column", &raw.headers_column),
        ("timestamp_column", &raw.timestamp_column),
    ]
    .into_iter()
    .filter_map(|(role, at)| Some((role, Location::from_span(c.text, at.as_ref()?.span()))))
    .collect();
    Some(KafkaSinkSpec {
        bootstrap_servers: bootstrap_servers?,
        destination: destination?,
        key_column,
        value: value?,
        headers_column,
        timestamp_column,
        exactly_once,
        transactional_id: raw.transactional_id.map(Spanned::into_inner),
        compression,
        options,
        key_columns: Vec::new(),
        create_topic_like: None,
        column_locations,
    })
}

/// The source's column names (the decoded rows', before any stage).
fn source_columns(format: KafkaFormat, columns: &[FileColumn], timestamp: bool) -> Vec<&str> {
    let mut names: Vec<&str> = match format {
        KafkaFormat::Raw => vec![
            "key",
            "value",
            "topic",
            "partition",
            "offset",
            "timestamp",
            "timestampType",
        ],
        KafkaFormat::Json | KafkaFormat::Csv => columns.iter().map(|c| c.name.as_str()).collect(),
        KafkaFormat::Text => vec!["value"],
    };
    if timestamp && format != KafkaFormat::Raw {
        names.push("timestamp");
    }
    names
}

/// `partitioned_by`: names of the source's columns, and only with `group_id` (it says whether
/// an aggregation on shared partitions needs a repartition topic).
fn partitioned_by(
    c: &mut Checker<'_>,
    raw: &RawKafkaSource,
    format: KafkaFormat,
    columns: &[FileColumn],
    include_timestamp: bool,
) -> Vec<String> {
    let Some(given) = &raw.partitioned_by else {
        return Vec::new();
    };
    if raw.group_id.is_none() {
        c.error_hint(
            given.span(),
            "`partitioned_by` applies with group_id",
            "it tells an aggregation on partitions shared through a consumer group that each group's rows are already in one partition",
        );
    }
    let known = source_columns(format, columns, include_timestamp);
    if given.get_ref().is_empty() {
        c.error(
            given.span(),
            "partitioned_by needs one or more column names",
        );
    }
    for name in given.get_ref() {
        if !known.contains(&name.as_str()) {
            c.error(
                given.span(),
                format!(
                    "partitioned_by: \"{name}\" is not a column of this source (it has {})",
                    known.join(", ")
                ),
            );
        }
    }
    given.get_ref().clone()
}

#[cfg(test)]
mod tests {
    use crate::config::{
        KafkaDestination, KafkaFormat, KafkaTopics, KafkaValue, SinkSpec, SourceSpec,
        StartingOffsets, parse_pipeline,
    };
    use std::path::Path;

    fn source(body: &str) -> Result<SourceSpec, String> {
        let text = format!(
            "name = \"p\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"localhost:9092\"\n{body}\n[[sink]]\ntype = \"null\"\n"
        );
        parse_pipeline(Path::new("/x/p.toml"), &text)
            .map(|p| p.source)
            .map_err(|d| d.to_string())
    }

    fn sink(body: &str) -> Result<SinkSpec, String> {
        let text = format!(
            "name = \"p\"\n[source]\ntype = \"rate\"\n[[sink]]\ntype = \"kafka\"\nbootstrap_servers = \"localhost:9092\"\n{body}\n"
        );
        parse_pipeline(Path::new("/x/p.toml"), &text)
            .map(|p| p.sinks.into_iter().next().unwrap_or(SinkSpec::Null))
            .map_err(|d| d.to_string())
    }

    #[test]
    fn kafka_source_sections_parse_with_spark_defaults() {
        let Ok(SourceSpec::Kafka(s)) = source("subscribe = [\"a\", \"b\"]") else {
            panic!("{:?}", source("subscribe = [\"a\", \"b\"]"));
        };
        assert_eq!(
            s.topics,
            KafkaTopics::Subscribe(vec!["a".into(), "b".into()])
        );
        assert_eq!(s.starting_offsets, StartingOffsets::Latest);
        assert_eq!(s.format, KafkaFormat::Raw);
        assert!(s.fail_on_data_loss && s.commit_offsets);
        assert_eq!(s.max_offsets_per_trigger, None);

        let body = "assign = { t = [1, 0, 1] }\nstarting_offsets = { t = { \"0\" = 5, \"1\" = -2 } }\nformat = \"json\"\ninclude_timestamp = true\non_error = \"dead_letter\"\nmax_offsets_per_trigger = 100\n[source.options]\n\"security.protocol\" = \"SASL_SSL\"\n\"fetch.max.bytes\" = 1048576\n[[source.column]]\nname = \"v\"\ntype = \"long\"";
        let Ok(SourceSpec::Kafka(s)) = source(body) else {
            panic!("{:?}", source(body));
        };
        assert_eq!(
            s.topics,
            KafkaTopics::Assign([("t".to_string(), vec![0, 1])].into())
        );
        assert_eq!(
            s.starting_offsets,
            StartingOffsets::Offsets([("t".to_string(), [(0, 5), (1, -2)].into())].into())
        );
        assert_eq!(
            s.options.get("fetch.max.bytes").map(String::as_str),
            Some("1048576")
        );
        assert_eq!(s.columns.len(), 1);
        assert_eq!(s.max_offsets_per_trigger, Some(100));

        let Ok(SourceSpec::Kafka(s)) =
            source("subscribe_pattern = \"t-.*\"\nstarting_timestamp = \"2026-01-01T00:00:00Z\"")
        else {
            panic!()
        };
        assert_eq!(s.topics, KafkaTopics::Pattern("t-.*".into()));
        assert_eq!(
            s.starting_offsets,
            StartingOffsets::Timestamp(1_767_225_600_000)
        );
    }

    #[test]
    fn group_id_is_refused_beside_assign_and_commit_offsets_false_and_an_aggregation_on_it_needs_one_topic_no_transform_no_complete_mode_and_an_exactly_once_kafka_sink_each_at_its_line()
     {
        let Ok(SourceSpec::Kafka(s)) = source("subscribe = [\"a\"]\ngroup_id = \"g\"") else {
            panic!("{:?}", source("subscribe = [\"a\"]\ngroup_id = \"g\""));
        };
        assert_eq!(s.group_id.as_deref(), Some("g"));
        assert!(s.commit_offsets);

        let err = source("assign = { a = [0] }\ngroup_id = \"g\"")
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("/x/p.toml:6:12: error: group_id shares the topics' partitions among the daemons in the group; `assign` fixes them"),
            "{err}"
        );
        let err = source("subscribe = [\"a\"]\ngroup_id = \"g\"\ncommit_offsets = false")
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("/x/p.toml:7:18: error: commit_offsets = false cannot go with group_id"),
            "{err}"
        );

        let head = "name = \"p\"\noutput_mode = \"update\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"b:9092\"\nsubscribe = [\"a\"]\ngroup_id = \"g\"\nformat = \"json\"\n[[source.column]]\nname = \"k\"\ntype = \"string\"\n";
        let aggregated = format!(
            "{head}[aggregate]\ngroup_by = [\"k\"]\nfunctions = [{{ fn = \"count\" }}]\n[[sink]]\ntype = \"null\"\n"
        );
        let errors = |text: &str| {
            parse_pipeline(Path::new("/x/p.toml"), text)
                .err()
                .map(|d| d.to_string())
                .unwrap_or_default()
        };
        let err = errors(&aggregated);
        assert!(
            err.contains("/x/p.toml:12:1: error: [aggregate] on partitions shared through consumer group \"g\" needs a Kafka sink with exactly_once = true"),
            "{err}"
        );
        // Exactly once to Kafka commits the group's offsets (and a shared aggregation's
        // changelog) in the sink's transactions.
        let exactly_once_sink = "[[sink]]\ntype = \"kafka\"\nbootstrap_servers = \"b:9092\"\ntopic = \"out\"\nexactly_once = true\n";
        let exactly_once = format!("{head}{exactly_once_sink}");
        assert!(parse_pipeline(Path::new("/x/p.toml"), &exactly_once).is_ok());
        let shared = aggregated.replace("[[sink]]\ntype = \"null\"\n", exactly_once_sink);
        let keyed = shared.replace(
            "format = \"json\"\n",
            "format = \"json\"\npartitioned_by = [\"k\"]\n",
        );
        match parse_pipeline(Path::new("/x/p.toml"), &keyed) {
            Ok(plan) => assert!(
                matches!(&plan.source, SourceSpec::Kafka(k) if k.task_column)
                    && plan.repartition.is_none(),
                "the source adds each row's partition for the aggregation's tasks"
            ),
            Err(err) => panic!("{err}"),
        }
        let err = errors(&shared.replace("subscribe = [\"a\"]", "subscribe = [\"a\", \"b\"]"));
        assert!(
            err.contains("/x/p.toml:12:1: error: [aggregate] on partitions shared through consumer group \"g\" needs exactly one topic in `subscribe`"),
            "{err}"
        );
        let err = errors(&shared.replace("output_mode = \"update\"", "output_mode = \"complete\""));
        assert!(
            err.contains("/x/p.toml:12:1: error: output_mode \"complete\" cannot run on partitions shared through consumer group \"g\""),
            "{err}"
        );
        let err = errors(&shared.replace(
            "[aggregate]",
            "[[transform]]\nplugin = \"upper\"\n[aggregate]",
        ));
        assert!(
            err.contains("/x/p.toml:14:1: error: [aggregate] on partitions shared through consumer group \"g\" cannot follow a [[transform]] yet"),
            "{err}"
        );
        let alone = aggregated.replace("group_id = \"g\"\n", "");
        assert!(parse_pipeline(Path::new("/x/p.toml"), &alone).is_ok());
    }

    #[test]
    fn a_shared_aggregation_not_grouped_by_the_sources_partitioning_reads_a_repartition_topic_that_the_sources_rows_are_written_to_keyed_by_the_group_columns()
     {
        let text = |partitioned_by: &str, format: &str| {
            format!(
                "name = \"p\"\noutput_mode = \"update\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"b:9092\"\nsubscribe = [\"in\"]\ngroup_id = \"g\"\n{partitioned_by}{format}[source.options]\n\"group.instance.id\" = \"h1\"\n\"security.protocol\" = \"ssl\"\n[aggregate]\ngroup_by = [\"k\", \"j\"]\nfunctions = [{{ fn = \"count\" }}]\n[[sink]]\ntype = \"kafka\"\nbootstrap_servers = \"b:9092\"\ntopic = \"out\"\nexactly_once = true\n"
            )
        };
        let json = "format = \"json\"\ninclude_timestamp = true\n[[source.column]]\nname = \"k\"\ntype = \"string\"\n[[source.column]]\nname = \"j\"\ntype = \"long\"\n";
        let plan = |t: &str| {
            parse_pipeline(Path::new("/x/p.toml"), t).unwrap_or_else(|err| panic!("{err}"))
        };
        for given in [
            "",
            "partitioned_by = [\"timestamp\"]\n",
            "partitioned_by = [\"k\", \"timestamp\"]\n",
        ] {
            let plan = plan(&text(given, json));
            let Some(r) = &plan.repartition else {
                panic!("{given:?}: no repartition topic");
            };
            assert!(
                matches!(&plan.source, SourceSpec::Kafka(k) if !k.task_column),
                "the file's source is read whole by the writer"
            );
            assert_eq!(r.topic, "g-p-repartition");
            assert_eq!(r.group, "g");
            assert_eq!(
                r.writer.destination,
                KafkaDestination::Topic("g-p-repartition".into())
            );
            assert_eq!(r.writer.key_columns, ["k", "j"]);
            assert_eq!(r.writer.create_topic_like.as_deref(), Some("in"));
            assert!(r.writer.exactly_once && r.writer.value == KafkaValue::Json);
            assert_eq!(
                r.writer.options.keys().collect::<Vec<_>>(),
                ["security.protocol"],
                "the producer gets no consumer-only option"
            );
            let SourceSpec::Kafka(reader) = &r.reader else {
                panic!("{:?}", r.reader);
            };
            assert_eq!(
                reader.topics,
                KafkaTopics::Subscribe(vec!["g-p-repartition".into()])
            );
            assert_eq!(reader.group_id.as_deref(), Some("g-p-aggregate"));
            assert_eq!(reader.starting_offsets, StartingOffsets::Earliest);
            assert!(
                reader.task_column
                    && reader.format == KafkaFormat::Json
                    && !reader.include_timestamp
            );
            let columns: Vec<(&str, &str)> = reader
                .columns
                .iter()
                .map(|c| (c.name.as_str(), c.data_type.name()))
                .collect();
            assert_eq!(
                columns,
                [("k", "string"), ("j", "long"), ("timestamp", "timestamp")],
                "the reader decodes the rows the source made"
            );
        }
        for given in [
            "partitioned_by = [\"k\"]\n",
            "partitioned_by = [\"j\", \"k\"]\n",
        ] {
            let plan = plan(&text(given, json));
            assert!(plan.repartition.is_none(), "{given:?}");
            assert!(matches!(&plan.source, SourceSpec::Kafka(k) if k.task_column));
        }
        let text_rows =
            plan(&text("", "format = \"text\"\n").replace("[\"k\", \"j\"]", "[\"value\"]"));
        let Some(SourceSpec::Kafka(reader)) = text_rows.repartition.map(|r| r.reader) else {
            panic!("no repartition topic for text rows");
        };
        assert_eq!(reader.columns.len(), 1);
        assert_eq!(reader.columns[0].name, "value");

        let errors = |t: &str| {
            parse_pipeline(Path::new("/x/p.toml"), t)
                .err()
                .map(|d| d.to_string())
                .unwrap_or_default()
        };
        let raw = text("", "").replace("[\"k\", \"j\"]", "[\"key\"]");
        let err = errors(&raw);
        assert!(
            err.contains("/x/p.toml:11:1: error: [aggregate] on partitions shared through consumer group \"g\" goes through a repartition topic, which cannot carry format = \"raw\" rows"),
            "{err}"
        );
        let keyed_raw =
            text("partitioned_by = [\"key\"]\n", "").replace("[\"k\", \"j\"]", "[\"key\"]");
        assert!(
            plan(&keyed_raw).repartition.is_none(),
            "raw records keyed as grouped"
        );
        let err = errors(&text("partitioned_by = [\"x\"]\n", json));
        assert!(
            err.contains("/x/p.toml:8:18: error: partitioned_by: \"x\" is not a column of this source (it has k, j, timestamp)"),
            "{err}"
        );
        let err = source("subscribe = [\"a\"]\npartitioned_by = [\"key\"]")
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("/x/p.toml:6:18: error: `partitioned_by` applies with group_id"),
            "{err}"
        );
    }

    #[test]
    fn idle_timeout_applies_to_a_watermarked_aggregation_on_shared_partitions_only_and_is_refused_elsewhere_at_its_line()
     {
        let text = |group: &str, watermark: &str| {
            format!(
                "name = \"p\"\noutput_mode = \"update\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"b:9092\"\nsubscribe = [\"in\"]\n{group}format = \"json\"\n[[source.column]]\nname = \"t\"\ntype = \"timestamp\"\n[aggregate]\nwindow = {{ column = \"t\", size = \"10s\" }}\n{watermark}idle_timeout = \"30s\"\nfunctions = [{{ fn = \"count\" }}]\n[[sink]]\ntype = \"kafka\"\nbootstrap_servers = \"b:9092\"\ntopic = \"out\"\nexactly_once = true\n"
            )
        };
        let errors = |t: &str| {
            parse_pipeline(Path::new("/x/p.toml"), t)
                .err()
                .map(|d| d.to_string())
                .unwrap_or_default()
        };
        match parse_pipeline(
            Path::new("/x/p.toml"),
            &text("group_id = \"g\"\n", "watermark = \"5s\"\n"),
        ) {
            Ok(plan) => assert_eq!(
                plan.aggregate.and_then(|a| a.idle_timeout),
                Some(std::time::Duration::from_secs(30))
            ),
            Err(err) => panic!("{err}"),
        }
        let err = errors(&text("group_id = \"g\"\n", ""));
        assert!(
            err.contains("/x/p.toml:14:16: error: `idle_timeout` applies with a watermark"),
            "{err}"
        );
        let err = errors(&text("", "watermark = \"5s\"\n"));
        assert!(
            err.contains("/x/p.toml:14:16: error: `idle_timeout` applies to an aggregation on partitions shared through a consumer group"),
            "{err}"
        );
    }

    #[test]
    fn standby_applies_to_an_aggregation_on_shared_partitions_only_and_is_refused_elsewhere_at_its_line()
     {
        let text = |group: &str| {
            format!(
                "name = \"p\"\noutput_mode = \"update\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"b:9092\"\nsubscribe = [\"in\"]\n{group}format = \"json\"\n[[source.column]]\nname = \"t\"\ntype = \"timestamp\"\n[aggregate]\nwindow = {{ column = \"t\", size = \"10s\" }}\nstandby = true\nfunctions = [{{ fn = \"count\" }}]\n[[sink]]\ntype = \"kafka\"\nbootstrap_servers = \"b:9092\"\ntopic = \"out\"\nexactly_once = true\n"
            )
        };
        match parse_pipeline(Path::new("/x/p.toml"), &text("group_id = \"g\"\n")) {
            Ok(plan) => assert_eq!(plan.aggregate.map(|a| a.standby), Some(true)),
            Err(err) => panic!("{err}"),
        }
        let err = parse_pipeline(Path::new("/x/p.toml"), &text(""))
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("/x/p.toml:13:11: error: `standby` applies to an aggregation on partitions shared through a consumer group"),
            "{err}"
        );
    }

    #[test]
    fn kafka_source_mistakes_are_located_errors() {
        for (body, message) in [
            (
                "subscribe = [\"a\"]\nsubscribe_pattern = \"b\"",
                "/x/p.toml:6:21: error: a kafka source needs exactly one of `subscribe`, `subscribe_pattern` and `assign`",
            ),
            ("", "a kafka source needs exactly one of"),
            (
                "subscribe_pattern = \"(\"",
                "subscribe_pattern is not a regular expression",
            ),
            (
                "subscribe = [\"a\"]\nstarting_offsets = \"newest\"",
                "starting_offsets \"newest\" is not \"earliest\" or \"latest\"",
            ),
            (
                "subscribe = [\"a\"]\nstarting_offsets = { a = { x = 1 } }",
                "partition \"x\" is not a partition number",
            ),
            (
                "subscribe = [\"a\"]\nformat = \"json\"",
                "format = \"json\" needs its columns",
            ),
            (
                "subscribe = [\"a\"]\n[source.options]\n\"group.id\" = \"g\"",
                "option \"group.id\" is set by weir",
            ),
            (
                "subscribe = [\"a\"]\n[source.options]\n\"fetch.max.byte\" = 1",
                "option \"fetch.max.byte\" = \"1\": ",
            ),
            (
                "subscribe = [\"a\"]\nmax_offsets_per_trigger = 0",
                "max_offsets_per_trigger must be between 1 and",
            ),
            (
                "subscribe = [\"a\"]\nmin_offsets_per_trigger = 10\nmax_offsets_per_trigger = 5",
                "min_offsets_per_trigger (10) is more than max_offsets_per_trigger (5)",
            ),
            (
                "subscribe = [\"a\"]\non_error = \"skip\"",
                "`on_error` applies to json, csv and text",
            ),
            (
                "subscribe = [\"a\"]\nformat = \"csv\"",
                "format = \"csv\" needs its columns",
            ),
            (
                "subscribe = [\"a\"]\nformat = \"json\"\ndelimiter = \";\"\n[[source.column]]\nname = \"x\"\ntype = \"long\"",
                "`delimiter` applies to format = \"csv\"",
            ),
            (
                "subscribe = [\"a\"]\nformat = \"csv\"\nquote = \"ab\"\n[[source.column]]\nname = \"x\"\ntype = \"long\"",
                "quote must be one ASCII character",
            ),
            (
                "subscribe = [\"a\"]\nformat = \"json\"\ninclude_timestamp = true\n[[source.column]]\nname = \"timestamp\"\ntype = \"long\"",
                "column name \"timestamp\" is taken by include_timestamp = true",
            ),
        ] {
            let err = source(body).err().unwrap_or_default();
            assert!(err.contains(message), "{body:?}: {err}");
        }
        let err = parse_pipeline(
            Path::new("/x/p.toml"),
            "name = \"p\"\n[source]\ntype = \"kafka\"\nbootstrap_servers = \"localhost\"\nsubscribe = [\"a\"]\n[[sink]]\ntype = \"null\"\n",
        )
        .err()
        .map(|d| d.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("/x/p.toml:4:21: error: invalid bootstrap_servers \"localhost\""),
            "{err}"
        );
    }

    #[test]
    fn kafka_sink_sections_parse_and_mistakes_are_located_errors() {
        let Ok(SinkSpec::Kafka(s)) =
            sink("topic = \"out\"\nkey_column = \"k\"\nexactly_once = true")
        else {
            panic!()
        };
        assert_eq!(s.destination, KafkaDestination::Topic("out".into()));
        assert_eq!(s.value, KafkaValue::Json);
        assert!(s.exactly_once);
        let Ok(SinkSpec::Kafka(s)) =
            sink("topic_column = \"t\"\nvalue_column = \"payload\"\ncompression = \"zstd\"")
        else {
            panic!()
        };
        assert_eq!(s.destination, KafkaDestination::Column("t".into()));
        assert_eq!(s.value, KafkaValue::Column("payload".into()));
        assert_eq!(s.compression.as_deref(), Some("zstd"));
        for (body, message) in [
            ("", "a kafka sink needs `topic` (or `topic_column`)"),
            (
                "topic_column = \"t\"\nexactly_once = true",
                "exactly_once = true needs a fixed `topic`",
            ),
            (
                "topic = \"t\"\nformat = \"json\"\nvalue_column = \"v\"",
                "give one of `format` and `value_column`",
            ),
            (
                "topic = \"t\"\ncompression = \"brotli\"",
                "compression \"brotli\" is not one of",
            ),
            (
                "topic = \"t\"\ntransactional_id = \"x\"",
                "`transactional_id` applies with exactly_once = true",
            ),
            (
                "topic = \"t\"\n[sink.options]\n\"transactional.id\" = \"x\"",
                "option \"transactional.id\" is set by weir",
            ),
        ] {
            let err = sink(body).err().unwrap_or_default();
            assert!(err.contains(message), "{body:?}: {err}");
        }
    }
}
