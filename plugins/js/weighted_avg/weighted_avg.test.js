// weighted_avg as weir calls it: its typed update gives, to the last bit, the states of the
// plain loop over arrays that sums rows in order and skips a row whose value or weight is null
// (what the Rust weighted_avg does).

import assert from "node:assert/strict";
import { test } from "node:test";

import { exportPlugin, float64 } from "weir-plugin";
import { AggregateCalls } from "weir-plugin/calls";
import { Field } from "weir-plugin/schema";
import { decodeColumn, encodeColumn } from "weir-plugin/wire";
import { WeightedAvg } from "./plugin.js";

// The reference: the default array inputs, one row at a time.
class OverArrays extends WeightedAvg {
  typedInputs = false;

  update(states, [values, weights], groupOfRow) {
    for (let i = 0; i < groupOfRow.length; i++) {
      const v = values[i];
      const w = weights[i];
      if (v === null || w === null) continue;
      const state = states[groupOfRow[i]];
      state[0] += v * w;
      state[1] += w;
    }
  }
}

const EMPTY = new Uint8Array();
const GROUPS = 7;

// `n` rows, every `valueNulls`th value and `weightNulls`th weight null (0: none).
function rows(n, seed, valueNulls, weightNulls) {
  let x = seed;
  const random = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const values = Array.from({ length: n }, (_, i) => (valueNulls && i % valueNulls === 1 ? null : random() * 200 - 100));
  const weights = Array.from({ length: n }, (_, i) => (weightNulls && i % weightNulls === 4 % weightNulls ? null : random() * 10));
  const columns = [...encodeColumn(new Field("arg0", float64), values), ...encodeColumn(new Field("arg1", float64), weights)];
  return { columns, groups: Uint32Array.from({ length: n }, () => Math.floor(random() * GROUPS)) };
}

function run(cls, batches) {
  exportPlugin(cls, { name: "weighted_avg" });
  const calls = new AggregateCalls();
  calls.init("{}");
  let states = Array(GROUPS).fill(EMPTY);
  for (const { n, columns, groups } of batches) states = calls.update(states, n, columns, groups);
  const out = decodeColumn(new Field("output", float64), calls.finish(states));
  return { states: states.map((s) => new TextDecoder().decode(s)), out };
}

test("typed inputs give the states and results of the loop over arrays, bit for bit", () => {
  const batches = [
    { n: 5000, ...rows(5000, 7, 10, 20) },
    { n: 3, ...rows(3, 8, 2, 2) },
    // No nulls at all: validity null on both sides.
    { n: 1000, ...rows(1000, 9, 0, 0) },
  ];
  const typed = run(WeightedAvg, batches);
  const reference = run(OverArrays, batches);
  assert.deepEqual(typed, reference);
  assert.ok(typed.out.every((v) => typeof v === "number"));
});

test("a group with no complete row is null; a config is refused", () => {
  exportPlugin(WeightedAvg);
  const calls = new AggregateCalls();
  calls.init("{}");
  const columns = [...encodeColumn(new Field("arg0", float64), [1, null, 3]), ...encodeColumn(new Field("arg1", float64), [2, 5, null])];
  const states = calls.update([EMPTY, EMPTY, EMPTY], 3, columns, Uint32Array.of(0, 1, 2));
  assert.deepEqual(decodeColumn(new Field("output", float64), calls.finish(states)), [1, null, null]);
  assert.throws(() => new AggregateCalls().init('{"x": 1}'), /weighted_avg takes no config/);
});
