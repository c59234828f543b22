"""Cursor pagination, independent of any store: what a caller asks for and what a page holds.

Lists are ordered by id. Ids are UUIDv7, so id order is creation order and a cursor is simply the id
of the last (or first) item seen: stable under concurrent inserts, no offsets, one index range scan.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from tally.core.rejections import require

LIMIT_DEFAULT = 20
LIMIT_MAX = 100

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class PageRequest:
    """At most `limit` items after `starting_after`, or before `ending_before` (never both)."""

    limit: int = LIMIT_DEFAULT
    starting_after: uuid.UUID | None = None
    ending_before: uuid.UUID | None = None

    def __post_init__(self) -> None:
        # The API edge turns bad input into rejections; reaching here with it is a programming error.
        require(1 <= self.limit <= LIMIT_MAX, f"page limit must be 1 to {LIMIT_MAX}, got {self.limit}")
        require(
            self.starting_after is None or self.ending_before is None,
            "a page request has starting_after or ending_before, not both",
        )

    @property
    def backwards(self) -> bool:
        return self.ending_before is not None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Items in list order. `has_more`: more items exist in the direction the caller is paging."""

    items: Sequence[T]
    has_more: bool
    backwards: bool = False

    def map(self, function: Callable[[T], U]) -> Page[U]:
        return Page(items=[function(item) for item in self.items], has_more=self.has_more, backwards=self.backwards)
