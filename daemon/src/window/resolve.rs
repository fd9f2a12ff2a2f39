//! Resolves an `[aggregate]` section against the schema that reaches it: every column must exist
//! with a type its function accepts. Errors point at the column in the pipeline file.

use super::accumulators::{
    Count, CountDistinct, GroupsAccumulator, Slot, SlotPolicy, SumAvgFloat, SumInt, UserAggregate,
    UserAggregateFn,
};
use crate::config::{
    AggregateSpec, BuiltinFunction, ColumnRef, Diagnostic, Diagnostics, FunctionKind, OutputMode,
    WindowKind,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use std::path::Path;
use std::sync::Arc;

/// Where user aggregates come from (the wasm plugin host, in practice).
pub trait UserAggregates {
    /// The declared input types and output type of plugin `name` configured with `config`.
    fn signature(
        &self,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<(Vec<DataType>, DataType), String>;
    /// The version of the state format plugin `name` declares (0: none declared). Part of the
    /// aggregation's fingerprint, so a plugin upgrade that changes its state format is not
    /// given the old states.
    fn state_version(&self, _name: &str, _config: &serde_json::Value) -> Result<u32, String> {
        Ok(0)
    }
    /// A fresh instance of it.
    fn instantiate(
        &self,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<Box<dyn UserAggregateFn>, String>;
    /// What the plugins instantiated so far cost, one entry per plugin and config.
    fn plugin_costs(&self) -> Vec<std::sync::Arc<crate::engine::PluginCosts>> {
        Vec::new()
    }
}

/// One resolved output function.
#[derive(Debug, Clone)]
pub struct ResolvedFunction {
    /// What computes it.
    pub kind: FunctionKind,
    /// Input column indices.
    pub inputs: Vec<usize>,
    /// Input types.
    pub input_types: Vec<DataType>,
    /// The output column.
    pub output: Field,
}

/// An aggregation checked against its input schema.
#[derive(Debug, Clone)]
pub struct AggregatePlan {
    /// Output mode.
    pub mode: OutputMode,
    /// Event-time column index and window kind.
    pub window: Option<(usize, WindowKind)>,
    /// Watermark delay in µs.
    pub delay_us: Option<i64>,
    /// Grouping column indices.
    pub keys: Vec<usize>,
    /// Their input types.
    pub key_types: Vec<DataType>,
    /// Output functions.
    pub functions: Vec<ResolvedFunction>,
    /// Schema of what the aggregation emits.
    pub output_schema: SchemaRef,
    /// Description of the stateful part: state written under another one is not reused.
    pub fingerprint: String,
    /// Most bytes the live groups may take (not part of the fingerprint: raising it keeps the
    /// state).
    pub max_state_bytes: u64,
    /// After a commit, groups beyond this many bytes are spilled (half of `max_state_bytes`).
    pub spill_above_bytes: u64,
}

/// The type of the `window` output column.
pub fn window_type() -> DataType {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    DataType::Struct(Fields::from(vec![
        Field::new("start", ts.clone(), false),
        Field::new("end", ts, false),
    ]))
}

/// A type as pipeline files name it (`string`, `long`, …), Arrow's name for the rest.
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "long".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Dictionary(_, values) => type_name(values),
        other => other.to_string(),
    }
}

/// A dictionary type's value type; any other type itself.
fn plain_type(t: &DataType) -> DataType {
    match t {
        DataType::Dictionary(_, values) => values.as_ref().clone(),
        other => other.clone(),
    }
}

fn columns_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("`{}` ({})", f.name(), type_name(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

fn find(
    schema: &Schema,
    col: &ColumnRef,
    file: &Path,
    errors: &mut Diagnostics,
) -> Option<(usize, DataType)> {
    match schema.index_of(&col.name) {
        Ok(i) => Some((i, schema.field(i).data_type().clone())),
        Err(_) => {
            errors.push(
                Diagnostic::located(
                    file,
                    col.location.clone(),
                    format!("unknown column `{}`", col.name),
                )
                .with_hint(format!(
                    "the input of [aggregate] has {}",
                    columns_list(schema)
                )),
            );
            None
        }
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Checks `spec` against `input`; collects every error.
pub fn resolve(
    spec: &AggregateSpec,
    mode: OutputMode,
    input: &Schema,
    file: &Path,
    plugins: Option<&dyn UserAggregates>,
) -> Result<AggregatePlan, Diagnostics> {
    let mut errors = Diagnostics::default();
    let mut fields: Vec<Field> = Vec::new();
    let mut fingerprint = String::new();

    let window = spec.window.as_ref().and_then(|w| {
        let (i, t) = find(input, &w.column, file, &mut errors)?;
        if !matches!(t, DataType::Timestamp(_, _)) {
            errors.push(Diagnostic::located(
                file,
                w.column.location.clone(),
                format!(
                    "window column `{}` is {}, expected a timestamp",
                    w.column.name,
                    type_name(&t)
                ),
            ));
            return None;
        }
        fields.push(Field::new("window", window_type(), false));
        fingerprint.push_str(&format!(
            "window({}, {}); ",
            w.column.name,
            super::fingerprint::window(&w.kind)
        ));
        Some((i, w.kind))
    });

    let mut keys = Vec::new();
    let mut key_types = Vec::new();
    for key in &spec.group_by {
        if let Some((i, t)) = find(input, key, file, &mut errors) {
            keys.push(i);
            key_types.push(t.clone());
            // A dictionary-encoded key comes out as its values (as the row format decodes it).
            let output = match &t {
                DataType::Dictionary(_, values) => values.as_ref().clone(),
                other => other.clone(),
            };
            fields.push(Field::new(&key.name, output.clone(), true));
            fingerprint.push_str(&format!(
                "key {}: {}; ",
                key.name,
                super::fingerprint::data_type(&output)
            ));
        }
    }

    let mut functions = Vec::new();
    for f in &spec.functions {
        let mut inputs = Vec::new();
        let mut input_types = Vec::new();
        for col in &f.columns {
            if let Some((i, t)) = find(input, col, file, &mut errors) {
                inputs.push(i);
                input_types.push(t);
            }
        }
        if inputs.len() != f.columns.len() {
            continue;
        }
        let error = |message: String| Diagnostic::located(file, f.location.clone(), message);
        let output_type = match &f.kind {
            FunctionKind::Builtin(b) => {
                let t = input_types.first().cloned().unwrap_or(DataType::Null);
                match b {
                    BuiltinFunction::Count | BuiltinFunction::CountDistinct => {
                        Some(DataType::Int64)
                    }
                    BuiltinFunction::Sum | BuiltinFunction::Avg if !t.is_numeric() => {
                        errors.push(
                            error(format!(
                                "`{}` needs a numeric column; `{}` is {}",
                                b.name(),
                                f.columns[0].name,
                                type_name(&t)
                            ))
                            .with_hint(
                                "count, min, max, first, last and count_distinct accept any type",
                            ),
                        );
                        None
                    }
                    BuiltinFunction::Sum if t.is_floating() => Some(DataType::Float64),
                    BuiltinFunction::Sum => Some(DataType::Int64),
                    BuiltinFunction::Avg => Some(DataType::Float64),
                    _ if !arrow::row::RowConverter::supports_fields(&[
                        arrow::row::SortField::new(t.clone()),
                    ]) =>
                    {
                        errors.push(error(format!(
                            "`{}` does not support columns of type {}",
                            b.name(),
                            type_name(&t)
                        )));
                        None
                    }
                    // min/max/first/last of a dictionary column come out as its values.
                    _ => Some(match t {
                        DataType::Dictionary(_, values) => *values,
                        other => other,
                    }),
                }
            }
            FunctionKind::Plugin { name, config } => match plugins {
                None => {
                    errors.push(error(format!(
                        "aggregate plugin `{name}` needs the plugins folder, which is not available here"
                    )));
                    None
                }
                Some(plugins) => match plugins.signature(name, config).map(|(declared, output)| {
                    // Plugins see plain types: dictionary columns are decoded for them.
                    input_types = input_types.iter().map(plain_type).collect();
                    (declared, output)
                }) {
                    Err(message) => {
                        errors.push(error(format!("aggregate plugin `{name}`: {message}")));
                        None
                    }
                    Ok((declared, _)) if declared != input_types => {
                        let want: Vec<String> = declared.iter().map(type_name).collect();
                        let got: Vec<String> = input_types.iter().map(type_name).collect();
                        errors.push(error(format!(
                            "aggregate plugin `{name}` takes ({}) but its columns are ({})",
                            want.join(", "),
                            got.join(", ")
                        )));
                        None
                    }
                    Ok((_, output)) => Some(output),
                },
            },
        };
        if let Some(output_type) = output_type {
            let nullable = !matches!(
                f.kind,
                FunctionKind::Builtin(BuiltinFunction::Count | BuiltinFunction::CountDistinct)
            );
            let output = Field::new(&f.output_name, output_type, nullable);
            fields.push(output.clone());
            let cols: Vec<&str> = f.columns.iter().map(|c| c.name.as_str()).collect();
            match &f.kind {
                FunctionKind::Builtin(b) => {
                    fingerprint.push_str(&format!("{}({}); ", b.name(), cols.join(", ")))
                }
                FunctionKind::Plugin { name, config } => {
                    // Version 0 (none declared) leaves the fingerprint as it was before plugins
                    // could declare one, so existing state stays valid.
                    let version = plugins
                        .map(|p| p.state_version(name, config).unwrap_or(0))
                        .unwrap_or(0);
                    let state = if version == 0 {
                        String::new()
                    } else {
                        format!(" state v{version}")
                    };
                    fingerprint.push_str(&format!(
                        "plugin {name}({}) {config}{state}; ",
                        cols.join(", ")
                    ))
                }
            }
            functions.push(ResolvedFunction {
                kind: f.kind.clone(),
                inputs,
                input_types,
                output,
            });
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(AggregatePlan {
        mode,
        window,
        delay_us: spec.watermark.map(micros),
        keys,
        key_types,
        functions,
        output_schema: Arc::new(Schema::new(fields)),
        fingerprint: fingerprint.trim_end().to_string(),
        max_state_bytes: spec.max_state_memory,
        spill_above_bytes: spec.max_state_memory / 2,
    })
}

/// Builds the accumulators of a resolved plan.
pub fn accumulators(
    plan: &AggregatePlan,
    plugins: Option<&dyn UserAggregates>,
) -> Result<Vec<Box<dyn GroupsAccumulator>>, String> {
    let mut accs: Vec<Box<dyn GroupsAccumulator>> = Vec::new();
    for f in &plan.functions {
        let t = f.input_types.first().cloned().unwrap_or(DataType::Null);
        let acc: Box<dyn GroupsAccumulator> = match &f.kind {
            FunctionKind::Builtin(BuiltinFunction::Count) => {
                Box::new(Count::new(!f.inputs.is_empty()))
            }
            FunctionKind::Builtin(BuiltinFunction::Sum) if t.is_floating() => {
                Box::new(SumAvgFloat::new(false))
            }
            FunctionKind::Builtin(BuiltinFunction::Sum) => Box::new(SumInt::default()),
            FunctionKind::Builtin(BuiltinFunction::Avg) => Box::new(SumAvgFloat::new(true)),
            FunctionKind::Builtin(b) => {
                let policy = match b {
                    BuiltinFunction::Min => Some(SlotPolicy::Min),
                    BuiltinFunction::Max => Some(SlotPolicy::Max),
                    BuiltinFunction::First => Some(SlotPolicy::First),
                    BuiltinFunction::Last => Some(SlotPolicy::Last),
                    _ => None,
                };
                match policy {
                    Some(policy) => Box::new(Slot::new(policy, t).map_err(|e| e.to_string())?),
                    None => Box::new(CountDistinct::new(t).map_err(|e| e.to_string())?),
                }
            }
            FunctionKind::Plugin { name, config } => {
                let plugins = plugins
                    .ok_or_else(|| format!("aggregate plugin `{name}` needs the plugins folder"))?;
                Box::new(UserAggregate::new(plugins.instantiate(name, config)?))
            }
        };
        accs.push(acc);
    }
    Ok(accs)
}
