"""One-dimensional arrays for bulk statements, written in PostgreSQL's binary format in one pass.

psycopg dumps a Python list element by element in Python; ingest sends six arrays of up to 10,000
values per batch, where that loop is a measurable share of the request. These wrappers are dumped by
C-level iteration (`map`, `bytes.join`) instead. Wrap a list in one and pass it as a parameter of a
statement; PostgreSQL receives an ordinary `text[]`, `bytea[]`, `timestamptz[]`, `bigint[]` or `uuid[]`.
None is not allowed in them (the values of the statements using them are never null).
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from typing import Final

import psycopg
from psycopg.adapt import Buffer, Dumper
from psycopg.pq import Format

__all__ = ["BytesArray", "IntArray", "TextArray", "TimestampArray", "UuidArray"]

_TEXT_OID: Final = 25
_BYTEA_OID: Final = 17
_TIMESTAMPTZ_OID: Final = 1184
_TEXT_ARRAY_OID: Final = 1009
_BYTEA_ARRAY_OID: Final = 1001
_TIMESTAMPTZ_ARRAY_OID: Final = 1185
_INT8_OID: Final = 20
_INT8_ARRAY_OID: Final = 1016
_UUID_OID: Final = 2950
_UUID_ARRAY_OID: Final = 2951

# ndim, has-nulls flag, element type, length, lower bound
_HEADER: Final = struct.Struct("!iiIii")
_LENGTH: Final = struct.Struct("!i").pack
_POSTGRES_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


class TextArray(list[str]):
    """A `text[]` parameter."""

    __slots__ = ()


class BytesArray(list[bytes]):
    """A `bytea[]` parameter."""

    __slots__ = ()


class TimestampArray(list[datetime]):
    """A `timestamptz[]` parameter (aware datetimes)."""

    __slots__ = ()


class IntArray(list[int]):
    """A `bigint[]` parameter."""

    __slots__ = ()


class UuidArray(list[uuid.UUID]):
    """A `uuid[]` parameter (the billing run's chunks of customer ids: psycopg's list costs about
    1.3 µs per UUID, this a tenth of it, measured)."""

    __slots__ = ()


_EMPTY: Final = struct.Struct("!iiI")  # no dimensions: PostgreSQL's empty array


def _header(element_oid: int, length: int) -> bytes:
    return _HEADER.pack(1, 0, element_oid, length, 1) if length else _EMPTY.pack(0, 0, element_oid)


def _with_lengths(header: bytes, items: list[bytes]) -> bytes:
    return b"".join(chain((header,), chain.from_iterable(zip(map(_LENGTH, map(len, items)), items, strict=True))))


class _TextArrayDumper(Dumper):
    format = Format.BINARY
    oid = _TEXT_ARRAY_OID

    def dump(self, obj: TextArray) -> Buffer:
        return _with_lengths(_header(_TEXT_OID, len(obj)), list(map(str.encode, obj)))


class _BytesArrayDumper(Dumper):
    format = Format.BINARY
    oid = _BYTEA_ARRAY_OID

    def dump(self, obj: BytesArray) -> Buffer:
        lengths = set(map(len, obj))
        if len(lengths) == 1:
            # Values of one length (content hashes): every element's prefix is the same bytes.
            prefix = _LENGTH(lengths.pop())
            return _header(_BYTEA_OID, len(obj)) + prefix + prefix.join(obj)
        return _with_lengths(_header(_BYTEA_OID, len(obj)), obj)


class _TimestampArrayDumper(Dumper):
    format = Format.BINARY
    oid = _TIMESTAMPTZ_ARRAY_OID

    def dump(self, obj: TimestampArray) -> Buffer:
        epoch, microsecond = _POSTGRES_EPOCH, _MICROSECOND
        micros = [(moment - epoch) // microsecond for moment in obj]
        # Each element: its length (8), then the microseconds; all packed by one call.
        return _header(_TIMESTAMPTZ_OID, len(micros)) + struct.pack(
            "!" + "iq" * len(micros), *chain.from_iterable(zip(repeat(8), micros))
        )


class _IntArrayDumper(Dumper):
    format = Format.BINARY
    oid = _INT8_ARRAY_OID

    def dump(self, obj: IntArray) -> Buffer:
        # Each element: its length (8), then the value; all packed by one call.
        return _header(_INT8_OID, len(obj)) + struct.pack(
            "!" + "iq" * len(obj), *chain.from_iterable(zip(repeat(8), obj))
        )


class _UuidArrayDumper(Dumper):
    format = Format.BINARY
    oid = _UUID_ARRAY_OID

    def dump(self, obj: UuidArray) -> Buffer:
        # Each element: its length (16), then its 16 bytes.
        prefix = _LENGTH(16)
        return _header(_UUID_OID, len(obj)) + (prefix + prefix.join([value.bytes for value in obj]) if obj else b"")


# Registered for every connection made after import (connections copy the global adapters).
psycopg.adapters.register_dumper(TextArray, _TextArrayDumper)
psycopg.adapters.register_dumper(BytesArray, _BytesArrayDumper)
psycopg.adapters.register_dumper(TimestampArray, _TimestampArrayDumper)
psycopg.adapters.register_dumper(IntArray, _IntArrayDumper)
psycopg.adapters.register_dumper(UuidArray, _UuidArrayDumper)
