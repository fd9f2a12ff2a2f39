"""Arrow data types, fields and schemas, and their encoding at the plugin boundary: an Arrow
IPC stream holding only the schema message (what the Rust SDK's ``wire::schema_to_bytes``
writes), read and written in pure Python.

The types a Python plugin can read and write are the ones weir's pipelines produce: booleans,
signed and unsigned integers, floats, strings, binary, dates, timestamps and durations. A schema
with another type (a list, a struct) is refused with a message naming the column.
"""

import struct

from .flatbuf import Builder, FlatBufferError, String, Table, TableValue, TableVector

__all__ = [
    "DataType",
    "Field",
    "Schema",
    "SchemaError",
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "utf8",
    "large_utf8",
    "binary",
    "large_binary",
    "date32",
    "timestamp",
    "duration",
    "null",
]


class SchemaError(ValueError):
    """A schema that cannot be read, or holds a type the Python SDK does not handle."""


_TIME_UNITS = ("s", "ms", "us", "ns")


class DataType:
    """An Arrow data type: ``kind`` (``"int"``, ``"utf8"``, ``"timestamp"``, ...) and its
    parameters. Compare with ``==``; the module's constants and functions make them."""

    __slots__ = ("kind", "params")

    def __init__(self, kind, *params):
        self.kind = kind
        self.params = params

    def __eq__(self, other):
        return (
            isinstance(other, DataType)
            and self.kind == other.kind
            and self.params == other.params
        )

    def __hash__(self):
        return hash((self.kind, self.params))

    def __repr__(self):
        if self.kind == "int":
            bits, signed = self.params
            return f"{'int' if signed else 'uint'}{bits}"
        if self.kind == "float":
            return f"float{self.params[0]}"
        if self.kind in ("timestamp", "duration"):
            unit, tz = (self.params + (None,))[:2]
            return f"{self.kind}[{unit}{', ' + tz if tz else ''}]"
        return self.kind

    @property
    def is_integer(self):
        return self.kind == "int"

    @property
    def is_numeric(self):
        return self.kind in ("int", "float")


null = DataType("null")
bool_ = DataType("bool")
int8, int16, int32, int64 = (DataType("int", b, True) for b in (8, 16, 32, 64))
uint8, uint16, uint32, uint64 = (DataType("int", b, False) for b in (8, 16, 32, 64))
float32 = DataType("float", 32)
float64 = DataType("float", 64)
utf8 = DataType("utf8")
large_utf8 = DataType("large_utf8")
binary = DataType("binary")
large_binary = DataType("large_binary")
date32 = DataType("date32")


def timestamp(unit="ms", tz=None):
    """A timestamp type: ``unit`` one of ``s``, ``ms``, ``us``, ``ns``; ``tz`` a time zone name
    or offset, or ``None``."""
    if unit not in _TIME_UNITS:
        raise SchemaError(f"timestamp unit {unit!r} is not one of {', '.join(_TIME_UNITS)}")
    return DataType("timestamp", unit, tz)


def duration(unit="ms"):
    """A duration type: ``unit`` one of ``s``, ``ms``, ``us``, ``ns``."""
    if unit not in _TIME_UNITS:
        raise SchemaError(f"duration unit {unit!r} is not one of {', '.join(_TIME_UNITS)}")
    return DataType("duration", unit)


class Field:
    """A named column of a data type, nullable or not."""

    __slots__ = ("name", "type", "nullable", "metadata")

    def __init__(self, name, type, nullable=True, metadata=None):
        self.name = name
        self.type = type
        self.nullable = nullable
        self.metadata = dict(metadata or {})

    def __eq__(self, other):
        return (
            isinstance(other, Field)
            and (self.name, self.type, self.nullable, self.metadata)
            == (other.name, other.type, other.nullable, other.metadata)
        )

    def __repr__(self):
        return f"Field({self.name!r}, {self.type!r}{'' if self.nullable else ', not null'})"


class Schema:
    """The columns of a batch, in order."""

    __slots__ = ("fields", "metadata")

    def __init__(self, fields, metadata=None):
        self.fields = list(fields)
        self.metadata = dict(metadata or {})

    def __eq__(self, other):
        return isinstance(other, Schema) and (self.fields, self.metadata) == (
            other.fields,
            other.metadata,
        )

    def __repr__(self):
        return f"Schema({self.fields!r})"

    def __iter__(self):
        return iter(self.fields)

    def __len__(self):
        return len(self.fields)

    def names(self):
        """The column names, in order."""
        return [f.name for f in self.fields]

    def index(self, name):
        """The position of column ``name``; ``KeyError`` naming the columns there are."""
        for i, f in enumerate(self.fields):
            if f.name == name:
                return i
        raise KeyError(f"no column `{name}` (the columns are {', '.join(self.names()) or 'none'})")

    def field(self, name):
        """Column ``name``'s field."""
        return self.fields[self.index(name)]

    def to_bytes(self):
        """This schema as the host reads it: an Arrow IPC stream of the schema message."""
        return encode_schema(self)

    @staticmethod
    def from_bytes(data):
        """A schema as the host sends it."""
        return decode_schema(data)


# Arrow's `Type` union (format/Schema.fbs).
_NULL, _INT, _FLOAT, _BINARY, _UTF8, _BOOL = 1, 2, 3, 4, 5, 6
_DATE, _TIMESTAMP, _DURATION, _LARGE_BINARY, _LARGE_UTF8 = 8, 10, 18, 19, 20
_TYPE_NAMES = {
    7: "decimal",
    9: "time",
    11: "interval",
    12: "list",
    13: "struct",
    14: "union",
    15: "fixed-size binary",
    16: "fixed-size list",
    17: "map",
    21: "large list",
    22: "run-end encoded",
    23: "binary view",
    24: "string view",
}
_SIMPLE = {
    _NULL: null,
    _BINARY: binary,
    _UTF8: utf8,
    _BOOL: bool_,
    _LARGE_BINARY: large_binary,
    _LARGE_UTF8: large_utf8,
}
_METADATA_V5 = 4
_HEADER_SCHEMA = 1
_CONTINUATION = 0xFFFFFFFF


def _read_type(type_id, table, column):
    if type_id in _SIMPLE:
        return _SIMPLE[type_id]
    if type_id == _INT:
        bits = table.scalar(0, "i", 0)
        if bits not in (8, 16, 32, 64):
            raise SchemaError(f"column `{column}`: integers of {bits} bits")
        return DataType("int", bits, bool(table.scalar(1, "B", 0)))
    if type_id == _FLOAT:
        precision = table.scalar(0, "h", 0)
        if precision == 0:
            raise SchemaError(f"column `{column}`: half floats are not handled by the Python SDK")
        return float32 if precision == 1 else float64
    if type_id == _DATE:
        if table.scalar(0, "h", 1) != 0:
            raise SchemaError(f"column `{column}`: date64 is not handled by the Python SDK")
        return date32
    if type_id == _TIMESTAMP:
        return timestamp(_TIME_UNITS[table.scalar(0, "h", 0)], table.string(1))
    if type_id == _DURATION:
        return duration(_TIME_UNITS[table.scalar(0, "h", 1)])
    name = _TYPE_NAMES.get(type_id, f"type {type_id}")
    raise SchemaError(f"column `{column}` is a {name}, which the Python SDK does not handle yet")


def _read_metadata(table, index):
    return {kv.string(0): kv.string(1) for kv in table.tables(index)}


def decode_schema(data):
    """Reads an Arrow IPC stream's schema message."""
    data = bytes(data)
    try:
        if len(data) < 8:
            raise SchemaError("too short for an Arrow IPC message")
        at = 0
        (marker,) = struct.unpack_from("<I", data, at)
        if marker == _CONTINUATION:
            at += 4
        (length,) = struct.unpack_from("<i", data, at)
        at += 4
        if length <= 0 or at + length > len(data):
            raise SchemaError("the schema message's length does not fit the bytes")
        message = Table.root(memoryview(data)[at : at + length])
        if message.scalar(1, "B", 0) != _HEADER_SCHEMA:
            raise SchemaError("the first message is not a schema")
        schema = message.table(2)
        if schema is None:
            raise SchemaError("the schema message has no schema")
        if schema.scalar(0, "h", 0) != 0:
            raise SchemaError("big-endian data is not handled")
        fields = []
        for f in schema.tables(1):
            name = f.string(0) or ""
            type_table = f.table(3)
            if f.table(4) is not None:
                raise SchemaError(f"column `{name}` is dictionary-encoded, not handled yet")
            if type_table is None:
                raise SchemaError(f"column `{name}` has no type")
            data_type = _read_type(f.scalar(2, "B", 0), type_table, name)
            fields.append(Field(name, data_type, bool(f.scalar(1, "B", 0)), _read_metadata(f, 6)))
        return Schema(fields, _read_metadata(schema, 2))
    except (FlatBufferError, struct.error, UnicodeDecodeError, IndexError) as err:
        raise SchemaError(f"the schema bytes are malformed: {err}") from None


def _type_table(data_type):
    """The type's union tag and table."""
    kind = data_type.kind
    for tag, simple in _SIMPLE.items():
        if simple == data_type:
            return tag, TableValue({})
    if kind == "int":
        bits, signed = data_type.params
        return _INT, TableValue({0: ("i", bits), 1: ("B", 1 if signed else 0)})
    if kind == "float":
        return _FLOAT, TableValue({0: ("h", 1 if data_type.params[0] == 32 else 2)})
    if kind == "date32":
        return _DATE, TableValue({0: ("h", 0)})
    if kind == "timestamp":
        unit, tz = data_type.params
        fields = {0: ("h", _TIME_UNITS.index(unit))}
        if tz is not None:
            fields[1] = String(tz)
        return _TIMESTAMP, TableValue(fields)
    if kind == "duration":
        return _DURATION, TableValue({0: ("h", _TIME_UNITS.index(data_type.params[0]))})
    raise SchemaError(f"cannot write type {data_type!r}")


def _metadata(mapping):
    return TableVector(
        [TableValue({0: String(k), 1: String(v)}) for k, v in sorted(mapping.items())]
    )


def encode_schema(schema):
    """An Arrow IPC stream holding ``schema``'s message and the end-of-stream marker."""
    fields = []
    for f in schema.fields:
        tag, table = _type_table(f.type)
        entry = {
            0: String(f.name),
            1: ("B", 1 if f.nullable else 0),
            2: ("B", tag),
            3: table,
            5: TableVector([]),
        }
        if f.metadata:
            entry[6] = _metadata(f.metadata)
        fields.append(TableValue(entry))
    schema_table = {0: ("h", 0), 1: TableVector(fields)}
    if schema.metadata:
        schema_table[2] = _metadata(schema.metadata)
    message = TableValue(
        {
            0: ("h", _METADATA_V5),
            1: ("B", _HEADER_SCHEMA),
            2: TableValue(schema_table),
            3: ("q", 0),
        }
    )
    body = Builder().finish(message)
    # 8-byte aligned: the continuation marker and length (8 bytes) then the padded message.
    body += b"\0" * (-len(body) % 8)
    return (
        struct.pack("<Ii", _CONTINUATION, len(body))
        + body
        + struct.pack("<Ii", _CONTINUATION, 0)
    )
