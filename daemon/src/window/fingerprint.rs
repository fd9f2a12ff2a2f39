//! The text the aggregation's fingerprint is made of, written by weir itself: never the
//! `Display` or `Debug` output of Arrow's or the standard library's types, which may change
//! between their versions — and a changed fingerprint would refuse every stored state after an
//! upgrade. The texts are the ones weir has stored since its first release (they were Arrow
//! 60's and std's output then), so states written before this module still match.

use crate::config::WindowKind;
use arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit, UnionMode};
use std::time::Duration;

fn unit(u: &TimeUnit) -> &'static str {
    match u {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "µs",
        TimeUnit::Nanosecond => "ns",
    }
}

fn nullability(field: &Field) -> &'static str {
    if field.is_nullable() { "" } else { "non-null " }
}

fn field(field: &Field) -> String {
    format!(
        "{:?}: {}{}",
        field.name(),
        nullability(field),
        data_type(field.data_type())
    )
}

fn list(kind: &str, item: &Field) -> String {
    let name = if item.name() == "item" {
        String::new()
    } else {
        format!(", field: '{}'", item.name())
    };
    format!(
        "{kind}({}{}{name})",
        nullability(item),
        data_type(item.data_type())
    )
}

/// A data type's text (what a group key's type contributes). Field metadata is not part of it:
/// it does not change how a value is stored.
pub fn data_type(t: &DataType) -> String {
    match t {
        DataType::Null => "Null".into(),
        DataType::Boolean => "Boolean".into(),
        DataType::Int8 => "Int8".into(),
        DataType::Int16 => "Int16".into(),
        DataType::Int32 => "Int32".into(),
        DataType::Int64 => "Int64".into(),
        DataType::UInt8 => "UInt8".into(),
        DataType::UInt16 => "UInt16".into(),
        DataType::UInt32 => "UInt32".into(),
        DataType::UInt64 => "UInt64".into(),
        DataType::Float16 => "Float16".into(),
        DataType::Float32 => "Float32".into(),
        DataType::Float64 => "Float64".into(),
        DataType::Timestamp(u, Some(tz)) => format!("Timestamp({}, {:?})", unit(u), tz.as_ref()),
        DataType::Timestamp(u, None) => format!("Timestamp({})", unit(u)),
        DataType::Date32 => "Date32".into(),
        DataType::Date64 => "Date64".into(),
        DataType::Time32(u) => format!("Time32({})", unit(u)),
        DataType::Time64(u) => format!("Time64({})", unit(u)),
        DataType::Duration(u) => format!("Duration({})", unit(u)),
        DataType::Interval(u) => format!(
            "Interval({})",
            match u {
                IntervalUnit::YearMonth => "YearMonth",
                IntervalUnit::DayTime => "DayTime",
                IntervalUnit::MonthDayNano => "MonthDayNano",
            }
        ),
        DataType::Binary => "Binary".into(),
        DataType::FixedSizeBinary(n) => format!("FixedSizeBinary({n})"),
        DataType::LargeBinary => "LargeBinary".into(),
        DataType::BinaryView => "BinaryView".into(),
        DataType::Utf8 => "Utf8".into(),
        DataType::LargeUtf8 => "LargeUtf8".into(),
        DataType::Utf8View => "Utf8View".into(),
        DataType::List(item) => list("List", item),
        DataType::ListView(item) => list("ListView", item),
        DataType::LargeList(item) => list("LargeList", item),
        DataType::LargeListView(item) => list("LargeListView", item),
        DataType::FixedSizeList(item, size) => {
            let name = if item.name() == "item" {
                String::new()
            } else {
                format!(", field: '{}'", item.name())
            };
            format!(
                "FixedSizeList({size} x {}{}{name})",
                nullability(item),
                data_type(item.data_type())
            )
        }
        DataType::Struct(fields) => {
            let fields: Vec<String> = fields.iter().map(|f| field(f)).collect();
            format!("Struct({})", fields.join(", "))
        }
        DataType::Union(fields, mode) => {
            let mode = match mode {
                UnionMode::Sparse => "Sparse",
                UnionMode::Dense => "Dense",
            };
            let fields: Vec<String> = fields
                .iter()
                .map(|(id, f)| format!("{id}: ({})", field(f)))
                .collect();
            if fields.is_empty() {
                format!("Union({mode})")
            } else {
                format!("Union({mode}, {})", fields.join(", "))
            }
        }
        DataType::Dictionary(keys, values) => {
            format!("Dictionary({}, {})", data_type(keys), data_type(values))
        }
        DataType::Decimal32(p, s) => format!("Decimal32({p}, {s})"),
        DataType::Decimal64(p, s) => format!("Decimal64({p}, {s})"),
        DataType::Decimal128(p, s) => format!("Decimal128({p}, {s})"),
        DataType::Decimal256(p, s) => format!("Decimal256({p}, {s})"),
        DataType::Map(entries, sorted) => format!(
            "Map({}, {})",
            field(entries),
            if *sorted { "sorted" } else { "unsorted" }
        ),
        DataType::RunEndEncoded(run_ends, values) => format!(
            "RunEndEncoded({}{}, {}{})",
            nullability(run_ends),
            data_type(run_ends.data_type()),
            nullability(values),
            data_type(values.data_type())
        ),
    }
}

/// A duration's text, as `std`'s `Debug` wrote it: whole seconds `10s`, fractions `1.5s`, under
/// a second `500ms` (`1.25ms` under a millisecond's precision).
pub fn duration(d: Duration) -> String {
    fn trimmed(whole: u128, fraction: u128, digits: usize, suffix: &str) -> String {
        if fraction == 0 {
            return format!("{whole}{suffix}");
        }
        let text = format!("{fraction:0digits$}");
        format!("{whole}.{}{suffix}", text.trim_end_matches('0'))
    }
    let nanos = d.as_nanos();
    if nanos >= 1_000_000_000 {
        trimmed(nanos / 1_000_000_000, nanos % 1_000_000_000, 9, "s")
    } else if nanos >= 1_000_000 {
        trimmed(nanos / 1_000_000, nanos % 1_000_000, 6, "ms")
    } else if nanos >= 1_000 {
        trimmed(nanos / 1_000, nanos % 1_000, 3, "µs")
    } else {
        format!("{nanos}ns")
    }
}

/// A window's text: `Tumbling { size: 10s }`, `Sliding { size: 10s, slide: 5s }`,
/// `Session { gap: 30s }`.
pub fn window(kind: &WindowKind) -> String {
    match kind {
        WindowKind::Tumbling { size } => format!("Tumbling {{ size: {} }}", duration(*size)),
        WindowKind::Sliding { size, slide } => format!(
            "Sliding {{ size: {}, slide: {} }}",
            duration(*size),
            duration(*slide)
        ),
        WindowKind::Session { gap } => format!("Session {{ gap: {} }}", duration(*gap)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Fields;
    use std::sync::Arc;

    #[test]
    fn type_texts_are_fixed() {
        let cases: Vec<(DataType, &str)> = vec![
            (DataType::Utf8, "Utf8"),
            (DataType::Int64, "Int64"),
            (DataType::Float64, "Float64"),
            (DataType::Boolean, "Boolean"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "Timestamp(µs, \"UTC\")",
            ),
            (
                DataType::Timestamp(TimeUnit::Millisecond, None),
                "Timestamp(ms)",
            ),
            (DataType::Decimal128(10, 2), "Decimal128(10, 2)"),
            (
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                "List(Int64)",
            ),
            (
                DataType::Struct(Fields::from(vec![
                    Field::new("a", DataType::Int64, true),
                    Field::new("b", DataType::Utf8, false),
                ])),
                "Struct(\"a\": Int64, \"b\": non-null Utf8)",
            ),
            (
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                "Dictionary(Int32, Utf8)",
            ),
        ];
        for (t, text) in cases {
            assert_eq!(data_type(&t), text, "{t:?}");
        }
    }

    #[test]
    fn durations_read_as_they_always_have() {
        for (d, text) in [
            (Duration::from_secs(10), "10s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(3600), "3600s"),
            (Duration::from_micros(1250), "1.25ms"),
            (Duration::from_millis(10_001), "10.001s"),
        ] {
            assert_eq!(duration(d), text);
        }
        assert_eq!(
            window(&WindowKind::Sliding {
                size: Duration::from_secs(10),
                slide: Duration::from_millis(2500)
            }),
            "Sliding { size: 10s, slide: 2.5s }"
        );
    }
}
