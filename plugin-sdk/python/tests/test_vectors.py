"""The vectors shared with the Rust SDK (``plugin-sdk/vectors/``): this SDK reads what Rust writes, and
writes the same column bytes; Rust reads the schema this SDK writes (``--write`` rewrites it).
"""

import json
import pathlib
import sys
import unittest

from weir_plugin import schema as t
from weir_plugin.schema import Field, Schema
from weir_plugin.wire import decode_column, encode_column

VECTORS = pathlib.Path(__file__).parents[2] / "vectors"
TYPES = {
    repr(ty): ty
    for ty in [
        t.bool_, t.int8, t.int16, t.int32, t.int64, t.uint8, t.uint32, t.uint64, t.float32,
        t.float64, t.utf8, t.large_utf8, t.binary, t.date32, t.timestamp("ms", "UTC"),
        t.duration("us"), t.null,
    ]
}


def load_rust():
    return json.loads((VECTORS / "rust.json").read_text())


def field_of(column):
    return Field(column["name"], TYPES[column["type"]], column["nullable"])


def values_of(column):
    if column["type"] == "binary":
        return [None if v is None else bytes.fromhex(v) for v in column["values"]]
    return column["values"]


def schema_of(vectors):
    return Schema([field_of(c) for c in vectors["columns"]])


class RustVectors(unittest.TestCase):
    def test_the_columns_rust_writes_decode_into_their_values(self):
        for column in load_rust()["columns"]:
            with self.subTest(type=column["type"]):
                buffers = [bytes.fromhex(b) for b in column["buffers"]]
                self.assertEqual(decode_column(field_of(column), buffers), values_of(column))

    def test_the_values_encode_into_the_bytes_rust_writes(self):
        for column in load_rust()["columns"]:
            with self.subTest(type=column["type"]):
                encoded = [b.hex() for b in encode_column(field_of(column), values_of(column))]
                self.assertEqual(encoded, column["buffers"])

    def test_the_schema_rust_writes_reads_as_every_column_with_its_type_and_nullability(self):
        vectors = load_rust()
        self.assertEqual(Schema.from_bytes(bytes.fromhex(vectors["schema"])), schema_of(vectors))

    def test_the_checked_in_python_schema_is_what_this_sdk_writes_today(self):
        written = json.loads((VECTORS / "python-schema.json").read_text())
        self.assertEqual(written["schema"], schema_of(load_rust()).to_bytes().hex())


if __name__ == "__main__":
    if "--write" in sys.argv:
        schema = schema_of(load_rust())
        (VECTORS / "python-schema.json").write_text(
            json.dumps({"schema": schema.to_bytes().hex()}, indent=2) + "\n"
        )
    else:
        unittest.main()
