"""Shorthands for rating tests: prices from documents, amounts in minor units."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tally.core.money import custom_unit
from tally.core.rating import Price, Usage, price_from_document, rate

CREDITS = custom_unit("CREDITS", 4)


def price(model: str, currency: str = "USD", **fields: Any) -> Price:
    return price_from_document({"model": model, "currency": currency, **fields}, {"CREDITS": CREDITS})


def minor(price_: Price, usage: Usage | Decimal | int | str | None = None, **options: Any) -> int:
    if isinstance(usage, str):
        usage = Decimal(usage)
    return rate(price_, usage, **options).amount_minor


def exact(price_: Price, usage: Usage | Decimal | int | str | None = None, **options: Any) -> Decimal:
    if isinstance(usage, str):
        usage = Decimal(usage)
    return rate(price_, usage, **options).amount
