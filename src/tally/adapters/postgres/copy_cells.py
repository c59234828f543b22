"""Text of the COPY cells that repeat from row to row, formatted once per COPY.

psycopg formats every cell of a text COPY row on its own: an aware datetime costs about a
microsecond each time (measured, with the C dumpers), and a UUID a third of that. The billing
run's rows repeat a few such values many times: the tenant, each invoice and customer across its
lines, the moment of the run, the few period boundaries of a chunk. `CopyCells` answers each
value's text from a memo, so it is formatted once. PostgreSQL reads the same text either way
(an ISO 8601 moment with its offset, a UUID's canonical form), so the rows stored are the same.
"""

from __future__ import annotations

import uuid
from datetime import datetime


class CopyCells:
    """One COPY's memo of formatted cells (keep one per COPY: it grows with the distinct values)."""

    __slots__ = ("_ids", "_moments")

    def __init__(self) -> None:
        self._moments: dict[datetime, str] = {}
        self._ids: dict[uuid.UUID, str] = {}

    def moment(self, value: datetime) -> str:
        """An aware moment as ISO 8601 text with its UTC offset."""
        text = self._moments.get(value)
        if text is None:
            if value.tzinfo is None:
                raise ValueError("a COPY moment must be aware (a naive one would be read in the session's zone)")
            text = self._moments[value] = value.isoformat()
        return text

    def id(self, value: uuid.UUID) -> str:
        """A UUID that repeats across rows, as text."""
        text = self._ids.get(value)
        if text is None:
            text = self._ids[value] = str(value)
        return text
