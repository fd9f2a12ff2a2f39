"""A batch of rows as a Python plugin sees it: columns by name, each a list with nulls as
``None``.

Columns are decoded only when the plugin reads them, and a column it passes through unchanged
goes back to the host as a reference to the column it sent (no decoding, no encoding, no copy):
a transform that adds one column to a batch of twenty pays for the columns it reads and the one
it writes.
"""

from . import schema as types
from .schema import Field, Schema
from .wire import decode_column, encode_column, input_reference, select

__all__ = ["Batch", "BatchError"]


class BatchError(ValueError):
    """A batch built with columns that do not fit together (lengths, names, types)."""


class _Column:
    """A column: its field, and its values as a list and/or its buffers as they arrived (and
    then its position in the input, ``input``)."""

    __slots__ = ("field", "values", "parts", "input")

    def __init__(self, field, values=None, parts=None, input=None):
        self.field = field
        self.values = values
        self.parts = parts
        self.input = input

    def get(self):
        if self.values is None:
            self.values = decode_column(self.field, self.parts)
        return self.values


def _infer(name, values):
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            return types.bool_
        if isinstance(v, int):
            return types.int64
        if isinstance(v, float):
            return types.float64
        if isinstance(v, str):
            return types.utf8
        if isinstance(v, (bytes, bytearray, memoryview)):
            return types.binary
        raise BatchError(
            f"column `{name}`: cannot store {type(v).__name__} values such as {v!r} "
            "(numbers, strings, bytes and booleans can be stored)"
        )
    return None


class Batch:
    """Rows of a batch, by column. Build one with ``Batch.from_pydict`` or from another with
    ``with_column``, ``select``, ``drop``, ``rename`` and ``filter``; a batch never changes."""

    __slots__ = ("_columns", "_rows")

    def __init__(self, columns, rows):
        self._columns = columns
        self._rows = rows

    @classmethod
    def _from_wire(cls, schema, rows, parts):
        return cls(
            [_Column(f, parts=p, input=i) for i, (f, p) in enumerate(zip(schema.fields, parts))],
            rows,
        )

    @classmethod
    def from_pydict(cls, columns, schema=None):
        """A batch from ``{name: list}``; types from ``schema`` (a ``Schema``, or ``{name:
        type}``) where given, else from the values (int → int64, float → float64, str → utf8,
        bytes → binary, bool → bool)."""
        given = {}
        if isinstance(schema, Schema):
            given = {f.name: f for f in schema.fields}
        elif schema:
            given = {name: Field(name, t) for name, t in schema.items()}
        rows = None
        out = []
        for name, values in columns.items():
            values = list(values)
            if rows is None:
                rows = len(values)
            elif len(values) != rows:
                raise BatchError(f"column `{name}` has {len(values)} values, the others {rows}")
            field = given.get(name) or Field(name, _infer(name, values))
            out.append(_Column(field, values=values))
        return cls(out, rows or 0)

    @property
    def num_rows(self):
        """How many rows."""
        return self._rows

    def __len__(self):
        return self._rows

    @property
    def schema(self):
        """The columns' names and types (a column whose type is not known yet, built from
        nulls only, has type ``None``)."""
        return Schema([c.field for c in self._columns])

    @property
    def column_names(self):
        """The names, in order."""
        return [c.field.name for c in self._columns]

    def _find(self, name):
        for i, c in enumerate(self._columns):
            if c.field.name == name:
                return i
        raise KeyError(
            f"no column `{name}` (the columns are {', '.join(self.column_names) or 'none'})"
        )

    def column(self, name):
        """Column ``name``'s values: a list, nulls as ``None``."""
        return self._columns[self._find(name)].get()

    __getitem__ = column

    def __contains__(self, name):
        return any(c.field.name == name for c in self._columns)

    def to_pydict(self):
        """``{name: list}`` of every column."""
        return {c.field.name: c.get() for c in self._columns}

    def rows(self):
        """The rows as dicts (convenient, and slower than working by column)."""
        names = self.column_names
        for values in zip(*(c.get() for c in self._columns)):
            yield dict(zip(names, values))

    def with_column(self, name, values, type=None):
        """This batch with column ``name`` set to ``values`` (replaced in place if it exists,
        else added at the end). The type is ``type``, else the replaced column's, else the
        values' (and, when they are all null, the type ``output_schema`` declared)."""
        values = list(values)
        if len(values) != self._rows:
            raise BatchError(f"column `{name}` has {len(values)} values, the batch {self._rows} rows")
        columns = list(self._columns)
        try:
            at = self._find(name)
        except KeyError:
            at = None
        if type is None and at is not None:
            type = columns[at].field.type
        column = _Column(Field(name, type or _infer(name, values)), values=values)
        if at is None:
            columns.append(column)
        else:
            columns[at] = column
        return Batch(columns, self._rows)

    def select(self, names):
        """This batch with only ``names``, in that order."""
        return Batch([self._columns[self._find(n)] for n in names], self._rows)

    def drop(self, names):
        """This batch without ``names``."""
        names = [names] if isinstance(names, str) else list(names)
        for n in names:
            self._find(n)
        return Batch([c for c in self._columns if c.field.name not in names], self._rows)

    def rename(self, mapping):
        """This batch with columns renamed by ``{old: new}``."""
        for old in mapping:
            self._find(old)
        return Batch(
            [
                _Column(
                    Field(mapping.get(c.field.name, c.field.name), c.field.type, c.field.nullable),
                    values=c.values,
                    parts=c.parts,
                    input=c.input,
                )
                for c in self._columns
            ],
            self._rows,
        )

    def filter(self, mask):
        """The rows where ``mask`` (one value per row) is true; ``None`` counts as false."""
        mask = list(mask)
        if len(mask) != self._rows:
            raise BatchError(f"a mask of {len(mask)} values for {self._rows} rows")
        kept = sum(1 for m in mask if m)
        columns = [_Column(c.field, values=select(c.get(), mask)) for c in self._columns]
        return Batch(columns, kept)

    def _to_wire(self, declared):
        """The buffers of this batch as a batch of ``declared`` (a ``Schema``)."""
        if len(declared.fields) != len(self._columns):
            raise BatchError(
                f"process returned columns {self.column_names} but output_schema declared "
                f"{declared.names()}"
            )
        buffers = []
        for column, field in zip(self._columns, declared.fields):
            if column.field.type is not None and column.field.type != field.type:
                raise BatchError(
                    f"process returned column `{column.field.name}` as {column.field.type!r} "
                    f"but output_schema declared `{field.name}` as {field.type!r}"
                )
            if column.input is not None:
                # An input column, unchanged (a filtered one is a new column): the host has it.
                buffers.extend(input_reference(self._rows, column.input))
            elif column.parts is not None:
                buffers.extend(column.parts)
            else:
                buffers.extend(encode_column(field, column.values))
        return buffers
