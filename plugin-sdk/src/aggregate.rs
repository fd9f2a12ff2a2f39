//! Aggregate plugins: vectorised user-defined aggregate functions in the style of DataFusion's
//! `GroupsAccumulator`. One call updates many groups from one batch; states are serialised
//! (postcard) and kept by the host, so the plugin holds nothing between calls.

use crate::error::{Config, Error};
use crate::wire;
use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::cell::RefCell;

/// The types an aggregate takes (one per argument column) and returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// Argument types, in order.
    pub inputs: Vec<DataType>,
    /// Result type.
    pub output: DataType,
}

/// A user-defined aggregate. Implement it and register the type with
/// [`export_aggregate!`](crate::export_aggregate).
pub trait Aggregate: Sized + 'static {
    /// One group's running state. `Default` is the state of a group that has seen no rows.
    type State: Serialize + DeserializeOwned + Default;

    /// The version of `State`'s format. The host keeps a pipeline's stored states across an
    /// upgrade of the plugin only while this stays the same: when a new version of the plugin
    /// reads states differently (a field added, a type changed), give it a new number, and weir
    /// refuses to swap it into pipelines that hold states of the old format (they keep running
    /// on the old version until their state is reset).
    const STATE_VERSION: u32 = 0;

    /// Builds the aggregate from its `config` table.
    fn new(config: &Config) -> Result<Self, Error>;

    /// What it takes and returns.
    fn signature(&self) -> Signature;

    /// Folds a batch into the groups: row `i` of `input` (one array per declared argument)
    /// belongs to `states[group_of_row[i]]`.
    fn update(
        &self,
        states: &mut [Self::State],
        input: &[ArrayRef],
        group_of_row: &[u32],
    ) -> Result<(), Error>;

    /// Merges `other` into `state` (two partial results of the same group).
    fn merge(&self, state: &mut Self::State, other: Self::State) -> Result<(), Error>;

    /// One output value per state, as an array of the declared output type.
    fn finish(&self, states: Vec<Self::State>) -> Result<ArrayRef, Error>;
}

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn with_instance<T: Aggregate, R>(f: impl FnOnce(&T) -> Result<R, Error>) -> Result<R, String> {
    INSTANCE.with(|cell| {
        let slot = cell.borrow();
        let plugin = slot
            .as_ref()
            .and_then(|b| b.downcast_ref::<T>())
            .ok_or_else(|| "the host called the plugin before init".to_string())?;
        f(plugin).map_err(|e| e.to_string())
    })
}

fn load<S: DeserializeOwned + Default>(bytes: &[u8]) -> Result<S, Error> {
    if bytes.is_empty() {
        return Ok(S::default());
    }
    postcard::from_bytes(bytes).map_err(|e| Error::new(format!("cannot read a state: {e}")))
}

fn store<S: Serialize>(state: &S) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(state).map_err(|e| Error::new(format!("cannot write a state: {e}")))
}

fn load_all<S: DeserializeOwned + Default>(states: &[Vec<u8>]) -> Result<Vec<S>, Error> {
    states.iter().map(|s| load(s)).collect()
}

fn store_all<S: Serialize>(states: &[S]) -> Result<Vec<Vec<u8>>, Error> {
    states.iter().map(store).collect()
}

/// The signature's schemas as the host reads them: inputs `arg0..`, output `output`.
#[doc(hidden)]
pub fn signature_schemas(signature: &Signature) -> (Schema, Schema) {
    let inputs = signature
        .inputs
        .iter()
        .enumerate()
        .map(|(i, t)| Field::new(format!("arg{i}"), t.clone(), true))
        .collect::<Vec<_>>();
    (
        Schema::new(inputs),
        Schema::new(vec![Field::new("output", signature.output.clone(), true)]),
    )
}

#[doc(hidden)]
pub fn init<T: Aggregate>(config: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let run = || -> Result<(Vec<u8>, Vec<u8>), Error> {
        let config = Config::from_json(config)?;
        let plugin = T::new(&config)?;
        let (inputs, output) = signature_schemas(&plugin.signature());
        let encoded = (
            wire::schema_to_bytes(&inputs)?,
            wire::schema_to_bytes(&output)?,
        );
        INSTANCE.with(|cell| *cell.borrow_mut() = Some(Box::new(plugin)));
        Ok(encoded)
    };
    run().map_err(|e| e.to_string())
}

#[doc(hidden)]
pub fn update<T: Aggregate>(
    states: Vec<Vec<u8>>,
    rows: u32,
    columns: Vec<Vec<u8>>,
    group_of_row: Vec<u32>,
) -> Result<Vec<Vec<u8>>, String> {
    with_instance::<T, _>(|plugin| {
        let signature = plugin.signature();
        let names: Vec<String> = (0..signature.inputs.len())
            .map(|i| format!("arg{i}"))
            .collect();
        let types: Vec<(&str, &DataType)> = names
            .iter()
            .map(String::as_str)
            .zip(signature.inputs.iter())
            .collect();
        let input = wire::decode_arrays(&types, columns)?;
        if let Some(a) = input.iter().find(|a| a.len() != rows as usize) {
            return Err(Error::new(format!(
                "{rows} rows announced, an input has {}",
                a.len()
            )));
        }
        if group_of_row.len() != rows as usize {
            return Err(Error::new(format!(
                "{rows} rows but {} group indexes",
                group_of_row.len()
            )));
        }
        if let Some(g) = group_of_row.iter().find(|g| **g as usize >= states.len()) {
            return Err(Error::new(format!(
                "group index {g} out of range ({} states)",
                states.len()
            )));
        }
        let mut loaded: Vec<T::State> = load_all(&states)?;
        plugin.update(&mut loaded, &input, &group_of_row)?;
        store_all(&loaded)
    })
}

#[doc(hidden)]
pub fn merge<T: Aggregate>(
    left: Vec<Vec<u8>>,
    right: Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, String> {
    with_instance::<T, _>(|plugin| {
        if left.len() != right.len() {
            return Err(Error::new(format!(
                "merge of {} states with {}",
                left.len(),
                right.len()
            )));
        }
        let mut out = Vec::with_capacity(left.len());
        for (l, r) in left.iter().zip(&right) {
            let mut state: T::State = load(l)?;
            plugin.merge(&mut state, load(r)?)?;
            out.push(store(&state)?);
        }
        Ok(out)
    })
}

#[doc(hidden)]
pub fn finish<T: Aggregate>(states: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, String> {
    with_instance::<T, _>(|plugin| {
        let n = states.len();
        let array = plugin.finish(load_all(&states)?)?;
        let output = plugin.signature().output;
        if array.data_type() != &output || array.len() != n {
            return Err(Error::new(format!(
                "finish returned {} values of type {} for {n} states of declared type {output}",
                array.len(),
                array.data_type()
            )));
        }
        Ok(wire::encode_owned(&[array.to_data()], &["output"])?)
    })
}
