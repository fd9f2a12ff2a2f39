import struct
import unittest

from weir_plugin import schema as t
from weir_plugin.schema import Field
from weir_plugin.wire import WireError, decode_column, encode_column, split_columns

CASES = [
    (t.bool_, [True, None, False, True, False, False, True, True, None, True]),
    (t.int8, [-128, 127, None, 0]),
    (t.int16, [-32768, None, 32767]),
    (t.int32, [1, None, -(2**31), 2**31 - 1]),
    (t.int64, [None, -(2**63), 2**63 - 1, 0]),
    (t.uint8, [0, 255, None]),
    (t.uint32, [0, 2**32 - 1]),
    (t.uint64, [2**64 - 1, None]),
    (t.float32, [1.5, None, -0.25]),
    (t.float64, [3.141592653589793, None, float("inf"), -0.0]),
    (t.utf8, ["a", None, "", "ünïcode ✓", "x" * 100]),
    (t.large_utf8, ["b", None]),
    (t.binary, [b"\x00\xff", None, b""]),
    (t.date32, [19000, None]),
    (t.timestamp("ms", "UTC"), [1_764_547_200_000, None]),
    (t.duration("us"), [5, None]),
    (t.null, [None, None, None]),
]


class Columns(unittest.TestCase):
    def test_every_handled_type_comes_back_with_its_values_and_nulls(self):
        for ty, values in CASES:
            with self.subTest(type=repr(ty)):
                field = Field("c", ty)
                self.assertEqual(decode_column(field, encode_column(field, values)), values)

    def test_a_column_without_nulls_sends_no_validity_bitmap(self):
        parts = encode_column(Field("c", t.int64), [1, 2, 3])
        self.assertEqual(struct.unpack("<6I", parts[0]), (3, 0, 0, 0, 1, 0))
        self.assertEqual(len(parts), 2)

    def test_a_sliced_column_is_read_from_its_offset_and_validity_offset(self):
        values = list(range(20))
        values[13] = None
        parts = encode_column(Field("c", t.int32), values)
        # The same buffers announced as rows 10..15: offset 10, validity from bit 10.
        parts[0] = struct.pack("<6I", 5, 10, 10, 1, 1, 0)
        self.assertEqual(decode_column(Field("c", t.int32), parts), [10, 11, 12, None, 14])
        strings = [str(i) for i in range(12)]
        parts = encode_column(Field("s", t.utf8), strings)
        parts[0] = struct.pack("<6I", 3, 9, 0, 0, 2, 0)
        self.assertEqual(decode_column(Field("s", t.utf8), parts), ["9", "10", "11"])

    def test_split_groups_buffers_by_column_and_refuses_leftovers_and_shortfalls(self):
        a, b = Field("a", t.int64), Field("b", t.utf8)
        flat = encode_column(a, [1, None]) + encode_column(b, ["x", "y"])
        schema = t.Schema([a, b])
        parts = split_columns(schema, flat)
        self.assertEqual([len(p) for p in parts], [3, 3])
        with self.assertRaises(WireError):
            split_columns(schema, flat + [b""])
        with self.assertRaises(WireError):
            split_columns(schema, flat[:-1])

    def test_values_of_the_wrong_type_name_the_column_and_the_declared_type(self):
        with self.assertRaises(WireError) as caught:
            encode_column(Field("n", t.int64), [1, "two"])
        self.assertIn("column `n` is declared int64", str(caught.exception))

    def test_nulls_in_a_not_null_column_are_refused(self):
        with self.assertRaises(WireError):
            encode_column(Field("n", t.int64, nullable=False), [1, None])

    def test_offsets_past_the_data_and_short_buffers_are_wire_errors(self):
        parts = encode_column(Field("s", t.utf8), ["abc"])
        parts[2] = b"ab"
        with self.assertRaises(WireError):
            decode_column(Field("s", t.utf8), parts)
        parts = encode_column(Field("n", t.int64), [1, 2])
        parts[1] = parts[1][:12]
        with self.assertRaises(WireError):
            decode_column(Field("n", t.int64), parts)


if __name__ == "__main__":
    unittest.main()
