"""Worked examples, computed by hand, for every pricing model and every convention switch."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from tally.core.rating import (
    EventSummary,
    EventValues,
    GroupedQuantities,
    LineKind,
    Quantity,
    rate,
    rate_increment,
)
from tally.core.rejections import Rejected
from tests.core.rating.support import exact, minor, price

D = Decimal

# ----- flat fee, per unit, rounding modes, units -------------------------------------------------


def test_flat_fee_ignores_usage() -> None:
    fee = price("flat_fee", amount="49.99")
    assert [minor(fee, q) for q in (None, 0, "1000000")] == [4999, 4999, 4999]
    assert fee.billing_timing == "in_advance"
    line = rate(fee).breakdown
    assert [(item.kind, item.amount) for item in line] == [(LineKind.FLAT_FEE, D("49.99"))]
    # Already billed: nothing more is owed as usage grows.
    assert rate_increment(fee, 0, 500).amount_minor == 0


@pytest.mark.parametrize(
    ("unit_price", "quantity", "currency", "rounding", "amount", "amount_minor"),
    [
        ("0.000002", "1234567", "USD", "half_up", "2.469134", 247),
        ("0.000002", "1234567", "USD", "down", "2.469134", 246),
        ("0.000002", "1234567", "USD", "up", "2.469134", 247),
        ("0.005", "1", "USD", "half_up", "0.005", 1),
        ("0.005", "1", "USD", "half_even", "0.005", 0),
        ("0.005", "1", "USD", "down", "0.005", 0),
        ("0.015", "1", "USD", "half_even", "0.015", 2),
        ("1.5", "3", "JPY", "half_up", "4.5", 5),
        ("1.5", "3", "JPY", "half_even", "4.5", 4),
        ("0.0005", "3", "KWD", "half_up", "0.0015", 2),
        ("0.00001", "15", "CREDITS", "half_up", "0.00015", 2),
        ("0.25", "0", "USD", "up", "0", 0),
    ],
)
def test_per_unit_and_the_one_rounding(
    unit_price: str, quantity: str, currency: str, rounding: str, amount: str, amount_minor: int
) -> None:
    per_unit = price("per_unit", currency, unit_price=unit_price, rounding=rounding)
    rating = rate(per_unit, D(quantity))
    assert rating.amount == D(amount)
    assert rating.amount_minor == amount_minor


# ----- package -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rounding", "free_units", "quantity", "packages", "amount"),
    [
        ("up", "0", "0", 0, "0"),
        ("up", "0", "1", 1, "5"),
        ("up", "0", "200", 2, "10"),
        ("up", "0", "250", 3, "15"),
        ("down", "0", "250", 2, "10"),
        ("down", "0", "99.9", 0, "0"),
        ("up", "50", "30", 0, "0"),
        ("up", "50", "250", 2, "10"),
        ("up", "50", "251", 3, "15"),
        ("down", "50", "251", 2, "10"),
        ("up", "0", "100.5", 2, "10"),
    ],
)
def test_package(rounding: str, free_units: str, quantity: str, packages: int, amount: str) -> None:
    package = price("package", package_size=100, package_price="5", package_rounding=rounding, free_units=free_units)
    rating = rate(package, D(quantity))
    assert rating.amount == D(amount)
    packages_line = next(line for line in rating.breakdown if line.kind is LineKind.PACKAGES)
    assert packages_line.quantity == packages
    if D(free_units):
        free_line = rating.breakdown[0]
        assert free_line.kind is LineKind.FREE_UNITS and free_line.quantity == min(D(quantity), D(free_units))


# ----- graduated ---------------------------------------------------------------------------------

API_TIERS = [
    {"up_to": 1000, "unit_price": "0"},
    {"up_to": 10000, "unit_price": "0.002", "flat_fee": "5"},
    {"unit_price": "0.001"},
]


@pytest.mark.parametrize(
    ("bounds", "quantity", "amount"),
    [
        ("inclusive", "0", "0"),
        ("inclusive", "999", "0"),
        ("inclusive", "1000", "0"),  # the 1000th unit is still in the free tier; tier 2 not entered
        ("exclusive", "1000", "5"),  # exactly on the bound: tier 2 is entered, its flat fee is charged
        ("inclusive", "1000.5", "5.001"),
        ("inclusive", "1001", "5.002"),
        ("exclusive", "1001", "5.002"),
        ("inclusive", "10000", "23"),  # 9000 × 0.002 + 5
        ("exclusive", "10000", "23"),  # tier 3 has no flat fee, so the bound changes nothing here
        ("inclusive", "15000", "28"),  # 0 + 18 + 5 + 5000 × 0.001
    ],
)
def test_graduated(bounds: str, quantity: str, amount: str) -> None:
    graduated = price("graduated", tiers=API_TIERS, tier_bounds=bounds)
    assert exact(graduated, quantity) == D(amount)


def test_graduated_breakdown_shows_each_tier_entered() -> None:
    rating = rate(price("graduated", tiers=API_TIERS), D(15000))
    assert [(line.kind, line.tier, line.quantity, line.amount) for line in rating.breakdown] == [
        (LineKind.UNITS, 1, D(1000), D(0)),
        (LineKind.UNITS, 2, D(9000), D(18)),
        (LineKind.TIER_FLAT_FEE, 2, D(1), D(5)),
        (LineKind.UNITS, 3, D(5000), D(5)),
    ]
    assert (rating.breakdown[1].tier_start, rating.breakdown[1].tier_end) == (D(1000), D(10000))
    assert rating.breakdown[3].tier_end is None


FIRST_TIER_FEE = [{"up_to": 100, "unit_price": "0.1", "flat_fee": "10"}, {"unit_price": "0.05"}]


@pytest.mark.parametrize(
    ("model", "at_zero", "quantity", "amount"),
    [
        ("graduated", False, "0", "0"),  # default: no usage, no first-tier flat fee
        ("graduated", True, "0", "10"),  # Stripe-like: the first tier's flat fee is owed at zero
        ("graduated", False, "0.001", "10.0001"),
        ("graduated", False, "50", "15"),
        ("graduated", False, "150", "22.5"),  # 10 + 10 + 50 × 0.05
        ("volume", False, "0", "0"),
        ("volume", True, "0", "10"),
        ("volume", False, "50", "15"),
        ("volume", False, "150", "7.5"),  # every unit at 0.05; tier 2 has no flat fee
    ],
)
def test_first_tier_flat_fee_at_zero_usage(model: str, at_zero: bool, quantity: str, amount: str) -> None:
    tiered = price(model, tiers=FIRST_TIER_FEE, flat_fee_at_zero_usage=at_zero)
    assert exact(tiered, quantity) == D(amount)


# ----- volume ------------------------------------------------------------------------------------

VOLUME_TIERS = [
    {"up_to": 100, "unit_price": "1"},
    {"up_to": 1000, "unit_price": "0.5", "flat_fee": "20"},
    {"unit_price": "0.25"},
]


@pytest.mark.parametrize(
    ("bounds", "quantity", "amount", "tier"),
    [
        ("inclusive", "0", "0", 1),
        ("inclusive", "1", "1", 1),
        ("inclusive", "100", "100", 1),
        ("exclusive", "100", "70", 2),  # 100 × 0.5 + 20
        ("inclusive", "100.5", "70.25", 2),
        ("inclusive", "500", "270", 2),
        ("inclusive", "1000", "520", 2),
        ("exclusive", "1000", "250", 3),
        ("inclusive", "2000", "500", 3),
    ],
)
def test_volume(bounds: str, quantity: str, amount: str, tier: int) -> None:
    rating = rate(price("volume", tiers=VOLUME_TIERS, tier_bounds=bounds), D(quantity))
    assert rating.amount == D(amount)
    assert rating.breakdown[0].tier == tier


# ----- percentage --------------------------------------------------------------------------------

CARD = {"rate_percent": "2.9", "fixed_fee_per_event": "0.30"}
PAYMENTS = EventValues((D(100), D(10), D("0.5")))


@pytest.mark.parametrize(
    ("fields", "amount", "amount_minor"),
    [
        ({}, "4.1045", 410),  # 3.20 + 0.59 + 0.3145
        ({"per_event_minimum": "0.50"}, "4.29", 429),  # the 0.5 payment is raised by 0.1855
        ({"per_event_maximum": "3"}, "3.9045", 390),  # the 100 payment is capped (−0.20)
        ({"per_event_minimum": "0.50", "per_event_maximum": "3"}, "4.09", 409),
        ({"free_events": 1}, "0.9045", 90),  # the first payment is free, fee and all
        ({"free_events": 5}, "0", 0),
        ({"free_amount": "105"}, "1.0595", 106),  # 0.30 + (5 × 2.9% + 0.30) + 0.3145
        ({"free_events": 1, "free_amount": "4"}, "0.7885", 79),  # 6 × 2.9% + 0.30 + 0.3145
    ],
)
def test_percentage_per_event(fields: dict[str, object], amount: str, amount_minor: int) -> None:
    rating = rate(price("percentage", **CARD, **fields), PAYMENTS)
    assert rating.amount == D(amount)
    assert rating.amount_minor == amount_minor
    assert rating.quantity == D("110.5") and rating.event_count == 3


def test_percentage_breakdown_is_a_per_event_summary() -> None:
    fields = {"per_event_minimum": "0.50", "per_event_maximum": "3", "free_events": 0}
    rating = rate(price("percentage", **CARD, **fields), PAYMENTS)
    assert [(line.kind, line.quantity, line.amount) for line in rating.breakdown] == [
        (LineKind.PERCENTAGE, D("110.5"), D("3.2045")),
        (LineKind.EVENT_FEES, D(3), D("0.9")),
        (LineKind.PER_EVENT_MINIMUM, D(1), D("0.1855")),
        (LineKind.PER_EVENT_MAXIMUM, D(1), D("-0.2")),
    ]


def test_percentage_from_a_summary_or_a_quantity() -> None:
    card = price("percentage", **CARD)
    assert exact(card, EventSummary(3, D("110.5"))) == D("4.1045")  # the same as event by event
    assert exact(price("percentage", **CARD, free_amount="105"), EventSummary(3, D("110.5"))) == D("1.0595")
    assert exact(price("percentage", rate_percent="1"), D(1000)) == D(10)
    with pytest.raises(Rejected) as rejected:
        rate(card, D(1000))  # a fee per event needs a count
    assert rejected.value.rejection.code == "usage_must_have_event_count"
    with pytest.raises(Rejected) as rejected:
        rate(price("percentage", **CARD, per_event_minimum="0.5"), EventSummary(3, D("110.5")))
    assert rejected.value.rejection.code == "usage_must_have_event_values"


# ----- matrix ------------------------------------------------------------------------------------

MATRIX = {
    "dimensions": ["model", "region"],
    "rates": [
        {"values": ["gpt", "eu"], "unit_price": "0.01"},
        {"values": ["gpt", "us"], "unit_price": "0.008"},
        {"values": ["claude", "eu"], "unit_price": "0.012"},
    ],
}
TOKENS = {("gpt", "eu"): 100, ("gpt", "us"): 1000, ("claude", "eu"): 50}


def test_matrix() -> None:
    rating = rate(price("matrix", **MATRIX), GroupedQuantities.of(TOKENS))
    assert rating.amount == D("9.6")  # 1 + 8 + 0.6
    assert [(line.group, line.amount) for line in rating.breakdown] == [
        (("claude", "eu"), D("0.6")),
        (("gpt", "eu"), D(1)),
        (("gpt", "us"), D(8)),
    ]
    assert rating.quantity == D(1150)


def test_matrix_without_a_rate_uses_the_default_or_refuses() -> None:
    usage = GroupedQuantities.of({**TOKENS, ("claude", "us"): 20, ("gpt", None): 10})
    assert exact(price("matrix", **MATRIX, default_unit_price="0.02"), usage) == D("10.2")  # + 30 × 0.02
    with pytest.raises(Rejected) as rejected:
        rate(price("matrix", **MATRIX), usage)
    assert rejected.value.rejection.code == "matrix_rate_must_exist"
    assert "model=claude, region=us" in rejected.value.rejection.message
    with pytest.raises(Rejected) as rejected:
        rate(price("matrix", **MATRIX), D(10))
    assert rejected.value.rejection.code == "usage_must_be_grouped"


# ----- minimum and maximum per period; the quantity transform -----------------------------------


@pytest.mark.parametrize(
    ("quantity", "apply_minimum", "amount", "adjustment"),
    [
        ("0", True, "5", LineKind.MINIMUM),  # a minimum is owed even without usage
        ("100", True, "5", LineKind.MINIMUM),
        ("100", False, "1", None),
        ("2000", True, "20", None),
        ("1000000", True, "100", LineKind.MAXIMUM),
    ],
)
def test_minimum_and_maximum_per_period(
    quantity: str, apply_minimum: bool, amount: str, adjustment: LineKind | None
) -> None:
    bounded = price("per_unit", unit_price="0.01", minimum_amount="5", maximum_amount="100")
    rating = rate(bounded, D(quantity), apply_minimum=apply_minimum)
    assert rating.amount == D(amount)
    assert (rating.breakdown[-1].kind if rating.breakdown[-1].kind is not LineKind.UNITS else None) == adjustment


@pytest.mark.parametrize(
    ("rounding", "tokens", "millions", "amount"),
    [
        ("up", "1500001", "2", "4"),
        ("up", "1000000", "1", "2"),
        ("down", "1999999", "1", "2"),
        ("half_up", "1500000", "2", "4"),
        ("half_up", "1499999", "1", "2"),
        ("none", "1500000", "1.5", "3"),
        ("none", "1", "0.000001", "0.000002"),
    ],
)
def test_quantity_transform(rounding: str, tokens: str, millions: str, amount: str) -> None:
    per_million = price("per_unit", unit_price="2", quantity_transform={"divide_by": "1000000", "rounding": rounding})
    rating = rate(per_million, D(tokens))
    assert (rating.quantity, rating.quantity_priced, rating.amount) == (D(tokens), D(millions), D(amount))


def test_a_quotient_that_does_not_terminate_is_kept_to_60_digits() -> None:
    thirds = price("per_unit", unit_price="3", quantity_transform={"divide_by": "3"})
    assert minor(thirds, 1) == 100  # 0.333…(60 digits) × 3 rounds to 1.00
    assert minor(price("graduated", tiers=API_TIERS, quantity_transform={"divide_by": 1000, "rounding": "up"}), 1) == 0


def test_matrix_transform_applies_per_group() -> None:
    per_thousand = price("matrix", **MATRIX, quantity_transform={"divide_by": 1000, "rounding": "up"})
    # each group rounds up to one thousand: 0.01 + 0.008 + 0.012
    assert exact(per_thousand, GroupedQuantities.of(TOKENS)) == D("0.030")


def test_a_line_amount_longer_than_60_digits_is_rounded_once() -> None:
    # 12345678.129999…9 with 56 nines after the cent: exact, 64 significant digits. Rounded down it is
    # 12345678.12; rounded to 60 digits on the way it would have become 12345678.13.
    tiered = price(
        "graduated",
        tiers=[{"up_to": None, "unit_price": "0.000000000000000001", "flat_fee": "12345678.129999999999999999"}],
        rounding="down",
    )
    usage = D("0." + "9" * 38)
    assert exact(tiered, usage) == D("12345678.12" + "9" * 54)
    assert minor(tiered, usage) == 1234567812


# ----- incremental rating ------------------------------------------------------------------------


def test_increments_round_as_the_difference_of_rounded_totals() -> None:
    per_unit = price("per_unit", unit_price="0.004")  # every unit is 0.4 cent
    billed = [0, 1, 2, 3, 4, 5]
    steps = [rate_increment(per_unit, a, b) for a, b in itertools.pairwise(billed)]
    assert [step.amount_minor for step in steps] == [0, 1, 0, 1, 0]  # totals 0.4→0, 0.8→1, 1.2→1, 1.6→2, 2.0→2
    assert sum(step.amount_minor for step in steps) == minor(per_unit, 5) == 2
    assert steps[1].amount == D("0.004")
    down = rate_increment(per_unit, Quantity(D(5)), Quantity(D(3)))  # usage corrected down: a credit
    assert (down.amount, down.amount_minor) == (D("-0.008"), -1)
