//! `datagen`: generated rows in the style of dbldatagen. Every value is a pure function of
//! (seed, column, row index), so any row can be regenerated alone, in any batch split, and replay
//! after a crash yields identical data. Rows are released on `rate`'s schedule, and a timestamp
//! column with `expr = "now"` carries the row's scheduled time, never the wall clock.

use super::{
    CHUNK_ROWS, Chunk, ReadLimit, ReleaseSchedule, ScheduledOffset, Source, SourceError,
    SourceOffset, Wakeup, now_ms, rate::timestamp_type, system_time_from_ms,
};
use crate::config::{ColumnSpec, ColumnType, DatagenSpec, Generator, Scalar, TemplatePart};
use arrow::array::{
    ArrayRef, BooleanBuilder, DictionaryArray, Float64Array, Int32Array, Int64Array, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use columns::ColumnRows;
use std::fmt::Write as _;
use std::sync::Arc;

mod columns;

/// The datagen source.
#[derive(Debug)]
pub struct DatagenSource {
    table: Arc<Table>,
    frozen_now_ms: Option<i64>,
    /// Rows due that the last `latest_offset` left for later batches.
    backlog: u64,
    /// The end (in rows) the last `latest_offset` returned.
    planned_rows: u64,
    /// How many chunks `read` makes at once.
    spread: crate::cores::Spread,
}

/// Rows per generated chunk: half of `CHUNK_ROWS`. A lane makes a chunk and carries it
/// through the stages at once, so a chunk and what the stages build from it should stay in
/// the core's cache: at 64 Ki rows the seed's windowed average (20 bytes a row, and 8 more
/// the grouping writes) outgrew a 2 MiB L2 and read its first column back from memory;
/// at 32 Ki the whole run took 1.7-1.8 s of CPU instead of 2.3-2.5 s (BENCHMARKS.md).
const GENERATED_CHUNK_ROWS: usize = CHUNK_ROWS / 2;

const NULL_SALT: u64 = 0x6e75_6c6c_6e75_6c6c;
const GOLDEN: f64 = 0.618_033_988_749_894_9;
const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
];

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random word for (seed, column, row): the whole generator state of one value.
fn mix(seed: u64, column: u64, row: u64) -> u64 {
    splitmix64(seed ^ splitmix64(column ^ splitmix64(row)))
}

/// Uniform in [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform in [0, n).
fn below(h: u64, n: u64) -> u64 {
    ((u128::from(h) * u128::from(n)) >> 64) as u64
}

/// FNV-1a, for stable column keys.
fn name_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The categories of a string `values` column: it is dictionary encoded (one key per row, the
/// strings once), as a columnar store keeps categorical columns. Grouping on it then never
/// hashes a string, and generating it never copies one.
fn categories(col: &ColumnSpec) -> Option<ArrayRef> {
    match (&col.data_type, &col.generator) {
        (ColumnType::String, Generator::Values { values, .. }) => {
            let strings: Vec<&str> = values
                .iter()
                .map(|v| match v {
                    Scalar::Str(s) => s.as_str(),
                    _ => "",
                })
                .collect();
            Some(Arc::new(arrow::array::StringArray::from(strings)))
        }
        _ => None,
    }
}

fn arrow_type(col: &ColumnSpec) -> DataType {
    if categories(col).is_some() {
        return DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    }
    match col.data_type {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int => DataType::Int32,
        ColumnType::Long => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Timestamp => timestamp_type(),
    }
}

/// What makes any chunk of the table: shared with the lanes that make deferred chunks.
#[derive(Debug)]
struct Table {
    spec: DatagenSpec,
    schema: SchemaRef,
    /// Per column: a stable key mixed into its random stream (from the name, so adding a column
    /// does not change the others).
    column_keys: Vec<u64>,
    /// Per column: the dictionary of a categorical string column.
    categories: Vec<Option<ArrayRef>>,
}

/// Per-row context handed to the value functions.
#[derive(Clone, Copy)]
struct RowDraw {
    row: u64,
    /// This value's random word.
    hash: u64,
}

impl DatagenSource {
    /// A datagen source for `spec`.
    pub fn new(spec: DatagenSpec) -> DatagenSource {
        let fields: Vec<Field> = spec
            .columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c), c.null_fraction > 0.0))
            .collect();
        let column_keys = spec.columns.iter().map(|c| name_key(&c.name)).collect();
        let categories = spec.columns.iter().map(categories).collect();
        DatagenSource {
            table: Arc::new(Table {
                schema: Arc::new(Schema::new(fields)),
                spec,
                column_keys,
                categories,
            }),
            frozen_now_ms: None,
            backlog: 0,
            planned_rows: 0,
            spread: crate::cores::Spread::one(),
        }
    }

    /// The stream's start and the row ranges of the chunks between two offsets, each at most
    /// `GENERATED_CHUNK_ROWS`.
    fn chunks_between(
        start: &SourceOffset,
        end: &SourceOffset,
    ) -> Result<(i64, Vec<(u64, u64)>), SourceError> {
        let from = ScheduledOffset::parse(start)?;
        let to = ScheduledOffset::parse(end)?;
        super::check_row_range(to.rows, end)?;
        let mut ranges = Vec::new();
        let mut row = from.rows;
        while row < to.rows {
            let chunk_end = to.rows.min(row.saturating_add(GENERATED_CHUNK_ROWS as u64));
            ranges.push((row, chunk_end));
            row = chunk_end;
        }
        Ok((from.start_ms, ranges))
    }
}

impl Table {
    fn schedule(&self, start_ms: i64) -> ReleaseSchedule {
        ReleaseSchedule {
            rows_per_second: self.spec.rows_per_second,
            ramp_up_seconds: 0,
            start_ms,
        }
    }

    /// Generates rows `[from, to)` as one record batch.
    fn generate(&self, from: u64, to: u64, start_ms: i64) -> Result<RecordBatch, SourceError> {
        let schedule = self.schedule(start_ms);
        let columns: Vec<ArrayRef> = self
            .spec
            .columns
            .iter()
            .zip(&self.column_keys)
            .zip(&self.categories)
            .map(|((column, key), categories)| match categories {
                Some(values) => self.categorical(column, *key, from, to, values),
                None => Ok(self.column(column, *key, from, to, &schedule)),
            })
            .collect::<Result<_, SourceError>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// A string `values` column, dictionary encoded: the row's choice is its key.
    fn categorical(
        &self,
        col: &ColumnSpec,
        key: u64,
        from: u64,
        to: u64,
        values: &ArrayRef,
    ) -> Result<ArrayRef, SourceError> {
        let seed = self.spec.seed;
        let rows = ColumnRows {
            seed,
            key,
            from,
            to,
        };
        let nulls = columns::validity(col.null_fraction, rows);
        let keys = Int32Array::new(columns::choices(&col.generator, rows).into(), nulls);
        Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
            keys,
            values.clone(),
        )?))
    }

    fn column(
        &self,
        col: &ColumnSpec,
        key: u64,
        from: u64,
        to: u64,
        schedule: &ReleaseSchedule,
    ) -> ArrayRef {
        let seed = self.spec.seed;
        let len = (to - from) as usize;
        let rows = ColumnRows {
            seed,
            key,
            from,
            to,
        };
        let nulls = columns::validity(col.null_fraction, rows);
        let is_null = |row: u64| {
            nulls
                .as_ref()
                .is_some_and(|n| n.is_null((row - from) as usize))
        };
        let draw = |row: u64| RowDraw {
            row,
            hash: mix(seed, key, row),
        };
        match col.data_type {
            ColumnType::Timestamp => {
                let jitter_ms = match col.generator {
                    Generator::EventTime { jitter_ms } => jitter_ms,
                    _ => 0,
                };
                let mut values = Vec::with_capacity(len);
                if jitter_ms > 0 {
                    let due = schedule.event_times_ms(from, to);
                    let n = u64::try_from(jitter_ms).unwrap_or(0).saturating_add(1);
                    values.extend((from..to).zip(due).map(|(row, due)| {
                        let late = i64::try_from(below(mix(seed, key, row), n)).unwrap_or(i64::MAX);
                        due.saturating_sub(late).saturating_mul(1000)
                    }));
                } else {
                    for (due, rows) in schedule.event_time_runs(from, to) {
                        values.extend(std::iter::repeat_n(due.saturating_mul(1000), rows));
                    }
                }
                Arc::new(TimestampMicrosecondArray::new(values.into(), nulls).with_timezone("UTC"))
            }
            // Validation keeps int ranges and values inside i32; wrap the row index.
            ColumnType::Int => Arc::new(Int32Array::new(
                columns::int_values(&col.generator, rows)
                    .into_iter()
                    .map(|v| v as i32)
                    .collect(),
                nulls,
            )),
            ColumnType::Long => Arc::new(Int64Array::new(
                columns::int_values(&col.generator, rows).into(),
                nulls,
            )),
            ColumnType::Double => Arc::new(Float64Array::new(
                columns::float_values(&col.generator, rows).into(),
                nulls,
            )),
            ColumnType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(len);
                for row in from..to {
                    if is_null(row) {
                        b.append_null();
                    } else {
                        b.append_value(bool_value(&col.generator, draw(row)));
                    }
                }
                Arc::new(b.finish())
            }
            ColumnType::String => {
                let mut b = StringBuilder::with_capacity(len, len * 8);
                for row in from..to {
                    if is_null(row) {
                        b.append_null();
                    } else {
                        write_string(&mut b, &col.generator, draw(row));
                        b.append_value("");
                    }
                }
                Arc::new(b.finish())
            }
        }
    }
}

/// Index into `n` choices: cycling by row, spread over cumulative weights, or random.
fn choose(n: usize, cumulative: Option<&[f64]>, random: bool, d: RowDraw) -> usize {
    match (cumulative, random) {
        (None, false) => (d.row % n as u64) as usize,
        (None, true) => below(d.hash, n as u64) as usize,
        (Some(cum), random) => {
            // Without `random`, a low-discrepancy sequence of the row index: every prefix of
            // the stream follows the weights closely, and each row's value stands alone.
            let u = if random {
                unit(d.hash)
            } else {
                (d.row as f64 * GOLDEN).fract()
            };
            cum.iter().position(|c| u < *c).unwrap_or(n - 1)
        }
    }
}

fn pick<'a>(
    values: &'a [Scalar],
    cumulative: &Option<Vec<f64>>,
    random: bool,
    d: RowDraw,
) -> &'a Scalar {
    &values[choose(values.len(), cumulative.as_deref(), random, d)]
}

fn int_value(g: &Generator, d: RowDraw) -> i64 {
    match g {
        Generator::Values {
            values,
            cumulative_weights,
            random,
        } => match pick(values, cumulative_weights, *random, d) {
            Scalar::Int(i) => *i,
            Scalar::Float(f) => *f as i64,
            Scalar::Bool(b) => i64::from(*b),
            Scalar::Str(_) => 0,
        },
        Generator::IntRange {
            min,
            max,
            step,
            random,
        } => {
            let count = ((i128::from(*max) - i128::from(*min)) / i128::from(*step) + 1) as u128;
            let count = u64::try_from(count).unwrap_or(u64::MAX);
            let index = if *random {
                below(d.hash, count)
            } else {
                d.row % count
            };
            (i128::from(*min) + i128::from(index) * i128::from(*step)) as i64
        }
        Generator::FloatRange { .. } => float_value(g, d) as i64,
        _ => d.row as i64,
    }
}

/// How many values `min, min + step, ...` up to `max` holds, at least 1 and at most `u64::MAX`
/// (validation keeps it within 2^53; this keeps a value outside from dividing by zero).
fn float_steps(min: f64, max: f64, step: f64) -> u64 {
    let steps = ((max - min) / step).floor();
    if steps.is_finite() && steps >= 0.0 && steps < u64::MAX as f64 {
        (steps as u64).saturating_add(1)
    } else {
        1
    }
}

fn float_value(g: &Generator, d: RowDraw) -> f64 {
    match g {
        Generator::Values {
            values,
            cumulative_weights,
            random,
        } => match pick(values, cumulative_weights, *random, d) {
            Scalar::Float(f) => *f,
            Scalar::Int(i) => *i as f64,
            _ => 0.0,
        },
        Generator::FloatRange {
            min,
            max,
            step: None,
            ..
        } => min + unit(d.hash) * (max - min),
        Generator::FloatRange {
            min,
            max,
            step: Some(step),
            random,
        } => {
            let count = float_steps(*min, *max, *step);
            let index = if *random {
                below(d.hash, count)
            } else {
                d.row % count
            };
            min + index as f64 * step
        }
        Generator::IntRange { .. } => int_value(g, d) as f64,
        _ => d.row as f64,
    }
}

fn bool_value(g: &Generator, d: RowDraw) -> bool {
    match g {
        Generator::Values {
            values,
            cumulative_weights,
            random,
        } => {
            matches!(
                pick(values, cumulative_weights, *random, d),
                Scalar::Bool(true)
            )
        }
        Generator::Bool { random: true } => d.hash & 1 == 1,
        _ => d.row % 2 == 1,
    }
}

fn write_string(out: &mut StringBuilder, g: &Generator, d: RowDraw) {
    // Writing into the builder's buffer: no allocation per row.
    let _ = match g {
        Generator::Values {
            values,
            cumulative_weights,
            random,
        } => match pick(values, cumulative_weights, *random, d) {
            Scalar::Str(s) => out.write_str(s),
            Scalar::Int(i) => write!(out, "{i}"),
            Scalar::Float(f) => write!(out, "{f}"),
            Scalar::Bool(b) => write!(out, "{b}"),
        },
        Generator::Prefixed { prefix, number } => write!(out, "{prefix}_{}", int_value(number, d)),
        Generator::Template(parts) => write_template(out, parts, d.hash),
        other => write!(out, "{}", int_value(other, d)),
    };
}

fn write_template(out: &mut StringBuilder, parts: &[TemplatePart], hash: u64) -> std::fmt::Result {
    const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const HEX_LOWER: &[u8] = b"0123456789abcdef";
    const HEX_UPPER: &[u8] = b"0123456789ABCDEF";
    let mut state = hash;
    let mut next = |n: usize| {
        state = splitmix64(state);
        below(state, n as u64) as usize
    };
    for part in parts {
        let from = |set: &[u8], i: usize| char::from(set[i]);
        match part {
            TemplatePart::Literal(c) => out.write_char(*c)?,
            TemplatePart::Digit => out.write_char(from(b"0123456789", next(10)))?,
            TemplatePart::NonZeroDigit => out.write_char(from(b"123456789", next(9)))?,
            TemplatePart::Lower => out.write_char(from(LOWER, next(LOWER.len())))?,
            TemplatePart::Upper => out.write_char(from(UPPER, next(UPPER.len())))?,
            TemplatePart::LowerAlnum => {
                out.write_char(from(LOWER_ALNUM, next(LOWER_ALNUM.len())))?
            }
            TemplatePart::UpperAlnum => {
                out.write_char(from(UPPER_ALNUM, next(UPPER_ALNUM.len())))?
            }
            TemplatePart::HexLower => out.write_char(from(HEX_LOWER, next(16)))?,
            TemplatePart::HexUpper => out.write_char(from(HEX_UPPER, next(16)))?,
            TemplatePart::Word => out.write_str(WORDS[next(WORDS.len())])?,
        }
    }
    Ok(())
}

impl Source for DatagenSource {
    fn schema(&self) -> SchemaRef {
        self.table.schema.clone()
    }

    fn initial_offset(&mut self) -> Result<SourceOffset, SourceError> {
        Ok(ScheduledOffset {
            rows: 0,
            start_ms: self.table.spec.start_timestamp_ms.unwrap_or_else(now_ms),
        }
        .to_json())
    }

    fn latest_offset(
        &mut self,
        start: &SourceOffset,
        limit: ReadLimit,
    ) -> Result<SourceOffset, SourceError> {
        let start = ScheduledOffset::parse(start)?;
        let mut end = match (self.frozen_now_ms, self.table.spec.rows) {
            // A bounded generator under available_now is a finite table: all of it exists.
            (Some(_), Some(total)) => total,
            (frozen, total) => {
                let due = self
                    .table
                    .schedule(start.start_ms)
                    .rows_due(frozen.unwrap_or_else(now_ms));
                total.map_or(due, |t| due.min(t))
            }
        };
        end = end.max(start.rows);
        let available = end;
        if let (ReadLimit::SourceLimits, Some(max)) = (limit, self.table.spec.max_rows_per_batch) {
            end = end.min(start.rows.saturating_add(max));
        }
        self.backlog = available - end;
        self.planned_rows = end;
        Ok(ScheduledOffset {
            rows: end,
            start_ms: start.start_ms,
        }
        .to_json())
    }

    fn read(
        &mut self,
        start: &SourceOffset,
        end: &SourceOffset,
    ) -> Result<Vec<RecordBatch>, SourceError> {
        let (start_ms, ranges) = DatagenSource::chunks_between(start, end)?;
        // Each chunk depends on its rows' indexes alone, so chunks can be made on any thread.
        let table = &self.table;
        self.spread
            .map(
                ranges,
                |(from, to)| table.generate(from, to, start_ms),
                Result::is_err,
            )
            .map_err(|panicked| SourceError::Internal(panicked.to_string()))?
            .into_iter()
            .collect()
    }

    fn read_chunks(
        &mut self,
        start: &SourceOffset,
        end: &SourceOffset,
    ) -> Result<Vec<Chunk>, SourceError> {
        let (start_ms, ranges) = DatagenSource::chunks_between(start, end)?;
        Ok(ranges
            .into_iter()
            .map(|(from, to)| {
                let table = Arc::clone(&self.table);
                Chunk::Deferred {
                    rows: usize::try_from(to - from).unwrap_or(usize::MAX),
                    make: Box::new(move || table.generate(from, to, start_ms)),
                }
            })
            .collect())
    }

    fn spread_over(&mut self, spread: crate::cores::Spread) {
        self.spread = spread;
    }

    fn wakeup(&self, at: &SourceOffset) -> Wakeup {
        match ScheduledOffset::parse(at) {
            Ok(at) if self.table.spec.rows.is_some_and(|total| at.rows >= total) => Wakeup::Never,
            Ok(at) => Wakeup::At(system_time_from_ms(
                self.table.schedule(at.start_ms).next_release_ms(now_ms()),
            )),
            Err(_) => Wakeup::Poll(std::time::Duration::from_millis(100)),
        }
    }

    fn backlog(&self) -> Option<super::Backlog> {
        Some(super::Backlog {
            amount: self.backlog,
            unit: "rows".into(),
            parts: Vec::new(),
        })
    }

    fn prepare_available_now(&mut self) {
        self.frozen_now_ms = Some(now_ms());
    }

    fn known_end(&self) -> Option<super::KnownEnd> {
        Some(super::KnownEnd {
            done: self.planned_rows,
            total: self.table.spec.rows?,
            unit: "rows".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceSpec;
    use crate::config::parse_pipeline;
    use arrow::array::{Array, AsArray};
    use arrow::compute::concat_batches;
    use arrow::datatypes::{Float64Type, Int32Type};
    use std::path::Path;

    fn source(columns: &str, extra: &str) -> DatagenSource {
        let text = format!(
            "name = \"t\"\n[source]\ntype = \"datagen\"\nrows_per_second = 1000\n{extra}\n{columns}\n[[sink]]\ntype = \"null\"\n"
        );
        match parse_pipeline(Path::new("t.toml"), &text) {
            Ok(plan) => match plan.source {
                SourceSpec::Datagen(spec) => DatagenSource::new(spec),
                other => panic!("not datagen: {other:?}"),
            },
            Err(d) => panic!("{d}"),
        }
    }

    fn range(rows: u64) -> (SourceOffset, SourceOffset) {
        (
            ScheduledOffset {
                rows: 0,
                start_ms: 1_700_000_000_000,
            }
            .to_json(),
            ScheduledOffset {
                rows,
                start_ms: 1_700_000_000_000,
            }
            .to_json(),
        )
    }

    const IOT: &str = r#"
[[source.column]]
name = "time"
type = "timestamp"
expr = "now"
[[source.column]]
name = "sensor"
type = "string"
values = ["sensor_1", "sensor_2", "sensor_3"]
[[source.column]]
name = "value"
type = "int"
min = 0
max = 10
random = true
percent_nulls = 0.1
[[source.column]]
name = "code"
type = "string"
template = "AAdd-\\w"
"#;

    #[test]
    fn replay_in_any_split_gives_identical_rows() -> Result<(), Box<dyn std::error::Error>> {
        let mut a = source(IOT, "seed = 7");
        let mut b = source(IOT, "seed = 7");
        let (start, end) = range(200_000);
        let whole = concat_batches(&a.schema(), &a.read(&start, &end)?)?;
        let mid = ScheduledOffset {
            rows: 77_777,
            start_ms: 1_700_000_000_000,
        }
        .to_json();
        let mut parts = b.read(&start, &mid)?;
        parts.extend(b.read(&mid, &end)?);
        let split = concat_batches(&b.schema(), &parts)?;
        assert_eq!(whole, split);
        let mut c = source(IOT, "seed = 8");
        let other = concat_batches(&c.schema(), &c.read(&start, &end)?)?;
        assert_ne!(
            whole.column(2),
            other.column(2),
            "another seed gives other random values"
        );
        assert_eq!(
            whole.column(1),
            other.column(1),
            "non-random columns do not depend on the seed"
        );
        Ok(())
    }

    #[test]
    fn chunks_made_on_two_threads_are_the_chunks_made_on_one()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut one = source(IOT, "seed = 7");
        let mut two = source(IOT, "seed = 7");
        let budget = crate::cores::CoreBudget::new(1);
        two.spread_over(crate::cores::Spread {
            width: 2,
            budget: budget.clone(),
        });
        let (start, end) = range(300_000);
        let (a, b) = (one.read(&start, &end)?, two.read(&start, &end)?);
        assert_eq!(
            a.len(),
            10,
            "300 000 rows are ten chunks of up to 32 Ki rows"
        );
        assert_eq!(a, b);
        assert_eq!(budget.spare(), 1, "the core is back");
        Ok(())
    }

    #[test]
    fn deferred_chunks_make_the_chunks_read_makes() -> Result<(), Box<dyn std::error::Error>> {
        let mut s = source(IOT, "seed = 7");
        let (start, end) = range(300_000);
        let chunks = s.read_chunks(&start, &end)?;
        assert!(chunks.iter().all(Chunk::is_deferred));
        assert_eq!(chunks.iter().map(Chunk::rows).sum::<usize>(), 300_000);
        // Made in reverse order, on another thread: each depends on its rows alone.
        let made = std::thread::spawn(move || {
            let mut made: Vec<RecordBatch> = chunks
                .into_iter()
                .rev()
                .map(Chunk::make)
                .collect::<Result<_, _>>()?;
            made.reverse();
            Ok::<_, SourceError>(made)
        })
        .join()
        .map_err(|_| "the thread panicked")??;
        assert_eq!(made, s.read(&start, &end)?);
        Ok(())
    }

    #[test]
    fn random_ints_cover_min_to_max_inclusive_and_nulls_hold_their_fraction()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut s = source(IOT, "");
        let (start, end) = range(100_000);
        let batch = concat_batches(&s.schema(), &s.read(&start, &end)?)?;
        let values = batch.column(2).as_primitive::<Int32Type>();
        let nulls = values.null_count() as f64 / 100_000.0;
        assert!((nulls - 0.1).abs() < 0.01, "null fraction {nulls}");
        let mut counts = [0u32; 11];
        for v in values.iter().flatten() {
            counts[usize::try_from(v)?] += 1;
        }
        // 90k values over 11 outcomes: about 8182 each; 5 sigma is about 450.
        for (v, n) in counts.iter().enumerate() {
            assert!((7700..8700).contains(n), "value {v} drawn {n} times");
        }
        let codes = batch.column(3).as_string::<i32>();
        let code = codes.value(0);
        assert!(
            code.len() > 6 && code.as_bytes()[4] == b'-',
            "template output {code:?}"
        );
        assert!(
            code[..2].chars().all(|c| c.is_ascii_uppercase())
                && code[2..4].chars().all(|c| c.is_ascii_digit())
        );
        Ok(())
    }

    #[test]
    fn weights_are_respected_without_and_with_random() -> Result<(), Box<dyn std::error::Error>> {
        for random in [false, true] {
            let columns = format!(
                "[[source.column]]\nname = \"word\"\ntype = \"string\"\nvalues = [\"hello\", \"world\", \"ok\", \"no\", \"yes\"]\nweights = [1, 1, 2, 2, 2]\nrandom = {random}\n"
            );
            let mut s = source(&columns, "");
            let (start, end) = range(100_000);
            let batch = concat_batches(&s.schema(), &s.read(&start, &end)?)?;
            // A `values` string column is dictionary encoded.
            let words = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
            let words = words.as_string::<i32>();
            let mut counts = std::collections::HashMap::new();
            for w in words.iter().flatten() {
                *counts.entry(w).or_insert(0u32) += 1;
            }
            for (word, weight) in [
                ("hello", 1.0),
                ("world", 1.0),
                ("ok", 2.0),
                ("no", 2.0),
                ("yes", 2.0),
            ] {
                let share = f64::from(counts[word]) / 100_000.0;
                let expected = weight / 8.0;
                // Random: 5 sigma of a binomial share at n = 100k is under 0.006.
                let tolerance = if random { 0.006 } else { 0.001 };
                assert!(
                    (share - expected).abs() < tolerance,
                    "random={random} {word}: {share} vs {expected}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn event_time_is_the_schedule_not_the_wall_clock() -> Result<(), Box<dyn std::error::Error>> {
        let mut s = source(IOT, "");
        let (start, end) = range(3000);
        let batch = concat_batches(&s.schema(), &s.read(&start, &end)?)?;
        let times = batch
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(times.value(0), 1_700_000_000_000_000);
        assert_eq!(times.value(2999), 1_700_000_000_000_000 + 2999 * 1000);
        Ok(())
    }

    #[test]
    fn stepped_double_ranges_and_prefixes() -> Result<(), Box<dyn std::error::Error>> {
        let columns = "[[source.column]]\nname = \"d\"\ntype = \"double\"\nmin = 1\nmax = 2\nstep = 0.25\n[[source.column]]\nname = \"item\"\ntype = \"string\"\nprefix = \"item\"\nmin = 1\nmax = 3\n";
        let mut s = source(columns, "");
        let (start, end) = range(6);
        let batch = concat_batches(&s.schema(), &s.read(&start, &end)?)?;
        let d: Vec<f64> = batch
            .column(0)
            .as_primitive::<Float64Type>()
            .values()
            .to_vec();
        assert_eq!(d, vec![1.0, 1.25, 1.5, 1.75, 2.0, 1.0]);
        let items: Vec<&str> = batch
            .column(1)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(
            items,
            vec!["item_1", "item_2", "item_3", "item_1", "item_2", "item_3"]
        );
        Ok(())
    }

    #[test]
    fn a_bounded_generator_is_exhausted_and_fully_available_under_available_now_the_limit_holding_back_a_backlog_and_its_rows_the_known_end()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut s = source(IOT, "rows = 5000\nmax_rows_per_batch = 2000");
        s.prepare_available_now();
        let (start, _) = range(0);
        let first = ScheduledOffset::parse(&s.latest_offset(&start, ReadLimit::SourceLimits)?)?;
        assert_eq!(first.rows, 2000);
        // What the batch limit held back is the backlog.
        assert_eq!(
            s.backlog().map(|b| (b.amount, b.unit)),
            Some((3000, "rows".into()))
        );
        assert_eq!(
            s.known_end().map(|e| (e.done, e.total, e.unit)),
            Some((2000, 5000, "rows".into()))
        );
        let all = ScheduledOffset::parse(&s.latest_offset(&start, ReadLimit::AllAvailable)?)?;
        assert_eq!(all.rows, 5000);
        assert_eq!(s.backlog().map(|b| b.amount), Some(0));
        assert!(matches!(s.wakeup(&all.to_json()), Wakeup::Never));
        Ok(())
    }
}
