"""Aggregate plugins in Python: user-defined aggregate functions, vectorised like the Rust
SDK's. One ``update`` call folds a whole batch into many groups' states; the states are bytes
the host keeps (in RocksDB, across restarts), so the plugin holds nothing between calls.

A state is any Python value ``pickle`` can write (numbers, lists, dicts, tuples, ...). A group
that has seen no rows starts from ``initial()``.
"""

import pickle

from .schema import Field, Schema
from .transform import PluginError
from .wire import WireError, decode_column, encode_column, split_columns

__all__ = ["Aggregate"]


class Aggregate:
    """A user-defined aggregate. Subclass it, set ``inputs`` (the argument types, in order) and
    ``output`` (the result type), write ``update``, ``merge`` and ``finish``, and decorate the
    class with ``@export``.

    ``state_version``: the version of the states' format. weir keeps a pipeline's stored
    states across an upgrade of the plugin only while it stays the same; give a new number
    when a new version reads states differently."""

    inputs = []
    output = None
    state_version = 0

    def __init__(self, config):
        #: The aggregate's ``config`` table, as a dict.
        self.config = config

    def initial(self):
        """The state of a group that has seen no rows."""
        return None

    def update(self, states, columns, group_of_row):
        """Folds a batch into the groups: row ``i`` of ``columns`` (one list per declared
        input, nulls as ``None``) belongs to ``states[group_of_row[i]]``. Change ``states`` in
        place (``states[g] = ...``)."""
        raise NotImplementedError("an Aggregate defines update(self, states, columns, group_of_row)")

    def merge(self, state, other):
        """The state of a group from two partial states of it."""
        raise NotImplementedError("an Aggregate defines merge(self, state, other)")

    def finish(self, states):
        """One output value per state (a list, nulls as ``None``)."""
        raise NotImplementedError("an Aggregate defines finish(self, states)")

    def encode_state(self, state):
        """A state as bytes (pickle by default)."""
        return pickle.dumps(state, protocol=5)

    def decode_state(self, data):
        """A state from ``encode_state``'s bytes."""
        return pickle.loads(data)


def signature_schemas(plugin):
    """The signature as the host reads it: inputs ``arg0..``, output ``output``."""
    if plugin.output is None:
        raise PluginError(f"{type(plugin).__name__} sets no `output` type")
    inputs = Schema([Field(f"arg{i}", t, True) for i, t in enumerate(plugin.inputs)])
    return inputs, Schema([Field("output", plugin.output, True)])


def _load(plugin, states):
    try:
        return [plugin.initial() if not s else plugin.decode_state(s) for s in states]
    except Exception as err:
        raise PluginError(f"cannot read a state: {type(err).__name__}: {err}") from None


def _store(plugin, states):
    return [plugin.encode_state(s) for s in states]


def run_update(plugin, states, rows, buffers, group_of_row):
    """One ``update`` call on the host's bytes: the new states."""
    inputs, _ = signature_schemas(plugin)
    try:
        parts = split_columns(inputs, buffers)
        columns = [decode_column(f, p) for f, p in zip(inputs.fields, parts)]
    except WireError as err:
        raise PluginError(str(err)) from None
    for column in columns:
        if len(column) != rows:
            raise PluginError(f"{rows} rows announced, an input has {len(column)}")
    if len(group_of_row) != rows:
        raise PluginError(f"{rows} rows but {len(group_of_row)} group indexes")
    if group_of_row and max(group_of_row) >= len(states):
        raise PluginError(f"group index {max(group_of_row)} out of range ({len(states)} states)")
    loaded = _load(plugin, states)
    plugin.update(loaded, columns, list(group_of_row))
    return _store(plugin, loaded)


def run_merge(plugin, left, right):
    """One ``merge`` call on the host's bytes."""
    if len(left) != len(right):
        raise PluginError(f"merge of {len(left)} states with {len(right)}")
    merged = [plugin.merge(a, b) for a, b in zip(_load(plugin, left), _load(plugin, right))]
    return _store(plugin, merged)


def run_finish(plugin, states):
    """One ``finish`` call: the output column's buffers."""
    _, output = signature_schemas(plugin)
    values = list(plugin.finish(_load(plugin, states)))
    if len(values) != len(states):
        raise PluginError(f"finish returned {len(values)} values for {len(states)} states")
    try:
        return encode_column(output.fields[0], values)
    except WireError as err:
        raise PluginError(str(err)) from None
