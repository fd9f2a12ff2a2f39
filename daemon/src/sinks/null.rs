//! `null`: discards every batch (for benchmarks and dry runs).

use super::{Sink, SinkError};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// The null sink.
#[derive(Debug, Default)]
pub struct NullSink;

impl Sink for NullSink {
    fn write_batch(&mut self, _: u64, _: &SchemaRef, _: &[RecordBatch]) -> Result<(), SinkError> {
        Ok(())
    }
}
