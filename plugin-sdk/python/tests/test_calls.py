"""Plugins called exactly as the host calls them: bytes in, bytes out."""

import unittest

from weir_plugin import Aggregate, Batch, PluginError, Transform, export, float64, int64, utf8
from weir_plugin.calls import AggregateCalls, CallError, TransformCalls
from weir_plugin.schema import Field, Schema
from weir_plugin.wire import decode_column, encode_column, input_reference, is_input_reference, split_columns

INPUT = Schema([Field("sensor", utf8), Field("fahrenheit", float64), Field("n", int64)])


class Celsius(Transform):
    """Fahrenheit to Celsius."""

    def process(self, batch):
        return batch.with_column(
            "celsius",
            [(f - 32) * 5 / 9 if f is not None else None for f in batch["fahrenheit"]],
        )


class Hot(Transform):
    def __init__(self, config):
        super().__init__(config)
        if "above" not in config:
            raise PluginError("hot needs `above`")
        self.above = config["above"]

    def process(self, batch):
        return batch.filter([f is not None and f > self.above for f in batch["fahrenheit"]])


class Broken(Transform):
    def process(self, batch):
        return batch.with_column("x", [1 / 0 for _ in batch["n"]] if len(batch) > 1 else [1])


def wire(batch_columns):
    out = []
    for field, values in zip(INPUT.fields, batch_columns):
        out += encode_column(field, values)
    return out


def run(plugin_class, config, columns):
    export(plugin_class)
    calls = TransformCalls()
    calls.init(config)
    output = Schema.from_bytes(calls.output_schema(INPUT.to_bytes()))
    rows, buffers = calls.process(len(columns[0]), wire(columns))
    parts = split_columns(output, buffers)
    # As the host does: a reference stands for the input column it names.
    return output, rows, [
        columns[is_input_reference(p)] if is_input_reference(p) is not None else decode_column(f, p)
        for f, p in zip(output.fields, parts)
    ]


COLUMNS = [["a", "b", None, "d"], [212.0, None, 32.0, 50.0], [1, 2, 3, None]]


class Transforms(unittest.TestCase):
    def test_a_ten_line_transform_adds_its_column_and_passes_the_others_through(self):
        output, rows, columns = run(Celsius, "{}", COLUMNS)
        self.assertEqual(output.names(), ["sensor", "fahrenheit", "n", "celsius"])
        self.assertEqual(output.field("celsius").type, float64)
        self.assertEqual(rows, 4)
        self.assertEqual(columns[:3], COLUMNS)
        self.assertEqual(columns[3], [100.0, None, 0.0, 10.0])

    def test_untouched_columns_go_back_as_references_to_the_columns_sent(self):
        export(Celsius)
        calls = TransformCalls()
        calls.init("")
        calls.output_schema(INPUT.to_bytes())
        _, back = calls.process(4, wire(COLUMNS))
        references = [input_reference(4, i)[0] for i in range(3)]
        self.assertEqual(back[:3], references)
        self.assertEqual([len(b) for b in back[:3]], [24, 24, 24])
        self.assertEqual(len(back), 3 + 3, "then celsius: header, validity, values")

    def test_filtered_and_replaced_columns_go_back_as_data_not_references(self):
        export(Hot)
        calls = TransformCalls()
        calls.init('{"above": 40}')
        output = Schema.from_bytes(calls.output_schema(INPUT.to_bytes()))
        _, back = calls.process(4, wire(COLUMNS))
        self.assertTrue(all(is_input_reference(p) is None for p in split_columns(output, back)))

    def test_a_filter_keeps_the_rows_its_config_asks_for(self):
        _, rows, columns = run(Hot, '{"above": 40}', COLUMNS)
        self.assertEqual(rows, 2)
        self.assertEqual(columns, [["a", "d"], [212.0, 50.0], [1, None]])

    def test_a_config_the_plugin_refuses_is_an_init_error_with_its_message(self):
        export(Hot)
        with self.assertRaises(CallError) as caught:
            TransformCalls().init("{}")
        self.assertEqual(str(caught.exception), "init: hot needs `above`")

    def test_an_exception_in_process_is_a_call_error_naming_the_plugins_line(self):
        export(Broken)
        calls = TransformCalls()
        calls.init("{}")
        calls.output_schema(INPUT.to_bytes())
        with self.assertRaises(CallError) as caught:
            calls.process(4, wire(COLUMNS))
        message = str(caught.exception)
        self.assertTrue(message.startswith("process: ZeroDivisionError: division by zero (at test_calls.py:"), message)

    def test_process_before_output_schema_is_refused(self):
        export(Celsius)
        calls = TransformCalls()
        calls.init("{}")
        with self.assertRaises(CallError):
            calls.process(4, wire(COLUMNS))

    def test_info_is_the_snake_cased_class_name_the_default_version_and_the_docstring(self):
        export(Celsius)
        self.assertEqual(TransformCalls().info(), ("celsius", "0.1.0", "Fahrenheit to Celsius."))


class Median(Aggregate):
    """The median of a group's values."""

    inputs = [float64]
    output = float64

    def initial(self):
        return []

    def update(self, states, columns, group_of_row):
        for value, group in zip(columns[0], group_of_row):
            if value is not None:
                states[group].append(value)

    def merge(self, state, other):
        return state + other

    def finish(self, states):
        out = []
        for values in states:
            values = sorted(values)
            n = len(values)
            if n == 0:
                out.append(None)
            elif n % 2:
                out.append(values[n // 2])
            else:
                out.append((values[n // 2 - 1] + values[n // 2]) / 2)
        return out


class Aggregates(unittest.TestCase):
    def test_update_merge_and_finish_work_on_the_hosts_state_bytes(self):
        export(Median)
        calls = AggregateCalls()
        inputs, output = calls.init("")
        self.assertEqual(Schema.from_bytes(inputs), Schema([Field("arg0", float64)]))
        self.assertEqual(Schema.from_bytes(output), Schema([Field("output", float64)]))
        column = encode_column(Field("arg0", float64), [5.0, 1.0, None, 3.0, 10.0])
        states = calls.update([b"", b""], 5, column, [0, 0, 1, 0, 1])
        self.assertTrue(all(isinstance(s, bytes) for s in states))
        again = calls.update([b"", b""], 1, encode_column(Field("arg0", float64), [7.0]), [1])
        merged = calls.merge(states, again)
        out = calls.finish(merged + [b""])
        self.assertEqual(decode_column(Field("output", float64), out), [3.0, 8.5, None])

    def test_a_group_index_out_of_range_is_refused(self):
        export(Median)
        calls = AggregateCalls()
        calls.init("")
        with self.assertRaises(CallError):
            calls.update([b""], 1, encode_column(Field("arg0", float64), [1.0]), [3])


if __name__ == "__main__":
    unittest.main()
