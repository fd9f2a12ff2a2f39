// {name}: a weir aggregate plugin, in JavaScript.

import {{ Aggregate, exportPlugin, float64, int64 }} from "weir-plugin";

export class {class_name} extends Aggregate {{
  static description = "Counts a group's rows.";
  inputs = [float64]; // one array per input column in update's `columns`
  output = int64;
  stateVersion = 0; // raise it when the state's shape changes

  initial() {{
    return 0;
  }}

  update(states, columns, groupOfRow) {{
    for (const group of groupOfRow) states[group] += 1;
  }}

  merge(state, other) {{
    return state + other;
  }}

  finish(states) {{
    return states.map((count) => BigInt(count));
  }}
}}

exportPlugin({class_name}, {{ name: "{name}", version: "0.1.0" }});
