"""Builders for invoicing tests: a small catalog, subscriptions on it, and contexts through a moment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from tally.core.invoicing import (
    BilledLine,
    GrantBalance,
    InvoiceContext,
    InvoiceLine,
    PriceRef,
    Proposal,
    SubscriptionBilling,
    UsageReading,
    propose,
)
from tally.core.money import currency
from tally.core.periods import Period
from tally.core.rating import FlatFee, Graduated, PerUnit, Price, Quantity, Tier
from tally.core.rating.usage import Usage
from tally.core.subscriptions import BillingEventKind, Started, Timeline, TimelineEntry, billing_events
from tests.core.subscriptions.builders import fee, usage, utc

USD = currency("USD")
EUR = currency("EUR")
JPY = currency("JPY")

# Catalog: a $100 platform fee, $20 seats, tokens at graduated rates (first 1,000 free, then 1 cent).
PLATFORM = PriceRef(
    price_id="platform", price=Price(unit=USD, model=FlatFee(amount=Decimal(100))), product="platform", plan_id="pro"
)
BASIC = PriceRef(
    price_id="basic", price=Price(unit=USD, model=FlatFee(amount=Decimal(30))), product="platform", plan_id="basic"
)
SEATS = PriceRef(
    price_id="seats",
    price=Price(unit=USD, model=PerUnit(unit_price=Decimal(20)), billing_timing=None),
    product="seats",
    plan_id="pro",
)
TOKENS = PriceRef(
    price_id="tokens",
    price=Price(
        unit=USD,
        model=Graduated(tiers=(Tier(up_to=Decimal(1000)), Tier(up_to=None, unit_price=Decimal("0.01")))),
        meter="tokens",
    ),
    product="ai",
    plan_id="pro",
    plan_version=3,
)
CALLS = PriceRef(
    price_id="calls",
    price=Price(unit=USD, model=PerUnit(unit_price=Decimal("0.002")), meter="api_calls"),
    product="api",
    plan_id="pro",
)
PRICES = (PLATFORM, BASIC, SEATS, TOKENS, CALLS)

PLATFORM_ITEM = fee("platform", "100")
BASIC_ITEM = fee("basic", "30")
TOKENS_ITEM = usage("tokens")
CALLS_ITEM = usage("calls")


def seats(quantity: int) -> Any:
    return fee("seats", "20", quantity=quantity)


def started(*items: Any, at: datetime | None = None, **options: Any) -> Started:
    return Started(effective_at=at or utc(2026, 1, 1), items=tuple(items), **options)


def subscription(
    *entries: TimelineEntry, through: datetime, prices: Sequence[PriceRef] = PRICES, sid: str = "sub_1"
) -> SubscriptionBilling:
    timeline = Timeline(sid, tuple(entries))
    events = billing_events(timeline, through=through)
    held = {p.price_id for p in events.periods}
    return SubscriptionBilling(events=events, prices=tuple(p for p in prices if p.price_id in held))


def readings(
    billing: SubscriptionBilling, quantities: Mapping[str, Usage | int | str | Mapping[tuple[str | None, ...], int]]
) -> tuple[UsageReading, ...]:
    """Readings for every due usage period of the given prices: the same quantity for each period
    (a number, or per group). Periods are measured over their due usage windows."""
    result: list[UsageReading] = []
    windows: dict[tuple[str, Period], list[Period]] = {}
    for event in billing.events.events:
        if event.kind is BillingEventKind.USAGE:
            windows.setdefault((event.price_id, event.period), []).append(event.service_period)
    for (price_id, period), found in windows.items():
        if price_id not in quantities:
            continue
        value = quantities[price_id]
        groups: Iterable[tuple[tuple[str | None, ...], Any]]
        groups = value.items() if isinstance(value, Mapping) else [((), value)]
        for group, quantity in groups:
            reading_usage = quantity if not isinstance(quantity, int | str) else Quantity(Decimal(quantity))
            result.append(
                UsageReading(
                    subscription_id=billing.subscription_id,
                    price_id=price_id,
                    period=period,
                    usage=reading_usage,
                    windows=tuple(found),
                    group=group,
                )
            )
    return tuple(result)


def record(billed: Sequence[BilledLine], proposal: Proposal) -> tuple[BilledLine, ...]:
    """The billed lines after `proposal` is finalized."""
    return (*billed, *(line.billed() for line in proposal.lines))


def context(through: datetime, **fields: Any) -> InvoiceContext:
    fields.setdefault("customer_id", "cus_1")
    fields.setdefault("currency", USD)
    return InvoiceContext(through=through, **fields)


def brief(lines: Iterable[InvoiceLine]) -> list[tuple[str, str, str, int]]:
    """Lines as (kind, price, service start date, amount) for compact tables."""
    return [
        (line.key.kind.value, line.key.price_id, line.key.service_start.date().isoformat(), line.amount_minor)
        for line in lines
    ]


def run(ctx: InvoiceContext) -> Proposal:
    return propose(ctx)


def money(balance: GrantBalance) -> int:
    return balance.remaining_minor
