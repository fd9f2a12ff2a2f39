import assert from "node:assert/strict";
import { test } from "node:test";

import * as t from "weir-plugin/schema";
import { Field, Schema, SchemaError } from "weir-plugin/schema";
import { Table } from "../src/flatbuf.js";

const ALL_TYPES = [
  t.nullType, t.bool, t.int8, t.int16, t.int32, t.int64, t.uint8, t.uint16, t.uint32, t.uint64,
  t.float32, t.float64, t.utf8, t.largeUtf8, t.binary, t.largeBinary, t.date32,
  t.timestamp("ms"), t.timestamp("us", "UTC"), t.timestamp("ns", "+02:00"), t.duration("s"),
];

test("every handled type comes back from its bytes with names, nullability and metadata", () => {
  const fields = ALL_TYPES.map((ty, i) => new Field(`c${i}`, ty, i % 2 === 0));
  fields.push(new Field("é ünïcode", t.utf8, true, { k: "v", a: "b" }));
  const schema = new Schema(fields, { pipeline: "iot" });
  const back = Schema.fromBytes(schema.toBytes());
  assert.ok(back.equals(schema), `${back}`);
  assert.deepEqual(back.fields[back.length - 1].metadata, { k: "v", a: "b" });
});

test("the bytes are an ipc stream: continuation, length eight-byte aligned, end marker", () => {
  const data = Schema.prototype.toBytes.call(new Schema([new Field("x", t.int64)]));
  const view = new DataView(data.buffer);
  assert.equal(view.getUint32(0, true), 0xffffffff);
  const length = view.getInt32(4, true);
  assert.equal(length % 8, 0);
  assert.equal(data.length, 8 + length + 8);
  assert.deepEqual(Array.from(data.slice(-8)), [255, 255, 255, 255, 0, 0, 0, 0]);
});

test("an empty schema comes back empty", () => {
  assert.ok(Schema.fromBytes(new Schema([]).toBytes()).equals(new Schema([])));
});

test("malformed bytes are a schema error, never another exception", () => {
  const good = new Schema([new Field("x", t.utf8), new Field("y", t.float64)]).toBytes();
  const attempt = (bytes) => {
    try {
      Schema.fromBytes(bytes);
    } catch (err) {
      assert.ok(err instanceof SchemaError, err.stack);
    }
  };
  for (let cut = 0; cut < good.length; cut++) attempt(good.slice(0, cut));
  for (let i = 8; i < good.length - 8; i++) {
    for (const flip of [0x01, 0x10, 0x80, 0xff]) {
      const damaged = good.slice();
      damaged[i] ^= flip;
      attempt(damaged);
    }
  }
});

test("a type the sdk does not handle is named with its column", () => {
  const data = new Schema([new Field("tags", t.utf8)]).toBytes();
  // Turn the field's type tag (Utf8 = 5) into List (12).
  const message = Table.root(data.subarray(8));
  const field = message.table(2).tables(1)[0];
  data[8 + field.pos + field.field(2)] = 12;
  assert.throws(() => Schema.fromBytes(data), (err) => err instanceof SchemaError && err.message.includes("column `tags` is a list"));
});
