//! Per-chunk dictionary of a single grouping column: each row gets a small local id, and only
//! the distinct keys are converted to Arrow's row format and interned in the group table.
//!
//! With few distinct keys per chunk (sensors, words, users) this replaces a row-format encoding
//! and a group-table probe per row with a hash of the raw value and a probe in a table that fits
//! in cache, which is what lets the common single-key case run near a hand-written loop.

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use arrow::error::ArrowError;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Key columns this dictionary handles.
pub fn supports(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::Int32 | DataType::Int64
    )
}

/// Reused buffers for one chunk's local ids.
#[derive(Debug, Default)]
pub struct LocalKeys {
    table: HashTable<u32>,
    hashes: Vec<u64>,
    /// First row of each local id.
    pub first_row: Vec<u32>,
    /// Local id of each row.
    pub id_of_row: Vec<u32>,
    null_id: Option<u32>,
}

const SEED: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x6c6f_6361_6c6b_6579);

impl LocalKeys {
    /// Assigns local ids to every row of `column`.
    pub fn build(&mut self, column: &ArrayRef) -> Result<(), ArrowError> {
        self.table.clear();
        self.hashes.clear();
        self.first_row.clear();
        self.id_of_row.clear();
        self.null_id = None;
        let n = column.len();
        self.id_of_row.reserve(n);
        match column.data_type() {
            DataType::Utf8 => {
                let col = column.as_string::<i32>();
                self.assign(
                    n,
                    |i| col.is_null(i),
                    |i| SEED.hash_one(col.value(i).as_bytes()),
                    |a, b| col.value(a) == col.value(b),
                );
            }
            DataType::Int32 => {
                let col = column.as_primitive::<Int32Type>();
                let v = col.values();
                self.assign(
                    n,
                    |i| col.is_null(i),
                    |i| SEED.hash_one(v[i]),
                    |a, b| v[a] == v[b],
                );
            }
            DataType::Int64 => {
                let col = column.as_primitive::<Int64Type>();
                let v = col.values();
                self.assign(
                    n,
                    |i| col.is_null(i),
                    |i| SEED.hash_one(v[i]),
                    |a, b| v[a] == v[b],
                );
            }
            other => {
                return Err(ArrowError::NotYetImplemented(format!(
                    "local keys of type {other}"
                )));
            }
        }
        Ok(())
    }

    fn assign(
        &mut self,
        n: usize,
        is_null: impl Fn(usize) -> bool,
        hash: impl Fn(usize) -> u64,
        eq: impl Fn(usize, usize) -> bool,
    ) {
        for i in 0..n {
            let id = if is_null(i) {
                match self.null_id {
                    Some(id) => id,
                    None => {
                        let id = self.first_row.len() as u32;
                        self.first_row.push(i as u32);
                        self.hashes.push(0);
                        self.null_id = Some(id);
                        id
                    }
                }
            } else {
                let h = hash(i);
                let first_row = &self.first_row;
                match self.table.find(h, |&id| {
                    !is_null(first_row[id as usize] as usize)
                        && eq(first_row[id as usize] as usize, i)
                }) {
                    Some(&id) => id,
                    None => {
                        let id = self.first_row.len() as u32;
                        self.first_row.push(i as u32);
                        self.hashes.push(h);
                        let hashes = &self.hashes;
                        self.table.insert_unique(h, id, |&x| hashes[x as usize]);
                        id
                    }
                }
            };
            self.id_of_row.push(id);
        }
    }

    /// The distinct keys, in local-id order.
    pub fn distinct(&self, column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
        take(
            column.as_ref(),
            &UInt32Array::from(self.first_row.clone()),
            None,
        )
    }
}
