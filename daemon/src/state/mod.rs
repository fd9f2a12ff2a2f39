//! Durable storage: a small key-value [`Store`] trait with atomic write sets, and the checkpoint
//! (offsets log and commit log) built on it. Only `rocks.rs` knows RocksDB.

mod checkpoint;
mod rocks;

pub use checkpoint::{CHECKPOINT_FORMAT, Checkpoint, CheckpointError, CommitEntry, OffsetsEntry};
pub use rocks::RocksStore;

use std::sync::Arc;

/// A storage failure: the disk, the database or its lock.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database.
    #[error(
        "state directory {path} is in use by another weir process (only one may open it at a time)"
    )]
    Locked {
        /// The state directory.
        path: String,
    },
    /// Any other failure of the storage engine (I/O errors, a full disk, corruption).
    #[error("state store error: {0}")]
    Engine(String),
}

/// One atomic group of changes.
#[derive(Debug, Default, Clone)]
pub struct WriteSet {
    ops: Vec<WriteOp>,
}

/// A change inside a [`WriteSet`].
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Set a key.
    Put(Vec<u8>, Vec<u8>),
    /// Remove a key.
    Delete(Vec<u8>),
    /// Remove every key in `[from, to)`.
    DeleteRange(Vec<u8>, Vec<u8>),
}

impl WriteOp {
    /// The key of a put or delete; a range delete has none.
    fn point_key(&self) -> &[u8] {
        match self {
            WriteOp::Put(key, _) | WriteOp::Delete(key) => key,
            WriteOp::DeleteRange(..) => &[],
        }
    }
}

impl WriteSet {
    /// Sets a key.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put(key.into(), value.into()));
    }

    /// Removes a key.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete(key.into()));
    }

    /// Removes every key in `[from, to)`.
    pub fn delete_range(&mut self, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::DeleteRange(from.into(), to.into()));
    }

    /// The changes, in order.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// The changes, in an order with the same effect that a sorted store applies fastest: each
    /// run of point changes between two range deletes is sorted by key. Changes to different
    /// keys commute, and the sort is stable, so changes to one key keep their order.
    pub fn into_key_ordered_ops(mut self) -> Vec<WriteOp> {
        for run in self
            .ops
            .split_mut(|op| matches!(op, WriteOp::DeleteRange(..)))
        {
            run.sort_by(|a, b| a.point_key().cmp(b.point_key()));
        }
        self.ops
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Moves all of `other`'s changes to the end of this set.
    pub fn append(&mut self, other: &mut WriteSet) {
        self.ops.append(&mut other.ops);
    }
}

/// Ordered key-value storage with atomic, optionally synced, write sets.
pub trait Store: Send + Sync {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Visits keys in `[from, to)` in order (or in reverse) until `visit` returns false.
    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;

    /// Applies all changes atomically; with `sync`, they are on disk when this returns.
    fn write(&self, changes: WriteSet, sync: bool) -> Result<(), StoreError>;

    /// Approximate bytes the keys in `[from, to)` take in the store's files on disk, or `None`
    /// when the store cannot tell. Cheap (index metadata, no data read): called after every
    /// commit.
    fn approximate_disk_bytes(&self, from: &[u8], to: &[u8]) -> Option<u64> {
        let _ = (from, to);
        None
    }
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;

/// Keys of one pipeline live under `p\0<name>\0`; names cannot contain NUL, so no pipeline's
/// keys are a prefix of another's.
pub fn pipeline_prefix(pipeline: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(pipeline.len() + 3);
    key.extend_from_slice(b"p\0");
    key.extend_from_slice(pipeline.as_bytes());
    key.push(0);
    key
}

/// Names of the pipelines that have anything in the store (a part a pipeline runs under a
/// name of its own, `<pipeline>/repartition`, is not listed: it is that pipeline's).
pub fn pipelines(store: &SharedStore) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    let mut from = b"p\0".to_vec();
    let end = prefix_end(b"p\0");
    loop {
        let mut next = None;
        store.scan(&from, &end, false, &mut |key, _| {
            next = Some(key.to_vec());
            false
        })?;
        let Some(key) = next else { break };
        let rest = &key[2..];
        let Some(len) = rest.iter().position(|b| *b == 0) else {
            break;
        };
        let name = String::from_utf8_lossy(&rest[..len]).into_owned();
        // Skip everything of this pipeline: its prefix's end.
        from = prefix_end(&pipeline_prefix(&name));
        if !name.contains('/') {
            names.push(name);
        }
    }
    Ok(names)
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(ops: &[WriteOp]) -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                WriteOp::Put(k, v) => format!(
                    "put {}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                ),
                WriteOp::Delete(k) => format!("del {}", String::from_utf8_lossy(k)),
                WriteOp::DeleteRange(f, t) => format!(
                    "range {}..{}",
                    String::from_utf8_lossy(f),
                    String::from_utf8_lossy(t)
                ),
            })
            .collect()
    }

    #[test]
    fn key_ordering_sorts_between_range_deletes_and_keeps_each_keys_history() {
        let mut ws = WriteSet::default();
        ws.put(*b"c", *b"1");
        ws.put(*b"a", *b"1");
        ws.delete(*b"c");
        ws.put(*b"c", *b"2");
        ws.put(*b"b", *b"1");
        ws.delete_range(*b"a", *b"c");
        ws.put(*b"b", *b"2");
        ws.put(*b"a", *b"2");
        assert_eq!(
            describe(&ws.into_key_ordered_ops()),
            [
                "put a=1",
                "put b=1",
                "put c=1",
                "del c",
                "put c=2",
                "range a..c",
                "put a=2",
                "put b=2"
            ]
        );
    }
}
