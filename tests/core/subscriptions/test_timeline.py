"""The timeline: validation with stable codes, derived states, and "at period end"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import pytest

from tally.core.money import currency
from tally.core.rejections import Rejected
from tally.core.subscriptions import (
    Canceled,
    CancelScheduled,
    CancelUnscheduled,
    ItemKind,
    ItemsChanged,
    Paused,
    QuantityChanged,
    Resumed,
    Started,
    SubscriptionItem,
    SubscriptionStatus,
    Timeline,
    TimelineEntry,
    current_period_end,
    state_at,
)
from tally.core.subscriptions.timeline import ENTRIES_MAX, ITEMS_MAX
from tests.core.subscriptions.builders import MONTH, USD, YEAR, fee, usage, utc

START = utc(2024, 1, 10)
BASIC = fee("basic", "10")
PRO = fee("pro", "30")
START_ENTRY = Started(effective_at=START, items=(BASIC,))


def timeline(*entries: TimelineEntry) -> Timeline:
    return Timeline("sub_1", (START_ENTRY, *entries))


def code_of(call: Callable[[], object]) -> tuple[str, str | None]:
    with pytest.raises(Rejected) as error:
        call()
    return error.value.rejection.code, error.value.rejection.field


@pytest.mark.parametrize(
    ("call", "code", "field"),
    [
        (lambda: Timeline("sub_1", ()), "timeline_must_begin_with_start", "entries"),
        (lambda: Timeline("", (START_ENTRY,)), "subscription_id_invalid", "id"),
        (lambda: Timeline("sub_1", (Paused(effective_at=START),)), "timeline_must_begin_with_start", "entries"),
        (lambda: timeline(START_ENTRY), "subscription_already_started", "entries[1]"),
        (
            lambda: timeline(Paused(effective_at=utc(2024, 1, 9))),
            "change_dated_before_start",
            "entries[1].effective_at",
        ),
        (
            lambda: timeline(Canceled(effective_at=utc(2024, 2, 1)), Paused(effective_at=utc(2024, 2, 2))),
            "change_dated_after_end",
            "entries[2].effective_at",
        ),
        # A change at the very moment of the end is after it: the subscription is [start, end).
        (
            lambda: timeline(
                CancelScheduled(effective_at=utc(2024, 1, 20), ends_at=utc(2024, 2, 10)),
                QuantityChanged(effective_at=utc(2024, 2, 10), price_id="basic", quantity=2),
            ),
            "change_dated_after_end",
            "entries[2].effective_at",
        ),
        (
            lambda: timeline(
                CancelScheduled(effective_at=utc(2024, 1, 20), ends_at=utc(2024, 2, 10)),
                CancelUnscheduled(effective_at=utc(2024, 2, 11)),
            ),
            "change_dated_after_end",
            "entries[2].effective_at",
        ),
        (lambda: timeline(Resumed(effective_at=utc(2024, 1, 12))), "subscription_not_paused", "entries[1]"),
        (
            lambda: timeline(Paused(effective_at=utc(2024, 1, 12)), Paused(effective_at=utc(2024, 1, 13))),
            "subscription_already_paused",
            "entries[2]",
        ),
        (lambda: timeline(CancelUnscheduled(effective_at=utc(2024, 1, 12))), "cancel_not_scheduled", "entries[1]"),
        (
            lambda: timeline(
                CancelScheduled(effective_at=utc(2024, 1, 11), ends_at=utc(2024, 2, 10)),
                CancelUnscheduled(effective_at=utc(2024, 1, 12)),
                CancelUnscheduled(effective_at=utc(2024, 1, 13)),
            ),
            "cancel_not_scheduled",
            "entries[3]",
        ),
        (
            lambda: timeline(
                CancelScheduled(effective_at=utc(2024, 1, 11), ends_at=utc(2024, 2, 10)),
                CancelScheduled(effective_at=utc(2024, 1, 12), ends_at=utc(2024, 3, 10)),
            ),
            "cancel_already_scheduled",
            "entries[2]",
        ),
        (
            lambda: CancelScheduled(effective_at=utc(2024, 1, 11), ends_at=utc(2024, 1, 11)),
            "cancel_must_end_after_request",
            "ends_at",
        ),
        (
            lambda: timeline(QuantityChanged(effective_at=utc(2024, 1, 12), price_id="pro", quantity=2)),
            "price_not_in_subscription",
            "entries[1].price_id",
        ),
        (
            lambda: Timeline(
                "sub_1",
                (
                    Started(effective_at=START, items=(usage("tokens"),)),
                    QuantityChanged(effective_at=utc(2024, 1, 12), price_id="tokens", quantity=2),
                ),
            ),
            "quantity_applies_to_fixed_fees",
            "entries[1].price_id",
        ),
        (
            lambda: timeline(ItemsChanged(effective_at=utc(2024, 1, 12), items=(fee("basic", "12"),))),
            "price_definition_must_not_change",
            "entries[1].items[0]",
        ),
        (
            lambda: timeline(ItemsChanged(effective_at=utc(2024, 1, 12), items=(fee("basic", "10", YEAR),))),
            "price_definition_must_not_change",
            "entries[1].items[0]",
        ),
        (
            lambda: timeline(
                ItemsChanged(
                    effective_at=utc(2024, 1, 12),
                    items=(
                        SubscriptionItem(
                            price_id="eur",
                            kind=ItemKind.FIXED,
                            interval=MONTH,
                            currency=currency("EUR"),
                            unit_amount=Decimal(1),
                        ),
                    ),
                )
            ),
            "currency_must_match_subscription",
            "entries[1].items[0].currency",
        ),
        (lambda: Started(effective_at=START, items=()), "items_required", "items"),
        (lambda: Started(effective_at=START, items=[BASIC]), "items_must_be_a_tuple", "items"),  # type: ignore[arg-type]
        (lambda: Started(effective_at=START, items=(BASIC, BASIC)), "price_ids_must_be_distinct", "items[1].price_id"),
        (
            lambda: Started(effective_at=START, items=tuple(fee(f"p{i}", "1") for i in range(ITEMS_MAX + 1))),
            "items_exceed_limit",
            "items",
        ),
        (
            lambda: Started(
                effective_at=START,
                items=(
                    BASIC,
                    SubscriptionItem(
                        price_id="jpy",
                        kind=ItemKind.FIXED,
                        interval=MONTH,
                        currency=currency("JPY"),
                        unit_amount=Decimal(100),
                    ),
                ),
            ),
            "items_must_share_a_currency",
            "items[1].currency",
        ),
        (lambda: Started(effective_at=START, items=(BASIC,), timezone="Nowhere/City"), "timezone_unknown", "timezone"),
        (
            lambda: Started(effective_at=START, items=(BASIC,), trial_end=START),
            "trial_must_end_after_start",
            "trial_end",
        ),
        (
            lambda: Started(effective_at=datetime(2024, 1, 10), items=(BASIC,)),
            "datetime_must_have_timezone",
            "effective_at",
        ),
        (lambda: Started(effective_at=utc(1969, 12, 31), items=(BASIC,)), "datetime_out_of_range", "effective_at"),
        (lambda: Paused(effective_at=utc(2400, 1, 1)), "datetime_out_of_range", "effective_at"),
        (lambda: fee(" basic", "10"), "price_id_invalid", "price_id"),
        (lambda: fee("basic", "-1"), "unit_amount_must_not_be_negative", "unit_amount"),
        (lambda: fee("basic", "NaN"), "unit_amount_must_be_finite", "unit_amount"),
        (lambda: fee("basic", "Infinity"), "unit_amount_must_be_finite", "unit_amount"),
        (lambda: fee("basic", "10", quantity=-1), "quantity_out_of_range", "quantity"),
        (
            lambda: SubscriptionItem(price_id="p", kind=ItemKind.FIXED, interval=MONTH, currency=USD),
            "unit_amount_required",
            "unit_amount",
        ),
        (
            lambda: SubscriptionItem(
                price_id="p", kind=ItemKind.USAGE, interval=MONTH, currency=USD, unit_amount=Decimal(1)
            ),
            "unit_amount_not_allowed",
            "unit_amount",
        ),
        (
            lambda: SubscriptionItem(price_id="p", kind=ItemKind.USAGE, interval=MONTH, currency=USD, quantity=3),
            "quantity_applies_to_fixed_fees",
            "quantity",
        ),
        (
            lambda: Timeline("sub_1", (START_ENTRY, *(Paused(effective_at=START) for _ in range(ENTRIES_MAX)))),
            "timeline_entries_exceed_limit",
            "entries",
        ),
    ],
)
def test_bad_timelines_get_stable_codes(call: Callable[[], object], code: str, field: str) -> None:
    assert code_of(call) == (code, field)


def test_floats_are_refused_at_the_door() -> None:
    with pytest.raises(TypeError):
        SubscriptionItem(price_id="p", kind=ItemKind.FIXED, interval=MONTH, currency=USD, unit_amount=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        QuantityChanged(effective_at=START, price_id="basic", quantity=2.0)  # type: ignore[arg-type]


def test_entries_are_read_in_time_order_whatever_the_recording_order() -> None:
    # Recorded on Jan 12: a plan change for Feb 10. Recorded on Jan 20: a pause on Jan 25, resumed Jan 28.
    recorded = timeline(
        ItemsChanged(effective_at=utc(2024, 2, 10), items=(PRO,)),
        Paused(effective_at=utc(2024, 1, 25)),
        Resumed(effective_at=utc(2024, 1, 28)),
    )
    assert [step.at for step in recorded.history.steps] == [START, utc(2024, 1, 25), utc(2024, 1, 28), utc(2024, 2, 10)]
    assert state_at(recorded, utc(2024, 2, 11)).items == (PRO,)


TRIAL_TIMELINE = Timeline(
    "sub_t",
    (
        Started(effective_at=START, items=(BASIC,), trial_end=utc(2024, 1, 24)),
        Paused(effective_at=utc(2024, 3, 1)),
        Resumed(effective_at=utc(2024, 3, 5)),
        CancelScheduled(effective_at=utc(2024, 3, 20), ends_at=utc(2024, 4, 10)),
        CancelUnscheduled(effective_at=utc(2024, 3, 22)),
        CancelScheduled(effective_at=utc(2024, 3, 25), ends_at=utc(2024, 4, 10)),
    ),
)


@pytest.mark.parametrize(
    ("at", "status", "payment_overdue"),
    [
        (utc(2024, 1, 9), SubscriptionStatus.NOT_STARTED, False),
        (START, SubscriptionStatus.TRIALING, False),
        (utc(2024, 1, 23, 23, 59), SubscriptionStatus.TRIALING, False),
        (utc(2024, 1, 24), SubscriptionStatus.ACTIVE, False),
        (utc(2024, 2, 1), SubscriptionStatus.PAST_DUE, True),
        (utc(2024, 3, 1), SubscriptionStatus.PAUSED, False),
        (utc(2024, 3, 1), SubscriptionStatus.PAUSED, True),
        (utc(2024, 3, 5), SubscriptionStatus.ACTIVE, False),
        (utc(2024, 3, 21), SubscriptionStatus.CANCELED, False),
        (utc(2024, 3, 23), SubscriptionStatus.ACTIVE, False),
        (utc(2024, 4, 9), SubscriptionStatus.CANCELED, False),
        (utc(2024, 4, 10), SubscriptionStatus.ENDED, False),
        (utc(2030, 1, 1), SubscriptionStatus.ENDED, True),
    ],
)
def test_states_derived_from_the_timeline(at: datetime, status: SubscriptionStatus, payment_overdue: bool) -> None:
    assert state_at(TRIAL_TIMELINE, at, payment_overdue=payment_overdue).status is status


def test_state_carries_the_pending_end_and_the_end() -> None:
    assert state_at(TRIAL_TIMELINE, utc(2024, 3, 26)).cancel_at == utc(2024, 4, 10)
    assert state_at(TRIAL_TIMELINE, utc(2024, 3, 23)).cancel_at is None
    assert state_at(TRIAL_TIMELINE, utc(2024, 5, 1)).ended_at == utc(2024, 4, 10)


def test_a_pause_running_past_the_trial_end_stays_paused_then_is_active() -> None:
    paused = Timeline(
        "sub_p",
        (
            Started(effective_at=START, items=(BASIC,), trial_end=utc(2024, 1, 24)),
            Paused(effective_at=utc(2024, 1, 20)),
            Resumed(effective_at=utc(2024, 1, 30)),
        ),
    )
    assert state_at(paused, utc(2024, 1, 25)).status is SubscriptionStatus.PAUSED
    assert state_at(paused, utc(2024, 1, 30)).status is SubscriptionStatus.ACTIVE


def test_start_and_cancel_at_the_same_moment_is_a_zero_length_subscription() -> None:
    empty = timeline(Canceled(effective_at=START))
    assert state_at(empty, START).status is SubscriptionStatus.ENDED
    assert empty.history.ended_at == START


@pytest.mark.parametrize(
    ("items", "at", "end"),
    [
        ((BASIC,), utc(2024, 2, 20), utc(2024, 3, 10)),
        # On a boundary, the period that starts there (and was just billed) is the current one.
        ((BASIC,), utc(2024, 2, 10), utc(2024, 3, 10)),
        # Before the start, the first period.
        ((BASIC,), utc(2024, 1, 1), utc(2024, 2, 10)),
        # An annual fee with monthly usage: the prepaid term is the year.
        ((fee("annual", "1200", YEAR), usage("tokens")), utc(2024, 6, 1), utc(2025, 1, 10)),
        # Usage only: the longest usage interval.
        ((usage("tokens"), usage("storage", YEAR)), utc(2024, 6, 1), utc(2025, 1, 10)),
        ((usage("tokens"),), utc(2024, 6, 1), utc(2024, 6, 10)),
    ],
)
def test_current_period_end_resolves_at_period_end(
    items: tuple[SubscriptionItem, ...], at: datetime, end: datetime
) -> None:
    subscription = Timeline("sub_e", (Started(effective_at=START, items=items),))
    assert current_period_end(subscription, at) == end


def test_current_period_end_after_the_end_is_refused() -> None:
    assert code_of(lambda: current_period_end(timeline(Canceled(effective_at=utc(2024, 2, 1))), utc(2024, 3, 1))) == (
        "change_dated_after_end",
        "at",
    )
