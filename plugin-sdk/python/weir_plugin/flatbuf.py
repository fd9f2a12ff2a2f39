"""The little of FlatBuffers that an Arrow schema message needs, in pure Python.

Arrow encodes a schema as a FlatBuffers table (``Message`` holding a ``Schema``). There is no
FlatBuffers or pyarrow inside a plugin component, so this module reads and writes the format
itself: tables with scalar, string, table, union and vector fields.

Reading follows the format as specified: a table starts with a signed offset back to its vtable;
the vtable lists, per field, where the field sits in the table (0: absent, default value).

Writing lays the buffer out front to back: a table's vtable, then the table, then what it points
to. Offsets to strings, vectors and tables are unsigned and point forward, which this layout
satisfies; every table is 8-byte aligned so 64-bit fields are aligned too.
"""

import struct

__all__ = ["Table", "Builder", "String", "TableValue", "TableVector", "FlatBufferError"]


class FlatBufferError(ValueError):
    """The bytes are not a well-formed FlatBuffer of the expected shape."""


class Table:
    """A table inside a FlatBuffer, read lazily."""

    __slots__ = ("buf", "pos", "vtable", "vtable_len")

    def __init__(self, buf, pos):
        self.buf = buf
        self.pos = pos
        if pos < 0 or pos + 4 > len(buf):
            raise FlatBufferError(f"table at {pos} is outside the buffer")
        (back,) = struct.unpack_from("<i", buf, pos)
        self.vtable = pos - back
        if self.vtable < 0 or self.vtable + 4 > len(buf):
            raise FlatBufferError(f"vtable of the table at {pos} is outside the buffer")
        (self.vtable_len,) = struct.unpack_from("<H", buf, self.vtable)

    @classmethod
    def root(cls, buf):
        """The root table of a FlatBuffer."""
        if len(buf) < 4:
            raise FlatBufferError("a FlatBuffer holds at least its root offset")
        (offset,) = struct.unpack_from("<I", buf, 0)
        return cls(buf, offset)

    def _field(self, index):
        entry = 4 + 2 * index
        if entry + 2 > self.vtable_len:
            return 0
        (offset,) = struct.unpack_from("<H", self.buf, self.vtable + entry)
        return offset

    def scalar(self, index, fmt, default):
        """A scalar field (``struct`` format ``fmt``), or ``default`` when absent."""
        offset = self._field(index)
        if offset == 0:
            return default
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos + offset)
        return value

    def _target(self, index):
        offset = self._field(index)
        if offset == 0:
            return None
        at = self.pos + offset
        (forward,) = struct.unpack_from("<I", self.buf, at)
        return at + forward

    def string(self, index):
        """A string field, or ``None`` when absent."""
        at = self._target(index)
        if at is None:
            return None
        (length,) = struct.unpack_from("<I", self.buf, at)
        raw = bytes(self.buf[at + 4 : at + 4 + length])
        if len(raw) != length:
            raise FlatBufferError("a string runs past the end of the buffer")
        return raw.decode("utf-8")

    def table(self, index):
        """A table (or union value) field, or ``None`` when absent."""
        at = self._target(index)
        return None if at is None else Table(self.buf, at)

    def tables(self, index):
        """A vector of tables, empty when absent."""
        at = self._target(index)
        if at is None:
            return []
        (length,) = struct.unpack_from("<I", self.buf, at)
        if at + 4 + 4 * length > len(self.buf):
            raise FlatBufferError("a vector runs past the end of the buffer")
        out = []
        for i in range(length):
            slot = at + 4 + 4 * i
            (forward,) = struct.unpack_from("<I", self.buf, slot)
            out.append(Table(self.buf, slot + forward))
        return out


class String:
    """A string field's value, for the builder."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


class TableValue:
    """A table to write: ``fields`` maps a field index to ``(fmt, value)`` for a scalar (a
    ``struct`` format) or to a ``String``, ``TableValue`` or ``TableVector``."""

    __slots__ = ("fields",)

    def __init__(self, fields):
        self.fields = fields


class TableVector:
    """A vector of tables, for the builder."""

    __slots__ = ("tables",)

    def __init__(self, tables):
        self.tables = tables


class Builder:
    """Writes a FlatBuffer whose root is a ``TableValue``."""

    def __init__(self):
        self.out = bytearray()

    def _align(self, n):
        while len(self.out) % n:
            self.out.append(0)

    def _patch(self, at, target):
        struct.pack_into("<I", self.out, at, target - at)

    def _string(self, text):
        self._align(4)
        raw = text.encode("utf-8")
        at = len(self.out)
        self.out += struct.pack("<I", len(raw)) + raw + b"\0"
        return at

    def _vector(self, tables):
        self._align(4)
        at = len(self.out)
        self.out += struct.pack("<I", len(tables)) + b"\0" * (4 * len(tables))
        for i, table in enumerate(tables):
            self._patch(at + 4 + 4 * i, self._table(table))
        return at

    def _table(self, table):
        indexes = sorted(table.fields)
        # Fields in the table after its 4-byte vtable offset, each aligned to its size.
        layout = []
        size = 4
        for index in indexes:
            value = table.fields[index]
            width = struct.calcsize("<" + value[0]) if isinstance(value, tuple) else 4
            size = (size + width - 1) // width * width
            layout.append((index, size, value))
            size += width
        slots = (max(indexes) + 1) if indexes else 0
        vtable = [0] * slots
        for index, offset, _ in layout:
            vtable[index] = offset
        vtable_bytes = struct.pack(f"<HH{slots}H", 4 + 2 * slots, size, *vtable)
        # The vtable right before the table, the table 8-byte aligned.
        self._align(2)
        while (len(self.out) + len(vtable_bytes)) % 8:
            self.out += b"\0\0"
        vtable_at = len(self.out)
        self.out += vtable_bytes
        table_at = len(self.out)
        self.out += b"\0" * size
        struct.pack_into("<i", self.out, table_at, table_at - vtable_at)
        children = []
        for index, offset, value in layout:
            if isinstance(value, tuple):
                struct.pack_into("<" + value[0], self.out, table_at + offset, value[1])
            else:
                children.append((table_at + offset, value))
        for at, value in children:
            if isinstance(value, String):
                target = self._string(value.text)
            elif isinstance(value, TableVector):
                target = self._vector(value.tables)
            elif isinstance(value, TableValue):
                target = self._table(value)
            else:
                raise TypeError(f"cannot write {type(value).__name__} in a FlatBuffer")
            self._patch(at, target)
        return table_at

    def finish(self, root):
        """The bytes of a FlatBuffer with ``root`` as its root table."""
        self.out = bytearray(b"\0\0\0\0")
        self._patch(0, self._table(root))
        self._align(8)
        return bytes(self.out)
