//! `type = "datagen"`: generated columns in the style of dbldatagen, and their validation.

use super::checker::Checker;
use super::limits;
use super::source::{SourceSpec, check_max_rows};
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// The `datagen` source.
#[derive(Debug, Clone, PartialEq)]
pub struct DatagenSpec {
    /// Release schedule, as `rate`.
    pub rows_per_second: u64,
    /// Total rows, if bounded.
    pub rows: Option<u64>,
    /// Seed for random columns and nulls.
    pub seed: u64,
    /// Upper bound on rows per batch.
    pub max_rows_per_batch: Option<u64>,
    /// Fixed start of the release schedule (ms since the epoch); `None`: when the stream starts.
    pub start_timestamp_ms: Option<i64>,
    /// Generated columns.
    pub columns: Vec<ColumnSpec>,
}

/// Column types a datagen source can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// UTF-8 string.
    String,
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    Long,
    /// 64-bit float.
    Double,
    /// Boolean.
    Boolean,
    /// Microsecond timestamp, UTC.
    Timestamp,
}

impl ColumnType {
    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int => "int",
            ColumnType::Long => "long",
            ColumnType::Double => "double",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp",
        }
    }
}

/// One generated column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// Name.
    pub name: String,
    /// Type.
    pub data_type: ColumnType,
    /// How values are made.
    pub generator: Generator,
    /// Fraction of nulls, 0..=1.
    pub null_fraction: f64,
}

/// A literal value of a column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// boolean
    Bool(bool),
    /// int or long
    Int(i64),
    /// double
    Float(f64),
    /// string
    Str(String),
}

/// How a datagen column's value for row `i` is made.
#[derive(Debug, Clone, PartialEq)]
pub enum Generator {
    /// The row's scheduled event time (`expr = "now"`), minus a random lateness of up to
    /// `jitter_ms`.
    EventTime {
        /// Largest lateness, ms (0: exactly the schedule).
        jitter_ms: i64,
    },
    /// The row index itself (as a number or its decimal text).
    RowIndex,
    /// One of `values`: by row index spread over the cumulative weights, or at random.
    Values {
        /// The choices.
        values: Vec<Scalar>,
        /// Cumulative weights normalised to end at 1.0; `None` means equal weights.
        cumulative_weights: Option<Vec<f64>>,
        /// Random draw instead of a function of the row index.
        random: bool,
    },
    /// `min, min + step, ..., max` (integers), cycling by row index or at random.
    IntRange {
        /// Smallest.
        min: i64,
        /// Largest, inclusive.
        max: i64,
        /// Step, > 0.
        step: i64,
        /// Random draw.
        random: bool,
    },
    /// A double range: stepped like `IntRange`, or continuous when `step` is `None`.
    FloatRange {
        /// Smallest.
        min: f64,
        /// Largest.
        max: f64,
        /// Step, > 0.
        step: Option<f64>,
        /// Random draw.
        random: bool,
    },
    /// Alternating `false, true` by row index, or random.
    Bool {
        /// Random draw.
        random: bool,
    },
    /// `prefix_N` with N from the inner numeric generator.
    Prefixed {
        /// Text before the underscore.
        prefix: String,
        /// Where N comes from.
        number: Box<Generator>,
    },
    /// A dbldatagen-style template, always random.
    Template(Vec<TemplatePart>),
}

/// One piece of a string template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Copied as is.
    Literal(char),
    /// `d`: 0-9.
    Digit,
    /// `D`: 1-9.
    NonZeroDigit,
    /// `a`: a-z.
    Lower,
    /// `A`: A-Z.
    Upper,
    /// `k`: a-z0-9.
    LowerAlnum,
    /// `K`: A-Z0-9.
    UpperAlnum,
    /// `x`: 0-9a-f.
    HexLower,
    /// `X`: 0-9A-F.
    HexUpper,
    /// `\w`: a word.
    Word,
}

/// `type = "datagen"`: generated rows in the style of dbldatagen.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatagen {
    /// Rows released per second (default 1), on the same schedule as `rate`.
    #[serde(default)]
    pub rows_per_second: Option<Spanned<u64>>,
    /// Total rows, after which the source is exhausted; absent means unbounded.
    #[serde(default)]
    pub rows: Option<u64>,
    /// Seed of every `random = true` column and of `percent_nulls` (default 42).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Upper bound on rows per micro-batch.
    #[serde(default)]
    pub max_rows_per_batch: Option<Spanned<u64>>,
    /// Start of the release schedule, ms since the epoch (default: when the stream starts).
    /// Fixing it makes event times identical across separate runs.
    #[serde(default)]
    pub start_timestamp: Option<Spanned<i64>>,
    /// The generated columns, in order.
    #[serde(default)]
    pub column: Vec<Spanned<RawColumn>>,
}

/// One `[[source.column]]` of a datagen source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawColumn {
    /// Column name.
    pub name: Spanned<String>,
    /// `string`, `int`, `long`, `double`, `boolean` or `timestamp`.
    #[serde(rename = "type")]
    pub data_type: Spanned<ColumnType>,
    /// The values to pick from.
    #[serde(default)]
    pub values: Option<Spanned<Vec<Spanned<RawScalar>>>>,
    /// Relative weight of each of `values`.
    #[serde(default)]
    pub weights: Option<Spanned<Vec<f64>>>,
    /// Smallest value of a numeric range (or of the number after a string `prefix`).
    #[serde(default)]
    pub min: Option<Spanned<RawScalar>>,
    /// Largest value of a numeric range, inclusive.
    #[serde(default)]
    pub max: Option<Spanned<RawScalar>>,
    /// Step of a numeric range (default 1 for integers; continuous for doubles).
    #[serde(default)]
    pub step: Option<Spanned<RawScalar>>,
    /// Draw values at random from the pipeline seed instead of cycling through them.
    #[serde(default)]
    pub random: bool,
    /// Timestamp columns: subtract a random lateness of up to this much from `now`, to simulate
    /// out-of-order arrival (deterministic per row, like every random value).
    #[serde(default)]
    pub jitter: Option<Spanned<super::duration::HumanDuration>>,
    /// `"now"`: the row's scheduled event time (timestamp columns).
    #[serde(default)]
    pub expr: Option<Spanned<String>>,
    /// String columns: `prefix_N`, N from `min`/`max` or the row index.
    #[serde(default)]
    pub prefix: Option<Spanned<String>>,
    /// String columns: a dbldatagen template (`d` digit, `a` letter, `\w` word, ...).
    #[serde(default)]
    pub template: Option<Spanned<String>>,
    /// Fraction of rows that are null, between 0 and 1 (dbldatagen's convention).
    #[serde(default)]
    pub percent_nulls: Option<Spanned<f64>>,
}

/// A literal from the TOML file whose type is checked against the column's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(super) enum RawScalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl RawScalar {
    pub fn type_name(&self) -> &'static str {
        match self {
            RawScalar::Bool(_) => "a boolean",
            RawScalar::Int(_) => "an integer",
            RawScalar::Float(_) => "a float",
            RawScalar::Str(_) => "a string",
        }
    }
}

pub(super) fn check_datagen(
    c: &mut Checker<'_>,
    raw: RawDatagen,
    span: Range<usize>,
) -> Option<SourceSpec> {
    let mut ok = true;
    let rows_per_second = limits::rows_per_second(c, raw.rows_per_second);
    let start_timestamp_ms = match &raw.start_timestamp {
        Some(ts) => limits::timestamp_ms(c, "start_timestamp", ts).map(Some),
        None => Some(None),
    };
    ok &= rows_per_second.is_some() && start_timestamp_ms.is_some();
    if raw.column.is_empty() {
        c.error_hint(
            span,
            "a datagen source needs at least one column",
            "add [[source.column]] tables with a name and a type",
        );
        ok = false;
    }
    let max_rows_per_batch = check_max_rows(c, raw.max_rows_per_batch);
    let mut names = std::collections::HashSet::new();
    let mut columns = Vec::new();
    for col in raw.column {
        let col = col.into_inner();
        if !names.insert(col.name.get_ref().clone()) {
            c.error(
                col.name.span(),
                format!("duplicate column name \"{}\"", col.name.get_ref()),
            );
            ok = false;
            continue;
        }
        match check_column(c, col) {
            Some(spec) => columns.push(spec),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some(SourceSpec::Datagen(DatagenSpec {
        rows_per_second: rows_per_second?,
        rows: raw.rows,
        seed: raw.seed.unwrap_or(42),
        max_rows_per_batch: max_rows_per_batch?,
        start_timestamp_ms: start_timestamp_ms?,
        columns,
    }))
}

fn check_column(c: &mut Checker<'_>, col: RawColumn) -> Option<ColumnSpec> {
    let data_type = *col.data_type.get_ref();
    let type_span = col.data_type.span();
    let errors_before = c.diagnostics.len();

    let null_fraction = match &col.percent_nulls {
        Some(p) if !(0.0..=1.0).contains(p.get_ref()) => {
            c.error_hint(
                p.span(),
                format!("percent_nulls = {} is outside 0..1", p.get_ref()),
                "percent_nulls is a fraction as in dbldatagen: 0.1 means 10% nulls",
            );
            0.0
        }
        Some(p) => *p.get_ref(),
        None => 0.0,
    };

    // Which generator options are present decides the generator; conflicting ones are errors.
    let range_given = col.min.is_some() || col.max.is_some() || col.step.is_some();
    if let (Some(values), true) = (&col.values, range_given) {
        c.error(
            values.span(),
            "`values` cannot be combined with `min`/`max`/`step`; choose one",
        );
    }
    if let (Some(w), None) = (&col.weights, &col.values) {
        c.error(w.span(), "`weights` needs `values` to weigh");
    }
    if let Some(expr) = &col.expr
        && (expr.get_ref() != "now" || data_type != ColumnType::Timestamp)
    {
        c.error_hint(
            expr.span(),
            format!("unsupported expr \"{}\"", expr.get_ref()),
            "only expr = \"now\" is supported, on timestamp columns: the row's scheduled event time",
        );
    }
    if let (Some(j), false) = (&col.jitter, data_type == ColumnType::Timestamp) {
        c.error(j.span(), "`jitter` applies to timestamp columns only");
    }
    if data_type != ColumnType::String {
        for (key, span) in [
            ("prefix", col.prefix.as_ref().map(|p| p.span())),
            ("template", col.template.as_ref().map(|t| t.span())),
        ] {
            if let Some(span) = span {
                c.error(span, format!("`{key}` applies to string columns only"));
            }
        }
    }

    let generator = match data_type {
        ColumnType::Timestamp => {
            if col.expr.is_none() {
                c.error_hint(
                    type_span.clone(),
                    "a timestamp column needs expr = \"now\"",
                    "the value is the row's scheduled event time, identical on replay",
                );
            }
            for (key, present) in [
                ("values", col.values.is_some()),
                ("min/max/step", range_given),
                ("random", col.random),
            ] {
                if present {
                    c.error(
                        type_span.clone(),
                        format!("`{key}` does not apply to timestamp columns"),
                    );
                }
            }
            let jitter_ms = match &col.jitter {
                Some(j) => {
                    let jitter =
                        limits::at_most(c, "jitter", j.get_ref().0, j.span(), limits::MAX_JITTER)?;
                    i64::try_from(jitter.as_millis()).unwrap_or(i64::MAX)
                }
                None => 0,
            };
            Generator::EventTime { jitter_ms }
        }
        ColumnType::Boolean => {
            if range_given {
                c.error(
                    type_span.clone(),
                    "min/max/step do not apply to boolean columns",
                );
            }
            match &col.values {
                Some(values) => values_generator(c, &col, values, data_type),
                None => Generator::Bool { random: col.random },
            }
        }
        ColumnType::Int | ColumnType::Long => match &col.values {
            Some(values) => values_generator(c, &col, values, data_type),
            None if range_given => int_range(c, &col, data_type)?,
            None if col.random => {
                c.error_hint(
                    type_span.clone(),
                    "random = true needs values or a min/max range",
                    "e.g. min = 0, max = 10, random = true",
                );
                Generator::RowIndex
            }
            None => Generator::RowIndex,
        },
        ColumnType::Double => match &col.values {
            Some(values) => values_generator(c, &col, values, data_type),
            None if range_given => float_range(c, &col)?,
            None => Generator::RowIndex,
        },
        ColumnType::String => string_generator(c, &col, range_given)?,
    };

    if c.diagnostics.len() != errors_before {
        return None;
    }
    Some(ColumnSpec {
        name: col.name.into_inner(),
        data_type,
        generator,
        null_fraction,
    })
}

fn string_generator(c: &mut Checker<'_>, col: &RawColumn, range_given: bool) -> Option<Generator> {
    let choices = [
        col.values.is_some(),
        col.template.is_some(),
        col.prefix.is_some(),
    ];
    if choices.iter().filter(|x| **x).count() > 1 {
        c.error(
            col.name.span(),
            "a string column takes one of `values`, `template` or `prefix`",
        );
        return None;
    }
    if let Some(values) = &col.values {
        return Some(values_generator(c, col, values, ColumnType::String));
    }
    if let Some(template) = &col.template {
        if range_given {
            c.error(template.span(), "min/max/step do not apply to a template");
        }
        return parse_template(template.get_ref())
            .map(Generator::Template)
            .map_err(|msg| c.error(template.span(), msg))
            .ok();
    }
    let number = if range_given {
        int_range(c, col, ColumnType::Long)?
    } else {
        Generator::RowIndex
    };
    match &col.prefix {
        Some(prefix) => Some(Generator::Prefixed {
            prefix: prefix.get_ref().clone(),
            number: Box::new(number),
        }),
        None => Some(number),
    }
}

fn values_generator(
    c: &mut Checker<'_>,
    col: &RawColumn,
    values: &Spanned<Vec<Spanned<RawScalar>>>,
    data_type: ColumnType,
) -> Generator {
    if values.get_ref().is_empty() {
        c.error(values.span(), "`values` must not be empty");
    }
    let mut out = Vec::new();
    for v in values.get_ref() {
        match scalar_for(v.get_ref(), data_type) {
            Some(s) => out.push(s),
            None => c.error(
                v.span(),
                format!(
                    "expected {} for a {} column, found {}",
                    expected_literal(data_type),
                    data_type.name(),
                    v.get_ref().type_name()
                ),
            ),
        }
    }
    let cumulative_weights = col.weights.as_ref().and_then(|w| {
        let weights = w.get_ref();
        if weights.len() != values.get_ref().len() {
            c.error(
                w.span(),
                format!(
                    "{} weights for {} values; give one weight per value",
                    weights.len(),
                    values.get_ref().len()
                ),
            );
            return None;
        }
        if weights.iter().any(|x| !x.is_finite() || *x < 0.0) || weights.iter().sum::<f64>() <= 0.0
        {
            c.error(
                w.span(),
                "weights must be non-negative numbers with a positive sum",
            );
            return None;
        }
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        Some(
            weights
                .iter()
                .map(|x| {
                    acc += x;
                    acc / total
                })
                .collect(),
        )
    });
    Generator::Values {
        values: out,
        cumulative_weights,
        random: col.random,
    }
}

fn expected_literal(data_type: ColumnType) -> &'static str {
    match data_type {
        ColumnType::String => "a string",
        ColumnType::Int | ColumnType::Long => "an integer",
        ColumnType::Double => "a number",
        ColumnType::Boolean => "a boolean",
        ColumnType::Timestamp => "a timestamp",
    }
}

fn scalar_for(raw: &RawScalar, data_type: ColumnType) -> Option<Scalar> {
    match (raw, data_type) {
        (RawScalar::Str(s), ColumnType::String) => Some(Scalar::Str(s.clone())),
        (RawScalar::Int(i), ColumnType::Long) => Some(Scalar::Int(*i)),
        (RawScalar::Int(i), ColumnType::Int) if i32::try_from(*i).is_ok() => Some(Scalar::Int(*i)),
        (RawScalar::Int(i), ColumnType::Double) => Some(Scalar::Float(*i as f64)),
        (RawScalar::Float(f), ColumnType::Double) => Some(Scalar::Float(*f)),
        (RawScalar::Bool(b), ColumnType::Boolean) => Some(Scalar::Bool(*b)),
        _ => None,
    }
}

fn int_of(
    c: &mut Checker<'_>,
    key: &str,
    v: &Spanned<RawScalar>,
    data_type: ColumnType,
) -> Option<i64> {
    match v.get_ref() {
        RawScalar::Int(i) if data_type != ColumnType::Int || i32::try_from(*i).is_ok() => Some(*i),
        RawScalar::Int(i) => {
            c.error(
                v.span(),
                format!("{key} = {i} does not fit an int column (32 bits); use type = \"long\""),
            );
            None
        }
        other => {
            c.error(
                v.span(),
                format!(
                    "expected an integer for `{key}`, found {}",
                    other.type_name()
                ),
            );
            None
        }
    }
}

fn int_range(c: &mut Checker<'_>, col: &RawColumn, data_type: ColumnType) -> Option<Generator> {
    let min = col.min.as_ref().map(|v| int_of(c, "min", v, data_type));
    let max = col.max.as_ref().map(|v| int_of(c, "max", v, data_type));
    let step = col.step.as_ref().map(|v| int_of(c, "step", v, data_type));
    let (min, max, step) = (
        min.unwrap_or(Some(0))?,
        max.unwrap_or(Some(match data_type {
            ColumnType::Int => i64::from(i32::MAX),
            _ => i64::MAX,
        }))?,
        step.unwrap_or(Some(1))?,
    );
    if min > max {
        c.error(
            col.name.span(),
            format!("min ({min}) is greater than max ({max})"),
        );
        return None;
    }
    if step <= 0 {
        c.error(col.name.span(), "step must be positive");
        return None;
    }
    Some(Generator::IntRange {
        min,
        max,
        step,
        random: col.random,
    })
}

fn float_of(c: &mut Checker<'_>, key: &str, v: &Spanned<RawScalar>) -> Option<f64> {
    match v.get_ref() {
        RawScalar::Int(i) => Some(*i as f64),
        RawScalar::Float(f) if f.is_finite() => Some(*f),
        other => {
            c.error(
                v.span(),
                format!(
                    "expected a finite number for `{key}`, found {}",
                    other.type_name()
                ),
            );
            None
        }
    }
}

/// A double for a message: very large and very small ones in exponent form.
fn shown(v: f64) -> String {
    if v != 0.0 && !(1e-6..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

fn float_range(c: &mut Checker<'_>, col: &RawColumn) -> Option<Generator> {
    let min = col.min.as_ref().map(|v| float_of(c, "min", v));
    let max = col.max.as_ref().map(|v| float_of(c, "max", v));
    let step = col.step.as_ref().map(|v| float_of(c, "step", v));
    let min = min.unwrap_or(Some(0.0))?;
    let max = max.unwrap_or(Some(1.0))?;
    let step = match step {
        Some(s) => Some(s?),
        None => None,
    };
    if min > max {
        c.error(
            col.name.span(),
            format!("min ({min}) is greater than max ({max})"),
        );
        return None;
    }
    if step.is_some_and(|s| s <= 0.0) {
        c.error(col.name.span(), "step must be positive");
        return None;
    }
    if !(max - min).is_finite() {
        c.error(
            col.name.span(),
            format!(
                "the range from {} to {} is wider than a double can hold",
                shown(min),
                shown(max)
            ),
        );
        return None;
    }
    let steps = step.map(|step| (max - min) / step);
    if let Some(step) = step
        && steps.is_some_and(|n| !n.is_finite() || n > limits::MAX_FLOAT_STEPS)
    {
        c.error_hint(
            col.name.span(),
            format!(
                "from {} to {} by {} makes more than 2^53 values",
                shown(min),
                shown(max),
                shown(step)
            ),
            "beyond 2^53 steps, min + i × step no longer tells values apart; use a larger step, or leave step out for a continuous range",
        );
        return None;
    }
    if step.is_none() && !col.random {
        // A continuous range has no row-index order to cycle through.
        return Some(Generator::FloatRange {
            min,
            max,
            step: Some(1.0),
            random: false,
        });
    }
    Some(Generator::FloatRange {
        min,
        max,
        step,
        random: col.random,
    })
}

/// Parses a dbldatagen template: `d` `D` `a` `A` `k` `K` `x` `X`, `\w` for a word, `\` to escape.
pub(super) fn parse_template(template: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut chars = template.chars();
    while let Some(ch) = chars.next() {
        parts.push(match ch {
            'd' => TemplatePart::Digit,
            'D' => TemplatePart::NonZeroDigit,
            'a' => TemplatePart::Lower,
            'A' => TemplatePart::Upper,
            'k' => TemplatePart::LowerAlnum,
            'K' => TemplatePart::UpperAlnum,
            'x' => TemplatePart::HexLower,
            'X' => TemplatePart::HexUpper,
            '\\' => match chars.next() {
                Some('w') => TemplatePart::Word,
                Some(other) => TemplatePart::Literal(other),
                None => {
                    return Err(
                        "template ends with a lone `\\`; write `\\\\` for a backslash".into(),
                    );
                }
            },
            other => TemplatePart::Literal(other),
        });
    }
    if parts.is_empty() {
        return Err("template must not be empty".into());
    }
    Ok(parts)
}
