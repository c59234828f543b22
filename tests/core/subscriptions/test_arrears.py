"""Fixed fees billed in arrears: each span held at one quantity is charged at its end, prorated,
and nothing is ever credited (nothing was billed ahead)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.core.periods import Period
from tally.core.rating import BillingTiming
from tally.core.rejections import Rejected
from tally.core.subscriptions import (
    AnchorKind,
    BillingAnchor,
    BillingEventKind,
    Canceled,
    CancelScheduled,
    CancelUnscheduled,
    ItemKind,
    ItemsChanged,
    Paused,
    ProrationBasis,
    QuantityChanged,
    Resumed,
    Started,
    SubscriptionItem,
    Timeline,
    TimelineEntry,
    billing_events,
)
from tests.core.subscriptions.builders import MONTH, USD, WEEK, brief, exact_amount, fee, local, usage, utc
from tests.core.subscriptions.reference import expected_fee, fact_moments, prorating_moments
from tests.core.subscriptions.test_billing_properties import through_of, timelines

ARREARS = BillingTiming.IN_ARREARS
BASIC = fee("basic", "31")
PRO = fee("pro", "62")
LATE_BASIC = replace(BASIC, billing_timing=ARREARS)
LATE_PRO = replace(PRO, billing_timing=ARREARS)
FEE = BillingEventKind.FIXED_FEE.value
TRIAL = BillingEventKind.TRIAL.value
PAUSED = BillingEventKind.PAUSED.value
JAN_1 = utc(2024, 1, 1)


APRIL = utc(2024, 4, 1)


def events(*entries: TimelineEntry, through: datetime = APRIL) -> list[tuple[object, ...]]:
    return [brief(event) for event in billing_events(Timeline("sub_a", entries), through=through).events]


def test_a_full_period_is_billed_at_its_end_not_its_start() -> None:
    start = Started(effective_at=utc(2024, 1, 10), items=(LATE_BASIC,))
    result = billing_events(Timeline("sub_a", (start,)), through=utc(2024, 2, 9))
    assert result.events == ()
    assert result.next_due_at == utc(2024, 2, 10)
    assert events(start, through=utc(2024, 3, 10)) == [
        (FEE, "basic", utc(2024, 1, 10), utc(2024, 2, 10), "31"),
        (FEE, "basic", utc(2024, 2, 10), utc(2024, 3, 10), "31"),
    ]
    (first, _) = billing_events(Timeline("sub_a", (start,)), through=utc(2024, 3, 10)).events
    assert (first.due_at, first.billing_timing) == (utc(2024, 2, 10), ARREARS)


def test_a_calendar_stub_is_billed_prorated_at_the_first_boundary() -> None:
    start = Started(effective_at=utc(2024, 1, 15), items=(LATE_BASIC,), anchor=BillingAnchor(AnchorKind.CALENDAR))
    # January has 31 days; Jan 15 .. Feb 1 is 17 of them: 31 × 17/31.
    assert events(start, through=utc(2024, 2, 1)) == [(FEE, "basic", utc(2024, 1, 15), utc(2024, 2, 1), "17")]


@pytest.mark.parametrize("prorate", [True, False])
def test_an_upgrade_bills_each_fee_for_its_own_span_and_credits_nothing(prorate: bool) -> None:
    # `prorate` does not matter in arrears: nothing was billed ahead, to credit or to keep.
    assert events(
        Started(effective_at=JAN_1, items=(LATE_BASIC,)),
        ItemsChanged(effective_at=utc(2024, 1, 11), items=(LATE_PRO,), prorate=prorate),
        through=utc(2024, 2, 1),
    ) == [
        (FEE, "basic", JAN_1, utc(2024, 1, 11), "10"),
        (FEE, "pro", utc(2024, 1, 11), utc(2024, 2, 1), "42"),
    ]


def test_quantity_changes_split_the_period_and_a_cancel_bills_up_to_the_end() -> None:
    assert events(
        Started(effective_at=JAN_1, items=(replace(LATE_BASIC, quantity=2),)),
        QuantityChanged(effective_at=utc(2024, 1, 21), price_id="basic", quantity=5),
        Canceled(effective_at=utc(2024, 1, 27)),
    ) == [
        (FEE, "basic", JAN_1, utc(2024, 1, 21), "40"),
        (FEE, "basic", utc(2024, 1, 21), utc(2024, 1, 27), "30"),
    ]


def test_a_scheduled_cancel_at_period_end_bills_the_last_period_at_the_end() -> None:
    assert events(
        Started(effective_at=JAN_1, items=(LATE_BASIC,)),
        CancelScheduled(effective_at=utc(2024, 1, 20), ends_at=utc(2024, 2, 1)),
    ) == [(FEE, "basic", JAN_1, utc(2024, 2, 1), "31")]


def test_a_trial_is_free_and_the_rest_of_its_period_is_billed_at_the_end() -> None:
    start = Started(effective_at=JAN_1, items=(LATE_BASIC,), trial_end=utc(2024, 1, 15))
    assert events(start, through=utc(2024, 2, 1)) == [
        (TRIAL, "basic", JAN_1, utc(2024, 1, 15), None),
        (FEE, "basic", utc(2024, 1, 15), utc(2024, 2, 1), "17"),
    ]


def test_a_pause_bills_what_came_before_it_and_nothing_while_paused() -> None:
    assert events(
        Started(effective_at=JAN_1, items=(LATE_BASIC,)),
        Paused(effective_at=utc(2024, 1, 11)),
        Resumed(effective_at=utc(2024, 1, 21)),
        through=utc(2024, 2, 1),
    ) == [
        (FEE, "basic", JAN_1, utc(2024, 1, 11), "10"),
        (PAUSED, "basic", utc(2024, 1, 11), utc(2024, 1, 21), None),
        (FEE, "basic", utc(2024, 1, 21), utc(2024, 2, 1), "11"),
    ]


def test_by_days_a_change_within_one_day_bills_no_empty_span() -> None:
    # The day of a change belongs to the new state: basic held for a few hours bills nothing.
    assert events(
        Started(effective_at=JAN_1, items=(LATE_PRO,), proration_basis=ProrationBasis.DAY),
        ItemsChanged(effective_at=utc(2024, 1, 11), items=(LATE_BASIC,)),
        ItemsChanged(effective_at=utc(2024, 1, 11, 6), items=(LATE_PRO,)),
        through=utc(2024, 2, 1),
    ) == [
        (FEE, "pro", JAN_1, utc(2024, 1, 11), "20"),
        (FEE, "pro", utc(2024, 1, 11, 6), utc(2024, 2, 1), "42"),
    ]


def test_in_advance_and_in_arrears_mix_on_one_subscription() -> None:
    assert events(
        Started(effective_at=JAN_1, items=(BASIC, LATE_PRO, usage("tokens"))),
        through=utc(2024, 2, 1),
    ) == [
        (FEE, "basic", JAN_1, utc(2024, 2, 1), "31"),
        (FEE, "basic", utc(2024, 2, 1), utc(2024, 3, 1), "31"),
        (FEE, "pro", JAN_1, utc(2024, 2, 1), "62"),
        ("usage", "tokens", JAN_1, utc(2024, 2, 1), None),
    ]


def test_the_timing_is_part_of_what_a_price_id_means() -> None:
    with pytest.raises(Rejected) as raised:
        Timeline(
            "sub_a",
            (
                Started(effective_at=JAN_1, items=(BASIC,)),
                ItemsChanged(effective_at=utc(2024, 1, 5), items=(LATE_BASIC,)),
            ),
        )
    assert raised.value.rejection.code == "price_definition_must_not_change"
    with pytest.raises(Rejected) as raised:
        SubscriptionItem(
            price_id="tokens",
            kind=ItemKind.USAGE,
            interval=MONTH,
            currency=USD,
            billing_timing=BillingTiming.IN_ADVANCE,
        )
    assert (raised.value.rejection.code, raised.value.rejection.field) == (
        "usage_must_be_billed_in_arrears",
        "billing_timing",
    )
    assert BASIC.billing_timing is BillingTiming.IN_ADVANCE
    assert usage("tokens").billing_timing is ARREARS
    assert LATE_BASIC.unit_amount == Decimal(31)


def _in_arrears(timeline: Timeline) -> Timeline:
    """The same timeline with every fixed fee billed in arrears."""

    def late(items: tuple[SubscriptionItem, ...]) -> tuple[SubscriptionItem, ...]:
        return tuple(replace(item, billing_timing=ARREARS) if item.kind is ItemKind.FIXED else item for item in items)

    entries = [
        replace(entry, items=late(entry.items)) if isinstance(entry, Started | ItemsChanged) else entry
        for entry in timeline.entries
    ]
    return Timeline(timeline.subscription_id, tuple(entries))


def _always_prorating(timeline: Timeline) -> Timeline:
    entries = [
        replace(entry, prorate=True)
        if isinstance(entry, ItemsChanged | QuantityChanged | CancelScheduled | Canceled)
        else entry
        for entry in timeline.entries
    ]
    return Timeline(timeline.subscription_id, tuple(entries))


@given(timelines(prorate_always=False))
def test_property_arrears_bill_exactly_what_advance_nets_to_when_every_change_prorates(timeline: Timeline) -> None:
    """Over every closed period, a fee in arrears bills exactly the net of the same fee in advance
    with every change prorated (the time actually held), whatever the `prorate` flags said; each
    event is due at the end of its span, spans do not overlap, and nothing is credited."""
    through = through_of(timeline)
    late = billing_events(_in_arrears(timeline), through=through)
    advance = billing_events(_always_prorating(timeline), through=through)
    net: dict[tuple[str, Period], Fraction] = defaultdict(Fraction)
    for event in advance.events:
        if event.amount is not None and event.period.end <= through:
            net[(event.price_id, event.period)] += exact_amount(event)
    billed: dict[tuple[str, Period], Fraction] = defaultdict(Fraction)
    spans: dict[tuple[str, Period], list[Period]] = defaultdict(list)
    for event in late.events:
        assert event.kind is not BillingEventKind.FIXED_FEE_CREDIT
        if event.kind is BillingEventKind.FIXED_FEE:
            assert event.due_at == event.service_period.end
            assert event.proration is not None and event.proration.units_used > 0
            spans[(event.price_id, event.period)].append(event.service_period)
            if event.period.end <= through:
                billed[(event.price_id, event.period)] += exact_amount(event)
    assert {key: value for key, value in billed.items() if value} == {key: value for key, value in net.items() if value}
    for pieces in spans.values():
        ordered = sorted(pieces, key=lambda piece: piece.start)
        assert all(before.end <= after.start for before, after in itertools.pairwise(ordered))


@given(timelines(prorate_always=False), st.integers(0, 700 * 86_400))
def test_property_arrears_events_due_by_a_moment_never_change_later(timeline: Timeline, offset: int) -> None:
    late = _in_arrears(timeline)
    moment = timeline.history.start + timedelta(seconds=offset)
    everything = billing_events(late, through=through_of(timeline)).events
    assert billing_events(late, through=moment).events == tuple(e for e in everything if e.due_at <= moment)


def test_in_arrears_across_a_dst_change_and_a_month_end_anchor_in_a_leap_year() -> None:
    """New York, anchored on Jan 31 2028 (a leap year): periods end Feb 29 and Mar 31 at local
    midnight; the period [Feb 29, Mar 31) is an hour short (clocks spring forward on Mar 12), so a
    change on Mar 16 splits it by real seconds: 16 days less an hour before, 15 days after."""
    new_york = local("America/New_York", 2028, 1, 31)
    change = local("America/New_York", 2028, 3, 16)
    result = billing_events(
        Timeline(
            "sub_a",
            (
                Started(effective_at=new_york, items=(LATE_BASIC,), timezone="America/New_York"),
                QuantityChanged(effective_at=change, price_id="basic", quantity=2),
            ),
        ),
        through=local("America/New_York", 2028, 4, 1),
    )
    feb, before, after = (event for event in result.events if event.kind is BillingEventKind.FIXED_FEE)
    assert (feb.service_period.end, feb.amount) == (local("America/New_York", 2028, 2, 29), Decimal(31))
    assert before.proration is not None and after.proration is not None
    hour = 3_600
    assert (before.proration.units_used, before.proration.units_in_period) == (
        16 * 24 * hour - hour,
        31 * 24 * hour - hour,
    )
    assert after.proration.units_used == 15 * 24 * hour
    assert (before.due_at, after.due_at) == (change, local("America/New_York", 2028, 3, 31))
    assert exact_amount(before) + exact_amount(after) == Fraction(31 * (16 * 24 - 1) + 62 * 15 * 24, 31 * 24 - 1)


SEAT = fee("seat", "10")
LATE_SEAT = replace(fee("late_seat", "12"), billing_timing=ARREARS)
EXTRA = replace(fee("extra", "3.33"), billing_timing=ARREARS)
SUPPORT = fee("support", "8")


@st.composite
def mixed_timelines(draw: st.DrawFn) -> Timeline:
    """Fees in advance and in arrears on one subscription, every change drawing its own `prorate`
    (a cancel too): seats of each timing, an add-on of each timing switched on and off together."""
    interval = draw(st.sampled_from([MONTH, replace(MONTH, count=3), WEEK]))

    def items(seats: int, late_seats: int, add_ons: bool) -> tuple[SubscriptionItem, ...]:
        held = (replace(SEAT, interval=interval, quantity=seats), replace(LATE_SEAT, quantity=late_seats))
        return (*held, EXTRA, SUPPORT, usage("tokens")) if add_ons else (*held, usage("tokens"))

    start = JAN_1 + timedelta(seconds=draw(st.integers(0, 300 * 86_400)))
    trial = draw(st.none() | st.integers(1, 40))
    seats, late_seats, add_ons = draw(st.integers(0, 3)), draw(st.integers(0, 3)), False
    entries: list[TimelineEntry] = [
        Started(
            effective_at=start,
            items=items(seats, late_seats, add_ons),
            timezone=draw(st.sampled_from(["UTC", "America/New_York", "Europe/Berlin"])),
            anchor=draw(st.sampled_from([BillingAnchor(AnchorKind.ANNIVERSARY), BillingAnchor(AnchorKind.CALENDAR)])),
            trial_end=None if trial is None else start + timedelta(days=trial),
            proration_basis=draw(st.sampled_from(ProrationBasis)),
        )
    ]
    moment, paused, cancel_at = start, False, None
    for _ in range(draw(st.integers(1, 8))):
        moment += timedelta(seconds=draw(st.integers(1, 40 * 86_400)))
        if cancel_at is not None and cancel_at <= moment:
            break
        prorate = draw(st.booleans())
        options = ["seats", "late_seats", "add_ons", "resume" if paused else "pause"]
        options.append("unschedule" if cancel_at else "schedule")
        match draw(st.sampled_from([*options, "cancel"] if draw(st.integers(0, 7)) == 0 else options)):
            case "seats":
                seats = draw(st.integers(0, 3))
                entries.append(QuantityChanged(effective_at=moment, price_id="seat", quantity=seats, prorate=prorate))
            case "late_seats":
                late_seats = draw(st.integers(0, 3))
                entries.append(
                    QuantityChanged(effective_at=moment, price_id="late_seat", quantity=late_seats, prorate=prorate)
                )
            case "add_ons":
                add_ons = not add_ons
                entries.append(
                    ItemsChanged(effective_at=moment, items=items(seats, late_seats, add_ons), prorate=prorate)
                )
            case "pause":
                paused = True
                entries.append(Paused(effective_at=moment))
            case "resume":
                paused = False
                entries.append(Resumed(effective_at=moment))
            case "schedule":
                cancel_at = moment + timedelta(seconds=draw(st.integers(1, 90 * 86_400)))
                entries.append(CancelScheduled(effective_at=moment, ends_at=cancel_at, prorate=prorate))
            case "unschedule":
                cancel_at = None
                entries.append(CancelUnscheduled(effective_at=moment))
            case _:
                entries.append(Canceled(effective_at=moment, prorate=prorate))
                break
    return Timeline("sub_mixed", tuple(entries))


@given(mixed_timelines())
def test_property_arrears_mixed_with_unprorated_changes_never_credit_and_bill_what_they_should(
    timeline: Timeline,
) -> None:
    """With fees of both timings and changes that do and do not prorate: a fee in arrears is never
    credited; a fee in advance is credited only at a moment that prorates; and over every closed
    period each fee bills exactly what `reference.expected_fee` says — the time held for a fee in
    arrears, the quantity billed (which follows the quantity held only where proration happens)
    for a fee in advance."""
    history = timeline.history
    through = max(fact_moments(timeline)) + timedelta(days=120)
    result = billing_events(timeline, through=through)
    prorating = prorating_moments(timeline)
    billed: dict[tuple[str, Period], Fraction] = defaultdict(Fraction)
    for event in result.events:
        if event.amount is None:
            continue
        if event.kind is BillingEventKind.FIXED_FEE_CREDIT:
            assert not history.prices[event.price_id].in_arrears, event
            assert event.due_at in prorating, event
        billed[(event.price_id, event.period)] += exact_amount(event)
    for price in result.periods:
        if price.kind is not ItemKind.FIXED:
            continue
        in_arrears = history.prices[price.price_id].in_arrears
        for period in price.periods:
            if period.end <= through:
                expected = expected_fee(timeline, price.price_id, period, in_arrears=in_arrears)
                assert billed.get((price.price_id, period), Fraction(0)) == expected, (price.price_id, period)
