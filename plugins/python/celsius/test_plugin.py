import unittest

from weir_plugin import Batch, PluginError, Schema, Field, float64, utf8

from plugin import Celsius


class CelsiusTest(unittest.TestCase):
    def test_readings_are_converted_and_rounded_and_a_null_stays_null(self):
        batch = Batch.from_pydict({"sensor": ["a", "b", "c"], "fahrenheit": [212.0, None, 70.0]})
        out = Celsius({}).process(batch)
        self.assertEqual(out["celsius"], [100.0, None, 21.1])
        self.assertEqual(out["sensor"], ["a", "b", "c"])

    def test_a_missing_or_non_numeric_column_is_refused_at_load(self):
        text = Schema([Field("fahrenheit", utf8, True)])
        with self.assertRaisesRegex(PluginError, "not a number"):
            Celsius({}).output_schema(text)
        with self.assertRaisesRegex(PluginError, "no column `temp`"):
            Celsius({"column": "temp"}).output_schema(Schema([Field("f", float64, True)]))


if __name__ == "__main__":
    unittest.main()
