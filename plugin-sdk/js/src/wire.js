// Columns at the plugin boundary, in plain JavaScript: the Arrow buffers of each column in
// "wire order" (see `plugin.wit`), decoded into arrays and encoded back.
//
// For each column: a 24-byte header (six little-endian u32: length, offset, validity bit offset,
// has validity, buffer count, child count), then the validity bitmap if it has one, then its
// buffers (offsets, values, ...).
//
// Two ways in and out. `decodeColumn` / `encodeColumn` work on plain arrays, nulls as `null`
// (64-bit integers as BigInt, exact, as arrow-js does). `typedColumn` / `encodeTyped` work on a
// typed array over the values plus a validity `Bitmap`, without a step per value: numbers are
// viewed in place where the buffer is aligned and sent back as their bytes. `filterColumn`
// keeps rows of a column straight from its buffers, never making a value of them.

/** Buffers that do not fit the schema (a bug on one side or the other). */
export class WireError extends Error {
  get name() {
    return "WireError";
  }
}

const HEADER_SIZE = 24;

// The typed array of each fixed-width type (both sides little-endian, as wasm is).
function arrayOf(type) {
  switch (type.kind) {
    case "int": {
      const [bits, signed] = type.params;
      if (bits === 8) return signed ? Int8Array : Uint8Array;
      if (bits === 16) return signed ? Int16Array : Uint16Array;
      if (bits === 32) return signed ? Int32Array : Uint32Array;
      return signed ? BigInt64Array : BigUint64Array;
    }
    case "float":
      return type.params[0] === 32 ? Float32Array : Float64Array;
    case "date32":
      return Int32Array;
    case "timestamp":
    case "duration":
      return BigInt64Array;
    default:
      return null;
  }
}

/** The typed array class that holds values of `type` (a DataType), or null when the type is
 * not fixed-width (booleans, strings, binary, null). */
export const typedArrayOf = (type) => (type ? arrayOf(type) : null);

function isVariable(kind) {
  return kind === "utf8" || kind === "binary" || kind === "large_utf8" || kind === "large_binary";
}

// Little-endian u32 at byte `at`, read byte by byte: inside a component SpiderMonkey has no JIT,
// and a DataView (an object and a call per read) costs several times these few operations.
function u32(bytes, at) {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

/** The header of a column's wire buffers: [length, offset, validity offset, has validity,
 * buffer count, child count]. */
export function readHeader(header, name = "?") {
  if (!(header instanceof Uint8Array) || header.length !== HEADER_SIZE) {
    throw new WireError(`column \`${name}\`: a header of ${header?.length} bytes`);
  }
  return [u32(header, 0), u32(header, 4), u32(header, 8), u32(header, 12), u32(header, 16), u32(header, 20)];
}

// The "has validity" value of a header that stands for an input column returned unchanged.
const SAME_AS_INPUT = 0xffffffff;

/** The header alone that stands for input column `index` (of `rows` rows) in a transform's
 * output: the host keeps the column it sent, so it does not cross back. */
export function inputReference(rows, index) {
  const out = header(rows, false, 0);
  out[4] = index & 0xff;
  out[5] = (index >>> 8) & 0xff;
  out[6] = (index >>> 16) & 0xff;
  out[7] = index >>> 24;
  out.fill(0xff, 12, 16);
  return out;
}

/** The input column a column's `parts` stand for, or `null` when they are data. */
export function isInputReference(parts) {
  if (parts.length !== 1 || parts[0].length !== HEADER_SIZE) return null;
  const [, index, , hasValidity] = readHeader(parts[0]);
  return hasValidity === SAME_AS_INPUT ? index : null;
}

function header(length, hasValidity, buffers) {
  const out = new Uint8Array(HEADER_SIZE);
  out[0] = length & 0xff;
  out[1] = (length >>> 8) & 0xff;
  out[2] = (length >>> 16) & 0xff;
  out[3] = length >>> 24;
  out[12] = hasValidity ? 1 : 0;
  out[16] = buffers;
  return out;
}

// A column's buffers as the contract lists them: header, validity if any, then the buffers.
// Built by index: spreading (`[h, ...v, ...b]`) goes through the iterator protocol, which the
// interpreter inside a component runs at microseconds per element.
function wireParts(head, validity, buffers) {
  const out = [head];
  if (validity !== null) out.push(validity);
  for (let i = 0; i < buffers.length; i++) out.push(buffers[i]);
  return out;
}

function asBytes(buffer) {
  if (buffer instanceof Uint8Array) return buffer;
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  if (Array.isArray(buffer)) return Uint8Array.from(buffer);
  throw new WireError(`a buffer is ${buffer?.constructor?.name ?? typeof buffer}, not bytes`);
}

/** Groups the flat wire-order buffer list into one list per column of `schema`; with `rows`,
 * checks every column holds that many (before anything is sized by a header's length). */
export function splitColumns(schema, buffers, rows = null) {
  const out = [];
  const fields = schema.fields;
  let at = 0;
  for (let f = 0; f < fields.length; f++) {
    const field = fields[f];
    if (at >= buffers.length) throw new WireError(`the batch ended before column \`${field.name}\``);
    const head = asBytes(buffers[at]);
    const [length, , , hasValidity, nBuffers, nChildren] = readHeader(head, field.name);
    if (hasValidity === SAME_AS_INPUT) {
      // A reference to an input column (in a transform's output): the header alone.
      out.push([head]);
      at += 1;
      continue;
    }
    if (rows !== null && length !== rows) {
      throw new WireError(`column \`${field.name}\` has ${length} rows, the batch ${rows}`);
    }
    if (nChildren) throw new WireError(`column \`${field.name}\`: nested columns are not handled yet`);
    const end = at + 1 + hasValidity + nBuffers;
    if (hasValidity > 1 || end > buffers.length) {
      throw new WireError(`column \`${field.name}\`: fewer buffers than its header says`);
    }
    const parts = [head];
    for (let i = at + 1; i < end; i++) parts.push(asBytes(buffers[i]));
    out.push(parts);
    at = end;
  }
  if (at !== buffers.length) throw new WireError(`${buffers.length - at} buffers after the last column`);
  return out;
}

// Bit `bit` of `bytes`, least significant first: `Bitmap.get` without the method call, for loops
// over every row.
const isSet = (bytes, bit) => (bytes[bit >> 3] & (1 << (bit & 7))) !== 0;

// The number of set bits of each byte value.
const POPCOUNT = new Uint8Array(256);
for (let i = 1; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1];

/** A validity bitmap: bit `offset + i` of `bytes` (least significant first, as Arrow orders
 * them) says whether row i holds a value. */
export class Bitmap {
  constructor(bytes, offset, length) {
    this.bytes = bytes;
    this.offset = offset;
    this.length = length;
  }

  /** A bitmap of `length` rows, every one unset. */
  static empty(length) {
    return new Bitmap(new Uint8Array((length + 7) >> 3), 0, length);
  }

  /** A bitmap of the truthiness of each of `flags`. */
  static from(flags) {
    const out = Bitmap.empty(flags.length);
    for (let i = 0; i < flags.length; i++) if (flags[i]) out.bytes[i >> 3] |= 1 << (i & 7);
    return out;
  }

  get(i) {
    const bit = this.offset + i;
    return (this.bytes[bit >> 3] & (1 << (bit & 7))) !== 0;
  }

  set(i, on = true) {
    const bit = this.offset + i;
    if (on) this.bytes[bit >> 3] |= 1 << (bit & 7);
    else this.bytes[bit >> 3] &= ~(1 << (bit & 7));
  }

  /** How many rows are unset (null, for a validity bitmap). */
  countUnset() {
    const bytes = this.bytes;
    const offset = this.offset;
    const length = this.length;
    let set = 0;
    let i = 0;
    if ((offset & 7) === 0) {
      // A byte at a time: a call to `get` per row is most of a batch's cost without a JIT.
      const first = offset >> 3;
      const whole = length >> 3;
      for (let b = 0; b < whole; b++) set += POPCOUNT[bytes[first + b]];
      i = whole << 3;
    }
    for (; i < length; i++) {
      const bit = offset + i;
      if (bytes[bit >> 3] & (1 << (bit & 7))) set++;
    }
    return length - set;
  }

  /** The rows set in both (a null on either side is a null); `null` stands for all set. */
  static and(a, b) {
    if (a === null) return b;
    if (b === null) return a;
    const out = Bitmap.empty(a.length);
    if (a.offset % 8 === 0 && b.offset % 8 === 0) {
      // Whole bytes at a time (bits past the end are never read).
      const x = a.offset >> 3;
      const y = b.offset >> 3;
      for (let i = 0; i < out.bytes.length; i++) out.bytes[i] = a.bytes[x + i] & b.bytes[y + i];
      return out;
    }
    for (let i = 0; i < a.length; i++) if (a.get(i) && b.get(i)) out.bytes[i >> 3] |= 1 << (i & 7);
    return out;
  }

  /** The bytes of this bitmap starting at bit 0, as the wire carries them. */
  toBytes() {
    if (this.offset === 0 && this.bytes.length === (this.length + 7) >> 3) return this.bytes;
    const out = new Uint8Array((this.length + 7) >> 3);
    for (let i = 0; i < this.length; i++) if (this.get(i)) out[i >> 3] |= 1 << (i & 7);
    return out;
  }
}

// `count` values of `Type` from byte `start` of `bytes`, viewed in place when aligned (the host's
// buffers usually are) and copied when not.
function view(Type, bytes, start, count) {
  const at = bytes.byteOffset + start;
  if (at % Type.BYTES_PER_ELEMENT === 0) return new Type(bytes.buffer, at, count);
  return new Type(bytes.slice(start, start + count * Type.BYTES_PER_ELEMENT).buffer, 0, count);
}

function validityOf(name, parts, validityOffset, hasValidity, length) {
  if (!hasValidity) return null;
  if (parts[1].length * 8 < validityOffset + length) {
    throw new WireError(`column \`${name}\`: a validity bitmap too short`);
  }
  return new Bitmap(parts[1], validityOffset, length);
}

function checkBuffers(field, n, expected) {
  if (n !== expected) throw new WireError(`column \`${field.name}\`: ${n} buffers for a ${field.type}`);
}

function fixedValues(field, Type, buffers, offset, length) {
  const values = buffers[0];
  const size = Type.BYTES_PER_ELEMENT;
  if (values.length % size || values.length / size < offset + length) {
    throw new WireError(`column \`${field.name}\`: a values buffer of ${values.length} bytes`);
  }
  return view(Type, values, offset * size, length);
}

// The end offsets of a string or binary column as Numbers, checked against the data.
function ends(field, buffers, offset, length) {
  const large = field.type.kind.startsWith("large");
  const Type = large ? BigInt64Array : Int32Array;
  const size = Type.BYTES_PER_ELEMENT;
  const raw = buffers[0];
  if (raw.length % size || raw.length / size < offset + length + 1) {
    throw new WireError(`column \`${field.name}\`: offsets out of range`);
  }
  const typed = view(Type, raw, offset * size, length + 1);
  let out = typed;
  if (large) {
    out = new Array(length + 1);
    for (let i = 0; i <= length; i++) out[i] = Number(typed[i]);
  }
  const data = buffers[1];
  for (let i = 0; i < length; i++) {
    if (out[i] < 0 || out[i] > out[i + 1]) throw new WireError(`column \`${field.name}\`: offsets out of range`);
  }
  if (out[0] < 0 || out[length] > data.length) throw new WireError(`column \`${field.name}\`: offsets out of range`);
  return out;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Column `field` (its wire buffers, as `splitColumns` grouped them) as an array, nulls as
 * `null`. 64-bit integers, timestamps and durations (in their unit) are BigInt; smaller
 * integers, dates (days), floats are Numbers; strings; binary as Uint8Array; booleans. */
export function decodeColumn(field, parts) {
  const [length, offset, validityOffset, hasValidity, nBuffers] = readHeader(parts[0], field.name);
  const buffers = parts.slice(1 + hasValidity);
  if (buffers.length !== nBuffers) throw new WireError(`column \`${field.name}\`: fewer buffers than its header says`);
  const kind = field.type.kind;
  if (kind === "null") return new Array(length).fill(null);
  const valid = validityOf(field.name, parts, validityOffset, hasValidity, length);
  const Type = arrayOf(field.type);
  let out;
  if (Type !== null) {
    checkBuffers(field, nBuffers, 1);
    // A plain loop: Array.from goes through the iterator protocol, a few microseconds per value
    // without a JIT.
    const typed = fixedValues(field, Type, buffers, offset, length);
    out = new Array(length);
    for (let i = 0; i < length; i++) out[i] = typed[i];
  } else if (kind === "bool") {
    if (nBuffers !== 1 || buffers[0].length * 8 < offset + length) {
      throw new WireError(`column \`${field.name}\`: a bitmap too short for ${length} values`);
    }
    out = new Array(length);
    for (let i = 0; i < length; i++) out[i] = isSet(buffers[0], offset + i);
  } else if (isVariable(kind)) {
    checkBuffers(field, nBuffers, 2);
    const at = ends(field, buffers, offset, length);
    const data = buffers[1];
    out = new Array(length);
    const text = kind.endsWith("utf8");
    for (let i = 0; i < length; i++) {
      if (valid !== null && !valid.get(i)) continue;
      const piece = data.subarray(at[i], at[i + 1]);
      if (!text) out[i] = piece.slice();
      else {
        try {
          out[i] = UTF8.decode(piece);
        } catch (err) {
          throw new WireError(`column \`${field.name}\`: invalid UTF-8 (${err.message})`);
        }
      }
    }
  } else {
    throw new WireError(`column \`${field.name}\`: type ${field.type} is not handled`);
  }
  if (valid !== null) setNulls(out, valid);
  return out;
}

/** Sets `out[i]` to `null` at each row `valid` (a `Bitmap`) has unset: the bits tested inline,
 * a whole byte of valid rows at a time when the bitmap starts on a byte, rather than a call to
 * `get` per row. */
export function setNulls(out, valid) {
  const bytes = valid.bytes;
  const offset = valid.offset;
  const n = valid.length;
  let i = 0;
  if ((offset & 7) === 0) {
    const first = offset >> 3;
    for (; i + 8 <= n; i += 8) {
      const byte = bytes[first + (i >> 3)];
      if (byte === 0xff) continue;
      for (let j = 0; j < 8; j++) if ((byte & (1 << j)) === 0) out[i + j] = null;
    }
  }
  for (; i < n; i++) {
    const bit = offset + i;
    if ((bytes[bit >> 3] & (1 << (bit & 7))) === 0) out[i] = null;
  }
}

/** Column `field` of a fixed-width type as `{ values, valid }`: a typed array of its `length`
 * values (what a null row holds is unspecified) and a validity `Bitmap`, or `null` when no row
 * is null. Booleans come as a Uint8Array of 0 and 1. */
export function typedColumn(field, parts) {
  const [length, offset, validityOffset, hasValidity, nBuffers] = readHeader(parts[0], field.name);
  const buffers = parts.slice(1 + hasValidity);
  if (buffers.length !== nBuffers) throw new WireError(`column \`${field.name}\`: fewer buffers than its header says`);
  const valid = validityOf(field.name, parts, validityOffset, hasValidity, length);
  const Type = arrayOf(field.type);
  if (Type !== null) {
    checkBuffers(field, nBuffers, 1);
    return { values: fixedValues(field, Type, buffers, offset, length), valid };
  }
  if (field.type.kind === "bool") {
    if (nBuffers !== 1 || buffers[0].length * 8 < offset + length) {
      throw new WireError(`column \`${field.name}\`: a bitmap too short for ${length} values`);
    }
    const values = new Uint8Array(length);
    const bytes = buffers[0];
    for (let i = 0; i < length; i++) values[i] = isSet(bytes, offset + i) ? 1 : 0;
    return { values, valid };
  }
  throw new WireError(`column \`${field.name}\` is ${field.type}: typed access is for numbers, dates, times and booleans`);
}

function typeName(v) {
  if (v === null || v === undefined) return String(v);
  return typeof v === "object" ? (v.constructor?.name ?? "object") : typeof v;
}

function show(v) {
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "string") return JSON.stringify(v);
  return String(v);
}

function wrongType(field, values, why) {
  const sample = values.find((v) => v !== null && v !== undefined);
  return new WireError(
    `column \`${field.name}\` is declared ${field.type} but holds ${typeName(sample)} values such as ${show(sample)} (${why})`,
  );
}

// Integer bounds per typed array, for the check that the typed arrays themselves skip (they
// wrap silently; a value that does not fit is an error, as in the other SDKs).
const BOUNDS = new Map([
  [Int8Array, [-128, 127]],
  [Uint8Array, [0, 255]],
  [Int16Array, [-32768, 32767]],
  [Uint16Array, [0, 65535]],
  [Int32Array, [-(2 ** 31), 2 ** 31 - 1]],
  [Uint32Array, [0, 2 ** 32 - 1]],
  [BigInt64Array, [-(2n ** 63n), 2n ** 63n - 1n]],
  [BigUint64Array, [0n, 2n ** 64n - 1n]],
]);

function fillFixed(field, Type, values, out) {
  const bounds = BOUNDS.get(Type);
  const n = values.length;
  if (Type === Float64Array || Type === Float32Array) {
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v === "number") out[i] = v;
      else if (v === null || v === undefined) out[i] = 0;
      else if (typeof v === "bigint") out[i] = Number(v);
      else throw wrongType(field, values, "a float column holds numbers");
    }
  } else if (Type === BigInt64Array || Type === BigUint64Array) {
    const [lo, hi] = bounds;
    for (let i = 0; i < n; i++) {
      let v = values[i];
      if (v === null || v === undefined) v = 0n;
      else if (typeof v === "number") {
        if (!Number.isInteger(v)) throw wrongType(field, [v], "not an integer");
        v = BigInt(v);
      } else if (typeof v !== "bigint") throw wrongType(field, values, "a 64-bit column holds BigInt or integral numbers");
      if (v < lo || v > hi) throw wrongType(field, [v], `out of range for ${field.type}`);
      out[i] = v;
    }
  } else {
    const [lo, hi] = bounds;
    for (let i = 0; i < n; i++) {
      let v = values[i];
      if (v === null || v === undefined) v = 0;
      else if (typeof v === "bigint") v = Number(v);
      else if (typeof v !== "number") throw wrongType(field, values, "an integer column holds numbers");
      if (!Number.isInteger(v)) throw wrongType(field, [v], "not an integer");
      if (v < lo || v > hi) throw wrongType(field, [v], `out of range for ${field.type}`);
      out[i] = v;
    }
  }
  return out;
}

const ENCODER = new TextEncoder();

function bytesOf(field, values, v) {
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw wrongType(field, values, "a binary column holds Uint8Array values");
}

/** The wire buffers of `values` (an array, nulls as `null`) as a column of `field`. */
export function encodeColumn(field, values) {
  const n = values.length;
  let nulls = 0;
  for (let i = 0; i < n; i++) if (values[i] === null || values[i] === undefined) nulls++;
  if (nulls && !field.nullable) {
    throw new WireError(`column \`${field.name}\` is declared not null but has ${nulls} nulls`);
  }
  let validity = null;
  if (nulls) {
    const bits = Bitmap.empty(n);
    for (let i = 0; i < n; i++) if (values[i] !== null && values[i] !== undefined) bits.bytes[i >> 3] |= 1 << (i & 7);
    validity = bits.bytes;
  }
  const kind = field.type?.kind;
  const Type = field.type ? arrayOf(field.type) : null;
  let buffers;
  if (kind === "null") {
    buffers = [];
    validity = null;
  } else if (Type !== null) {
    const out = fillFixed(field, Type, values, new Type(n));
    buffers = [new Uint8Array(out.buffer)];
  } else if (kind === "bool") {
    buffers = [Bitmap.from(values).bytes];
  } else if (isVariable(kind)) {
    const text = kind.endsWith("utf8");
    const large = kind.startsWith("large");
    const at = large ? new BigInt64Array(n + 1) : new Int32Array(n + 1);
    let data;
    let total = 0;
    if (text) {
      // One buffer for all the strings: at most three bytes per UTF-16 unit, trimmed after.
      let room = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) continue;
        if (typeof v !== "string") throw wrongType(field, values, "a string column holds strings");
        room += v.length * 3;
      }
      data = new Uint8Array(room);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v !== null && v !== undefined && v.length) total += ENCODER.encodeInto(v, data.subarray(total)).written;
        if (!large && total >= 2 ** 31) throw new WireError(`column \`${field.name}\`: more than 2 GiB of text in one batch`);
        at[i + 1] = large ? BigInt(total) : total;
      }
      data = data.slice(0, total);
    } else {
      const pieces = new Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        const p = v === null || v === undefined ? null : bytesOf(field, values, v);
        pieces[i] = p;
        if (p) total += p.length;
      }
      if (!large && total >= 2 ** 31) throw new WireError(`column \`${field.name}\`: more than 2 GiB of text in one batch`);
      data = new Uint8Array(total);
      let end = 0;
      for (let i = 0; i < n; i++) {
        const p = pieces[i];
        if (p) {
          data.set(p, end);
          end += p.length;
        }
        at[i + 1] = large ? BigInt(end) : end;
      }
    }
    buffers = [new Uint8Array(at.buffer), data];
  } else {
    throw new WireError(`column \`${field.name}\`: type ${field.type} is not handled`);
  }
  return wireParts(header(n, validity !== null, buffers.length), validity, buffers);
}

/** The wire buffers of a typed column: `values` a typed array (of the field's own typed array
 * class to be sent as it is; another is converted value by value), `valid` null (no nulls), a
 * `Bitmap`, or one flag per row. */
export function encodeTyped(field, values, valid = null) {
  const n = values.length;
  let bits = null;
  if (valid !== null && valid !== undefined) {
    bits = valid instanceof Bitmap ? valid : Bitmap.from(valid);
    if (bits.length !== n) {
      throw new WireError(`column \`${field.name}\`: ${n} values but validity for ${bits.length}`);
    }
  }
  const nulls = bits === null ? 0 : bits.countUnset();
  if (nulls && !field.nullable) {
    throw new WireError(`column \`${field.name}\` is declared not null but has ${nulls} nulls`);
  }
  const Type = arrayOf(field.type);
  if (Type === null || !(values instanceof Type)) {
    // Another representation: through the plain path, nulls as null.
    const plain = new Array(n);
    for (let i = 0; i < n; i++) plain[i] = values[i];
    if (field.type.kind === "bool") for (let i = 0; i < n; i++) plain[i] = plain[i] !== 0 && plain[i] !== 0n && Boolean(plain[i]);
    if (bits !== null) setNulls(plain, bits);
    return encodeColumn(field, plain);
  }
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return wireParts(header(n, nulls > 0, 1), nulls ? bits.toBytes() : null, [bytes]);
}

/** Column `field`'s rows at `rows` (ascending indexes, a typed array or array), as new wire
 * buffers: values copied by index from the buffers as they are, nothing decoded. */
export function filterColumn(field, parts, rows) {
  const [length, offset, validityOffset, hasValidity, nBuffers] = readHeader(parts[0], field.name);
  const buffers = parts.slice(1 + hasValidity);
  if (buffers.length !== nBuffers) throw new WireError(`column \`${field.name}\`: fewer buffers than its header says`);
  const n = rows.length;
  const kind = field.type.kind;
  if (kind === "null") return [header(n, false, 0)];
  const valid = validityOf(field.name, parts, validityOffset, hasValidity, length);
  let keptValid = null;
  if (valid !== null) {
    keptValid = Bitmap.empty(n);
    let nulls = 0;
    for (let i = 0; i < n; i++) {
      if (isSet(valid.bytes, valid.offset + rows[i])) keptValid.bytes[i >> 3] |= 1 << (i & 7);
      else nulls++;
    }
    if (nulls === 0) keptValid = null;
  }
  const validity = keptValid === null ? null : keptValid.bytes;
  const Type = arrayOf(field.type);
  let out;
  if (Type !== null) {
    checkBuffers(field, nBuffers, 1);
    const from = fixedValues(field, Type, buffers, offset, length);
    const to = new Type(n);
    for (let i = 0; i < n; i++) to[i] = from[rows[i]];
    out = [new Uint8Array(to.buffer)];
  } else if (kind === "bool") {
    if (nBuffers !== 1 || buffers[0].length * 8 < offset + length) {
      throw new WireError(`column \`${field.name}\`: a bitmap too short for ${length} values`);
    }
    const to = Bitmap.empty(n);
    for (let i = 0; i < n; i++) if (isSet(buffers[0], offset + rows[i])) to.bytes[i >> 3] |= 1 << (i & 7);
    out = [to.bytes];
  } else if (isVariable(kind)) {
    checkBuffers(field, nBuffers, 2);
    const at = ends(field, buffers, offset, length);
    const large = kind.startsWith("large");
    const to = large ? new BigInt64Array(n + 1) : new Int32Array(n + 1);
    let total = 0;
    for (let i = 0; i < n; i++) total += at[rows[i] + 1] - at[rows[i]];
    const data = new Uint8Array(total);
    let end = 0;
    for (let i = 0; i < n; i++) {
      const r = rows[i];
      data.set(buffers[1].subarray(at[r], at[r + 1]), end);
      end += at[r + 1] - at[r];
      to[i + 1] = large ? BigInt(end) : end;
    }
    out = [new Uint8Array(to.buffer), data];
  } else {
    throw new WireError(`column \`${field.name}\`: type ${field.type} is not handled`);
  }
  return wireParts(header(n, validity !== null, out.length), validity, out);
}
