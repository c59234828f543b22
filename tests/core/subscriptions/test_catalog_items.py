"""Catalog prices as subscription items: the mapping table of catalog_items.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tally.core.money import currency
from tally.core.periods import Interval
from tally.core.rating import BillingTiming, price_from_document
from tally.core.rejections import Rejected
from tally.core.subscriptions import ItemKind
from tally.core.subscriptions.catalog_items import item_id, subscription_item


def _price(**document: Any) -> Any:
    return price_from_document({"currency": "USD", **document}, {})


@pytest.mark.parametrize(
    ("document", "quantity", "expected"),
    [
        ({"model": "flat_fee", "amount": "49"}, None, (ItemKind.FIXED, Decimal(49), 1, "month")),
        (
            {"model": "flat_fee", "amount": "900", "interval": {"unit": "year", "count": 1}},
            2,
            (ItemKind.FIXED, Decimal(900), 2, "year"),
        ),
        ({"model": "per_unit", "unit_price": "12.50"}, 3, (ItemKind.FIXED, Decimal("12.50"), 3, "month")),
        (
            {"model": "per_unit", "unit_price": "12.50", "billing_timing": "in_advance"},
            None,
            (ItemKind.FIXED, Decimal("12.50"), 1, "month"),
        ),
        ({"model": "per_unit", "unit_price": "0.000002", "meter": "tokens"}, None, (ItemKind.USAGE, None, 1, "month")),
        (
            {"model": "graduated", "meter": "tokens", "tiers": [{"up_to": "10"}, {"unit_price": "1"}]},
            None,
            (ItemKind.USAGE, None, 1, "month"),
        ),
    ],
)
def test_prices_map_to_items(document: dict[str, Any], quantity: int | None, expected: tuple[Any, ...]) -> None:
    item = subscription_item(item_id="p1", price=_price(**document), quantity=quantity)
    assert (item.kind, item.unit_amount, item.quantity, item.interval.unit.value) == expected
    assert item.currency == currency("USD")


@pytest.mark.parametrize(
    ("document", "timing"),
    [
        ({"model": "flat_fee", "amount": "49"}, BillingTiming.IN_ADVANCE),
        ({"model": "flat_fee", "amount": "49", "billing_timing": "in_arrears"}, BillingTiming.IN_ARREARS),
        # A seat price is billed in advance, whatever its stored timing (per-unit defaults to arrears).
        ({"model": "per_unit", "unit_price": "12.50"}, BillingTiming.IN_ADVANCE),
        ({"model": "per_unit", "unit_price": "12.50", "billing_timing": "in_arrears"}, BillingTiming.IN_ADVANCE),
        ({"model": "per_unit", "unit_price": "0.000002", "meter": "tokens"}, BillingTiming.IN_ARREARS),
    ],
)
def test_a_flat_fee_keeps_its_billing_timing(document: dict[str, Any], timing: BillingTiming) -> None:
    assert subscription_item(item_id="p1", price=_price(**document), quantity=None).billing_timing is timing


@pytest.mark.parametrize(
    ("document", "quantity", "code"),
    [
        ({"model": "flat_fee", "amount": "100", "interval": None}, None, "price_must_be_recurring"),
        (
            {"model": "graduated", "tiers": [{"up_to": "10", "unit_price": "1"}, {"unit_price": "2"}]},
            3,
            "price_not_subscribable",
        ),
        ({"model": "per_unit", "unit_price": "1", "meter": "tokens"}, 2, "quantity_applies_to_fixed_fees"),
        ({"model": "per_unit", "unit_price": "1"}, -1, "quantity_out_of_range"),
    ],
)
def test_prices_a_subscription_cannot_hold(document: dict[str, Any], quantity: int | None, code: str) -> None:
    with pytest.raises(Rejected) as raised:
        subscription_item(item_id="p1", price=_price(**document), quantity=quantity)
    assert raised.value.rejection.code == code


def test_an_override_is_another_identity() -> None:
    assert item_id("price-1") == "price-1"
    assert item_id("price-1", "override-9") == "price-1+override-9"
    assert Interval.parse("month").months == 1
