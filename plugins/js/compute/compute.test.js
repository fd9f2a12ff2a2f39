// compute as weir calls it: i64 arithmetic wraps as Rust's does, `%` is Rust's checked_rem,
// doubles are IEEE's, and `2.0` in the config is a double where `2` is an integer.

import assert from "node:assert/strict";
import { test } from "node:test";

import { float64, int32, int64 } from "weir-plugin";
import { TransformCalls } from "weir-plugin/calls";
import { Field, Schema } from "weir-plugin/schema";
import { decodeColumn, encodeColumn, splitColumns } from "weir-plugin/wire";
import "./plugin.js";

const MIN = -(2n ** 63n);
const MAX = 2n ** 63n - 1n;
const INPUT = new Schema([new Field("a", int64), new Field("b", int64), new Field("s", int32), new Field("x", float64)]);
const COLUMNS = [
  [MAX, MIN, 7n, null, -7n, 3n, 2n ** 40n],
  [1n, -1n, 0n, 1n, 2n, null, 2n ** 30n],
  [1, -1, 0, 5, 2, 3, -4],
  [0.5, null, 2, 3, -0, 1e308, 1.5],
];

function run(config) {
  const calls = new TransformCalls();
  calls.init(config);
  const output = Schema.fromBytes(calls.outputSchema(INPUT.toBytes()));
  const [, buffers] = calls.process(7, INPUT.fields.flatMap((f, i) => encodeColumn(f, COLUMNS[i])));
  const parts = splitColumns(output, buffers);
  const field = output.fields[4];
  return [field.type, decodeColumn(field, parts[4])];
}

test("integer operations wrap at 64 bits and % by zero or of MIN by -1 is null", () => {
  const cases = {
    "+": [MIN, MAX, 7n, null, -5n, null, 2n ** 40n + 2n ** 30n],
    "-": [MAX - 1n, MIN + 1n, 7n, null, -9n, null, 2n ** 40n - 2n ** 30n],
    "*": [MAX, MIN, 0n, null, -14n, null, 0n],
    "%": [0n, null, null, null, -1n, null, 0n],
  };
  for (const [op, expected] of Object.entries(cases)) {
    const [type, values] = run(JSON.stringify({ output: "r", left: "a", op, right: "b" }));
    assert.ok(type.equals(int64));
    assert.deepEqual(values, expected, op);
  }
});

test("small integer columns and constants stay integers", () => {
  const [type, values] = run('{"output":"r","left":"s","op":"%","right":3}');
  assert.ok(type.equals(int64));
  assert.deepEqual(values, [1n, -1n, 0n, 2n, 2n, 0n, -1n]);
});

test("a double anywhere, or /, gives doubles with IEEE results", () => {
  let [type, values] = run('{"output":"r","left":"s","op":"*","right":2.0}');
  assert.ok(type.equals(float64));
  assert.deepEqual(values, [2, -2, 0, 10, 4, 6, -8]);
  [, values] = run('{"output":"r","left":"x","op":"/","right":"s"}');
  assert.deepEqual(values, [0.5, null, Infinity, 0.6, -0, 1e308 / 3, -0.375]);
  [, values] = run('{"output":"r","left":"a","op":"/","right":1}');
  assert.deepEqual(values, [9223372036854775807, -9223372036854775808, 7, null, -7, 3, 2 ** 40]);
});

test("a config it cannot run is refused when the stage loads", () => {
  const calls = new TransformCalls();
  assert.throws(() => calls.init('{"output":"r","left":"a","op":"^","right":1}'), /op `\^` is not one of/);
  calls.init('{"output":"r","left":"nope","op":"+","right":1}');
  assert.throws(() => calls.outputSchema(INPUT.toBytes()), /the input has no column `nope`/);
});
