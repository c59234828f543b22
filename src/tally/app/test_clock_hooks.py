"""Advance hooks: the work a test clock advance makes happen, as if the time had passed.

Whatever would have run between the clock's old time and its new one (billing runs that fall due,
subscription transitions, trial ends) registers a hook here; `advance_test_clock` calls every hook,
in registration order, after moving the clock. A hook gets the engine and a `ClockAdvance`: the
window `[advanced_from, advanced_to)`, a clock that reads `advanced_to`, and the customers on the
clock. There are no hooks yet; the billing run and subscription transitions register theirs.

Hooks must be safe to run again for the same advance: an advance that crashed (or whose hook
raised) is resumed by running every hook again for the same window. That is the same property a
billing run already has (running it twice changes nothing).

    register_advance_hook("billing.run_due", run_due_billing)
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from tally.adapters.clock import Clock


@dataclass(frozen=True, slots=True)
class ClockAdvance:
    """One advance of one test clock, as a hook sees it."""

    tenant_id: uuid.UUID
    test_clock_id: uuid.UUID
    advanced_from: datetime
    advanced_to: datetime
    clock: Clock  # reads `advanced_to`
    customer_ids: tuple[uuid.UUID, ...]


AdvanceHook = Callable[[Engine, ClockAdvance], None]

_HOOK_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,99}$")
_lock = threading.Lock()
_hooks: dict[str, AdvanceHook] = {}


def register_advance_hook(name: str, hook: AdvanceHook) -> None:
    """Declare a hook under a stable name. Registering the same hook again changes nothing; another
    hook under a name already taken is a programming error."""
    if not _HOOK_NAME.match(name):
        raise ValueError(f"advance hook name {name!r} must be [a-z0-9_.], starting with a letter")
    with _lock:
        existing = _hooks.get(name)
        if existing is not None and existing is not hook:
            raise ValueError(f"advance hook {name} is already registered")
        _hooks[name] = hook


def unregister_advance_hook(name: str) -> None:
    with _lock:
        _hooks.pop(name, None)


def advance_hooks() -> tuple[tuple[str, AdvanceHook], ...]:
    """The registered hooks, in registration order."""
    with _lock:
        return tuple(_hooks.items())
