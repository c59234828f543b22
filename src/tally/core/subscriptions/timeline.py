"""The subscription timeline: immutable facts in, the subscription's state at any moment out.

A `Timeline` is a subscription id and its entries in the order they were recorded. Each entry is a
fact with the moment it takes effect (`effective_at`); the timeline reads them in time order (ties
keep recording order), so a change recorded today for next month, and another recorded tomorrow
for this week, both land where they belong. Nothing is ever edited: a mistake is corrected by a new
entry (an undone cancel is a `CancelUnscheduled`, not a deleted `CancelScheduled`; a scheduled
change taken back before it takes effect is a `Withdrawn` naming it, and the fold skips both).

"At period end" is resolved before recording: the app asks `current_period_end(timeline, now)` and
records the change with that `effective_at`. The recorded fact is then explicit and never moves.

Folding the entries (`Timeline.history`) validates them, in time order, with stable codes, and
yields `Step`s: from `Step.at` until the next step, the subscription has these items in this phase.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tally.core.frozen import quick_init
from tally.core.money import Unit
from tally.core.periods import Interval
from tally.core.rating.models import BillingTiming
from tally.core.rejections import InvariantViolation, Rejected, require
from tally.core.subscriptions.cycles import BillingAnchor, BillingCycle, ProrationBasis, check_moment, zone

ITEMS_MAX = 20
ENTRIES_MAX = 1_000
QUANTITY_MAX = 1_000_000_000
PRICE_ID_LENGTH_MAX = 255
SUBSCRIPTION_ID_LENGTH_MAX = 255


class ItemKind(StrEnum):
    # A recurring fee: unit_amount × quantity per period, billed in advance (default) or in arrears.
    FIXED = "fixed"
    # Usage of a meter, rated and billed in arrears per period.
    USAGE = "usage"


class TrialUsage(StrEnum):
    # Usage during a trial is billed like any other usage (the trial waives fixed fees only).
    BILLED = "billed"
    # Usage during a trial is not billed; its spans are reported as `trial` events instead.
    FREE = "free"


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionItem:
    """One price on a subscription. A later integration maps catalog prices to this.

    A subscription holds a price at most once, so `price_id` identifies the item. A price id means
    the same kind, interval, currency and unit amount everywhere in one timeline (catalog prices
    are immutable; a new amount is a new price).
    """

    price_id: str
    kind: ItemKind
    interval: Interval
    currency: Unit
    # Fixed fees: the exact amount per period per unit, in major units. None for usage.
    unit_amount: Decimal | None = None
    # Fixed fees: seats or units. Usage items have no quantity of their own (always 1).
    quantity: int = 1
    # When a period is billed. Default (None): in advance for fixed fees, in arrears for usage. A
    # fixed fee in arrears is billed at the end of each span it was held, for that span only.
    billing_timing: BillingTiming | None = None

    def __post_init__(self) -> None:
        if isinstance(self.unit_amount, float) or isinstance(self.quantity, float):
            raise TypeError("float is never used for money or quantities; pass a Decimal or an int")
        if (
            not isinstance(self.price_id, str)
            or not 1 <= len(self.price_id) <= PRICE_ID_LENGTH_MAX
            or self.price_id.strip() != self.price_id
        ):
            raise Rejected.because(
                "price_id_invalid", f"a price id is 1 to {PRICE_ID_LENGTH_MAX} characters, no edge spaces", "price_id"
            )
        if self.kind is ItemKind.FIXED:
            if self.unit_amount is None:
                raise Rejected.because("unit_amount_required", "a fixed fee needs a unit amount", "unit_amount")
            if not isinstance(self.unit_amount, Decimal):
                raise Rejected.because("unit_amount_must_be_decimal", "a unit amount is a Decimal", "unit_amount")
            if not self.unit_amount.is_finite():
                raise Rejected.because("unit_amount_must_be_finite", "a unit amount is a finite number", "unit_amount")
            if self.unit_amount < 0:
                raise Rejected.because(
                    "unit_amount_must_not_be_negative", "a unit amount is zero or more", "unit_amount"
                )
        else:
            if self.unit_amount is not None:
                raise Rejected.because(
                    "unit_amount_not_allowed", "usage is rated by its price, not a unit amount", "unit_amount"
                )
            if self.quantity != 1:
                raise Rejected.because("quantity_applies_to_fixed_fees", "only fixed fees have a quantity", "quantity")
        if type(self.quantity) is not int or not 0 <= self.quantity <= QUANTITY_MAX:
            raise Rejected.because("quantity_out_of_range", f"a quantity is 0 to {QUANTITY_MAX}", "quantity")
        timing = self.billing_timing
        if timing is None:
            timing = BillingTiming.IN_ADVANCE if self.kind is ItemKind.FIXED else BillingTiming.IN_ARREARS
        object.__setattr__(self, "billing_timing", BillingTiming(timing))
        if self.kind is ItemKind.USAGE and self.billing_timing is BillingTiming.IN_ADVANCE:
            raise Rejected.because(
                "usage_must_be_billed_in_arrears", "usage is known only once it happened", "billing_timing"
            )

    @property
    def timing(self) -> BillingTiming:
        """`billing_timing`, always set once constructed (the kind's default when not given)."""
        require(self.billing_timing is not None, "an item's timing is set on construction")
        return self.billing_timing or BillingTiming.IN_ADVANCE

    @property
    def in_arrears(self) -> bool:
        return self.timing is BillingTiming.IN_ARREARS

    @property
    def definition(self) -> tuple[ItemKind, Interval, Unit, Decimal | None, BillingTiming | None]:
        """What a price id stands for; the quantity is the subscription's, not the price's."""
        return (self.kind, self.interval, self.currency, self.unit_amount, self.billing_timing)


# ----- entries: a closed union of facts ---------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    """The subscription begins. Its anchor, time zone and proration basis hold for its lifetime."""

    effective_at: datetime
    items: tuple[SubscriptionItem, ...]
    timezone: str = "UTC"
    anchor: BillingAnchor = field(default_factory=BillingAnchor)
    # Fixed fees are waived in [effective_at, trial_end); the anchor does not move at its end.
    trial_end: datetime | None = None
    trial_usage: TrialUsage = TrialUsage.BILLED
    proration_basis: ProrationBasis = ProrationBasis.SECOND

    def __post_init__(self) -> None:
        check_moment(self.effective_at, "effective_at")
        zone(self.timezone)
        _check_items(self.items, "items")
        if self.trial_end is not None:
            check_moment(self.trial_end, "trial_end")
            if self.trial_end <= self.effective_at:
                raise Rejected.because("trial_must_end_after_start", "a trial ends after the start", "trial_end")


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemsChanged:
    """From `effective_at` the subscription holds exactly `items` (an upgrade, downgrade, migration).

    With `prorate`, fixed fees already billed for the current period are credited for the unused
    part and the new fees charged for the rest of it. Without, nothing is credited or charged for
    the current period: new fees start at their next period boundary.
    """

    effective_at: datetime
    items: tuple[SubscriptionItem, ...]
    prorate: bool = True

    def __post_init__(self) -> None:
        check_moment(self.effective_at, "effective_at")
        _check_items(self.items, "items")


@dataclass(frozen=True, slots=True, kw_only=True)
class QuantityChanged:
    effective_at: datetime
    price_id: str
    quantity: int
    prorate: bool = True

    def __post_init__(self) -> None:
        check_moment(self.effective_at, "effective_at")
        if isinstance(self.quantity, float):
            raise TypeError("float is never used for money or quantities; pass an int")
        if type(self.quantity) is not int or not 0 <= self.quantity <= QUANTITY_MAX:
            raise Rejected.because("quantity_out_of_range", f"a quantity is 0 to {QUANTITY_MAX}", "quantity")


@dataclass(frozen=True, slots=True, kw_only=True)
class Paused:
    """No billing from `effective_at` until resumed: fees are credited for the rest of the period."""

    effective_at: datetime

    def __post_init__(self) -> None:
        check_moment(self.effective_at, "effective_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed:
    """Billing continues on the same anchor: the rest of the current period is charged, prorated."""

    effective_at: datetime

    def __post_init__(self) -> None:
        check_moment(self.effective_at, "effective_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelScheduled:
    """Requested at `effective_at`, the subscription ends at `ends_at` (usually a period end)."""

    effective_at: datetime
    ends_at: datetime
    prorate: bool = True

    def __post_init__(self) -> None:
        check_moment(self.effective_at, "effective_at")
        check_moment(self.ends_at, "ends_at")
        if self.ends_at <= self.effective_at:
            raise Rejected.because(
                "cancel_must_end_after_request", "a scheduled cancel ends after it is requested", "ends_at"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelUnscheduled:
    """Undo a scheduled cancel before it takes effect."""

    effective_at: datetime

    def __post_init__(self) -> None:
        check_moment(self.effective_at, "effective_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdrawn:
    """A fact recorded earlier is taken back before it takes effect.

    `withdraws` is the withdrawn fact's position in recording order (its sequence); `effective_at`
    is when the withdrawal is made. The withdrawn fact must still lie ahead then: what has taken
    effect may have been billed, and is corrected by a new fact instead. The timeline then reads
    as if the withdrawn fact had never been recorded; both stay on record.
    """

    effective_at: datetime
    withdraws: int

    def __post_init__(self) -> None:
        check_moment(self.effective_at, "effective_at")
        if isinstance(self.withdraws, bool) or type(self.withdraws) is not int or not 0 <= self.withdraws < ENTRIES_MAX:
            raise Rejected.because(
                "change_not_found", f"a withdrawal names a fact by its sequence, 0 to {ENTRIES_MAX - 1}", "withdraws"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Canceled:
    """The subscription ends now; with `prorate`, the unused part of fees billed is credited."""

    effective_at: datetime
    prorate: bool = True

    def __post_init__(self) -> None:
        check_moment(self.effective_at, "effective_at")


TimelineEntry = (
    Started
    | ItemsChanged
    | QuantityChanged
    | Paused
    | Resumed
    | CancelScheduled
    | CancelUnscheduled
    | Canceled
    | Withdrawn
)


def _check_items(items: Sequence[SubscriptionItem], field: str) -> None:
    if not isinstance(items, tuple):
        raise Rejected.because("items_must_be_a_tuple", "items are an immutable tuple", field)
    if not items:
        raise Rejected.because("items_required", "a subscription holds at least one price", field)
    if len(items) > ITEMS_MAX:
        raise Rejected.because("items_exceed_limit", f"a subscription holds at most ITEMS_MAX = {ITEMS_MAX}", field)
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.price_id in seen:
            raise Rejected.because(
                "price_ids_must_be_distinct", f"{item.price_id} appears twice", f"{field}[{index}].price_id"
            )
        seen.add(item.price_id)
        if item.currency != items[0].currency:
            raise Rejected.because(
                "items_must_share_a_currency",
                f"{item.price_id} is in {item.currency.code}, not {items[0].currency.code}",
                f"{field}[{index}].currency",
            )


# ----- the fold ---------------------------------------------------------------------------------


class Phase(StrEnum):
    TRIAL = "trial"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Step:
    """From `at` until the next step: these items, in this phase.

    `prorate` says whether fixed fees are prorated at this change; when several facts coincide at
    one moment it is true if any of them asks for proration. `cancel_at` is a scheduled end still
    pending from this step on.
    """

    at: datetime
    phase: Phase
    items: tuple[SubscriptionItem, ...]
    prorate: bool
    cancel_at: datetime | None

    def item(self, price_id: str) -> SubscriptionItem | None:
        for item in self.items:
            if item.price_id == price_id:
                return item
        return None


@quick_init
@dataclass(frozen=True, slots=True)
class History:
    """The validated timeline: the start fact, the steps in time order, the end if known."""

    started: Started
    steps: tuple[Step, ...]
    ended_at: datetime | None
    # Every price the subscription ever held, by price id (sorted), as first seen.
    prices: Mapping[str, SubscriptionItem]
    # Positions (in recording order) of the facts taken back by a `Withdrawn`: the steps ignore them.
    withdrawn: frozenset[int] = frozenset()

    @property
    def start(self) -> datetime:
        return self.started.effective_at

    def step_at(self, moment: datetime) -> Step | None:
        """The step in force at `moment`, or None before the start."""
        index = bisect.bisect_right([step.at for step in self.steps], moment) - 1
        return self.steps[index] if index >= 0 else None

    def cycle(self, interval: Interval) -> BillingCycle:
        return BillingCycle.for_subscription(
            anchor=self.started.anchor,
            interval=interval,
            start=self.start,
            timezone=zone(self.started.timezone),
        )


@dataclass(frozen=True, slots=True)
class Timeline:
    """A subscription's facts in recording order. Validates itself on construction."""

    subscription_id: str
    entries: tuple[TimelineEntry, ...]
    history: History = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "history", _fold(self.subscription_id, self.entries))


def _fold(subscription_id: str, entries: tuple[TimelineEntry, ...]) -> History:
    if not isinstance(subscription_id, str) or not 1 <= len(subscription_id) <= SUBSCRIPTION_ID_LENGTH_MAX:
        raise Rejected.because(
            "subscription_id_invalid", f"a subscription id is 1 to {SUBSCRIPTION_ID_LENGTH_MAX} characters", "id"
        )
    if len(entries) > ENTRIES_MAX:
        raise Rejected.because(
            "timeline_entries_exceed_limit", f"a timeline holds at most ENTRIES_MAX = {ENTRIES_MAX}", "entries"
        )
    starts = [index for index, entry in enumerate(entries) if isinstance(entry, Started)]
    if not starts:
        raise Rejected.because("timeline_must_begin_with_start", "the first fact is the start", "entries")
    if len(starts) > 1:
        raise Rejected.because("subscription_already_started", "a subscription starts once", f"entries[{starts[1]}]")
    withdrawn = _withdrawals(entries)
    # The facts that count: neither a withdrawal nor withdrawn.
    live = [index for index, entry in enumerate(entries) if index not in withdrawn and not isinstance(entry, Withdrawn)]
    # Time order; at one moment the start comes first, then the order of recording.
    order = sorted(
        live,
        key=lambda index: (entries[index].effective_at, not isinstance(entries[index], Started), index),
    )
    if order[0] != starts[0]:
        raise Rejected.because(
            "change_dated_before_start",
            "a change cannot take effect before the subscription starts",
            f"entries[{order[0]}].effective_at",
        )
    history = _Folder(entries[starts[0]]).fold(entries, order)  # type: ignore[arg-type]
    return replace(history, withdrawn=frozenset(withdrawn))


def _withdrawals(entries: tuple[TimelineEntry, ...]) -> set[int]:
    """The positions of withdrawn facts, each withdrawal checked in recording order.

    Precedence per withdrawal: `change_not_found` (it must name a fact recorded before it),
    `change_not_withdrawable` (a start or another withdrawal), `change_already_withdrawn`,
    `change_already_in_effect` (the fact takes effect at or before the withdrawal).
    """
    withdrawn: set[int] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, Withdrawn):
            continue
        where = f"entries[{index}].withdraws"
        target = entry.withdraws
        if target >= index:
            raise Rejected.because("change_not_found", f"no fact {target} was recorded before this withdrawal", where)
        fact = entries[target]
        if isinstance(fact, Started | Withdrawn):
            raise Rejected.because(
                "change_not_withdrawable",
                "the start and withdrawals cannot be withdrawn; cancel the subscription instead",
                where,
            )
        if target in withdrawn:
            raise Rejected.because("change_already_withdrawn", f"fact {target} is withdrawn already", where)
        if fact.effective_at <= entry.effective_at:
            raise Rejected.because(
                "change_already_in_effect",
                f"fact {target} took effect at {fact.effective_at.isoformat()}; correct it with a new change",
                where,
            )
        withdrawn.add(target)
    return withdrawn


class _Folder:
    """The walk over entries in time order, with the trial end and a scheduled end as extra points."""

    def __init__(self, started: Started) -> None:
        self.started = started
        self.currency = started.items[0].currency
        self.items: dict[str, SubscriptionItem] = {}
        self.prices: dict[str, SubscriptionItem] = {}
        self.paused = False
        self.ended_at: datetime | None = None
        self.trial_pending = started.trial_end
        self.cancel: CancelScheduled | None = None
        self.steps: list[Step] = []

    def fold(self, entries: tuple[TimelineEntry, ...], order: list[int]) -> History:
        for index in order:
            entry = entries[index]
            where = f"entries[{index}]"
            self.flush(entry.effective_at)
            if self.ended_at is not None:
                raise Rejected.because(
                    "change_dated_after_end",
                    f"the subscription ended at {self.ended_at.isoformat()}",
                    f"{where}.effective_at",
                )
            self.apply(entry, where)
        self.flush(None)
        prices = {price_id: self.prices[price_id] for price_id in sorted(self.prices)}
        return History(self.started, tuple(self.steps), self.ended_at, prices)

    def apply(self, entry: TimelineEntry, where: str) -> None:
        at = entry.effective_at
        match entry:
            case Started():
                self.set_items(entry.items, f"{where}.items")
                self.emit(at, prorate=True)
            case ItemsChanged():
                self.set_items(entry.items, f"{where}.items")
                self.emit(at, prorate=entry.prorate)
            case QuantityChanged():
                item = self.items.get(entry.price_id)
                if item is None:
                    raise Rejected.because(
                        "price_not_in_subscription",
                        f"{entry.price_id} is not on the subscription at {at.isoformat()}",
                        f"{where}.price_id",
                    )
                if item.kind is not ItemKind.FIXED:
                    raise Rejected.because(
                        "quantity_applies_to_fixed_fees", "only fixed fees have a quantity", f"{where}.price_id"
                    )
                self.items[entry.price_id] = replace(item, quantity=entry.quantity)
                self.emit(at, prorate=entry.prorate)
            case Paused():
                if self.paused:
                    raise Rejected.because("subscription_already_paused", "it is paused already", where)
                self.paused = True
                self.emit(at, prorate=True)
            case Resumed():
                if not self.paused:
                    raise Rejected.because("subscription_not_paused", "only a paused subscription resumes", where)
                self.paused = False
                self.emit(at, prorate=True)
            case CancelScheduled():
                if self.cancel is not None:
                    raise Rejected.because(
                        "cancel_already_scheduled",
                        f"it already ends at {self.cancel.ends_at.isoformat()}",
                        where,
                    )
                self.cancel = entry
                self.emit(at, prorate=True)
            case CancelUnscheduled():
                if self.cancel is None:
                    raise Rejected.because("cancel_not_scheduled", "there is no scheduled cancel to undo", where)
                self.cancel = None
                self.emit(at, prorate=True)
            case Canceled():
                self.cancel = None
                self.ended_at = at
                self.emit(at, prorate=entry.prorate)
            case Withdrawn():  # pragma: no cover - withdrawals are taken out before the fold
                raise InvariantViolation("withdrawals are not folded")

    def set_items(self, items: tuple[SubscriptionItem, ...], where: str) -> None:
        for index, item in enumerate(items):
            if item.currency != self.currency:
                raise Rejected.because(
                    "currency_must_match_subscription",
                    f"the subscription bills in {self.currency.code}",
                    f"{where}[{index}].currency",
                )
            known = self.prices.setdefault(item.price_id, item)
            if known.definition != item.definition:
                raise Rejected.because(
                    "price_definition_must_not_change",
                    f"{item.price_id} was {known.kind} every {known.interval.count} {known.interval.unit} "
                    f"at {known.unit_amount}, {known.billing_timing}; a different price needs a different id",
                    f"{where}[{index}]",
                )
        self.items = {item.price_id: item for item in items}

    def flush(self, until: datetime | None) -> None:
        """Apply the trial end and a scheduled end that fall at or before `until` (None: all)."""
        while True:
            points: list[tuple[datetime, int]] = []
            if self.cancel is not None and (until is None or self.cancel.ends_at <= until):
                points.append((self.cancel.ends_at, 0))
            if self.trial_pending is not None and (until is None or self.trial_pending <= until):
                points.append((self.trial_pending, 1))
            if not points:
                return
            at, which = min(points)
            if which == 0 and self.cancel is not None:
                prorate = self.cancel.prorate
                self.cancel = None
                self.ended_at = at
                self.emit(at, prorate=prorate)
            else:
                self.trial_pending = None
                if self.ended_at is None:
                    self.emit(at, prorate=True)
                else:
                    return

    def emit(self, at: datetime, *, prorate: bool) -> None:
        if self.ended_at is not None:
            phase = Phase.ENDED
        elif self.paused:
            phase = Phase.PAUSED
        elif self.started.trial_end is not None and at < self.started.trial_end:
            phase = Phase.TRIAL
        else:
            phase = Phase.ACTIVE
        cancel_at = self.cancel.ends_at if self.cancel is not None else None
        step = Step(at, phase, tuple(self.items.values()), prorate, cancel_at)
        if self.steps and self.steps[-1].at == at:
            step = replace(step, prorate=prorate or self.steps[-1].prorate)
            self.steps[-1] = step
        else:
            require(not self.steps or self.steps[-1].at < at, "steps are folded in time order")
            self.steps.append(step)


# ----- the state at a moment ----------------------------------------------------------------------


class SubscriptionStatus(StrEnum):
    NOT_STARTED = "not_started"
    TRIALING = "trialing"
    ACTIVE = "active"
    # Set from outside: payments decide that an invoice is overdue (see `state_at`).
    PAST_DUE = "past_due"
    PAUSED = "paused"
    # Canceled, with its end still ahead (cancel at period end); becomes `ended` at `cancel_at`.
    CANCELED = "canceled"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    status: SubscriptionStatus
    items: tuple[SubscriptionItem, ...]
    trial_end: datetime | None
    cancel_at: datetime | None
    ended_at: datetime | None


def state_at(timeline: Timeline, at: datetime, *, payment_overdue: bool = False) -> SubscriptionState:
    """The subscription at `at`. `payment_overdue` is the payments issue's input for `past_due`.

    Precedence: ended, not started, paused, past due, canceled (end pending), trialing, active.
    """
    check_moment(at, "at")
    history = timeline.history
    step = history.step_at(at)
    trial_end = history.started.trial_end
    if step is None:
        return SubscriptionState(SubscriptionStatus.NOT_STARTED, history.started.items, trial_end, None, None)
    ended_at = history.ended_at if step.phase is Phase.ENDED else None
    if step.phase is Phase.ENDED:
        status = SubscriptionStatus.ENDED
    elif step.phase is Phase.PAUSED:
        status = SubscriptionStatus.PAUSED
    elif payment_overdue:
        status = SubscriptionStatus.PAST_DUE
    elif step.cancel_at is not None:
        status = SubscriptionStatus.CANCELED
    elif trial_end is not None and at < trial_end:
        status = SubscriptionStatus.TRIALING
    else:
        status = SubscriptionStatus.ACTIVE
    return SubscriptionState(status, step.items, trial_end, step.cancel_at, ended_at)


def current_period_end(timeline: Timeline, at: datetime) -> datetime:
    """When "at period end" falls for a change requested at `at`: the end of the current term.

    The term is the period of the longest interval among the fixed fees held at `at` (what the
    customer prepaid; an annual plan with monthly usage ends its term yearly), or among all items
    when there are no fixed fees. A request before the start counts from the start.
    """
    check_moment(at, "at")
    history = timeline.history
    moment = max(at, history.start)
    step = history.step_at(moment)
    require(step is not None, "a moment at or after the start has a step")
    if step is None or step.phase is Phase.ENDED:
        raise Rejected.because("change_dated_after_end", "the subscription has ended", "at")
    fixed = [item for item in step.items if item.kind is ItemKind.FIXED]
    longest = max(fixed or step.items, key=lambda item: (interval_length_estimate(item.interval), item.price_id))
    return history.cycle(longest.interval).period_containing(moment).end


def interval_length_estimate(interval: Interval) -> tuple[int, int]:
    """An order of intervals by length: about how many days, then month-based before day-based."""
    months, days = interval.months, interval.days
    # Month-based intervals win ties against day-based ones of about the same length.
    if months is not None:
        return (months * 31, 1)
    return (days or 0, 0)


def scheduled_changes(timeline: Timeline, at: datetime) -> tuple[int, ...]:
    """The positions (in recording order) of the facts still ahead at `at` that can be withdrawn.

    A fact is scheduled when it takes effect after `at` and is not withdrawn; the start and
    withdrawals themselves are not changes. In time order, ties in recording order.
    """
    check_moment(at, "at")
    withdrawn = timeline.history.withdrawn
    pending = [
        index
        for index, entry in enumerate(timeline.entries)
        if entry.effective_at > at and index not in withdrawn and not isinstance(entry, Started | Withdrawn)
    ]
    return tuple(sorted(pending, key=lambda index: (timeline.entries[index].effective_at, index)))
