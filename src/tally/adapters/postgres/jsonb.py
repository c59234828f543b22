"""JSON for `jsonb` columns on the billing run's hot paths, encoded and decoded by msgspec.

PostgreSQL stores `jsonb` in its own form, so the text sent only has to be valid JSON of the same
value: msgspec's compact output is as good as `json.dumps`'s, several times faster. Values are the
plain ones tally's documents hold (str, int, float, bool, None, lists, tuples, str-keyed dicts).
Unlike `json.dumps`, msgspec also writes a `Decimal`, `datetime` or `UUID` as a string (the documents
written here never hold one); any other type fails as `json.dumps` would (a TypeError).

Decoding: `use_fast_jsonb(cursor)` makes a cursor load `json`/`jsonb` columns with msgspec. Only for
columns tally wrote itself: msgspec refuses a number out of a float's range, which `json.loads`
reads as infinity (a document of tally's never holds one).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import psycopg
from psycopg.types.json import set_json_loads

_encoder: Final = msgspec.json.Encoder()
_decode: Final = msgspec.json.decode


def dumps(value: Any) -> str:
    """`value` as JSON text."""
    try:
        return _encoder.encode(value).decode()
    except msgspec.EncodeError as error:
        raise TypeError(str(error)) from error


def encoded(value: Any) -> bytes:
    """`value` as JSON bytes: a memo key for a decoded document (the same text decodes to dicts
    whose keys come in the same order, so they encode to the same bytes)."""
    try:
        return _encoder.encode(value)
    except msgspec.EncodeError as error:
        raise TypeError(str(error)) from error


def use_fast_jsonb(cursor: psycopg.Cursor[Any]) -> psycopg.Cursor[Any]:
    """`cursor`, loading its `json` and `jsonb` columns with msgspec."""
    set_json_loads(_decode, cursor)
    return cursor
