"""`celsius`, in Python: adds a column `celsius` (or `output`) converted from the Fahrenheit
readings in `column` (default `fahrenheit`), rounded to `digits` decimals (default 1). A null
reading stays null. The transform of the Python IoT example (`config/examples/iot-python.toml`).

    [[transform]]
    plugin = "celsius"
    config = { column = "fahrenheit", output = "celsius" }
"""

from weir_plugin import Batch, PluginError, Transform, export, float64


@export(name="celsius", version="1.0.0")
class Celsius(Transform):
    """Fahrenheit readings converted to Celsius, in a new column."""

    def __init__(self, config):
        super().__init__(config)
        unknown = set(config) - {"column", "output", "digits"}
        if unknown:
            raise PluginError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        self.column = config.get("column", "fahrenheit")
        self.output = config.get("output", "celsius")
        self.digits = config.get("digits", 1)
        if not isinstance(self.digits, int) or isinstance(self.digits, bool) or self.digits < 0:
            raise PluginError(f"`digits` is a whole number of decimals, not {self.digits!r}")

    def output_schema(self, input):
        field = input.field(self.column) if self.column in input.names() else None
        if field is None:
            raise PluginError(f"the input has no column `{self.column}`")
        if field.type.kind not in ("int", "float"):
            raise PluginError(f"column `{self.column}` is {field.type!r}, not a number")
        if self.output in input.names():
            raise PluginError(f"the input already has a column `{self.output}`")
        empty = Batch.from_pydict({name: [] for name in input.names()}, input)
        return empty.with_column(self.output, [], type=float64).schema

    def process(self, batch: Batch) -> Batch:
        digits = self.digits
        return batch.with_column(
            self.output,
            [None if f is None else round((f - 32) * 5 / 9, digits) for f in batch[self.column]],
            type=float64,
        )
