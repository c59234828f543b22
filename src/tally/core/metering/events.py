"""Usage events: one raw JSON object in, a validated `Event` (or a `Rejection`) out.

An event is what a company's servers report: `id` (the client's, unique per tenant forever),
`customer` (the company's own customer id), `type` (the event name), `timestamp` (when the usage
happened) and `properties` (a JSON object meters read). The server adds `received_at`.

Numbers stay exact: JSON is decoded with integers as `int` and every other number as `Decimal`, never
`float`. A number that cannot be stored exactly within the limits (NaN, ±Infinity, |n| ≥ 10^38, more
than 38 decimal places) rejects its event.

Two events with the same id are the same event when their *content* is the same: customer, type,
timestamp (to the microsecond, in UTC) and properties compared by value (key order, spacing and
`2.50` versus `2.5` do not matter). `content_hash` is the first 16 bytes of the SHA-256 of the
canonical JSON of that content; it tells an identical resend (a duplicate) from a different event
reusing an id (a conflict).

Checks run in a fixed order, so one bad event always gets the same code: the shape (an object, no
unknown field), then `id`, `customer`, `type`, `timestamp`, `properties`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any, Final, NamedTuple

from tally.core.rejections import Rejection

# ----- limits -------------------------------------------------------------------------------------

EVENTS_PER_BATCH_MAX: Final = 10_000
ID_LENGTH_MAX: Final = 255
CUSTOMER_LENGTH_MAX: Final = 255
TYPE_LENGTH_MAX: Final = 255
# The canonical JSON of `properties`, in UTF-8 bytes.
PROPERTIES_BYTES_MAX: Final = 32 * 1024
# Nesting depth of `properties`: the object itself is depth 1, an object inside it depth 2.
PROPERTIES_DEPTH_MAX: Final = 8
# Integer digits and decimal places of a number, each.
NUMBER_DIGITS_MAX: Final = 38
NUMBER_LIMIT: Final = 10**NUMBER_DIGITS_MAX
TIMESTAMP_LENGTH_MAX: Final = 64
CONTENT_HASH_BYTES: Final = 16

FIELDS: Final = frozenset({"id", "customer", "type", "timestamp", "properties"})

# ----- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimestampWindow:
    """The event times accepted now: `earliest` (the horizon into the past) to `latest` (now plus the
    allowed clock skew), both inclusive."""

    earliest: datetime
    latest: datetime


class Event(NamedTuple):
    """A valid event. Build one with `parse_event` only: it fills `properties_json` and
    `content_hash` consistently with the other fields.

    Immutable like a frozen dataclass, but a named tuple: ingest makes up to 10,000 of them per
    request, and a tuple is built in half the time.
    """

    id: str
    customer: str
    type: str
    timestamp: datetime  # UTC, microseconds
    properties: Mapping[str, Any]  # JSON values as decoded: str, int, Decimal, bool, None, list, dict
    properties_json: str  # canonical JSON of `properties`: sorted keys, numbers by value, no spaces
    content_hash: bytes  # CONTENT_HASH_BYTES


@dataclass(frozen=True, slots=True)
class InvalidNumber:
    """A number literal that cannot be kept exactly (NaN, ±Infinity, or an integer of too many
    digits). Decoding keeps it as text so that only the event holding it is rejected, not the whole
    request."""

    literal: str


# ----- JSON decoding ------------------------------------------------------------------------------


def _parse_int(literal: str) -> int | InvalidNumber:
    # Python refuses to parse integers of more than 4,300 digits (and it would be slow anyway):
    # anything past the limit's length is out of range whatever its digits.
    if len(literal) > NUMBER_DIGITS_MAX + 1:
        return InvalidNumber(literal)
    return int(literal)


_DECODER: Final = json.JSONDecoder(parse_float=Decimal, parse_int=_parse_int, parse_constant=InvalidNumber)


def decode_json(text: str) -> Any:
    """Decode JSON text with exact numbers. Raises `ValueError` when it is not JSON (too deeply
    nested included)."""
    try:
        return _DECODER.decode(text)
    except RecursionError as error:
        raise ValueError("JSON nested too deeply") from error


def decode_json_lines(text: str) -> list[Any]:
    """Decode newline-delimited JSON: one value per line; blank lines are skipped. Raises
    `JsonLineError` naming the first line that is not JSON."""
    values = []
    for line_index, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        try:
            values.append(decode_json(line))
        except ValueError as error:
            raise JsonLineError(line_index + 1, len(values), str(error)) from error
    return values


def count_json_lines(text: str) -> int:
    """How many non-blank lines `text` has (to refuse an oversized batch before decoding it)."""
    return sum(1 for line in text.split("\n") if line.strip())


class JsonLineError(ValueError):
    def __init__(self, line_number: int, value_index: int, reason: str) -> None:
        super().__init__(f"line {line_number} is not JSON: {reason}")
        self.line_number = line_number
        self.value_index = value_index


# ----- canonical JSON -----------------------------------------------------------------------------

_encode_string = json.encoder.encode_basestring  # C implementation; leaves non-ASCII as is
# A NUL character as canonical JSON writes it: `\u0000` after an even number of backslashes (an odd
# number would make it the text "\u0000", which is fine).
_NUL_ESCAPE: Final = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class _Invalid(Exception):
    """Raised inside the canonical encoder; `path` is filled in on the way out."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path: list[str | int] = []


def _decimal_text(value: Decimal) -> str:
    text = str(value)
    # The common case, already canonical: plain notation, no trailing zero, within the limits.
    if "E" not in text and not text.endswith("0") and "n" not in text and "N" not in text:
        whole, _, fraction = text.lstrip("-").partition(".")
        if fraction and len(whole) <= NUMBER_DIGITS_MAX and len(fraction) <= NUMBER_DIGITS_MAX:
            return text
    if not value.is_finite():
        raise _Invalid("number_must_be_finite", "numbers must be finite (no NaN or Infinity)")
    if not value:
        return "0"
    if value.adjusted() >= NUMBER_DIGITS_MAX:
        raise _Invalid("number_out_of_range", f"numbers must be less than 10^{NUMBER_DIGITS_MAX} in magnitude")
    digits = len(value.as_tuple().digits)
    # Exact: the precision holds every digit, so normalizing only strips trailing zeros.
    normal = value.normalize(Context(prec=digits))
    exponent = int(normal.as_tuple().exponent)  # an int: the value is finite
    if exponent < -NUMBER_DIGITS_MAX:
        raise _Invalid("number_out_of_range", f"numbers may have at most {NUMBER_DIGITS_MAX} decimal places")
    if exponent >= 0:
        return str(int(normal))
    return format(normal, "f")


def canonical_decimal_text(value: Decimal) -> str:
    """A non-integral JSON number as canonical JSON writes it (plain notation, no trailing zeros).
    Raises `ValueError` for a number outside the limits or not finite."""
    try:
        return _decimal_text(value)
    except _Invalid as invalid:
        raise ValueError(f"{invalid.code}: {invalid.message}") from None


def _canonical(value: object, depth: int) -> str:
    if isinstance(value, str):
        return _encode_string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if -NUMBER_LIMIT < value < NUMBER_LIMIT:
            return str(value)
        raise _Invalid("number_out_of_range", f"numbers must be less than 10^{NUMBER_DIGITS_MAX} in magnitude")
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if value is None:
        return "null"
    if isinstance(value, dict):
        if depth > PROPERTIES_DEPTH_MAX:
            raise _Invalid("properties_too_deep", f"properties may nest at most {PROPERTIES_DEPTH_MAX} levels")
        try:
            keys = sorted(value)
        except TypeError:
            raise _Invalid("property_name_must_be_string", "property names must be strings") from None
        parts = []
        for key in keys:
            try:
                encoded_key = _encode_string(key)
            except TypeError:
                raise _Invalid("property_name_must_be_string", "property names must be strings") from None
            item = value[key]
            kind = type(item)
            # Scalars inline (the common case); everything else through the general path.
            if kind is str:
                parts.append(encoded_key + ":" + _encode_string(item))
                continue
            if kind is int and -NUMBER_LIMIT < item < NUMBER_LIMIT:
                parts.append(encoded_key + ":" + str(item))
                continue
            try:
                parts.append(encoded_key + ":" + _canonical(item, depth + 1))
            except _Invalid as invalid:
                invalid.path.append(key)
                raise
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        if depth > PROPERTIES_DEPTH_MAX:
            raise _Invalid("properties_too_deep", f"properties may nest at most {PROPERTIES_DEPTH_MAX} levels")
        parts = []
        for index, item in enumerate(value):
            try:
                parts.append(_canonical(item, depth + 1))
            except _Invalid as invalid:
                invalid.path.append(index)
                raise
        return "[" + ",".join(parts) + "]"
    if isinstance(value, InvalidNumber):
        if value.literal.lstrip("-").isdigit():
            raise _Invalid("number_out_of_range", f"numbers must be less than 10^{NUMBER_DIGITS_MAX} in magnitude")
        raise _Invalid("number_must_be_finite", "numbers must be finite (no NaN or Infinity)")
    if isinstance(value, float):
        raise _Invalid("number_must_not_be_float", "give numbers as int or Decimal, never float (floats are inexact)")
    raise _Invalid("value_must_be_json", f"a {type(value).__name__} is not a JSON value")


def canonical_json(value: object) -> str:
    """The canonical JSON of a JSON value: object keys sorted, no spaces, numbers by value (integral
    numbers as integers, others without trailing zeros), non-ASCII as is. Raises `ValueError` for
    values outside the limits."""
    try:
        return _canonical(value, 1)
    except _Invalid as invalid:
        raise ValueError(f"{invalid.code}: {invalid.message}") from None


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def content_hash(customer: str, type_: str, timestamp: datetime, properties_json: str) -> bytes:
    """First 16 bytes of SHA-256 over the canonical JSON of the event's content (everything but the
    id), the timestamp as integer microseconds since the Unix epoch:
    `{"customer":…,"properties":…,"timestamp":1735689600000000,"type":…}`."""
    document = (
        '{"customer":'
        + _encode_string(customer)
        + ',"properties":'
        + properties_json
        + ',"timestamp":'
        + str((timestamp - _EPOCH) // _MICROSECOND)
        + ',"type":'
        + _encode_string(type_)
        + "}"
    )
    return hashlib.sha256(document.encode()).digest()[:CONTENT_HASH_BYTES]


# ----- parsing ------------------------------------------------------------------------------------


def _storable_text(text: str) -> bool:
    """PostgreSQL text holds neither NUL nor unpaired surrogates (which UTF-8 cannot encode)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _text_field(raw: Mapping[str, Any], name: str, length_max: int) -> Rejection:
    """Why a text field is not acceptable (called once the fast check failed)."""
    value = raw.get(name)
    if value is None or value == "":
        return Rejection(f"{name}_required", f"every event needs a non-empty {name}", name)
    if type(value) is not str:
        return Rejection(f"{name}_must_be_string", f"{name} must be a string", name)
    if len(value) > length_max:
        return Rejection(f"{name}_too_long", f"{name} may have at most {length_max} characters", name)
    return Rejection(f"{name}_invalid", f"{name} must not contain NUL characters or unpaired surrogates", name)


def parse_timestamp(value: object) -> datetime | Rejection:
    """An ISO 8601 / RFC 3339 timestamp with an offset (or Z), as an aware UTC datetime."""
    if value is None or value == "":
        return Rejection("timestamp_required", "every event needs a timestamp", "timestamp")
    if type(value) is not str or len(value) > TIMESTAMP_LENGTH_MAX:
        return Rejection(
            "timestamp_invalid", "timestamp must be an ISO 8601 string, e.g. 2025-01-31T12:00:00.123456Z", "timestamp"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return Rejection(
            "timestamp_invalid", "timestamp must be an ISO 8601 string, e.g. 2025-01-31T12:00:00.123456Z", "timestamp"
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return Rejection(
            "timestamp_must_have_timezone", "timestamp needs a UTC offset or Z, e.g. 2025-01-31T12:00:00Z", "timestamp"
        )
    if parsed.tzinfo is UTC:  # `Z` and `+00:00` parse to this very object: nothing to convert
        return parsed
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return Rejection("timestamp_invalid", "timestamp is out of range", "timestamp")


def check_window(timestamp: datetime, window: TimestampWindow) -> Rejection | None:
    if timestamp < window.earliest:
        return Rejection(
            "timestamp_too_old",
            f"timestamp is before the ingest horizon ({window.earliest.isoformat()})",
            "timestamp",
        )
    if timestamp > window.latest:
        return Rejection(
            "timestamp_in_future",
            f"timestamp is after the allowed clock skew ({window.latest.isoformat()})",
            "timestamp",
        )
    return None


def parse_properties(value: object) -> tuple[Mapping[str, Any], str] | Rejection:
    """`properties` and their canonical JSON, within the limits. Absent: an empty object."""
    if value is None:
        return {}, "{}"
    if type(value) is not dict:
        return Rejection("properties_must_be_object", "properties must be a JSON object", "properties")
    try:
        text = _canonical(value, 1)
    except _Invalid as invalid:
        return Rejection(invalid.code, invalid.message, _path("properties", reversed(invalid.path)))
    except RecursionError:  # only reachable through non-JSON input built in Python
        return Rejection(
            "properties_too_deep", f"properties may nest at most {PROPERTIES_DEPTH_MAX} levels", "properties"
        )
    if len(text) > PROPERTIES_BYTES_MAX // 4 or not text.isascii():
        # Past a quarter of the limit in characters the size in bytes may matter: measure it.
        try:
            size = len(text.encode())
        except UnicodeEncodeError:
            return Rejection(
                "properties_invalid", "property names and values must not contain unpaired surrogates", "properties"
            )
        if size > PROPERTIES_BYTES_MAX:
            return Rejection(
                "properties_too_large",
                f"properties may take at most {PROPERTIES_BYTES_MAX} bytes as JSON",
                "properties",
            )
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        return Rejection(
            "properties_invalid", "property names and values must not contain NUL characters", "properties"
        )
    return value, text


def _path(root: str, parts: Any) -> str:
    path = root
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse_event(raw: object, window: TimestampWindow) -> Event | Rejection:
    """Validate one raw event (a decoded JSON object) against the limits and the timestamp window."""
    if not isinstance(raw, dict):
        if not isinstance(raw, Mapping):
            return Rejection("event_must_be_object", "each event must be a JSON object")
        raw = dict(raw)
    if len(raw) > len(FIELDS) or not FIELDS.issuperset(raw):
        unknown = sorted(str(name) for name in raw if name not in FIELDS)
        return Rejection("unknown_field", f"unknown field {unknown[0]!r}; events have {sorted(FIELDS)}", unknown[0])
    # The three text fields: the common case (short, plain strings) is checked inline.
    id_ = raw.get("id")
    if type(id_) is not str or not 0 < len(id_) <= ID_LENGTH_MAX or not _storable_text(id_):
        return _text_field(raw, "id", ID_LENGTH_MAX)
    customer = raw.get("customer")
    if type(customer) is not str or not 0 < len(customer) <= CUSTOMER_LENGTH_MAX or not _storable_text(customer):
        return _text_field(raw, "customer", CUSTOMER_LENGTH_MAX)
    type_ = raw.get("type")
    if type(type_) is not str or not 0 < len(type_) <= TYPE_LENGTH_MAX or not _storable_text(type_):
        return _text_field(raw, "type", TYPE_LENGTH_MAX)
    timestamp = parse_timestamp(raw.get("timestamp"))
    if isinstance(timestamp, Rejection):
        return timestamp
    if not window.earliest <= timestamp <= window.latest:
        outside = check_window(timestamp, window)
        if outside is not None:
            return outside
    properties = parse_properties(raw.get("properties"))
    if isinstance(properties, Rejection):
        return properties
    values, properties_json = properties
    # Positional: the field order of `Event` (id, customer, type, timestamp, properties, properties_json,
    # content_hash); keywords cost a measurable share of the time per event.
    return Event(
        id_,
        customer,
        type_,
        timestamp,
        values,
        properties_json,
        content_hash(customer, type_, timestamp, properties_json),
    )


def raw_event_id(raw: object) -> str | None:
    """The id of a raw event, if it has a usable one (to name a rejected event in answers)."""
    if isinstance(raw, Mapping):
        value = raw.get("id")
        if type(value) is str and 0 < len(value) <= ID_LENGTH_MAX:
            return value
    return None
