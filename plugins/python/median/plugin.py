"""`median(value)`, in Python: the median of a group's non-null values (the mean of the two
middle ones when their number is even); null for a group without any. The state is the
group's values, so a median suits bounded groups such as windows. The aggregate of the Python
IoT example (`config/examples/iot-python.toml`).

    [aggregate]
    functions = [{ plugin = "median", columns = ["celsius"] }]
"""

from weir_plugin import Aggregate, PluginError, export, float64


@export(name="median", version="1.0.0")
class Median(Aggregate):
    """The median of a group's values."""

    inputs = [float64]
    output = float64
    state_version = 1

    def __init__(self, config):
        super().__init__(config)
        if config:
            raise PluginError("median takes no config")

    def initial(self):
        return []

    def update(self, states, columns, group_of_row):
        for value, group in zip(columns[0], group_of_row):
            if value is not None:
                states[group].append(value)

    def merge(self, state, other):
        return state + other

    def finish(self, states):
        return [median(values) for values in states]


def median(values):
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
