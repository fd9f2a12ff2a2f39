//! Test vectors shared with the Python and JavaScript SDKs (`plugin-sdk/vectors/`), so that all
//! implementations of the wire format agree byte for byte, by test rather than by reading.
//!
//! `rust.json` holds what this crate writes: a schema of one column per handled type, and each
//! column's values with their wire buffers. The Python tests decode those buffers into the
//! values, and encode the values into the same bytes. `python-schema.json` holds the same schema
//! as the Python SDK writes it; this test reads it back. Set `WEIR_WRITE_VECTORS=1` to rewrite
//! `rust.json` after a deliberate change to the encoding.

use crate::wire::{encode_owned, schema_from_bytes, schema_to_bytes};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, DurationMicrosecondArray,
    Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, LargeStringArray,
    NullArray, StringArray, TimestampMillisecondArray, UInt8Array, UInt32Array, UInt64Array,
};
use arrow_schema::{Field, Schema};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Each case: the Python SDK's name of the type, the column, and its values as JSON.
fn cases() -> Vec<(&'static str, ArrayRef, Value)> {
    vec![
        (
            "bool",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false),
                Some(true),
                Some(false),
                Some(false),
                Some(true),
                Some(true),
                None,
                Some(true),
            ])),
            json!([
                true, null, false, true, false, false, true, true, null, true
            ]),
        ),
        (
            "int8",
            Arc::new(Int8Array::from(vec![Some(-128), Some(127), None, Some(0)])),
            json!([-128, 127, null, 0]),
        ),
        (
            "int16",
            Arc::new(Int16Array::from(vec![Some(i16::MIN), None, Some(i16::MAX)])),
            json!([i16::MIN, null, i16::MAX]),
        ),
        (
            "int32",
            Arc::new(Int32Array::from(vec![Some(1), None, Some(i32::MIN)])),
            json!([1, null, i32::MIN]),
        ),
        (
            "int64",
            Arc::new(Int64Array::from(vec![None, Some(i64::MIN), Some(i64::MAX)])),
            json!([null, i64::MIN, i64::MAX]),
        ),
        (
            "uint8",
            Arc::new(UInt8Array::from(vec![Some(0), Some(255), None])),
            json!([0, 255, null]),
        ),
        (
            "uint32",
            Arc::new(UInt32Array::from(vec![0, u32::MAX])),
            json!([0, u32::MAX]),
        ),
        (
            "uint64",
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), None])),
            json!([u64::MAX, null]),
        ),
        (
            "float32",
            Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
            json!([1.5, null, -0.25]),
        ),
        (
            "float64",
            Arc::new(Float64Array::from(vec![
                Some(std::f64::consts::PI),
                None,
                Some(-1e300),
            ])),
            json!([std::f64::consts::PI, null, -1e300]),
        ),
        (
            "utf8",
            Arc::new(StringArray::from(vec![
                Some("a"),
                None,
                Some(""),
                Some("ünïcode ✓"),
            ])),
            json!(["a", null, "", "ünïcode ✓"]),
        ),
        (
            "large_utf8",
            Arc::new(LargeStringArray::from(vec![Some("b"), None])),
            json!(["b", null]),
        ),
        (
            "binary",
            Arc::new(BinaryArray::from(vec![
                Some(&[0u8, 255][..]),
                None,
                Some(&[][..]),
            ])),
            json!(["00ff", null, ""]),
        ),
        (
            "date32",
            Arc::new(Date32Array::from(vec![Some(19_000), None])),
            json!([19_000, null]),
        ),
        (
            "timestamp[ms, UTC]",
            Arc::new(
                TimestampMillisecondArray::from(vec![Some(1_764_547_200_000), None])
                    .with_timezone("UTC"),
            ),
            json!([1_764_547_200_000i64, null]),
        ),
        (
            "duration[us]",
            Arc::new(DurationMicrosecondArray::from(vec![Some(5), None])),
            json!([5, null]),
        ),
        (
            "null",
            Arc::new(NullArray::new(3)),
            json!([null, null, null]),
        ),
    ]
}

fn schema() -> Schema {
    Schema::new(
        cases()
            .iter()
            .enumerate()
            .map(|(i, (_, array, _))| {
                Field::new(
                    format!("c{i}"),
                    array.data_type().clone(),
                    array.logical_null_count() > 0,
                )
            })
            .collect::<Vec<_>>(),
    )
}

/// The crate's folder as cargo names it to the running test (a binary built in a shared
/// target folder from another checkout then still reads this checkout's files), or as it
/// was at compile time.
fn vectors_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("vectors")
}

fn rust_vectors() -> Value {
    let schema = schema();
    let columns: Vec<Value> = cases()
        .into_iter()
        .zip(schema.fields())
        .map(|((name, array, values), field)| {
            let buffers = encode_owned(&[array.to_data()], &[field.name().as_str()])
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            json!({
                "name": field.name(),
                "type": name,
                "nullable": field.is_nullable(),
                "values": values,
                "buffers": buffers.iter().map(|b| hex(b)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let schema_bytes = schema_to_bytes(&schema).unwrap_or_else(|err| panic!("{err}"));
    json!({ "schema": hex(&schema_bytes), "columns": columns })
}

#[test]
fn the_checked_in_vectors_are_what_this_crate_writes_today() {
    let path = vectors_dir().join("rust.json");
    let now = rust_vectors();
    if std::env::var_os("WEIR_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&now).unwrap_or_default();
        std::fs::write(&path, text + "\n").unwrap_or_else(|err| panic!("{err}"));
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err} (WEIR_WRITE_VECTORS=1 writes it)", path.display()));
    let checked_in: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}"));
    // The columns byte for byte; the schema as a schema (the IPC writer's layout may change).
    assert_eq!(checked_in["columns"], now["columns"]);
    let schema_bytes = unhex(checked_in["schema"].as_str().unwrap_or_default());
    let read = schema_from_bytes(&schema_bytes).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(read.as_ref(), &schema());
}

#[test]
fn the_schema_the_python_sdk_writes_reads_here_as_the_same_schema() {
    let path = vectors_dir().join("python-schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err} (python3 -m tests.test_vectors --write, in plugin-sdk/python, writes it)",
            path.display()
        )
    });
    let written: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}"));
    let bytes = unhex(written["schema"].as_str().unwrap_or_default());
    let read = schema_from_bytes(&bytes).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(read.as_ref(), &schema());
}
