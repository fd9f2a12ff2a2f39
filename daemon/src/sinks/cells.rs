//! How one Arrow value prints in the console table: Spark's casts to string.
//!
//! Timestamps print in the local time zone as `yyyy-MM-dd HH:mm:ss` with the fraction's trailing
//! zeros dropped; doubles as Java's `Double.toString` (shortest round trip, always a `.`, `E`
//! notation outside 1e-3..1e7); structs as `{a, b}`; lists as `[a, b]`; nulls as `null`.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Timelike, Utc};
use std::fmt::Write;

/// Formats cells; holds the time zone timestamps are shown in.
#[derive(Debug, Clone, Copy, Default)]
pub struct CellFormatter {
    /// Show timestamps in UTC instead of the local zone.
    pub utc: bool,
}

/// Java's `Double.toString`.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = v.abs();
    if v == 0.0 || (1e-3..1e7).contains(&abs) {
        let s = v.to_string();
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        scientific(format!("{v:e}"))
    }
}

/// Java's `Float.toString`.
pub fn java_float(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = v.abs();
    if v == 0.0 || (1e-3..1e7).contains(&abs) {
        let s = v.to_string();
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        scientific(format!("{v:e}"))
    }
}

fn scientific(rust: String) -> String {
    let (mantissa, exponent) = rust.split_once('e').unwrap_or((&rust, "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exponent}")
    } else {
        format!("{mantissa}.0E{exponent}")
    }
}

impl CellFormatter {
    /// Formats value `row` of `array` into `out`.
    pub fn write(&self, out: &mut String, array: &dyn Array, row: usize) {
        if array.is_null(row) {
            out.push_str("null");
            return;
        }
        let _ = match array.data_type() {
            DataType::Utf8 => out.write_str(array.as_string::<i32>().value(row)),
            DataType::LargeUtf8 => out.write_str(array.as_string::<i64>().value(row)),
            DataType::Utf8View => out.write_str(array.as_string_view().value(row)),
            DataType::Boolean => write!(out, "{}", array.as_boolean().value(row)),
            DataType::Int8 => write!(out, "{}", array.as_primitive::<Int8Type>().value(row)),
            DataType::Int16 => write!(out, "{}", array.as_primitive::<Int16Type>().value(row)),
            DataType::Int32 => write!(out, "{}", array.as_primitive::<Int32Type>().value(row)),
            DataType::Int64 => write!(out, "{}", array.as_primitive::<Int64Type>().value(row)),
            DataType::UInt8 => write!(out, "{}", array.as_primitive::<UInt8Type>().value(row)),
            DataType::UInt16 => write!(out, "{}", array.as_primitive::<UInt16Type>().value(row)),
            DataType::UInt32 => write!(out, "{}", array.as_primitive::<UInt32Type>().value(row)),
            DataType::UInt64 => write!(out, "{}", array.as_primitive::<UInt64Type>().value(row)),
            DataType::Float32 => {
                out.write_str(&java_float(array.as_primitive::<Float32Type>().value(row)))
            }
            DataType::Float64 => {
                out.write_str(&java_double(array.as_primitive::<Float64Type>().value(row)))
            }
            DataType::Date32 => match array.as_primitive::<Date32Type>().value_as_date(row) {
                Some(date) => write!(out, "{}", date.format("%Y-%m-%d")),
                None => out.write_str("null"),
            },
            DataType::Timestamp(unit, _) => {
                let micros = match unit {
                    TimeUnit::Second => array
                        .as_primitive::<TimestampSecondType>()
                        .value(row)
                        .saturating_mul(1_000_000),
                    TimeUnit::Millisecond => array
                        .as_primitive::<TimestampMillisecondType>()
                        .value(row)
                        .saturating_mul(1000),
                    TimeUnit::Microsecond => {
                        array.as_primitive::<TimestampMicrosecondType>().value(row)
                    }
                    TimeUnit::Nanosecond => {
                        array.as_primitive::<TimestampNanosecondType>().value(row) / 1000
                    }
                };
                self.write_timestamp(out, micros);
                Ok(())
            }
            DataType::Struct(_) => {
                let s = array.as_struct();
                out.push('{');
                for (i, column) in s.columns().iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.write(out, column.as_ref(), row);
                }
                out.push('}');
                Ok(())
            }
            DataType::List(_) => {
                let values = array.as_list::<i32>().value(row);
                self.write_list(out, values.as_ref());
                Ok(())
            }
            DataType::LargeList(_) => {
                let values = array.as_list::<i64>().value(row);
                self.write_list(out, values.as_ref());
                Ok(())
            }
            DataType::Binary => {
                let bytes = array.as_binary::<i32>().value(row);
                out.push('[');
                for (i, b) in bytes.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    let _ = write!(out, "{b:02X}");
                }
                out.push(']');
                Ok(())
            }
            _ => match arrow::util::display::ArrayFormatter::try_new(array, &Default::default()) {
                Ok(f) => write!(out, "{}", f.value(row)),
                Err(_) => out.write_str("?"),
            },
        };
    }

    fn write_list(&self, out: &mut String, values: &dyn Array) {
        out.push('[');
        for i in 0..values.len() {
            if i > 0 {
                out.push_str(", ");
            }
            self.write(out, values, i);
        }
        out.push(']');
    }

    /// `yyyy-MM-dd HH:mm:ss[.fraction]`, fraction without trailing zeros.
    pub fn write_timestamp(&self, out: &mut String, micros: i64) {
        let Some(utc) = DateTime::<Utc>::from_timestamp_micros(micros) else {
            let _ = write!(out, "{micros}");
            return;
        };
        let local: NaiveDateTime = if self.utc {
            utc.naive_utc()
        } else {
            Local.from_utc_datetime(&utc.naive_utc()).naive_local()
        };
        let _ = write!(out, "{}", local.format("%Y-%m-%d %H:%M:%S"));
        let micros_of_second = local.nanosecond() / 1000;
        if micros_of_second > 0 {
            let fraction = format!("{micros_of_second:06}");
            out.push('.');
            out.push_str(fraction.trim_end_matches('0'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_does() {
        let cases = [
            (4.0, "4.0"),
            (4.875, "4.875"),
            (5.3076923076923075, "5.3076923076923075"),
            (1.0e20, "1.0E20"),
            (1.0e7, "1.0E7"),
            (9_999_999.0, "9999999.0"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1.5e-5, "1.5E-5"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (v, want) in cases {
            assert_eq!(java_double(v), want, "{v}");
        }
        assert_eq!(java_float(4.5), "4.5");
        assert_eq!(java_float(1.0e10), "1.0E10");
    }

    #[test]
    fn timestamps_drop_trailing_zeros_of_the_fraction() {
        let f = CellFormatter { utc: true };
        let base = 1_697_997_088_000_000; // 2023-10-22 17:51:28 UTC
        for (micros, want) in [
            (base, "2023-10-22 17:51:28"),
            (base + 436_000, "2023-10-22 17:51:28.436"),
            (base + 400_000, "2023-10-22 17:51:28.4"),
            (base + 123_456, "2023-10-22 17:51:28.123456"),
        ] {
            let mut s = String::new();
            f.write_timestamp(&mut s, micros);
            assert_eq!(s, want);
        }
    }
}
