// Where in the plugin's own code an exception happened, for the message a failed call returns:
// the innermost frame of its stack that is not this SDK's.
//
// Natively (node, the plugin's tests) the stack names the plugin's files as they are. Inside a
// component it names the one bundled file componentize-js was given; `weir plugin build` then
// leaves the bundler's source map in the component (`globalThis[Symbol.for("weir-plugin.
// sourcemap")]`, its `sources` and `mappings`), and this module maps each frame back through it.
// Without a map there is no telling the plugin's frames from the SDK's, so no place is named.

const SOURCE_MAP = Symbol.for("weir-plugin.sourcemap");

// One stack line, V8's (`    at f (file:1:2)`) or SpiderMonkey's (`f@file:1:2`).
function parseFrame(line) {
  let m = /^\s*at (?:(.*?) \()?(.*?):(\d+):(\d+)\)?$/.exec(line);
  if (m) return { name: m[1] ?? "", file: m[2], line: Number(m[3]), column: Number(m[4]) };
  m = /^(.*?)@(.*?):(\d+):(\d+)$/.exec(line);
  if (m) return { name: m[1], file: m[2], line: Number(m[3]), column: Number(m[4]) };
  return null;
}

const VLQ = new Map([..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"].map((c, i) => [c, i]));

function decodeVlq(text) {
  const out = [];
  let value = 0;
  let shift = 0;
  for (const c of text) {
    const digit = VLQ.get(c);
    if (digit === undefined) return null;
    value += (digit & 31) * 2 ** shift;
    if (digit & 32) shift += 5;
    else {
      out.push(value & 1 ? -Math.floor(value / 2) : Math.floor(value / 2));
      value = 0;
      shift = 0;
    }
  }
  return out;
}

let decoded = null;

// The source map's segments per generated line: [column, source, line] with absolute values.
function segments(map) {
  if (decoded !== null) return decoded;
  decoded = [];
  let source = 0;
  let line = 0;
  for (const text of String(map.mappings ?? "").split(";")) {
    let column = 0;
    const row = [];
    for (const piece of text.split(",")) {
      if (!piece) continue;
      const fields = decodeVlq(piece);
      if (fields === null) break;
      column += fields[0];
      if (fields.length >= 4) {
        source += fields[1];
        line += fields[2];
        row.push([column, source, line]);
      }
    }
    decoded.push(row);
  }
  return decoded;
}

// A generated (1-based line, 1-based column) position mapped to its source file and line.
function mapped(map, frame) {
  const row = segments(map)[frame.line - 1];
  if (!row) return null;
  let best = null;
  for (const segment of row) {
    if (segment[0] <= frame.column - 1) best = segment;
    else break;
  }
  if (best === null) best = row[0];
  if (!best) return null;
  const file = map.sources?.[best[1]];
  return typeof file === "string" ? { ...frame, file, line: best[2] + 1 } : null;
}

function isSdk(file) {
  const path = file.replace(/\\/g, "/");
  return path.includes("/weir-plugin/") || path.startsWith("weir-plugin/") || path.includes("/plugin-sdk/js/src/");
}

let bundled = false;

/** Says the code runs from one bundled file (a component): without a source map, its frames
 * cannot be told apart. */
export function runningBundled() {
  bundled = true;
}

/** ` (at plugin.js:12 in process)` for an exception from the plugin's code; "" when its stack
 * names no frame of the plugin's. */
export function where(err) {
  const stack = typeof err?.stack === "string" ? err.stack : "";
  const map = globalThis[SOURCE_MAP] ?? null;
  for (const line of stack.split("\n")) {
    let frame = parseFrame(line);
    if (frame === null) continue;
    if (map !== null) frame = mapped(map, frame);
    else if (bundled) return "";
    if (frame === null || frame.file.startsWith("node:") || isSdk(frame.file)) continue;
    const file = frame.file.split(/[\\/]/).pop();
    const name = frame.name.split(/[.#/]/).pop().replace(/^new /, "");
    return ` (at ${file}:${frame.line}${name ? ` in ${name}` : ""})`;
  }
  return "";
}
