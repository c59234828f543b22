"""Billing events for every edge case of the issue, as tables of expected events."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction

import pytest

from tally.core.money import RoundingMode
from tally.core.periods import Period
from tally.core.rejections import Rejected
from tally.core.subscriptions import (
    AnchorKind,
    BillingAnchor,
    BillingEventKind,
    Canceled,
    CancelScheduled,
    CancelUnscheduled,
    ItemsChanged,
    Paused,
    ProrationBasis,
    QuantityChanged,
    Resumed,
    Started,
    Timeline,
    TimelineEntry,
    TrialUsage,
    billing_events,
    current_period_end,
)
from tests.core.subscriptions.builders import DAY, MONTH, WEEK, YEAR, brief, exact_amount, fee, local, usage, utc

BASIC = fee("basic", "10")
PRO = fee("pro", "30")
CALENDAR = BillingAnchor(AnchorKind.CALENDAR)
DAYS = ProrationBasis.DAY
FEE = BillingEventKind.FIXED_FEE.value
CREDIT = BillingEventKind.FIXED_FEE_CREDIT.value
USAGE = BillingEventKind.USAGE.value
TRIAL = BillingEventKind.TRIAL.value
PAUSED = BillingEventKind.PAUSED.value


def subscription(*entries: TimelineEntry, subscription_id: str = "sub_1") -> Timeline:
    return Timeline(subscription_id, entries)


def table(timeline: Timeline, through: datetime) -> list[tuple[str, str, datetime, datetime, str | None]]:
    return [brief(event) for event in billing_events(timeline, through=through).events]


def net(timeline: Timeline, through: datetime, price_id: str | None = None) -> Fraction:
    return sum(
        (
            exact_amount(event)
            for event in billing_events(timeline, through=through).events
            if event.amount is not None and price_id in (None, event.price_id)
        ),
        Fraction(0),
    )


def test_month_end_anniversary_bills_full_periods_jan_31_feb_29_mar_31() -> None:
    timeline = subscription(Started(effective_at=utc(2024, 1, 31, 10), items=(BASIC, usage("tokens"))))
    assert table(timeline, utc(2024, 4, 30, 10)) == [
        (FEE, "basic", utc(2024, 1, 31, 10), utc(2024, 2, 29, 10), "10"),
        (FEE, "basic", utc(2024, 2, 29, 10), utc(2024, 3, 31, 10), "10"),
        (USAGE, "tokens", utc(2024, 1, 31, 10), utc(2024, 2, 29, 10), None),
        (FEE, "basic", utc(2024, 3, 31, 10), utc(2024, 4, 30, 10), "10"),
        (USAGE, "tokens", utc(2024, 2, 29, 10), utc(2024, 3, 31, 10), None),
        (FEE, "basic", utc(2024, 4, 30, 10), utc(2024, 5, 31, 10), "10"),
        (USAGE, "tokens", utc(2024, 3, 31, 10), utc(2024, 4, 30, 10), None),
    ]


def test_common_year_feb_28_then_back_to_mar_31() -> None:
    timeline = subscription(Started(effective_at=utc(2023, 1, 31), items=(BASIC,)))
    periods = billing_events(timeline, through=utc(2023, 3, 31)).periods[0].periods
    assert [(p.start.date().isoformat(), p.end.date().isoformat()) for p in periods] == [
        ("2023-01-31", "2023-02-28"),
        ("2023-02-28", "2023-03-31"),
        ("2023-03-31", "2023-04-30"),
    ]


@pytest.mark.parametrize(
    ("basis", "used", "total", "amount"),
    [
        # Calendar anchor, start Jan 15 12:00: the first period is the rest of January.
        (ProrationBasis.SECOND, 16 * 86_400 + 12 * 3_600, 31 * 86_400, Fraction(10 * (16 * 24 + 12), 31 * 24)),
        # By days the start day is charged in full: Jan 15..31 is 17 of 31 days.
        (DAYS, 17, 31, Fraction(170, 31)),
    ],
)
def test_calendar_anchor_start_mid_month_is_a_prorated_stub(
    basis: ProrationBasis, used: int, total: int, amount: Fraction
) -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 15, 12), items=(BASIC,), anchor=CALENDAR, proration_basis=basis)
    )
    first, second = billing_events(timeline, through=utc(2024, 2, 1)).events
    assert first.proration is not None
    assert (first.proration.units_used, first.proration.units_in_period) == (used, total)
    assert exact_amount(first) == amount
    assert first.period.start == utc(2024, 1, 1)
    assert first.service_period.start == utc(2024, 1, 15, 12)
    assert (second.amount, second.service_period.start) == (Decimal(10), utc(2024, 2, 1))


def test_trial_ending_mid_period_on_a_calendar_anchor() -> None:
    timeline = subscription(
        Started(
            effective_at=utc(2024, 1, 10),
            items=(BASIC, usage("tokens")),
            anchor=CALENDAR,
            trial_end=utc(2024, 1, 24),
            proration_basis=DAYS,
        )
    )
    events = billing_events(timeline, through=utc(2024, 2, 1)).events
    # At one due moment, charges come before windows (the trial window is due at its end).
    assert [brief(event)[:4] for event in events] == [
        (FEE, "basic", utc(2024, 1, 24), utc(2024, 2, 1)),
        (TRIAL, "basic", utc(2024, 1, 10), utc(2024, 1, 24)),
        (FEE, "basic", utc(2024, 2, 1), utc(2024, 3, 1)),
        # Usage during the trial is billed (the trial waives fixed fees only), in one window.
        (USAGE, "tokens", utc(2024, 1, 10), utc(2024, 2, 1)),
    ]
    # Jan 24..31 is 8 of January's 31 days.
    assert exact_amount(events[0]) == Fraction(80, 31)
    assert events[2].amount == Decimal(10)


def test_trial_usage_can_be_free() -> None:
    timeline = subscription(
        Started(
            effective_at=utc(2024, 1, 10),
            items=(usage("tokens"),),
            trial_end=utc(2024, 1, 24),
            trial_usage=TrialUsage.FREE,
        )
    )
    assert table(timeline, utc(2024, 2, 10)) == [
        (TRIAL, "tokens", utc(2024, 1, 10), utc(2024, 1, 24), None),
        (USAGE, "tokens", utc(2024, 1, 24), utc(2024, 2, 10), None),
    ]


def test_trial_on_an_anniversary_anchor_keeps_the_anchor() -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 10), items=(BASIC,), trial_end=utc(2024, 1, 24), proration_basis=DAYS)
    )
    events = billing_events(timeline, through=utc(2024, 2, 10)).events
    assert [brief(event)[:4] for event in events] == [
        (FEE, "basic", utc(2024, 1, 24), utc(2024, 2, 10)),
        (TRIAL, "basic", utc(2024, 1, 10), utc(2024, 1, 24)),
        (FEE, "basic", utc(2024, 2, 10), utc(2024, 3, 10)),
    ]
    # The period stays [Jan 10, Feb 10): the rest after the trial is 17 of its 31 days.
    assert exact_amount(events[0]) == Fraction(10 * 17, 31)


def test_cancel_and_resubscribe_the_same_day() -> None:
    first = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(BASIC,), proration_basis=DAYS),
        Canceled(effective_at=utc(2024, 1, 15, 10)),
        subscription_id="sub_a",
    )
    again = subscription(
        Started(effective_at=utc(2024, 1, 15, 15), items=(BASIC,), proration_basis=DAYS),
        subscription_id="sub_b",
    )
    assert table(first, utc(2024, 12, 31)) == [
        (FEE, "basic", utc(2024, 1, 1), utc(2024, 2, 1), "10"),
        (CREDIT, "basic", utc(2024, 1, 15, 10), utc(2024, 2, 1), table(first, utc(2024, 2, 1))[1][4]),
    ]
    # By days the cancel day is credited to the old subscription and charged by the new one.
    assert net(first, utc(2024, 12, 31)) == Fraction(10 * 14, 31)
    assert table(again, utc(2024, 1, 16)) == [(FEE, "basic", utc(2024, 1, 15, 15), utc(2024, 2, 15, 15), "10")]
    keys = {event.key for t in (first, again) for event in billing_events(t, through=utc(2024, 1, 16)).events}
    assert len(keys) == 3


def test_a_cancel_scheduled_and_undone_the_same_day_changes_nothing() -> None:
    plain = subscription(Started(effective_at=utc(2024, 1, 1), items=(BASIC,)))
    undone = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(BASIC,)),
        CancelScheduled(effective_at=utc(2024, 1, 15, 9), ends_at=utc(2024, 2, 1)),
        CancelUnscheduled(effective_at=utc(2024, 1, 15, 17)),
    )
    assert table(undone, utc(2024, 4, 1)) == table(plain, utc(2024, 4, 1))


def test_upgrade_then_downgrade_in_one_period() -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(BASIC,), proration_basis=DAYS),
        ItemsChanged(effective_at=utc(2024, 1, 10), items=(PRO,)),
        ItemsChanged(effective_at=utc(2024, 1, 20), items=(BASIC,)),
    )
    events = billing_events(timeline, through=utc(2024, 2, 1)).events
    assert [brief(event)[:4] for event in events] == [
        (FEE, "basic", utc(2024, 1, 1), utc(2024, 2, 1)),
        (CREDIT, "basic", utc(2024, 1, 10), utc(2024, 2, 1)),
        (FEE, "pro", utc(2024, 1, 10), utc(2024, 2, 1)),
        (CREDIT, "pro", utc(2024, 1, 20), utc(2024, 2, 1)),
        (FEE, "basic", utc(2024, 1, 20), utc(2024, 2, 1)),
        (FEE, "basic", utc(2024, 2, 1), utc(2024, 3, 1)),
    ]
    # January: 9 days of basic, 10 of pro, 12 of basic again.
    january = [event for event in events if event.period.start == utc(2024, 1, 1)]
    assert sum((exact_amount(event) for event in january), Fraction(0)) == Fraction(9 * 10 + 10 * 30 + 12 * 10, 31)
    assert [event.proration.units_used for event in january if event.proration] == [31, 22, 22, 12, 12]


def test_upgrade_and_back_at_the_same_moment_makes_no_lines() -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(BASIC,)),
        ItemsChanged(effective_at=utc(2024, 1, 10), items=(PRO,)),
        ItemsChanged(effective_at=utc(2024, 1, 10), items=(BASIC,)),
        Paused(effective_at=utc(2024, 1, 12)),
        Resumed(effective_at=utc(2024, 1, 12)),
    )
    assert table(timeline, utc(2024, 1, 31)) == [(FEE, "basic", utc(2024, 1, 1), utc(2024, 2, 1), "10")]


def test_a_change_exactly_on_a_period_boundary_has_no_proration_lines() -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(BASIC, usage("tokens_v1"))),
        ItemsChanged(effective_at=utc(2024, 2, 1), items=(PRO, usage("tokens_v1"))),
    )
    assert table(timeline, utc(2024, 3, 1)) == [
        (FEE, "basic", utc(2024, 1, 1), utc(2024, 2, 1), "10"),
        (FEE, "pro", utc(2024, 2, 1), utc(2024, 3, 1), "30"),
        # The usage price did not change: its windows are not cut at the change.
        (USAGE, "tokens_v1", utc(2024, 1, 1), utc(2024, 2, 1), None),
        (FEE, "pro", utc(2024, 3, 1), utc(2024, 4, 1), "30"),
        (USAGE, "tokens_v1", utc(2024, 2, 1), utc(2024, 3, 1), None),
    ]


@pytest.mark.parametrize(
    "entries",
    [
        # Started and canceled at one moment.
        (Started(effective_at=utc(2024, 1, 1), items=(BASIC, usage("tokens"))), Canceled(effective_at=utc(2024, 1, 1))),
        # Started on a calendar anchor exactly at a boundary and canceled there: nothing at all.
        (
            Started(effective_at=utc(2024, 2, 1), items=(BASIC,), anchor=CALENDAR),
            Canceled(effective_at=utc(2024, 2, 1), prorate=False),
        ),
    ],
)
def test_zero_length_subscriptions_bill_nothing(entries: tuple[TimelineEntry, ...]) -> None:
    result = billing_events(subscription(*entries), through=utc(2025, 1, 1))
    assert result.events == ()
    assert all(price.periods == () for price in result.periods)
    assert result.next_due_at is None


def test_an_annual_plan_with_monthly_usage() -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 31), items=(fee("annual", "1200", YEAR), usage("tokens")))
    )
    result = billing_events(timeline, through=utc(2025, 1, 31))
    fees = [event for event in result.events if event.kind is BillingEventKind.FIXED_FEE]
    usages = [event for event in result.events if event.kind is BillingEventKind.USAGE]
    assert [(event.service_period.start, event.amount) for event in fees] == [
        (utc(2024, 1, 31), Decimal(1200)),
        (utc(2025, 1, 31), Decimal(1200)),
    ]
    assert [event.service_period.end.date().isoformat() for event in usages] == [
        "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30", "2024-07-31",
        "2024-08-31", "2024-09-30", "2024-10-31", "2024-11-30", "2024-12-31", "2025-01-31",
    ]  # fmt: skip
    assert current_period_end(timeline, utc(2024, 6, 15)) == utc(2025, 1, 31)


def test_plan_version_migration_at_period_end() -> None:
    v1 = (fee("plan_v1_fee", "20"), usage("plan_v1_tokens"))
    v2 = (fee("plan_v2_fee", "25"), usage("plan_v2_tokens"))
    started = Started(effective_at=utc(2024, 1, 10), items=v1)
    at_period_end = current_period_end(subscription(started), utc(2024, 2, 20))
    assert at_period_end == utc(2024, 3, 10)
    timeline = subscription(started, ItemsChanged(effective_at=at_period_end, items=v2))
    assert table(timeline, utc(2024, 4, 10)) == [
        (FEE, "plan_v1_fee", utc(2024, 1, 10), utc(2024, 2, 10), "20"),
        (FEE, "plan_v1_fee", utc(2024, 2, 10), utc(2024, 3, 10), "20"),
        (USAGE, "plan_v1_tokens", utc(2024, 1, 10), utc(2024, 2, 10), None),
        (FEE, "plan_v2_fee", utc(2024, 3, 10), utc(2024, 4, 10), "25"),
        (USAGE, "plan_v1_tokens", utc(2024, 2, 10), utc(2024, 3, 10), None),
        (FEE, "plan_v2_fee", utc(2024, 4, 10), utc(2024, 5, 10), "25"),
        (USAGE, "plan_v2_tokens", utc(2024, 3, 10), utc(2024, 4, 10), None),
    ]


def test_pause_credits_the_rest_of_the_period_and_resume_charges_the_rest_of_its_period() -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(BASIC, usage("tokens")), proration_basis=DAYS),
        Paused(effective_at=utc(2024, 1, 11)),
        Resumed(effective_at=utc(2024, 3, 21)),
    )
    events = billing_events(timeline, through=utc(2024, 4, 1)).events
    assert [brief(event)[:4] for event in events] == [
        (FEE, "basic", utc(2024, 1, 1), utc(2024, 2, 1)),
        (CREDIT, "basic", utc(2024, 1, 11), utc(2024, 2, 1)),
        (USAGE, "tokens", utc(2024, 1, 1), utc(2024, 1, 11)),
        (PAUSED, "basic", utc(2024, 1, 11), utc(2024, 2, 1)),
        (PAUSED, "tokens", utc(2024, 1, 11), utc(2024, 2, 1)),
        (PAUSED, "basic", utc(2024, 2, 1), utc(2024, 3, 1)),
        (PAUSED, "tokens", utc(2024, 2, 1), utc(2024, 3, 1)),
        (FEE, "basic", utc(2024, 3, 21), utc(2024, 4, 1)),
        (PAUSED, "basic", utc(2024, 3, 1), utc(2024, 3, 21)),
        (PAUSED, "tokens", utc(2024, 3, 1), utc(2024, 3, 21)),
        (FEE, "basic", utc(2024, 4, 1), utc(2024, 5, 1)),
        (USAGE, "tokens", utc(2024, 3, 21), utc(2024, 4, 1)),
    ]
    # Paid: Jan 1-10 (10 of 31 days), nothing in February, Mar 21-31 (11 of 31), all of April.
    assert net(timeline, utc(2024, 4, 1)) == Fraction(100, 31) + Fraction(110, 31) + 10


def test_cancel_at_period_end_bills_the_last_period_in_full_and_nothing_after() -> None:
    started = Started(effective_at=utc(2024, 1, 10), items=(BASIC, usage("tokens")))
    ends_at = current_period_end(subscription(started), utc(2024, 2, 15))
    timeline = subscription(started, CancelScheduled(effective_at=utc(2024, 2, 15), ends_at=ends_at))
    assert table(timeline, utc(2025, 1, 1)) == [
        (FEE, "basic", utc(2024, 1, 10), utc(2024, 2, 10), "10"),
        (FEE, "basic", utc(2024, 2, 10), utc(2024, 3, 10), "10"),
        (USAGE, "tokens", utc(2024, 1, 10), utc(2024, 2, 10), None),
        (USAGE, "tokens", utc(2024, 2, 10), utc(2024, 3, 10), None),
    ]
    assert billing_events(timeline, through=utc(2025, 1, 1)).next_due_at is None


@pytest.mark.parametrize(("prorate", "credited"), [(True, True), (False, False)])
def test_cancel_immediately_with_or_without_a_proration_credit(prorate: bool, credited: bool) -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(fee("seat", "30", quantity=3), usage("tokens"))),
        Canceled(effective_at=utc(2024, 1, 11), prorate=prorate),
    )
    events = billing_events(timeline, through=utc(2024, 3, 1)).events
    kinds = [event.kind for event in events]
    assert (BillingEventKind.FIXED_FEE_CREDIT in kinds) is credited
    # Usage is cut at the cancel and due then.
    assert brief(events[-1]) == (USAGE, "tokens", utc(2024, 1, 1), utc(2024, 1, 11), None)
    if credited:
        credit = events[1]
        assert credit.quantity == 3
        assert exact_amount(credit) == Fraction(-90 * 21, 31)
        assert credit.amount_minor() == -6097  # -60.967741935… USD, rounded once, half up
        assert credit.amount_minor(RoundingMode.DOWN) == -6096


def test_quantity_change_with_and_without_proration() -> None:
    seats = fee("seat", "30", quantity=2)
    prorated = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(seats,), proration_basis=DAYS),
        QuantityChanged(effective_at=utc(2024, 1, 17), price_id="seat", quantity=5),
    )
    assert [
        (e.kind.value, e.quantity, e.proration.units_used if e.proration else None)
        for e in billing_events(prorated, through=utc(2024, 2, 1)).events
    ] == [(FEE, 2, 31), (CREDIT, 2, 15), (FEE, 5, 15), (FEE, 5, 29)]
    unprorated = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(seats,)),
        QuantityChanged(effective_at=utc(2024, 1, 17), price_id="seat", quantity=5, prorate=False),
    )
    assert [(e.quantity, e.amount) for e in billing_events(unprorated, through=utc(2024, 2, 1)).events] == [
        (2, Decimal(60)),
        (5, Decimal(150)),
    ]


def test_added_price_without_proration_starts_at_its_next_boundary() -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(BASIC,)),
        ItemsChanged(effective_at=utc(2024, 1, 17), items=(BASIC, fee("addon", "5")), prorate=False),
    )
    assert table(timeline, utc(2024, 2, 1)) == [
        (FEE, "basic", utc(2024, 1, 1), utc(2024, 2, 1), "10"),
        (FEE, "addon", utc(2024, 2, 1), utc(2024, 3, 1), "5"),
        (FEE, "basic", utc(2024, 2, 1), utc(2024, 3, 1), "10"),
    ]


@pytest.mark.parametrize(
    ("tz", "change", "seconds", "days"),
    [
        # March in New York is 31 days less an hour; from local midnight Mar 15 to Apr 1 is 17 days.
        ("America/New_York", local("America/New_York", 2024, 3, 15), (17 * 86_400, 31 * 86_400 - 3_600), (17, 31)),
        # November gains the hour: Nov 10 local midnight to Dec 1 is 21 days.
        ("America/New_York", local("America/New_York", 2024, 11, 10), (21 * 86_400, 30 * 86_400 + 3_600), (21, 30)),
        # Berlin, October: the change on Oct 20 sees the extra hour of Oct 27 in its rest.
        ("Europe/Berlin", local("Europe/Berlin", 2024, 10, 20), (12 * 86_400 + 3_600, 31 * 86_400 + 3_600), (12, 31)),
        ("Europe/Berlin", local("Europe/Berlin", 2024, 3, 20), (12 * 86_400 - 3_600, 31 * 86_400 - 3_600), (12, 31)),
    ],
)
def test_prorations_across_dst_in_the_customer_time_zone(
    tz: str, change: datetime, seconds: tuple[int, int], days: tuple[int, int]
) -> None:
    for basis, expected in ((ProrationBasis.SECOND, seconds), (DAYS, days)):
        timeline = subscription(
            Started(
                effective_at=local(tz, change.year, change.month, 1),
                items=(BASIC,),
                anchor=CALENDAR,
                timezone=tz,
                proration_basis=basis,
            ),
            QuantityChanged(effective_at=change, price_id="basic", quantity=2),
        )
        credit = billing_events(timeline, through=change).events[1]
        assert credit.kind is BillingEventKind.FIXED_FEE_CREDIT
        assert credit.proration is not None
        assert (credit.proration.units_used, credit.proration.units_in_period) == expected


def test_events_due_later_are_not_returned_yet_and_next_due_at_says_when() -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 10), items=(BASIC, usage("tokens"))),
        ItemsChanged(effective_at=utc(2024, 1, 25), items=(PRO, usage("tokens"))),
    )
    early = billing_events(timeline, through=utc(2024, 1, 20))
    assert table(timeline, utc(2024, 1, 20)) == [(FEE, "basic", utc(2024, 1, 10), utc(2024, 2, 10), "10")]
    assert early.next_due_at == utc(2024, 1, 25)
    assert billing_events(timeline, through=utc(2024, 1, 25)).next_due_at == utc(2024, 2, 10)
    assert billing_events(timeline, through=utc(2024, 1, 9)).events == ()


def test_the_decimal_amount_agrees_with_the_exact_fraction() -> None:
    timeline = subscription(
        Started(effective_at=utc(2024, 1, 1), items=(fee("seat", "9.99"),)),
        Canceled(effective_at=utc(2024, 1, 11, 7, 13, 5)),
    )
    credit = billing_events(timeline, through=utc(2024, 2, 1)).events[1]
    assert credit.amount is not None and credit.proration is not None
    assert abs(Fraction(credit.amount) - exact_amount(credit)) < Fraction(1, 10**50)
    assert abs(Fraction(credit.proration.fraction) - credit.proration.exact_fraction) < Fraction(1, 10**59)


def test_bad_through() -> None:
    timeline = subscription(Started(effective_at=utc(2024, 1, 1), items=(BASIC,)))
    for through, code in (
        (datetime(2024, 1, 1), "datetime_must_have_timezone"),
        (utc(2500, 1, 1), "datetime_out_of_range"),
    ):
        with pytest.raises(Rejected) as error:
            billing_events(timeline, through=through)
        assert error.value.rejection.code == code


def test_too_many_periods_at_once_is_refused_with_the_limit_named() -> None:
    daily = subscription(Started(effective_at=utc(2000, 1, 1), items=(fee("daily", "1", interval=DAY),)))
    with pytest.raises(Rejected) as error:
        billing_events(daily, through=utc(2020, 1, 1))
    assert error.value.rejection.code == "billing_periods_exceed_limit"
    assert "PERIODS_MAX" in error.value.rejection.message
    assert len(billing_events(daily, through=utc(2010, 1, 1)).events) == 3654


def test_invoice_cycles_follow_the_shortest_interval_held() -> None:
    # An annual fee with monthly usage is invoiced monthly; an added weekly price makes it weekly
    # from then on, and its removal monthly again. The anchor never moves; an end keeps the last.
    weekly = usage("calls", WEEK)
    timeline = Timeline(
        "sub_1",
        (
            Started(effective_at=utc(2026, 1, 1), items=(fee("seats", "20", YEAR), usage("tokens"))),
            ItemsChanged(effective_at=utc(2026, 3, 10), items=(fee("seats", "20", YEAR), usage("tokens"), weekly)),
            ItemsChanged(effective_at=utc(2026, 4, 1), items=(fee("seats", "20", YEAR), usage("tokens"))),
            Canceled(effective_at=utc(2026, 5, 15)),
        ),
    )
    events = billing_events(timeline, through=utc(2026, 1, 2))
    steps = [(step.effective_at, step.cycle.interval) for step in events.invoice_cycles]
    assert steps == [(utc(2026, 1, 1), MONTH), (utc(2026, 3, 10), WEEK), (utc(2026, 4, 1), MONTH)]
    assert events.started_at == utc(2026, 1, 1)
    assert events.invoice_cycle_at(utc(2025, 12, 1)).period_containing(utc(2026, 1, 5)).start == utc(2026, 1, 1)
    # Weeks from the anchor (Thursday, January 1).
    assert events.invoice_cycle_at(utc(2026, 3, 12)).period_containing(utc(2026, 3, 13)) == Period(
        utc(2026, 3, 12), utc(2026, 3, 19)
    )
    assert events.invoice_cycle_at(utc(2026, 9, 1)).interval == MONTH
