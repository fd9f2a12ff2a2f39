// Aggregates with `typedInputs`: each input reaches `update` as `{ values, valid }`, a typed array
// over the host's buffer and its validity, for every type the typed path supports.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Aggregate,
  Bitmap,
  bool,
  date32,
  duration,
  exportPlugin,
  float32,
  float64,
  int8,
  int16,
  int32,
  int64,
  timestamp,
  uint8,
  uint16,
  uint32,
  uint64,
  utf8,
} from "weir-plugin";
import { AggregateCalls, CallError } from "weir-plugin/calls";
import { Field } from "weir-plugin/schema";
import { decodeColumn, encodeColumn } from "weir-plugin/wire";

const EMPTY = new Uint8Array();

// Keeps what `update` was given, for the test to look at.
let seen = null;

function recorder(types) {
  class Recorder extends Aggregate {
    inputs = types;
    output = int64;
    typedInputs = true;

    update(states, columns) {
      seen = columns;
    }
  }
  exportPlugin(Recorder);
  const calls = new AggregateCalls();
  calls.init("{}");
  return calls;
}

const CASES = [
  [int8, Int8Array, [-128, null, 127]],
  [int16, Int16Array, [-32768, null, 32767]],
  [int32, Int32Array, [-(2 ** 31), null, 2 ** 31 - 1]],
  [int64, BigInt64Array, [-(2n ** 63n), null, 2n ** 63n - 1n]],
  [uint8, Uint8Array, [0, null, 255]],
  [uint16, Uint16Array, [0, null, 65535]],
  [uint32, Uint32Array, [0, null, 2 ** 32 - 1]],
  [uint64, BigUint64Array, [0n, null, 2n ** 64n - 1n]],
  [float32, Float32Array, [-1.5, null, 3.25]],
  [float64, Float64Array, [-0, null, 1e308]],
  [date32, Int32Array, [-1, null, 19000]],
  [timestamp("us", "UTC"), BigInt64Array, [-1n, null, 1700000000000000n]],
  [duration("ns"), BigInt64Array, [5n, null, -5n]],
];

test("every numeric, date and time type reaches update as its typed array and validity", () => {
  for (const [type, Type, values] of CASES) {
    const calls = recorder([type]);
    const column = encodeColumn(new Field("arg0", type), values);
    calls.update([EMPTY], 3, column, Uint32Array.of(0, 0, 0));
    const [{ values: got, valid }] = seen;
    assert.ok(got instanceof Type, `${type}: ${got.constructor.name}`);
    assert.equal(got.length, 3);
    assert.ok(valid instanceof Bitmap, `${type}`);
    assert.deepEqual([valid.get(0), valid.get(1), valid.get(2)], [true, false, true]);
    assert.deepEqual([got[0], got[2]], [values[0], values[2]], `${type}`);
    // Read in place: a view of the buffer the host sent, not a copy.
    assert.equal(got.buffer, column[column.length - 1].buffer, `${type}`);
  }
});

test("a column without nulls has valid null; booleans come as 0 and 1", () => {
  const calls = recorder([float64, bool]);
  const columns = [...encodeColumn(new Field("arg0", float64), [1, 2]), ...encodeColumn(new Field("arg1", bool), [true, null])];
  calls.update([EMPTY], 2, columns, Uint32Array.of(0, 0));
  assert.equal(seen[0].valid, null);
  assert.deepEqual(Array.from(seen[0].values), [1, 2]);
  assert.ok(seen[1].values instanceof Uint8Array);
  assert.equal(seen[1].values[0], 1);
  assert.deepEqual([seen[1].valid.get(0), seen[1].valid.get(1)], [true, false]);
});

test("typed inputs of a type without a typed array are refused at init", () => {
  class Strings extends Aggregate {
    inputs = [float64, utf8];
    output = float64;
    typedInputs = true;
  }
  exportPlugin(Strings);
  assert.throws(() => new AggregateCalls().init("{}"), (err) => err instanceof CallError && /typedInputs: input 1 is utf8/.test(err.message));
});

// The same sums written both ways: over arrays (the default), and over typed inputs.
class Sums extends Aggregate {
  inputs = [float64, int32];
  output = float64;

  initial() {
    return [0, 0];
  }

  update(states, [x, y], groupOfRow) {
    for (let i = 0; i < groupOfRow.length; i++) {
      if (x[i] === null || y[i] === null) continue;
      const s = states[groupOfRow[i]];
      s[0] += x[i] * y[i];
      s[1] += x[i];
    }
  }

  finish(states) {
    return states.map((s) => s[0] / s[1]);
  }
}

class TypedSums extends Sums {
  typedInputs = true;

  update(states, [x, y], groupOfRow) {
    const valid = Bitmap.and(x.valid, y.valid);
    for (let i = 0; i < groupOfRow.length; i++) {
      if (valid !== null && !valid.get(i)) continue;
      const s = states[groupOfRow[i]];
      s[0] += x.values[i] * y.values[i];
      s[1] += x.values[i];
    }
  }
}

test("an update over typed inputs gives the states the same update over arrays gives", () => {
  const n = 1000;
  let seed = 1;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const xs = Array.from({ length: n }, (_, i) => (i % 10 === 3 ? null : random() * 200 - 100));
  const ys = Array.from({ length: n }, (_, i) => (i % 7 === 2 ? null : Math.floor(random() * 1000) - 500));
  const columns = [...encodeColumn(new Field("arg0", float64), xs), ...encodeColumn(new Field("arg1", int32), ys)];
  const groups = Uint32Array.from({ length: n }, () => Math.floor(random() * 5));
  const states = [];
  for (const plugin of [Sums, TypedSums]) {
    exportPlugin(plugin);
    const calls = new AggregateCalls();
    calls.init("{}");
    const first = calls.update(Array(5).fill(EMPTY), n, columns, groups);
    const again = calls.update(first, n, columns, groups);
    states.push({ bytes: again.map((s) => new TextDecoder().decode(s)), out: decodeColumn(new Field("output", float64), calls.finish(again)) });
  }
  assert.deepEqual(states[1], states[0]);
  assert.ok(states[0].out.every((v) => typeof v === "number" && Number.isFinite(v)));
});
