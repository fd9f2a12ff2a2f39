//! Timestamp columns of CSV files, parsed fast: Arrow's CSV decoder hands them over as text and
//! this module parses the common layouts (`2026-11-24 01:09:10`, `T` instead of the space,
//! fractions of a second, a trailing `Z`) directly into µs since the epoch, leaving anything
//! else (offsets such as `+02:00`, other layouts) to Arrow's own parser — so what is accepted,
//! and what is malformed, is exactly what Arrow accepts. Timestamp text was more than half the
//! cost of reading CSV (see BENCHMARKS.md).

use arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use arrow::compute::CastOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// Decode timestamp columns as text, then parse them here.
#[derive(Debug)]
pub struct TimestampsAsText {
    text: SchemaRef,
    target: SchemaRef,
    columns: Vec<usize>,
}

fn is_utc_micros(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC")
}

impl TimestampsAsText {
    /// `None` when `schema` has no UTC microsecond timestamp column (nothing to speed up).
    pub fn new(schema: &SchemaRef) -> Option<TimestampsAsText> {
        let columns: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| is_utc_micros(f.data_type()))
            .map(|(i, _)| i)
            .collect();
        if columns.is_empty() {
            return None;
        }
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                if is_utc_micros(f.data_type()) {
                    f.as_ref().clone().with_data_type(DataType::Utf8)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        Some(TimestampsAsText {
            text: Arc::new(Schema::new(fields)),
            target: schema.clone(),
            columns,
        })
    }

    /// The schema to decode with: timestamp columns as strings.
    pub fn text_schema(&self) -> &SchemaRef {
        &self.text
    }

    /// Turns a batch decoded with [`Self::text_schema`] into the real schema; an error names
    /// the first value neither parser accepts.
    pub fn finish(&self, batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for &i in &self.columns {
            let text = batch.column(i).as_string::<i32>();
            let target = self.target.field(i).data_type();
            let mut values = Vec::with_capacity(text.len());
            let mut fast = true;
            for value in text.iter() {
                match value {
                    None => values.push(0),
                    Some(s) => match parse_utc_micros(s) {
                        Some(us) => values.push(us),
                        None => {
                            // Not a layout this parser knows: Arrow parses the whole column.
                            fast = false;
                            break;
                        }
                    },
                }
            }
            columns[i] = if fast {
                let nulls = text.nulls().cloned();
                Arc::new(TimestampMicrosecondArray::new(values.into(), nulls).with_timezone("UTC"))
            } else {
                arrow::compute::cast_with_options(
                    batch.column(i),
                    target,
                    &CastOptions {
                        safe: false,
                        ..CastOptions::default()
                    },
                )
                .map_err(|err| {
                    ArrowError::ParseError(format!(
                        "column `{}`: {err}",
                        self.target.field(i).name()
                    ))
                })?
            };
        }
        RecordBatch::try_new(self.target.clone(), columns)
    }
}

fn digits<const N: usize>(b: &[u8], at: usize) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(at..at + N)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DD`, optionally followed by ` HH:MM:SS` or `THH:MM:SS`, optionally `.f` (1 to 9
/// digits) and `Z`: µs since the epoch, UTC. `None` for anything else (left to Arrow).
pub fn parse_utc_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits::<4>(b, 0)?, digits::<2>(b, 5)?, digits::<2>(b, 8)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let mut us = days_from_civil(i64::from(y), m, d) * 86_400_000_000;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(us);
    }
    if rest.len() < 9 || !(rest[0] == b' ' || rest[0] == b'T') || rest[3] != b':' || rest[6] != b':'
    {
        return None;
    }
    let (h, mi, sec) = (
        digits::<2>(rest, 1)?,
        digits::<2>(rest, 4)?,
        digits::<2>(rest, 7)?,
    );
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    us += (i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec)) * 1_000_000;
    rest = &rest[9..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let mut micros = 0i64;
        for (i, c) in frac[..n].iter().enumerate() {
            if i < 6 {
                micros = micros * 10 + i64::from(c - b'0');
            }
        }
        for _ in n..6 {
            micros *= 10;
        }
        us += micros;
        rest = &frac[n..];
    }
    match rest {
        [] | [b'Z'] | [b'z'] => Some(us),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    fn arrow_parse(s: &str) -> Option<i64> {
        let array: ArrayRef = Arc::new(StringArray::from(vec![s]));
        let target = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let options = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        let cast = arrow::compute::cast_with_options(&array, &target, &options).ok()?;
        Some(
            cast.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
        )
    }

    #[test]
    fn agrees_with_arrow_wherever_it_answers() {
        let mut cases = vec![
            "1970-01-01".to_string(),
            "1969-12-31 23:59:59.999999".into(),
            "2026-11-24 01:09:10".into(),
            "2026-11-24T01:09:10Z".into(),
            "2026-11-24T01:09:10.25".into(),
            "2026-11-24 01:09:10.123456789".into(),
            "2000-02-29 12:00:00".into(),
            "1900-03-01T00:00:00".into(),
            "0001-01-01 00:00:00".into(),
            "9999-12-31 23:59:59.999999Z".into(),
        ];
        // A spread of dates and times, including every month end.
        let mut state = 12345u64;
        for _ in 0..2000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let y = 1600 + (state >> 33) % 800;
            let m = 1 + (state >> 20) % 12;
            let d = 1 + (state >> 10) % u64::from(days_in_month(y as u32, m as u32));
            let (h, mi, s) = ((state >> 5) % 24, (state >> 40) % 60, (state >> 50) % 60);
            cases.push(format!(
                "{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03}",
                state % 1000
            ));
        }
        for case in &cases {
            let ours = parse_utc_micros(case);
            assert!(ours.is_some(), "{case} should take the fast path");
            assert_eq!(ours, arrow_parse(case), "{case}");
        }
        // Left to Arrow (offsets, other layouts) or malformed for both.
        for other in [
            "2026-11-24T01:09:10+02:00",
            "2026-02-30 00:00:00",
            "2026-11-24 24:00:00",
            "2026-11-24 01:09",
            "24/11/2026",
            "2026-11-24 01:09:10.",
            "2026-11-24 01:09:10.1234567890",
            "x",
            "",
        ] {
            assert_eq!(parse_utc_micros(other), None, "{other}");
        }
    }

    #[test]
    fn batches_convert_with_nulls_and_fall_back_to_arrow() -> Result<(), ArrowError> {
        let target: SchemaRef = Arc::new(Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )]));
        let plan = TimestampsAsText::new(&target)
            .ok_or_else(|| ArrowError::ParseError("no plan".into()))?;
        let text = |values: Vec<Option<&str>>| {
            RecordBatch::try_new(
                plan.text_schema().clone(),
                vec![Arc::new(StringArray::from(values)) as ArrayRef],
            )
        };
        let fast = plan.finish(text(vec![Some("1970-01-01 00:00:01"), None])?)?;
        let column = fast
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(column.value(0), 1_000_000);
        assert!(column.is_null(1));
        let offset = plan.finish(text(vec![Some("1970-01-01T02:00:00+02:00")])?)?;
        let column = offset
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(column.value(0), 0);
        let bad = plan.finish(text(vec![Some("1970-01-01"), Some("yesterday")])?);
        assert!(bad.is_err_and(|e| e.to_string().contains("column `t`")));
        Ok(())
    }
}
