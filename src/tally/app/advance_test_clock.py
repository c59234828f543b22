"""Advance a test clock to a later time, then run the advance hooks as if that time had passed.

An advance is three steps, each safe to repeat:

1. *start* (one transaction, the clock's row locked): check the move (forward only, at most
   `TEST_CLOCK_ADVANCE_MAX`), then set `frozen_time` to the new time, `status` to `advancing`, and
   remember where it moved from and when the advance started (its lease);
2. *hooks* (`tally.app.test_clock_hooks`), outside any transaction of ours, each seeing a clock that
   reads the new time and the customers on the clock;
3. *finish* (one transaction): `status` back to `ready`.

Two advances of one clock never run at once: while one holds its lease (`ADVANCE_LEASE`), another is
rejected `test_clock_advance_in_progress` (409). An advance that died between 1 and 3 (a crash, a
hook that raised) leaves the clock `advancing`; the next advance of that clock — once the lease has
run out, or at once if a hook raised — runs the hooks again for the same window, finishes it, and
then carries on with its own move. Retrying the same advance after a crash is therefore enough to
complete it, and time never goes backwards (the database refuses it too).

Advancing to the clock's current time is not a move: nothing runs and the clock is answered as is,
so a plain retry of a completed advance is harmless.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock, FixedClock
from tally.adapters.postgres import customers as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app.create_test_clock import check_frozen_time
from tally.app.test_clock_hooks import ClockAdvance, advance_hooks
from tally.core.customers import check_advance
from tally.core.rejections import InvariantViolation, Rejected

logger = logging.getLogger(__name__)

TestClock = store.TestClockRow

# How long an advance may run its hooks before another caller may take it over. Hooks are safe to run
# twice, so a takeover of a slow (not dead) advance costs work, never correctness.
ADVANCE_LEASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class AdvancedTestClock:
    test_clock: TestClock
    # Whether this call moved the clock (False: it was already at the time asked for).
    moved: bool
    # The time of an unfinished earlier advance this call completed first, if any.
    resumed: datetime | None
    hooks_run: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Step:
    row: TestClock
    customer_ids: tuple[uuid.UUID, ...]
    # "advance": hooks then finish, the move asked for; "resume": the same, for an unfinished one;
    # "done": nothing to do.
    kind: str


def advance_test_clock(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, test_clock_id: uuid.UUID, frozen_time: datetime
) -> AdvancedTestClock:
    check_frozen_time(frozen_time)
    target = frozen_time.astimezone(UTC)
    resumed: datetime | None = None
    hooks_run: tuple[str, ...] = ()
    # At most one unfinished advance is resumed before the one asked for: the loop runs twice at most.
    for _ in range(2):
        step = run_in_transaction(
            engine, lambda connection: _start(connection, clock, tenant_id, test_clock_id, target)
        )
        if step.kind == "done":
            return AdvancedTestClock(step.row, moved=False, resumed=resumed, hooks_run=hooks_run)
        hooks_run = _run_hooks(engine, tenant_id, step)
        finished = _finish(engine, clock, tenant_id, step.row)
        if step.kind == "advance":
            return AdvancedTestClock(finished, moved=True, resumed=resumed, hooks_run=hooks_run)
        resumed = step.row.frozen_time
    raise RuntimeError("unreachable: a resumed advance is followed by the one asked for")  # pragma: no cover


def _start(
    connection: psycopg.Connection[Any], clock: Clock, tenant_id: uuid.UUID, test_clock_id: uuid.UUID, target: datetime
) -> _Step:
    row = store.get_test_clock(connection, tenant_id, test_clock_id, for_update=True)
    if row is None:
        raise Rejected.because("test_clock_not_found", "no such test clock", "id")
    now = clock.now()
    if row.status == store.ADVANCING:
        if row.advance_started_at is None:  # pragma: no cover - a CHECK constraint keeps them together
            raise InvariantViolation(f"test clock {row.id} is advancing without a lease")
        if row.advance_started_at + ADVANCE_LEASE > now:
            raise Rejected.because(
                "test_clock_advance_in_progress",
                f"the clock is advancing to {row.frozen_time.isoformat()}; try again when it is ready",
                "id",
            )
        logger.warning("resuming the unfinished advance of test clock %s to %s", row.id, row.frozen_time)
        store.renew_advance(connection, row.id, now)
        return _Step(row, tuple(store.customer_ids_on_clock(connection, row.id)), "resume")
    if not check_advance(row.frozen_time, target):
        return _Step(row, (), "done")
    row = store.start_advance(connection, row.id, to=target, started_at=now)
    return _Step(row, tuple(store.customer_ids_on_clock(connection, row.id)), "advance")


def _run_hooks(engine: Engine, tenant_id: uuid.UUID, step: _Step) -> tuple[str, ...]:
    row = step.row
    if row.advancing_from is None:  # pragma: no cover - a CHECK constraint keeps them together
        raise InvariantViolation(f"test clock {row.id} is advancing from nowhere")
    advance = ClockAdvance(
        tenant_id=tenant_id,
        test_clock_id=row.id,
        advanced_from=row.advancing_from,
        advanced_to=row.frozen_time,
        clock=FixedClock(row.frozen_time),
        customer_ids=step.customer_ids,
    )
    names = []
    try:
        for name, hook in advance_hooks():
            hook(engine, advance)
            names.append(name)
    except BaseException:
        # The clock stays advancing; releasing the lease lets the next advance resume it at once.
        try:
            run_in_transaction(engine, lambda connection: store.release_advance(connection, row.id, row.frozen_time))
        except Exception:
            logger.exception("could not release the lease of test clock %s (it resumes when it expires)", row.id)
        raise
    return tuple(names)


def _finish(engine: Engine, clock: Clock, tenant_id: uuid.UUID, row: TestClock) -> TestClock:
    def work(connection: psycopg.Connection[Any]) -> TestClock:
        finished = store.finish_advance(connection, row.id, row.frozen_time, clock.now())
        if finished is not None:
            return finished
        # Someone took over after the lease ran out and finished this advance already.
        current = store.get_test_clock(connection, tenant_id, row.id)
        if current is None:
            raise Rejected.because("test_clock_not_found", "no such test clock", "id")
        return current

    return run_in_transaction(engine, work)


def resume_test_clock_advance(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, test_clock_id: uuid.UUID
) -> TestClock:
    """Complete an unfinished advance of this clock (if its lease has run out): the hooks again, then
    ready. Same as advancing to the time the clock already reads."""
    with_current = run_in_transaction(
        engine, lambda connection: store.get_test_clock(connection, tenant_id, test_clock_id)
    )
    if with_current is None:
        raise Rejected.because("test_clock_not_found", "no such test clock", "id")
    return advance_test_clock(engine, clock, tenant_id, test_clock_id, with_current.frozen_time).test_clock
