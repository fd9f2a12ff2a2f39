// `compute`, in JavaScript: adds a column `output = left op right`, each operand a numeric column
// or a constant. Integers with + - * % give a long (wrapping on overflow, as Rust's i64 does);
// anything with a double, or `/`, gives a double. A null operand, or an integer `%` by zero,
// gives null. The same plugin as the Rust `compute`, giving the same values to the last bit.
//
//     [[transform]]
//     plugin = "compute"
//     config = { output = "doubled", left = "value", op = "*", right = 2 }
//
// Written on the SDK's typed path: columns are read as typed arrays and the output is built as
// one, so a batch costs one loop and no value is boxed. 64-bit integers are worked on as their
// two 32-bit halves while they fit in 32 bits (exact in doubles), and as BigInt when they do not.

import { PluginError, Schema, Field, Transform, exportPlugin, float64, int64, Bitmap } from "weir-plugin";

const OPS = ["+", "-", "*", "/", "%"];
const KEYS = ["output", "left", "op", "right"];

// The config with every number as its literal text ({ literal: "2.0" }): JSON.parse would read
// `2` and `2.0` alike, and whether a constant is an integer decides the output's type.
function literals(text) {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === "-" || (c >= "0" && c <= "9")) {
      const number = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i))[0];
      out += JSON.stringify({ literal: number });
      i += number.length;
    } else {
      out += c;
      i++;
    }
  }
  return JSON.parse(out);
}

// An operand from the config: a column name, an integer constant (BigInt) or a double.
function operand(value, key) {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof value.literal === "string") {
    const text = value.literal;
    if (/^-?\d+$/.test(text)) {
      const n = BigInt(text);
      if (n >= -(2n ** 63n) && n < 2n ** 63n) return n;
    }
    return Number(text);
  }
  if (typeof value === "boolean") throw new PluginError("an operand is a column name or a number, not a boolean");
  throw new PluginError(`compute needs \`${key}\`, a column name or a number`);
}

const HALF = 4294967296;

export class Compute extends Transform {
  static description = "Adds a column computed from two operands: columns or constants, joined by + - * / or %.";

  constructor(config, configText) {
    super(config, configText);
    const unknown = Object.keys(config).filter((k) => !KEYS.includes(k)).sort();
    if (unknown.length) throw new PluginError(`unknown config key(s): ${unknown.join(", ")}`);
    if (!OPS.includes(config.op)) throw new PluginError(`op \`${config.op}\` is not one of + - * / %`);
    for (const key of ["output", "left", "right"]) {
      if (!(key in config)) throw new PluginError(`compute needs \`${key}\``);
    }
    const exact = literals(this.configText);
    this.output = config.output;
    this.left = operand(exact.left, "left");
    this.right = operand(exact.right, "right");
    this.op = config.op;
    this.integer = false;
  }

  isInteger(input, operand) {
    if (typeof operand === "bigint") return true;
    if (typeof operand === "number") return false;
    if (!input.names().includes(operand)) throw new PluginError(`the input has no column \`${operand}\``);
    const type = input.field(operand).type;
    if (type.kind === "int" && type.params[1]) return true;
    if (type.kind === "float") return false;
    throw new PluginError(`column \`${operand}\` is ${type}; compute needs numbers`);
  }

  outputSchema(input) {
    this.integer = this.isInteger(input, this.left) && this.isInteger(input, this.right) && this.op !== "/";
    if (input.names().includes(this.output)) throw new PluginError(`the input already has a column \`${this.output}\``);
    return new Schema([...input.fields, new Field(this.output, this.integer ? int64 : float64)]);
  }

  process(batch) {
    return this.integer ? this.integers(batch) : this.doubles(batch);
  }

  // Doubles: every operand as a double (64-bit integers rounded to the nearest, as Rust's `as
  // f64` does), then IEEE arithmetic, which JavaScript's is.
  doubles(batch) {
    const n = batch.length;
    const [a, va] = this.doubleOperand(batch, this.left);
    const [b, vb] = this.doubleOperand(batch, this.right);
    const out = new Float64Array(n);
    switch (this.op) {
      case "+":
        for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
        break;
      case "-":
        for (let i = 0; i < n; i++) out[i] = a[i] - b[i];
        break;
      case "*":
        for (let i = 0; i < n; i++) out[i] = a[i] * b[i];
        break;
      case "/":
        for (let i = 0; i < n; i++) out[i] = a[i] / b[i];
        break;
      default:
        for (let i = 0; i < n; i++) out[i] = a[i] % b[i];
    }
    return batch.withColumn(this.output, { values: out, valid: Bitmap.and(va, vb) }, float64);
  }

  doubleOperand(batch, operand) {
    const n = batch.length;
    if (typeof operand !== "string") return [new Float64Array(n).fill(Number(operand)), null];
    const { values, valid } = batch.typed(operand);
    if (!(values instanceof BigInt64Array)) return [values, valid];
    // hi × 2^32 is exact and the sum is rounded once: the nearest double, as Rust rounds.
    const words = new Int32Array(values.buffer, values.byteOffset, 2 * n);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = words[2 * i + 1] * HALF + (words[2 * i] >>> 0);
    return [out, valid];
  }

  // Integers: Rust's wrapping i64 arithmetic, and `checked_rem` for % (null by zero, and for
  // i64::MIN % -1, which overflows).
  integers(batch) {
    const n = batch.length;
    const a = this.integerOperand(batch, this.left);
    const b = this.integerOperand(batch, this.right);
    const out = new BigInt64Array(n);
    const words = new Int32Array(out.buffer);
    let valid = Bitmap.and(a.valid, b.valid);
    if (valid !== null) valid = new Bitmap(valid.bytes.slice(), 0, n);
    const op = this.op;
    for (let i = 0; i < n; i++) {
      let x = a.small(i);
      let y = b.small(i);
      if (x !== null && y !== null) {
        // Both fit in 32 bits: exact in doubles, but for a product past 2^53.
        let r;
        if (op === "+") r = x + y;
        else if (op === "-") r = x - y;
        else if (op === "*") {
          r = x * y;
          if (r > Number.MAX_SAFE_INTEGER || r < -Number.MAX_SAFE_INTEGER) r = null;
        } else if (y === 0) {
          if (valid === null) valid = allValid(n);
          valid.set(i, false);
          continue;
        } else r = x % y;
        if (r !== null) {
          words[2 * i] = r | 0;
          words[2 * i + 1] = Math.floor(r / HALF);
          continue;
        }
      }
      const big = BigInt;
      const X = a.big(i);
      const Y = b.big(i);
      if (op === "+") out[i] = big.asIntN(64, X + Y);
      else if (op === "-") out[i] = big.asIntN(64, X - Y);
      else if (op === "*") out[i] = big.asIntN(64, X * Y);
      else if (Y === 0n || (Y === -1n && X === -(2n ** 63n))) {
        if (valid === null) valid = allValid(n);
        valid.set(i, false);
      } else out[i] = X % Y;
    }
    return batch.withColumn(this.output, { values: out, valid }, int64);
  }

  // An integer operand as `small(i)` (the value as a Number when it fits in 32 bits, else null)
  // and `big(i)` (the value as a BigInt), and its validity.
  integerOperand(batch, operand) {
    if (typeof operand === "bigint") {
      const fits = operand >= -(2n ** 31n) && operand < 2n ** 31n;
      const small = fits ? Number(operand) : null;
      return { small: () => small, big: () => operand, valid: null };
    }
    const { values, valid } = batch.typed(operand);
    if (values instanceof BigInt64Array) {
      const words = new Int32Array(values.buffer, values.byteOffset, 2 * values.length);
      return {
        small: (i) => (words[2 * i + 1] === words[2 * i] >> 31 ? words[2 * i] : null),
        big: (i) => values[i],
        valid,
      };
    }
    return { small: (i) => values[i], big: (i) => BigInt(values[i]), valid };
  }
}

function allValid(n) {
  const bits = Bitmap.empty(n);
  bits.bytes.fill(0xff);
  return bits;
}

exportPlugin(Compute, { name: "compute", version: "1.0.0" });
