// Arrow data types, fields and schemas, and their encoding at the plugin boundary: an Arrow IPC
// stream holding only the schema message (what the Rust SDK's `wire::schema_to_bytes` writes),
// read and written in plain JavaScript.
//
// The types a JavaScript plugin can read and write are the ones weir's pipelines produce:
// booleans, signed and unsigned integers, floats, strings, binary, dates, timestamps and
// durations. A schema with another type (a list, a struct) is refused with a message naming the
// column.

import { Builder, FbString, FlatBufferError, Table, TableValue, TableVector } from "./flatbuf.js";

/** A schema that cannot be read, or holds a type the JavaScript SDK does not handle. */
export class SchemaError extends Error {
  get name() {
    return "SchemaError";
  }
}

const TIME_UNITS = ["s", "ms", "us", "ns"];

/** An Arrow data type: `kind` ("int", "utf8", "timestamp", ...) and its parameters. Compare
 * with `equals`; the module's constants and functions make them. */
export class DataType {
  constructor(kind, ...params) {
    this.kind = kind;
    this.params = params;
    Object.freeze(this);
  }

  equals(other) {
    return (
      other instanceof DataType &&
      this.kind === other.kind &&
      this.params.length === other.params.length &&
      this.params.every((p, i) => p === other.params[i])
    );
  }

  toString() {
    if (this.kind === "int") {
      const [bits, signed] = this.params;
      return `${signed ? "int" : "uint"}${bits}`;
    }
    if (this.kind === "float") return `float${this.params[0]}`;
    if (this.kind === "timestamp" || this.kind === "duration") {
      const [unit, tz] = this.params;
      return `${this.kind}[${unit}${tz ? ", " + tz : ""}]`;
    }
    return this.kind;
  }

  get isInteger() {
    return this.kind === "int";
  }

  get isNumeric() {
    return this.kind === "int" || this.kind === "float";
  }
}

// `null` is a keyword in JavaScript: the null type is `nullType`.
export const nullType = new DataType("null");
export const bool = new DataType("bool");
export const int8 = new DataType("int", 8, true);
export const int16 = new DataType("int", 16, true);
export const int32 = new DataType("int", 32, true);
export const int64 = new DataType("int", 64, true);
export const uint8 = new DataType("int", 8, false);
export const uint16 = new DataType("int", 16, false);
export const uint32 = new DataType("int", 32, false);
export const uint64 = new DataType("int", 64, false);
export const float32 = new DataType("float", 32);
export const float64 = new DataType("float", 64);
export const utf8 = new DataType("utf8");
export const largeUtf8 = new DataType("large_utf8");
export const binary = new DataType("binary");
export const largeBinary = new DataType("large_binary");
export const date32 = new DataType("date32");

/** A timestamp type: `unit` one of s, ms, us, ns; `tz` a time zone name or offset, or null. */
export function timestamp(unit = "ms", tz = null) {
  if (!TIME_UNITS.includes(unit)) {
    throw new SchemaError(`timestamp unit '${unit}' is not one of ${TIME_UNITS.join(", ")}`);
  }
  return new DataType("timestamp", unit, tz ?? null);
}

/** A duration type: `unit` one of s, ms, us, ns. */
export function duration(unit = "ms") {
  if (!TIME_UNITS.includes(unit)) {
    throw new SchemaError(`duration unit '${unit}' is not one of ${TIME_UNITS.join(", ")}`);
  }
  return new DataType("duration", unit);
}

function sameMetadata(a, b) {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

/** A named column of a data type, nullable or not. */
export class Field {
  constructor(name, type, nullable = true, metadata = {}) {
    this.name = name;
    this.type = type;
    this.nullable = nullable;
    this.metadata = { ...metadata };
  }

  equals(other) {
    return (
      other instanceof Field &&
      this.name === other.name &&
      (this.type === other.type || (this.type !== null && this.type.equals(other.type))) &&
      this.nullable === other.nullable &&
      sameMetadata(this.metadata, other.metadata)
    );
  }

  toString() {
    return `Field(${JSON.stringify(this.name)}, ${this.type}${this.nullable ? "" : ", not null"})`;
  }
}

/** The columns of a batch, in order. */
export class Schema {
  constructor(fields, metadata = {}) {
    this.fields = [...fields];
    this.metadata = { ...metadata };
  }

  equals(other) {
    return (
      other instanceof Schema &&
      this.fields.length === other.fields.length &&
      this.fields.every((f, i) => f.equals(other.fields[i])) &&
      sameMetadata(this.metadata, other.metadata)
    );
  }

  toString() {
    return `Schema([${this.fields.join(", ")}])`;
  }

  [Symbol.iterator]() {
    return this.fields[Symbol.iterator]();
  }

  get length() {
    return this.fields.length;
  }

  /** The column names, in order. */
  names() {
    return this.fields.map((f) => f.name);
  }

  /** The position of column `name`; a SchemaError naming the columns there are. */
  index(name) {
    const at = this.fields.findIndex((f) => f.name === name);
    if (at < 0) {
      throw new SchemaError(`no column \`${name}\` (the columns are ${this.names().join(", ") || "none"})`);
    }
    return at;
  }

  /** Column `name`'s field. */
  field(name) {
    return this.fields[this.index(name)];
  }

  /** This schema as the host reads it: an Arrow IPC stream of the schema message. */
  toBytes() {
    return encodeSchema(this);
  }

  /** A schema as the host sends it. */
  static fromBytes(data) {
    return decodeSchema(data);
  }
}

// Arrow's `Type` union (format/Schema.fbs).
const NULL = 1, INT = 2, FLOAT = 3, BINARY = 4, UTF8 = 5, BOOL = 6;
const DATE = 8, TIMESTAMP = 10, DURATION = 18, LARGE_BINARY = 19, LARGE_UTF8 = 20;
const TYPE_NAMES = {
  7: "decimal",
  9: "time",
  11: "interval",
  12: "list",
  13: "struct",
  14: "union",
  15: "fixed-size binary",
  16: "fixed-size list",
  17: "map",
  21: "large list",
  22: "run-end encoded",
  23: "binary view",
  24: "string view",
};
const SIMPLE = new Map([
  [NULL, nullType],
  [BINARY, binary],
  [UTF8, utf8],
  [BOOL, bool],
  [LARGE_BINARY, largeBinary],
  [LARGE_UTF8, largeUtf8],
]);
const METADATA_V5 = 4;
const HEADER_SCHEMA = 1;
const CONTINUATION = 0xffffffff;

function unit(index, column) {
  const u = TIME_UNITS[index];
  if (u === undefined) throw new SchemaError(`column \`${column}\`: time unit ${index}`);
  return u;
}

function readType(typeId, table, column) {
  if (SIMPLE.has(typeId)) return SIMPLE.get(typeId);
  if (typeId === INT) {
    const bits = table.scalar(0, "i", 0);
    if (![8, 16, 32, 64].includes(bits)) {
      throw new SchemaError(`column \`${column}\`: integers of ${bits} bits`);
    }
    return new DataType("int", bits, table.scalar(1, "B", 0) !== 0);
  }
  if (typeId === FLOAT) {
    const precision = table.scalar(0, "h", 0);
    if (precision === 0) {
      throw new SchemaError(`column \`${column}\`: half floats are not handled by the JavaScript SDK`);
    }
    return precision === 1 ? float32 : float64;
  }
  if (typeId === DATE) {
    if (table.scalar(0, "h", 1) !== 0) {
      throw new SchemaError(`column \`${column}\`: date64 is not handled by the JavaScript SDK`);
    }
    return date32;
  }
  if (typeId === TIMESTAMP) return timestamp(unit(table.scalar(0, "h", 0), column), table.string(1));
  if (typeId === DURATION) return duration(unit(table.scalar(0, "h", 1), column));
  const name = TYPE_NAMES[typeId] ?? `type ${typeId}`;
  throw new SchemaError(`column \`${column}\` is a ${name}, which the JavaScript SDK does not handle yet`);
}

function readMetadata(table, index) {
  const out = {};
  for (const kv of table.tables(index)) out[kv.string(0)] = kv.string(1);
  return out;
}

function bytesOf(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data)) return Uint8Array.from(data);
  throw new SchemaError(`schema bytes expected, not ${data?.constructor?.name ?? typeof data}`);
}

/** Reads an Arrow IPC stream's schema message (a Uint8Array). */
export function decodeSchema(data) {
  const bytes = bytesOf(data);
  try {
    if (bytes.length < 8) throw new SchemaError("too short for an Arrow IPC message");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    if (view.getUint32(at, true) === CONTINUATION) at += 4;
    const length = view.getInt32(at, true);
    at += 4;
    if (length <= 0 || at + length > bytes.length) {
      throw new SchemaError("the schema message's length does not fit the bytes");
    }
    const message = Table.root(bytes.subarray(at, at + length));
    if (message.scalar(1, "B", 0) !== HEADER_SCHEMA) throw new SchemaError("the first message is not a schema");
    const schema = message.table(2);
    if (schema === null) throw new SchemaError("the schema message has no schema");
    if (schema.scalar(0, "h", 0) !== 0) throw new SchemaError("big-endian data is not handled");
    const fields = [];
    for (const f of schema.tables(1)) {
      const name = f.string(0) ?? "";
      const typeTable = f.table(3);
      if (f.table(4) !== null) throw new SchemaError(`column \`${name}\` is dictionary-encoded, not handled yet`);
      if (typeTable === null) throw new SchemaError(`column \`${name}\` has no type`);
      const type = readType(f.scalar(2, "B", 0), typeTable, name);
      fields.push(new Field(name, type, f.scalar(1, "B", 0) !== 0, readMetadata(f, 6)));
    }
    return new Schema(fields, readMetadata(schema, 2));
  } catch (err) {
    if (err instanceof SchemaError) throw err;
    if (err instanceof FlatBufferError || err instanceof RangeError) {
      throw new SchemaError(`the schema bytes are malformed: ${err.message}`);
    }
    throw err;
  }
}

// The type's union tag and table.
function typeTable(type) {
  for (const [tag, simple] of SIMPLE) {
    if (simple.equals(type)) return [tag, new TableValue({})];
  }
  switch (type?.kind) {
    case "int": {
      const [bits, signed] = type.params;
      return [INT, new TableValue({ 0: ["i", bits], 1: ["B", signed ? 1 : 0] })];
    }
    case "float":
      return [FLOAT, new TableValue({ 0: ["h", type.params[0] === 32 ? 1 : 2] })];
    case "date32":
      return [DATE, new TableValue({ 0: ["h", 0] })];
    case "timestamp": {
      const [u, tz] = type.params;
      const fields = { 0: ["h", TIME_UNITS.indexOf(u)] };
      if (tz !== null && tz !== undefined) fields[1] = new FbString(tz);
      return [TIMESTAMP, new TableValue(fields)];
    }
    case "duration":
      return [DURATION, new TableValue({ 0: ["h", TIME_UNITS.indexOf(type.params[0])] })];
    default:
      throw new SchemaError(`cannot write type ${type}`);
  }
}

// Keys in code point order, as the Python SDK sorts them, so both write the same bytes.
function byCodePoint(a, b) {
  const x = [...a].map((c) => c.codePointAt(0));
  const y = [...b].map((c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function metadataVector(mapping) {
  return new TableVector(
    Object.keys(mapping)
      .sort(byCodePoint)
      .map((k) => new TableValue({ 0: new FbString(k), 1: new FbString(String(mapping[k])) })),
  );
}

/** An Arrow IPC stream (a Uint8Array) holding `schema`'s message and the end-of-stream marker. */
export function encodeSchema(schema) {
  const fields = schema.fields.map((f) => {
    const [tag, table] = typeTable(f.type);
    const entry = { 0: new FbString(f.name), 1: ["B", f.nullable ? 1 : 0], 2: ["B", tag], 3: table, 5: new TableVector([]) };
    if (Object.keys(f.metadata).length) entry[6] = metadataVector(f.metadata);
    return new TableValue(entry);
  });
  const schemaTable = { 0: ["h", 0], 1: new TableVector(fields) };
  if (Object.keys(schema.metadata).length) schemaTable[2] = metadataVector(schema.metadata);
  const message = new TableValue({
    0: ["h", METADATA_V5],
    1: ["B", HEADER_SCHEMA],
    2: new TableValue(schemaTable),
    3: ["q", 0],
  });
  const body = new Builder().finish(message);
  // 8-byte aligned: the continuation marker and length (8 bytes) then the padded message.
  const padded = Math.ceil(body.length / 8) * 8;
  const out = new Uint8Array(8 + padded + 8);
  const view = new DataView(out.buffer);
  view.setUint32(0, CONTINUATION, true);
  view.setInt32(4, padded, true);
  out.set(body, 8);
  view.setUint32(8 + padded, CONTINUATION, true);
  view.setInt32(12 + padded, 0, true);
  return out;
}
