//! Maps and filters that say which columns they read: the host sends such a plugin only those
//! columns, and takes back only what it wrote (a map's new columns, a filter's one bit a row).
//! Every other column stays in the host and never crosses the boundary, either way.
//!
//! A [`Map`] adds, replaces or drops columns and keeps every row (`compute`, `json_parse`); a
//! [`Filter`] keeps some rows and changes nothing else (`filter`); a [`FlatMap`] makes any
//! number of rows from each input row (`word_split`), and says which input row each output
//! row comes from, so the host repeats the columns it did not read. Anything else is a
//! [`Transform`](crate::Transform), which sees every column. [`Mapped`], [`Filtered`] and
//! [`FlatMapped`] run them natively, as a `Transform`, for tests and benchmarks.

use crate::error::{Config, Error};
use crate::slot;
use crate::transform::Transform;
use crate::wire::{self, OutputColumn};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{Field, FieldRef, Schema, SchemaRef};
use std::sync::Arc;

/// What a [`Map`] or a [`FlatMap`] reads and writes, for one input schema.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The input columns it reads, by name (it is given these alone, in input order).
    pub reads: Vec<String>,
    /// The columns it returns, in order. One named like an input column replaces it where it
    /// stands; the others are added after the input's columns.
    pub writes: Vec<Field>,
    /// Input columns left out of the output, by name.
    pub drops: Vec<String>,
}

/// A transform that adds or replaces columns and keeps every row, reading only the columns it
/// names. Register it with [`export_map!`](crate::export_map).
///
/// ```ignore
/// impl Map for Scale {
///     fn new(config: &Config) -> Result<Self, Error> { ... }
///     fn plan(&mut self, input: &SchemaRef) -> Result<Plan, Error> {
///         Ok(Plan { reads: vec!["value".into()], writes: vec![Field::new("scaled", DataType::Float64, true)] })
///     }
///     fn map(&mut self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, Error> {
///         let value = columns::as_f64(columns::column(batch, "value")?)?;
///         Ok(vec![Arc::new(columns::map_f64(batch.num_rows(), Operand::Column(&value), Operand::Scalar(2.5), |a, b| a * b))])
///     }
/// }
/// ```
pub trait Map: Sized + 'static {
    /// Builds the plugin from the stage's `config` table (called once per instance).
    fn new(config: &Config) -> Result<Self, Error>;

    /// What the map reads and writes for batches of `input`. Called at load, so a pipeline is
    /// type-checked before it runs: reject inputs you cannot handle here, naming the column.
    fn plan(&mut self, input: &SchemaRef) -> Result<Plan, Error>;

    /// The written columns for one batch: `batch` holds only the columns the plan reads, and
    /// the result has one array per written field, each of `batch.num_rows()` rows.
    fn map(&mut self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, Error>;
}

/// What a [`FlatMap`] returns for one batch.
#[derive(Debug, Clone, Default)]
pub struct FlatMapOutput {
    /// For each output row, the input row it comes from (any order, repeats allowed): the
    /// columns the plugin did not write are the input's at these rows.
    pub input_rows: Vec<u32>,
    /// The written columns, one per field of the plan's `writes`, each with one value per
    /// output row.
    pub columns: Vec<ArrayRef>,
}

/// A transform that makes any number of output rows from each input row (split, unnest,
/// repeat), reading only the columns it names: it returns the input row of each output row
/// and its written columns, and the host repeats the others itself. Register it with
/// [`export_flat_map!`](crate::export_flat_map).
pub trait FlatMap: Sized + 'static {
    /// Builds the plugin from the stage's `config` table (called once per instance).
    fn new(config: &Config) -> Result<Self, Error>;

    /// What it reads, writes and drops for batches of `input`. Called at load: reject inputs
    /// you cannot handle here, naming the column.
    fn plan(&mut self, input: &SchemaRef) -> Result<Plan, Error>;

    /// The output of one batch: `batch` holds only the columns the plan reads.
    fn flat_map(&mut self, batch: &RecordBatch) -> Result<FlatMapOutput, Error>;
}

/// A transform that keeps some rows and changes nothing else, reading only the columns it
/// names. Register it with [`export_filter!`](crate::export_filter).
pub trait Filter: Sized + 'static {
    /// Builds the plugin from the stage's `config` table (called once per instance).
    fn new(config: &Config) -> Result<Self, Error>;

    /// The input columns `keep` reads, by name, for batches of `input`. Called at load: reject
    /// inputs you cannot handle here.
    fn reads(&mut self, input: &SchemaRef) -> Result<Vec<String>, Error>;

    /// Which rows to keep, one value a row of `batch` (which holds only the columns `reads`
    /// named): true keeps the row, false or null drops it.
    fn keep(&mut self, batch: &RecordBatch) -> Result<BooleanArray, Error>;
}

/// Where a column of a map's output comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// Input column k.
    Input(usize),
    /// Written column j.
    Written(usize),
}

/// The indices in `input` of the columns named, in input order; an error names one missing.
fn indices(input: &Schema, names: &[String]) -> Result<Vec<usize>, Error> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let index = input.index_of(name).map_err(|_| {
            Error::new(format!(
                "the plugin names column `{name}`, which the input does not have"
            ))
        })?;
        out.push(index);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A map's plan resolved against its input schema.
#[derive(Debug, Clone)]
pub(crate) struct MapLayout {
    /// Input columns read, as indices in increasing order.
    pub reads: Vec<usize>,
    /// The schema of what `map` is given.
    pub read_schema: SchemaRef,
    /// The declared written fields.
    pub writes: Vec<FieldRef>,
    /// The output schema.
    pub output: SchemaRef,
    /// Each output column's source.
    pub sources: Vec<Source>,
}

impl MapLayout {
    pub(crate) fn new(input: &SchemaRef, plan: Plan) -> Result<MapLayout, Error> {
        let reads = indices(input, &plan.reads)?;
        let read_schema = Arc::new(input.project(&reads)?);
        let dropped = indices(input, &plan.drops)?;
        let mut fields: Vec<FieldRef> = input.fields().iter().cloned().collect();
        let mut sources: Vec<Source> = (0..fields.len()).map(Source::Input).collect();
        let mut writes = Vec::with_capacity(plan.writes.len());
        for (j, field) in plan.writes.into_iter().enumerate() {
            if writes.iter().any(|w: &FieldRef| w.name() == field.name()) {
                return Err(Error::new(format!(
                    "the plan writes column `{}` twice",
                    field.name()
                )));
            }
            let field = Arc::new(field);
            match input.index_of(field.name()) {
                Ok(at) => {
                    fields[at] = field.clone();
                    sources[at] = Source::Written(j);
                }
                Err(_) => {
                    fields.push(field.clone());
                    sources.push(Source::Written(j));
                }
            }
            writes.push(field);
        }
        for &k in dropped.iter().rev() {
            if let Source::Written(_) = sources[k] {
                return Err(Error::new(format!(
                    "the plan both writes and drops column `{}`",
                    fields[k].name()
                )));
            }
            fields.remove(k);
            sources.remove(k);
        }
        Ok(MapLayout {
            reads,
            read_schema,
            writes,
            output: Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())),
            sources,
        })
    }

    /// Checks the written columns returned for `rows` output rows against the plan.
    pub(crate) fn check(&self, written: &[ArrayRef], rows: usize) -> Result<(), Error> {
        if written.len() != self.writes.len() {
            return Err(Error::new(format!(
                "the plugin returned {} columns but the plan writes {}",
                written.len(),
                self.writes.len()
            )));
        }
        for (array, field) in written.iter().zip(&self.writes) {
            if array.data_type() != field.data_type() {
                return Err(Error::new(format!(
                    "the plugin returned column `{}` as {} but the plan declared {}",
                    field.name(),
                    array.data_type(),
                    field.data_type()
                )));
            }
            if array.len() != rows {
                return Err(Error::new(format!(
                    "the plugin returned {} rows in column `{}` where {rows} were due",
                    array.len(),
                    field.name()
                )));
            }
            if !field.is_nullable() && array.null_count() > 0 {
                return Err(Error::new(format!(
                    "the plugin returned nulls in column `{}`, declared not nullable",
                    field.name()
                )));
            }
        }
        Ok(())
    }
}

/// A filter's `reads` resolved against its input schema.
#[derive(Debug, Clone)]
pub(crate) struct FilterLayout {
    /// Input columns read, as indices in increasing order.
    pub reads: Vec<usize>,
    /// The schema of what `keep` is given.
    pub read_schema: SchemaRef,
}

impl FilterLayout {
    pub(crate) fn new(input: &SchemaRef, reads: &[String]) -> Result<FilterLayout, Error> {
        let reads = indices(input, reads)?;
        let read_schema = Arc::new(input.project(&reads)?);
        Ok(FilterLayout { reads, read_schema })
    }
}

/// The rows a filter's mask keeps over `rows` rows: set where it is true and not null.
pub(crate) fn kept_rows(mask: &BooleanArray, rows: usize) -> Result<BooleanBuffer, Error> {
    if mask.len() != rows {
        return Err(Error::new(format!(
            "keep returned {} values for a batch of {rows} rows",
            mask.len()
        )));
    }
    Ok(match mask.nulls() {
        Some(nulls) => mask.values() & nulls.inner(),
        None => mask.values().clone(),
    })
}

/// The columns of `batch` at `reads`, as a batch of `schema` (its row count kept even with
/// no column).
pub(crate) fn project(
    batch: &RecordBatch,
    reads: &[usize],
    schema: &SchemaRef,
) -> Result<RecordBatch, Error> {
    let columns = reads.iter().map(|&i| batch.column(i).clone()).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

/// A [`Map`] run natively as a [`Transform`]: what the component does, without the boundary.
pub struct Mapped<M: Map>(PlannedInstance<AsMap<M>>);

impl<M: Map> Transform for Mapped<M> {
    fn new(config: &Config) -> Result<Self, Error> {
        PlannedInstance::make(config).map(Mapped)
    }

    fn output_schema(&mut self, input: &SchemaRef) -> Result<SchemaRef, Error> {
        self.0.plan(input)
    }

    fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch, Error> {
        let (layout, AsMap(map)) = self.0.planned()?;
        let read = project(&batch, &layout.reads, &layout.read_schema)?;
        let written = map.map(&read)?;
        layout.check(&written, batch.num_rows())?;
        layout.assemble(batch.num_rows(), &written, |k| Ok(batch.column(k).clone()))
    }
}

impl MapLayout {
    /// The output batch of `rows` rows: written columns from `written`, the others from
    /// `input(k)` for input column k.
    fn assemble(
        &self,
        rows: usize,
        written: &[ArrayRef],
        mut input: impl FnMut(usize) -> Result<ArrayRef, Error>,
    ) -> Result<RecordBatch, Error> {
        let mut columns = Vec::with_capacity(self.sources.len());
        for source in &self.sources {
            columns.push(match source {
                Source::Input(k) => input(*k)?,
                Source::Written(j) => written[*j].clone(),
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.output.clone(),
            columns,
            &options,
        )?)
    }

    /// The output's columns as the guest sends them: references to input columns, the
    /// written columns as data.
    fn wire_columns<'a>(&'a self, written: &'a [ArrayRef]) -> Vec<(&'a str, OutputColumn<'a>)> {
        self.output
            .fields()
            .iter()
            .zip(&self.sources)
            .map(|(field, source)| {
                let column = match source {
                    Source::Input(k) => OutputColumn::Input(*k),
                    Source::Written(j) => OutputColumn::Data(&written[*j]),
                };
                (field.name().as_str(), column)
            })
            .collect()
    }
}

/// Checks a flat-map's input rows against an input of `rows` rows.
fn check_input_rows(input_rows: &[u32], rows: usize) -> Result<(), Error> {
    match input_rows.iter().find(|&&r| r as usize >= rows) {
        Some(row) => Err(Error::new(format!(
            "flat_map returned input row {row} for a batch of {rows} rows"
        ))),
        None => Ok(()),
    }
}

/// A [`FlatMap`] run natively as a [`Transform`]: what the component and the host do
/// together, without the boundary.
pub struct FlatMapped<F: FlatMap>(PlannedInstance<AsFlatMap<F>>);

impl<F: FlatMap> Transform for FlatMapped<F> {
    fn new(config: &Config) -> Result<Self, Error> {
        PlannedInstance::make(config).map(FlatMapped)
    }

    fn output_schema(&mut self, input: &SchemaRef) -> Result<SchemaRef, Error> {
        self.0.plan(input)
    }

    fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch, Error> {
        let (layout, AsFlatMap(flat_map)) = self.0.planned()?;
        let read = project(&batch, &layout.reads, &layout.read_schema)?;
        let out = flat_map.flat_map(&read)?;
        check_input_rows(&out.input_rows, batch.num_rows())?;
        layout.check(&out.columns, out.input_rows.len())?;
        let rows = arrow_array::UInt32Array::from(out.input_rows);
        layout.assemble(rows.len(), &out.columns, |k| {
            Ok(arrow_select::take::take(batch.column(k), &rows, None)?)
        })
    }
}

/// A [`Filter`] run natively as a [`Transform`]: what the component and the host do together,
/// without the boundary.
pub struct Filtered<F: Filter> {
    filter: F,
    layout: Option<FilterLayout>,
}

impl<F: Filter> Transform for Filtered<F> {
    fn new(config: &Config) -> Result<Self, Error> {
        Ok(Filtered {
            filter: F::new(config)?,
            layout: None,
        })
    }

    fn output_schema(&mut self, input: &SchemaRef) -> Result<SchemaRef, Error> {
        self.layout = Some(FilterLayout::new(input, &self.filter.reads(input)?)?);
        Ok(input.clone())
    }

    fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch, Error> {
        let layout = self
            .layout
            .as_ref()
            .ok_or_else(|| Error::new("process called before output_schema"))?;
        let read = project(&batch, &layout.reads, &layout.read_schema)?;
        let keep = kept_rows(&self.filter.keep(&read)?, batch.num_rows())?;
        Ok(arrow_select::filter::filter_record_batch(
            &batch,
            &BooleanArray::new(keep, None),
        )?)
    }
}

/// What the component glue of a [`Map`] and of a [`FlatMap`] share: making the plugin and
/// planning its columns. (Two wrappers, since one type may implement both traits.)
trait Planned: Sized + 'static {
    fn make(config: &Config) -> Result<Self, Error>;
    fn plan_columns(&mut self, input: &SchemaRef) -> Result<Plan, Error>;
}

/// A [`Map`], to the glue.
struct AsMap<M>(M);

impl<M: Map> Planned for AsMap<M> {
    fn make(config: &Config) -> Result<Self, Error> {
        M::new(config).map(AsMap)
    }
    fn plan_columns(&mut self, input: &SchemaRef) -> Result<Plan, Error> {
        self.0.plan(input)
    }
}

/// A [`FlatMap`], to the glue.
struct AsFlatMap<F>(F);

impl<F: FlatMap> Planned for AsFlatMap<F> {
    fn make(config: &Config) -> Result<Self, Error> {
        F::new(config).map(AsFlatMap)
    }
    fn plan_columns(&mut self, input: &SchemaRef) -> Result<Plan, Error> {
        self.0.plan(input)
    }
}

/// A [`Map`] or [`FlatMap`] and its layout once planned: in a component between the host's
/// calls, or natively behind [`Mapped`] and [`FlatMapped`].
struct PlannedInstance<P> {
    plugin: P,
    layout: Option<MapLayout>,
}

impl<P: Planned> PlannedInstance<P> {
    fn make(config: &Config) -> Result<Self, Error> {
        Ok(PlannedInstance {
            plugin: P::make(config)?,
            layout: None,
        })
    }

    /// Plans the columns for `input`; the output schema.
    fn plan(&mut self, input: &SchemaRef) -> Result<SchemaRef, Error> {
        let layout = MapLayout::new(input, self.plugin.plan_columns(input)?)?;
        let output = layout.output.clone();
        self.layout = Some(layout);
        Ok(output)
    }

    /// The layout and the plugin, once planned.
    fn planned(&mut self) -> Result<(&MapLayout, &mut P), Error> {
        let layout = self
            .layout
            .as_ref()
            .ok_or_else(|| Error::new("process called before the output schema"))?;
        Ok((layout, &mut self.plugin))
    }
}

fn planned_init<P: Planned>(config: &str) -> Result<(), String> {
    let config = Config::from_json(config).map_err(|e| e.to_string())?;
    slot::put(PlannedInstance::<P>::make(&config).map_err(|e| e.to_string())?);
    Ok(())
}

fn planned_output_schema<P: Planned>(input: &[u8]) -> Result<Vec<u8>, String> {
    slot::with(|instance: &mut PlannedInstance<P>| {
        let input = wire::schema_from_bytes(input)?;
        Ok(wire::schema_to_bytes(instance.plan(&input)?.as_ref())?)
    })
}

fn planned_reads<P: Planned>() -> Option<Vec<u32>> {
    slot::with(|instance: &mut PlannedInstance<P>| {
        Ok(instance.layout.as_ref().map(|layout| as_u32(&layout.reads)))
    })
    .ok()
    .flatten()
}

#[doc(hidden)]
pub fn map_init<M: Map>(config: &str) -> Result<(), String> {
    planned_init::<AsMap<M>>(config)
}

#[doc(hidden)]
pub fn map_output_schema<M: Map>(input: &[u8]) -> Result<Vec<u8>, String> {
    planned_output_schema::<AsMap<M>>(input)
}

#[doc(hidden)]
pub fn map_reads<M: Map>() -> Option<Vec<u32>> {
    planned_reads::<AsMap<M>>()
}

#[doc(hidden)]
pub fn map_process<M: Map>(
    rows: u32,
    columns: Vec<Vec<u8>>,
) -> Result<(u32, Vec<Vec<u8>>), String> {
    slot::with(|instance: &mut PlannedInstance<AsMap<M>>| {
        let (layout, AsMap(map)) = instance.planned()?;
        let batch = wire::decode_batch(&layout.read_schema, rows as usize, columns)?;
        let written = map.map(&batch)?;
        layout.check(&written, rows as usize)?;
        let output = layout.wire_columns(&written);
        Ok((rows, wire::encode_output(rows as usize, &output)?))
    })
}

#[doc(hidden)]
pub fn flat_map_init<F: FlatMap>(config: &str) -> Result<(), String> {
    planned_init::<AsFlatMap<F>>(config)
}

#[doc(hidden)]
pub fn flat_map_output_schema<F: FlatMap>(input: &[u8]) -> Result<Vec<u8>, String> {
    planned_output_schema::<AsFlatMap<F>>(input)
}

#[doc(hidden)]
pub fn flat_map_reads<F: FlatMap>() -> Option<Vec<u32>> {
    planned_reads::<AsFlatMap<F>>()
}

#[doc(hidden)]
pub fn flat_map_process<F: FlatMap>(
    rows: u32,
    columns: Vec<Vec<u8>>,
) -> Result<(u32, Vec<Vec<u8>>), String> {
    slot::with(|instance: &mut PlannedInstance<AsFlatMap<F>>| {
        let (layout, AsFlatMap(flat_map)) = instance.planned()?;
        let batch = wire::decode_batch(&layout.read_schema, rows as usize, columns)?;
        let out = flat_map.flat_map(&batch)?;
        check_input_rows(&out.input_rows, rows as usize)?;
        let produced = out.input_rows.len();
        layout.check(&out.columns, produced)?;
        let produced_u32 = u32::try_from(produced)
            .map_err(|_| Error::new("flat_map returned more than 2^32 rows"))?;
        let mut buffers = wire::encode_input_rows(&out.input_rows)?;
        buffers.extend(wire::encode_output(
            produced,
            &layout.wire_columns(&out.columns),
        )?);
        Ok((produced_u32, buffers))
    })
}

/// A [`Filter`] in a component, between the host's calls.
struct FilterInstance<F> {
    filter: F,
    /// The layout and the input's column count.
    layout: Option<(FilterLayout, usize)>,
}

#[doc(hidden)]
pub fn filter_init<F: Filter>(config: &str) -> Result<(), String> {
    let config = Config::from_json(config).map_err(|e| e.to_string())?;
    let filter = F::new(&config).map_err(|e| e.to_string())?;
    slot::put(FilterInstance {
        filter,
        layout: None,
    });
    Ok(())
}

#[doc(hidden)]
pub fn filter_output_schema<F: Filter>(input: &[u8]) -> Result<Vec<u8>, String> {
    slot::with(|instance: &mut FilterInstance<F>| {
        let input = wire::schema_from_bytes(input)?;
        let layout = FilterLayout::new(&input, &instance.filter.reads(&input)?)?;
        instance.layout = Some((layout, input.fields().len()));
        Ok(wire::schema_to_bytes(&input)?)
    })
}

#[doc(hidden)]
pub fn filter_reads<F: Filter>() -> Option<Vec<u32>> {
    slot::with(|instance: &mut FilterInstance<F>| {
        Ok(instance
            .layout
            .as_ref()
            .map(|(layout, _)| as_u32(&layout.reads)))
    })
    .ok()
    .flatten()
}

#[doc(hidden)]
pub fn filter_process<F: Filter>(
    rows: u32,
    columns: Vec<Vec<u8>>,
) -> Result<(u32, Vec<Vec<u8>>), String> {
    slot::with(|instance: &mut FilterInstance<F>| {
        let (layout, input_columns) = instance
            .layout
            .as_ref()
            .ok_or_else(|| Error::new("the host called process before output-schema"))?;
        let batch = wire::decode_batch(&layout.read_schema, rows as usize, columns)?;
        let keep = kept_rows(&instance.filter.keep(&batch)?, rows as usize)?;
        // The count fits: it is at most `rows`.
        let kept = keep.count_set_bits() as u32;
        Ok((kept, wire::encode_selection(&keep, *input_columns)?))
    })
}

/// Column indices as the contract sends them (an input of more than 2^32 columns cannot be
/// described by a schema the host sends).
fn as_u32(indices: &[usize]) -> Vec<u32> {
    indices.iter().map(|&i| i as u32).collect()
}
