//! `[aggregate]`: group-by keys, an optional event-time window with a watermark, and the
//! aggregate functions (built-in or from wasm plugins).
//!
//! ```toml
//! [aggregate]
//! group_by = ["sensor"]
//! window = { column = "time", size = "10s" }     # slide = "5s": sliding; gap = "30s": session
//! watermark = "10s"
//! functions = [ { fn = "avg", column = "value" },
//!               { plugin = "percentile", column = "value", config = { q = 0.95 }, as = "p95" } ]
//! ```
//!
//! Checks that need the input schema (does the column exist, is it numeric) happen when the
//! pipeline is assembled; every reference keeps its [`Location`] for those messages.

use super::byte_size::ByteSize;
use super::checker::Checker;
use super::diagnostic::Location;
use super::duration::HumanDuration;
use super::tagged;
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;
use toml::de::DeValue;

/// A column named in the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    /// Column name.
    pub name: String,
    /// Where it is written.
    pub location: Location,
}

/// How rows are assigned to event-time windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`, aligned to the epoch.
    Tumbling {
        /// Window length.
        size: Duration,
    },
    /// Windows of `size` starting every `slide`; a row falls in every window that covers it.
    Sliding {
        /// Window length.
        size: Duration,
        /// Distance between window starts.
        slide: Duration,
    },
    /// Per key: events closer than `gap` form one session, `[first event, last event + gap)`.
    Session {
        /// Inactivity gap that closes a session.
        gap: Duration,
    },
}

/// The window of an aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// The event-time column (a timestamp).
    pub column: ColumnRef,
    /// Tumbling, sliding or session.
    pub kind: WindowKind,
}

/// Built-in aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinFunction {
    /// `count` (rows) or `count(column)` (non-null values).
    Count,
    /// Sum of a numeric column.
    Sum,
    /// Mean of a numeric column.
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// First value seen (in processing order).
    First,
    /// Last value seen.
    Last,
    /// Number of distinct non-null values.
    CountDistinct,
}

impl BuiltinFunction {
    /// The name in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinFunction::Count => "count",
            BuiltinFunction::Sum => "sum",
            BuiltinFunction::Avg => "avg",
            BuiltinFunction::Min => "min",
            BuiltinFunction::Max => "max",
            BuiltinFunction::First => "first",
            BuiltinFunction::Last => "last",
            BuiltinFunction::CountDistinct => "count_distinct",
        }
    }

    fn parse(name: &str) -> Option<BuiltinFunction> {
        Some(match name {
            "count" => BuiltinFunction::Count,
            "sum" => BuiltinFunction::Sum,
            "avg" => BuiltinFunction::Avg,
            "min" => BuiltinFunction::Min,
            "max" => BuiltinFunction::Max,
            "first" => BuiltinFunction::First,
            "last" => BuiltinFunction::Last,
            "count_distinct" => BuiltinFunction::CountDistinct,
            _ => return None,
        })
    }
}

const FUNCTIONS: &str = "count, sum, avg, min, max, first, last, count_distinct";

/// Which function computes an output column.
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionKind {
    /// Built in.
    Builtin(BuiltinFunction),
    /// From the `aggregate` world of a wasm plugin.
    Plugin {
        /// Plugin name (`<plugins dir>/<name>.wasm`).
        name: String,
        /// Its `config` table as JSON.
        config: serde_json::Value,
    },
}

/// One output column of the aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// The function.
    pub kind: FunctionKind,
    /// Input columns (none for `count` of rows).
    pub columns: Vec<ColumnRef>,
    /// Output column name (Spark's, e.g. `avg(value)`, unless renamed with `as`).
    pub output_name: String,
    /// Where the function is written.
    pub location: Location,
}

/// The validated `[aggregate]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateSpec {
    /// Grouping columns (besides the window).
    pub group_by: Vec<ColumnRef>,
    /// Event-time window.
    pub window: Option<WindowSpec>,
    /// Allowed lateness behind the largest event time seen.
    pub watermark: Option<Duration>,
    /// Output columns after the keys.
    pub functions: Vec<FunctionSpec>,
    /// Most memory the live groups may take before the pipeline fails (instead of the process
    /// running out of memory).
    pub max_state_memory: u64,
    /// On shared partitions: how long a task may go without rows before its watermark follows
    /// the other tasks' (so an idle partition does not hold its windows open forever).
    pub idle_timeout: Option<Duration>,
    /// Where `idle_timeout` is written, for the check that it applies.
    pub idle_timeout_span: Option<std::ops::Range<usize>>,
    /// On shared partitions: keep warm copies of the partitions this daemon does not run.
    pub standby: bool,
    /// Where `standby` is written, for the check that it applies.
    pub standby_span: Option<std::ops::Range<usize>>,
    /// Where the section is.
    pub location: Location,
}

/// `max_state_memory` when the section does not say.
pub const DEFAULT_MAX_STATE_MEMORY: u64 = 1 << 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAggregate {
    /// Grouping columns.
    #[serde(default)]
    group_by: Vec<Spanned<String>>,
    /// `{ column, size [, slide] }` or `{ column, gap }`.
    #[serde(default)]
    window: Option<Spanned<RawWindow>>,
    /// Watermark delay on the window column.
    #[serde(default)]
    watermark: Option<Spanned<HumanDuration>>,
    /// The aggregate functions.
    functions: Spanned<Vec<Spanned<RawFunction>>>,
    /// Most memory for the live groups (default 1 GiB).
    #[serde(default)]
    max_state_memory: Option<Spanned<ByteSize>>,
    /// On shared partitions: a task's idleness before its watermark follows the others'.
    #[serde(default)]
    idle_timeout: Option<Spanned<HumanDuration>>,
    /// On shared partitions: warm copies of the partitions this daemon does not run.
    #[serde(default)]
    standby: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    column: Spanned<String>,
    #[serde(default)]
    size: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    slide: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    gap: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    #[serde(rename = "fn", default)]
    func: Option<Spanned<String>>,
    #[serde(default)]
    plugin: Option<Spanned<String>>,
    #[serde(default)]
    column: Option<Spanned<String>>,
    #[serde(default)]
    columns: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    config: Option<toml::Table>,
    #[serde(rename = "as", default)]
    alias: Option<Spanned<String>>,
}

fn column_ref(c: &Checker<'_>, name: Spanned<String>) -> ColumnRef {
    ColumnRef {
        location: Location::from_span(c.text, name.span()),
        name: name.into_inner(),
    }
}

fn whole_millis(c: &mut Checker<'_>, key: &str, d: &Spanned<HumanDuration>) -> Option<Duration> {
    let value = d.get_ref().0;
    if value.is_zero() || !value.subsec_nanos().is_multiple_of(1_000_000) {
        c.error(
            d.span(),
            format!("{key} must be a positive whole number of milliseconds"),
        );
        return None;
    }
    Some(value)
}

fn check_window(c: &mut Checker<'_>, raw: Spanned<RawWindow>) -> Option<WindowSpec> {
    let span = raw.span();
    let raw = raw.into_inner();
    let kind = match (&raw.size, &raw.slide, &raw.gap) {
        (Some(size), None, None) => WindowKind::Tumbling {
            size: whole_millis(c, "size", size)?,
        },
        (Some(size), Some(slide), None) => {
            let (size, slide_value) = (
                whole_millis(c, "size", size)?,
                whole_millis(c, "slide", slide)?,
            );
            if slide_value > size {
                c.error(
                    slide.span(),
                    "slide must not be longer than size (rows between windows would belong to none)",
                );
                return None;
            }
            if slide_value == size {
                WindowKind::Tumbling { size }
            } else {
                WindowKind::Sliding {
                    size,
                    slide: slide_value,
                }
            }
        }
        (None, None, Some(gap)) => WindowKind::Session {
            gap: whole_millis(c, "gap", gap)?,
        },
        _ => {
            c.error_hint(
                span,
                "a window needs `size` (tumbling), `size` and `slide` (sliding), or `gap` (session)",
                "e.g. window = { column = \"time\", size = \"10s\" }",
            );
            return None;
        }
    };
    Some(WindowSpec {
        column: column_ref(c, raw.column),
        kind,
    })
}

fn check_function(c: &mut Checker<'_>, raw: Spanned<RawFunction>) -> Option<FunctionSpec> {
    let span = raw.span();
    let location = Location::from_span(c.text, span.clone());
    let raw = raw.into_inner();
    let mut columns: Vec<ColumnRef> = Vec::new();
    match (raw.column, raw.columns) {
        (Some(_), Some(_)) => {
            c.error(span, "give either `column` or `columns`, not both");
            return None;
        }
        (Some(col), None) => columns.push(column_ref(c, col)),
        (None, Some(cols)) => columns.extend(cols.into_iter().map(|col| column_ref(c, col))),
        (None, None) => {}
    }
    let (kind, default_name) = match (raw.func, raw.plugin) {
        (Some(func), None) => {
            if raw.config.is_some() {
                c.error(func.span(), "`config` applies to plugin aggregates only");
                return None;
            }
            let Some(builtin) = BuiltinFunction::parse(func.get_ref()) else {
                c.error_hint(
                    func.span(),
                    format!("unknown aggregate function `{}`", func.get_ref()),
                    &format!("built-in functions are {FUNCTIONS}; user aggregates come from plugins: {{ plugin = \"name\", column = \"...\" }}"),
                );
                return None;
            };
            let needs_column = builtin != BuiltinFunction::Count;
            if columns.len() > 1 || (needs_column && columns.len() != 1) {
                c.error(
                    func.span(),
                    format!("`{}` takes exactly one `column`", builtin.name()),
                );
                return None;
            }
            // Spark's output names: count, count(value), avg(value), count(DISTINCT value).
            let name = match (builtin, columns.first()) {
                (BuiltinFunction::Count, None) => "count".to_string(),
                (BuiltinFunction::CountDistinct, Some(col)) => {
                    format!("count(DISTINCT {})", col.name)
                }
                (f, Some(col)) => format!("{}({})", f.name(), col.name),
                (f, None) => f.name().to_string(),
            };
            (FunctionKind::Builtin(builtin), name)
        }
        (None, Some(plugin)) => {
            if columns.is_empty() {
                c.error(
                    plugin.span(),
                    "a plugin aggregate needs `column` or `columns`",
                );
                return None;
            }
            let config = match raw.config.map(serde_json::to_value) {
                Some(Ok(value)) => value,
                None => serde_json::Value::Object(Default::default()),
                Some(Err(err)) => {
                    c.error(
                        plugin.span(),
                        format!("plugin config cannot be passed on as JSON: {err}"),
                    );
                    return None;
                }
            };
            let cols: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            let name = format!("{}({})", plugin.get_ref(), cols.join(", "));
            (
                FunctionKind::Plugin {
                    name: plugin.into_inner(),
                    config,
                },
                name,
            )
        }
        _ => {
            c.error_hint(
                span,
                "an aggregate function needs exactly one of `fn` (built in) or `plugin`",
                &format!("e.g. {{ fn = \"avg\", column = \"value\" }}; built-in functions are {FUNCTIONS}"),
            );
            return None;
        }
    };
    let output_name = match raw.alias {
        Some(alias) if alias.get_ref().is_empty() => {
            c.error(alias.span(), "`as` must not be empty");
            return None;
        }
        Some(alias) => alias.into_inner(),
        None => default_name,
    };
    Some(FunctionSpec {
        kind,
        columns,
        output_name,
        location,
    })
}

pub(super) fn check_aggregate(
    c: &mut Checker<'_>,
    value: Spanned<DeValue<'_>>,
) -> Option<AggregateSpec> {
    let span = value.span();
    let raw: RawAggregate = c.ok(tagged::deserialize(value))?;
    let errors_before = c.diagnostics.len();
    let location = Location::from_span(c.text, span.clone());
    let group_by: Vec<ColumnRef> = raw.group_by.into_iter().map(|g| column_ref(c, g)).collect();
    let window = match raw.window {
        Some(w) => Some(check_window(c, w)?),
        None => None,
    };
    let watermark = match raw.watermark {
        Some(w) if window.is_none() => {
            c.error_hint(
                w.span(),
                "a watermark needs a window",
                "the watermark is measured on the window's event-time column: add window = { column = \"time\", size = \"10s\" }",
            );
            None
        }
        Some(w) => Some(w.get_ref().0),
        None => None,
    };
    let functions_span = raw.functions.span();
    let mut functions = Vec::new();
    for f in raw.functions.into_inner() {
        if let Some(spec) = check_function(c, f) {
            functions.push(spec);
        }
    }
    if functions.is_empty() && c.diagnostics.len() == errors_before {
        c.error(
            functions_span,
            "`functions` needs at least one aggregate function",
        );
    }
    let mut names = std::collections::HashSet::new();
    for name in group_by
        .iter()
        .map(|g| &g.name)
        .chain(functions.iter().map(|f| &f.output_name))
    {
        if !names.insert(name.clone()) {
            c.error_hint(
                span.clone(),
                format!("two output columns are named `{name}`"),
                "rename one with `as = \"...\"`",
            );
        }
    }
    if window.is_some() && names.contains("window") {
        c.error(
            span,
            "`window` is the name of the window column; rename the other one",
        );
    }
    let max_state_memory = match raw.max_state_memory {
        Some(m) if m.get_ref().0 == 0 => {
            c.error(m.span(), "max_state_memory must be more than zero");
            DEFAULT_MAX_STATE_MEMORY
        }
        Some(m) => m.get_ref().0,
        None => DEFAULT_MAX_STATE_MEMORY,
    };
    let idle_timeout_span = raw.idle_timeout.as_ref().map(Spanned::span);
    let idle_timeout = match raw.idle_timeout {
        Some(d) if d.get_ref().0.is_zero() => {
            c.error(d.span(), "idle_timeout must be more than zero");
            None
        }
        Some(d) if watermark.is_none() => {
            c.error_hint(
                d.span(),
                "`idle_timeout` applies with a watermark",
                "it lets an idle partition's watermark follow the others'; add `watermark = \"10s\"`",
            );
            None
        }
        Some(d) => Some(d.get_ref().0),
        None => None,
    };
    if c.diagnostics.len() != errors_before {
        return None;
    }
    Some(AggregateSpec {
        group_by,
        window,
        watermark,
        functions,
        max_state_memory,
        idle_timeout,
        idle_timeout_span,
        standby: raw.standby.as_ref().is_some_and(|s| *s.get_ref()),
        standby_span: raw.standby.as_ref().map(Spanned::span),
        location,
    })
}
