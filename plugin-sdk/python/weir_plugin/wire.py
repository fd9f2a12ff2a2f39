"""Columns at the plugin boundary, in pure Python: the Arrow buffers of each column in "wire
order" (see ``plugin.wit``), decoded into Python lists and encoded back.

For each column: a 24-byte header (six little-endian u32: length, offset, validity bit offset,
has validity, buffer count, child count), then the validity bitmap if it has one, then its
buffers (offsets, values, ...). Values are read with ``memoryview.cast`` and written with
``array``, both in C, so a column costs a few C loops rather than a Python loop per value where
the type allows (numbers); strings and nulls take one Python step per value.
"""

import struct
from array import array
from itertools import chain, compress

__all__ = ["WireError", "split_columns", "decode_column", "encode_column", "input_reference",
           "is_input_reference"]


class WireError(ValueError):
    """Buffers that do not fit the schema (a bug on one side or the other)."""


_HEADER = struct.Struct("<6I")

# The "has validity" value of a header that stands for an input column returned unchanged.
_SAME_AS_INPUT = 0xFFFFFFFF


def is_input_reference(parts):
    """The input column a column's ``parts`` stand for, or ``None`` when they are data."""
    if len(parts) == 1 and len(parts[0]) == _HEADER.size:
        _, index, _, has_validity, _, _ = _HEADER.unpack(parts[0])
        if has_validity == _SAME_AS_INPUT:
            return index
    return None


def input_reference(rows, index):
    """The header alone that stands for input column ``index`` (of ``rows`` rows) in a
    transform's output: the host keeps the column it sent, so it does not cross back."""
    return [_HEADER.pack(rows, index, 0, _SAME_AS_INPUT, 0, 0)]

# memoryview / array type codes of fixed-width types (both sides little-endian).
_FIXED = {
    ("int", 8, True): "b",
    ("int", 16, True): "h",
    ("int", 32, True): "i",
    ("int", 64, True): "q",
    ("int", 8, False): "B",
    ("int", 16, False): "H",
    ("int", 32, False): "I",
    ("int", 64, False): "Q",
    ("float", 32): "f",
    ("float", 64): "d",
    ("date32",): "i",
}

# Each byte's eight bits, least significant first, as Arrow's bitmaps order them.
_BITS = [tuple(bool(byte >> i & 1) for i in range(8)) for byte in range(256)]


def _code(data_type):
    key = (data_type.kind,) + data_type.params
    if data_type.kind in ("timestamp", "duration"):
        return "q"
    return _FIXED.get(key)


def split_columns(schema, buffers):
    """Groups the flat wire-order buffer list into one list per column of ``schema``."""
    out = []
    at = 0
    for field in schema.fields:
        if at >= len(buffers):
            raise WireError(f"the batch ended before column `{field.name}`")
        header = buffers[at]
        if len(header) != _HEADER.size:
            raise WireError(f"column `{field.name}`: a header of {len(header)} bytes")
        _, _, _, has_validity, n_buffers, n_children = _HEADER.unpack(header)
        if has_validity == _SAME_AS_INPUT:
            # A reference to an input column (in a transform's output): the header alone.
            out.append([header])
            at += 1
            continue
        if n_children:
            raise WireError(f"column `{field.name}`: nested columns are not handled yet")
        end = at + 1 + has_validity + n_buffers
        if end > len(buffers):
            raise WireError(f"column `{field.name}`: fewer buffers than its header says")
        out.append(buffers[at:end])
        at = end
    if at != len(buffers):
        raise WireError(f"{len(buffers) - at} buffers after the last column")
    return out


def _bits(bitmap, offset, length):
    """``length`` booleans of ``bitmap`` from bit ``offset``."""
    first = offset >> 3
    last = (offset + length + 7) >> 3
    bits = list(chain.from_iterable(_BITS[b] for b in bitmap[first:last]))
    skip = offset & 7
    return bits[skip : skip + length]


def decode_column(field, parts):
    """Column ``field`` (its wire buffers, as ``split_columns`` grouped them) as a list, nulls
    as ``None``. Integers, dates (days), timestamps and durations (in their unit) are ints."""
    length, offset, validity_offset, has_validity, n_buffers, _ = _HEADER.unpack(parts[0])
    buffers = parts[1 + has_validity :]
    kind = field.type.kind
    code = _code(field.type)
    name = field.name
    if kind == "null":
        return [None] * length
    if code is not None:
        if n_buffers != 1:
            raise WireError(f"column `{name}`: {n_buffers} buffers for a {field.type!r}")
        values = memoryview(buffers[0])
        size = struct.calcsize(code)
        if len(values) % size or len(values) // size < offset + length:
            raise WireError(f"column `{name}`: a values buffer of {len(values)} bytes")
        out = values.cast(code)[offset : offset + length].tolist()
    elif kind == "bool":
        if n_buffers != 1 or len(buffers[0]) * 8 < offset + length:
            raise WireError(f"column `{name}`: a bitmap too short for {length} values")
        out = _bits(buffers[0], offset, length)
    elif kind in ("utf8", "binary", "large_utf8", "large_binary"):
        if n_buffers != 2:
            raise WireError(f"column `{name}`: {n_buffers} buffers for a {field.type!r}")
        code = "q" if kind.startswith("large") else "i"
        ends = memoryview(buffers[0]).cast(code)[offset : offset + length + 1].tolist()
        data = bytes(buffers[1])
        if len(ends) != length + 1 or ends and (ends[0] < 0 or ends[-1] > len(data)):
            raise WireError(f"column `{name}`: offsets out of range")
        pieces = [data[a:b] for a, b in zip(ends, ends[1:])]
        if kind.endswith("utf8"):
            try:
                out = [p.decode("utf-8") for p in pieces]
            except UnicodeDecodeError as err:
                raise WireError(f"column `{name}`: invalid UTF-8 ({err})") from None
        else:
            out = pieces
    else:
        raise WireError(f"column `{name}`: type {field.type!r} is not handled")
    if has_validity:
        valid = _bits(parts[1], validity_offset, length)
        if len(valid) != length:
            raise WireError(f"column `{name}`: a validity bitmap too short")
        out = [v if ok else None for v, ok in zip(out, valid)]
    return out


def _bitmap(flags):
    """Arrow bitmap bytes of an iterable of booleans."""
    flags = list(flags)
    flags += [False] * (-len(flags) % 8)
    return bytes(
        sum(bit << i for i, bit in enumerate(flags[at : at + 8])) for at in range(0, len(flags), 8)
    )


def encode_column(field, values):
    """The wire buffers of ``values`` (a list, nulls as ``None``) as a column of ``field``."""
    kind = field.type.kind
    name = field.name
    n = len(values)
    nulls = values.count(None)
    validity = [] if nulls == 0 else [_bitmap(v is not None for v in values)]
    if nulls and not field.nullable:
        raise WireError(f"column `{name}` is declared not null but has {nulls} nulls")
    code = _code(field.type)
    try:
        if kind == "null":
            buffers = []
            validity = []
        elif code is not None:
            filled = values if nulls == 0 else [0 if v is None else v for v in values]
            buffers = [array(code, filled).tobytes()]
        elif kind == "bool":
            buffers = [_bitmap(bool(v) for v in values)]
        elif kind in ("utf8", "binary", "large_utf8", "large_binary"):
            if kind.endswith("utf8"):
                pieces = [b"" if v is None else v.encode("utf-8") for v in values]
            else:
                pieces = [b"" if v is None else bytes(v) for v in values]
            ends = [0]
            ends.extend(_cumulative(len(p) for p in pieces))
            code = "q" if kind.startswith("large") else "i"
            if code == "i" and ends[-1] >= 2**31:
                raise WireError(f"column `{name}`: more than 2 GiB of text in one batch")
            buffers = [array(code, ends).tobytes(), b"".join(pieces)]
        else:
            raise WireError(f"column `{name}`: type {field.type!r} is not handled")
    except (TypeError, OverflowError, AttributeError) as err:
        sample = next((v for v in values if v is not None), None)
        raise WireError(
            f"column `{name}` is declared {field.type!r} but holds {type(sample).__name__} "
            f"values such as {sample!r} ({err})"
        ) from None
    header = _HEADER.pack(n, 0, 0, 1 if validity else 0, len(buffers), 0)
    return [header] + validity + buffers


def _cumulative(lengths):
    total = 0
    for length in lengths:
        total += length
        yield total


def select(values, mask):
    """The values where ``mask`` is true (``None`` counts as false)."""
    return list(compress(values, (bool(m) for m in mask)))
