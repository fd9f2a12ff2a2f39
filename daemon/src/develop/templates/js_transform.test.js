import assert from "node:assert/strict";
import {{ test }} from "node:test";

import {{ Batch }} from "weir-plugin";

import {{ {class_name} }} from "./plugin.js";

test("every row passes through unchanged", () => {{
  const batch = Batch.fromColumns({{ sensor: ["a", null], value: [1.5, 2.0] }});
  const out = new {class_name}({{}}).process(batch);
  assert.deepEqual(out.toColumns(), batch.toColumns());
}});
