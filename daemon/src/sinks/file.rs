//! `file`: one file per non-empty batch, `part-<batch id>-<checkpoint id>.<ext>`, in JSON lines,
//! CSV or Parquet.
//!
//! A batch's file is written to a hidden temporary name, synced, and renamed into place, so a
//! reader never sees half a file. A batch whose file already exists is skipped: replaying a
//! batch after a crash (same id, same rows) duplicates nothing. The checkpoint id keeps a reset
//! pipeline, whose batch ids start again from 0, from taking its old files for its own.

use super::{Sink, SinkError};
use crate::config::{FileFormat, FileSinkSpec};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file sink.
#[derive(Debug)]
pub struct FileSink {
    spec: FileSinkSpec,
    checkpoint_id: String,
}

impl FileSink {
    /// Creates the output directory if needed.
    pub fn open(spec: FileSinkSpec, checkpoint_id: &str) -> Result<FileSink, SinkError> {
        // Synced: a batch's file renamed into a folder that vanishes in a power loss is lost.
        crate::durable::create_dir_all(&spec.path).map_err(|source| SinkError::Io {
            path: spec.path.clone(),
            source,
        })?;
        Ok(FileSink {
            spec,
            checkpoint_id: checkpoint_id.to_string(),
        })
    }

    /// The final path of a batch's file.
    pub fn batch_path(&self, batch_id: u64) -> PathBuf {
        self.spec.path.join(format!(
            "part-{batch_id:010}-{}.{}",
            self.checkpoint_id,
            self.spec.format.extension()
        ))
    }

    /// Encodes `batches` into `file`. A failed write is reported as what it is (a full disk, say)
    /// with the file's path, even when it surfaces inside an encoder as an encoding error.
    fn encode(
        &self,
        file: File,
        path: &Path,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<File, SinkError> {
        let write_error = Arc::new(Mutex::new(None));
        let out = BufWriter::new(WriteErrorKeeper {
            file,
            first_error: write_error.clone(),
        });
        let encoded = match self.spec.format {
            FileFormat::Json => {
                let mut writer = arrow::json::LineDelimitedWriter::new(out);
                batches
                    .iter()
                    .try_for_each(|batch| writer.write(batch))
                    .and_then(|()| writer.finish())
                    .map_err(|err| err.to_string())
                    .map(|()| writer.into_inner())
            }
            FileFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(self.spec.header)
                    .build(out);
                batches
                    .iter()
                    .try_for_each(|batch| writer.write(batch))
                    .map_err(|err| err.to_string())
                    .map(|()| writer.into_inner())
            }
            FileFormat::Parquet => parquet::arrow::ArrowWriter::try_new(out, schema.clone(), None)
                .and_then(|mut writer| {
                    batches.iter().try_for_each(|batch| writer.write(batch))?;
                    writer.into_inner()
                })
                .map_err(|err| err.to_string()),
        };
        let flushed = encoded.and_then(|out| out.into_inner().map_err(|err| err.to_string()));
        match flushed {
            Ok(keeper) => Ok(keeper.file),
            Err(reason) => Err(match write_error.lock().ok().and_then(|mut e| e.take()) {
                Some(source) => SinkError::Io {
                    path: path.to_path_buf(),
                    source,
                },
                None => SinkError::Encode {
                    format: self.spec.format.extension(),
                    reason,
                },
            }),
        }
    }
}

/// Passes writes through to a file and keeps the first I/O error, which the encoders would
/// otherwise flatten into their own error types and messages.
struct WriteErrorKeeper {
    file: File,
    first_error: Arc<Mutex<Option<std::io::Error>>>,
}

impl WriteErrorKeeper {
    fn keep<T>(&self, result: std::io::Result<T>) -> std::io::Result<T> {
        result.inspect_err(|err| {
            if let Ok(mut first) = self.first_error.lock()
                && first.is_none()
            {
                *first = Some(std::io::Error::new(err.kind(), err.to_string()));
            }
        })
    }
}

impl Write for WriteErrorKeeper {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.file.write(buf);
        self.keep(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.file.flush();
        self.keep(result)
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Sink for FileSink {
    fn write_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), SinkError> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        let path = self.batch_path(batch_id);
        if path.exists() {
            tracing::debug!(batch_id, path = %path.display(), "batch already written; skipping the replay");
            return Ok(());
        }
        let tmp = self.spec.path.join(format!(
            ".part-{batch_id:010}-{}.{}.tmp",
            self.checkpoint_id,
            self.spec.format.extension()
        ));
        let file = File::create(&tmp).map_err(io_error(&tmp))?;
        let result = self
            .encode(file, &tmp, schema, batches)
            .and_then(|mut file| {
                file.flush().map_err(io_error(&tmp))?;
                file.sync_all().map_err(io_error(&tmp))
            });
        if let Err(err) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(err);
        }
        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
        // The rename is durable only once the directory entry is.
        File::open(&self.spec.path)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&self.spec.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    /// One non-null Int64 column `value` holding `values`.
    fn values(
        values: impl IntoIterator<Item = i64>,
    ) -> Result<(SchemaRef, RecordBatch), arrow::error::ArrowError> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "value",
            DataType::Int64,
            false,
        )]));
        let column = Arc::new(Int64Array::from_iter_values(values));
        let batch = RecordBatch::try_new(schema.clone(), vec![column])?;
        Ok((schema, batch))
    }

    #[test]
    fn writes_each_batch_once_in_every_format() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (schema, batch) = values([1, 2, 3])?;
        for format in [FileFormat::Json, FileFormat::Csv, FileFormat::Parquet] {
            let mut sink = FileSink::open(
                FileSinkSpec {
                    path: dir.path().join(format.extension()),
                    format,
                    header: true,
                },
                "c0ffee00",
            )?;
            sink.write_batch(7, &schema, std::slice::from_ref(&batch))?;
            let path = sink.batch_path(7);
            let first = std::fs::read(&path)?;
            // A replay with other rows must not touch the committed file.
            let other =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![9]))])?;
            sink.write_batch(7, &schema, &[other])?;
            assert_eq!(std::fs::read(&path)?, first);
            sink.write_batch(8, &schema, &[RecordBatch::new_empty(schema.clone())])?;
            assert!(!sink.batch_path(8).exists(), "empty batches write no file");
            let names: Vec<_> = std::fs::read_dir(dir.path().join(format.extension()))?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()?;
            assert_eq!(
                names,
                vec![format!("part-0000000007-c0ffee00.{}", format.extension())]
            );
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("json/part-0000000007-c0ffee00.json"))?,
            "{\"value\":1}\n{\"value\":2}\n{\"value\":3}\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("csv/part-0000000007-c0ffee00.csv"))?,
            "value\n1\n2\n3\n"
        );
        Ok(())
    }

    #[test]
    fn a_full_disk_is_reported_as_an_io_error_with_the_path()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        // Enough rows that every encoder writes through its buffer.
        let (schema, batch) = values(0..100_000)?;
        for format in [FileFormat::Json, FileFormat::Csv, FileFormat::Parquet] {
            let sink = FileSink::open(
                FileSinkSpec {
                    path: dir.path().to_path_buf(),
                    format,
                    header: true,
                },
                "c0ffee00",
            )?;
            // Every write to /dev/full fails with ENOSPC, as on a full file system.
            let full = File::options().write(true).open("/dev/full")?;
            let err = sink
                .encode(
                    full,
                    Path::new("/dev/full"),
                    &schema,
                    std::slice::from_ref(&batch),
                )
                .err()
                .ok_or("writing to /dev/full succeeded")?;
            let SinkError::Io { path, source } = &err else {
                panic!("{format:?}: expected an I/O error, got {err}");
            };
            assert_eq!(path, Path::new("/dev/full"));
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{err}");
            assert!(err.to_string().contains("No space left on device"), "{err}");
        }
        Ok(())
    }
}
