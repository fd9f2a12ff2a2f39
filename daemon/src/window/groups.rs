//! The group table: interns (window, key) pairs into dense group indices, vectorised per chunk.
//!
//! Keys are encoded with Arrow's row format (one buffer per chunk, order-preserving, any type),
//! hashed together with the window start, and looked up in a `HashTable` of indices; a row costs
//! a hash and a probe, never an allocation. Group values live in columns indexed by group.

use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::row::{Row, RowConverter, RowParser, Rows, SortField};
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hasher};

/// Dense, interned groups: window bounds and key per group index.
pub struct GroupTable {
    converter: RowConverter,
    hasher: foldhash::fast::FixedState,
    table: HashTable<u32>,
    hashes: Vec<u64>,
    starts: Vec<i64>,
    ends: Vec<i64>,
    keys: Rows,
    /// No grouping columns: a Null column stands in so every row has the same (empty) key.
    keyless: bool,
}

impl std::fmt::Debug for GroupTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupTable")
            .field("groups", &self.len())
            .finish()
    }
}

impl GroupTable {
    /// A table for keys with these types.
    pub fn new(mut key_fields: Vec<SortField>) -> Result<GroupTable, ArrowError> {
        let keyless = key_fields.is_empty();
        if keyless {
            key_fields.push(SortField::new(DataType::Null));
        }
        let converter = RowConverter::new(key_fields)?;
        let keys = converter.empty_rows(0, 0);
        Ok(GroupTable {
            converter,
            // A fixed seed: group order never depends on the process.
            hasher: foldhash::fast::FixedState::with_seed(0x5745_4952),
            table: HashTable::new(),
            hashes: Vec::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            keys,
            keyless,
        })
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Encodes a chunk's key columns.
    pub fn encode(&self, columns: &[ArrayRef], num_rows: usize) -> Result<Rows, ArrowError> {
        if self.keyless {
            return self
                .converter
                .convert_columns(&[new_null_array(&DataType::Null, num_rows)]);
        }
        self.converter.convert_columns(columns)
    }

    /// A parser for stored key bytes.
    pub fn parser(&self) -> RowParser {
        self.converter.parser()
    }

    /// The hash a group of (window start, key bytes) has; stable for the life of the process.
    pub fn hash(&self, start: i64, key: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_i64(start);
        h.write(key);
        h.finish()
    }

    /// The group of (window start, key), created with `end` if new. Returns (index, created).
    pub fn intern(&mut self, start: i64, end: i64, key: Row<'_>) -> (u32, bool) {
        let bytes = key.as_ref();
        let hash = self.hash(start, bytes);
        let (starts, keys) = (&self.starts, &self.keys);
        if let Some(&g) = self.table.find(hash, |&g| {
            starts[g as usize] == start && keys.row(g as usize).as_ref() == bytes
        }) {
            return (g, false);
        }
        let g = self.starts.len() as u32;
        self.starts.push(start);
        self.ends.push(end);
        self.hashes.push(hash);
        self.keys.push(key);
        let hashes = &self.hashes;
        self.table.insert_unique(hash, g, |&g| hashes[g as usize]);
        (g, true)
    }

    /// The hash of group `g` (see [`GroupTable::hash`]).
    pub fn group_hash(&self, g: u32) -> u64 {
        self.hashes[g as usize]
    }

    /// Window start of group `g`.
    pub fn start(&self, g: u32) -> i64 {
        self.starts[g as usize]
    }

    /// Window end of group `g`.
    pub fn end(&self, g: u32) -> i64 {
        self.ends[g as usize]
    }

    /// All window ends, by group.
    pub fn ends(&self) -> &[i64] {
        &self.ends
    }

    /// Changes a group's bounds (sessions grow); the group keeps its index.
    pub fn set_bounds(&mut self, g: u32, start: i64, end: i64) {
        let gi = g as usize;
        if self.starts[gi] != start {
            let old_hash = self.hashes[gi];
            if let Ok(entry) = self.table.find_entry(old_hash, |&x| x == g) {
                entry.remove();
            }
            self.starts[gi] = start;
            let hash = self.hash(start, self.keys.row(gi).as_ref());
            self.hashes[gi] = hash;
            let hashes = &self.hashes;
            self.table.insert_unique(hash, g, |&x| hashes[x as usize]);
        }
        self.ends[gi] = end;
    }

    /// Takes group `g` out of lookups (a session merged into another); its slot stays until
    /// the next `retain`.
    pub fn forget(&mut self, g: u32) {
        if let Ok(entry) = self.table.find_entry(self.hashes[g as usize], |&x| x == g) {
            entry.remove();
        }
    }

    /// The key of group `g`.
    pub fn key(&self, g: u32) -> Row<'_> {
        self.keys.row(g as usize)
    }

    /// The key columns of `groups`, in that order.
    pub fn key_columns(&self, groups: &[u32]) -> Result<Vec<ArrayRef>, ArrowError> {
        if self.keyless {
            return Ok(Vec::new());
        }
        self.converter
            .convert_rows(groups.iter().map(|&g| self.keys.row(g as usize)))
    }

    /// Keeps only groups with `keep[g]`; returns the new index of each old group.
    pub fn retain(&mut self, keep: &[bool]) -> Vec<Option<u32>> {
        let mut mapping = Vec::with_capacity(keep.len());
        let mut keys = self.converter.empty_rows(0, 0);
        let (mut starts, mut ends, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        for (g, &k) in keep.iter().enumerate() {
            if k {
                mapping.push(Some(starts.len() as u32));
                starts.push(self.starts[g]);
                ends.push(self.ends[g]);
                hashes.push(self.hashes[g]);
                keys.push(self.keys.row(g));
            } else {
                mapping.push(None);
            }
        }
        let mut table = HashTable::with_capacity(starts.len());
        for (g, &hash) in hashes.iter().enumerate() {
            table.insert_unique(hash, g as u32, |&x| hashes[x as usize]);
        }
        self.starts = starts;
        self.ends = ends;
        self.hashes = hashes;
        self.keys = keys;
        self.table = table;
        mapping
    }

    /// Approximate memory held, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.keys.size() + self.starts.len() * 24 + self.table.capacity() * 4
    }
}
