# ruff: noqa: E501
"""Bad prices and bad usage: each gets one precise, stable code (and the field it is about)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tally.core.money import custom_unit
from tally.core.rating import (
    EventSummary,
    EventValues,
    FlatFee,
    GroupedQuantities,
    PerUnit,
    Price,
    Quantity,
    price_from_document,
    rate,
)
from tally.core.rating.models import TIERS_MAX
from tally.core.rejections import Rejected

D = Decimal
TIERS = [{"up_to": 10, "unit_price": "1"}, {"unit_price": "0.5"}]


def _graduated(*tiers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "graduated", "currency": "USD", "tiers": list(tiers), **fields}


BAD_PRICES: list[tuple[object, str, str | None]] = [
    ([], "price_document_must_be_object", None),
    ({"currency": "USD"}, "price_field_required", "model"),
    ({"model": "stairstep", "currency": "USD"}, "pricing_model_unknown", "model"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "colour": "red"}, "price_field_unknown", "colour"),
    ({"model": "per_unit", "currency": "USD", "tiers": []}, "price_field_unknown", "tiers"),  # not per_unit's
    ({"model": "per_unit", "unit_price": 1}, "price_field_required", "currency"),
    ({"model": "per_unit", "currency": "XYZ", "unit_price": 1}, "unit_must_be_known", "currency"),
    ({"model": "per_unit", "currency": "usd", "unit_price": 1}, "currency_must_be_known", "currency"),
    ({"model": "per_unit", "currency": "USD"}, "price_field_required", "unit_price"),
    ({"model": "per_unit", "currency": "USD", "unit_price": "-1"}, "price_must_not_be_negative", "unit_price"),
    ({"model": "per_unit", "currency": "USD", "unit_price": "NaN"}, "price_must_be_finite", "unit_price"),
    ({"model": "per_unit", "currency": "USD", "unit_price": D("Infinity")}, "price_must_be_finite", "unit_price"),
    ({"model": "per_unit", "currency": "USD", "unit_price": "1e30"}, "price_out_of_range", "unit_price"),
    ({"model": "per_unit", "currency": "USD", "unit_price": "0." + "0" * 18 + "1"}, "price_out_of_range", "unit_price"),
    ({"model": "per_unit", "currency": "USD", "unit_price": "ten"}, "value_must_be_number", "unit_price"),
    ({"model": "per_unit", "currency": "USD", "unit_price": True}, "value_must_be_number", "unit_price"),
    ({"model": "flat_fee", "currency": "USD", "amount": "-0.01"}, "price_must_not_be_negative", "amount"),
    ({"model": "package", "currency": "USD", "package_size": 0, "package_price": 1}, "package_size_must_be_positive", "package_size"),
    ({"model": "package", "currency": "USD", "package_size": -5, "package_price": 1}, "package_size_must_be_positive", "package_size"),
    ({"model": "package", "currency": "USD", "package_size": 10, "package_price": 1, "package_rounding": "nearest"}, "package_rounding_unknown", "package_rounding"),
    ({"model": "package", "currency": "USD", "package_size": 10, "package_price": 1, "free_units": -1}, "free_units_must_not_be_negative", "free_units"),
    (_graduated(), "tiers_required", "tiers"),
    ({"model": "volume", "currency": "USD"}, "tiers_required", "tiers"),
    (_graduated(*[{"up_to": i + 1} for i in range(TIERS_MAX)], {}), "tiers_exceed_limit", "tiers"),
    (_graduated({"unit_price": 1}, {"up_to": 10, "unit_price": 1}), "unbounded_tier_must_be_last", "tiers[0].up_to"),
    (_graduated({"up_to": 10}, {"up_to": 10}, {}), "tiers_must_be_increasing", "tiers[1].up_to"),
    (_graduated({"up_to": 10}, {"up_to": 5}, {}), "tiers_must_be_increasing", "tiers[1].up_to"),
    (_graduated({"up_to": 0}, {}), "tiers_must_be_increasing", "tiers[0].up_to"),
    (_graduated({"up_to": -1}, {}), "tier_bound_must_not_be_negative", "tiers[0].up_to"),
    (_graduated({"up_to": "NaN"}, {}), "tier_bound_must_be_finite", "tiers[0].up_to"),
    (_graduated({"from": 1, "up_to": 10}, {}), "first_tier_must_start_at_zero", "tiers[0].from"),
    (_graduated({"from": 0, "up_to": 10}, {"from": 11, "up_to": 20}, {}), "tiers_must_not_have_gaps", "tiers[1].from"),
    (_graduated({"from": 0, "up_to": 10}, {"from": 9, "up_to": 20}, {}), "tiers_must_not_overlap", "tiers[1].from"),
    (_graduated({"up_to": 10}, {"up_to": 20}), "last_tier_must_be_unbounded", "tiers"),
    (_graduated({"up_to": 10, "unit_price": "-0.1"}, {}), "price_must_not_be_negative", "tiers[0].unit_price"),
    (_graduated({"up_to": 10, "flat_fee": "Infinity"}, {}), "price_must_be_finite", "tiers[0].flat_fee"),
    (_graduated({"up_to": 10, "price": 1}, {}), "price_field_unknown", "tiers[0].price"),
    (_graduated({"up_to": 10}, {}, tier_bounds="open"), "tier_bounds_unknown", "tier_bounds"),
    (_graduated({"up_to": 10}, {}, flat_fee_at_zero_usage="yes"), "value_must_be_boolean", "flat_fee_at_zero_usage"),
    ({"model": "percentage", "currency": "USD", "rate_percent": "101"}, "rate_percent_out_of_range", "rate_percent"),
    ({"model": "percentage", "currency": "USD", "rate_percent": "-1"}, "rate_percent_out_of_range", "rate_percent"),
    ({"model": "percentage", "currency": "USD", "rate_percent": 1, "per_event_minimum": 2, "per_event_maximum": 1}, "per_event_minimum_must_not_exceed_maximum", "per_event_minimum"),
    ({"model": "percentage", "currency": "USD", "rate_percent": 1, "free_events": -1}, "free_events_out_of_range", "free_events"),
    ({"model": "percentage", "currency": "USD", "rate_percent": 1, "free_events": D("1.5")}, "value_must_be_integer", "free_events"),
    ({"model": "matrix", "currency": "USD"}, "matrix_dimensions_required", "dimensions"),
    ({"model": "matrix", "currency": "USD", "dimensions": []}, "matrix_dimensions_required", "dimensions"),
    ({"model": "matrix", "currency": "USD", "dimensions": list("abcdef")}, "matrix_dimensions_exceed_limit", "dimensions"),
    ({"model": "matrix", "currency": "USD", "dimensions": ["9lives"]}, "dimension_name_invalid", "dimensions[0]"),
    ({"model": "matrix", "currency": "USD", "dimensions": ["a", "a"]}, "matrix_dimensions_must_be_distinct", "dimensions"),
    ({"model": "matrix", "currency": "USD", "dimensions": ["a", "b"], "rates": [{"values": ["x"], "unit_price": 1}]}, "matrix_rate_values_must_match_dimensions", "rates[0].values"),
    ({"model": "matrix", "currency": "USD", "dimensions": ["a"], "rates": [{"values": [1], "unit_price": 1}]}, "matrix_rate_value_invalid", "rates[0].values[0]"),
    ({"model": "matrix", "currency": "USD", "dimensions": ["a"], "rates": [{"values": ["x"], "unit_price": 1}, {"values": ["x"], "unit_price": 2}]}, "matrix_rates_must_be_distinct", "rates[1].values"),
    ({"model": "matrix", "currency": "USD", "dimensions": ["a"], "rates": [{"values": ["x"]}]}, "price_field_required", "rates[0].unit_price"),
    ({"model": "flat_fee", "currency": "USD", "amount": 1, "meter": "seats"}, "flat_fee_must_not_have_a_meter", "meter"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "meter": "Tokens!"}, "meter_code_invalid", "meter"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "billing_timing": "later"}, "billing_timing_unknown", "billing_timing"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "meter": "tokens", "billing_timing": "in_advance"}, "metered_price_must_be_billed_in_arrears", "billing_timing"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "interval": None}, "one_off_price_must_be_billed_in_advance", "interval"),
    ({"model": "flat_fee", "currency": "USD", "amount": 1, "interval": {"unit": "fortnight"}}, "interval_unit_unknown", "interval"),
    ({"model": "flat_fee", "currency": "USD", "amount": 1, "interval": {"unit": "month", "count": 0}}, "interval_count_out_of_range", "interval_count"),
    ({"model": "flat_fee", "currency": "USD", "amount": 1, "interval": {"unit": "month", "every": 2}}, "price_field_unknown", "interval.every"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "minimum_amount": 10, "maximum_amount": 5}, "minimum_must_not_exceed_maximum", "minimum_amount"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "maximum_amount": "-5"}, "price_must_not_be_negative", "maximum_amount"),
    ({"model": "flat_fee", "currency": "USD", "amount": 1, "quantity_transform": {"divide_by": 2}}, "quantity_transform_not_allowed", "quantity_transform"),
    ({"model": "percentage", "currency": "USD", "rate_percent": 1, "quantity_transform": {"divide_by": 2}}, "quantity_transform_not_allowed", "quantity_transform"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "quantity_transform": {"divide_by": 0}}, "divide_by_must_be_positive", "quantity_transform.divide_by"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "quantity_transform": {"divide_by": 2, "rounding": "banker"}}, "transform_rounding_unknown", "quantity_transform.rounding"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "quantity_transform": {}}, "price_field_required", "quantity_transform.divide_by"),
    ({"model": "per_unit", "currency": "USD", "unit_price": 1, "rounding": "nearest"}, "rounding_mode_unknown", "rounding"),
]  # fmt: skip


@pytest.mark.parametrize(("document", "code", "field"), BAD_PRICES)
def test_bad_prices_get_precise_codes(document: object, code: str, field: str | None) -> None:
    with pytest.raises(Rejected) as rejected:
        price_from_document(document)
    assert (rejected.value.rejection.code, rejected.value.rejection.field) == (code, field)


def test_the_first_problem_decides_the_code() -> None:
    # Unknown key, bad currency and bad tiers at once: the unknown key is checked first.
    document = _graduated({"up_to": 5}, {"up_to": 1}, currency="NOPE", colour="red")
    with pytest.raises(Rejected) as rejected:
        price_from_document(document)
    assert rejected.value.rejection.code == "price_field_unknown"
    # Tiers are checked in order: the first bad tier names itself.
    document = _graduated({"up_to": 5, "unit_price": -1}, {"up_to": 1}, {})
    with pytest.raises(Rejected) as rejected:
        price_from_document(document)
    assert rejected.value.rejection.field == "tiers[0].unit_price"


def test_floats_are_refused_as_a_programming_error() -> None:
    with pytest.raises(TypeError):
        price_from_document({"model": "per_unit", "currency": "USD", "unit_price": 0.1})
    with pytest.raises(TypeError):
        PerUnit(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Quantity(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rate(Price(unit=custom_unit("CREDITS", 2), model=FlatFee(D(1))), 2.5)  # type: ignore[arg-type]


BAD_USAGE: list[tuple[dict[str, Any], Any, str]] = [
    ({"model": "per_unit", "unit_price": 1}, lambda: Quantity(D(-1)), "quantity_must_not_be_negative"),
    ({"model": "per_unit", "unit_price": 1}, lambda: Quantity(D("NaN")), "quantity_must_be_finite"),
    ({"model": "per_unit", "unit_price": 1}, lambda: Quantity(D("1e40")), "quantity_out_of_range"),
    ({"model": "per_unit", "unit_price": 1}, lambda: EventValues((D(1), D(-2))), "quantity_must_not_be_negative"),
    ({"model": "per_unit", "unit_price": 1}, lambda: EventSummary(0, D(5)), "event_summary_inconsistent"),
    ({"model": "per_unit", "unit_price": 1}, lambda: EventSummary(-1, D(0)), "event_count_out_of_range"),
    ({"model": "per_unit", "unit_price": 1}, lambda: GroupedQuantities((( ("a",), D(1)), (("a",), D(2)))), "groups_must_be_distinct"),
    ({"model": "matrix", "dimensions": ["a", "b"], "default_unit_price": 1}, lambda: GroupedQuantities.of({("x",): 1}), "group_values_must_match_dimensions"),
    ({"model": "percentage", "rate_percent": 1}, lambda: GroupedQuantities.of({("x",): 1}), "usage_must_be_events"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "usage", "code"), BAD_USAGE)
def test_bad_usage_gets_precise_codes(fields: dict[str, Any], usage: Any, code: str) -> None:
    with pytest.raises(Rejected) as rejected:
        rate(price_from_document({"currency": "USD", **fields}), usage())
    assert rejected.value.rejection.code == code


def test_an_amount_too_large_for_the_ledger_is_refused() -> None:
    huge = price_from_document({"model": "per_unit", "currency": "USD", "unit_price": "1" + "0" * 17})
    with pytest.raises(Rejected) as rejected:
        rate(huge, D(10**6))
    assert rejected.value.rejection.code == "amount_exceeds_limit"
