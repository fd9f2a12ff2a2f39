// Aggregate plugins in JavaScript: user-defined aggregate functions, vectorised like the Rust
// SDK's. One `update` call folds a whole batch into many groups' states; the states are bytes
// the host keeps (in RocksDB, across restarts), so the plugin holds nothing between calls.
//
// A state is any value JSON can hold, plus what JSON alone would lose: BigInt, NaN, the
// infinities, -0 and Uint8Array are written as tagged objects ({"$bigint": "…"}, {"$number":
// "NaN"}, {"$bytes": [..]}) and read back as themselves, so a state survives the host exactly.
// A group that has seen no rows starts from `initial()`.

import { Field, Schema } from "./schema.js";
import { PluginError } from "./transform.js";
import { WireError, decodeColumn, encodeColumn, splitColumns } from "./wire.js";

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder("utf-8", { fatal: true });

function replacer(key, value) {
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (typeof value === "number" && (!Number.isFinite(value) || Object.is(value, -0))) {
    return { $number: Object.is(value, -0) ? "-0" : String(value) };
  }
  if (value instanceof Uint8Array) return { $bytes: Array.from(value) };
  return value;
}

function reviver(key, value) {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1) {
      if (keys[0] === "$bigint" && typeof value.$bigint === "string") return BigInt(value.$bigint);
      if (keys[0] === "$number" && typeof value.$number === "string") return Number(value.$number);
      if (keys[0] === "$bytes" && Array.isArray(value.$bytes)) return Uint8Array.from(value.$bytes);
    }
  }
  return value;
}

/** A user-defined aggregate. Subclass it, set `inputs` (the argument types, in order) and
 * `output` (the result type) as class fields, write `update`, `merge` and `finish`, and name the
 * class in `exportPlugin`.
 *
 * `stateVersion`: the version of the states' format. weir keeps a pipeline's stored states
 * across an upgrade of the plugin only while it stays the same; give a new number when a new
 * version reads states differently. */
export class Aggregate {
  constructor(config, configText = JSON.stringify(config)) {
    /** The aggregate's `config` table, as an object. */
    this.config = config;
    /** The same as the JSON text weir sent, for what parsing loses: whether a number was
     * written `2` or `2.0`, and the digits of integers past 2^53. */
    this.configText = configText;
  }

  /** The state of a group that has seen no rows. */
  initial() {
    return null;
  }

  /** Folds a batch into the groups: row `i` of `columns` (one array per declared input, nulls
   * as `null`) belongs to `states[groupOfRow[i]]`. Change `states` in place
   * (`states[g] = ...`). */
  update(states, columns, groupOfRow) {
    throw new PluginError("an Aggregate defines update(states, columns, groupOfRow)");
  }

  /** The state of a group from two partial states of it. */
  merge(state, other) {
    throw new PluginError("an Aggregate defines merge(state, other)");
  }

  /** One output value per state (an array, nulls as `null`). */
  finish(states) {
    throw new PluginError("an Aggregate defines finish(states)");
  }

  /** A state as bytes (JSON text in UTF-8 by default, BigInt and the rest tagged). */
  encodeState(state) {
    return ENCODER.encode(JSON.stringify(state === undefined ? null : state, replacer));
  }

  /** A state from `encodeState`'s bytes. */
  decodeState(data) {
    return JSON.parse(DECODER.decode(data), reviver);
  }
}

function setting(plugin, key, fallback) {
  // A class field (`inputs = [...]`) or a static one (`static inputs = [...]`).
  return plugin[key] ?? plugin.constructor[key] ?? fallback;
}

/** The state format version the plugin declares. */
export function stateVersion(plugin) {
  const v = setting(plugin, "stateVersion", 0);
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new PluginError(`stateVersion ${v} is not a whole number from 0 to 4294967295`);
  }
  return v;
}

/** The signature as the host reads it: inputs `arg0..`, output `output`. */
export function signatureSchemas(plugin) {
  const output = setting(plugin, "output", null);
  if (output === null) throw new PluginError(`${plugin.constructor.name} sets no \`output\` type`);
  const inputs = setting(plugin, "inputs", []);
  return [new Schema(inputs.map((t, i) => new Field(`arg${i}`, t, true))), new Schema([new Field("output", output, true)])];
}

function load(plugin, states) {
  try {
    return Array.from(states, (s) => (s.length === 0 ? plugin.initial() : plugin.decodeState(s)));
  } catch (err) {
    throw new PluginError(`cannot read a state: ${err?.name ?? "Error"}: ${err?.message ?? err}`);
  }
}

function store(plugin, states) {
  return states.map((s) => {
    const bytes = plugin.encodeState(s);
    if (!(bytes instanceof Uint8Array)) throw new PluginError(`encodeState returned ${bytes?.constructor?.name ?? typeof bytes}, not a Uint8Array`);
    return bytes;
  });
}

/** One `update` call on the host's bytes: the new states. */
export function runUpdate(plugin, states, rows, buffers, groupOfRow) {
  const [inputs] = signatureSchemas(plugin);
  let columns;
  try {
    const parts = splitColumns(inputs, buffers, rows);
    columns = inputs.fields.map((f, i) => decodeColumn(f, parts[i]));
  } catch (err) {
    if (err instanceof WireError) throw new PluginError(err.message);
    throw err;
  }
  for (const column of columns) {
    if (column.length !== rows) throw new PluginError(`${rows} rows announced, an input has ${column.length}`);
  }
  if (groupOfRow.length !== rows) throw new PluginError(`${rows} rows but ${groupOfRow.length} group indexes`);
  let max = -1;
  for (let i = 0; i < groupOfRow.length; i++) if (groupOfRow[i] > max) max = groupOfRow[i];
  if (max >= states.length) throw new PluginError(`group index ${max} out of range (${states.length} states)`);
  const loaded = load(plugin, states);
  plugin.update(loaded, columns, groupOfRow);
  return store(plugin, loaded);
}

/** One `merge` call on the host's bytes. */
export function runMerge(plugin, left, right) {
  if (left.length !== right.length) throw new PluginError(`merge of ${left.length} states with ${right.length}`);
  const a = load(plugin, left);
  const b = load(plugin, right);
  return store(
    plugin,
    a.map((s, i) => plugin.merge(s, b[i])),
  );
}

/** One `finish` call: the output column's buffers. */
export function runFinish(plugin, states) {
  const [, output] = signatureSchemas(plugin);
  const values = Array.from(plugin.finish(load(plugin, states)) ?? []);
  if (values.length !== states.length) {
    throw new PluginError(`finish returned ${values.length} values for ${states.length} states`);
  }
  try {
    return encodeColumn(output.fields[0], values);
  } catch (err) {
    if (err instanceof WireError) throw new PluginError(err.message);
    throw err;
  }
}
