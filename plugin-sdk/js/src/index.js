// weir's plugin SDK for JavaScript: transforms and aggregates as WebAssembly components.
//
//   import { Transform, exportPlugin } from "weir-plugin";
//
//   export class Celsius extends Transform {
//     process(batch) {
//       return batch.withColumn("celsius", batch.column("fahrenheit").map((f) => (f === null ? null : ((f - 32) * 5) / 9)));
//     }
//   }
//   exportPlugin(Celsius, { name: "celsius", version: "1.0.0", description: "Fahrenheit to Celsius." });
//
// `weir plugin build DIR` bundles the folder with the SDK and turns it into `NAME.wasm` with
// componentize-js. The same code runs natively for tests: `weir-plugin/calls` calls a plugin the
// way the host does.

export { Aggregate } from "./aggregate.js";
export { Batch, BatchError } from "./batch.js";
export { exportPlugin } from "./registry.js";
export {
  DataType,
  Field,
  Schema,
  SchemaError,
  binary,
  bool,
  date32,
  duration,
  float32,
  float64,
  int8,
  int16,
  int32,
  int64,
  largeBinary,
  largeUtf8,
  nullType,
  timestamp,
  uint8,
  uint16,
  uint32,
  uint64,
  utf8,
} from "./schema.js";
export { PluginError, Transform } from "./transform.js";
export { Bitmap } from "./wire.js";
