"""Identifiers: time-ordered UUIDs (version 7) in the database, prefixed strings on the wire.

`acct_01jd3k...` tells a reader what an id names; the UUID underneath sorts by creation time, which
keeps B-tree inserts local and makes id order a usable pagination order.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

# The prefix of each kind of id on the wire (API, CLI, logs). Stable: clients store these.
TENANT = "ten"
API_KEY = "key"
ACCOUNT = "acct"
TRANSACTION = "txn"
ENTRY = "ent"
METER = "mtr"
REQUEST = "req"
INTEGRITY_RUN = "irun"
EVENT_CORRECTION = "evc"
CUSTOMER = "cus"
TEST_CLOCK = "clk"
PRODUCT = "prod"
FEATURE = "feat"
PRICE = "price"
PLAN = "plan"
PLAN_VERSION = "plv"
PRICE_OVERRIDE = "ovr"
SUBSCRIPTION = "sub"
INVOICE = "in"
INVOICE_LINE = "il"
INVOICE_PAYMENT = "pay"
CREDIT_NOTE = "cn"
COUPON = "coupon"
COUPON_REDEMPTION = "cpr"
CREDIT_GRANT = "cg"
COMMITMENT = "cmt"
PRICE_CAP = "pcap"
TAX_RATE = "txr"
LATE_USAGE = "late"
ONE_OFF_CHARGE = "chg"

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {character: value for value, character in enumerate(_CROCKFORD)}
_ENCODED_LENGTH = 26

_lock = threading.Lock()
_last_ms = 0
_sequence = 0


def new_id() -> uuid.UUID:
    """A UUIDv7: 48-bit Unix milliseconds, then a 12-bit per-process sequence, then 62 random bits."""
    global _last_ms, _sequence  # noqa: PLW0603 - one monotonic counter per process, guarded by the lock
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _sequence += 1
            if _sequence > 0xFFF:  # more than 4096 ids in one millisecond: borrow the next millisecond
                _last_ms += 1
                _sequence = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _sequence = 0
        sequence = _sequence
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | sequence << 64 | 0b10 << 62 | random_bits
    return uuid.UUID(int=value)


def new_id_ints(count: int) -> list[int]:
    """`count` ids as integers, in order, exactly as `count` calls of `new_id` made in the same
    millisecond would make them: the clock is read once. For writers of many rows at a time."""
    global _last_ms, _sequence  # noqa: PLW0603 - see new_id
    stamps = []
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        for _ in range(count):
            if now_ms <= _last_ms:
                _sequence += 1
                if _sequence > 0xFFF:  # more than 4096 ids in one millisecond: borrow the next millisecond
                    _last_ms += 1
                    _sequence = 0
                now_ms = _last_ms
            else:
                _last_ms = now_ms
                _sequence = 0
            stamps.append((now_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _sequence << 64 | 0b10 << 62)
    randomness = os.urandom(8 * count)
    mask = (1 << 62) - 1
    return [
        stamp | int.from_bytes(randomness[8 * index : 8 * index + 8], "big") & mask
        for index, stamp in enumerate(stamps)
    ]


def new_ids(count: int) -> list[uuid.UUID]:
    """`count` ids, in order, exactly as `count` calls of `new_id` would make them, for less work."""
    return [uuid.UUID(int=value) for value in new_id_ints(count)]


def uuid_text(value: int) -> str:
    """The canonical text of the UUID with this integer value (as `str(uuid.UUID(int=value))`)."""
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def format_id(prefix: str, value: uuid.UUID) -> str:
    number = value.int
    characters = []
    for _ in range(_ENCODED_LENGTH):
        characters.append(_CROCKFORD[number & 31])
        number >>= 5
    return f"{prefix}_{''.join(reversed(characters))}"


def parse_id(prefix: str, text: str) -> uuid.UUID | None:
    """The UUID in `text` if it is a well-formed id with this prefix, else None (callers answer 404)."""
    head, separator, body = text.partition("_")
    if separator != "_" or head != prefix or len(body) != _ENCODED_LENGTH:
        return None
    number = 0
    for character in body:
        value = _DECODE.get(character)
        if value is None:
            return None
        number = number << 5 | value
    if number >> 128:
        return None
    return uuid.UUID(int=number)
