// The little of FlatBuffers that an Arrow schema message needs, in plain JavaScript.
//
// Arrow encodes a schema as a FlatBuffers table (`Message` holding a `Schema`). There is no
// FlatBuffers or arrow-js inside a plugin component, so this module reads and writes the format
// itself: tables with scalar, string, table, union and vector fields.
//
// Reading follows the format as specified: a table starts with a signed offset back to its
// vtable; the vtable lists, per field, where the field sits in the table (0: absent, default).
//
// Writing lays the buffer out front to back: a table's vtable, then the table, then what it
// points to. Offsets to strings, vectors and tables are unsigned and point forward, which this
// layout satisfies; every table is 8-byte aligned so 64-bit fields are aligned too.
//
// Scalars are named by the letters of Python's `struct` module, as the Python SDK's twin of this
// module does: b B h H i I q Q (8 to 64 bits, lower case signed).

export class FlatBufferError extends Error {
  get name() {
    return "FlatBufferError";
  }
}

const SCALARS = {
  b: [1, "getInt8", "setInt8"],
  B: [1, "getUint8", "setUint8"],
  h: [2, "getInt16", "setInt16"],
  H: [2, "getUint16", "setUint16"],
  i: [4, "getInt32", "setInt32"],
  I: [4, "getUint32", "setUint32"],
  q: [8, "getBigInt64", "setBigInt64"],
  Q: [8, "getBigUint64", "setBigUint64"],
};

function scalarOf(fmt) {
  const s = SCALARS[fmt];
  if (!s) throw new TypeError(`no FlatBuffer scalar of format ${fmt}`);
  return s;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

// Every read is bounds-checked here, so a malformed buffer is a FlatBufferError, never a
// RangeError from the DataView.
function read(view, fmt, at) {
  const [size, get] = scalarOf(fmt);
  if (at < 0 || at + size > view.byteLength) {
    throw new FlatBufferError(`a ${size}-byte value at ${at} is outside the buffer`);
  }
  return view[get](at, true);
}

/** A table inside a FlatBuffer, read lazily. */
export class Table {
  constructor(buf, pos) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = pos;
    if (pos < 0 || pos + 4 > buf.length) {
      throw new FlatBufferError(`table at ${pos} is outside the buffer`);
    }
    this.vtable = pos - this.view.getInt32(pos, true);
    if (this.vtable < 0 || this.vtable + 4 > buf.length) {
      throw new FlatBufferError(`vtable of the table at ${pos} is outside the buffer`);
    }
    this.vtableLen = this.view.getUint16(this.vtable, true);
  }

  /** The root table of a FlatBuffer (a Uint8Array). */
  static root(buf) {
    if (buf.length < 4) throw new FlatBufferError("a FlatBuffer holds at least its root offset");
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    return new Table(buf, view.getUint32(0, true));
  }

  field(index) {
    const entry = 4 + 2 * index;
    if (entry + 2 > this.vtableLen) return 0;
    return read(this.view, "H", this.vtable + entry);
  }

  /** A scalar field (format `fmt`), or `fallback` when absent. */
  scalar(index, fmt, fallback) {
    const offset = this.field(index);
    if (offset === 0) return fallback;
    return read(this.view, fmt, this.pos + offset);
  }

  target(index) {
    const offset = this.field(index);
    if (offset === 0) return null;
    const at = this.pos + offset;
    return at + read(this.view, "I", at);
  }

  /** A string field, or `null` when absent. */
  string(index) {
    const at = this.target(index);
    if (at === null) return null;
    const length = read(this.view, "I", at);
    if (at + 4 + length > this.buf.length) {
      throw new FlatBufferError("a string runs past the end of the buffer");
    }
    try {
      return UTF8.decode(this.buf.subarray(at + 4, at + 4 + length));
    } catch (err) {
      throw new FlatBufferError(`a string is not UTF-8 (${err.message})`);
    }
  }

  /** A table (or union value) field, or `null` when absent. */
  table(index) {
    const at = this.target(index);
    return at === null ? null : new Table(this.buf, at);
  }

  /** A vector of tables, empty when absent. */
  tables(index) {
    const at = this.target(index);
    if (at === null) return [];
    const length = read(this.view, "I", at);
    if (at + 4 + 4 * length > this.buf.length) {
      throw new FlatBufferError("a vector runs past the end of the buffer");
    }
    const out = [];
    for (let i = 0; i < length; i++) {
      const slot = at + 4 + 4 * i;
      out.push(new Table(this.buf, slot + read(this.view, "I", slot)));
    }
    return out;
  }
}

/** A string field's value, for the builder. */
export class FbString {
  constructor(text) {
    this.text = text;
  }
}

/** A table to write: `fields` maps a field index to `[fmt, value]` for a scalar, or to an
 * `FbString`, `TableValue` or `TableVector`. */
export class TableValue {
  constructor(fields) {
    this.fields = fields;
  }
}

/** A vector of tables, for the builder. */
export class TableVector {
  constructor(tables) {
    this.tables = tables;
  }
}

const ENCODER = new TextEncoder();

/** Writes a FlatBuffer whose root is a `TableValue`. */
export class Builder {
  constructor() {
    this.bytes = [];
  }

  get length() {
    return this.bytes.length;
  }

  align(n) {
    while (this.bytes.length % n) this.bytes.push(0);
  }

  zeros(n) {
    for (let i = 0; i < n; i++) this.bytes.push(0);
  }

  put(fmt, at, value) {
    const [size, , set] = scalarOf(fmt);
    const view = new DataView(new ArrayBuffer(8));
    view[set](0, size === 8 ? BigInt(value) : value, true);
    for (let i = 0; i < size; i++) this.bytes[at + i] = view.getUint8(i);
  }

  patch(at, target) {
    this.put("I", at, target - at);
  }

  string(text) {
    this.align(4);
    const raw = ENCODER.encode(text);
    const at = this.bytes.length;
    this.zeros(4);
    this.put("I", at, raw.length);
    for (const b of raw) this.bytes.push(b);
    this.bytes.push(0);
    return at;
  }

  vector(tables) {
    this.align(4);
    const at = this.bytes.length;
    this.zeros(4 + 4 * tables.length);
    this.put("I", at, tables.length);
    tables.forEach((table, i) => this.patch(at + 4 + 4 * i, this.table(table)));
    return at;
  }

  table(table) {
    const indexes = Object.keys(table.fields)
      .map(Number)
      .sort((a, b) => a - b);
    // Fields in the table after its 4-byte vtable offset, each aligned to its size.
    const layout = [];
    let size = 4;
    for (const index of indexes) {
      const value = table.fields[index];
      const width = Array.isArray(value) ? scalarOf(value[0])[0] : 4;
      size = Math.ceil(size / width) * width;
      layout.push([index, size, value]);
      size += width;
    }
    const slots = indexes.length ? indexes[indexes.length - 1] + 1 : 0;
    const vtable = new Array(slots).fill(0);
    for (const [index, offset] of layout) vtable[index] = offset;
    const vtableSize = 4 + 2 * slots;
    // The vtable right before the table, the table 8-byte aligned.
    this.align(2);
    while ((this.bytes.length + vtableSize) % 8) this.zeros(2);
    const vtableAt = this.bytes.length;
    this.zeros(vtableSize);
    this.put("H", vtableAt, vtableSize);
    this.put("H", vtableAt + 2, size);
    vtable.forEach((offset, i) => this.put("H", vtableAt + 4 + 2 * i, offset));
    const tableAt = this.bytes.length;
    this.zeros(size);
    this.put("i", tableAt, tableAt - vtableAt);
    const children = [];
    for (const [, offset, value] of layout) {
      if (Array.isArray(value)) this.put(value[0], tableAt + offset, value[1]);
      else children.push([tableAt + offset, value]);
    }
    for (const [at, value] of children) {
      let target;
      if (value instanceof FbString) target = this.string(value.text);
      else if (value instanceof TableVector) target = this.vector(value.tables);
      else if (value instanceof TableValue) target = this.table(value);
      else throw new TypeError(`cannot write ${value?.constructor?.name ?? value} in a FlatBuffer`);
      this.patch(at, target);
    }
    return tableAt;
  }

  /** The bytes (a Uint8Array) of a FlatBuffer with `root` as its root table. */
  finish(root) {
    this.bytes = [0, 0, 0, 0];
    this.patch(0, this.table(root));
    this.align(8);
    return Uint8Array.from(this.bytes);
  }
}
