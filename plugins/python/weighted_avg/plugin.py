"""`weighted_avg(value, weight)`, in Python: `sum(value × weight) / sum(weight)` over the rows of
a group whose value and weight are both non-null; null for a group without any (or with zero
total weight). The same aggregate as the Rust `weighted_avg`, summing in the same order, so the
results are identical to the last bit.

    [aggregate]
    functions = [{ plugin = "weighted_avg", columns = ["value", "weight"] }]
"""

from weir_plugin import Aggregate, PluginError, export, float64


@export(name="weighted_avg", version="1.0.0")
class WeightedAvg(Aggregate):
    """Average of a value weighted by a second column."""

    inputs = [float64, float64]
    output = float64

    def __init__(self, config):
        super().__init__(config)
        if config:
            raise PluginError("weighted_avg takes no config")

    def initial(self):
        return (0.0, 0.0)

    def update(self, states, columns, group_of_row):
        values, weights = columns
        for v, w, group in zip(values, weights, group_of_row):
            if v is None or w is None:
                continue
            weighted, weight = states[group]
            states[group] = (weighted + v * w, weight + w)

    def merge(self, state, other):
        return (state[0] + other[0], state[1] + other[1])

    def finish(self, states):
        return [weighted / weight if weight != 0.0 else None for weighted, weight in states]
