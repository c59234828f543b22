"""Money: units, the one rounding function, exact parsing, and allocation that always sums."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.core import money
from tally.core.money import RoundingMode, allocate, allocate_evenly, currency, custom_unit, round_to_unit
from tally.core.rejections import Rejected


@pytest.mark.parametrize(
    ("code", "scale"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3), ("TND", 3), ("CLF", 4), ("ISK", 0)],
)
def test_iso_minor_units(code: str, scale: int) -> None:
    assert currency(code).scale == scale


def test_unknown_currency_and_bad_custom_units_are_rejected() -> None:
    for call, code in (
        (lambda: currency("XXY"), "currency_must_be_known"),
        (lambda: currency("usd"), "currency_must_be_known"),
        (lambda: custom_unit("USD", 2), "unit_code_must_not_be_a_currency"),
        (lambda: custom_unit("credits", 2), "unit_code_must_be_upper_case"),
        (lambda: custom_unit("CREDITS", 19), "unit_scale_out_of_range"),
    ):
        with pytest.raises(Rejected) as error:
            call()
        assert error.value.rejection.code == code


@pytest.mark.parametrize(
    ("value", "unit", "mode", "expected"),
    [
        ("1.005", "USD", RoundingMode.HALF_UP, 101),
        ("1.005", "USD", RoundingMode.HALF_EVEN, 100),
        ("1.015", "USD", RoundingMode.HALF_EVEN, 102),
        ("-1.005", "USD", RoundingMode.HALF_UP, -101),
        ("-1.005", "USD", RoundingMode.HALF_EVEN, -100),
        ("0.4999999999999", "JPY", RoundingMode.HALF_UP, 0),
        ("0.5", "JPY", RoundingMode.HALF_UP, 1),
        ("0.5", "JPY", RoundingMode.HALF_EVEN, 0),
        ("1.2345", "KWD", RoundingMode.HALF_UP, 1235),
        ("0.000002", "USD", RoundingMode.UP, 1),
        ("0.009", "USD", RoundingMode.DOWN, 0),
        # A per-token price times a large count stays exact until the one rounding.
        ("0.000002", "USD", RoundingMode.HALF_UP, 0),
    ],
)
def test_round_to_unit_table(value: str, unit: str, mode: RoundingMode, expected: int) -> None:
    assert round_to_unit(Decimal(value), currency(unit), mode) == expected


def test_tiny_unit_prices_are_exact_before_rounding() -> None:
    price = Decimal("0.000002")
    tokens = Decimal(123_456_789)
    assert price * tokens == Decimal("246.913578")
    assert round_to_unit(price * tokens, currency("USD")) == 24_691


def test_decimal_parsing_refuses_extra_digits() -> None:
    assert money.minor_from_decimal(Decimal("12.34"), currency("USD")) == 1234
    assert money.minor_from_decimal(Decimal("12.340000"), currency("USD")) == 1234
    assert money.minor_from_decimal(Decimal("7"), currency("JPY")) == 7
    for value, unit in (("12.345", "USD"), ("0.5", "JPY"), ("1.0001", "KWD")):
        with pytest.raises(Rejected) as error:
            money.minor_from_decimal(Decimal(value), currency(unit))
        assert error.value.rejection.code == "amount_exceeds_unit_precision"
    with pytest.raises(Rejected):
        money.minor_from_decimal(Decimal("NaN"), currency("USD"))


def test_floats_are_refused_outright() -> None:
    with pytest.raises(TypeError):
        round_to_unit(1.005, currency("USD"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        allocate(100, [0.5, 0.5])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("amount", "weights", "expected"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (5, [Decimal("0.5"), Decimal("0.25"), Decimal("0.25")], [3, 1, 1]),
        (1, [1, 1], [1, 0]),
        (0, [3, 7], [0, 0]),
        (10, [0, 1], [0, 10]),
        (7, [2, 3, 2], [2, 3, 2]),
    ],
)
def test_allocation_table(amount: int, weights: list[int | Decimal], expected: list[int]) -> None:
    assert allocate(amount, weights) == expected


@given(
    amount=st.integers(min_value=-(10**15), max_value=10**15),
    weights=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=50).filter(any),
)
def test_allocation_sums_exactly_and_is_fair(amount: int, weights: list[int]) -> None:
    parts = allocate(amount, weights)
    assert sum(parts) == amount
    total = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = Decimal(amount) * weight / total
        assert abs(Decimal(part) - exact) < 1  # never more than one unit off its exact share
        if weight == 0:
            assert part == 0
    assert parts == allocate(amount, weights)  # deterministic


@given(amount=st.integers(min_value=-(10**12), max_value=10**12), parts=st.integers(min_value=1, max_value=100))
def test_even_allocation_differs_by_at_most_one(amount: int, parts: int) -> None:
    split = allocate_evenly(amount, parts)
    assert sum(split) == amount
    assert max(split) - min(split) <= 1


@given(
    value=st.decimals(min_value=Decimal(-(10**12)), max_value=Decimal(10**12), places=14, allow_nan=False),
    mode=st.sampled_from(list(RoundingMode)),
)
def test_rounding_is_within_one_minor_unit_and_idempotent(value: Decimal, mode: RoundingMode) -> None:
    usd = currency("USD")
    rounded = round_to_unit(value, usd, mode)
    assert abs(Decimal(rounded) - value * 100) < 1
    back = money.decimal_from_minor(rounded, usd)
    assert round_to_unit(back, usd, mode) == rounded


@pytest.mark.parametrize("mode", list(RoundingMode))
def test_the_one_rounding_is_the_only_rounding_however_many_digits(mode: RoundingMode) -> None:
    # 67 significant digits, just under a cent boundary: rounding to the computation context's 60
    # digits first would carry into the cent and round twice.
    below = Decimal("1234567890.12" + "9" * 55)
    expected = {RoundingMode.DOWN: 123456789012, RoundingMode.UP: 123456789013}.get(mode, 123456789013)
    assert round_to_unit(below, currency("USD"), mode) == expected
    just_over_half = Decimal("0.005" + "0" * 60 + "1")
    assert round_to_unit(just_over_half, currency("USD"), RoundingMode.HALF_EVEN) == 1
    assert round_to_unit(below.copy_negate(), currency("USD"), mode) == -expected


def test_a_value_with_more_digits_than_the_unit_is_refused_not_rounded() -> None:
    with pytest.raises(Rejected) as error:
        money.minor_from_decimal(Decimal("12.34" + "0" * 60 + "1"), currency("USD"))
    assert error.value.rejection.code == "amount_exceeds_unit_precision"


@given(
    whole=st.integers(min_value=0, max_value=10**15),
    fraction=st.integers(min_value=0, max_value=10**70 - 1),
    mode=st.sampled_from(list(RoundingMode)),
)
def test_rounding_a_long_amount_matches_exact_integer_arithmetic(whole: int, fraction: int, mode: RoundingMode) -> None:
    # value = whole + fraction / 10**70 USD; the exact answer in cents, from integers alone.
    value = Decimal(f"{whole}.{fraction:070d}")  # built from text: arithmetic would round it to 28 digits
    numerator, denominator = (whole * 10**70 + fraction) * 100, 10**70
    floor, remainder = divmod(numerator, denominator)
    match mode:
        case RoundingMode.DOWN:
            expected = floor
        case RoundingMode.UP:
            expected = floor + (remainder > 0)
        case RoundingMode.HALF_UP:
            expected = floor + (2 * remainder >= denominator)
        case RoundingMode.HALF_EVEN:
            expected = floor + (2 * remainder > denominator or (2 * remainder == denominator and floor % 2 == 1))
    assert round_to_unit(value, currency("USD"), mode) == expected
