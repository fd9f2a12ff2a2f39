//! Per-chunk dictionary of a single grouping column: each row gets a small local id, and only
//! the distinct keys are converted to Arrow's row format and interned in the group table.
//!
//! With few distinct keys per chunk (sensors, words, users) this replaces a row-format encoding
//! and a group-table probe per row with a hash of the raw value and a probe in a table that fits
//! in cache, which is what lets the common single-key case run near a hand-written loop.

use arrow::array::{Array, ArrayRef, AsArray, DictionaryArray, Int32Array, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use arrow::error::ArrowError;
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Key columns this dictionary handles.
pub fn supports(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::Int32 | DataType::Int64 => true,
        DataType::Dictionary(key, _) => key.as_ref() == &DataType::Int32,
        _ => false,
    }
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
    /// The column was a dictionary: `distinct` is its values (plus a null).
    dictionary: bool,
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
        self.dictionary = false;
        let n = column.len();
        self.id_of_row.reserve(n);
        match column.data_type() {
            DataType::Utf8 => {
                let col = column.as_string::<i32>();
                let offsets = col.value_offsets();
                let data = col.value_data();
                let bytes = |i: usize| &data[offsets[i] as usize..offsets[i + 1] as usize];
                self.assign(
                    n,
                    |i| col.is_null(i),
                    |i| SEED.hash_one(bytes(i)),
                    |a, b| bytes(a) == bytes(b),
                );
            }
            DataType::Dictionary(_, _) => {
                // Already dictionary encoded: a row's dictionary key is its local id, and the
                // dictionary's values are the distinct keys (unused ones are never interned).
                let dict = column.as_dictionary::<Int32Type>();
                let values_len = dict.values().len();
                self.first_row.extend(0..values_len as u32);
                let keys = dict.keys();
                if keys.null_count() == 0 {
                    // Keys are checked against the values when the array is made.
                    self.id_of_row
                        .extend(keys.values().iter().map(|&k| k.max(0) as u32));
                    self.dictionary = true;
                    return Ok(());
                }
                for i in 0..n {
                    let id = if keys.is_valid(i) {
                        u32::try_from(keys.value(i)).unwrap_or(0)
                    } else {
                        *self.null_id.get_or_insert(values_len as u32)
                    };
                    self.id_of_row.push(id);
                }
                if let Some(null_id) = self.null_id {
                    self.first_row.push(null_id);
                }
                self.dictionary = true;
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
        if self.dictionary {
            return every_value_once(column.as_dictionary::<Int32Type>(), self.null_id.is_some());
        }
        take(
            column.as_ref(),
            &UInt32Array::from(self.first_row.clone()),
            None,
        )
    }
}

/// Every value of a dictionary once, by key (and a null last, if asked), as a dictionary
/// again so that it has the column's type: the distinct keys of a chunk whose local ids are
/// its dictionary keys.
pub fn every_value_once(
    dictionary: &DictionaryArray<Int32Type>,
    with_null: bool,
) -> Result<ArrayRef, ArrowError> {
    let values = dictionary.values();
    let len = i32::try_from(values.len())
        .map_err(|_| ArrowError::ComputeError("a dictionary past i32 keys".into()))?;
    let keys: Int32Array = (0..len)
        .map(Some)
        .chain(with_null.then_some(None))
        .collect();
    Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
        keys,
        values.clone(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn plain_and_dictionary_columns_get_the_same_local_ids() -> Result<(), ArrowError> {
        let plain: ArrayRef = Arc::new(StringArray::from(vec![
            Some("b"),
            Some("a"),
            None,
            Some("b"),
        ]));
        let mut local = LocalKeys::default();
        local.build(&plain)?;
        assert_eq!(local.id_of_row, vec![0, 1, 2, 0]);
        let distinct = local.distinct(&plain)?;
        assert_eq!(
            distinct.as_string::<i32>().iter().collect::<Vec<_>>(),
            vec![Some("b"), Some("a"), None]
        );

        let dict: ArrayRef = Arc::new(
            vec![Some("b"), Some("a"), None, Some("b")]
                .into_iter()
                .collect::<DictionaryArray<Int32Type>>(),
        );
        local.build(&dict)?;
        let distinct = local.distinct(&dict)?;
        assert_eq!(distinct.data_type(), dict.data_type());
        let ids: Vec<u32> = local.id_of_row.clone();
        let names: Vec<Option<String>> = ids
            .iter()
            .map(|&id| {
                let d = distinct.as_dictionary::<Int32Type>();
                let values = d.values().as_string::<i32>();
                d.keys().is_valid(id as usize).then(|| {
                    values
                        .value(d.keys().value(id as usize) as usize)
                        .to_string()
                })
            })
            .collect();
        assert_eq!(
            names,
            vec![Some("b".into()), Some("a".into()), None, Some("b".into())]
        );
        Ok(())
    }
}
