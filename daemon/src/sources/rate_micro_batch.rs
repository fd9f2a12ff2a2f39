//! `rate_micro_batch`: Spark's `rate-micro-batch` source. Every batch has exactly
//! `rows_per_batch` rows; all rows of source batch i carry the event time
//! `start_timestamp + i * advance_millis_per_batch`, independent of the wall clock.

use super::{CHUNK_ROWS, ReadLimit, Source, SourceError, SourceOffset, Wakeup};
use crate::config::RateMicroBatchSpec;
use crate::sources::rate::timestamp_type;
use arrow::array::{Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// The rate_micro_batch source.
#[derive(Debug)]
pub struct RateMicroBatchSource {
    spec: RateMicroBatchSpec,
    schema: SchemaRef,
    /// `available_now`: what exists is the one batch after the offset at start.
    available_now: bool,
    available_now_end: Option<u64>,
}

impl RateMicroBatchSource {
    /// A source for `spec`.
    pub fn new(spec: RateMicroBatchSpec) -> RateMicroBatchSource {
        let schema = Arc::new(Schema::new(vec![
            Field::new("timestamp", timestamp_type(), false),
            Field::new("value", DataType::Int64, false),
        ]));
        RateMicroBatchSource {
            spec,
            schema,
            available_now: false,
            available_now_end: None,
        }
    }
}

fn rows_of(offset: &SourceOffset) -> Result<u64, SourceError> {
    offset
        .get("rows")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| SourceError::BadOffset {
            offset: offset.to_string(),
            reason: "expected {\"rows\": N}".into(),
        })
}

impl Source for RateMicroBatchSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn initial_offset(&mut self) -> Result<SourceOffset, SourceError> {
        Ok(serde_json::json!({ "rows": 0 }))
    }

    fn latest_offset(
        &mut self,
        start: &SourceOffset,
        _limit: ReadLimit,
    ) -> Result<SourceOffset, SourceError> {
        let rows = rows_of(start)?;
        let mut next = rows.saturating_add(self.spec.rows_per_batch);
        if self.available_now {
            next = *self.available_now_end.get_or_insert(next);
        }
        Ok(serde_json::json!({ "rows": next.max(rows) }))
    }

    fn read(
        &mut self,
        start: &SourceOffset,
        end: &SourceOffset,
    ) -> Result<Vec<RecordBatch>, SourceError> {
        let end_offset = end;
        let (start, end) = (rows_of(start)?, rows_of(end)?);
        super::check_row_range(end, end_offset)?;
        let mut batches = Vec::new();
        let mut row = start;
        while row < end {
            let chunk_end = end.min(row.saturating_add(CHUNK_ROWS as u64));
            // Chunks never cross a source batch: then one event time serves the whole chunk.
            let source_batch = row / self.spec.rows_per_batch.max(1);
            let chunk_end = chunk_end.min(
                source_batch
                    .saturating_add(1)
                    .saturating_mul(self.spec.rows_per_batch),
            );
            let micros = self
                .spec
                .start_timestamp_ms
                .saturating_add(
                    (source_batch as i64).saturating_mul(self.spec.advance_millis_per_batch),
                )
                .saturating_mul(1000);
            let len = (chunk_end - row) as usize;
            let values = Int64Array::from_iter_values(row as i64..chunk_end as i64);
            let times = TimestampMicrosecondArray::from_value(micros, len).with_timezone("UTC");
            batches.push(RecordBatch::try_new(
                self.schema.clone(),
                vec![Arc::new(times), Arc::new(values)],
            )?);
            row = chunk_end;
        }
        Ok(batches)
    }

    fn prepare_available_now(&mut self) {
        self.available_now = true;
    }

    fn wakeup(&self, _at: &SourceOffset) -> Wakeup {
        // There is always a next batch.
        Wakeup::Poll(std::time::Duration::ZERO)
    }
}
