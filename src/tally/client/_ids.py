"""Event ids made by the client: UUID version 7 text, time-ordered and unique without coordination.

The id is what makes a resend harmless, so it is fixed when an event is tracked and travels with
the event through every retry.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_sequence = 0


def new_event_id() -> str:
    """`0193f5c2-…`: 48-bit Unix milliseconds, a 12-bit per-process sequence, 62 random bits."""
    global _last_ms, _sequence  # noqa: PLW0603 - one monotonic counter per process, guarded by the lock
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _sequence += 1
            if _sequence > 0xFFF:  # more than 4096 ids in one millisecond: borrow the next one
                _last_ms += 1
                _sequence = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _sequence = 0
        sequence = _sequence
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | sequence << 64 | 0b10 << 62 | random_bits
    return str(uuid.UUID(int=value))
