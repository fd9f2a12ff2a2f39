"""`compute`, in Python: adds a column `output = left op right`, each operand a numeric column
or a constant. Integers with + - * % give a long (wrapping on overflow, as Rust's does); anything
with a double, or `/`, gives a double. A null operand, or an integer `%` by zero, gives null.
The same plugin as the Rust `compute`; the tests check both give the same values.

    [[transform]]
    plugin = "compute"
    config = { output = "doubled", left = "value", op = "*", right = 2 }
"""

import math

from weir_plugin import Batch, PluginError, Transform, export, float64, int64

OPS = ("+", "-", "*", "/", "%")


def wrap(n):
    """An integer as a wrapped 64-bit two's-complement value."""
    return (n + 2**63) % 2**64 - 2**63


def int_rem(left, right):
    """Rust's `checked_rem`: the remainder takes the dividend's sign; by zero, null."""
    if right == 0 or (left == -(2**63) and right == -1):
        # By zero, or the one quotient that overflows (i64::MIN / -1): Rust gives None.
        return None
    r = abs(left) % abs(right)
    return wrap(-r if left < 0 else r)


def float_op(op, left, right):
    """IEEE arithmetic as Rust's f64 does it (no exception on a zero divisor)."""
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0.0:
        if op == "%" or left == 0.0 or math.isnan(left):
            return math.nan
        return math.copysign(math.inf, left) * math.copysign(1.0, right)
    return left / right if op == "/" else math.fmod(left, right)


@export(name="compute", version="1.0.0")
class Compute(Transform):
    """Adds a column computed from two operands: columns or constants, joined by + - * / or %."""

    def __init__(self, config):
        super().__init__(config)
        unknown = set(config) - {"output", "left", "op", "right"}
        if unknown:
            raise PluginError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        if config.get("op") not in OPS:
            raise PluginError(f"op `{config.get('op')}` is not one of + - * / %")
        for key in ("output", "left", "right"):
            if key not in config:
                raise PluginError(f"compute needs `{key}`")
        self.output = config["output"]
        self.left = config["left"]
        self.right = config["right"]
        self.op = config["op"]
        self.integer = False

    def _is_integer(self, input, operand):
        if isinstance(operand, bool):
            raise PluginError("an operand is a column name or a number, not a boolean")
        if isinstance(operand, int):
            return True
        if isinstance(operand, float):
            return False
        try:
            field = input.field(operand)
        except KeyError:
            raise PluginError(f"the input has no column `{operand}`") from None
        if field.type.kind == "int" and field.type.params[1]:
            return True
        if field.type.kind == "float":
            return False
        raise PluginError(f"column `{operand}` is {field.type!r}; compute needs numbers")

    def output_schema(self, input):
        self.integer = (
            self._is_integer(input, self.left)
            and self._is_integer(input, self.right)
            and self.op != "/"
        )
        if self.output in input.names():
            raise PluginError(f"the input already has a column `{self.output}`")
        out = Batch.from_pydict({name: [] for name in input.names()}, input)
        return out.with_column(self.output, [], type=int64 if self.integer else float64).schema

    def _operand(self, batch, operand):
        if isinstance(operand, str):
            return batch[operand]
        return [operand] * len(batch)

    def process(self, batch: Batch) -> Batch:
        left = self._operand(batch, self.left)
        right = self._operand(batch, self.right)
        op = self.op
        if self.integer:
            if op == "+":
                out = [None if a is None or b is None else wrap(a + b) for a, b in zip(left, right)]
            elif op == "-":
                out = [None if a is None or b is None else wrap(a - b) for a, b in zip(left, right)]
            elif op == "*":
                out = [None if a is None or b is None else wrap(a * b) for a, b in zip(left, right)]
            else:
                out = [None if a is None or b is None else int_rem(a, b) for a, b in zip(left, right)]
            return batch.with_column(self.output, out, type=int64)
        out = [
            None if a is None or b is None else float_op(op, float(a), float(b))
            for a, b in zip(left, right)
        ]
        return batch.with_column(self.output, out, type=float64)
