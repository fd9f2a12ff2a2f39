// Plugins called exactly as the host calls them: bytes in, bytes out.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Aggregate, Batch, PluginError, Transform, exportPlugin, float64, int64, utf8 } from "weir-plugin";
import { AggregateCalls, CallError, TransformCalls } from "weir-plugin/calls";
import { Field, Schema } from "weir-plugin/schema";
import { decodeColumn, encodeColumn, inputReference, isInputReference, splitColumns } from "weir-plugin/wire";

const INPUT = new Schema([new Field("sensor", utf8), new Field("fahrenheit", float64), new Field("n", int64)]);

class Celsius extends Transform {
  static description = "Fahrenheit to Celsius.";

  process(batch) {
    return batch.withColumn(
      "celsius",
      batch.column("fahrenheit").map((f) => (f === null ? null : ((f - 32) * 5) / 9)),
    );
  }
}

// The same on the fast path: a typed array in, a typed array and the input's validity out.
class FastCelsius extends Transform {
  process(batch) {
    const { values, valid } = batch.typed("fahrenheit");
    const out = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = ((values[i] - 32) * 5) / 9;
    return batch.withColumn("celsius", { values: out, valid });
  }
}

class Hot extends Transform {
  constructor(config) {
    super(config);
    if (!("above" in config)) throw new PluginError("hot needs `above`");
    this.above = config.above;
  }

  process(batch) {
    return batch.filter(batch.column("fahrenheit").map((f) => f !== null && f > this.above));
  }
}

class Broken extends Transform {
  process(batch) {
    const sample = batch.length > 1 ? null : { x: 1 };
    return batch.withColumn("x", batch.column("n").map(() => sample.x));
  }
}

function wire(columns) {
  return INPUT.fields.flatMap((field, i) => encodeColumn(field, columns[i]));
}

function run(plugin, config, columns) {
  exportPlugin(plugin);
  const calls = new TransformCalls();
  calls.init(config);
  const output = Schema.fromBytes(calls.outputSchema(INPUT.toBytes()));
  const [rows, buffers] = calls.process(columns[0].length, wire(columns));
  const parts = splitColumns(output, buffers);
  // As the host does: a reference stands for the input column it names.
  return [
    output,
    rows,
    output.fields.map((f, i) => {
      const input = isInputReference(parts[i]);
      return input === null ? decodeColumn(f, parts[i]) : columns[input];
    }),
  ];
}

const COLUMNS = [
  ["a", "b", null, "d"],
  [212, null, 32, 50],
  [1n, 2n, 3n, null],
];

test("a ten-line transform adds its column and passes the others through", () => {
  for (const plugin of [Celsius, FastCelsius]) {
    const [output, rows, columns] = run(plugin, "{}", COLUMNS);
    assert.deepEqual(output.names(), ["sensor", "fahrenheit", "n", "celsius"]);
    assert.ok(output.field("celsius").type.equals(float64));
    assert.equal(rows, 4);
    assert.deepEqual(columns.slice(0, 3), COLUMNS);
    assert.deepEqual(columns[3], [100, null, 0, 10]);
  }
});

test("untouched columns go back as references to the columns sent", () => {
  exportPlugin(Celsius);
  const calls = new TransformCalls();
  calls.init("");
  calls.outputSchema(INPUT.toBytes());
  const [, back] = calls.process(4, wire(COLUMNS));
  assert.equal(back.length, 3 + 3, "three references, then celsius: header, validity, values");
  for (let i = 0; i < 3; i++) assert.deepEqual(back[i], inputReference(4, i));
  assert.deepEqual(back.slice(0, 3).map((b) => b.length), [24, 24, 24]);
});

test("filtered and replaced columns go back as data, not references", () => {
  exportPlugin(Hot);
  const calls = new TransformCalls();
  calls.init('{"above": 40}');
  const output = Schema.fromBytes(calls.outputSchema(INPUT.toBytes()));
  const [, back] = calls.process(4, wire(COLUMNS));
  assert.ok(splitColumns(output, back).every((parts) => isInputReference(parts) === null));
});

test("a filter keeps the rows its config asks for", () => {
  const [, rows, columns] = run(Hot, '{"above": 40}', COLUMNS);
  assert.equal(rows, 2);
  assert.deepEqual(columns, [["a", "d"], [212, 50], [1n, null]]);
});

test("a config the plugin refuses is an init error with its message", () => {
  exportPlugin(Hot);
  assert.throws(() => new TransformCalls().init("{}"), (err) => err instanceof CallError && err.message === "init: hot needs `above`");
  assert.throws(() => new TransformCalls().init("{nope"), /the config is not JSON/);
});

test("an exception in process is a call error naming the plugin's line", () => {
  exportPlugin(Broken);
  const calls = new TransformCalls();
  calls.init("{}");
  calls.outputSchema(INPUT.toBytes());
  assert.throws(
    () => calls.process(4, wire(COLUMNS)),
    (err) => {
      assert.ok(err instanceof CallError);
      assert.match(err.message, /^process: TypeError: Cannot read properties of null .* \(at calls\.test\.js:\d+\)$/);
      return true;
    },
  );
});

test("a thrown value that is not an error is reported as what it is", () => {
  class Thrower extends Transform {
    process() {
      throw { code: 7 };
    }
    outputSchema(input) {
      return input;
    }
  }
  exportPlugin(Thrower);
  const calls = new TransformCalls();
  calls.init("{}");
  calls.outputSchema(INPUT.toBytes());
  assert.throws(() => calls.process(4, wire(COLUMNS)), { message: 'process: thrown Object: {"code":7}' });
});

test("a batch unlike the declared schema is refused with both", () => {
  class Liar extends Transform {
    outputSchema(input) {
      return new Schema([...input.fields, new Field("extra", int64)]);
    }
    process(batch) {
      return batch;
    }
  }
  exportPlugin(Liar);
  const calls = new TransformCalls();
  calls.init("{}");
  calls.outputSchema(INPUT.toBytes());
  assert.throws(() => calls.process(4, wire(COLUMNS)), { message: /^process: process returned columns .* but outputSchema declared/ });
});

test("process before output-schema is refused", () => {
  exportPlugin(Celsius);
  const calls = new TransformCalls();
  calls.init("{}");
  assert.throws(() => calls.process(4, wire(COLUMNS)), CallError);
});

test("malformed buffers from the host are a call error", () => {
  exportPlugin(Celsius);
  const calls = new TransformCalls();
  calls.init("{}");
  calls.outputSchema(INPUT.toBytes());
  assert.throws(() => calls.process(4, wire(COLUMNS).slice(1)), CallError);
  assert.throws(() => calls.process(5, wire(COLUMNS)), /column `sensor` has 4 rows, the batch 5/);
  assert.throws(() => calls.outputSchema(new Uint8Array(3)), /output_schema: too short/);
});

test("info is the snake-cased class name, the default version and the description", () => {
  exportPlugin(Celsius);
  assert.deepEqual(new TransformCalls().info(), { name: "celsius", version: "0.1.0", description: "Fahrenheit to Celsius." });
  exportPlugin(FastCelsius, { name: "fast", version: "2.0.0", description: "quick" });
  assert.deepEqual(new TransformCalls().info(), { name: "fast", version: "2.0.0", description: "quick" });
  assert.throws(() => exportPlugin(class NotAPlugin {}), TypeError);
});

class Median extends Aggregate {
  inputs = [float64];
  output = float64;

  initial() {
    return [];
  }

  update(states, columns, groupOfRow) {
    columns[0].forEach((value, i) => {
      if (value !== null) states[groupOfRow[i]].push(value);
    });
  }

  merge(state, other) {
    return [...state, ...other];
  }

  finish(states) {
    return states.map((values) => {
      values = [...values].sort((a, b) => a - b);
      const n = values.length;
      if (n === 0) return null;
      return n % 2 ? values[(n - 1) / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    });
  }
}

const EMPTY = new Uint8Array();

test("update, merge and finish work on the host's state bytes", () => {
  exportPlugin(Median);
  const calls = new AggregateCalls();
  const { inputs, output } = calls.init("");
  assert.ok(Schema.fromBytes(inputs).equals(new Schema([new Field("arg0", float64)])));
  assert.ok(Schema.fromBytes(output).equals(new Schema([new Field("output", float64)])));
  const column = encodeColumn(new Field("arg0", float64), [5, 1, null, 3, 10]);
  const states = calls.update([EMPTY, EMPTY], 5, column, Uint32Array.of(0, 0, 1, 0, 1));
  assert.ok(states.every((s) => s instanceof Uint8Array));
  const again = calls.update([EMPTY, EMPTY], 1, encodeColumn(new Field("arg0", float64), [7]), [1]);
  const merged = calls.merge(states, again);
  const out = calls.finish([...merged, EMPTY]);
  assert.deepEqual(decodeColumn(new Field("output", float64), out), [3, 8.5, null]);
  assert.equal(calls.stateVersion(), 0);
});

test("a group index out of range is refused", () => {
  exportPlugin(Median);
  const calls = new AggregateCalls();
  calls.init("");
  assert.throws(() => calls.update([EMPTY], 1, encodeColumn(new Field("arg0", float64), [1]), [3]), CallError);
});

test("states keep BigInt, NaN, infinities, -0 and bytes exactly", () => {
  class Keeper extends Aggregate {
    static inputs = [int64];
    static output = int64;
    static stateVersion = 3;
  }
  const plugin = new Keeper({});
  const state = { big: -(2n ** 63n), nan: NaN, inf: [Infinity, -Infinity], zero: -0, bytes: Uint8Array.of(1, 2), x: 1.5 };
  assert.deepEqual(plugin.decodeState(plugin.encodeState(state)), state);
  exportPlugin(Keeper);
  const calls = new AggregateCalls();
  calls.init("{}");
  assert.equal(calls.stateVersion(), 3);
  assert.throws(() => calls.merge([new TextEncoder().encode("{nope")], [EMPTY]), /merge: cannot read a state: SyntaxError/);
});

test("the sample batch gives 64-bit columns BigInt and the rest numbers, strings, bytes", () => {
  class Types extends Transform {
    process(batch) {
      return batch.withColumn("kinds", batch.columnNames.map((n) => typeof batch.column(n)[0]).slice(0, 1).concat(Array(batch.length - 1).fill("")));
    }
  }
  exportPlugin(Types);
  const calls = new TransformCalls();
  calls.init("{}");
  const out = Schema.fromBytes(calls.outputSchema(INPUT.toBytes()));
  assert.ok(out.field("kinds").type.equals(utf8));
  const sample = Batch.fromColumns({ n: [1n], s: ["1"] });
  assert.deepEqual(sample.toColumns(), { n: [1n], s: ["1"] });
});
