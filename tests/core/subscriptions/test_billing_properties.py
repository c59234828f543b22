"""Properties of billing events on random timelines (Hypothesis).

- Fixed-fee events of any period add up, exactly, to the fee of each segment the price was billable
  for (unit amount × quantity × segment units / period units), when every change prorates.
- A credit never exceeds what was charged: within a price's period the running total never goes
  below zero, each credit undoes part of an earlier charge of the same quantity, and the net never
  exceeds a full period at the largest quantity.
- Billing is prefix-stable: the events due by `x` are exactly the events due by any later moment
  filtered to `due_at <= x` — what invoicing billed yesterday is still there today.
- Second and day bases agree when changes fall on whole days (in a zone without DST).
- Usage windows, trial and paused windows tile each usage price's time on the subscription.
- The order facts were recorded in does not matter when their moments differ.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from fractions import Fraction

from hypothesis import assume, given
from hypothesis import strategies as st

from tally.core.periods import Interval, IntervalUnit, Period
from tally.core.subscriptions import (
    AnchorKind,
    BillingAnchor,
    BillingEvent,
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
    SubscriptionStatus,
    Timeline,
    TimelineEntry,
    TrialUsage,
    billing_events,
    state_at,
)
from tests.core.subscriptions.builders import MONTH, QUARTER, WEEK, exact_amount, fee, usage, utc

ZONES = ["UTC", "America/New_York", "Europe/Berlin"]
INTERVALS = [MONTH, WEEK, QUARTER, Interval(IntervalUnit.DAY, 3)]
ANCHORS = [
    BillingAnchor(AnchorKind.ANNIVERSARY),
    BillingAnchor(AnchorKind.CALENDAR),
    BillingAnchor(AnchorKind.DAY_OF_MONTH, 31),
    BillingAnchor(AnchorKind.DAY_OF_MONTH, 15),
]
DAY_SECONDS = 86_400
HORIZON = timedelta(days=700)


@st.composite
def timelines(
    draw: st.DrawFn,
    *,
    zones: list[str] = ZONES,
    basis: ProrationBasis | None = None,
    whole_days: bool = False,
    prorate_always: bool = True,
) -> Timeline:
    """A valid random timeline: a seat fee, an add-on fee toggled on and off, and a usage price."""
    step = DAY_SECONDS if whole_days else 1

    def gap(days_max: int, minimum: int = 0) -> timedelta:
        return timedelta(seconds=draw(st.integers(minimum, days_max * DAY_SECONDS // step)) * step)

    tz = draw(st.sampled_from(zones))
    interval = draw(st.sampled_from(INTERVALS))
    seat = fee("seat", draw(st.sampled_from(["29.99", "10", "0.07"])), interval)
    addon = fee("addon", "5", draw(st.sampled_from(INTERVALS)))
    tokens = usage("tokens", draw(st.sampled_from(INTERVALS)))
    start = utc(2024, 1, 1) + gap(400)
    trial = draw(st.none() | st.integers(1, 40))
    quantity = draw(st.integers(0, 5))
    entries: list[TimelineEntry] = [
        Started(
            effective_at=start,
            items=(fee("seat", str(seat.unit_amount), interval, quantity), tokens),
            timezone=tz,
            anchor=draw(st.sampled_from(ANCHORS)),
            trial_end=None if trial is None else start + timedelta(days=trial),
            trial_usage=draw(st.sampled_from(TrialUsage)),
            proration_basis=basis or draw(st.sampled_from(ProrationBasis)),
        )
    ]
    moment, paused, cancel_at, with_addon = start, False, None, False
    for _ in range(draw(st.integers(0, 8))):
        moment += gap(50)
        if cancel_at is not None and cancel_at <= moment:
            break
        prorate = True if prorate_always else draw(st.booleans())
        options = ["quantity", "items", "resume" if paused else "pause", "unschedule" if cancel_at else "schedule"]
        match draw(st.sampled_from([*options, "cancel"] if draw(st.integers(0, 9)) == 0 else options)):
            case "quantity":
                quantity = draw(st.integers(0, 5))
                entries.append(
                    QuantityChanged(effective_at=moment, price_id="seat", quantity=quantity, prorate=prorate)
                )
            case "items":
                with_addon = not with_addon
                items = (fee("seat", str(seat.unit_amount), interval, quantity), tokens)
                entries.append(
                    ItemsChanged(effective_at=moment, items=(*items, addon) if with_addon else items, prorate=prorate)
                )
            case "pause":
                paused = True
                entries.append(Paused(effective_at=moment))
            case "resume":
                paused = False
                entries.append(Resumed(effective_at=moment))
            case "schedule":
                cancel_at = moment + gap(90, minimum=1)
                entries.append(CancelScheduled(effective_at=moment, ends_at=cancel_at, prorate=prorate))
            case "unschedule":
                cancel_at = None
                entries.append(CancelUnscheduled(effective_at=moment))
            case _:
                entries.append(Canceled(effective_at=moment, prorate=prorate))
                break
    return Timeline("sub_p", tuple(entries))


def through_of(timeline: Timeline) -> datetime:
    return timeline.history.start + HORIZON


def by_price_period(events: tuple[BillingEvent, ...]) -> dict[tuple[str, Period], list[BillingEvent]]:
    grouped: dict[tuple[str, Period], list[BillingEvent]] = defaultdict(list)
    for event in events:
        if event.amount is not None:
            grouped[(event.price_id, event.period)].append(event)
    return grouped


def moments_of(timeline: Timeline) -> set[datetime]:
    found: set[datetime] = set()
    for entry in timeline.entries:
        found.add(entry.effective_at)
        if isinstance(entry, CancelScheduled):
            found.add(entry.ends_at)
        if isinstance(entry, Started) and entry.trial_end is not None:
            found.add(entry.trial_end)
    return found


@given(timelines())
def test_fee_events_of_a_period_sum_to_the_fee_of_each_billable_segment(timeline: Timeline) -> None:
    through = through_of(timeline)
    result = billing_events(timeline, through=through)
    basis = timeline.history.started.proration_basis
    billed = by_price_period(result.events)
    moments = moments_of(timeline)
    for price in result.periods:
        if price.kind.value != "fixed":
            continue
        definition = timeline.history.prices[price.price_id]
        assert definition.unit_amount is not None
        cycle = timeline.history.cycle(definition.interval)
        for period in price.periods:
            if period.end > through:
                continue
            cuts = sorted({period.start, period.end} | {m for m in moments if period.start < m < period.end})
            total = cycle.position(period, period.end, basis)
            expected = Fraction(0)
            for a, b in itertools.pairwise(cuts):
                state = state_at(timeline, a)
                in_trial = state.trial_end is not None and a < state.trial_end
                if in_trial or state.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED):
                    continue
                held = [item.quantity for item in state.items if item.price_id == price.price_id]
                units = cycle.position(period, b, basis) - cycle.position(period, a, basis)
                expected += Fraction(definition.unit_amount) * sum(held) * Fraction(units, total)
            found = sum((exact_amount(event) for event in billed.get((price.price_id, period), [])), Fraction(0))
            assert found == expected, (price.price_id, period)


@given(timelines(prorate_always=False))
def test_credits_never_exceed_what_was_charged(timeline: Timeline) -> None:
    result = billing_events(timeline, through=through_of(timeline))
    for (_price_id, _period), events in by_price_period(result.events).items():
        running = Fraction(0)
        charges: list[BillingEvent] = []
        largest = Fraction(0)
        for event in events:
            amount = exact_amount(event)
            running += amount
            assert running >= 0
            if event.kind is BillingEventKind.FIXED_FEE:
                charges.append(event)
                largest = max(largest, Fraction(event.unit_amount or 0) * (event.quantity or 0))
            else:
                assert amount <= 0
                assert any(
                    charge.quantity == event.quantity
                    and charge.service_period.start <= event.service_period.start
                    and charge.service_period.end == event.service_period.end
                    for charge in charges
                )
                # Rounded once each, a credit never exceeds its charge either.
                assert all(
                    abs(event.amount_minor() or 0) <= (charge.amount_minor() or 0)
                    for charge in charges
                    if charge.quantity == event.quantity and charge.service_period.start <= event.service_period.start
                )
        assert running <= largest


@given(timelines(prorate_always=False), st.integers(0, 700 * DAY_SECONDS))
def test_events_due_by_a_moment_never_change_later(timeline: Timeline, offset: int) -> None:
    through = through_of(timeline)
    moment = timeline.history.start + timedelta(seconds=offset)
    later = billing_events(timeline, through=through).events
    assert billing_events(timeline, through=moment).events == tuple(e for e in later if e.due_at <= moment)


@given(st.data())
def test_second_and_day_bases_agree_on_whole_day_changes(data: st.DataObject) -> None:
    by_day = data.draw(timelines(zones=["UTC"], basis=ProrationBasis.DAY, whole_days=True, prorate_always=False))
    started = by_day.entries[0]
    assert isinstance(started, Started)
    assume(started.anchor.kind is not AnchorKind.ANNIVERSARY or started.effective_at.hour == 0)
    by_second = Timeline(
        by_day.subscription_id,
        (replace(started, proration_basis=ProrationBasis.SECOND), *by_day.entries[1:]),
    )
    through = through_of(by_day)

    def amounts(timeline: Timeline) -> list[tuple[object, Fraction | None]]:
        events = billing_events(timeline, through=through).events
        return [(event.key, None if event.amount is None else exact_amount(event)) for event in events]

    assert amounts(by_day) == amounts(by_second)


@given(timelines(prorate_always=False))
def test_usage_windows_tile_the_usage_price_time_on_the_subscription(timeline: Timeline) -> None:
    through = through_of(timeline)
    result = billing_events(timeline, through=through)
    history = timeline.history
    end = history.ended_at or through
    tokens = next(price for price in result.periods if price.price_id == "tokens")
    windows = sorted(
        (event.service_period for event in result.events if event.price_id == "tokens"),
        key=lambda period: period.start,
    )
    for period in tokens.periods:
        span = Period(max(period.start, history.start), min(period.end, end))
        if period.end > through or span.start >= span.end:
            continue
        inside = [window for window in windows if span.start <= window.start < span.end]
        assert inside[0].start == span.start
        assert inside[-1].end == span.end
        for before, after in itertools.pairwise(inside):
            assert before.end == after.start


@given(timelines(prorate_always=False), st.randoms(use_true_random=False))
def test_recording_order_does_not_matter_when_moments_differ(timeline: Timeline, random: object) -> None:
    changes = list(timeline.entries[1:])
    assume(len({entry.effective_at for entry in timeline.entries}) == len(timeline.entries))
    random.shuffle(changes)  # type: ignore[attr-defined]
    shuffled = Timeline(timeline.subscription_id, (*changes, timeline.entries[0]))
    through = through_of(timeline)
    assert billing_events(shuffled, through=through) == billing_events(timeline, through=through)
