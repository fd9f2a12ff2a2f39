"""`filter`, in Python: keeps the rows whose numeric `column` compares true against `value`
(`op`: < <= > >= == != ; a null never passes). The same plugin as the Rust `filter`, written the
obvious way; the tests check both give the same rows.

    [[transform]]
    plugin = "filter"
    config = { column = "value", op = ">=", value = 10 }
"""

import operator

from weir_plugin import Batch, PluginError, Transform, export

OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
}


@export(name="filter", version="1.0.0")
class Filter(Transform):
    """Keeps the rows whose numeric column compares true against a constant."""

    def __init__(self, config):
        super().__init__(config)
        unknown = set(config) - {"column", "op", "value"}
        if unknown:
            raise PluginError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        if config.get("op") not in OPS:
            raise PluginError(f"op `{config.get('op')}` is not one of < <= > >= == !=")
        if not isinstance(config.get("column"), str):
            raise PluginError("filter needs `column`, a column name")
        value = config.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PluginError("filter needs `value`, a number")
        self.column = config["column"]
        self.op = OPS[config["op"]]
        self.value = float(value)

    def output_schema(self, input):
        try:
            field = input.field(self.column)
        except KeyError:
            raise PluginError(f"the input has no column `{self.column}`") from None
        if not field.type.is_numeric:
            raise PluginError(f"column `{self.column}` is {field.type!r}, filter compares numbers")
        return input

    def process(self, batch: Batch) -> Batch:
        op, value = self.op, self.value
        return batch.filter([v is not None and op(float(v), value) for v in batch[self.column]])
