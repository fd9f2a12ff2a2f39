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
import { WireError, decodeColumn, encodeColumn, splitColumns, typedArrayOf, typedColumn } from "./wire.js";

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
 * `typedInputs`: `true` to have `update` receive each input column as `{ values, valid }` (a
 * typed array over the host's buffer and a validity `Bitmap`, or `null` when no row is null, as
 * `batch.typed` gives a transform) rather than an array built value by value. Every input must
 * then be a number, date, time or boolean type.
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
   * as `null`; with `typedInputs`, one `{ values, valid }` per input) belongs to
   * `states[groupOfRow[i]]`. Change `states` in place
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

/** What the calls need of a plugin's declarations, worked out once (at `init`) rather than per
 * call: the input and output schemas, and whether `update` takes typed inputs. */
export class Signature {
  constructor(plugin) {
    [this.inputs, this.output] = signatureSchemas(plugin);
    const typed = setting(plugin, "typedInputs", false);
    if (typeof typed !== "boolean") throw new PluginError(`typedInputs is ${typed}, not true or false`);
    if (typed) {
      for (const field of this.inputs.fields) {
        if (typedArrayOf(field.type) === null && field.type?.kind !== "bool") {
          throw new PluginError(
            `typedInputs: input ${field.name.slice(3)} is ${field.type}; typed inputs are numbers, dates, times and booleans`,
          );
        }
      }
    }
    this.typed = typed;
  }
}

// The states as values. Plain loops: the `Array.from(.., f)` and `map` of a JIT-less engine
// cost a call and more per element.
function load(plugin, states) {
  const n = states.length;
  const out = new Array(n);
  try {
    for (let i = 0; i < n; i++) out[i] = states[i].length === 0 ? plugin.initial() : plugin.decodeState(states[i]);
  } catch (err) {
    throw new PluginError(`cannot read a state: ${err?.name ?? "Error"}: ${err?.message ?? err}`);
  }
  return out;
}

function store(plugin, states) {
  const n = states.length;
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const bytes = plugin.encodeState(states[i]);
    if (!(bytes instanceof Uint8Array)) throw new PluginError(`encodeState returned ${bytes?.constructor?.name ?? typeof bytes}, not a Uint8Array`);
    out[i] = bytes;
  }
  return out;
}

/** One `update` call on the host's bytes: the new states. `signature` is the plugin's
 * `Signature` (made here when not given). */
export function runUpdate(plugin, states, rows, buffers, groupOfRow, signature = new Signature(plugin)) {
  const fields = signature.inputs.fields;
  const columns = new Array(fields.length);
  try {
    const parts = splitColumns(signature.inputs, buffers, rows);
    for (let i = 0; i < fields.length; i++) {
      columns[i] = signature.typed ? typedColumn(fields[i], parts[i]) : decodeColumn(fields[i], parts[i]);
    }
  } catch (err) {
    if (err instanceof WireError) throw new PluginError(err.message);
    throw err;
  }
  for (let i = 0; i < columns.length; i++) {
    const n = signature.typed ? columns[i].values.length : columns[i].length;
    if (n !== rows) throw new PluginError(`${rows} rows announced, an input has ${n}`);
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
  for (let i = 0; i < a.length; i++) a[i] = plugin.merge(a[i], b[i]);
  return store(plugin, a);
}

/** One `finish` call: the output column's buffers. */
export function runFinish(plugin, states, signature = new Signature(plugin)) {
  const output = signature.output;
  const finished = plugin.finish(load(plugin, states)) ?? [];
  const values = Array.isArray(finished) ? finished : Array.from(finished);
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
