"""Withdrawing a scheduled fact: refusals with stable codes, and a timeline that reads as if the
withdrawn fact had never been recorded (while both facts stay on record)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.core.rejections import Rejected
from tally.core.subscriptions import (
    Canceled,
    CancelScheduled,
    ItemsChanged,
    Paused,
    QuantityChanged,
    Resumed,
    Started,
    SubscriptionStatus,
    Timeline,
    TimelineEntry,
    Withdrawn,
    billing_events,
    scheduled_changes,
    state_at,
)
from tests.core.subscriptions.builders import fee, utc

START = utc(2024, 1, 10)
BASIC = fee("basic", "10")
PRO = fee("pro", "30")
LITE = fee("lite", "6")
SEATS = fee("seats", "5", quantity=3)
STARTED = Started(effective_at=START, items=(BASIC, SEATS))
# Recorded on Jan 20: a downgrade to lite from Feb 10 (the period end), more seats from Mar 1.
DOWNGRADE = ItemsChanged(effective_at=utc(2024, 2, 10), items=(LITE, SEATS))
MORE_SEATS = QuantityChanged(effective_at=utc(2024, 3, 1), price_id="seats", quantity=8)


def timeline(*entries: TimelineEntry) -> Timeline:
    return Timeline("sub_w", (STARTED, *entries))


def code_of(call: Callable[[], object]) -> tuple[str, str | None]:
    with pytest.raises(Rejected) as error:
        call()
    return error.value.rejection.code, error.value.rejection.field


@pytest.mark.parametrize(
    ("call", "code", "field"),
    [
        (lambda: Withdrawn(effective_at=START, withdraws=-1), "change_not_found", "withdraws"),
        (lambda: Withdrawn(effective_at=START, withdraws=True), "change_not_found", "withdraws"),
        (lambda: Withdrawn(effective_at=START, withdraws=1_000), "change_not_found", "withdraws"),
        # A withdrawal names a fact recorded before it: not itself, not a later one.
        (
            lambda: timeline(Withdrawn(effective_at=utc(2024, 1, 20), withdraws=1)),
            "change_not_found",
            "entries[1].withdraws",
        ),
        (
            lambda: timeline(Withdrawn(effective_at=utc(2024, 1, 20), withdraws=2), DOWNGRADE),
            "change_not_found",
            "entries[1].withdraws",
        ),
        (
            lambda: timeline(Withdrawn(effective_at=utc(2024, 1, 1), withdraws=0)),
            "change_not_withdrawable",
            "entries[1].withdraws",
        ),
        (
            lambda: timeline(
                DOWNGRADE,
                Withdrawn(effective_at=utc(2024, 1, 20), withdraws=1),
                Withdrawn(effective_at=utc(2024, 1, 21), withdraws=2),
            ),
            "change_not_withdrawable",
            "entries[3].withdraws",
        ),
        (
            lambda: timeline(
                DOWNGRADE,
                Withdrawn(effective_at=utc(2024, 1, 20), withdraws=1),
                Withdrawn(effective_at=utc(2024, 1, 21), withdraws=1),
            ),
            "change_already_withdrawn",
            "entries[3].withdraws",
        ),
        # At the very moment a fact takes effect it is in effect: too late to withdraw.
        (
            lambda: timeline(DOWNGRADE, Withdrawn(effective_at=DOWNGRADE.effective_at, withdraws=1)),
            "change_already_in_effect",
            "entries[2].withdraws",
        ),
        (
            lambda: timeline(DOWNGRADE, Withdrawn(effective_at=utc(2024, 2, 11), withdraws=1)),
            "change_already_in_effect",
            "entries[2].withdraws",
        ),
        # The precedence: "already withdrawn" is said before "already in effect".
        (
            lambda: timeline(
                DOWNGRADE,
                Withdrawn(effective_at=utc(2024, 1, 20), withdraws=1),
                Withdrawn(effective_at=utc(2024, 3, 1), withdraws=1),
            ),
            "change_already_withdrawn",
            "entries[3].withdraws",
        ),
        # Withdrawing a fact a later one depends on leaves that one without ground: withdraw both,
        # the later one first.
        (
            lambda: timeline(
                ItemsChanged(effective_at=utc(2024, 2, 10), items=(BASIC, PRO)),
                QuantityChanged(effective_at=utc(2024, 3, 1), price_id="pro", quantity=2),
                Withdrawn(effective_at=utc(2024, 1, 20), withdraws=1),
            ),
            "price_not_in_subscription",
            "entries[2].price_id",
        ),
        (
            lambda: timeline(
                Paused(effective_at=utc(2024, 2, 1)),
                Resumed(effective_at=utc(2024, 3, 1)),
                Withdrawn(effective_at=utc(2024, 1, 20), withdraws=1),
            ),
            "subscription_not_paused",
            "entries[2]",
        ),
    ],
)
def test_refusals(call: Callable[[], object], code: str, field: str) -> None:
    assert code_of(call) == (code, field)


@pytest.mark.parametrize(
    "scheduled",
    [
        pytest.param((DOWNGRADE,), id="plan change at period end"),
        pytest.param((MORE_SEATS,), id="quantity change"),
        pytest.param((DOWNGRADE, MORE_SEATS), id="two phases"),
        pytest.param((Paused(effective_at=utc(2024, 2, 1)), Resumed(effective_at=utc(2024, 3, 5))), id="pause"),
        pytest.param((Canceled(effective_at=utc(2024, 4, 2)),), id="a future end"),
        pytest.param(
            (CancelScheduled(effective_at=utc(2024, 2, 1), ends_at=utc(2024, 4, 10)),), id="a cancel requested later"
        ),
    ],
)
def test_a_withdrawn_fact_counts_as_never_recorded(scheduled: tuple[TimelineEntry, ...]) -> None:
    withdrawals = tuple(
        # The later fact first, so a resume never outlives its pause.
        Withdrawn(effective_at=utc(2024, 1, 20), withdraws=position)
        for position in range(len(scheduled), 0, -1)
    )
    withdrawn = timeline(*scheduled, *withdrawals)
    plain = timeline()
    through = utc(2024, 6, 1)
    assert billing_events(withdrawn, through=through).events == billing_events(plain, through=through).events
    assert withdrawn.history.steps == plain.history.steps
    assert withdrawn.history.withdrawn == frozenset(range(1, len(scheduled) + 1))
    # Both facts stay on record.
    assert withdrawn.entries[1 : len(scheduled) + 1] == scheduled
    with_facts = timeline(*scheduled)
    assert billing_events(with_facts, through=through).events != billing_events(plain, through=through).events


def test_withdrawing_one_of_two_phases_keeps_the_other() -> None:
    both = timeline(DOWNGRADE, MORE_SEATS, Withdrawn(effective_at=utc(2024, 1, 20), withdraws=1))
    assert [item.price_id for item in state_at(both, utc(2024, 2, 20)).items] == ["basic", "seats"]
    assert [item.quantity for item in state_at(both, utc(2024, 3, 2)).items] == [1, 8]


def test_scheduled_changes_are_the_pending_facts_in_time_order() -> None:
    recorded = timeline(
        MORE_SEATS,  # 1: Mar 1
        DOWNGRADE,  # 2: Feb 10
        QuantityChanged(effective_at=utc(2024, 1, 15), price_id="seats", quantity=4),  # 3: in the past
        ItemsChanged(effective_at=utc(2024, 4, 10), items=(PRO,)),  # 4: withdrawn below
        Withdrawn(effective_at=utc(2024, 1, 20), withdraws=4),  # 5
    )
    assert scheduled_changes(recorded, utc(2024, 1, 20)) == (2, 1)
    assert scheduled_changes(recorded, utc(2024, 2, 10)) == (1,)
    assert scheduled_changes(recorded, utc(2024, 3, 1)) == ()
    # A subscription that starts later: its start is not a change, its phases are.
    phase = QuantityChanged(effective_at=utc(2025, 3, 1), price_id="seats", quantity=8)
    future = Timeline("sub_f", (Started(effective_at=utc(2025, 1, 1), items=(SEATS,)), phase))
    assert scheduled_changes(future, utc(2024, 1, 1)) == (1,)
    assert code_of(lambda: scheduled_changes(recorded, datetime(2024, 1, 1))) == (
        "datetime_must_have_timezone",
        "at",
    )


def test_after_withdrawing_a_phase_a_cancel_before_it_is_accepted() -> None:
    cancel = Canceled(effective_at=utc(2024, 1, 25))
    assert code_of(lambda: timeline(DOWNGRADE, cancel)) == ("change_dated_after_end", "entries[1].effective_at")
    ended = timeline(DOWNGRADE, Withdrawn(effective_at=utc(2024, 1, 25), withdraws=1), cancel)
    assert state_at(ended, utc(2024, 1, 25)).status is SubscriptionStatus.ENDED


# Quantities scheduled on days after the withdrawal moment, some of them withdrawn.
_PHASES = st.lists(
    st.tuples(st.integers(min_value=1, max_value=120), st.integers(min_value=0, max_value=9), st.booleans()),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(_PHASES)
def test_property_withdrawing_equals_never_recording(phases: list[tuple[int, int, bool]]) -> None:
    """For any scheduled quantity changes, withdrawing some of them bills exactly what recording
    only the others would have."""
    base = utc(2024, 1, 20)
    changes = [
        QuantityChanged(effective_at=base + timedelta(days=day), price_id="seats", quantity=quantity)
        for day, quantity, _ in phases
    ]
    withdrawals = [
        Withdrawn(effective_at=base, withdraws=position + 1) for position, (_, _, gone) in enumerate(phases) if gone
    ]
    kept = [change for change, (_, _, gone) in zip(changes, phases, strict=True) if not gone]
    through = utc(2024, 7, 1)
    assert (
        billing_events(timeline(*changes, *withdrawals), through=through).events
        == billing_events(timeline(*kept), through=through).events
    )
