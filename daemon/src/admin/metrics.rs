//! `GET /metrics`: the daemon's figures in the Prometheus text format, or OpenMetrics when the
//! scraper's `Accept` asks for it, encoded by `prometheus-client`. Nothing is registered per
//! pipeline: one collector reads the pipeline registry at each scrape, so a pipeline's series
//! appear when it starts and disappear when its file is removed, and a scrape never waits for
//! a batch or a reload.
//!
//! Names follow Prometheus' conventions: `weir_` prefix, base units (`_seconds`, `_bytes`),
//! counters end in `_total`; every pipeline series has a `pipeline` label. The README lists
//! them with their meaning.

use crate::engine::{FAILURE_KINDS, PHASES, PipelineMetrics, PluginCosts};
use crate::topology::registry::{PipelineEntry, Registry, RunState};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Which text format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (what `curl` and most tools read).
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names it, else Prometheus.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What `/metrics` serves.
#[derive(Debug)]
pub struct Exposition {
    registry: prometheus_client::registry::Registry,
}

impl Exposition {
    /// An exposition of `pipelines` (and of the daemon itself).
    pub fn new(pipelines: Arc<Registry>) -> Exposition {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(WeirCollector { pipelines }));
        Exposition { registry }
    }

    /// The text of one scrape.
    pub fn render(&self, format: Format) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)?
            }
        }
        Ok(out)
    }
}

#[derive(Debug)]
struct WeirCollector {
    pipelines: Arc<Registry>,
}

/// A plugin stage of a pipeline.
struct PluginStage<'a> {
    pipeline: &'a str,
    stage: String,
    costs: Arc<PluginCosts>,
}

impl PluginStage<'_> {
    fn labels(&self) -> [(&str, &str); 3] {
        [
            ("pipeline", self.pipeline),
            ("stage", &self.stage),
            ("plugin", &self.costs.plugin),
        ]
    }
}

impl WeirCollector {
    /// Per pipeline and plugin stage: what the plugin costs.
    fn encode_plugins(
        &self,
        encoder: &mut DescriptorEncoder,
        pipelines: &[Scraped],
    ) -> fmt::Result {
        use MetricType::{Counter, Gauge, Histogram};
        let stages: Vec<PluginStage> = pipelines
            .iter()
            .flat_map(|p| {
                p.metrics
                    .plugins()
                    .into_iter()
                    .map(|(stage, costs)| PluginStage {
                        pipeline: &p.name,
                        stage,
                        costs,
                    })
            })
            .collect();
        type Count = fn(&PluginCosts) -> u64;
        let counters: [(&str, &str, Count); 2] = [
            (
                "weir_plugin_calls",
                "Calls into the plugin (one per chunk of rows).",
                |c| c.calls.get(),
            ),
            (
                "weir_plugin_instances",
                "Instances of the plugin made: the first, and a fresh one after each failure.",
                |c| c.instances.get(),
            ),
        ];
        for (name, help, get) in counters {
            family(encoder, name, help, Counter, stages.iter(), |s, put| {
                put(&s.labels(), Value::Counter(get(&s.costs)))
            })?;
        }
        family(
            encoder,
            "weir_plugin_rows",
            "Rows through the plugin, by direction (in: handed to it, out: returned).",
            Counter,
            stages.iter(),
            |s, put| {
                let [a, b, c] = s.labels();
                put(
                    &[a, b, c, ("direction", "in")],
                    Value::Counter(s.costs.rows_in.get()),
                )?;
                put(
                    &[a, b, c, ("direction", "out")],
                    Value::Counter(s.costs.rows_out.get()),
                )
            },
        )?;
        family(
            encoder,
            "weir_plugin_failures",
            "Failed calls by kind: trap, deadline (stopped at its timeout), out_of_memory (past max_memory_mb), plugin_error (it returned an error), bad_output.",
            Counter,
            stages.iter(),
            |s, put| {
                let [a, b, c] = s.labels();
                for (kind, n) in FAILURE_KINDS.iter().zip(&s.costs.failures) {
                    put(&[a, b, c, ("kind", kind)], Value::Counter(n.get()))?;
                }
                Ok(())
            },
        )?;
        family(
            encoder,
            "weir_plugin_cpu_seconds",
            "CPU time spent in calls into the plugin.",
            Counter,
            stages.iter(),
            |s, put| put(&s.labels(), Value::Seconds(s.costs.cpu_seconds.get())),
        )?;
        family(
            encoder,
            "weir_plugin_call_duration_seconds",
            "Wall time of each call into the plugin.",
            Histogram,
            stages.iter(),
            |s, put| put(&s.labels(), Value::Histogram(&s.costs.call_duration)),
        )?;
        family(
            encoder,
            "weir_plugin_memory_high_water_bytes",
            "The most linear memory an instance of the plugin has had (wasm memory never shrinks).",
            Gauge,
            stages.iter(),
            |s, put| {
                put(
                    &s.labels(),
                    Value::Gauge(s.costs.memory_high_water() as f64),
                )
            },
        )?;
        family(
            encoder,
            "weir_plugin_memory_limit_bytes",
            "The linear memory limit of the plugin's instances (max_memory_mb).",
            Gauge,
            stages.iter(),
            |s, put| put(&s.labels(), Value::Gauge(s.costs.memory_limit() as f64)),
        )
    }
}

/// One pipeline as a scrape sees it.
struct Scraped {
    name: String,
    state: &'static str,
    restarts: u64,
    metrics: Arc<PipelineMetrics>,
}

fn state_word(run: &RunState) -> &'static str {
    match run {
        RunState::Starting => "starting",
        RunState::Running => "running",
        RunState::Restarting { .. } => "restarting",
        RunState::Failed { .. } => "failed",
        RunState::Finished => "finished",
        RunState::Stopped { .. } => "stopped",
    }
}

const STATES: [&str; 6] = [
    "starting",
    "running",
    "restarting",
    "failed",
    "finished",
    "stopped",
];

fn scraped(entry: &PipelineEntry) -> Scraped {
    let state = entry.snapshot();
    Scraped {
        name: entry.name.clone(),
        state: state_word(&state.run),
        restarts: state.restarts,
        metrics: state.metrics,
    }
}

/// Writes one metric family: `help`, `kind`, and one series per item `value` returns a value
/// for, labelled by the item's pipeline (and `labels`).
fn family<'a, T: 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    items: impl IntoIterator<Item = &'a T>,
    mut series: impl FnMut(&'a T, &mut dyn FnMut(&[(&str, &str)], Value) -> fmt::Result) -> fmt::Result,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for item in items {
        series(item, &mut |labels, value| {
            encode_value(&mut metric, labels, value)
        })?;
    }
    Ok(())
}

/// A series' value.
enum Value<'a> {
    Counter(u64),
    /// A counter of seconds.
    Seconds(f64),
    Gauge(f64),
    Histogram(&'a prometheus_client::metrics::histogram::Histogram),
}

fn encode_value(metric: &mut MetricEncoder, labels: &[(&str, &str)], value: Value) -> fmt::Result {
    let series = metric.encode_family(&labels)?;
    match value {
        Value::Counter(n) => ConstCounter::new(n).encode(series),
        Value::Seconds(x) => ConstCounter::new(x).encode(series),
        Value::Gauge(x) => ConstGauge::new(x).encode(series),
        Value::Histogram(h) => h.encode(series),
    }
}

impl Collector for WeirCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let pipelines: Vec<Scraped> = self
            .pipelines
            .entries()
            .iter()
            .map(|e| scraped(e))
            .collect();
        let now_ms = crate::sources::now_ms();
        use MetricType::{Counter, Gauge, Histogram};

        family(
            &mut encoder,
            "weir_build_info",
            "The weir version serving these metrics (always 1).",
            Gauge,
            [()].iter(),
            |_, put| put(&[("version", env!("CARGO_PKG_VERSION"))], Value::Gauge(1.0)),
        )?;
        let reloads = self.pipelines.reloads();
        family(
            &mut encoder,
            "weir_reloads",
            "Reload passes since the daemon started (start-up, file changes, SIGHUP, weir reload).",
            Counter,
            [()].iter(),
            |_, put| put(&[], Value::Counter(reloads.passes.load(Ordering::Relaxed))),
        )?;
        family(
            &mut encoder,
            "weir_reload_changes",
            "Pipeline changes reloads applied (started, replaced, stopped) or rejected (not applied; the running version kept running).",
            Counter,
            [
                ("applied", &reloads.applied),
                ("rejected", &reloads.rejected),
            ]
            .iter(),
            |(result, n), put| {
                put(
                    &[("result", result)],
                    Value::Counter(n.load(Ordering::Relaxed)),
                )
            },
        )?;
        family(
            &mut encoder,
            "weir_pipelines",
            "Pipelines in each state.",
            Gauge,
            STATES.iter(),
            |state, put| {
                let n = pipelines.iter().filter(|p| p.state == *state).count();
                put(&[("state", state)], Value::Gauge(n as f64))
            },
        )?;
        family(
            &mut encoder,
            "weir_rejected_files",
            "Pipeline files (or new versions of them) not applied: rejected, or needing a state reset.",
            Gauge,
            [()].iter(),
            |_, put| put(&[], Value::Gauge(self.pipelines.counts().rejected as f64)),
        )?;

        family(
            &mut encoder,
            "weir_pipeline_state",
            "1 for the pipeline's current state.",
            Gauge,
            pipelines.iter(),
            |p, put| {
                put(
                    &[("pipeline", &p.name), ("state", p.state)],
                    Value::Gauge(1.0),
                )
            },
        )?;
        family(
            &mut encoder,
            "weir_pipeline_restarts",
            "Restarts after failures since the daemon started.",
            Counter,
            pipelines.iter(),
            |p, put| put(&[("pipeline", &p.name)], Value::Counter(p.restarts)),
        )?;
        type Count = fn(&PipelineMetrics) -> u64;
        let counters: [(&str, &str, Count); 8] = [
            (
                "weir_pipeline_state_restores",
                "Aggregation tasks whose state was restored from the changelog topic (partitions shared through a consumer group, given to this daemon).",
                |m| m.state_restores.get(),
            ),
            (
                "weir_pipeline_state_restored_keys",
                "State keys those restores wrote.",
                |m| m.state_restored_keys.get(),
            ),
            (
                "weir_pipeline_state_standby_opens",
                "Aggregation tasks opened on this daemon's standby copy of their state instead of the changelog ([aggregate] standby = true).",
                |m| m.state_standby_opens.get(),
            ),
            (
                "weir_pipeline_input_rows",
                "Rows read from the source.",
                |m| m.input_rows.get(),
            ),
            (
                "weir_pipeline_output_rows",
                "Rows that reached the sinks.",
                |m| m.output_rows.get(),
            ),
            ("weir_pipeline_batches", "Batches committed.", |m| {
                m.batches.get()
            }),
            (
                "weir_pipeline_batch_retries",
                "Batch attempts that failed and were tried again.",
                |m| m.batch_retries.get(),
            ),
            (
                "weir_pipeline_late_rows_dropped",
                "Input rows the aggregation dropped as late: behind the watermark (one per window they fall in).",
                |m| m.late_rows.get(),
            ),
        ];
        for (name, help, get) in counters {
            family(
                &mut encoder,
                name,
                help,
                Counter,
                pipelines.iter(),
                |p, put| put(&[("pipeline", &p.name)], Value::Counter(get(&p.metrics))),
            )?;
        }
        family(
            &mut encoder,
            "weir_pipeline_state_restore_seconds",
            "Time spent restoring aggregation state from the changelog topic.",
            Counter,
            pipelines.iter(),
            |p, put| {
                put(
                    &[("pipeline", &p.name)],
                    Value::Seconds(p.metrics.state_restore_seconds.get()),
                )
            },
        )?;
        family(
            &mut encoder,
            "weir_pipeline_malformed_records",
            "Malformed input records, by what on_error did with them (skipped, dead_lettered).",
            Counter,
            pipelines.iter(),
            |p, put| {
                put(
                    &[("pipeline", &p.name), ("action", "skipped")],
                    Value::Counter(p.metrics.malformed_skipped.get()),
                )?;
                put(
                    &[("pipeline", &p.name), ("action", "dead_lettered")],
                    Value::Counter(p.metrics.malformed_dead_lettered.get()),
                )
            },
        )?;
        family(
            &mut encoder,
            "weir_pipeline_batch_duration_seconds",
            "Wall time of each committed batch, from its trigger to its commit.",
            Histogram,
            pipelines.iter(),
            |p, put| {
                put(
                    &[("pipeline", &p.name)],
                    Value::Histogram(&p.metrics.batch_duration),
                )
            },
        )?;
        family(
            &mut encoder,
            "weir_pipeline_phase_duration_seconds",
            "Wall time of each phase of committed batches: plan (offsets and the write-ahead log), read (source), process (transforms and aggregation), sinks, commit.",
            Histogram,
            pipelines.iter(),
            |p, put| {
                for (phase, histogram) in PHASES.iter().zip(&p.metrics.phase_durations) {
                    put(
                        &[("pipeline", &p.name), ("phase", phase)],
                        Value::Histogram(histogram),
                    )?;
                }
                Ok(())
            },
        )?;

        // Gauges of the last committed batch (absent until one commits).
        let last: Vec<(&Scraped, crate::engine::LastBatch)> = pipelines
            .iter()
            .filter_map(|p| Some((p, p.metrics.last()?)))
            .collect();
        type LastGauge = fn(&crate::engine::LastBatch, i64) -> Option<f64>;
        let gauges: [(&str, &str, LastGauge); 7] = [
            (
                "weir_pipeline_input_rows_per_second",
                "Rows the last batch read, per second of wall time since the batch before it started (Spark's inputRowsPerSecond).",
                |l, _| Some(l.input_rows_per_second),
            ),
            (
                "weir_pipeline_processed_rows_per_second",
                "Rows the last batch read, per second of its own duration (Spark's processedRowsPerSecond).",
                |l, _| Some(l.processed_rows_per_second),
            ),
            (
                "weir_pipeline_last_success_timestamp_seconds",
                "When the last batch committed, seconds since the epoch.",
                |l, _| Some(l.committed_at_ms as f64 / 1000.0),
            ),
            (
                "weir_pipeline_watermark_timestamp_seconds",
                "The event-time watermark, seconds since the epoch.",
                |l, _| l.watermark_ms.map(|w| w as f64 / 1000.0),
            ),
            (
                "weir_pipeline_watermark_lag_seconds",
                "How far the watermark is behind the wall clock now.",
                |l, now| l.watermark_ms.map(|w| (now - w) as f64 / 1000.0),
            ),
            (
                "weir_pipeline_state_memory_bytes",
                "Approximate bytes of aggregation state in memory.",
                |l, _| l.state_groups.map(|_| l.state_memory_bytes as f64),
            ),
            (
                "weir_pipeline_state_disk_bytes",
                "Approximate bytes the pipeline's keys (checkpoint, aggregation state, source logs) take in the state store's files on disk; the last writes, still in RocksDB's memtable and write-ahead log, are not counted yet.",
                |l, _| l.state_disk_bytes.map(|b| b as f64),
            ),
        ];
        for (name, help, get) in gauges {
            family(
                &mut encoder,
                name,
                help,
                Gauge,
                last.iter(),
                |(p, l), put| match get(l, now_ms) {
                    Some(x) => put(&[("pipeline", &p.name)], Value::Gauge(x)),
                    None => Ok(()),
                },
            )?;
        }
        family(
            &mut encoder,
            "weir_pipeline_source_backlog",
            "Input the source had found beyond the last batch's end when it was planned (the batch limits held it back), by unit: records (Kafka), files, lines (socket), rows (rate, datagen).",
            Gauge,
            last.iter(),
            |(p, l), put| match &l.source_backlog {
                Some(b) => put(
                    &[("pipeline", &p.name), ("unit", &b.unit)],
                    Value::Gauge(b.amount as f64),
                ),
                None => Ok(()),
            },
        )?;
        family(
            &mut encoder,
            "weir_pipeline_source_partition_backlog",
            "The same per partition of a source that has partitions (Kafka: each partition this daemon reads, as topic/partition, and the records beyond the last batch's end in it).",
            Gauge,
            last.iter(),
            |(p, l), put| {
                for part in l.source_backlog.iter().flat_map(|b| &b.parts) {
                    put(
                        &[("pipeline", &p.name), ("partition", &part.part)],
                        Value::Gauge(part.amount as f64),
                    )?;
                }
                Ok(())
            },
        )?;
        let tasks: Vec<(&Scraped, Vec<crate::engine::TaskFigures>)> = pipelines
            .iter()
            .map(|p| (p, p.metrics.tasks()))
            .filter(|(_, t)| !t.is_empty())
            .collect();
        family(
            &mut encoder,
            "weir_pipeline_task_state_groups",
            "Aggregation groups (window × key) in the state of each task of an aggregation on partitions shared through a consumer group, by its partition (topic/partition), as of the last batch: which partitions this daemon aggregates, and how much each holds.",
            Gauge,
            tasks.iter(),
            |(p, tasks), put| {
                for t in tasks {
                    put(
                        &[("pipeline", &p.name), ("partition", &t.partition)],
                        Value::Gauge(t.groups as f64),
                    )?;
                }
                Ok(())
            },
        )?;
        family(
            &mut encoder,
            "weir_pipeline_task_watermark_timestamp_seconds",
            "The watermark of each such task (each partition has an event-time clock of its own), seconds since the epoch; absent before its first row.",
            Gauge,
            tasks.iter(),
            |(p, tasks), put| {
                for t in tasks {
                    if let Some(ms) = t.watermark_ms {
                        put(
                            &[("pipeline", &p.name), ("partition", &t.partition)],
                            Value::Gauge(ms as f64 / 1000.0),
                        )?;
                    }
                }
                Ok(())
            },
        )?;
        self.encode_plugins(&mut encoder, &pipelines)?;
        family(
            &mut encoder,
            "weir_pipeline_state_groups",
            "Aggregation groups (window × key) held, in memory or spilled to the store only.",
            Gauge,
            last.iter(),
            |(p, l), put| {
                let Some((total, memory)) = l.state_groups else {
                    return Ok(());
                };
                put(
                    &[("pipeline", &p.name), ("where", "memory")],
                    Value::Gauge(memory as f64),
                )?;
                put(
                    &[("pipeline", &p.name), ("where", "spilled")],
                    Value::Gauge(total.saturating_sub(memory) as f64),
                )
            },
        )?;
        Ok(())
    }
}
