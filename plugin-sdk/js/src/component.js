// The exports of a component, as componentize-js binds `plugin.wit`: the `transformer` object
// for world `transform`, the `aggregator` object for world `aggregate`. `weir plugin build`
// writes an entry file that imports the plugin, then re-exports one of these.
//
// componentize-js turns a thrown value into the `err` of a `result` only when it is not an
// Error (a thrown Error traps, and a trapped instance cannot be called again): every failure is
// therefore caught here and thrown as its message, a string. Functions without a `result`
// (`info`, `state-version`) cannot fail once `init` has succeeded.

import { AggregateCalls, CallError, TransformCalls } from "./calls.js";
import { runningBundled } from "./location.js";

runningBundled();

function guarded(f) {
  try {
    return f();
  } catch (err) {
    if (err instanceof CallError) throw err.message;
    // A bug of the SDK's own, or a failure beyond a plugin's code (out of memory): still a
    // message, never a trap.
    throw `internal error: ${err?.name ?? "Error"}: ${err?.message ?? err}`;
  }
}

let transformCalls = null;
let aggregateCalls = null;

const transform = () => (transformCalls ??= new TransformCalls());
const aggregate = () => (aggregateCalls ??= new AggregateCalls());

export const transformer = {
  info: () => transform().info(),
  init: (config) => guarded(() => void transform().init(config)),
  outputSchema: (input) => guarded(() => transform().outputSchema(input)),
  process: (rows, columns) => guarded(() => transform().process(rows, columns)),
  // Every column is sent: the SDK decodes the columns a plugin reads on demand, so it cannot
  // say beforehand which those are.
  reads: () => undefined,
};

export const aggregator = {
  info: () => aggregate().info(),
  init: (config) => guarded(() => aggregate().init(config)),
  update: (states, rows, columns, groupOfRow) => guarded(() => aggregate().update(states, rows, columns, groupOfRow)),
  merge: (left, right) => guarded(() => aggregate().merge(left, right)),
  finish: (states) => guarded(() => aggregate().finish(states)),
  stateVersion: () => aggregate().stateVersion(),
};
