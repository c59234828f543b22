"""JSON for event bodies: `Decimal` goes out as a JSON number with every digit it has.

The standard library's encoder turns a `Decimal` into a string (or, through `float`, loses digits),
so the client writes its own small encoder. Quantities like 0.000002 tokens must reach the server
exactly as the caller wrote them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

# Strings go through the C encoder: escaping is the part worth doing fast.
_encode_string = json.encoder.encode_basestring_ascii
# Properties nest; a limit keeps a cyclic structure from recursing until the stack gives out.
NESTING_DEPTH_MAX = 32


def format_timestamp(value: datetime | str) -> str:
    """RFC 3339 text of an aware datetime; text is passed through for the server to check."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware (e.g. datetime.now(UTC))")
    return value.isoformat()


def encode_value(value: Any, *, depth: int = 0) -> str:
    """One JSON value. Decimal → its exact digits; float → shortest round-trip repr; no NaN or ∞."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be sent: JSON has no NaN or infinity")
        # str() of a finite Decimal is always a valid JSON number ("1.50", "1E+3", "-0.000002").
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be sent: JSON has no NaN or infinity")
        return float.__repr__(value)
    if depth >= NESTING_DEPTH_MAX:
        raise ValueError(f"properties nest deeper than {NESTING_DEPTH_MAX} levels")
    if isinstance(value, Mapping):
        parts = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"property names must be strings, not {type(key).__name__}")
            parts.append(f"{_encode_string(key)}:{encode_value(item, depth=depth + 1)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode_value(item, depth=depth + 1) for item in value) + "]"
    if isinstance(value, datetime):
        return _encode_string(format_timestamp(value))
    raise TypeError(f"cannot send a {type(value).__name__} as JSON (use str, int, Decimal, bool, None, dict, list)")
