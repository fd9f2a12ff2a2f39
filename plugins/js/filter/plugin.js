// `filter`, in JavaScript: keeps the rows whose numeric `column` compares true against `value`
// (`op`: < <= > >= == != ; a null never passes). The same plugin as the Rust `filter`: the
// column's values compared as doubles (64-bit integers rounded to the nearest, as Rust's `as
// f64` does). The column is read as a typed array; `filter` then copies the kept rows of every
// column from the buffers weir sent, decoding none.
//
//     [[transform]]
//     plugin = "filter"
//     config = { column = "value", op = ">=", value = 10 }

import { PluginError, Transform, exportPlugin } from "weir-plugin";

const OPS = {
  "<": (a, b) => a < b,
  "<=": (a, b) => a <= b,
  ">": (a, b) => a > b,
  ">=": (a, b) => a >= b,
  "==": (a, b) => a === b,
  "=": (a, b) => a === b,
  "!=": (a, b) => a !== b,
};

export class Filter extends Transform {
  static description = "Keeps the rows whose numeric column compares true against a constant.";

  constructor(config, configText) {
    super(config, configText);
    const unknown = Object.keys(config).filter((k) => !["column", "op", "value"].includes(k)).sort();
    if (unknown.length) throw new PluginError(`unknown config key(s): ${unknown.join(", ")}`);
    if (!Object.hasOwn(OPS, config.op)) throw new PluginError(`op \`${config.op}\` is not one of < <= > >= == !=`);
    if (typeof config.column !== "string") throw new PluginError("filter needs `column`, a column name");
    if (typeof config.value !== "number") throw new PluginError("filter needs `value`, a number");
    this.column = config.column;
    this.op = config.op;
    this.value = config.value;
  }

  outputSchema(input) {
    if (!input.names().includes(this.column)) throw new PluginError(`the input has no column \`${this.column}\``);
    const type = input.field(this.column).type;
    if (!type.isNumeric) throw new PluginError(`column \`${this.column}\` is ${type}, filter compares numbers`);
    return input;
  }

  process(batch) {
    const { values, valid } = batch.typed(this.column);
    const n = values.length;
    const keep = new Uint8Array(n);
    const compare = OPS[this.op];
    const value = this.value;
    const wide = values instanceof BigInt64Array || values instanceof BigUint64Array;
    for (let i = 0; i < n; i++) {
      if (valid !== null && !valid.get(i)) continue;
      const v = wide ? Number(values[i]) : values[i];
      keep[i] = compare(v, value) ? 1 : 0;
    }
    return batch.filter(keep);
  }
}

exportPlugin(Filter, { name: "filter", version: "1.0.0" });
