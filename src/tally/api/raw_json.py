"""Answers rendered as exact JSON: event properties embedded as PostgreSQL prints them (numbers
exact, never through float), decimals as numbers, datetimes in ISO 8601. For routes that answer
raw event data (`/v1/events`, a usage line's events); everything else goes through Pydantic."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from fastapi.responses import Response


class RawJson(str):
    """JSON text to embed as is (properties as PostgreSQL prints them: numbers exact)."""

    __slots__ = ()


def encode(value: object) -> str:
    if isinstance(value, RawJson):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(key))}:{encode(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode(item) for item in value) + "]"
    if isinstance(value, datetime):
        return json.dumps(value.isoformat())
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def exact_json(document: object, status_code: int = 200) -> Response:
    return Response(encode(document).encode(), status_code=status_code, media_type="application/json")
