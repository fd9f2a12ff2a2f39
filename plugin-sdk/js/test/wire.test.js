import assert from "node:assert/strict";
import { test } from "node:test";

import * as t from "weir-plugin/schema";
import { Field, Schema } from "weir-plugin/schema";
import { Bitmap, WireError, decodeColumn, encodeColumn, encodeTyped, filterColumn, splitColumns, typedColumn } from "weir-plugin/wire";

const CASES = [
  [t.bool, [true, null, false, true, false, false, true, true, null, true]],
  [t.int8, [-128, 127, null, 0]],
  [t.int16, [-32768, null, 32767]],
  [t.int32, [1, null, -(2 ** 31), 2 ** 31 - 1]],
  [t.int64, [null, -(2n ** 63n), 2n ** 63n - 1n, 0n]],
  [t.uint8, [0, 255, null]],
  [t.uint32, [0, 2 ** 32 - 1]],
  [t.uint64, [2n ** 64n - 1n, null]],
  [t.float32, [1.5, null, -0.25]],
  [t.float64, [3.141592653589793, null, Infinity, -0]],
  [t.utf8, ["a", null, "", "ünïcode ✓", "x".repeat(100)]],
  [t.largeUtf8, ["b", null]],
  [t.binary, [Uint8Array.of(0, 255), null, new Uint8Array()]],
  [t.date32, [19000, null]],
  [t.timestamp("ms", "UTC"), [1_764_547_200_000n, null]],
  [t.duration("us"), [5n, null]],
  [t.nullType, [null, null, null]],
];

const header = (...words) => new Uint8Array(new Uint32Array(words).buffer);
const words = (bytes) => Array.from(new Uint32Array(bytes.slice().buffer));

test("every handled type comes back with its values and nulls", () => {
  for (const [ty, values] of CASES) {
    const field = new Field("c", ty);
    assert.deepEqual(decodeColumn(field, encodeColumn(field, values)), values, String(ty));
  }
});

test("a column without nulls sends no validity bitmap", () => {
  const parts = encodeColumn(new Field("c", t.int64), [1n, 2n, 3n]);
  assert.deepEqual(words(parts[0]), [3, 0, 0, 0, 1, 0]);
  assert.equal(parts.length, 2);
});

test("an int64 column takes integral numbers as well as BigInt", () => {
  const field = new Field("c", t.int64);
  assert.deepEqual(decodeColumn(field, encodeColumn(field, [1, -2n, null])), [1n, -2n, null]);
  assert.throws(() => encodeColumn(field, [1.5]), WireError);
  assert.throws(() => encodeColumn(field, [2n ** 63n]), /out of range for int64/);
  assert.throws(() => encodeColumn(new Field("s", t.int8), [128]), /out of range for int8/);
});

test("a sliced column is read from its offset and validity offset", () => {
  const values = Array.from({ length: 20 }, (_, i) => i);
  values[13] = null;
  let parts = encodeColumn(new Field("c", t.int32), values);
  // The same buffers announced as rows 10..15: offset 10, validity from bit 10.
  parts[0] = header(5, 10, 10, 1, 1, 0);
  assert.deepEqual(decodeColumn(new Field("c", t.int32), parts), [10, 11, 12, null, 14]);
  const typed = typedColumn(new Field("c", t.int32), parts);
  assert.deepEqual(Array.from(typed.values), [10, 11, 12, 0, 14]);
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => typed.valid.get(i)), [true, true, true, false, true]);
  const strings = Array.from({ length: 12 }, (_, i) => String(i));
  parts = encodeColumn(new Field("s", t.utf8), strings);
  parts[0] = header(3, 9, 0, 0, 2, 0);
  assert.deepEqual(decodeColumn(new Field("s", t.utf8), parts), ["9", "10", "11"]);
});

test("buffers that are not aligned for their type are read all the same", () => {
  const parts = encodeColumn(new Field("c", t.float64), [1.5, -2]);
  const shifted = new Uint8Array(parts[1].length + 1);
  shifted.set(parts[1], 1);
  parts[1] = shifted.subarray(1);
  assert.deepEqual(decodeColumn(new Field("c", t.float64), parts), [1.5, -2]);
});

test("split groups buffers by column and refuses leftovers and shortfalls", () => {
  const a = new Field("a", t.int64);
  const b = new Field("b", t.utf8);
  const flat = [...encodeColumn(a, [1n, null]), ...encodeColumn(b, ["x", "y"])];
  const schema = new Schema([a, b]);
  assert.deepEqual(splitColumns(schema, flat).map((p) => p.length), [3, 3]);
  assert.throws(() => splitColumns(schema, [...flat, new Uint8Array()]), WireError);
  assert.throws(() => splitColumns(schema, flat.slice(0, -1)), WireError);
  assert.throws(() => splitColumns(schema, flat, 3), /column `a` has 2 rows, the batch 3/);
});

test("values of the wrong type name the column and the declared type", () => {
  assert.throws(() => encodeColumn(new Field("n", t.int64), [1n, "two"]), /column `n` is declared int64/);
  assert.throws(() => encodeColumn(new Field("s", t.utf8), ["a", 2]), /column `s` is declared utf8 but holds string/);
});

test("nulls in a not null column are refused", () => {
  assert.throws(() => encodeColumn(new Field("n", t.int64, false), [1n, null]), WireError);
});

test("offsets past the data and short buffers are wire errors", () => {
  let parts = encodeColumn(new Field("s", t.utf8), ["abc"]);
  parts[2] = new TextEncoder().encode("ab");
  assert.throws(() => decodeColumn(new Field("s", t.utf8), parts), WireError);
  parts = encodeColumn(new Field("n", t.int64), [1n, 2n]);
  parts[1] = parts[1].subarray(0, 12);
  assert.throws(() => decodeColumn(new Field("n", t.int64), parts), WireError);
  assert.throws(() => decodeColumn(new Field("n", t.int64), [new Uint8Array(10)]), WireError);
});

test("damaged buffers are wire errors, never another exception", () => {
  // (A null column's length is bounded by no buffer: `splitColumns` checks it against the
  // batch's rows before it is read.)
  for (const [ty, values] of CASES.filter(([ty]) => ty !== t.nullType)) {
    const field = new Field("c", ty);
    const good = encodeColumn(field, values);
    for (let part = 0; part < good.length; part++) {
      for (let i = 0; i < good[part].length; i++) {
        for (const flip of [0x01, 0x80, 0xff]) {
          const damaged = good.map((p) => p.slice());
          damaged[part][i] ^= flip;
          for (const read of [decodeColumn, (f, p) => filterColumn(f, p, [0]), typedColumn]) {
            try {
              read(field, damaged);
            } catch (err) {
              assert.ok(err instanceof WireError, `${ty}: ${err.stack}`);
            }
          }
        }
      }
    }
  }
});

test("a typed column goes out as its own bytes, with its validity", () => {
  const field = new Field("x", t.float64);
  const values = Float64Array.of(1, 2, 3);
  const parts = encodeTyped(field, values, [true, false, true]);
  assert.equal(parts[2].buffer, values.buffer);
  assert.deepEqual(decodeColumn(field, parts), [1, null, 3]);
  // Another typed array is converted value by value, and checked.
  assert.deepEqual(decodeColumn(new Field("n", t.int64), encodeTyped(new Field("n", t.int64), Int32Array.of(7, -1))), [7n, -1n]);
  assert.throws(() => encodeTyped(new Field("n", t.int64), Float64Array.of(0.5)), WireError);
});

test("filtering copies the kept rows of every type without decoding", () => {
  for (const [ty, values] of CASES) {
    const field = new Field("c", ty);
    const rows = values.map((_, i) => i).filter((i) => i % 2 === 0);
    const kept = filterColumn(field, encodeColumn(field, values), Uint32Array.from(rows));
    assert.deepEqual(decodeColumn(field, kept), rows.map((i) => values[i]), String(ty));
  }
});

test("a bitmap reads and writes bits from its offset", () => {
  const bits = Bitmap.from([true, false, true]);
  assert.deepEqual(Array.from(bits.bytes), [0b101]);
  assert.equal(bits.countUnset(), 1);
  assert.equal(Bitmap.and(bits, Bitmap.from([false, true, true])).countUnset(), 2);
  assert.equal(Bitmap.and(null, bits), bits);
});
