// `weighted_avg(value, weight)`, in JavaScript: `sum(value × weight) / sum(weight)` over the rows
// of a group whose value and weight are both non-null; null for a group without any (or with
// zero total weight). The same aggregate as the Rust `weighted_avg`, summing in the same order,
// so the results are identical to the last bit (a state's doubles go through JSON exactly).
//
//     [aggregate]
//     functions = [{ plugin = "weighted_avg", columns = ["value", "weight"] }]

import { Aggregate, Bitmap, PluginError, exportPlugin, float64 } from "weir-plugin";

export class WeightedAvg extends Aggregate {
  static description = "Average of a value weighted by a second column.";
  inputs = [float64, float64];
  output = float64;
  // Each input as a Float64Array over the host's buffer and its validity: no value is boxed.
  typedInputs = true;

  constructor(config, configText) {
    super(config, configText);
    if (Object.keys(config).length) throw new PluginError("weighted_avg takes no config");
  }

  initial() {
    return [0, 0];
  }

  update(states, [value, weight], groupOfRow) {
    const v = value.values;
    const w = weight.values;
    const n = groupOfRow.length;
    // A row counts when both are non-null: one bitmap for both, its bits tested inline (without
    // a JIT, a call to \`get\` per row would cost more than the sums themselves).
    const valid = Bitmap.and(value.valid, weight.valid);
    if (valid === null) {
      for (let i = 0; i < n; i++) {
        const state = states[groupOfRow[i]];
        state[0] += v[i] * w[i];
        state[1] += w[i];
      }
      return;
    }
    const bits = valid.bytes;
    const offset = valid.offset;
    for (let i = 0; i < n; i++) {
      const bit = offset + i;
      if ((bits[bit >> 3] & (1 << (bit & 7))) === 0) continue;
      const state = states[groupOfRow[i]];
      state[0] += v[i] * w[i];
      state[1] += w[i];
    }
  }

  merge(state, other) {
    return [state[0] + other[0], state[1] + other[1]];
  }

  finish(states) {
    return states.map(([weighted, weight]) => (weight !== 0 ? weighted / weight : null));
  }
}

exportPlugin(WeightedAvg, { name: "weighted_avg", version: "1.0.0" });
