//! The RocksDB implementation of [`Store`]: the only file that imports `rocksdb`.

use super::{Store, StoreError, WriteOp, WriteSet};
use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use std::path::Path;

/// One embedded RocksDB database under the state directory, shared by all pipelines.
pub struct RocksStore {
    db: DB,
    /// Held while the store is open for writing: one weir process per state directory.
    _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.db.path())
            .finish()
    }
}

fn engine_error(err: rocksdb::Error) -> StoreError {
    StoreError::Engine(err.into_string())
}

impl RocksStore {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<RocksStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|err| {
            StoreError::Engine(format!(
                "cannot create state directory {}: {err}",
                dir.display()
            ))
        })?;
        // Our own lock, taken before RocksDB's, so that "another weir has it" is known for what
        // it is rather than recognised in the text of RocksDB's error.
        let lock_path = dir.join("weir.lock");
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|err| {
                StoreError::Engine(format!("cannot open {}: {err}", lock_path.display()))
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: dir.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(StoreError::Engine(format!(
                    "cannot lock {}: {err}",
                    lock_path.display()
                )));
            }
        }
        let mut options = Options::default();
        options.create_if_missing(true);
        // The state of a few pipelines is small; keep RocksDB's footprint modest.
        options.set_max_background_jobs(2);
        options.set_keep_log_file_num(3);
        options.set_max_log_file_size(1 << 20);
        // Every commit rewrites the states of the groups it touched, so the memtable fills with
        // versions of the same keys. A small one keeps each insert's skiplist walk in cache:
        // with 100k groups per commit, 8 MiB instead of the default 64 MiB halves the write
        // (see BENCHMARKS.md, aggregation).
        options.set_write_buffer_size(8 << 20);
        DB::open(&options, dir)
            .map(|db| RocksStore {
                db,
                _lock: Some(lock),
            })
            .map_err(engine_error)
    }
}

impl RocksStore {
    /// Opens the database in `dir` for reading only, without taking its lock: it works while
    /// a daemon has it open, and sees what that daemon had flushed or logged when it opened.
    /// Writes fail. For checks that must not disturb (`weir check`, `weir state list` beside
    /// a daemon).
    pub fn open_read_only(dir: &Path) -> Result<RocksStore, StoreError> {
        let options = Options::default();
        DB::open_for_read_only(&options, dir, false)
            .map(|db| RocksStore { db, _lock: None })
            .map_err(engine_error)
    }
}

impl Store for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(key).map_err(engine_error)
    }

    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if reverse {
            let iter = self.db.iterator(IteratorMode::From(to, Direction::Reverse));
            for item in iter {
                let (key, value) = item.map_err(engine_error)?;
                // Reverse seek lands on the last key <= `to`; `to` itself is excluded.
                if &*key >= to {
                    continue;
                }
                if &*key < from || !visit(&key, &value) {
                    break;
                }
            }
        } else {
            let iter = self
                .db
                .iterator(IteratorMode::From(from, Direction::Forward));
            for item in iter {
                let (key, value) = item.map_err(engine_error)?;
                if &*key >= to || !visit(&key, &value) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn approximate_disk_bytes(&self, from: &[u8], to: &[u8]) -> Option<u64> {
        // The SST files only: RocksDB's C API leaves out the memtable (at most a few MiB, see
        // `set_write_buffer_size`) and the write-ahead log, which hold what was written last.
        let range = rocksdb::Range::new(from, to);
        self.db.get_approximate_sizes(&[range]).first().copied()
    }

    fn write(&self, changes: WriteSet, sync: bool) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        // The memtable's skiplist reuses its last insert position, so keys in order insert much
        // faster than keys in hash order (see BENCHMARKS.md, aggregation).
        for op in changes.into_key_ordered_ops() {
            match op {
                WriteOp::Put(key, value) => batch.put(key, value),
                WriteOp::Delete(key) => batch.delete(key),
                // RocksDB refuses a range whose end precedes its start; it is empty.
                WriteOp::DeleteRange(from, to) if from < to => batch.delete_range(from, to),
                WriteOp::DeleteRange(..) => {}
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(batch, &options).map_err(engine_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes no compressor shrinks (a xorshift sequence), so sizes on disk are comparable.
    fn incompressible(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn disk_bytes_of_a_key_range_come_within_a_fifth_of_what_was_written_there_once_flushed()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let written = |prefix: u8, keys: u64| -> Result<u64, StoreError> {
            let store = RocksStore::open(dir.path())?;
            let mut ws = WriteSet::default();
            for i in 0..keys {
                let mut key = vec![prefix];
                key.extend_from_slice(&i.to_be_bytes());
                ws.put(key, incompressible(1000, i + 1));
            }
            store.write(ws, true)?;
            Ok(keys * 1009)
        };
        let a = written(b'a', 2000)?;
        let b = written(b'b', 200)?;
        // Opening again replays the write-ahead log into files: what the C API measures.
        let store = RocksStore::open(dir.path())?;
        let measured = |from: &[u8], to: &[u8]| store.approximate_disk_bytes(from, to).unwrap_or(0);
        let within_a_fifth = |got: u64, want: u64| got * 5 >= want * 4 && got * 5 <= want * 6;
        let (got_a, got_b) = (measured(b"a", b"b"), measured(b"b", b"c"));
        assert!(
            within_a_fifth(got_a, a),
            "{got_a} bytes on disk for {a} written"
        );
        assert!(
            within_a_fifth(got_b, b),
            "{got_b} bytes on disk for {b} written"
        );
        assert_eq!(measured(b"c", b"d"), 0);
        Ok(())
    }

    #[test]
    fn write_sets_apply_puts_and_deletes_and_scans_are_key_ordered_both_ways()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = RocksStore::open(dir.path())?;
        let mut ws = WriteSet::default();
        for k in [b"a1", b"a2", b"a3", b"b1"] {
            ws.put(k.to_vec(), k.to_vec());
        }
        store.write(ws, true)?;
        let mut seen = Vec::new();
        store.scan(b"a", b"b", false, &mut |k, _| {
            seen.push(k.to_vec());
            true
        })?;
        assert_eq!(seen, vec![b"a1".to_vec(), b"a2".to_vec(), b"a3".to_vec()]);
        let mut last = None;
        store.scan(b"a", b"b", true, &mut |k, _| {
            last = Some(k.to_vec());
            false
        })?;
        assert_eq!(last, Some(b"a3".to_vec()));
        let mut ws = WriteSet::default();
        ws.delete_range(b"a1".to_vec(), b"a3".to_vec());
        ws.delete(b"b1".to_vec());
        store.write(ws, false)?;
        let mut left = Vec::new();
        store.scan(b"", b"z", false, &mut |k, _| {
            left.push(k.to_vec());
            true
        })?;
        assert_eq!(left, vec![b"a3".to_vec()]);
        Ok(())
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused_clearly()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let _first = RocksStore::open(dir.path())?;
        match RocksStore::open(dir.path()) {
            Err(err @ StoreError::Locked { .. }) => {
                let message = err.to_string();
                assert!(
                    message.contains(&dir.path().display().to_string()),
                    "the message names the folder: {message}"
                );
                Ok(())
            }
            other => panic!("expected Locked, got {other:?}"),
        }
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        /// Keys from a small alphabet, so that puts, deletes and ranges overlap often.
        fn key() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(0u8..4, 0..4)
        }

        fn op() -> impl Strategy<Value = WriteOp> {
            prop_oneof![
                4 => (key(), proptest::collection::vec(any::<u8>(), 0..3))
                    .prop_map(|(k, v)| WriteOp::Put(k, v)),
                2 => key().prop_map(WriteOp::Delete),
                1 => (key(), key()).prop_map(|(a, b)| WriteOp::DeleteRange(a, b)),
            ]
        }

        fn apply(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, op: &WriteOp) {
            match op {
                WriteOp::Put(k, v) => {
                    model.insert(k.clone(), v.clone());
                }
                WriteOp::Delete(k) => {
                    model.remove(k);
                }
                WriteOp::DeleteRange(from, to) => {
                    model.retain(|k, _| k < from || k >= to);
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// Any sequence of write sets leaves the store holding what a sorted map given the
            /// same changes in the same order holds, seen through gets and scans both ways.
            #[test]
            fn the_store_behaves_like_a_sorted_map(
                sets in proptest::collection::vec(proptest::collection::vec(op(), 0..24), 1..8),
                bounds in (key(), key()),
            ) {
                let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
                let store = RocksStore::open(dir.path()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut model = BTreeMap::new();
                for (i, ops) in sets.iter().enumerate() {
                    let mut ws = WriteSet::default();
                    for op in ops {
                        match op {
                            WriteOp::Put(k, v) => ws.put(k.clone(), v.clone()),
                            WriteOp::Delete(k) => ws.delete(k.clone()),
                            WriteOp::DeleteRange(a, b) => ws.delete_range(a.clone(), b.clone()),
                        }
                        apply(&mut model, op);
                    }
                    store.write(ws, i % 2 == 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                let mut all = Vec::new();
                store.scan(b"", &[u8::MAX], false, &mut |k, v| {
                    all.push((k.to_vec(), v.to_vec()));
                    true
                }).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(&all, &expected);
                for k in model.keys().chain(std::iter::once(&bounds.0)) {
                    let got = store.get(k).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(got.as_ref(), model.get(k));
                }
                let (from, to) = bounds;
                let mut forward = Vec::new();
                store.scan(&from, &to, false, &mut |k, _| {
                    forward.push(k.to_vec());
                    true
                }).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let in_range: Vec<_> = model.keys().filter(|k| **k >= from && **k < to).cloned().collect();
                prop_assert_eq!(&forward, &in_range);
                let mut backward = Vec::new();
                store.scan(&from, &to, true, &mut |k, _| {
                    backward.push(k.to_vec());
                    true
                }).map_err(|e| TestCaseError::fail(e.to_string()))?;
                backward.reverse();
                prop_assert_eq!(&backward, &in_range);
            }
        }
    }
}
