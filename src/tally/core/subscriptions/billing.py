"""Billing events: what a subscription's timeline makes billable, period by period, up to a moment.

`billing_events(timeline, through=…)` walks every price the subscription ever held over the
periods of that price's own cycle and returns the events that are due at or before `through`:

- `fixed_fee`: a fixed fee billed in advance for `[service start, period end)`, due at its start —
  the whole period at a boundary, or the prorated rest of it when the fee starts mid-period (a
  start on a calendar anchor, the end of a trial, a resume, an added price, a larger quantity).
- `fixed_fee_credit`: the unused part `[change, period end)` of a fee already charged for the
  period, negative, due at the change (a downgrade, a removed price, a pause, an immediate cancel).
- `fixed_fee` of a fee billed **in arrears**: one event per span of the period in which the fee was
  held at one quantity, for that span only (prorated), due at its end. Nothing was billed ahead,
  so nothing is ever credited.
- `usage`: a service window of a usage price, to be rated and billed in arrears, due at its end.
  Windows are cut at period boundaries and wherever the price stops or starts being billable.
- `trial` / `paused`: the windows of a price in which nothing is billed, due at their end, so
  invoicing can show them and flag usage that falls inside them.

Every event carries its identity (`BillingEvent.key`): subscription, price, kind and service
period. The same timeline always gives the same events, and an event due at `t` depends only on
the facts effective at or before `t`, so invoicing can recompute everything due and bill only what
is missing (see README.md).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from tally.core.frozen import quick_init
from tally.core.money import COMPUTATION_CONTEXT, RoundingMode, Unit, round_to_unit
from tally.core.periods import Interval, Period
from tally.core.rating.models import BillingTiming
from tally.core.rejections import Rejected, require
from tally.core.subscriptions.cycles import PERIODS_MAX, BillingCycle, ProrationBasis, check_moment
from tally.core.subscriptions.timeline import (
    History,
    ItemKind,
    Phase,
    SubscriptionItem,
    Timeline,
    TrialUsage,
    interval_length_estimate,
)

# Most events one call may return.
EVENTS_MAX = 100_000


class BillingEventKind(StrEnum):
    # In this order at one due moment: credits come before the charges that replace them.
    FIXED_FEE_CREDIT = "fixed_fee_credit"
    FIXED_FEE = "fixed_fee"
    USAGE = "usage"
    TRIAL = "trial"
    PAUSED = "paused"


_KIND_ORDER = {kind: position for position, kind in enumerate(BillingEventKind)}


@quick_init
@dataclass(frozen=True, slots=True)
class Proration:
    """The share of a period a fee covers: `units_used` of `units_in_period` seconds or days."""

    basis: ProrationBasis
    units_used: int
    units_in_period: int

    def __post_init__(self) -> None:
        require(0 <= self.units_used <= self.units_in_period, "a proration covers part of one period")
        require(self.units_in_period > 0, "a period has a length")

    @property
    def is_full(self) -> bool:
        return self.units_used == self.units_in_period

    @property
    def exact_fraction(self) -> Fraction:
        return Fraction(self.units_used, self.units_in_period)

    @property
    def fraction(self) -> Decimal:
        """The share as a Decimal: exact when it terminates, else to 60 significant digits."""
        return COMPUTATION_CONTEXT.divide(Decimal(self.units_used), Decimal(self.units_in_period))


@quick_init
@dataclass(frozen=True, slots=True)
class BillingEventKey:
    """What identifies a billing event across recomputations."""

    subscription_id: str
    price_id: str
    kind: BillingEventKind
    service_start: datetime
    service_end: datetime


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class BillingEvent:
    subscription_id: str
    price_id: str
    kind: BillingEventKind
    # The whole billing period of the price's cycle this event belongs to.
    period: Period
    # The part of `period` this event charges, credits, measures or marks.
    service_period: Period
    # When it becomes billable: the service start (in advance) or end (in arrears).
    due_at: datetime
    currency: Unit
    # Fixed fees and credits only.
    billing_timing: BillingTiming | None = None
    unit_amount: Decimal | None = None
    quantity: int | None = None
    proration: Proration | None = None
    # Exact: unit_amount × quantity × units_used / units_in_period, negative for credits. Usage
    # amounts come from rating, not from here; trial and paused windows have none.
    amount: Decimal | None = None

    @property
    def key(self) -> BillingEventKey:
        return BillingEventKey(
            self.subscription_id, self.price_id, self.kind, self.service_period.start, self.service_period.end
        )

    def amount_minor(self, mode: RoundingMode = RoundingMode.HALF_UP) -> int | None:
        """The amount in minor units through the one rounding function (for an invoice line)."""
        return None if self.amount is None else round_to_unit(self.amount, self.currency, mode)


@quick_init
@dataclass(frozen=True, slots=True)
class PricePeriods:
    """The periods of one price's cycle that overlap its time on the subscription, up to `through`."""

    price_id: str
    kind: ItemKind
    periods: tuple[Period, ...]


@dataclass(frozen=True, slots=True)
class InvoiceCycle:
    """From `effective_at` on (until the next one) the subscription's own billing periods are those
    of `cycle`: its anchor at the shortest interval among the items it holds, which is how often it
    is invoiced. Coupons count their periods on it (see tally.core.invoicing.discounts)."""

    effective_at: datetime
    cycle: BillingCycle


@dataclass(frozen=True, slots=True)
class BillingEvents:
    subscription_id: str
    through: datetime
    periods: tuple[PricePeriods, ...]
    # In order of (due_at, kind, price_id, service period).
    events: tuple[BillingEvent, ...]
    # The earliest moment after `through` at which a new event can become due (None: never).
    next_due_at: datetime | None
    # The subscription's billing periods over its whole timeline, in time order; the first one
    # takes effect at the start. A new one only where the shortest interval held changes.
    invoice_cycles: tuple[InvoiceCycle, ...]

    @property
    def started_at(self) -> datetime:
        return self.invoice_cycles[0].effective_at

    def invoice_cycle_at(self, moment: datetime) -> BillingCycle:
        """The subscription's billing periods at `moment` (before the start: those it starts with)."""
        found = self.invoice_cycles[0].cycle
        for step in self.invoice_cycles:
            if step.effective_at > moment:
                break
            found = step.cycle
        return found


def billing_events(timeline: Timeline, *, through: datetime) -> BillingEvents:
    """Every billing event of `timeline` due at or before `through`, in a fixed order."""
    check_moment(through, "through")
    history = timeline.history
    events: list[BillingEvent] = []
    all_periods: list[PricePeriods] = []
    next_due: list[datetime] = [step.at for step in history.steps if step.at > through]
    # Prices with one interval share one cycle, and with it the boundaries it has computed.
    cycles: dict[Interval, BillingCycle] = {}
    for price_id, price in history.prices.items():
        track = _PriceTrack.of(history, price)
        cycle = cycles.get(price.interval)
        if cycle is None:
            cycle = cycles[price.interval] = history.cycle(price.interval)
        periods = track.periods(cycle, through)
        all_periods.append(PricePeriods(price_id, price.kind, periods))
        walk = _PeriodWalk(timeline.subscription_id, price, cycle, history.started.proration_basis, through)
        for period in periods:
            if price.kind is ItemKind.FIXED:
                events.extend(walk.fixed(track, period))
            else:
                events.extend(walk.usage(track, period))
            if len(events) > EVENTS_MAX:
                raise Rejected.because(
                    "billing_events_exceed_limit",
                    f"more than EVENTS_MAX = {EVENTS_MAX} events are due; bill in shorter steps",
                    "through",
                )
        if track.value_at(through).state is not _State.ABSENT:
            next_due.append(cycle.period_containing(through).end)
    events.sort(
        key=lambda event: (
            event.due_at,
            _KIND_ORDER[event.kind],
            event.price_id,
            event.service_period.start,
            event.service_period.end,
        )
    )
    require(len({event.key for event in events}) == len(events), "billing event keys are unique")
    return BillingEvents(
        subscription_id=timeline.subscription_id,
        through=through,
        periods=tuple(all_periods),
        events=tuple(events),
        next_due_at=min(next_due) if next_due else None,
        invoice_cycles=_invoice_cycles(history, cycles),
    )


def _invoice_cycles(history: History, cycles: dict[Interval, BillingCycle]) -> tuple[InvoiceCycle, ...]:
    """The cycle of the shortest interval held, from each step where it changes. Every step holds
    items (an ended one keeps its last), so every moment from the start has one."""
    found: list[InvoiceCycle] = []
    for step in history.steps:
        interval = min((item.interval for item in step.items), key=interval_length_estimate)
        if found and found[-1].cycle.interval == interval:
            continue
        cycle = cycles.get(interval)
        if cycle is None:
            cycle = cycles[interval] = history.cycle(interval)
        found.append(InvoiceCycle(step.at, cycle))
    require(bool(found) and found[0].effective_at == history.start, "a subscription has billing periods from its start")
    return tuple(found)


# ----- one price over time ------------------------------------------------------------------------


class _State(StrEnum):
    ABSENT = "absent"
    TRIAL = "trial"
    PAUSED = "paused"
    # Billable: a fixed fee that is charged, or usage that is billed.
    ACTIVE = "active"


@quick_init
@dataclass(frozen=True, slots=True)
class _Value:
    state: _State
    quantity: int | None = None


_ABSENT = _Value(_State.ABSENT)
# The states a price is marked in (a trial or a pause window), with the mark's kind.
_MARKED_STATES = {_State.TRIAL: BillingEventKind.TRIAL, _State.PAUSED: BillingEventKind.PAUSED}


@quick_init
@dataclass(frozen=True, slots=True)
class _Change:
    at: datetime
    value: _Value
    prorate: bool


@quick_init
@dataclass(frozen=True, slots=True)
class _PriceTrack:
    """One price's value as a step function: absent before the first change."""

    changes: tuple[_Change, ...]
    # The moments of `changes`, for bisecting.
    moments: tuple[datetime, ...] = field(init=False, repr=False, compare=False)
    # Whether the price is ever in a trial or paused (only then has it trial or pause marks).
    marked: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "moments", tuple(change.at for change in self.changes))
        object.__setattr__(self, "marked", any(change.value.state in _MARKED_STATES for change in self.changes))

    @classmethod
    def of(cls, history: History, price: SubscriptionItem) -> _PriceTrack:
        usage_in_trial = history.started.trial_usage is TrialUsage.BILLED
        changes: list[_Change] = []
        previous = _ABSENT
        for step in history.steps:
            item = step.item(price.price_id)
            if item is None or step.phase is Phase.ENDED:
                value = _ABSENT
            elif step.phase is Phase.PAUSED:
                value = _Value(_State.PAUSED)
            elif item.kind is ItemKind.USAGE:
                billable = step.phase is Phase.ACTIVE or usage_in_trial
                value = _Value(_State.ACTIVE) if billable else _Value(_State.TRIAL)
            elif step.phase is Phase.TRIAL:
                value = _Value(_State.TRIAL)
            else:
                value = _Value(_State.ACTIVE, item.quantity)
            if value != previous:
                changes.append(_Change(step.at, value, step.prorate))
                previous = value
        return cls(tuple(changes))

    def value_at(self, moment: datetime) -> _Value:
        index = bisect.bisect_right(self.moments, moment) - 1
        return self.changes[index].value if index >= 0 else _ABSENT

    def within(self, period: Period) -> list[_Change]:
        """The changes strictly inside `period` (a change at its start is its starting value)."""
        low = bisect.bisect_right(self.moments, period.start)
        high = bisect.bisect_left(self.moments, period.end)
        return list(self.changes[low:high])

    def segments(self, period: Period) -> list[tuple[Period, _Value]]:
        """`period` cut at every change inside it, with the value over each piece."""
        pieces: list[tuple[Period, _Value]] = []
        start, value = period.start, self.value_at(period.start)
        for change in self.within(period):
            pieces.append((Period(start, change.at), value))
            start, value = change.at, change.value
        pieces.append((Period(start, period.end), value))
        return pieces

    def presence(self) -> list[tuple[datetime, datetime | None]]:
        """The maximal spans `[start, end)` in which the price is on the subscription (end None: open)."""
        spans: list[tuple[datetime, datetime | None]] = []
        opened: datetime | None = None
        for change in self.changes:
            if change.value.state is _State.ABSENT:
                if opened is not None:
                    spans.append((opened, change.at))
                    opened = None
            elif opened is None:
                opened = change.at
        if opened is not None:
            spans.append((opened, None))
        return spans

    def periods(self, cycle: BillingCycle, through: datetime) -> tuple[Period, ...]:
        """The cycle's periods overlapping the price's presence that start at or before `through`."""
        horizon = through + timedelta(microseconds=1)
        collected: list[Period] = []
        for start, end in self.presence():
            stop = horizon if end is None else min(end, horizon)
            if start >= stop:
                continue
            # The first period may repeat the last one collected; one extra keeps the limit exact.
            for period in cycle.periods(start, stop, limit=PERIODS_MAX - len(collected) + 1):
                if not collected or collected[-1] != period:
                    collected.append(period)
            if len(collected) > PERIODS_MAX:
                raise Rejected.because(
                    "billing_periods_exceed_limit",
                    f"more than PERIODS_MAX = {PERIODS_MAX} periods of one price are due; bill in shorter steps",
                    "through",
                )
        return tuple(collected)


@quick_init
@dataclass(frozen=True, slots=True)
class _PeriodWalk:
    """Events of one price in one period."""

    subscription_id: str
    price: SubscriptionItem
    cycle: BillingCycle
    basis: ProrationBasis
    through: datetime

    def fixed(self, track: _PriceTrack, period: Period) -> list[BillingEvent]:
        """Charges in advance as the period unfolds: the fee billed for the rest of the period is
        tracked, and each prorated change credits what was billed and charges the new fee."""
        if self.price.in_arrears:
            return self.arrears(track, period)
        events: list[BillingEvent] = []
        start_value = track.value_at(period.start)
        billed = start_value.quantity if start_value.state is _State.ACTIVE else None
        if billed:
            events.append(self._fee(period, period.start, billed, credit=False))
        for change in track.within(period):
            new = change.value.quantity if change.value.state is _State.ACTIVE else None
            if not change.prorate or new == billed:
                # Without proration the fee billed stands until the period ends; a fee added now
                # starts at the next boundary.
                continue
            if billed:
                events.append(self._fee(period, change.at, billed, credit=True))
            if new:
                events.append(self._fee(period, change.at, new, credit=False))
            billed = new
        events.extend(self._marks(track, period))
        return [event for event in events if event.due_at <= self.through]

    def arrears(self, track: _PriceTrack, period: Period) -> list[BillingEvent]:
        """A fee billed in arrears: each span of the period held at one quantity is charged at its
        end, for that span. `prorate` does not matter: nothing was billed ahead to credit or keep.
        A span of no whole unit (a change within the same billing day) bills nothing."""
        events = [
            self._arrears_fee(period, piece, value.quantity)
            for piece, value in track.segments(period)
            if value.state is _State.ACTIVE and value.quantity
        ]
        charged = [event for event in events if event.proration is not None and event.proration.units_used > 0]
        charged.extend(self._marks(track, period))
        return [event for event in charged if event.due_at <= self.through]

    def usage(self, track: _PriceTrack, period: Period) -> list[BillingEvent]:
        events = [
            self._window(period, piece, BillingEventKind.USAGE)
            for piece, value in track.segments(period)
            if value.state is _State.ACTIVE
        ]
        events.extend(self._marks(track, period))
        return [event for event in events if event.due_at <= self.through]

    def _marks(self, track: _PriceTrack, period: Period) -> list[BillingEvent]:
        if not track.marked:
            return []
        return [
            self._window(period, piece, _MARKED_STATES[value.state])
            for piece, value in track.segments(period)
            if value.state in _MARKED_STATES
        ]

    def _window(self, period: Period, piece: Period, kind: BillingEventKind) -> BillingEvent:
        return BillingEvent(
            subscription_id=self.subscription_id,
            price_id=self.price.price_id,
            kind=kind,
            period=period,
            service_period=piece,
            due_at=piece.end,
            currency=self.price.currency,
        )

    def _fee(self, period: Period, start: datetime, quantity: int, *, credit: bool) -> BillingEvent:
        """The fee in advance for `[start, period end)`, due at `start`: charged, or credited (negative)."""
        return self._charge(period, Period(start, period.end), quantity, due_at=start, credit=credit)

    def _arrears_fee(self, period: Period, service: Period, quantity: int | None) -> BillingEvent:
        require(quantity is not None, "a billable fixed fee has a quantity")
        return self._charge(period, service, quantity or 0, due_at=service.end, credit=False)

    def _charge(
        self, period: Period, service: Period, quantity: int, *, due_at: datetime, credit: bool
    ) -> BillingEvent:
        """The fee for `service` (part of `period`): `unit_amount × quantity × its share of the period`."""
        unit_amount = self.price.unit_amount
        require(unit_amount is not None, "fixed fees carry a unit amount")
        units_in_period = self.cycle.position(period, period.end, self.basis)
        units_used = self.cycle.position(period, service.end, self.basis) - self.cycle.position(
            period, service.start, self.basis
        )
        proration = Proration(self.basis, units_used, units_in_period)
        full = COMPUTATION_CONTEXT.multiply(unit_amount or Decimal(0), Decimal(quantity))
        if proration.is_full:
            amount = full
        else:
            amount = COMPUTATION_CONTEXT.divide(
                COMPUTATION_CONTEXT.multiply(full, Decimal(units_used)), Decimal(units_in_period)
            )
        return BillingEvent(
            subscription_id=self.subscription_id,
            price_id=self.price.price_id,
            kind=BillingEventKind.FIXED_FEE_CREDIT if credit else BillingEventKind.FIXED_FEE,
            period=period,
            service_period=service,
            due_at=due_at,
            currency=self.price.currency,
            billing_timing=self.price.billing_timing,
            unit_amount=unit_amount,
            quantity=quantity,
            proration=proration,
            amount=amount.copy_negate() if credit else amount,
        )
