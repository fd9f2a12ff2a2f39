//! From a validated plan to a running [`Pipeline`], in two steps.
//!
//! [`prepare`] checks everything that can be checked without touching the world: it loads the
//! plugins (pinning their versions), type-checks the chain stage by stage, applies the output
//! mode's rules, and compares the pipeline's stateful identity (source type, aggregation
//! fingerprint) with what its checkpoint holds, reading the store only. `weir check`, `weir
//! run`, `weir diff` and every reload of the daemon go through it, so they agree.
//!
//! [`open`] builds the runnable pipeline from a prepared one, and is where the side effects
//! are: the checkpoint id is written, a listening socket is bound, output folders are created.
//! This is the only module that imports sources, sinks, wasm and window together.

use crate::config::{
    Diagnostic, Diagnostics, FunctionKind, KafkaTopics, PipelinePlan, Repartition, SinkSpec,
    SourceSpec, TransformSpec,
};
use crate::engine::{DecodeDictionaries, Operator, Pipeline, decoded_schema};
use crate::kafka::GroupLink;
use crate::kafka::changelog::ChangelogTopic;
use crate::sinks::{self, SinkError};
use crate::sources::{self, SourceContext, SourceError};
use crate::state::{Checkpoint, CheckpointError, SharedStore};
use crate::wasm::{Limits, PluginAggregates, PluginCatalog, PluginError, WasmTransform};
use crate::window::{
    self, AggregateOperator, OpenError, TaskSettings, TaskedAggregate, UserAggregates,
};
use arrow::datatypes::SchemaRef;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What [`prepare`] may read.
#[derive(Clone, Copy)]
pub struct PrepareContext<'a> {
    /// Where plugin names resolve; without it (`weir check` with no plugins folder) plugin
    /// stages are not type-checked, nor is anything after them.
    pub plugins: Option<&'a PluginCatalog>,
    /// The state store, read only: the file source's kept schema, the stored fingerprint.
    pub store: Option<&'a SharedStore>,
    /// Plugin limits for stages that set none.
    pub limits: Limits,
}

impl std::fmt::Debug for PrepareContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrepareContext")
            .field("plugins", &self.plugins)
            .field("store", &self.store.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

/// What a pipeline's checkpoint and state are bound to: changing either makes the stored
/// state unusable, so such a change is never applied behind the user's back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulIdentity {
    /// The source type, whose offsets the checkpoint holds.
    pub source: &'static str,
    /// The aggregation's fingerprint (keys, window, functions, plugin state versions).
    pub aggregate: Option<String>,
}

/// A pipeline checked and ready to open.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The plan.
    pub plan: PipelinePlan,
    /// The plugins it uses, pinned to the versions it was checked with.
    pub plugins: Option<PluginCatalog>,
    /// The schema that reaches the sinks (unknown without plugins).
    pub output_schema: Option<SchemaRef>,
    /// What its state is bound to.
    pub stateful: StatefulIdentity,
    /// Plugin limits for stages that set none.
    pub limits: Limits,
}

impl Prepared {
    /// Each plugin's content hash, by name.
    pub fn plugin_versions(&self) -> BTreeMap<String, String> {
        self.plugins
            .as_ref()
            .map(PluginCatalog::versions)
            .unwrap_or_default()
    }
}

/// Why a pipeline cannot be prepared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PrepareError {
    /// Something in the file is wrong (an unknown column, a plugin that does not load...).
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The pipeline is valid, but its checkpoint holds state of a different pipeline: running
    /// it needs the state reset (the message says how).
    #[error("{0}")]
    NeedsStateReset(String),
    /// Plugins it uses are still compiling (the daemon compiles in the background): it can be
    /// checked when they are ready. One line per plugin.
    #[error("waiting for plugins to compile:\n{}", .0.join("\n"))]
    WaitingForPlugins(Vec<String>),
}

/// A pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// The source could not be opened.
    #[error("source: {0}")]
    Source(#[from] SourceError),
    /// A sink could not be opened.
    #[error("sink: {0}")]
    Sink(#[from] SinkError),
    /// The stages do not fit the data (unknown column, wrong type).
    #[error("{0}")]
    Check(Diagnostics),
    /// The aggregation's state cannot be used.
    #[error(transparent)]
    State(#[from] OpenError),
    /// The checkpoint cannot be read or written.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A transform plugin could not be loaded, or rejected its config or input schema.
    #[error("{file}:{line}:{column}: transform #{index}: {source}")]
    Transform {
        /// The pipeline file.
        file: String,
        /// Where the stage names its plugin.
        line: usize,
        /// Column of that.
        column: usize,
        /// Position in the `[[transform]]` list, from 1.
        index: usize,
        /// What went wrong (names the plugin).
        source: Box<PluginError>,
    },
    /// An aggregation on shared partitions was built without its source's group link (a swap
    /// of its stage: the pipeline restarts instead).
    #[error("the aggregation on shared partitions needs its source's consumer group")]
    NoGroupLink,
}

fn stage_limits(spec: &TransformSpec, defaults: Limits) -> Limits {
    Limits {
        memory_bytes: spec.memory_limit.unwrap_or(defaults.memory_bytes),
        call_timeout: spec.timeout.unwrap_or(defaults.call_timeout),
    }
}

fn build_transform(
    plan: &PipelinePlan,
    plugins: &PluginCatalog,
    index: usize,
    spec: &TransformSpec,
    input: &SchemaRef,
    limits: Limits,
) -> Result<WasmTransform, PluginError> {
    let plugin = plugins.get(&spec.plugin)?;
    WasmTransform::new(
        plugin,
        &plan.name,
        index,
        &spec.config,
        input,
        stage_limits(spec, limits),
    )
}

/// The aggregate plugins a pipeline's `[aggregate]` may name.
fn plugin_aggregates(
    plan: &PipelinePlan,
    plugins: &PluginCatalog,
    limits: Limits,
) -> PluginAggregates {
    PluginAggregates::new(plugins.clone(), &plan.name, limits)
}

/// The plugins a plan names that are still compiling, one line each (empty when none are).
/// Loading them here also starts their compiles together rather than one after another.
fn plugins_still_compiling(plan: &PipelinePlan, plugins: &PluginCatalog) -> Vec<String> {
    let transforms = plan.transforms.iter().map(|t| t.plugin.as_str());
    let aggregates = plan.aggregate.iter().flat_map(|a| {
        a.functions.iter().filter_map(|f| match &f.kind {
            FunctionKind::Plugin { name, .. } => Some(name.as_str()),
            FunctionKind::Builtin(_) => None,
        })
    });
    let mut names: Vec<&str> = transforms.chain(aggregates).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| match plugins.get(name) {
            Err(err) if err.is_compiling() => Some(format!("plugin `{name}`: {err}")),
            // Loaded, or an error the stage that uses it reports where the file names it.
            _ => None,
        })
        .collect()
}

/// Checks a plan without side effects; see the module's documentation.
pub fn prepare(plan: PipelinePlan, ctx: PrepareContext<'_>) -> Result<Prepared, PrepareError> {
    let invalid = PrepareError::Invalid;
    if let Some(plugins) = ctx.plugins {
        let waiting = plugins_still_compiling(&plan, plugins);
        if !waiting.is_empty() {
            return Err(PrepareError::WaitingForPlugins(waiting));
        }
    }
    let store_view = ctx.store.map(|s| (s, plan.name.as_str()));
    let mut schema = Some(sources::schema_of(plan.stage_source(), store_view));
    if let (Some(plugins), Some(input)) = (ctx.plugins, schema.clone()) {
        let mut current = if plan.transforms.is_empty() {
            input
        } else {
            // Plugins see plain types: dictionary columns are decoded before the first one.
            decoded_schema(&input).unwrap_or(input)
        };
        for (i, spec) in plan.transforms.iter().enumerate() {
            let stage = build_transform(&plan, plugins, i + 1, spec, &current, ctx.limits)
                .map_err(|err| {
                    invalid(Diagnostics::from(Diagnostic::located(
                        &plan.file,
                        spec.plugin_location.clone(),
                        format!("pipeline `{}`, transform #{}: {err}", plan.name, i + 1),
                    )))
                })?;
            current = Operator::output_schema(&stage);
        }
        schema = Some(current);
    } else if !plan.transforms.is_empty() {
        // Without plugins, nothing after a transform can be checked.
        schema = None;
    }
    let mut fingerprint = None;
    if let (Some(spec), Some(input)) = (&plan.aggregate, schema.clone()) {
        let uses_plugins = spec
            .functions
            .iter()
            .any(|f| matches!(f.kind, FunctionKind::Plugin { .. }));
        schema = None;
        if ctx.plugins.is_some() || !uses_plugins {
            let aggregates = ctx
                .plugins
                .map(|catalog| plugin_aggregates(&plan, catalog, ctx.limits));
            let aggregates = aggregates.as_ref().map(|a| a as &dyn UserAggregates);
            let resolved = window::resolve(spec, plan.output_mode, &input, &plan.file, aggregates)
                .map_err(invalid)?;
            schema = Some(resolved.output_schema.clone());
            fingerprint = Some(resolved.fingerprint);
        }
    }
    if let Some(rows) = &schema {
        let mut problems = Diagnostics::default();
        for (i, sink) in plan.sinks.iter().enumerate() {
            for (location, problem) in sinks::column_problems(sink, rows) {
                problems.push(Diagnostic::located(
                    &plan.file,
                    location,
                    format!("pipeline `{}`, sink #{}: {problem}", plan.name, i + 1),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
    }
    let stateful = StatefulIdentity {
        source: plan.source.kind(),
        aggregate: fingerprint,
    };
    if let Some(store) = ctx.store {
        check_checkpoint(&plan.name, &stateful, store).map_err(PrepareError::NeedsStateReset)?;
    }
    Ok(Prepared {
        plugins: ctx.plugins.map(PluginCatalog::frozen),
        output_schema: schema,
        stateful,
        limits: ctx.limits,
        plan,
    })
}

/// Compares what the checkpoint of `pipeline` holds with `identity`, reading only.
fn check_checkpoint(
    pipeline: &str,
    identity: &StatefulIdentity,
    store: &SharedStore,
) -> Result<(), String> {
    let checkpoint = Checkpoint::new(store.clone(), pipeline);
    match checkpoint.format() {
        Ok(format) if format > crate::state::CHECKPOINT_FORMAT => {
            return Err(format!(
                "the checkpoint of pipeline `{pipeline}` is in format {format}, written by a newer weir (this one reads up to format {}); run that version, or delete the checkpoint and state with `weir state reset {pipeline}`",
                crate::state::CHECKPOINT_FORMAT
            ));
        }
        Ok(_) => {}
        Err(err) => return Err(format!("cannot read the checkpoint of `{pipeline}`: {err}")),
    }
    match checkpoint.source_kind() {
        Ok(Some(kind)) if kind != identity.source => {
            return Err(format!(
                "the source of pipeline `{pipeline}` changed from `{kind}` to `{}`, and its checkpoint holds `{kind}` offsets; to start it over from the new source, delete its checkpoint and state with `weir state reset {pipeline}` (or give the pipeline a new name)",
                identity.source
            ));
        }
        Ok(_) => {}
        Err(err) => return Err(format!("cannot read the checkpoint of `{pipeline}`: {err}")),
    }
    if let Some(fingerprint) = &identity.aggregate {
        window::check_stored_state(pipeline, fingerprint, store).map_err(|err| err.to_string())?;
    }
    Ok(())
}

/// Builds a pipeline's stages (dictionary decoding, transforms, aggregation) for a source of
/// `source_schema`. Nothing is read from the store: stateful stages restore their state when
/// the pipeline starts (or when they are swapped in).
pub fn build_stages(
    prepared: &Prepared,
    store: &SharedStore,
    source_schema: SchemaRef,
    group_link: Option<&Arc<GroupLink>>,
) -> Result<Vec<Box<dyn Operator>>, AssembleError> {
    let plan = &prepared.plan;
    let mut schema = source_schema.clone();
    let mut operators: Vec<Box<dyn Operator>> = Vec::new();
    if !plan.transforms.is_empty()
        && let Some(decode) = DecodeDictionaries::for_schema(&schema)
    {
        schema = decode.output_schema();
        operators.push(Box::new(decode));
    }
    let catalog = prepared.plugins.as_ref();
    for (i, spec) in plan.transforms.iter().enumerate() {
        let stage = match catalog {
            Some(catalog) => build_transform(plan, catalog, i + 1, spec, &schema, prepared.limits),
            None => Err(PluginError::NotFound {
                name: spec.plugin.clone(),
                path: PathBuf::from(format!("{}.wasm", spec.plugin)),
            }),
        }
        .map_err(|source| AssembleError::Transform {
            file: plan.file.display().to_string(),
            line: spec.plugin_location.line,
            column: spec.plugin_location.column,
            index: i + 1,
            source: Box::new(source),
        })?;
        schema = Operator::output_schema(&stage);
        operators.push(Box::new(stage));
    }
    if let Some(spec) = &plan.aggregate {
        let aggregates =
            catalog.map(|catalog| Arc::new(plugin_aggregates(plan, catalog, prepared.limits)));
        let resolved = window::resolve(
            spec,
            plan.output_mode,
            &schema,
            &plan.file,
            aggregates.as_deref().map(|a| a as &dyn UserAggregates),
        )
        .map_err(AssembleError::Check)?;
        let aggregates = aggregates.map(|a| a as Arc<dyn UserAggregates + Send + Sync>);
        match shared_changelog(plan) {
            Some(changelog) => {
                let link = group_link.ok_or(AssembleError::NoGroupLink)?;
                operators.push(Box::new(TaskedAggregate::new(
                    &plan.name,
                    resolved,
                    store.clone(),
                    aggregates,
                    link.clone(),
                    changelog,
                    TaskSettings {
                        spread: crate::cores::Spread::machine(
                            plan.parallelism.tasks(crate::cores::machine_cores()),
                        ),
                        idle_timeout: spec.idle_timeout,
                        standby: spec.standby,
                    },
                )));
            }
            None => {
                let op = AggregateOperator::new(&plan.name, resolved, store.clone(), aggregates)?;
                operators.push(Box::new(op));
            }
        }
    }
    Ok(operators)
}

/// The changelog of an aggregation run as tasks over partitions shared through a consumer
/// group, or `None` for an aggregation of the whole input.
fn shared_changelog(plan: &PipelinePlan) -> Option<ChangelogTopic> {
    let SourceSpec::Kafka(kafka) = plan.stage_source() else {
        return None;
    };
    let (true, Some(group), KafkaTopics::Subscribe(topics)) =
        (kafka.task_column, &kafka.group_id, &kafka.topics)
    else {
        return None;
    };
    // Named after the file's group also when the aggregation reads a repartition topic.
    let group = plan.repartition.as_ref().map_or(group, |r| &r.group);
    Some(ChangelogTopic {
        servers: kafka.bootstrap_servers.clone(),
        options: kafka.options.clone(),
        group: group.clone(),
        pipeline: plan.name.clone(),
        input: topics.first()?.clone(),
        timeout: kafka.fetch_timeout,
    })
}

/// What an aggregation on shared partitions keeps in Kafka besides its output: its internal
/// topics and its consumer groups' offsets (`weir state reset --topics`).
#[derive(Debug, Clone)]
pub struct SharedKafkaState {
    servers: String,
    options: BTreeMap<String, String>,
    timeout: std::time::Duration,
    /// The changelog, and the repartition topic if there is one.
    pub topics: Vec<String>,
    /// The file's group, and the aggregation's own over the repartition topic if there is one.
    pub groups: Vec<String>,
}

impl SharedKafkaState {
    /// Deletes the topics and the groups' offsets; says what it deleted.
    pub fn delete(&self) -> Result<String, String> {
        let broker = crate::kafka::topics::Broker {
            servers: &self.servers,
            options: &self.options,
            timeout: self.timeout,
        };
        // The groups first: a group that still has members (a daemon still running the
        // pipeline) stops the reset before anything it reads is gone.
        let groups = crate::kafka::topics::delete_groups(broker, &self.groups)?;
        let topics = crate::kafka::topics::delete(broker, &self.topics)?;
        let list = |names: &[String]| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        Ok(format!(
            "deleted topics {} and the committed offsets of consumer groups {}",
            list(&topics),
            list(&groups)
        ))
    }
}

/// What `plan` keeps in Kafka as an aggregation on shared partitions, or `None`.
pub fn shared_kafka_state(plan: &PipelinePlan) -> Option<SharedKafkaState> {
    let changelog = shared_changelog(plan)?;
    let SourceSpec::Kafka(source) = &plan.source else {
        return None;
    };
    let mut topics = vec![changelog.name()];
    let mut groups: Vec<String> = source.group_id.iter().cloned().collect();
    if let (Some(r), SourceSpec::Kafka(reader)) = (&plan.repartition, plan.stage_source()) {
        topics.push(r.topic.clone());
        groups.extend(reader.group_id.iter().cloned());
    }
    Some(SharedKafkaState {
        servers: changelog.servers,
        options: changelog.options,
        timeout: changelog.timeout,
        topics,
        groups,
    })
}

/// What opening a pipeline needs from the process around it.
#[derive(Clone)]
pub struct Environment {
    /// The shared state store.
    pub store: SharedStore,
    /// The state directory (the store lives in it).
    pub state_dir: PathBuf,
    /// Name the pipeline in console banners (several pipelines share the terminal).
    pub label_console: bool,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("state_dir", &self.state_dir)
            .field("label_console", &self.label_console)
            .finish()
    }
}

/// Builds a runnable pipeline from a prepared one; see the module's documentation. Must run
/// inside the tokio runtime (a socket source starts its network tasks).
pub fn open(prepared: &Prepared, env: &Environment) -> Result<Pipeline, AssembleError> {
    let plan = &prepared.plan;
    let checkpoint = Checkpoint::new(env.store.clone(), &plan.name);
    let checkpoint_id = checkpoint.id()?;
    checkpoint.record_format()?;
    checkpoint.record_source_kind(prepared.stateful.source)?;
    let ctx = SourceContext {
        pipeline: plan.name.clone(),
        checkpoint_id: checkpoint_id.clone(),
        store: env.store.clone(),
        state_dir: env.state_dir.clone(),
    };
    let source = sources::build(plan.stage_source(), &ctx)?;
    let group_link = source.group_link();
    let operators = build_stages(prepared, &env.store, source.schema(), group_link.as_ref())?;
    let label = env.label_console.then_some(plan.name.as_str());
    let mut sinks = Vec::with_capacity(plan.sinks.len());
    for (index, spec) in plan.sinks.iter().enumerate() {
        let ctx = sinks::SinkContext {
            pipeline: &plan.name,
            index: index + 1,
            console_label: label,
            checkpoint_id: &checkpoint_id,
            group_link: group_link.as_ref(),
        };
        sinks.push((spec.kind(), sinks::build(spec, ctx)?));
    }
    let spread =
        crate::cores::Spread::machine(plan.parallelism.tasks(crate::cores::machine_cores()));
    let pipeline = Pipeline::new(
        &plan.name,
        plan.trigger,
        source,
        operators,
        sinks,
        checkpoint,
    )
    .with_identity(&checkpoint_id, plan.source.kind())
    .with_parallelism(spread.clone());
    Ok(match &plan.repartition {
        Some(repartition) => pipeline.with_feeder(open_writer(plan, repartition, env, spread)?),
        None => pipeline,
    })
}

/// The pipeline that writes the file's source's rows to its repartition topic, under a
/// checkpoint of its own (`config::repartition::writer_name`): no stages, one exactly-once
/// Kafka sink whose transactions also commit the input's offsets in the file's group.
fn open_writer(
    plan: &PipelinePlan,
    repartition: &Repartition,
    env: &Environment,
    spread: crate::cores::Spread,
) -> Result<Pipeline, AssembleError> {
    let name = crate::config::repartition::writer_name(&plan.name);
    let checkpoint = Checkpoint::new(env.store.clone(), &name);
    let checkpoint_id = checkpoint.id()?;
    checkpoint.record_format()?;
    checkpoint.record_source_kind(plan.source.kind())?;
    let ctx = SourceContext {
        pipeline: name.clone(),
        checkpoint_id: checkpoint_id.clone(),
        store: env.store.clone(),
        state_dir: env.state_dir.clone(),
    };
    let source = sources::build(&plan.source, &ctx)?;
    let group_link = source.group_link();
    let spec = SinkSpec::Kafka(Box::new(repartition.writer.clone()));
    let sink = sinks::build(
        &spec,
        sinks::SinkContext {
            pipeline: &name,
            index: 1,
            console_label: None,
            checkpoint_id: &checkpoint_id,
            group_link: group_link.as_ref(),
        },
    )?;
    Ok(Pipeline::new(
        &name,
        plan.trigger,
        source,
        Vec::new(),
        vec![(spec.kind(), sink)],
        checkpoint,
    )
    .with_identity(&checkpoint_id, plan.source.kind())
    .with_parallelism(spread))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_pipeline;
    use crate::state::{RocksStore, WriteSet, pipeline_prefix};
    use std::path::Path;

    fn plan() -> PipelinePlan {
        let text = "name = \"p\"\n[source]\ntype = \"rate\"\n[[sink]]\ntype = \"null\"\n";
        match parse_pipeline(Path::new("p.toml"), text) {
            Ok(plan) => plan,
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn a_checkpoint_written_in_a_newer_format_is_refused_with_what_to_do()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
        let ctx = PrepareContext {
            plugins: None,
            store: Some(&store),
            limits: Limits::default(),
        };
        assert!(prepare(plan(), ctx).is_ok(), "no checkpoint yet");
        let mut key = pipeline_prefix("p");
        key.push(b'v');
        let mut ws = WriteSet::default();
        ws.put(key, 2u32.to_be_bytes().to_vec());
        store.write(ws, true)?;
        match prepare(plan(), ctx) {
            Err(PrepareError::NeedsStateReset(message)) => assert_eq!(
                message,
                "the checkpoint of pipeline `p` is in format 2, written by a newer weir (this one reads up to format 1); run that version, or delete the checkpoint and state with `weir state reset p`"
            ),
            other => panic!("{other:?}"),
        }
        Ok(())
    }
}
