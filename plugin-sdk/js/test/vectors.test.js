// The vectors shared with the other SDKs (`plugin-sdk/vectors/`): this SDK reads what Rust
// writes, writes the same column bytes, and writes the schema bytes the Python SDK writes.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as t from "weir-plugin/schema";
import { Field, Schema } from "weir-plugin/schema";
import { decodeColumn, encodeColumn } from "weir-plugin/wire";

const VECTORS = new URL("../../vectors/", import.meta.url);
const TYPES = new Map(
  [
    t.bool, t.int8, t.int16, t.int32, t.int64, t.uint8, t.uint32, t.uint64, t.float32, t.float64,
    t.utf8, t.largeUtf8, t.binary, t.date32, t.timestamp("ms", "UTC"), t.duration("us"), t.nullType,
  ].map((ty) => [String(ty), ty]),
);
const WIDE = new Set(["int64", "uint64", "timestamp[ms, UTC]", "duration[us]"]);

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"));

// JSON numbers past 2^53 would lose their last digits: they are read as strings, then BigInt.
function loadRust() {
  const text = readFileSync(new URL("rust.json", VECTORS), "utf8").replace(/(?<=[[,\s])(-?\d{16,})(?=[,\s\]])/g, '"$1"');
  return JSON.parse(text);
}

const fieldOf = (column) => new Field(column.name, TYPES.get(column.type), column.nullable);

function valuesOf(column) {
  if (column.type === "binary") return column.values.map((v) => (v === null ? null : unhex(v)));
  if (WIDE.has(column.type)) return column.values.map((v) => (v === null ? null : BigInt(v)));
  return column.values;
}

const schemaOf = (vectors) => new Schema(vectors.columns.map(fieldOf));

test("the columns rust writes decode into their values", () => {
  for (const column of loadRust().columns) {
    const buffers = column.buffers.map(unhex);
    assert.deepEqual(decodeColumn(fieldOf(column), buffers), valuesOf(column), column.type);
  }
});

test("the values encode into the bytes rust writes", () => {
  for (const column of loadRust().columns) {
    const encoded = encodeColumn(fieldOf(column), valuesOf(column)).map(hex);
    assert.deepEqual(encoded, column.buffers, column.type);
  }
});

test("the schema rust writes reads as every column with its type and nullability", () => {
  const vectors = loadRust();
  assert.ok(Schema.fromBytes(unhex(vectors.schema)).equals(schemaOf(vectors)));
});

test("the schema this sdk writes is byte for byte the one the python sdk writes", () => {
  const written = JSON.parse(readFileSync(new URL("python-schema.json", VECTORS), "utf8"));
  assert.equal(hex(schemaOf(loadRust()).toBytes()), written.schema);
});
