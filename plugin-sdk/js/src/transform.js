// Transform plugins in JavaScript: a class with `process(batch)` returning a batch.
//
// The host calls `outputSchema` once per instance before any batch, to type-check the pipeline
// before it runs. By default it is worked out by running `process` on a one-row sample batch of
// the input's types (1 for numbers, 1n for 64-bit integers, "1" for strings, ...), so most
// plugins need not write it; write it when `process` cannot run on such a row or returns a
// column of nulls only.

import { Batch, BatchError } from "./batch.js";
import { Field, Schema } from "./schema.js";
import { WireError } from "./wire.js";

/** A failure the plugin reports, with a message for the pipeline's status and log. */
export class PluginError extends Error {
  get name() {
    return "PluginError";
  }
}

function sample(type) {
  switch (type.kind) {
    case "bool":
      return true;
    case "int":
      return type.params[0] === 64 ? 1n : 1;
    case "float":
    case "date32":
      return 1;
    case "timestamp":
    case "duration":
      return 1n;
    case "utf8":
    case "large_utf8":
      return "1";
    case "binary":
    case "large_binary":
      return Uint8Array.of(0x31);
    default:
      return null;
  }
}

/** A one-row batch of `schema` with a plain non-null value in every column. */
export function sampleBatch(schema) {
  return Batch.fromColumns(Object.fromEntries(schema.fields.map((f) => [f.name, [sample(f.type)]])), schema);
}

/** A transform stage. Subclass it, write `process`, and name the class in `exportPlugin`. One
 * instance serves one pipeline stage and is reused across batches; the host may build a fresh
 * one at any time, so keep nothing in it that `config` cannot rebuild. */
export class Transform {
  constructor(config, configText = JSON.stringify(config)) {
    /** The stage's `config` table, as an object. */
    this.config = config;
    /** The same as the JSON text weir sent, for what parsing loses: whether a number was
     * written `2` or `2.0`, and the digits of integers past 2^53. */
    this.configText = configText;
  }

  /** The schema `process` returns for batches of `input` (a `Schema`). */
  outputSchema(input) {
    let out;
    try {
      out = this.process(sampleBatch(input));
    } catch (err) {
      throw new PluginError(
        `could not work out the output schema by running process on a sample row ` +
          `(${err?.name ?? "Error"}: ${err?.message ?? err}); define outputSchema`,
      );
    }
    if (!(out instanceof Batch)) throw new PluginError(`process returned ${describe(out)}, not a Batch`);
    const unknown = out.schema.fields.filter((f) => f.type === null).map((f) => f.name);
    if (unknown.length) {
      throw new PluginError(
        `column(s) ${unknown.join(", ")} held only nulls on a sample row, so their type is unknown: ` +
          "pass a type to withColumn, or define outputSchema",
      );
    }
    return new Schema(out.schema.fields.map((f) => new Field(f.name, f.type, true)));
  }

  /** Transforms one batch; returns a batch of the declared output schema. */
  process(batch) {
    throw new PluginError("a Transform defines process(batch)");
  }
}

export function describe(value) {
  if (value === null || value === undefined) return String(value);
  return typeof value === "object" ? (value.constructor?.name ?? "an object") : typeof value;
}

/** One `process` call on wire buffers (already grouped per column): the output row count and
 * buffers. */
export function runProcess(plugin, inputSchema, outputSchema, rows, parts) {
  const batch = Batch.fromWire(inputSchema, rows, parts);
  const out = plugin.process(batch);
  if (!(out instanceof Batch)) throw new PluginError(`process returned ${describe(out)}, not a Batch`);
  try {
    return [out.numRows, out.toWire(outputSchema)];
  } catch (err) {
    if (err instanceof BatchError || err instanceof WireError) throw new PluginError(err.message);
    throw err;
  }
}
