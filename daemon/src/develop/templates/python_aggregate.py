"""{name}: a weir aggregate plugin, in Python."""

from weir_plugin import Aggregate, export, float64, int64


@export(name="{name}", version="0.1.0")
class {class_name}(Aggregate):
    """Counts a group's rows."""

    inputs = [float64]  # one list per input column in update's `columns`
    output = int64
    state_version = 0  # raise it when the state's shape changes

    def initial(self):
        return 0

    def update(self, states, columns, group_of_row):
        for group in group_of_row:
            states[group] += 1

    def merge(self, state, other):
        return state + other

    def finish(self, states):
        return list(states)
