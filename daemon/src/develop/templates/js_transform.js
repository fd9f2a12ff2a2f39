// {name}: a weir transform plugin, in JavaScript.

import {{ Transform, exportPlugin }} from "weir-plugin";

export class {class_name} extends Transform {{
  static description = "Passes every row through unchanged.";

  process(batch) {{
    // batch.column("name") is a column's values as an array (nulls as null, 64-bit integers as
    // BigInt); batch.typed("name") its typed array; batch.withColumn("new", values) adds or
    // replaces one; batch.filter(mask) keeps rows.
    return batch;
  }}
}}

exportPlugin({class_name}, {{ name: "{name}", version: "0.1.0" }});
