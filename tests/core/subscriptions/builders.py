"""Small builders for subscription tests: prices, moments, and sums of fee events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from tally.core.money import currency
from tally.core.periods import Interval, IntervalUnit
from tally.core.subscriptions import BillingEvent, BillingEventKind, ItemKind, SubscriptionItem

USD = currency("USD")
MONTH = Interval(IntervalUnit.MONTH)
YEAR = Interval(IntervalUnit.YEAR)
QUARTER = Interval(IntervalUnit.QUARTER)
WEEK = Interval(IntervalUnit.WEEK)
DAY = Interval(IntervalUnit.DAY)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)


def fee(price_id: str, amount: str, interval: Interval = MONTH, quantity: int = 1) -> SubscriptionItem:
    return SubscriptionItem(
        price_id=price_id,
        kind=ItemKind.FIXED,
        interval=interval,
        currency=USD,
        unit_amount=Decimal(amount),
        quantity=quantity,
    )


def usage(price_id: str, interval: Interval = MONTH) -> SubscriptionItem:
    return SubscriptionItem(price_id=price_id, kind=ItemKind.USAGE, interval=interval, currency=USD)


def exact_amount(event: BillingEvent) -> Fraction:
    """The exact rational amount of a fee or credit event (Decimal amounts stop at 60 digits)."""
    assert event.proration is not None and event.unit_amount is not None and event.quantity is not None
    sign = -1 if event.kind is BillingEventKind.FIXED_FEE_CREDIT else 1
    return sign * Fraction(event.unit_amount) * event.quantity * event.proration.exact_fraction


def brief(event: BillingEvent) -> tuple[str, str, datetime, datetime, str | None]:
    """An event as (kind, price, service start, service end, amount) for compact tables."""
    amount = None if event.amount is None else str(event.amount)
    return (event.kind.value, event.price_id, event.service_period.start, event.service_period.end, amount)
