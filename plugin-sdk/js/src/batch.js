// A batch of rows as a JavaScript plugin sees it: columns by name, each an array with nulls as
// `null`, or, on the fast path, a typed array of the values with a validity bitmap.
//
// Columns are decoded only when the plugin reads them, and a column it passes through unchanged
// goes back to the host as a reference to the column it sent (no decoding, no encoding, no
// copy): a transform that adds one column to a batch of twenty pays for the columns it reads
// and the one it writes.
// `filter` copies the kept rows' bytes from the buffers without decoding them either.

import * as types from "./schema.js";
import { Field, Schema } from "./schema.js";
import {
  Bitmap,
  decodeColumn,
  encodeColumn,
  encodeTyped,
  filterColumn,
  inputReference,
  setNulls,
  typedArrayOf,
  typedColumn,
} from "./wire.js";

/** A batch built with columns that do not fit together (lengths, names, types). */
export class BatchError extends Error {
  get name() {
    return "BatchError";
  }
}

// A column: its field, and its values as an array and/or as a typed array and validity and/or
// its buffers as they arrived (and then `input`, its position in the input).
class Column {
  constructor(field, { values = null, typed = null, parts = null, input = null } = {}) {
    this.field = field;
    this.values = values;
    this.typed = typed;
    this.parts = parts;
    this.input = input;
  }

  get() {
    if (this.values === null) {
      if (this.parts !== null) this.values = decodeColumn(this.field, this.parts);
      else {
        this.values = typedToArray(this.typed, this.field.type?.kind === "bool");
      }
    }
    return this.values;
  }

  getTyped() {
    if (this.typed === null) {
      if (this.parts !== null) this.typed = typedColumn(this.field, this.parts);
      else {
        // From an array: through the wire encoding, which checks every value against the type.
        const parts = encodeColumn(this.field, this.values);
        this.typed = typedColumn(this.field, parts);
      }
    }
    return this.typed;
  }
}

const TYPED_TYPES = new Map([
  [Float64Array, types.float64],
  [Float32Array, types.float32],
  [Int8Array, types.int8],
  [Int16Array, types.int16],
  [Int32Array, types.int32],
  [BigInt64Array, types.int64],
  [Uint8Array, types.uint8],
  [Uint16Array, types.uint16],
  [Uint32Array, types.uint32],
  [BigUint64Array, types.uint64],
]);

function infer(name, values) {
  for (const v of values) {
    if (v === null || v === undefined) continue;
    if (typeof v === "boolean") return types.bool;
    if (typeof v === "bigint") return types.int64;
    if (typeof v === "number") return types.float64;
    if (typeof v === "string") return types.utf8;
    if (v instanceof Uint8Array || v instanceof ArrayBuffer) return types.binary;
    throw new BatchError(
      `column \`${name}\`: cannot store ${v?.constructor?.name ?? typeof v} values such as ${String(v)} ` +
        "(numbers, BigInts, strings, Uint8Arrays and booleans can be stored)",
    );
  }
  return null;
}

function isTyped(values) {
  return ArrayBuffer.isView(values) && !(values instanceof DataView);
}

// What `withColumn` takes as a typed column: a typed array, or `{ values, valid }`.
function typedInput(values) {
  if (isTyped(values)) return { values, valid: null };
  if (values && typeof values === "object" && !Array.isArray(values) && isTyped(values.values)) {
    const valid = values.valid ?? null;
    return { values: values.values, valid: valid === null || valid instanceof Bitmap ? valid : Bitmap.from(valid) };
  }
  return null;
}

/** Rows of a batch, by column. Build one with `Batch.fromColumns` or from another with
 * `withColumn`, `select`, `drop`, `rename` and `filter`; a batch never changes. */
export class Batch {
  #columns;
  #rows;

  constructor(columns, rows) {
    this.#columns = columns;
    this.#rows = rows;
  }

  static fromWire(schema, rows, parts) {
    const fields = schema.fields;
    const columns = new Array(fields.length);
    for (let i = 0; i < fields.length; i++) columns[i] = new Column(fields[i], { parts: parts[i], input: i });
    return new Batch(columns, rows);
  }

  /** A batch from `{ name: values }` (arrays, or typed arrays / `{ values, valid }` as
   * `withColumn` takes); types from `schema` (a `Schema`, or `{ name: type }`) where given, else
   * from the values (BigInt → int64, number → float64, string → utf8, Uint8Array → binary,
   * boolean → bool; a typed array → its own type). */
  static fromColumns(columns, schema = null) {
    let given = new Map();
    if (schema instanceof Schema) given = new Map(schema.fields.map((f) => [f.name, f]));
    else if (schema) given = new Map(Object.entries(schema).map(([n, t]) => [n, new Field(n, t)]));
    let rows = null;
    const out = [];
    for (const [name, values] of Object.entries(columns)) {
      const column = makeColumn(name, values, given.get(name)?.type ?? null, given.get(name)?.nullable ?? true);
      const n = column.typed ? column.typed.values.length : column.values.length;
      if (rows === null) rows = n;
      else if (n !== rows) throw new BatchError(`column \`${name}\` has ${n} values, the others ${rows}`);
      out.push(column);
    }
    return new Batch(out, rows ?? 0);
  }

  /** How many rows. */
  get numRows() {
    return this.#rows;
  }

  get length() {
    return this.#rows;
  }

  /** The columns' names and types (a column whose type is not known yet, built from nulls
   * only, has type `null`). */
  get schema() {
    return new Schema(this.#columns.map((c) => c.field));
  }

  /** The names, in order. */
  get columnNames() {
    return this.#columns.map((c) => c.field.name);
  }

  #find(name) {
    const columns = this.#columns;
    let at = 0;
    while (at < columns.length && columns[at].field.name !== name) at++;
    if (at === columns.length) {
      throw new BatchError(`no column \`${name}\` (the columns are ${this.columnNames.join(", ") || "none"})`);
    }
    return at;
  }

  #has(name) {
    return this.#columns.some((c) => c.field.name === name);
  }

  /** Column `name`'s values: an array, nulls as `null`. */
  column(name) {
    return this.#columns[this.#find(name)].get();
  }

  /** Column `name` (a number, date, time or boolean column) as `{ values, valid }`: a typed
   * array of its values (Float64Array, BigInt64Array, Int32Array, ...; booleans as a Uint8Array
   * of 0 and 1; what a null row holds is unspecified) and `valid`, a `Bitmap` with
   * `valid.get(i)`, or `null` when no row is null. The values may be a view of the host's
   * buffer: read them, do not write them. */
  typed(name) {
    return this.#columns[this.#find(name)].getTyped();
  }

  has(name) {
    return this.#has(name);
  }

  /** `{ name: array }` of every column. */
  toColumns() {
    return Object.fromEntries(this.#columns.map((c) => [c.field.name, c.get()]));
  }

  /** The rows as objects (convenient, and slower than working by column). */
  *rows() {
    const names = this.columnNames;
    const columns = this.#columns.map((c) => c.get());
    for (let i = 0; i < this.#rows; i++) {
      const row = {};
      names.forEach((n, j) => (row[n] = columns[j][i]));
      yield row;
    }
  }

  /** This batch with column `name` set to `values` (replaced in place if it exists, else added
   * at the end). `values` is an array (nulls as `null`), a typed array, or `{ values, valid }`
   * with `valid` null, a `Bitmap` or one flag per row. The type is `type`, else the replaced
   * column's, else the values' (and, when they are all null, the type `outputSchema` declared). */
  withColumn(name, values, type = null) {
    const at = this.#has(name) ? this.#find(name) : -1;
    if (type === null && at >= 0) type = this.#columns[at].field.type;
    const column = makeColumn(name, values, type, true);
    const n = column.typed ? column.typed.values.length : column.values.length;
    if (n !== this.#rows) throw new BatchError(`column \`${name}\` has ${n} values, the batch ${this.#rows} rows`);
    const columns = this.#columns.slice();
    if (at < 0) columns.push(column);
    else columns[at] = column;
    return new Batch(columns, this.#rows);
  }

  /** This batch with only `names`, in that order. */
  select(names) {
    return new Batch(
      names.map((n) => this.#columns[this.#find(n)]),
      this.#rows,
    );
  }

  /** This batch without `names` (a name or an array of names). */
  drop(names) {
    names = typeof names === "string" ? [names] : [...names];
    for (const n of names) this.#find(n);
    return new Batch(
      this.#columns.filter((c) => !names.includes(c.field.name)),
      this.#rows,
    );
  }

  /** This batch with columns renamed by `{ old: new }`. */
  rename(mapping) {
    for (const old of Object.keys(mapping)) this.#find(old);
    return new Batch(
      this.#columns.map((c) => {
        const name = Object.hasOwn(mapping, c.field.name) ? mapping[c.field.name] : c.field.name;
        return new Column(new Field(name, c.field.type, c.field.nullable), c);
      }),
      this.#rows,
    );
  }

  /** The rows where `mask` (one value per row: an array, a typed array, or a `Bitmap`) is true;
   * `null` counts as false. Columns that arrived from the host are copied from their buffers
   * without being decoded. */
  filter(mask) {
    const n = mask.length;
    if (n !== this.#rows) throw new BatchError(`a mask of ${n} values for ${this.#rows} rows`);
    const keep = new Uint32Array(n);
    let kept = 0;
    if (mask instanceof Bitmap) {
      for (let i = 0; i < n; i++) if (mask.get(i)) keep[kept++] = i;
    } else {
      for (let i = 0; i < n; i++) if (mask[i]) keep[kept++] = i;
    }
    const rows = keep.subarray(0, kept);
    const columns = this.#columns.map((c) => {
      if (c.values === null && c.parts !== null) return new Column(c.field, { parts: filterColumn(c.field, c.parts, rows) });
      if (c.values === null) {
        const { values, valid } = c.typed;
        const to = new values.constructor(kept);
        for (let i = 0; i < kept; i++) to[i] = values[rows[i]];
        let bits = null;
        if (valid !== null) {
          bits = Bitmap.empty(kept);
          for (let i = 0; i < kept; i++) bits.set(i, valid.get(rows[i]));
        }
        return new Column(c.field, { typed: { values: to, valid: bits } });
      }
      const values = c.values;
      const to = new Array(kept);
      for (let i = 0; i < kept; i++) to[i] = values[rows[i]];
      return new Column(c.field, { values: to });
    });
    return new Batch(columns, kept);
  }

  /** The buffers of this batch as a batch of `declared` (a `Schema`). */
  toWire(declared) {
    if (declared.fields.length !== this.#columns.length) {
      throw new BatchError(
        `process returned columns ${JSON.stringify(this.columnNames)} but outputSchema declared ${JSON.stringify(declared.names())}`,
      );
    }
    const buffers = [];
    const columns = this.#columns;
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i];
      const field = declared.fields[i];
      if (column.field.type !== null && !column.field.type.equals(field.type)) {
        throw new BatchError(
          `process returned column \`${column.field.name}\` as ${column.field.type} but outputSchema declared \`${field.name}\` as ${field.type}`,
        );
      }
      let parts;
      // An input column, unchanged (a filtered one is a new column): the host has it.
      if (column.input !== null) parts = [inputReference(this.#rows, column.input)];
      else if (column.parts !== null) parts = column.parts;
      else if (column.values === null) parts = encodeTyped(field, column.typed.values, column.typed.valid);
      else parts = encodeColumn(field, column.values);
      for (let j = 0; j < parts.length; j++) buffers.push(parts[j]);
    }
    return buffers;
  }
}

function makeColumn(name, values, type, nullable) {
  const typed = typedInput(values);
  if (typed !== null) {
    if (type === null) {
      type = TYPED_TYPES.get(typed.values.constructor) ?? null;
      if (type === null) throw new BatchError(`column \`${name}\`: cannot store a ${typed.values.constructor.name}`);
    }
    if (typed.valid !== null && typed.valid.length !== typed.values.length) {
      throw new BatchError(`column \`${name}\` has ${typed.values.length} values but validity for ${typed.valid.length}`);
    }
    // Kept as it is when the typed array is the type's own; else converted when sent.
    const own = typedArrayOf(type);
    if (own !== null && !(typed.values instanceof own) && type.kind !== "bool") {
      return new Column(new Field(name, type, nullable), { values: typedToArray(typed, false) });
    }
    return new Column(new Field(name, type, nullable), { typed });
  }
  if (!Array.isArray(values)) {
    if (values === null || values === undefined || typeof values[Symbol.iterator] !== "function") {
      throw new BatchError(`column \`${name}\`: values are an array or a typed array, not ${values}`);
    }
    values = Array.from(values);
  }
  return new Column(new Field(name, type ?? infer(name, values), nullable), { values });
}

// A typed column as an array, nulls as `null` (booleans from their 0 and 1 when `bool`). A plain
// loop: Array.from goes through the iterator protocol, microseconds per value without a JIT.
function typedToArray({ values, valid }, bool) {
  const n = values.length;
  const out = new Array(n);
  if (bool) for (let i = 0; i < n; i++) out[i] = values[i] !== 0;
  else for (let i = 0; i < n; i++) out[i] = values[i];
  if (valid !== null) setNulls(out, valid);
  return out;
}
