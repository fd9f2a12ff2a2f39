// A plugin called the way the host calls it: the contract's functions on bytes, every failure
// turned into one message (`CallError`). The component's exports are thin wrappers over these;
// tests call them natively to run a plugin exactly as weir would.

import { Signature, runFinish, runMerge, runUpdate, stateVersion } from "./aggregate.js";
import { where } from "./location.js";
import { registered } from "./registry.js";
import { Schema, SchemaError } from "./schema.js";
import { PluginError, describe, runProcess } from "./transform.js";
import { WireError, splitColumns } from "./wire.js";

/** A call failed; the message is what the pipeline's status and log show. */
export class CallError extends Error {
  get name() {
    return "CallError";
  }
}

function message(err) {
  if (err instanceof PluginError || err instanceof SchemaError || err instanceof WireError) return err.message;
  if (err instanceof Error) return `${err.name}: ${err.message}${where(err)}`;
  // A thrown value that is not an Error: a string, a number, an object.
  let text;
  try {
    text = typeof err === "string" ? err : JSON.stringify(err) ?? String(err);
  } catch {
    text = String(err);
  }
  return `thrown ${describe(err)}: ${text}`;
}

function call(what, f) {
  try {
    return f();
  } catch (err) {
    if (err instanceof CallError) throw err;
    throw new CallError(`${what}: ${message(err)}`);
  }
}

function config(text) {
  let value;
  try {
    value = text ? JSON.parse(text) : {};
  } catch (err) {
    throw new CallError(`the config is not JSON: ${err.message}`);
  }
  return value ?? {};
}

/** The `transformer` interface over the exported `Transform`. */
export class TransformCalls {
  constructor() {
    this.registered = registered();
    this.plugin = null;
    this.schemas = null;
  }

  info() {
    const r = this.registered;
    return { name: r.name, version: r.version, description: r.description };
  }

  init(text) {
    const parsed = config(text);
    this.plugin = call("init", () => new this.registered.cls(parsed, text || "{}"));
    this.schemas = null;
  }

  outputSchema(input) {
    if (this.plugin === null) throw new CallError("the host called output-schema before init");
    return call("output_schema", () => {
      const schema = Schema.fromBytes(input);
      const output = this.plugin.outputSchema(schema);
      if (!(output instanceof Schema)) throw new PluginError(`outputSchema returned ${describe(output)}, not a Schema`);
      const encoded = output.toBytes();
      this.schemas = [schema, output];
      return encoded;
    });
  }

  process(rows, columns) {
    if (this.schemas === null) throw new CallError("the host called process before output-schema");
    const [inputSchema, outputSchema] = this.schemas;
    return call("process", () => {
      const parts = splitColumns(inputSchema, columns, rows);
      return runProcess(this.plugin, inputSchema, outputSchema, rows, parts);
    });
  }
}

/** The `aggregator` interface over the exported `Aggregate`. */
export class AggregateCalls {
  constructor() {
    this.registered = registered();
    this.plugin = null;
    this.signature = null;
  }

  info() {
    const r = this.registered;
    return { name: r.name, version: r.version, description: r.description };
  }

  init(text) {
    const parsed = config(text);
    return call("init", () => {
      const plugin = new this.registered.cls(parsed, text || "{}");
      const signature = new Signature(plugin);
      const encoded = { inputs: signature.inputs.toBytes(), output: signature.output.toBytes() };
      stateVersion(plugin);
      this.plugin = plugin;
      this.signature = signature;
      return encoded;
    });
  }

  #plugin() {
    if (this.plugin === null) throw new CallError("the host called the aggregate before init");
    return this.plugin;
  }

  update(states, rows, columns, groupOfRow) {
    const plugin = this.#plugin();
    return call("update", () => runUpdate(plugin, states, rows, columns, groupOfRow, this.signature));
  }

  merge(left, right) {
    const plugin = this.#plugin();
    return call("merge", () => runMerge(plugin, left, right));
  }

  finish(states) {
    const plugin = this.#plugin();
    return call("finish", () => runFinish(plugin, states, this.signature));
  }

  stateVersion() {
    return stateVersion(this.#plugin());
  }
}
