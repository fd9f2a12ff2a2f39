//! The validated, typed form of a pipeline file, and the validation that produces it.
//!
//! Validation collects every error it can find (not just the first), each with its span.

use super::aggregate::{AggregateSpec, check_aggregate};
use super::checker::Checker;
use super::diagnostic::{Diagnostics, Location};
use super::kafka::KafkaTopics;
use super::raw::{RawHead, RawTasks, RawTrigger};
use super::repartition::Repartition;
use super::sink::{SinkSpec, check_sinks};
use super::source::{SourceSpec, check_source};
use super::tagged::SpanError;
use super::transform::{TransformSpec, check_transforms};
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which rows of the result table each batch emits (Spark's output modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// Only new rows; for aggregations, each window once, after the watermark passes its end.
    Append,
    /// Rows changed by this batch.
    Update,
    /// The whole result table, every batch (aggregations only).
    Complete,
}

/// When micro-batches fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The next batch as soon as the previous one is done and new data is there.
    BackToBack,
    /// A batch every interval, aligned to multiples of it; an overrun starts the next at once.
    ProcessingTime(Duration),
    /// One batch with what is there at start, then stop.
    Once,
    /// Everything there at start, in as many batches as the source limits need, then stop.
    AvailableNow,
}

/// How many of a batch's chunks the daemon works on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parallelism {
    /// One task per core of the machine.
    #[default]
    Auto,
    /// This many.
    Tasks(usize),
}

impl Parallelism {
    /// The number of tasks on a machine of `cores` cores.
    pub fn tasks(self, cores: usize) -> usize {
        match self {
            Parallelism::Auto => cores.max(1),
            Parallelism::Tasks(n) => n,
        }
    }
}

/// A validated pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelinePlan {
    /// Unique name.
    pub name: String,
    /// Where `name` is written, for cross-file errors.
    pub name_location: Location,
    /// The file it came from.
    pub file: PathBuf,
    /// Output mode.
    pub output_mode: OutputMode,
    /// Trigger.
    pub trigger: Trigger,
    /// The source.
    pub source: SourceSpec,
    /// Wasm transform stages, in order.
    pub transforms: Vec<TransformSpec>,
    /// The stateful aggregation, if any.
    pub aggregate: Option<AggregateSpec>,
    /// One or more sinks.
    pub sinks: Vec<SinkSpec>,
    /// Restart policy under the daemon; `None` takes the daemon's default.
    pub restart: Option<super::daemon::RestartPolicy>,
    /// `[parallelism] tasks_per_daemon`.
    pub parallelism: Parallelism,
    /// An aggregation on shared partitions not keyed by its groups: the source feeds a
    /// repartition topic, which the aggregation reads.
    pub repartition: Option<Repartition>,
}

impl PipelinePlan {
    /// What the stages read: the repartition topic when there is one, else the source.
    pub fn stage_source(&self) -> &SourceSpec {
        self.repartition
            .as_ref()
            .map_or(&self.source, |r| &r.reader)
    }

    /// The plugins it names (transform stages and aggregate functions), each once.
    pub fn plugin_names(&self) -> std::collections::BTreeSet<&str> {
        let transforms = self.transforms.iter().map(|t| t.plugin.as_str());
        let functions = self.aggregate.iter().flat_map(|a| {
            a.functions.iter().filter_map(|f| match &f.kind {
                super::aggregate::FunctionKind::Plugin { name, .. } => Some(name.as_str()),
                super::aggregate::FunctionKind::Builtin(_) => None,
            })
        });
        transforms.chain(functions).collect()
    }
}

pub(super) fn parse(file: &Path, text: &str) -> Result<PipelinePlan, Diagnostics> {
    let mut c = Checker {
        file,
        text,
        diagnostics: Diagnostics::default(),
    };
    let mut doc = match toml::de::DeTable::parse(text) {
        Ok(doc) => doc,
        Err(err) => {
            c.span_error(SpanError::from_toml(err, 0..0));
            return Err(c.diagnostics);
        }
    };
    let source_value = doc.get_mut().remove("source");
    let sink_value = doc.get_mut().remove("sink");
    let transform_value = doc.get_mut().remove("transform");
    let aggregate_value = doc.get_mut().remove("aggregate");
    let aggregate_span = aggregate_value.as_ref().map(|v| v.span());
    let doc_start = 0..0;

    let head: Option<RawHead> = c.ok(RawHead::deserialize(toml::de::Deserializer::from(doc))
        .map_err(|e| SpanError::from_toml(e, doc_start.clone())));

    let source = match source_value {
        Some(value) => check_source(&mut c, value),
        None => {
            c.error_hint(
                doc_start.clone(),
                "missing table `[source]`",
                "every pipeline reads from one source, e.g. [source] type = \"rate\"",
            );
            None
        }
    };

    let sinks = match sink_value {
        Some(value) => check_sinks(&mut c, value),
        None => {
            c.error_hint(
                doc_start.clone(),
                "missing `[[sink]]`",
                "every pipeline writes to at least one sink, e.g. [[sink]] type = \"console\"",
            );
            None
        }
    };

    let transforms = match transform_value {
        Some(value) => check_transforms(&mut c, value),
        None => Some(Vec::new()),
    };
    let aggregate = match aggregate_value {
        Some(value) => check_aggregate(&mut c, value).map(Some),
        None => Some(None),
    };

    let mut name = None;
    let mut output_mode = OutputMode::Append;
    let mut output_mode_span = None;
    let mut trigger = Trigger::BackToBack;
    let mut restart = None;
    let mut parallelism = Parallelism::Auto;
    if let Some(head) = head {
        restart = head.restart;
        if let Some(p) = head.parallelism {
            parallelism = check_parallelism(&mut c, p.tasks_per_daemon);
        }
        let span = head.name.span();
        let value = head.name.into_inner();
        if check_name(&mut c, &value, span.clone()) {
            name = Some((value, Location::from_span(text, span)));
        }
        if let Some(mode) = head.output_mode {
            output_mode_span = Some(mode.span());
            if *mode.get_ref() == OutputMode::Complete && aggregate_span.is_none() {
                c.error_hint(
                    mode.span(),
                    "output_mode \"complete\" needs an aggregation",
                    "complete mode re-emits the whole result table every batch, which only exists for aggregations (Spark's rule); use \"append\" or \"update\"",
                );
            }
            output_mode = mode.into_inner();
        }
        if let Some(t) = head.trigger {
            let span = t.span();
            trigger = match t.into_inner() {
                RawTrigger::ProcessingTime(d) if d.0.is_zero() => {
                    c.error(span, "processing_time must be longer than zero; leave `trigger` out for back-to-back batches");
                    Trigger::BackToBack
                }
                RawTrigger::ProcessingTime(d) => Trigger::ProcessingTime(d.0),
                RawTrigger::Once => Trigger::Once,
                RawTrigger::AvailableNow => Trigger::AvailableNow,
            };
        }
    }

    if let (Some(Some(spec)), OutputMode::Append) = (&aggregate, output_mode)
        && spec.watermark.is_none()
    {
        let span = output_mode_span
            .or(aggregate_span.clone())
            .unwrap_or(doc_start);
        c.error_hint(
            span,
            "output_mode \"append\" with an aggregation needs a watermark",
            "append emits each window once, when the watermark passes its end (Spark's rule); add `watermark = \"10s\"` and a `window` to [aggregate], or use output_mode \"update\" or \"complete\"",
        );
    }

    let mut source = source;
    let mut repartition = None;
    let mut shared_group = false;
    if let Some(SourceSpec::Kafka(kafka)) = &mut source
        && let Some(group) = kafka.group_id.clone()
        && let Some(span) = aggregate_span
            .clone()
            .filter(|_| matches!(aggregate, Some(Some(_))))
    {
        let shared = SharedAggregate {
            group: &group,
            topics: &kafka.topics,
            transforms: transforms.as_ref().map_or(0, Vec::len),
            output_mode,
            exactly_once_kafka_sink: sinks.as_ref().is_some_and(|sinks| {
                sinks
                    .iter()
                    .any(|s| matches!(s, SinkSpec::Kafka(k) if k.exactly_once))
            }),
        };
        check_shared_aggregate(&mut c, &shared, span.clone());
        shared_group = true;
        if let Some(Some(spec)) = &aggregate
            && super::repartition::needed(kafka, spec)
        {
            let pipeline = name.as_ref().map_or("", |(n, _)| n.as_str());
            repartition = super::repartition::plan(pipeline, &group, kafka, spec);
            if repartition.is_none() && kafka.format == super::kafka::KafkaFormat::Raw {
                c.error_hint(
                    span,
                    format!("[aggregate] on partitions shared through consumer group \"{group}\" goes through a repartition topic, which cannot carry format = \"raw\" rows"),
                    "decode the records (format = \"json\", \"csv\" or \"text\"), or, if the topic's records are keyed by the grouping columns, say so with partitioned_by = [\"...\"] in [source]",
                );
            }
        } else {
            kafka.task_column = true;
        }
    }

    if let Some(Some(spec)) = &aggregate
        && let (Some(span), false) = (spec.idle_timeout_span.clone(), shared_group)
    {
        c.error_hint(
            span,
            "`idle_timeout` applies to an aggregation on partitions shared through a consumer group",
            "there each partition is a task with a watermark of its own; here there is one watermark, which every row moves",
        );
    }
    if let Some(Some(spec)) = &aggregate
        && let (Some(span), false) = (spec.standby_span.clone(), shared_group)
    {
        c.error_hint(
            span,
            "`standby` applies to an aggregation on partitions shared through a consumer group",
            "it keeps warm copies of the partitions other daemons of the group run; without `group_id` this daemon runs every partition",
        );
    }
    match (name, source, sinks, transforms, aggregate) {
        (
            Some((name, name_location)),
            Some(source),
            Some(sinks),
            Some(transforms),
            Some(aggregate),
        ) if c.diagnostics.is_empty() => Ok(PipelinePlan {
            name,
            name_location,
            file: file.to_path_buf(),
            output_mode,
            trigger,
            source,
            transforms,
            aggregate,
            sinks,
            restart,
            parallelism,
            repartition,
        }),
        _ => Err(c.diagnostics),
    }
}

/// What an aggregation on Kafka partitions shared through a consumer group (`group_id`) needs.
struct SharedAggregate<'a> {
    group: &'a str,
    topics: &'a KafkaTopics,
    transforms: usize,
    output_mode: OutputMode,
    exactly_once_kafka_sink: bool,
}

/// An aggregation on shared partitions runs one task per partition, whose state moves with
/// the partition through a changelog topic written in the exactly-once sink's transactions
/// (`window::tasks`). What that cannot do (yet) is refused at the `[aggregate]` table.
fn check_shared_aggregate(c: &mut Checker<'_>, shared: &SharedAggregate<'_>, span: Range<usize>) {
    let group = shared.group;
    if !matches!(shared.topics, KafkaTopics::Subscribe(topics) if topics.len() == 1) {
        c.error_hint(
            span.clone(),
            format!("[aggregate] on partitions shared through consumer group \"{group}\" needs exactly one topic in `subscribe`"),
            "each partition of the topic is a task whose state moves with it; the group protocol does not keep the same partition of several topics together",
        );
    }
    if shared.transforms > 0 {
        c.error_hint(
            span.clone(),
            format!("[aggregate] on partitions shared through consumer group \"{group}\" cannot follow a [[transform]] yet"),
            "the aggregation reads each row's partition from the source; aggregate the source's rows directly, or leave group_id out",
        );
    }
    if shared.output_mode == OutputMode::Complete {
        c.error_hint(
            span.clone(),
            format!("output_mode \"complete\" cannot run on partitions shared through consumer group \"{group}\""),
            "each daemon holds only its partitions' groups, so none has the whole table; use \"append\" or \"update\"",
        );
    }
    if !shared.exactly_once_kafka_sink {
        c.error_hint(
            span,
            format!("[aggregate] on partitions shared through consumer group \"{group}\" needs a Kafka sink with exactly_once = true"),
            "the state moves between daemons through a changelog topic written in that sink's transactions, with the output and the source's offsets",
        );
    }
}

/// Most tasks a pipeline may run at once on one daemon.
pub const MAX_TASKS_PER_DAEMON: i64 = 1024;

fn check_parallelism(c: &mut Checker<'_>, tasks: toml::Spanned<RawTasks>) -> Parallelism {
    match *tasks.get_ref() {
        RawTasks::Auto => Parallelism::Auto,
        RawTasks::Count(n) if (1..=MAX_TASKS_PER_DAEMON).contains(&n) => {
            Parallelism::Tasks(n as usize)
        }
        RawTasks::Count(n) => {
            c.error_hint(
                tasks.span(),
                format!("tasks_per_daemon must be between 1 and {MAX_TASKS_PER_DAEMON}, not {n}"),
                "\"auto\" runs one task per core; 1 keeps the pipeline on one core",
            );
            Parallelism::Auto
        }
    }
}

fn check_name(c: &mut Checker<'_>, name: &str, span: Range<usize>) -> bool {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        && !name.starts_with('.');
    if !valid {
        c.error_hint(
            span,
            format!("invalid pipeline name \"{name}\""),
            "use 1 to 128 characters from A-Z a-z 0-9 - _ . (not starting with a dot); the name names the checkpoint",
        );
    }
    valid
}
