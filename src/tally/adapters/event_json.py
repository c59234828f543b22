"""Event bodies decoded and validated in bulk, in compiled code: the fast way to the same answers.

`tally.core.metering.events` defines what a valid event is (`decode_json` then `parse_event`, one
event at a time, in Python). Ingest spends most of its Python time there, so this module gives the
very same answers faster for the bodies real clients send:

- the body is decoded by msgspec straight into typed records (id, customer, type and timestamp as
  strings, properties as an object, nothing else), with every non-integral number the exact
  `Decimal` of its literal, as the core decodes it;
- each record then gets the core's checks in their common, cheap form (its numbers made canonical on
  the way), and its canonical properties are encoded by msgspec with sorted keys;
- anything unusual goes back to the definition: a record that fails a cheap check (a number whose
  canonical form a `Decimal` does not print, say) is handed back as the raw object it was, for
  `parse_event` to judge (ingest does: it takes raw events and `Event`s alike), and a body msgspec
  cannot decode as plain events (a wrong type, NaN, an invalid escape, an exponent beyond a
  `Decimal`'s…) answers None: the caller decodes and parses it the general way.

So the fast path never decides anything the core would decide differently: it accepts an event only
when the core's checks pass on it, and builds the `Event` the core would (a Hypothesis property in the
tests compares both on random bodies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec

from tally.core.metering.events import (
    CUSTOMER_LENGTH_MAX,
    ID_LENGTH_MAX,
    NUMBER_DIGITS_MAX,
    NUMBER_LIMIT,
    PROPERTIES_BYTES_MAX,
    PROPERTIES_DEPTH_MAX,
    TIMESTAMP_LENGTH_MAX,
    TYPE_LENGTH_MAX,
    Event,
    TimestampWindow,
    canonical_decimal_text,
    content_hash,
    parse_timestamp,
)

__all__ = ["Parsed", "parse_json_body", "parse_json_lines", "parse_json_texts"]


class _RawEvent(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    customer: str
    type: str
    timestamp: str
    properties: dict[str, Any] = {}


class _NotPlain(ValueError):
    """A number whose canonical form a `Decimal` cannot print (or that is out of range): the body
    takes the general path."""


def _canonical_decimal(literal: str) -> Decimal:
    """The canonical `Decimal` of a number literal with a fraction or an exponent (or of the text
    of a `Decimal` made from one), or `_NotPlain`."""
    # The common case: plain notation, canonical once trailing zeros are gone, within the limits.
    if "e" not in literal and "E" not in literal:
        text = literal.rstrip("0").rstrip(".") if literal[-1] == "0" else literal
        if text in ("", "-", "-0"):
            text = "0"
        value = Decimal(text)
        if str(value) == text:
            whole, _, fraction = text.lstrip("-").partition(".")
            if len(whole) <= NUMBER_DIGITS_MAX and len(fraction) <= NUMBER_DIGITS_MAX:
                return value
    try:
        text = canonical_decimal_text(Decimal(literal))
    except (ValueError, InvalidOperation) as error:
        raise _NotPlain(literal) from error
    value = Decimal(text)
    if str(value) != text:  # e.g. 1E-7: canonical 0.0000001, which str() of a Decimal never prints
        raise _NotPlain(literal)
    return value


def _canonical_as_decoded(value: Decimal) -> Decimal:
    """`value` (as decoded: the exact `Decimal` of its literal) in canonical form, or `_NotPlain`.
    Most literals already are (plain notation, no trailing zero, well within the limits): one
    `str()` tells, where `_canonical_decimal` would take a Python call and a new `Decimal`."""
    text = str(value)
    if len(text) <= NUMBER_DIGITS_MAX and text[-1] != "0" and "E" not in text:
        return value
    return _canonical_decimal(text)


# Numbers with a fraction or an exponent are decoded to the exact `Decimal` of their literal (by the
# constructor itself: no Python call per number), and made canonical when the properties are
# checked (`_plain_values`).
_ONE_OR_MANY: Final = msgspec.json.Decoder(_RawEvent | list[_RawEvent], float_hook=Decimal)
_ONE: Final = msgspec.json.Decoder(_RawEvent, float_hook=Decimal)
_ENCODER: Final = msgspec.json.Encoder(order="sorted", decimal_format="number")
# InvalidOperation: a literal whose exponent a `Decimal` cannot hold.
_DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, InvalidOperation, RecursionError)
# An `Event` built as the tuple it is, skipping the named tuple's Python-level constructor.
_new_event: Final = tuple.__new__


Parsed = list[Event | dict[str, Any]]


def parse_json_body(body: bytes, window: TimestampWindow) -> Parsed | None:
    """The events of a JSON body (one object, or an array): each one an `Event` exactly as
    `parse_event` would make it, or the raw object when `parse_event` must judge it. None when the body
    must be decoded and parsed the general way (`decode_json`, `parse_event`). The caller enforces the
    batch limit on the length."""
    try:
        decoded = _ONE_OR_MANY.decode(body)
    except _DECODE_ERRORS:
        return None
    raws = decoded if isinstance(decoded, list) else [decoded]
    return _parse_all(raws, window)


def parse_json_lines(body: bytes, window: TimestampWindow) -> Parsed | None:
    """The events of an NDJSON body (one object per line; blank lines skipped), as `parse_json_body`."""
    return parse_json_texts([line for line in body.split(b"\n") if line.strip()], window)


def parse_json_texts(lines: Sequence[bytes | str], window: TimestampWindow) -> Parsed | None:
    """The events of NDJSON lines already split (none blank), one per line, as `parse_json_body`."""
    decode: Callable[[bytes | str], _RawEvent] = _ONE.decode
    try:
        raws = [decode(line) for line in lines]
    except (*_DECODE_ERRORS, UnicodeEncodeError):  # a str with lone surrogates: bytes that were not UTF-8
        return None
    return _parse_all(raws, window)


def _parse_all(raws: list[_RawEvent], window: TimestampWindow) -> Parsed:
    earliest = window.earliest
    latest = window.latest
    encode = _ENCODER.encode
    from_iso = datetime.fromisoformat
    parsed: Parsed = []
    append = parsed.append
    for raw in raws:
        id_ = raw.id
        customer = raw.customer
        type_ = raw.type
        properties = raw.properties
        texts = id_ + customer + type_
        # The common case of every check `parse_event` runs; anything else is left to it.
        if not (
            0 < len(id_) <= ID_LENGTH_MAX
            and 0 < len(customer) <= CUSTOMER_LENGTH_MAX
            and 0 < len(type_) <= TYPE_LENGTH_MAX
            and texts.isascii()
            and "\x00" not in texts
            and _plain_values(properties)
        ):
            append(_as_dict(raw))
            continue
        # The common timestamp (`Z` or `+00:00`, which parse to the `UTC` object itself) here; any
        # other goes through the core's `parse_timestamp`.
        text = raw.timestamp
        read: datetime | None = None
        if 0 < len(text) <= TIMESTAMP_LENGTH_MAX:
            try:
                read = from_iso(text)
            except ValueError:
                read = None
        timestamp = read if read is not None and read.tzinfo is UTC else parse_timestamp(text)
        if isinstance(timestamp, datetime) and earliest <= timestamp <= latest:
            encoded = encode(properties)
            if len(encoded) <= PROPERTIES_BYTES_MAX and b"\\" not in encoded:
                properties_json = encoded.decode()
                append(
                    _new_event(
                        Event,
                        (
                            id_,
                            customer,
                            type_,
                            timestamp,
                            properties,
                            properties_json,
                            content_hash(customer, type_, timestamp, properties_json),
                        ),
                    )
                )
                continue
        append(_as_dict(raw))
    return parsed


def _as_dict(raw: _RawEvent) -> dict[str, Any]:
    return {
        "id": raw.id,
        "customer": raw.customer,
        "type": raw.type,
        "timestamp": raw.timestamp,
        "properties": raw.properties,
    }


def _plain_values(properties: dict[str, Any]) -> bool:
    """Whether every value is a string, a boolean, null, a number within the limits whose canonical
    form a `Decimal` prints, or a container of those within the depth limit (then the canonical
    encoding is msgspec's). Makes each `Decimal` canonical in place on the way."""
    try:
        return _plain_items(properties, properties.items(), 1)
    except _NotPlain:
        return False


def _plain_items(container: dict[str, Any] | list[Any], items: Iterable[tuple[Any, Any]], depth: int) -> bool:
    """`_plain_values` for one container's (key or index, value) pairs; `depth`: its own level."""
    for key, value in items:
        kind = type(value)
        if kind is int:
            if not -NUMBER_LIMIT < value < NUMBER_LIMIT:
                return False
        elif kind is Decimal:
            canonical = _canonical_as_decoded(value)
            if canonical is not value:
                container[key] = canonical
        elif kind is dict or kind is list:
            if depth + 1 > PROPERTIES_DEPTH_MAX:
                return False
            if not _plain_items(value, value.items() if kind is dict else enumerate(value), depth + 1):
                return False
    return True
