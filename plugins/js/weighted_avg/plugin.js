// `weighted_avg(value, weight)`, in JavaScript: `sum(value × weight) / sum(weight)` over the rows
// of a group whose value and weight are both non-null; null for a group without any (or with
// zero total weight). The same aggregate as the Rust `weighted_avg`, summing in the same order,
// so the results are identical to the last bit (a state's doubles go through JSON exactly).
//
//     [aggregate]
//     functions = [{ plugin = "weighted_avg", columns = ["value", "weight"] }]

import { Aggregate, PluginError, exportPlugin, float64 } from "weir-plugin";

export class WeightedAvg extends Aggregate {
  static description = "Average of a value weighted by a second column.";
  inputs = [float64, float64];
  output = float64;

  constructor(config, configText) {
    super(config, configText);
    if (Object.keys(config).length) throw new PluginError("weighted_avg takes no config");
  }

  initial() {
    return [0, 0];
  }

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

  merge(state, other) {
    return [state[0] + other[0], state[1] + other[1]];
  }

  finish(states) {
    return states.map(([weighted, weight]) => (weight !== 0 ? weighted / weight : null));
  }
}

exportPlugin(WeightedAvg, { name: "weighted_avg", version: "1.0.0" });
