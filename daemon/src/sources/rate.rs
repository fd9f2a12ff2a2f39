//! `rate`: Spark's test source. Columns `timestamp` (the row's due time) and `value` (its
//! offset), released once per second at `rows_per_second`, with an optional linear ramp-up.

use super::{
    CHUNK_ROWS, ReadLimit, ReleaseSchedule, ScheduledOffset, Source, SourceError, SourceOffset,
    Wakeup, now_ms, system_time_from_ms,
};
use crate::config::RateSpec;
use arrow::array::{Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// The rate source.
#[derive(Debug)]
pub struct RateSource {
    spec: RateSpec,
    schema: SchemaRef,
    /// Set by `prepare_available_now`: rows due at that moment are "available".
    frozen_now_ms: Option<i64>,
    /// Rows due that the last `latest_offset` left for later batches.
    backlog: u64,
}

/// The `timestamp` column type every time column of weir uses: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

impl RateSource {
    /// A rate source for `spec`.
    pub fn new(spec: RateSpec) -> RateSource {
        let schema = Arc::new(Schema::new(vec![
            Field::new("timestamp", timestamp_type(), false),
            Field::new("value", DataType::Int64, false),
        ]));
        RateSource {
            spec,
            schema,
            frozen_now_ms: None,
            backlog: 0,
        }
    }

    fn schedule(&self, start_ms: i64) -> ReleaseSchedule {
        ReleaseSchedule {
            rows_per_second: self.spec.rows_per_second,
            ramp_up_seconds: self.spec.ramp_up_seconds,
            start_ms,
        }
    }
}

impl Source for RateSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn initial_offset(&mut self) -> Result<SourceOffset, SourceError> {
        Ok(ScheduledOffset {
            rows: 0,
            start_ms: now_ms(),
        }
        .to_json())
    }

    fn latest_offset(
        &mut self,
        start: &SourceOffset,
        limit: ReadLimit,
    ) -> Result<SourceOffset, SourceError> {
        let start = ScheduledOffset::parse(start)?;
        let now = self.frozen_now_ms.unwrap_or_else(now_ms);
        let available = self.schedule(start.start_ms).rows_due(now).max(start.rows);
        let mut due = available;
        if let (ReadLimit::SourceLimits, Some(max)) = (limit, self.spec.max_rows_per_batch) {
            due = due.min(start.rows.saturating_add(max));
        }
        self.backlog = available - due;
        Ok(ScheduledOffset {
            rows: due,
            start_ms: start.start_ms,
        }
        .to_json())
    }

    fn read(
        &mut self,
        start: &SourceOffset,
        end: &SourceOffset,
    ) -> Result<Vec<RecordBatch>, SourceError> {
        let start = ScheduledOffset::parse(start)?;
        let end_offset = end;
        let end = ScheduledOffset::parse(end)?;
        super::check_row_range(end.rows, end_offset)?;
        let schedule = self.schedule(start.start_ms);
        let mut batches = Vec::new();
        let mut row = start.rows;
        while row < end.rows {
            let chunk_end = end.rows.min(row.saturating_add(CHUNK_ROWS as u64));
            let values = Int64Array::from_iter_values(row as i64..chunk_end as i64);
            let mut micros = Vec::with_capacity((chunk_end - row) as usize);
            for (ms, rows) in schedule.event_time_runs(row, chunk_end) {
                micros.extend(std::iter::repeat_n(ms.saturating_mul(1000), rows));
            }
            let times = TimestampMicrosecondArray::from(micros).with_timezone("UTC");
            batches.push(RecordBatch::try_new(
                self.schema.clone(),
                vec![Arc::new(times), Arc::new(values)],
            )?);
            row = chunk_end;
        }
        Ok(batches)
    }

    fn wakeup(&self, at: &SourceOffset) -> Wakeup {
        match ScheduledOffset::parse(at) {
            Ok(at) => Wakeup::At(system_time_from_ms(
                self.schedule(at.start_ms).next_release_ms(now_ms()),
            )),
            Err(_) => Wakeup::Poll(std::time::Duration::from_millis(100)),
        }
    }

    fn backlog(&self) -> Option<super::Backlog> {
        Some(super::Backlog {
            amount: self.backlog,
            unit: "rows".into(),
            parts: Vec::new(),
        })
    }

    fn prepare_available_now(&mut self) {
        self.frozen_now_ms = Some(now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

    #[test]
    fn values_are_offsets_and_timestamps_follow_the_schedule() -> Result<(), SourceError> {
        let mut source = RateSource::new(RateSpec {
            rows_per_second: 10,
            ramp_up_seconds: 0,
            max_rows_per_batch: None,
        });
        let start = ScheduledOffset {
            rows: 5,
            start_ms: 1_000_000,
        }
        .to_json();
        let end = ScheduledOffset {
            rows: 25,
            start_ms: 1_000_000,
        }
        .to_json();
        let batches = source.read(&start, &end)?;
        let batch = &batches[0];
        let values = batch.column(1).as_primitive::<Int64Type>();
        let times = batch.column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(values.len(), 20);
        for i in 0..20 {
            let v = values.value(i);
            assert_eq!(v, 5 + i as i64);
            assert_eq!(times.value(i), (1_000_000 + v * 100) * 1000);
        }
        Ok(())
    }

    #[test]
    fn max_rows_per_batch_bounds_the_latest_offset_and_the_rest_due_is_the_backlog()
    -> Result<(), SourceError> {
        let mut source = RateSource::new(RateSpec {
            rows_per_second: 1000,
            ramp_up_seconds: 0,
            max_rows_per_batch: Some(7),
        });
        let start = ScheduledOffset {
            rows: 0,
            start_ms: now_ms() - 10_000,
        }
        .to_json();
        let limited =
            ScheduledOffset::parse(&source.latest_offset(&start, ReadLimit::SourceLimits)?)?;
        assert_eq!(limited.rows, 7);
        // The rows due that the limit held back are the backlog: 10 s at 1000 rows/s, less 7.
        assert!(
            source
                .backlog()
                .is_some_and(|b| b.amount >= 10_000 - 7 && b.unit == "rows")
        );
        let all = ScheduledOffset::parse(&source.latest_offset(&start, ReadLimit::AllAvailable)?)?;
        assert!(all.rows >= 10_000);
        assert_eq!(source.backlog().map(|b| b.amount), Some(0));
        Ok(())
    }
}
