"""/v1/subscriptions: customers on plan versions or prices, and every change to them as a timeline.

Reading needs `read`; creating and changing need `admin`. Every change is a new fact on the
subscription's timeline (`GET /v1/subscriptions/{id}/timeline`); nothing is edited. Times default to
the customer's clock (a test clock's time for a customer on one). `effective` is `now`,
`period_end` (the end of the current term) or a moment (a scheduled change, a phase).
`GET /v1/subscriptions/{id}/billing_events?through=…` answers what invoicing consumes. Changes
recorded for later are listed at `GET /v1/subscriptions/{id}/scheduled_changes` and taken back
before they take effect with `POST …/scheduled_changes/{sequence}/withdraw` (a new fact, too).
Every write answers the subscription with the facts it appended (`recorded`).
`POST /v1/subscriptions/{id}/billing_threshold` sets (or turns off, `amount_minor: null`) threshold
billing, also settable at create (`billing_threshold`); each setting is a fact of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field, StrictInt
from sqlalchemy import Engine

from tally.adapters import ids
from tally.adapters.clock import Clock
from tally.adapters.pagination import PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.schemas import ApiModel, ListResponse, Resource
from tally.app import subscription_queries
from tally.app._subscription_items import PlanChoice, PriceChoice
from tally.app._subscription_write import Effective, ItemOrigin, RecordedEntry, Subscription, When, origins_of
from tally.app.cancel_subscription import Cancellation, cancel_subscription
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.app.change_subscription_quantity import QuantityChange, change_subscription_quantity
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.migrate_subscriptions import Migration, migrate_subscriptions
from tally.app.pause_subscription import pause_subscription
from tally.app.resume_subscription import resume_subscription
from tally.app.set_billing_threshold import ThresholdChange, set_billing_threshold
from tally.app.unschedule_cancel import unschedule_cancel
from tally.app.withdraw_scheduled_change import withdraw_scheduled_change
from tally.bootstrap import Tally
from tally.core.periods import Period
from tally.core.rejections import Rejected
from tally.core.subscriptions import (
    ITEMS_MAX,
    BillingAnchor,
    BillingEvent,
    BillingEvents,
    Canceled,
    CancelScheduled,
    ItemsChanged,
    ProrationBasis,
    QuantityChanged,
    Started,
    SubscriptionItem,
    TrialUsage,
    Withdrawn,
)
from tally.core.subscriptions.cycles import AnchorKind

router = APIRouter(prefix="/subscriptions", tags=["Subscriptions"])

for _code in (
    "subscription_already_paused",
    "subscription_not_paused",
    "cancel_already_scheduled",
    "cancel_not_scheduled",
    "items_change_already_scheduled",
    "change_dated_after_end",
    "change_already_withdrawn",
    "change_already_in_effect",
    "subscription_must_not_have_ended",
):
    register_status(_code, 409)

EffectiveBody = Literal["now", "period_end"] | datetime


# ----- ids on the wire ------------------------------------------------------------------------------


def _parse(prefix: str, text: str, code: str, field: str) -> uuid.UUID:
    parsed = ids.parse_id(prefix, text)
    if parsed is None:
        raise Rejected.because(code, f"no such {field}", field)
    return parsed


def _subscription_id(text: str) -> uuid.UUID:
    return _parse(ids.SUBSCRIPTION, text, "subscription_not_found", "id")


def _item_wire(item_id: str) -> tuple[str, str | None]:
    """An item id (`<price uuid>` or `<price uuid>+<override uuid>`) as (price_…, ovr_… or None)."""
    price, _, override = item_id.partition("+")
    return (
        ids.format_id(ids.PRICE, uuid.UUID(price)),
        ids.format_id(ids.PRICE_OVERRIDE, uuid.UUID(override)) if override else None,
    )


def _effective(value: EffectiveBody) -> Effective:
    return value if isinstance(value, datetime) else When(value)


# ----- bodies -----------------------------------------------------------------------------------------


class PriceBody(ApiModel):
    price: str = Field(description="A price id (`price_…`).")
    quantity: int | None = Field(default=None, description="Seats of a fixed fee (default 1). Not for usage prices.")


class AnchorBody(ApiModel):
    kind: AnchorKind = Field(default=AnchorKind.ANNIVERSARY, description="anniversary, calendar or day_of_month.")
    day_of_month: int | None = Field(default=None, description="1 to 31, for `day_of_month` only.")


class ItemsBody(ApiModel):
    plan_version: str | None = Field(default=None, description="A published plan version (`plv_…`).")
    plan: str | None = Field(default=None, max_length=63, description="Or a plan code (with `version`).")
    version: int | None = Field(default=None, description="The plan's version; default: its latest published.")
    quantities: dict[str, int] = Field(
        default_factory=dict, max_length=ITEMS_MAX, description="Seats per price id of the plan version."
    )
    prices: list[PriceBody] = Field(default_factory=list, max_length=ITEMS_MAX, description="Or explicit prices.")

    def plan_choice(self) -> PlanChoice | None:
        if self.plan_version is None and self.plan is None:
            return None
        return PlanChoice(
            plan_version_id=_parse(ids.PLAN_VERSION, self.plan_version, "plan_version_not_found", "plan_version")
            if self.plan_version is not None
            else None,
            plan_code=self.plan,
            version=self.version,
            quantities={
                _parse(ids.PRICE, price, "price_not_found", "quantities"): quantity
                for price, quantity in self.quantities.items()
            },
        )

    def price_choices(self) -> tuple[PriceChoice, ...]:
        return tuple(
            PriceChoice(_parse(ids.PRICE, item.price, "price_not_found", f"prices[{index}].price"), item.quantity)
            for index, item in enumerate(self.prices)
        )


class BillingThresholdBody(ApiModel):
    amount_minor: StrictInt | None = Field(
        description="Invoice at once when the usage so far of a period under way reaches this many minor units "
        "of the subscription's currency (after discounts, before credits and tax); null turns it off."
    )
    currency: str | None = Field(
        default=None, max_length=32, description="Optional check: must be the subscription's currency."
    )

    def change(self) -> ThresholdChange:
        return ThresholdChange(amount_minor=self.amount_minor, currency=self.currency)


class CreateSubscription(ItemsBody):
    customer: str = Field(description="The customer (`cus_…`).")
    start_at: datetime | None = Field(default=None, description="Default: the customer's now.")
    trial_days: int | None = Field(default=None, description="Default: the plan version's trial (0 for prices).")
    trial_end: datetime | None = Field(default=None, description="An explicit trial end (wins over trial_days).")
    trial_usage: TrialUsage = Field(default=TrialUsage.BILLED, description="billed (default) or free.")
    anchor: AnchorBody = Field(default_factory=AnchorBody)
    proration_basis: ProrationBasis = Field(default=ProrationBasis.SECOND, description="second (default) or day.")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=1000)
    billing_threshold: BillingThresholdBody | None = Field(default=None, description="Threshold billing (off).")


class ChangeItems(ItemsBody):
    effective: EffectiveBody = Field(default="now", description="now, period_end, or a moment.")
    prorate: bool = True


class ChangeQuantity(ApiModel):
    price: str = Field(description="The fixed fee's price id (`price_…`).")
    quantity: int
    effective: EffectiveBody = Field(default="now", description="now, period_end, or a moment.")
    prorate: bool = True


class Moment(ApiModel):
    effective_at: datetime | None = Field(default=None, description="Default: the customer's now.")


class Cancel(ApiModel):
    effective: EffectiveBody = Field(default="now", description="now, period_end, or a moment.")
    prorate: bool = True


class MigrateSubscriptions(ApiModel):
    from_plan_version: str = Field(description="The plan version migrated from (`plv_…`).")
    to_plan_version: str = Field(description="The published plan version migrated to (`plv_…`).")
    effective: Literal["now", "period_end"] = "period_end"
    prorate: bool = True


# ----- resources ----------------------------------------------------------------------------------------


class IntervalResource(ApiModel):
    unit: str
    count: int


class ItemResource(ApiModel):
    item: str = Field(description="The item's identity in billing events: the price, with its override if any.")
    price: str
    price_override: str | None
    price_code: str | None
    kind: str = Field(description="fixed (a fee per period) or usage (rated in arrears).")
    billing_timing: str = Field(description="in_advance or in_arrears (fixed fees); usage is in arrears.")
    interval: IntervalResource
    currency: str
    unit_amount: str | None = Field(description="Exact decimal, fixed fees only.")
    quantity: int


class TimelineEntryResource(ApiModel):
    sequence: int = Field(description="The fact's number in recording order; a scheduled change's id.")
    kind: str
    effective_at: datetime
    recorded_at: datetime
    plan_version: str | None = None
    items: list[ItemResource] | None = None
    price: str | None = None
    quantity: int | None = None
    ends_at: datetime | None = None
    prorate: bool | None = None
    withdraws: int | None = Field(default=None, description="A withdrawal: the sequence of the fact it takes back.")
    withdrawn_by: int | None = Field(
        default=None, description="On the timeline: the sequence of the withdrawal that took this fact back."
    )


class BillingThresholdResource(ApiModel):
    amount_minor: int = Field(description="Minor units of `currency`.")
    currency: str
    set_at: datetime = Field(description="The customer's clock when it was set; in force from then on.")


class SubscriptionResource(Resource):
    object: Literal["subscription"] = "subscription"
    customer: str
    plan_version: str | None = Field(description="The plan version it was created on, if any.")
    status: str = Field(description="At `as_of`: not_started, trialing, active, paused, canceled, ended.")
    as_of: datetime
    items: list[ItemResource] = Field(description="What it holds at `as_of`.")
    started_at: datetime
    trial_end: datetime | None
    cancel_at: datetime | None
    ended_at: datetime | None
    current_period_end: datetime | None
    timezone: str
    anchor: AnchorBody
    proration_basis: str
    next_due_at: datetime | None = Field(description="Cached at the last write or clock advance: the next due event.")
    billing_threshold: BillingThresholdResource | None = Field(
        default=None, description="Threshold billing in force (null: off)."
    )
    recorded: list[TimelineEntryResource] | None = Field(
        default=None,
        description="On a write's answer: the facts it appended (a cancel lists the changes it withdrew).",
    )


class TimelineResource(ApiModel):
    object: Literal["subscription_timeline"] = "subscription_timeline"
    subscription: str
    entries: list[TimelineEntryResource]


class ScheduledChangesResource(ApiModel):
    object: Literal["scheduled_changes"] = "scheduled_changes"
    subscription: str
    as_of: datetime = Field(description="The customer's now: every change listed takes effect after it.")
    changes: list[TimelineEntryResource] = Field(description="In the order they take effect.")


class PeriodResource(ApiModel):
    start: datetime
    end: datetime


class ProrationResource(ApiModel):
    basis: str
    units_used: int
    units_in_period: int
    fraction: str


class BillingEventResource(ApiModel):
    kind: str
    item: str
    price: str
    price_override: str | None
    period: PeriodResource
    service_period: PeriodResource
    due_at: datetime
    currency: str
    billing_timing: str | None = Field(
        description="Fixed fees: in_advance (due at the start) or in_arrears (at the end)."
    )
    unit_amount: str | None
    quantity: int | None
    proration: ProrationResource | None
    amount: str | None = Field(description="Exact (not rounded); invoicing rounds once per line.")
    amount_minor: int | None = Field(description="The amount rounded half up to the currency's minor unit.")


class PricePeriodsResource(ApiModel):
    item: str
    kind: str
    periods: list[PeriodResource]


class BillingEventsResource(ApiModel):
    object: Literal["billing_events"] = "billing_events"
    subscription: str
    through: datetime
    next_due_at: datetime | None
    periods: list[PricePeriodsResource]
    events: list[BillingEventResource]


class MigrationResource(ApiModel):
    object: Literal["subscription_migration"] = "subscription_migration"
    migrated: list[str]
    skipped: list[dict[str, str]]


def _item(item: SubscriptionItem, origins: Mapping[str, ItemOrigin]) -> ItemResource:
    price, override = _item_wire(item.price_id)
    origin = origins.get(item.price_id)
    return ItemResource(
        item=item.price_id,
        price=price,
        price_override=override,
        price_code=origin.price_code if origin else None,
        kind=item.kind.value,
        billing_timing=item.timing.value,
        interval=IntervalResource(unit=item.interval.unit.value, count=item.interval.count),
        currency=item.currency.code,
        unit_amount=None if item.unit_amount is None else str(item.unit_amount),
        quantity=item.quantity,
    )


def subscription_resource(
    view: subscription_queries.SubscriptionView, recorded: tuple[RecordedEntry, ...] | None = None
) -> SubscriptionResource:
    subscription = view.subscription
    row, state, started = subscription.row, subscription.state, subscription.timeline.history.started
    origins = origins_of(subscription.entries)
    threshold = subscription.billing_threshold
    return SubscriptionResource(
        id=ids.format_id(ids.SUBSCRIPTION, row.id),
        created_at=row.created_at,
        metadata=dict(row.metadata),
        customer=ids.format_id(ids.CUSTOMER, row.customer_id),
        plan_version=ids.format_id(ids.PLAN_VERSION, row.plan_version_id) if row.plan_version_id else None,
        status=state.status.value,
        as_of=subscription.as_of,
        items=[_item(item, origins) for item in state.items],
        started_at=row.started_at,
        trial_end=state.trial_end,
        cancel_at=state.cancel_at,
        ended_at=state.ended_at,
        current_period_end=view.current_period_end,
        timezone=started.timezone,
        anchor=AnchorBody(kind=started.anchor.kind, day_of_month=started.anchor.day_of_month),
        proration_basis=started.proration_basis.value,
        next_due_at=row.next_due_at,
        billing_threshold=None
        if threshold is None or threshold.amount_minor is None
        else BillingThresholdResource(
            amount_minor=threshold.amount_minor, currency=threshold.currency, set_at=threshold.recorded_at
        ),
        recorded=None if recorded is None else [timeline_entry_resource(entry) for entry in recorded],
    )


def timeline_entry_resource(recorded: RecordedEntry, withdrawn_by: int | None = None) -> TimelineEntryResource:
    entry = recorded.entry
    resource = TimelineEntryResource(
        sequence=recorded.sequence,
        kind=recorded.kind,
        effective_at=entry.effective_at,
        recorded_at=recorded.recorded_at,
        withdrawn_by=withdrawn_by,
    )
    if isinstance(entry, Withdrawn):
        resource.withdraws = entry.withdraws
    if isinstance(entry, Started | ItemsChanged):
        resource.items = [_item(item, recorded.origins) for item in entry.items]
        if recorded.plan_version_id is not None:
            resource.plan_version = ids.format_id(ids.PLAN_VERSION, recorded.plan_version_id)
    if isinstance(entry, QuantityChanged):
        resource.price, _ = _item_wire(entry.price_id)
        resource.quantity = entry.quantity
    if isinstance(entry, CancelScheduled):
        resource.ends_at = entry.ends_at
    if isinstance(entry, ItemsChanged | QuantityChanged | CancelScheduled | Canceled):
        resource.prorate = entry.prorate
    return resource


def timeline_resource(subscription: str, entries: Sequence[RecordedEntry]) -> TimelineResource:
    """The facts in recording order; a withdrawn one names the withdrawal that took it back."""
    withdrawn_by = {
        recorded.entry.withdraws: recorded.sequence for recorded in entries if isinstance(recorded.entry, Withdrawn)
    }
    return TimelineResource(
        subscription=subscription,
        entries=[timeline_entry_resource(entry, withdrawn_by.get(entry.sequence)) for entry in entries],
    )


def _period(period: Period) -> PeriodResource:
    return PeriodResource(start=period.start, end=period.end)


def billing_events_resource(subscription: str, events: BillingEvents) -> BillingEventsResource:
    return BillingEventsResource(
        subscription=subscription,
        through=events.through,
        next_due_at=events.next_due_at,
        periods=[
            PricePeriodsResource(
                item=entry.price_id, kind=entry.kind.value, periods=[_period(p) for p in entry.periods]
            )
            for entry in events.periods
        ],
        events=[_event(event) for event in events.events],
    )


def _event(event: BillingEvent) -> BillingEventResource:
    price, override = _item_wire(event.price_id)
    proration = event.proration
    return BillingEventResource(
        kind=event.kind.value,
        item=event.price_id,
        price=price,
        price_override=override,
        period=_period(event.period),
        service_period=_period(event.service_period),
        due_at=event.due_at,
        currency=event.currency.code,
        billing_timing=None if event.billing_timing is None else event.billing_timing.value,
        unit_amount=None if event.unit_amount is None else str(event.unit_amount),
        quantity=event.quantity,
        proration=None
        if proration is None
        else ProrationResource(
            basis=proration.basis.value,
            units_used=proration.units_used,
            units_in_period=proration.units_in_period,
            fraction=str(proration.fraction),
        ),
        amount=None if event.amount is None else str(event.amount),
        amount_minor=event.amount_minor(),
    )


# ----- routes -------------------------------------------------------------------------------------------


@router.post("", status_code=201, response_model=SubscriptionResource, summary="Create a subscription")
def create(
    body: CreateSubscription, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> SubscriptionResource:
    """On a published plan version (`plan_version`, or `plan` and `version`) or on explicit `prices`."""
    created = create_subscription(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        SubscriptionInput(
            customer_id=_parse(ids.CUSTOMER, body.customer, "customer_not_found", "customer"),
            plan=body.plan_choice(),
            prices=body.price_choices(),
            start_at=body.start_at,
            trial_days=body.trial_days,
            trial_end=body.trial_end,
            trial_usage=body.trial_usage,
            anchor=BillingAnchor(body.anchor.kind, body.anchor.day_of_month),
            proration_basis=body.proration_basis,
            metadata=body.metadata,
            billing_threshold=None if body.billing_threshold is None else body.billing_threshold.change(),
        ),
    )
    return _written(created)


def _written(written: Subscription) -> SubscriptionResource:
    """A write's answer: the subscription at the customer's now, and the facts the write appended."""
    return subscription_resource(subscription_queries.view_of(written), written.recorded)


@router.get("", response_model=ListResponse[SubscriptionResource], summary="List subscriptions, newest first")
def list_subscriptions(
    request: Request,
    customer: Annotated[str | None, Query(description="Only this customer's subscriptions (`cus_…`).")] = None,
    page: PageRequest = Depends(page_request(ids.SUBSCRIPTION)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[SubscriptionResource]:
    customer_id = _parse(ids.CUSTOMER, customer, "customer_not_found", "customer") if customer else None
    found = subscription_queries.list_subscriptions(
        tally.engine, tally.clock, principal.tenant_id, page, customer_id=customer_id
    )
    return list_response(found.map(subscription_resource), request)


@router.post(
    "/migrate", response_model=MigrationResource, summary="Migrate the subscriptions on a plan version to another"
)
def migrate(
    body: MigrateSubscriptions, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> MigrationResource:
    """Each subscription on `from_plan_version` moves to `to_plan_version` at the end of its term (or
    now, prorated). Subscriptions already moved, ended, or with an items change pending are skipped."""
    result = migrate_subscriptions(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        Migration(
            from_plan_version_id=_parse(ids.PLAN_VERSION, body.from_plan_version, "plan_version_not_found", "from"),
            to=PlanChoice(
                plan_version_id=_parse(ids.PLAN_VERSION, body.to_plan_version, "plan_version_not_found", "to")
            ),
            effective=When(body.effective),
            prorate=body.prorate,
        ),
    )
    return MigrationResource(
        migrated=[ids.format_id(ids.SUBSCRIPTION, item) for item in result.migrated],
        skipped=[
            {"subscription": ids.format_id(ids.SUBSCRIPTION, item), "code": code} for item, code in result.skipped
        ],
    )


@router.get("/{id}", response_model=SubscriptionResource, summary="Get a subscription and its state")
def get_subscription(
    id: str,
    as_of: Annotated[datetime | None, Query(description="The state at this moment (default: now).")] = None,
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> SubscriptionResource:
    return subscription_resource(
        subscription_queries.get_subscription(
            tally.engine, tally.clock, principal.tenant_id, _subscription_id(id), as_of=as_of
        )
    )


@router.get("/{id}/timeline", response_model=TimelineResource, summary="The subscription's facts")
def timeline(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> TimelineResource:
    entries = subscription_queries.subscription_timeline(tally.engine, principal.tenant_id, _subscription_id(id))
    return timeline_resource(id, entries)


@router.get("/{id}/scheduled_changes", response_model=ScheduledChangesResource, summary="Changes recorded for later")
def scheduled_changes(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> ScheduledChangesResource:
    """The facts that take effect after the customer's now and are not withdrawn: plan and quantity
    changes at period end, phases, pauses and resumes. Each is named by its `sequence`."""
    found = subscription_queries.subscription_scheduled_changes(
        tally.engine, tally.clock, principal.tenant_id, _subscription_id(id)
    )
    return ScheduledChangesResource(
        subscription=id, as_of=found.as_of, changes=[timeline_entry_resource(entry) for entry in found.changes]
    )


@router.post(
    "/{id}/scheduled_changes/{sequence}/withdraw",
    response_model=SubscriptionResource,
    summary="Withdraw a scheduled change before it takes effect",
)
def withdraw(
    id: str, sequence: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> SubscriptionResource:
    """Appends a `withdrawn` fact naming the change; the subscription reads as if it had never been
    recorded. Refused once the change has taken effect (`change_already_in_effect`) or when it is
    withdrawn already (`change_already_withdrawn`)."""
    # Anything but a sequence number names no fact: the core answers `change_not_found` for -1,
    # after the subscription itself is found.
    number = int(sequence) if sequence.isascii() and sequence.isdigit() and len(sequence) <= 6 else -1
    return _written(
        withdraw_scheduled_change(tally.engine, tally.clock, principal.tenant_id, _subscription_id(id), number)
    )


@router.get("/{id}/billing_events", response_model=BillingEventsResource, summary="Billing events due by a time")
def billing_events(
    id: str,
    through: Annotated[datetime | None, Query(description="Events due at or before (default: now).")] = None,
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> BillingEventsResource:
    """Fixed fees (in advance, prorated, with credits for unused parts), usage windows to rate in
    arrears, trial and paused windows: what invoicing consumes, each with its service period."""
    events, _ = subscription_queries.subscription_billing_events(
        tally.engine, tally.clock, principal.tenant_id, _subscription_id(id), through=through
    )
    return billing_events_resource(id, events)


@router.post("/{id}/change", response_model=SubscriptionResource, summary="Change the plan or prices")
def change(
    id: str, body: ChangeItems, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> SubscriptionResource:
    """Upgrade, downgrade or switch prices: now (prorated unless `prorate` is false), at `period_end`,
    or at a later moment. Seats carry over by price code unless `quantities` say otherwise."""
    items = ItemsChange(
        plan=body.plan_choice(),
        prices=body.price_choices(),
        effective=_effective(body.effective),
        prorate=body.prorate,
    )
    return _written(
        change_subscription_items(tally.engine, tally.clock, principal.tenant_id, _subscription_id(id), items)
    )


@router.post(
    "/{id}/billing_threshold", response_model=SubscriptionResource, summary="Set or turn off threshold billing"
)
def billing_threshold(
    id: str,
    body: BillingThresholdBody,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> SubscriptionResource:
    """Records the setting as a new fact, in force from the customer's now: when the usage so far of a
    period under way (after discounts) reaches `amount_minor`, it is invoiced at once and the period's
    invoice bills only the rest. Setting what is in force already records nothing."""
    subscription_id = _subscription_id(id)
    set_billing_threshold(tally.engine, tally.clock, principal.tenant_id, subscription_id, body.change())
    return subscription_resource(
        subscription_queries.get_subscription(tally.engine, tally.clock, principal.tenant_id, subscription_id)
    )


@router.post("/{id}/quantity", response_model=SubscriptionResource, summary="Change a fixed fee's quantity")
def quantity(
    id: str, body: ChangeQuantity, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> SubscriptionResource:
    change = QuantityChange(
        price_id=_parse(ids.PRICE, body.price, "price_not_in_subscription", "price"),
        quantity=body.quantity,
        effective=_effective(body.effective),
        prorate=body.prorate,
    )
    return _written(
        change_subscription_quantity(tally.engine, tally.clock, principal.tenant_id, _subscription_id(id), change)
    )


MomentWrite = Callable[[Engine, Clock, uuid.UUID, uuid.UUID, datetime | None], Subscription]


def _moment_route(action: str, summary: str, write: MomentWrite) -> None:
    """`POST /{id}/<action>` with an optional `effective_at` (pause and resume take the same body)."""

    def route(
        id: str,
        body: Moment | None = None,
        principal: Principal = require_scope("admin"),
        tally: Tally = Depends(get_tally),
    ) -> SubscriptionResource:
        at = body.effective_at if body else None
        return _written(write(tally.engine, tally.clock, principal.tenant_id, _subscription_id(id), at))

    router.post(f"/{{id}}/{action}", response_model=SubscriptionResource, summary=summary, name=action)(route)


_moment_route("pause", "Pause billing", pause_subscription)
_moment_route("resume", "Resume billing", resume_subscription)


@router.post("/{id}/cancel", response_model=SubscriptionResource, summary="Cancel now or at period end")
def cancel(
    id: str,
    body: Cancel | None = None,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> SubscriptionResource:
    """Changes scheduled at or after the end are withdrawn with it: `recorded` lists the withdrawals."""
    request = body or Cancel()
    cancellation = Cancellation(effective=_effective(request.effective), prorate=request.prorate)
    return _written(
        cancel_subscription(tally.engine, tally.clock, principal.tenant_id, _subscription_id(id), cancellation)
    )


@router.post("/{id}/unschedule_cancel", response_model=SubscriptionResource, summary="Undo a scheduled cancel")
def undo_cancel(
    id: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> SubscriptionResource:
    return _written(unschedule_cancel(tally.engine, tally.clock, principal.tenant_id, _subscription_id(id)))
