"""Test clocks on real PostgreSQL: advance forward only, hooks see the new time, crashes resume, races."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import Engine

from tally.adapters.clock import FixedClock, SystemClock
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.advance_test_clock import ADVANCE_LEASE, advance_test_clock, resume_test_clock_advance
from tally.app.create_customer import CustomerInput, create_customer
from tally.app.create_test_clock import TestClockInput, create_test_clock
from tally.app.customer_clock import clock_for_customer
from tally.app.delete_test_clock import delete_test_clock
from tally.app.test_clock_hooks import (
    ClockAdvance,
    advance_hooks,
    register_advance_hook,
    unregister_advance_hook,
)
from tally.app.test_clock_queries import get_test_clock, list_test_clocks
from tally.bootstrap import Tally
from tally.core.customers import TEST_CLOCK_ADVANCE_MAX
from tally.core.rejections import Rejected

T0 = datetime(2030, 1, 31, tzinfo=UTC)


def _code(error: pytest.ExceptionInfo[Rejected]) -> str:
    return error.value.rejection.code


@pytest.fixture
def hook() -> Iterator[list[tuple[ClockAdvance, datetime]]]:
    """A registered hook recording each advance it sees, with the customer clock's time at that moment."""
    seen: list[tuple[ClockAdvance, datetime]] = []

    def record(engine: Engine, advance: ClockAdvance) -> None:
        times = [clock_for_customer(engine, advance.tenant_id, customer).now() for customer in advance.customer_ids]
        seen.append((advance, min(times) if times else advance.clock.now()))

    register_advance_hook("tests.record", record)
    yield seen
    unregister_advance_hook("tests.record")


def test_create_get_list(tally: Tally, tenant_id: uuid.UUID) -> None:
    created = create_test_clock(tally.engine, SystemClock(), tenant_id, TestClockInput(frozen_time=T0, name="Year one"))
    assert (created.name, created.frozen_time, created.status) == ("Year one", T0, "ready")
    assert get_test_clock(tally.engine, tenant_id, created.id) == created
    assert [row.id for row in list_test_clocks(tally.engine, tenant_id).items] == [created.id]
    with pytest.raises(Rejected) as error:
        get_test_clock(tally.engine, uuid.UUID(int=tenant_id.int ^ 1), created.id)
    assert _code(error) == "test_clock_not_found"
    with pytest.raises(Rejected) as error:
        create_test_clock(tally.engine, SystemClock(), tenant_id, TestClockInput(frozen_time=datetime(2030, 1, 1)))
    assert _code(error) == "datetime_must_have_timezone"
    with pytest.raises(Rejected) as error:
        create_test_clock(
            tally.engine, SystemClock(), tenant_id, TestClockInput(frozen_time=datetime(2300, 1, 1, tzinfo=UTC))
        )
    assert _code(error) == "test_clock_frozen_time_out_of_range"


def test_advance_moves_forward_only_and_hooks_see_the_new_time(
    tally: Tally, tenant_id: uuid.UUID, hook: list[tuple[ClockAdvance, datetime]]
) -> None:
    test_clock = create_test_clock(tally.engine, SystemClock(), tenant_id, TestClockInput(frozen_time=T0))
    customers = [
        create_customer(
            tally.engine, SystemClock(), tenant_id, CustomerInput(external_id=f"c{n}", test_clock_id=test_clock.id)
        ).id
        for n in range(2)
    ]
    target = datetime(2030, 2, 28, tzinfo=UTC)
    advanced = advance_test_clock(tally.engine, SystemClock(), tenant_id, test_clock.id, target)
    assert (advanced.moved, advanced.test_clock.frozen_time, advanced.test_clock.status) == (True, target, "ready")
    assert "tests.record" in advanced.hooks_run
    [(advance, customer_time)] = hook
    assert (advance.advanced_from, advance.advanced_to, advance.clock.now()) == (T0, target, target)
    assert customer_time == target  # clock_for_customer already reads the new time inside the hook
    assert sorted(advance.customer_ids) == sorted(customers)
    assert all(clock_for_customer(tally.engine, tenant_id, customer).now() == target for customer in customers)

    same = advance_test_clock(tally.engine, SystemClock(), tenant_id, test_clock.id, target)
    assert (same.moved, len(hook)) == (False, 1)  # a retry of a finished advance changes nothing
    for bad, code in (
        (target - timedelta(microseconds=1), "test_clock_cannot_go_backwards"),
        (target + TEST_CLOCK_ADVANCE_MAX + timedelta(seconds=1), "test_clock_advance_exceeds_limit"),
    ):
        with pytest.raises(Rejected) as error:
            advance_test_clock(tally.engine, SystemClock(), tenant_id, test_clock.id, bad)
        assert _code(error) == code
    assert advance_test_clock(
        tally.engine, SystemClock(), tenant_id, test_clock.id, target + TEST_CLOCK_ADVANCE_MAX
    ).moved
    with pytest.raises(Rejected) as error:
        advance_test_clock(tally.engine, SystemClock(), tenant_id, uuid.uuid4(), target)
    assert _code(error) == "test_clock_not_found"


def test_a_failed_hook_leaves_the_clock_advancing_and_the_next_advance_resumes_it(
    tally: Tally, tenant_id: uuid.UUID, hook: list[tuple[ClockAdvance, datetime]]
) -> None:
    test_clock = create_test_clock(tally.engine, SystemClock(), tenant_id, TestClockInput(frozen_time=T0))
    failures = [RuntimeError("billing run crashed")]

    def flaky(engine: Engine, advance: ClockAdvance) -> None:
        if failures:
            raise failures.pop()

    register_advance_hook("tests.flaky", flaky)
    try:
        t1 = T0 + timedelta(days=1)
        with pytest.raises(RuntimeError):
            advance_test_clock(tally.engine, SystemClock(), tenant_id, test_clock.id, t1)
        stuck = get_test_clock(tally.engine, tenant_id, test_clock.id)
        assert (stuck.status, stuck.frozen_time, stuck.advancing_from) == ("advancing", t1, T0)
        with pytest.raises(Rejected) as error:
            delete_test_clock(tally.engine, tenant_id, test_clock.id)
        assert _code(error) == "test_clock_advance_in_progress"
        # The next advance completes the unfinished one first (hooks again for [T0, t1)), then its own.
        t2 = T0 + timedelta(days=2)
        done = advance_test_clock(tally.engine, SystemClock(), tenant_id, test_clock.id, t2)
        assert (done.resumed, done.test_clock.frozen_time, done.test_clock.status) == (t1, t2, "ready")
        assert [(seen.advanced_from, seen.advanced_to) for seen, _ in hook] == [(T0, t1), (T0, t1), (t1, t2)]
    finally:
        unregister_advance_hook("tests.flaky")


def test_a_crashed_advance_is_taken_over_once_its_lease_runs_out(tally: Tally, tenant_id: uuid.UUID) -> None:
    test_clock = create_test_clock(tally.engine, SystemClock(), tenant_id, TestClockInput(frozen_time=T0))
    t1 = T0 + timedelta(hours=1)
    # A process died after starting the advance: the row says advancing, with a fresh lease.
    with psycopg_transaction(tally.engine) as connection:
        connection.execute(
            """UPDATE test_clocks SET status = 'advancing', advancing_from = frozen_time, frozen_time = %s,
                      advance_started_at = now() WHERE id = %s""",
            (t1, test_clock.id),
        )
    with pytest.raises(Rejected) as error:
        advance_test_clock(tally.engine, SystemClock(), tenant_id, test_clock.id, t1)
    assert _code(error) == "test_clock_advance_in_progress"
    later = FixedClock(datetime.now(UTC) + ADVANCE_LEASE + timedelta(seconds=1))
    resumed = resume_test_clock_advance(tally.engine, later, tenant_id, test_clock.id)
    assert (resumed.status, resumed.frozen_time) == ("ready", t1)


def test_two_advances_racing_never_move_time_backwards(tally: Tally, tenant_id: uuid.UUID) -> None:
    test_clock = create_test_clock(tally.engine, SystemClock(), tenant_id, TestClockInput(frozen_time=T0))
    inside = threading.Barrier(2, timeout=10)
    seen: list[datetime] = []

    def slow(engine: Engine, advance: ClockAdvance) -> None:
        seen.append(advance.advanced_to)
        with contextlib.suppress(threading.BrokenBarrierError):
            inside.wait()  # holds the first advance open until the second has tried

    targets = [T0 + timedelta(days=3), T0 + timedelta(days=5)]
    outcomes: dict[datetime, str] = {}
    start = threading.Barrier(2, timeout=10)

    def run(target: datetime) -> None:
        start.wait()
        try:
            advance_test_clock(tally.engine, SystemClock(), tenant_id, test_clock.id, target)
            outcomes[target] = "advanced"
        except Rejected as rejected:
            outcomes[target] = rejected.rejection.code
        finally:
            if outcomes.get(target) != "advanced":
                inside.abort()

    register_advance_hook("tests.slow", slow)
    try:
        threads = [threading.Thread(target=run, args=(target,)) for target in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        unregister_advance_hook("tests.slow")
    assert sorted(outcomes.values()) in (
        ["advanced", "test_clock_advance_in_progress"],  # one wins, the other is told to wait
        ["advanced", "advanced"],  # or they ran one after the other
        ["advanced", "test_clock_cannot_go_backwards"],
    ), outcomes
    final = get_test_clock(tally.engine, tenant_id, test_clock.id)
    assert final.status == "ready"
    winners = [target for target, outcome in outcomes.items() if outcome == "advanced"]
    assert final.frozen_time == max(winners)
    assert seen == sorted(seen)  # hooks saw time only move forward


def test_the_database_refuses_time_going_backwards(tally: Tally, tenant_id: uuid.UUID) -> None:
    test_clock = create_test_clock(tally.engine, SystemClock(), tenant_id, TestClockInput(frozen_time=T0))
    with pytest.raises(psycopg.errors.IntegrityError), psycopg_transaction(tally.engine) as connection:
        connection.execute(
            "UPDATE test_clocks SET frozen_time = frozen_time - interval '1 second' WHERE id = %s", (test_clock.id,)
        )


def test_delete_only_without_customers(tally: Tally, tenant_id: uuid.UUID) -> None:
    empty = create_test_clock(tally.engine, SystemClock(), tenant_id, TestClockInput(frozen_time=T0))
    used = create_test_clock(tally.engine, SystemClock(), tenant_id, TestClockInput(frozen_time=T0))
    create_customer(tally.engine, SystemClock(), tenant_id, CustomerInput(external_id="x", test_clock_id=used.id))
    assert delete_test_clock(tally.engine, tenant_id, empty.id).id == empty.id
    with pytest.raises(Rejected) as error:
        get_test_clock(tally.engine, tenant_id, empty.id)
    assert _code(error) == "test_clock_not_found"
    with pytest.raises(Rejected) as error:
        delete_test_clock(tally.engine, tenant_id, used.id)
    assert _code(error) == "test_clock_has_customers"


def test_hook_registry() -> None:
    def first(engine: Engine, advance: ClockAdvance) -> None: ...

    def second(engine: Engine, advance: ClockAdvance) -> None: ...

    register_advance_hook("tests.first", first)
    try:
        register_advance_hook("tests.first", first)  # the same hook again: no change
        with pytest.raises(ValueError, match="already registered"):
            register_advance_hook("tests.first", second)
        with pytest.raises(ValueError, match="must be"):
            register_advance_hook("Bad Name", second)
        assert ("tests.first", first) in advance_hooks()
    finally:
        unregister_advance_hook("tests.first")
    assert all(name != "tests.first" for name, _ in advance_hooks())
