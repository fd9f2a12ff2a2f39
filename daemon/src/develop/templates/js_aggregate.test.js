import assert from "node:assert/strict";
import {{ test }} from "node:test";

import {{ {class_name} }} from "./plugin.js";

test("each group counts its rows", () => {{
  const plugin = new {class_name}({{}});
  const states = [plugin.initial(), plugin.initial()];
  plugin.update(states, [[1.0, null, 3.0]], [0, 1, 0]);
  assert.deepEqual(plugin.finish(states), [2n, 1n]);
  assert.equal(plugin.merge(2, 1), 3);
}});
