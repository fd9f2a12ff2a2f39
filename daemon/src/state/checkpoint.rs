//! The checkpoint of one pipeline: the offsets log (write-ahead: which range batch N reads) and
//! the commit log (batch N is done), as in Spark's `offsets/N` and `commits/N`.
//!
//! A batch is planned (offsets entry written and synced) before it reads anything, and committed
//! with everything it changed in one atomic write. On start, an offsets entry without a commit is
//! replayed with the same id and range.

use super::{SharedStore, StoreError, WriteSet, pipeline_prefix, prefix_end};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// How many planned and committed batches are kept, as Spark's `minBatchesToRetain`.
pub const BATCHES_TO_RETAIN: u64 = 100;

/// A checkpoint read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint was fenced: this run was abandoned, and a newer run owns the checkpoint.
    #[error("this run of the pipeline was abandoned; a newer run owns its checkpoint")]
    Fenced,
    /// An entry could not be decoded: the state directory is damaged or from another version.
    #[error("checkpoint entry {key} of pipeline `{pipeline}` is unreadable: {reason}")]
    Corrupt {
        /// Pipeline.
        pipeline: String,
        /// Which entry.
        key: String,
        /// Why.
        reason: String,
    },
}

/// The write-ahead record of a planned batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffsetsEntry {
    /// Batch id.
    pub batch_id: u64,
    /// Source offset the batch starts at.
    pub start: serde_json::Value,
    /// Source offset the batch ends at (exclusive).
    pub end: serde_json::Value,
    /// Wall-clock time the batch was planned, ms since the epoch.
    pub batch_timestamp_ms: i64,
    /// Event-time watermark in force for this batch, ms since the epoch.
    pub watermark_ms: Option<i64>,
}

/// The record that a batch finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitEntry {
    /// Batch id.
    pub batch_id: u64,
    /// Source offset reached.
    pub end: serde_json::Value,
    /// Watermark for the next batch.
    pub watermark_ms: Option<i64>,
    /// Wall-clock time of the commit.
    pub committed_at_ms: i64,
}

/// One pipeline's offsets and commit logs in the shared store.
///
/// Clones share a fence: once [`Checkpoint::fence`] returns, no clone plans or commits again.
/// A run of a pipeline that is abandoned (stuck past a deadline) is fenced so that its batch
/// can never commit after a newer run has opened the same checkpoint.
#[derive(Clone)]
pub struct Checkpoint {
    store: SharedStore,
    pipeline: String,
    prefix: Vec<u8>,
    fenced: Arc<Mutex<bool>>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

const OFFSETS: u8 = b'o';
const COMMITS: u8 = b'c';
const ID: u8 = b'i';
const SOURCE_KIND: u8 = b'k';
const FORMAT: u8 = b'v';

/// The layout of a pipeline's keys and entries (offsets and commit logs, source logs,
/// aggregation state) this weir writes. A checkpoint written in a newer format is refused,
/// never misread; a change of layout bumps it and keeps reading the older formats.
pub const CHECKPOINT_FORMAT: u32 = 1;

impl Checkpoint {
    /// The checkpoint of `pipeline`.
    pub fn new(store: SharedStore, pipeline: &str) -> Checkpoint {
        Checkpoint {
            store,
            pipeline: pipeline.to_string(),
            prefix: pipeline_prefix(pipeline),
            fenced: Arc::new(Mutex::new(false)),
        }
    }

    /// Writes `ws` unless the checkpoint is fenced; the fence waits for a write under way.
    fn write_unfenced(&self, ws: WriteSet) -> Result<(), CheckpointError> {
        // A poisoned lock means a writer panicked mid-write; the flag itself is still valid.
        let fenced = self.fenced.lock().unwrap_or_else(|e| e.into_inner());
        if *fenced {
            return Err(CheckpointError::Fenced);
        }
        self.store.write(ws, true)?;
        Ok(())
    }

    /// From now on no clone of this checkpoint plans or commits; returns once a plan or
    /// commit being written has landed.
    pub fn fence(&self) {
        *self.fenced.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// Whether [`Checkpoint::fence`] was called.
    pub fn is_fenced(&self) -> bool {
        *self.fenced.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store, for operators that keep state next to the checkpoint.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The key prefix every key of this pipeline starts with.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Approximate bytes all of the pipeline's keys (this checkpoint, its aggregation state, its
    /// source's logs) take in the store's files on disk; see
    /// [`Store::approximate_disk_bytes`](super::Store::approximate_disk_bytes).
    pub fn disk_bytes(&self) -> Option<u64> {
        self.store
            .approximate_disk_bytes(&self.prefix, &prefix_end(&self.prefix))
    }

    fn key(&self, log: u8, batch_id: u64) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.push(log);
        key.extend_from_slice(&batch_id.to_be_bytes());
        key
    }

    fn last<T: for<'de> Deserialize<'de>>(&self, log: u8) -> Result<Option<T>, CheckpointError> {
        let from = self.key(log, 0);
        let to = prefix_end(&[self.prefix.as_slice(), &[log]].concat());
        let mut found = None;
        self.store.scan(&from, &to, true, &mut |key, value| {
            found = Some((key.to_vec(), value.to_vec()));
            false
        })?;
        match found {
            None => Ok(None),
            Some((key, value)) => {
                serde_json::from_slice(&value)
                    .map(Some)
                    .map_err(|err| CheckpointError::Corrupt {
                        pipeline: self.pipeline.clone(),
                        key: String::from_utf8_lossy(&key[self.prefix.len()..]).into_owned(),
                        reason: err.to_string(),
                    })
            }
        }
    }

    /// The newest planned batch.
    pub fn last_planned(&self) -> Result<Option<OffsetsEntry>, CheckpointError> {
        self.last(OFFSETS)
    }

    /// The newest committed batch.
    pub fn last_committed(&self) -> Result<Option<CommitEntry>, CheckpointError> {
        self.last(COMMITS)
    }

    /// Durably records the plan of a batch before it reads anything.
    pub fn plan(&self, entry: &OffsetsEntry) -> Result<(), CheckpointError> {
        let mut ws = WriteSet::default();
        ws.put(self.key(OFFSETS, entry.batch_id), encode(entry));
        self.write_unfenced(ws)
    }

    /// Commits a batch together with `changes` (operator state) in one synced write, and drops
    /// log entries older than [`BATCHES_TO_RETAIN`].
    pub fn commit(
        &self,
        entry: &CommitEntry,
        mut changes: WriteSet,
    ) -> Result<(), CheckpointError> {
        let mut ws = WriteSet::default();
        ws.append(&mut changes);
        ws.put(self.key(COMMITS, entry.batch_id), encode(entry));
        if entry.batch_id >= BATCHES_TO_RETAIN && entry.batch_id.is_multiple_of(10) {
            let keep_from = entry.batch_id + 1 - BATCHES_TO_RETAIN;
            for log in [OFFSETS, COMMITS] {
                ws.delete_range(self.key(log, 0), self.key(log, keep_from));
            }
        }
        self.write_unfenced(ws)
    }

    /// The id of this checkpoint (Spark's query `id`), made when it is first asked for and kept
    /// until a reset. Files the pipeline writes carry it, so that after a reset, when batch ids
    /// start again from 0, new files never meet the old ones' names.
    pub fn id(&self) -> Result<String, CheckpointError> {
        let mut key = self.prefix.clone();
        key.push(ID);
        if let Some(id) = self.store.get(&key)? {
            return Ok(String::from_utf8_lossy(&id).into_owned());
        }
        let id = new_id(&self.pipeline);
        let mut ws = WriteSet::default();
        ws.put(key, id.as_bytes());
        self.store.write(ws, true)?;
        Ok(id)
    }

    /// The format the checkpoint was written in (1 for checkpoints from before it was recorded).
    pub fn format(&self) -> Result<u32, CheckpointError> {
        let mut key = self.prefix.clone();
        key.push(FORMAT);
        Ok(match self.store.get(&key)? {
            None => 1,
            Some(bytes) => <[u8; 4]>::try_from(bytes.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| CheckpointError::Corrupt {
                    pipeline: self.pipeline.clone(),
                    key: "v".into(),
                    reason: format!("{} bytes where a format number takes 4", bytes.len()),
                })?,
        })
    }

    /// Records that this checkpoint is in [`CHECKPOINT_FORMAT`] (when a newer weir opens it).
    pub fn record_format(&self) -> Result<(), CheckpointError> {
        let mut key = self.prefix.clone();
        key.push(FORMAT);
        if self.store.get(&key)?.as_deref() == Some(&CHECKPOINT_FORMAT.to_be_bytes()[..]) {
            return Ok(());
        }
        let mut ws = WriteSet::default();
        ws.put(key, CHECKPOINT_FORMAT.to_be_bytes().to_vec());
        self.write_unfenced(ws)
    }

    /// The source type (`rate`, `file`, ...) whose offsets this checkpoint holds, if recorded.
    pub fn source_kind(&self) -> Result<Option<String>, CheckpointError> {
        let mut key = self.prefix.clone();
        key.push(SOURCE_KIND);
        Ok(self
            .store
            .get(&key)?
            .map(|kind| String::from_utf8_lossy(&kind).into_owned()))
    }

    /// Records the source type whose offsets this checkpoint holds.
    pub fn record_source_kind(&self, kind: &str) -> Result<(), CheckpointError> {
        if self.source_kind()?.as_deref() == Some(kind) {
            return Ok(());
        }
        let mut key = self.prefix.clone();
        key.push(SOURCE_KIND);
        let mut ws = WriteSet::default();
        ws.put(key, kind.as_bytes());
        self.write_unfenced(ws)
    }

    /// Deletes everything this pipeline stored: checkpoint and state, and those of the parts
    /// it runs under names of its own (`<pipeline>/repartition`).
    pub fn reset(&self) -> Result<(), CheckpointError> {
        let mut ws = WriteSet::default();
        ws.delete_range(self.prefix.clone(), prefix_end(&self.prefix));
        let mut parts = self.prefix.clone();
        // `p\0<name>\0` → `p\0<name>/`.
        parts.pop();
        parts.push(b'/');
        ws.delete_range(parts.clone(), prefix_end(&parts));
        self.store.write(ws, true)?;
        Ok(())
    }
}

/// Eight hex digits, different for every call: std's hasher is seeded at random per process,
/// and the time and pipeline name vary it within one.
fn new_id(pipeline: &str) -> String {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    pipeline.hash(&mut hasher);
    std::time::SystemTime::now().hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    format!("{:08x}", hasher.finish() as u32)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs of numbers and JSON values cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RocksStore;
    use std::sync::Arc;

    fn entry(id: u64) -> OffsetsEntry {
        OffsetsEntry {
            batch_id: id,
            start: serde_json::json!(id * 10),
            end: serde_json::json!(id * 10 + 10),
            batch_timestamp_ms: 1,
            watermark_ms: None,
        }
    }

    #[test]
    fn finds_the_newest_entries_and_keeps_pipelines_apart() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
        let a = Checkpoint::new(store.clone(), "a");
        let ab = Checkpoint::new(store.clone(), "a.b");
        assert_eq!(a.last_planned()?, None);
        for id in 0..300 {
            a.plan(&entry(id))?;
            a.commit(
                &CommitEntry {
                    batch_id: id,
                    end: serde_json::json!(id),
                    watermark_ms: None,
                    committed_at_ms: 0,
                },
                WriteSet::default(),
            )?;
        }
        a.plan(&entry(300))?;
        ab.plan(&entry(7))?;
        assert_eq!(a.last_planned()?.map(|e| e.batch_id), Some(300));
        assert_eq!(a.last_committed()?.map(|e| e.batch_id), Some(299));
        assert_eq!(ab.last_planned()?.map(|e| e.batch_id), Some(7));
        assert_eq!(ab.last_committed()?, None);
        // Old entries are purged: only the retained window is left.
        let mut count = 0;
        let from = [a.prefix(), b"o"].concat();
        store.scan(&from, &prefix_end(&from), false, &mut |_, _| {
            count += 1;
            true
        })?;
        assert!(
            count <= BATCHES_TO_RETAIN as usize + 11,
            "{count} offsets entries kept"
        );
        a.reset()?;
        assert_eq!(a.last_planned()?, None);
        assert_eq!(ab.last_planned()?.map(|e| e.batch_id), Some(7));
        Ok(())
    }

    #[test]
    fn the_id_is_kept_until_a_reset() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
        let cp = Checkpoint::new(store.clone(), "p");
        let id = cp.id()?;
        assert_eq!(id.len(), 8);
        assert_eq!(Checkpoint::new(store.clone(), "p").id()?, id, "kept");
        assert_ne!(
            Checkpoint::new(store.clone(), "q").id()?,
            id,
            "per pipeline"
        );
        cp.reset()?;
        assert_ne!(cp.id()?, id, "a reset starts a new checkpoint");
        Ok(())
    }

    #[test]
    fn a_reset_deletes_the_parts_the_pipeline_runs_under_names_of_their_own_and_the_listing_shows_only_pipelines()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store: SharedStore = Arc::new(RocksStore::open(dir.path())?);
        let ids: Vec<String> = ["a", "a/repartition", "a-b", "ab"]
            .iter()
            .map(|name| Checkpoint::new(store.clone(), name).id())
            .collect::<Result<_, _>>()?;
        assert_eq!(crate::state::pipelines(&store)?, ["a", "a-b", "ab"]);
        Checkpoint::new(store.clone(), "a").reset()?;
        assert_ne!(
            Checkpoint::new(store.clone(), "a/repartition").id()?,
            ids[1],
            "deleted"
        );
        assert_eq!(Checkpoint::new(store.clone(), "a-b").id()?, ids[2], "kept");
        assert_eq!(Checkpoint::new(store.clone(), "ab").id()?, ids[3], "kept");
        Ok(())
    }
}
