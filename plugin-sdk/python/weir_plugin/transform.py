"""Transform plugins in Python: a class with ``process(batch) -> batch``.

The host calls ``output_schema`` once per instance before any batch, to type-check the pipeline
before it runs. By default it is worked out by running ``process`` on a one-row sample batch of
the input's types (1 for numbers, "1" for strings, ...), so most plugins need not write it;
write it when ``process`` cannot run on such a row or returns a column of nulls only.
"""

from .batch import Batch, BatchError
from .schema import Field, Schema
from .wire import WireError

__all__ = ["Transform", "PluginError", "sample_batch"]


class PluginError(Exception):
    """A failure the plugin reports, with a message for the pipeline's status and log."""


_SAMPLES = {
    "bool": True,
    "int": 1,
    "float": 1.0,
    "utf8": "1",
    "large_utf8": "1",
    "binary": b"1",
    "large_binary": b"1",
    "date32": 1,
    "timestamp": 1,
    "duration": 1,
    "null": None,
}


def sample_batch(schema):
    """A one-row batch of ``schema`` with a plain non-null value in every column."""
    return Batch.from_pydict({f.name: [_SAMPLES[f.type.kind]] for f in schema.fields}, schema)


class Transform:
    """A transform stage. Subclass it, write ``process``, and decorate the class with
    ``@export``. One instance serves one pipeline stage and is reused across batches; the host
    may build a fresh one at any time, so keep nothing in it that ``config`` cannot rebuild."""

    def __init__(self, config):
        #: The stage's ``config`` table, as a dict.
        self.config = config

    def output_schema(self, input):
        """The schema ``process`` returns for batches of ``input`` (a ``Schema``)."""
        try:
            out = self.process(sample_batch(input))
        except Exception as err:
            raise PluginError(
                f"could not work out the output schema by running process on a sample row "
                f"({type(err).__name__}: {err}); define output_schema"
            ) from None
        if not isinstance(out, Batch):
            raise PluginError(f"process returned {type(out).__name__}, not a Batch")
        unknown = [f.name for f in out.schema.fields if f.type is None]
        if unknown:
            raise PluginError(
                f"column(s) {', '.join(unknown)} held only nulls on a sample row, so their type "
                "is unknown: pass type= to with_column, or define output_schema"
            )
        return Schema([Field(f.name, f.type, True) for f in out.schema.fields])

    def process(self, batch):
        """Transforms one batch; returns a batch of the declared output schema."""
        raise NotImplementedError("a Transform defines process(self, batch)")


def run_process(plugin, input_schema, output_schema, rows, parts):
    """One ``process`` call on wire buffers (already grouped per column): the output row count
    and buffers."""
    batch = Batch._from_wire(input_schema, rows, parts)
    out = plugin.process(batch)
    if not isinstance(out, Batch):
        raise PluginError(f"process returned {type(out).__name__}, not a Batch")
    try:
        return out.num_rows, out._to_wire(output_schema)
    except (BatchError, WireError) as err:
        raise PluginError(str(err)) from None
