import struct
import unittest

from weir_plugin import schema as t
from weir_plugin.schema import Field, Schema, SchemaError


ALL_TYPES = [
    t.null, t.bool_, t.int8, t.int16, t.int32, t.int64, t.uint8, t.uint16, t.uint32, t.uint64,
    t.float32, t.float64, t.utf8, t.large_utf8, t.binary, t.large_binary, t.date32,
    t.timestamp("ms"), t.timestamp("us", "UTC"), t.timestamp("ns", "+02:00"), t.duration("s"),
]


class SchemaBytes(unittest.TestCase):
    def test_every_handled_type_comes_back_from_its_bytes_with_names_nullability_and_metadata(self):
        fields = [Field(f"c{i}", ty, nullable=i % 2 == 0) for i, ty in enumerate(ALL_TYPES)]
        fields.append(Field("é ünïcode", t.utf8, metadata={"k": "v", "a": "b"}))
        schema = Schema(fields, metadata={"pipeline": "iot"})
        self.assertEqual(Schema.from_bytes(schema.to_bytes()), schema)

    def test_the_bytes_are_an_ipc_stream_continuation_length_eight_byte_aligned_and_end_marker(self):
        data = Schema([Field("x", t.int64)]).to_bytes()
        marker, length = struct.unpack_from("<Ii", data, 0)
        self.assertEqual(marker, 0xFFFFFFFF)
        self.assertEqual(length % 8, 0)
        self.assertEqual(len(data), 8 + length + 8)
        self.assertEqual(data[-8:], struct.pack("<Ii", -1 & 0xFFFFFFFF, 0))

    def test_an_empty_schema_comes_back_empty(self):
        self.assertEqual(Schema.from_bytes(Schema([]).to_bytes()), Schema([]))

    def test_malformed_bytes_are_a_schema_error_never_another_exception(self):
        good = Schema([Field("x", t.utf8), Field("y", t.float64)]).to_bytes()
        for cut in range(len(good)):
            try:
                Schema.from_bytes(good[:cut])
            except SchemaError:
                pass
        for i in range(8, len(good) - 8):
            damaged = bytearray(good)
            damaged[i] ^= 0xFF
            try:
                Schema.from_bytes(bytes(damaged))
            except SchemaError:
                pass

    def test_a_type_the_sdk_does_not_handle_is_named_with_its_column(self):
        data = bytearray(Schema([Field("tags", t.utf8)]).to_bytes())
        # Turn the field's type tag (Utf8 = 5) into List (12).
        from weir_plugin.flatbuf import Table
        message = Table.root(memoryview(data)[8:])
        field = message.table(2).tables(1)[0]
        at = field.pos + field._field(2)
        data[8 + at] = 12
        with self.assertRaises(SchemaError) as caught:
            Schema.from_bytes(bytes(data))
        self.assertIn("column `tags` is a list", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
