"""`tally subscriptions …`: create, list, show, change, cancel and inspect subscriptions, and the
billing events invoicing will consume. Output of `show`, `timeline` and `billing-events` is JSON in
the API's shapes."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from tally.adapters.ids import CUSTOMER, PLAN_VERSION, PRICE, SUBSCRIPTION, format_id, parse_id
from tally.cli._context import audit, console, fail, open_tally, rejections_as_errors, resolve_customer, resolve_tenant

app = typer.Typer(help="Subscriptions: customers on plans, and every change as a timeline.", no_args_is_help=True)

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")
EffectiveOption = typer.Option("now", "--effective", help="now, period_end, or an ISO 8601 time.")


def _when(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail("value_must_be_datetime", f"{option} must be an ISO 8601 time, e.g. 2030-01-31T00:00:00Z")
    if value.tzinfo is None:
        fail("datetime_must_have_timezone", f"{option} needs a timezone (Z or +01:00)")
    return value


def _effective(text: str) -> Any:
    from tally.app._subscription_write import When

    if text in {"now", "period_end"}:
        return When(text)
    return _when(text, "--effective")


def _subscription_id(text: str) -> uuid.UUID:
    parsed = parse_id(SUBSCRIPTION, text)
    if parsed is None:
        fail("subscription_not_found", f"{text!r} is not a subscription id (sub_…)")
    return parsed


def _price_id(tally: Any, tenant_id: uuid.UUID, text: str) -> uuid.UUID:
    from tally.app.subscription_queries import active_price_id

    parsed = parse_id(PRICE, text)
    return parsed if parsed is not None else active_price_id(tally.engine, tenant_id, text)


def _items(tally: Any, tenant_id: uuid.UUID, plan: str | None, prices: list[str]) -> tuple[Any, tuple[Any, ...]]:
    """`--plan CODE[@VERSION]` or `--plan plv_…`, or `--price CODE_OR_ID[:QUANTITY]` (repeatable)."""
    from tally.app._subscription_items import PlanChoice, PriceChoice

    choice = None
    if plan is not None:
        version_id = parse_id(PLAN_VERSION, plan)
        if version_id is not None:
            choice = PlanChoice(plan_version_id=version_id)
        else:
            code, _, number = plan.partition("@")
            if number and not number.isdigit():
                fail("plan_version_invalid", "--plan is CODE, CODE@VERSION or plv_…")
            choice = PlanChoice(plan_code=code, version=int(number) if number else None)
    chosen = []
    for text in prices:
        reference, _, quantity = text.partition(":")
        if quantity and not quantity.isdigit():
            fail("quantity_invalid", "--price is CODE_OR_ID or CODE_OR_ID:QUANTITY")
        chosen.append(PriceChoice(_price_id(tally, tenant_id, reference), int(quantity) if quantity else None))
    return choice, tuple(chosen)


def _print_subscription(
    tally: Any, tenant_id: uuid.UUID, subscription_id: uuid.UUID, as_of: datetime | None = None
) -> None:
    from tally.api.routers.subscriptions import subscription_resource
    from tally.app.subscription_queries import get_subscription

    view = get_subscription(tally.engine, tally.clock, tenant_id, subscription_id, as_of=as_of)
    console.print_json(json.dumps(subscription_resource(view).model_dump(mode="json")))


@app.command("create")
def create(
    customer: str = typer.Argument(..., help="A customer id (cus_…) or external id."),
    plan: str | None = typer.Option(None, "--plan", help="CODE (latest published), CODE@VERSION or plv_…"),
    price: list[str] = typer.Option([], "--price", help="CODE_OR_ID[:QUANTITY] (repeatable), instead of a plan."),
    start_at: str | None = typer.Option(None, "--start-at", help="Default: the customer's now."),
    trial_days: int | None = typer.Option(None, "--trial-days", help="Default: the plan version's trial."),
    anchor: str = typer.Option("anniversary", "--anchor", help="anniversary, calendar, or a day of month (1-31)."),
    proration_basis: str = typer.Option("second", "--proration-basis", help="second or day."),
    billing_threshold: int | None = typer.Option(
        None, "--billing-threshold", help="Threshold billing: invoice at once past this many minor units."
    ),
    tenant: str | None = TenantOption,
) -> None:
    """Subscribe a customer to a plan (or to prices)."""
    from tally.app.create_subscription import SubscriptionInput, create_subscription
    from tally.app.set_billing_threshold import ThresholdChange
    from tally.core.subscriptions import BillingAnchor, ProrationBasis
    from tally.core.subscriptions.cycles import AnchorKind

    if anchor.isdigit():
        billing_anchor = BillingAnchor(AnchorKind.DAY_OF_MONTH, int(anchor))
    elif anchor in {"anniversary", "calendar"}:
        billing_anchor = BillingAnchor(AnchorKind(anchor))
    else:
        fail("anchor_invalid", "--anchor is anniversary, calendar or a day of month")
    if proration_basis not in {"second", "day"}:
        fail("proration_basis_invalid", "--proration-basis is second or day")
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        plan_choice, prices = _items(tally, tenant_id, plan, price)
        created = create_subscription(
            tally.engine,
            tally.clock,
            tenant_id,
            SubscriptionInput(
                customer_id=resolve_customer(tally, tenant_id, customer),
                plan=plan_choice,
                prices=prices,
                start_at=_when(start_at, "--start-at") if start_at else None,
                trial_days=trial_days,
                anchor=billing_anchor,
                proration_basis=ProrationBasis(proration_basis),
                billing_threshold=None
                if billing_threshold is None
                else ThresholdChange(amount_minor=billing_threshold),
            ),
        )
        subscription_id = format_id(SUBSCRIPTION, created.row.id)
        audit(tally, tenant_id, "tally subscriptions create", "subscription", subscription_id)
    console.print(f"subscription {subscription_id} created: {created.state.status.value}")


@app.command("list")
def list_subscriptions(
    customer: str | None = typer.Option(None, "--customer", help="Only this customer's (cus_… or external id)."),
    tenant: str | None = TenantOption,
) -> None:
    """Subscriptions, newest first, with their state now."""
    from tally.adapters.pagination import LIMIT_MAX, PageRequest
    from tally.app.subscription_queries import list_subscriptions as find

    table = Table(title="subscriptions")
    for column in ("id", "customer", "status", "current period end"):
        table.add_column(column)
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        customer_id = resolve_customer(tally, tenant_id, customer) if customer else None
        page = PageRequest(limit=LIMIT_MAX)
        while True:
            found = find(tally.engine, tally.clock, tenant_id, page, customer_id=customer_id)
            for view in found.items:
                row = view.subscription.row
                end = view.current_period_end
                table.add_row(
                    format_id(SUBSCRIPTION, row.id),
                    format_id(CUSTOMER, row.customer_id),
                    view.subscription.state.status.value,
                    end.isoformat() if end else "",
                )
            if not found.has_more or not found.items:
                break
            page = PageRequest(limit=LIMIT_MAX, starting_after=found.items[-1].subscription.row.id)
    console.print(table)


@app.command("show")
def show(
    subscription: str = typer.Argument(..., help="A subscription id (sub_…)."),
    as_of: str | None = typer.Option(None, "--as-of", help="The state at this time (default: now)."),
    tenant: str | None = TenantOption,
) -> None:
    """One subscription and its state, as JSON."""
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        moment = _when(as_of, "--as-of") if as_of else None
        _print_subscription(tally, tenant_id, _subscription_id(subscription), moment)


@app.command("timeline")
def timeline(subscription: str = typer.Argument(..., help="sub_…"), tenant: str | None = TenantOption) -> None:
    """The subscription's facts in recording order, as JSON."""
    from tally.api.routers.subscriptions import timeline_resource
    from tally.app.subscription_queries import subscription_timeline

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        entries = subscription_timeline(tally.engine, tenant_id, _subscription_id(subscription))
    console.print_json(json.dumps(timeline_resource(subscription, entries).model_dump(mode="json")))


@app.command("scheduled")
def scheduled(subscription: str = typer.Argument(..., help="sub_…"), tenant: str | None = TenantOption) -> None:
    """The changes recorded for later and not withdrawn, in the order they take effect, as JSON."""
    from tally.api.routers.subscriptions import ScheduledChangesResource, timeline_entry_resource
    from tally.app.subscription_queries import subscription_scheduled_changes

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        found = subscription_scheduled_changes(tally.engine, tally.clock, tenant_id, _subscription_id(subscription))
    resource = ScheduledChangesResource(
        subscription=subscription, as_of=found.as_of, changes=[timeline_entry_resource(e) for e in found.changes]
    )
    console.print_json(json.dumps(resource.model_dump(mode="json")))


@app.command("billing-threshold")
def billing_threshold(
    subscription: str = typer.Argument(..., help="sub_…"),
    amount_minor: str = typer.Argument(..., help="Minor units of the subscription's currency, or `off`."),
    currency: str | None = typer.Option(None, "--currency", help="Checked against the subscription's currency."),
    tenant: str | None = TenantOption,
) -> None:
    """Set threshold billing (a new fact): past this much usage in a period under way, invoice at once."""
    from tally.app.set_billing_threshold import ThresholdChange, set_billing_threshold

    try:
        amount = None if amount_minor == "off" else int(amount_minor)  # the core checks the range
    except ValueError:
        fail("billing_threshold_must_be_minor_units", "the amount is a whole number of minor units, or `off`")
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        change = ThresholdChange(amount_minor=amount, currency=currency)
        setting = set_billing_threshold(tally.engine, tally.clock, tenant_id, _subscription_id(subscription), change)
        if setting.recorded:
            audit(tally, tenant_id, "tally subscriptions billing-threshold", "subscription", subscription)
    shown = (
        "off" if setting.in_force is None or setting.in_force.amount_minor is None else setting.in_force.amount_minor
    )
    console.print(
        f"subscription {subscription}: billing threshold {shown}" + ("" if setting.recorded else " (unchanged)")
    )


@app.command("withdraw")
def withdraw(
    subscription: str = typer.Argument(..., help="sub_…"),
    sequence: int = typer.Argument(..., help="The scheduled change's sequence (see `scheduled`)."),
    tenant: str | None = TenantOption,
) -> None:
    """Withdraw a scheduled change before it takes effect (a new fact; the change stays on record)."""
    from tally.app.withdraw_scheduled_change import withdraw_scheduled_change

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        subscription_id = _subscription_id(subscription)
        withdraw_scheduled_change(tally.engine, tally.clock, tenant_id, subscription_id, sequence)
        audit(tally, tenant_id, "tally subscriptions withdraw", "subscription", subscription)
    console.print(f"subscription {subscription}: scheduled change {sequence} withdrawn")


@app.command("change")
def change(
    subscription: str = typer.Argument(..., help="sub_…"),
    plan: str | None = typer.Option(None, "--plan", help="CODE, CODE@VERSION or plv_…"),
    price: list[str] = typer.Option([], "--price", help="CODE_OR_ID[:QUANTITY] (repeatable), instead of a plan."),
    effective: str = EffectiveOption,
    no_proration: bool = typer.Option(False, "--no-proration", help="Do not credit or charge the current period."),
    tenant: str | None = TenantOption,
) -> None:
    """Change the plan or prices: now (prorated), at period end, or at a time."""
    from tally.app.change_subscription_items import ItemsChange, change_subscription_items

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        plan_choice, prices = _items(tally, tenant_id, plan, price)
        subscription_id = _subscription_id(subscription)
        change_subscription_items(
            tally.engine,
            tally.clock,
            tenant_id,
            subscription_id,
            ItemsChange(plan=plan_choice, prices=prices, effective=_effective(effective), prorate=not no_proration),
        )
        audit(tally, tenant_id, "tally subscriptions change", "subscription", subscription)
        _print_subscription(tally, tenant_id, subscription_id)


@app.command("quantity")
def quantity(
    subscription: str = typer.Argument(..., help="sub_…"),
    price: str = typer.Argument(..., help="The fixed fee's price (code or price_…)."),
    value: int = typer.Argument(..., help="The new quantity."),
    effective: str = EffectiveOption,
    tenant: str | None = TenantOption,
) -> None:
    """Change the seats of a fixed fee."""
    from tally.app.change_subscription_quantity import QuantityChange, change_subscription_quantity

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        subscription_id = _subscription_id(subscription)
        change_subscription_quantity(
            tally.engine,
            tally.clock,
            tenant_id,
            subscription_id,
            QuantityChange(
                price_id=_price_id(tally, tenant_id, price), quantity=value, effective=_effective(effective)
            ),
        )
        audit(tally, tenant_id, "tally subscriptions quantity", "subscription", subscription)
        _print_subscription(tally, tenant_id, subscription_id)


@app.command("pause")
def pause(subscription: str = typer.Argument(..., help="sub_…"), tenant: str | None = TenantOption) -> None:
    """Pause billing now."""
    from tally.app.pause_subscription import pause_subscription

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        pause_subscription(tally.engine, tally.clock, tenant_id, _subscription_id(subscription))
        audit(tally, tenant_id, "tally subscriptions pause", "subscription", subscription)
    console.print(f"subscription {subscription} paused")


@app.command("resume")
def resume(subscription: str = typer.Argument(..., help="sub_…"), tenant: str | None = TenantOption) -> None:
    """Resume billing now."""
    from tally.app.resume_subscription import resume_subscription

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        resume_subscription(tally.engine, tally.clock, tenant_id, _subscription_id(subscription))
        audit(tally, tenant_id, "tally subscriptions resume", "subscription", subscription)
    console.print(f"subscription {subscription} resumed")


@app.command("cancel")
def cancel(
    subscription: str = typer.Argument(..., help="sub_…"),
    effective: str = EffectiveOption,
    undo: bool = typer.Option(False, "--undo", help="Undo a scheduled cancel instead."),
    tenant: str | None = TenantOption,
) -> None:
    """Cancel now, at period end, or at a time; `--undo` takes back a scheduled cancel."""
    from tally.app.cancel_subscription import Cancellation, cancel_subscription
    from tally.app.unschedule_cancel import unschedule_cancel

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        subscription_id = _subscription_id(subscription)
        if undo:
            result = unschedule_cancel(tally.engine, tally.clock, tenant_id, subscription_id)
        else:
            cancellation = Cancellation(effective=_effective(effective))
            result = cancel_subscription(tally.engine, tally.clock, tenant_id, subscription_id, cancellation)
        audit(tally, tenant_id, "tally subscriptions cancel", "subscription", subscription)
    from tally.core.subscriptions import Withdrawn

    state = result.state
    ends = state.ended_at or state.cancel_at
    console.print(f"subscription {subscription} {state.status.value}" + (f", ends {ends.isoformat()}" if ends else ""))
    for recorded in result.recorded:
        if isinstance(recorded.entry, Withdrawn):
            withdrawn = result.entries[recorded.entry.withdraws]
            console.print(
                f"withdrew scheduled change {withdrawn.sequence} ({withdrawn.kind} at "
                f"{withdrawn.entry.effective_at.isoformat()}): it falls at or after the end"
            )


@app.command("billing-events")
def billing_events(
    subscription: str = typer.Argument(..., help="sub_…"),
    through: str | None = typer.Option(None, "--through", help="Events due by this time (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="JSON (the API's shape) instead of a table."),
    tenant: str | None = TenantOption,
) -> None:
    """The billing events due by a time: what invoicing will consume."""
    from tally.api.routers.subscriptions import billing_events_resource
    from tally.app.subscription_queries import subscription_billing_events

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        moment = _when(through, "--through") if through else None
        events, _ = subscription_billing_events(
            tally.engine, tally.clock, tenant_id, _subscription_id(subscription), through=moment
        )
    resource = billing_events_resource(subscription, events)
    if as_json:
        console.print_json(json.dumps(resource.model_dump(mode="json")))
        return
    table = Table(title=f"billing events through {events.through.isoformat()}")
    for column in ("due", "kind", "price", "service period", "quantity", "amount (minor units)"):
        table.add_column(column)
    for event in resource.events:
        table.add_row(
            event.due_at.isoformat(),
            event.kind,
            event.price,
            f"{event.service_period.start.isoformat()} → {event.service_period.end.isoformat()}",
            "" if event.quantity is None else str(event.quantity),
            "" if event.amount_minor is None else str(event.amount_minor),
        )
    console.print(table)
    if events.next_due_at is not None:
        console.print(f"next due: {events.next_due_at.isoformat()}")
