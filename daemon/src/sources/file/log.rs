//! The file source's durable records in the state store: the file log (which files, in which
//! order, make up the source's offsets: batch N reads log entries `[start, end)`), the set of
//! files already taken (so a restart reads nothing twice), and the inferred schema.
//!
//! Keys, under the pipeline's prefix: `S F <seq, u64 BE>` → a logged file; `S n` → the next
//! sequence number; `S P <path>` → the modification time of a file already taken; `S T` → the
//! schema inferred when the checkpoint began (Arrow IPC).

use crate::state::{SharedStore, StoreError, WriteSet, pipeline_prefix, prefix_end};
use arrow::datatypes::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const ENTRY: u8 = b'F';
const NEXT: u8 = b'n';
const SEEN: u8 = b'P';
const SCHEMA: u8 = b'T';

/// One file as the log knows it: what a batch reads is `size` bytes of `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Absolute path.
    pub path: PathBuf,
    /// Size when it was taken; a replay reads exactly these bytes.
    pub size: u64,
    /// Modification time when it was taken, ms since the epoch.
    pub mtime_ms: i64,
}

/// A log record that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("file source log entry is damaged: {0}")]
pub struct Corrupt(String);

/// One pipeline's file log.
#[derive(Clone)]
pub struct FileLog {
    store: SharedStore,
    prefix: Vec<u8>,
}

impl std::fmt::Debug for FileLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileLog")
    }
}

impl FileLog {
    /// The log of `pipeline`.
    pub fn new(store: SharedStore, pipeline: &str) -> FileLog {
        let mut prefix = pipeline_prefix(pipeline);
        prefix.push(b'S');
        FileLog { store, prefix }
    }

    fn key(&self, kind: u8, rest: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 1 + rest.len());
        key.extend_from_slice(&self.prefix);
        key.push(kind);
        key.extend_from_slice(rest);
        key
    }

    fn entry_key(&self, seq: u64) -> Vec<u8> {
        self.key(ENTRY, &seq.to_be_bytes())
    }

    fn seen_key(&self, path: &Path) -> Vec<u8> {
        self.key(SEEN, path.as_os_str().as_bytes())
    }

    /// The sequence number the next logged file gets.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .store
            .get(&self.key(NEXT, &[]))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Durably appends `files` as entries `first..`, and marks them taken.
    pub fn append(&self, first: u64, files: &[FileEntry]) -> Result<(), StoreError> {
        let mut ws = WriteSet::default();
        for (i, file) in files.iter().enumerate() {
            ws.put(
                self.entry_key(first + i as u64),
                serde_json::to_vec(file).unwrap_or_default(),
            );
            ws.put(
                self.seen_key(&file.path),
                file.mtime_ms.to_be_bytes().to_vec(),
            );
        }
        ws.put(
            self.key(NEXT, &[]),
            (first + files.len() as u64).to_be_bytes().to_vec(),
        );
        self.store.write(ws, true)
    }

    /// Entries `[from, to)` still in the log, with their sequence numbers.
    pub fn entries(&self, from: u64, to: u64) -> Result<Vec<(u64, FileEntry)>, FileLogError> {
        let mut raw = Vec::new();
        if from < to {
            self.store.scan(
                &self.entry_key(from),
                &self.entry_key(to),
                false,
                &mut |k, v| {
                    raw.push((k.to_vec(), v.to_vec()));
                    true
                },
            )?;
        }
        let at = self.prefix.len() + 1;
        raw.into_iter()
            .map(|(key, value)| {
                let seq = key
                    .get(at..at + 8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| Corrupt("bad key".into()))?;
                let entry = serde_json::from_slice(&value).map_err(|e| Corrupt(e.to_string()))?;
                Ok((seq, entry))
            })
            .collect()
    }

    /// Removes entries below `to` (their batches committed); `forget` also drops them from the
    /// taken set, for files that were moved away or deleted.
    pub fn remove_below(&self, to: u64, forget: &[&Path]) -> Result<(), StoreError> {
        let mut ws = WriteSet::default();
        ws.delete_range(self.entry_key(0), self.entry_key(to));
        for path in forget {
            ws.delete(self.seen_key(path));
        }
        self.store.write(ws, false)
    }

    /// Every file taken so far, with its modification time.
    pub fn seen(&self) -> Result<HashMap<PathBuf, i64>, StoreError> {
        let from = self.key(SEEN, &[]);
        let mut seen = HashMap::new();
        let skip = from.len();
        self.store
            .scan(&from, &prefix_end(&from), false, &mut |k, v| {
                let path = PathBuf::from(std::ffi::OsStr::from_bytes(&k[skip..]));
                let mtime = <[u8; 8]>::try_from(v).map_or(0, i64::from_be_bytes);
                seen.insert(path, mtime);
                true
            })?;
        Ok(seen)
    }

    /// Forgets taken files (older than `max_file_age`: ignored anyway).
    pub fn forget(&self, paths: &[PathBuf]) -> Result<(), StoreError> {
        let mut ws = WriteSet::default();
        for path in paths {
            ws.delete(self.seen_key(path));
        }
        self.store.write(ws, false)
    }

    /// The schema stored when the checkpoint began, if any.
    pub fn schema(&self) -> Result<Option<SchemaRef>, FileLogError> {
        let Some(bytes) = self.store.get(&self.key(SCHEMA, &[]))? else {
            return Ok(None);
        };
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| Corrupt(format!("stored schema: {e}")))?;
        Ok(Some(reader.schema()))
    }

    /// Stores the schema a new checkpoint inferred.
    pub fn set_schema(&self, schema: &Schema) -> Result<(), FileLogError> {
        let mut bytes = Vec::new();
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, schema)
            .map_err(|e| Corrupt(format!("encoding the schema: {e}")))?;
        writer
            .finish()
            .map_err(|e| Corrupt(format!("encoding the schema: {e}")))?;
        drop(writer);
        let mut ws = WriteSet::default();
        ws.put(self.key(SCHEMA, &[]), bytes);
        self.store.write(ws, true)?;
        Ok(())
    }
}

/// Reading the file log failed.
#[derive(Debug, thiserror::Error)]
pub enum FileLogError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry is damaged.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RocksStore;
    use arrow::datatypes::{DataType, Field};
    use std::sync::Arc;

    #[test]
    fn entries_seen_files_and_schema_survive_reopening_and_remove_below_forgets_old_files()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
        let log = FileLog::new(store.clone(), "p");
        let file = |name: &str| FileEntry {
            path: PathBuf::from(format!("/in/{name}")),
            size: 10,
            mtime_ms: 5,
        };
        log.append(0, &[file("a"), file("b")])?;
        log.append(2, &[file("c")])?;
        // The store closed and opened again, as at a restart.
        drop(log);
        drop(store);
        let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
        let log = FileLog::new(store.clone(), "p");
        assert_eq!(log.next_seq()?, 3);
        let entries = log.entries(1, 3)?;
        assert_eq!(entries, vec![(1, file("b")), (2, file("c"))]);
        assert_eq!(log.seen()?.len(), 3);
        log.remove_below(2, &[Path::new("/in/a")])?;
        assert_eq!(log.entries(0, 3)?.len(), 1);
        assert_eq!(log.next_seq()?, 3);
        assert!(!log.seen()?.contains_key(Path::new("/in/a")));
        assert!(log.seen()?.contains_key(Path::new("/in/b")));

        assert!(log.schema()?.is_none());
        let schema = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        log.set_schema(&schema)?;
        drop(log);
        drop(store);
        let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
        let log = FileLog::new(store, "p");
        assert_eq!(log.schema()?.as_deref(), Some(&schema));
        Ok(())
    }
}
