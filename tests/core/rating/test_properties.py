"""Properties of rating that hold for every price and every usage."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tally.core.money import RoundingMode, currency
from tally.core.rating import (
    EventValues,
    FlatFee,
    Graduated,
    GroupedQuantities,
    Matrix,
    MatrixRate,
    Package,
    PackageRounding,
    Percentage,
    PerUnit,
    Price,
    QuantityTransform,
    Tier,
    TierBounds,
    TransformRounding,
    Volume,
    price_from_document,
    rate,
    rate_increment,
)
from tally.core.rating.rate import EXACT

USD, JPY = currency("USD"), currency("JPY")

prices = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)
quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False, allow_infinity=False)
roundings = st.sampled_from(list(RoundingMode))
bounds = st.sampled_from(list(TierBounds))


@st.composite
def tier_tables(draw: st.DrawFn, max_tiers: int = 6) -> tuple[Tier, ...]:
    ups = sorted(draw(st.sets(st.decimals(min_value=1, max_value=10**6, places=2), min_size=0, max_size=max_tiers - 1)))
    uppers: list[Decimal | None] = [*ups, None]
    return tuple(Tier(up_to, draw(prices), draw(prices)) for up_to in uppers)


@st.composite
def models(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(["flat_fee", "per_unit", "package", "graduated", "volume", "percentage", "matrix"]))
    match kind:
        case "flat_fee":
            return FlatFee(draw(prices))
        case "per_unit":
            return PerUnit(draw(prices))
        case "package":
            size = draw(st.decimals(min_value="0.5", max_value=1000, places=1))
            return Package(size, draw(prices), draw(st.sampled_from(list(PackageRounding))), draw(quantities))
        case "graduated":
            return Graduated(draw(tier_tables()), draw(bounds), draw(st.booleans()))
        case "volume":
            return Volume(draw(tier_tables()), draw(bounds), draw(st.booleans()))
        case "percentage":
            low = draw(st.none() | prices)
            high = draw(st.none() | prices)
            if low is not None and high is not None and low > high:
                low, high = high, low
            return Percentage(
                draw(st.decimals(min_value=0, max_value=100, places=3)),
                draw(prices),
                low,
                high,
                draw(st.integers(0, 5)),
                draw(prices),
            )
        case _:
            values = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=3, unique=True))
            return Matrix(("model",), tuple(MatrixRate((value,), draw(prices)) for value in values), draw(prices))


@st.composite
def price_objects(draw: st.DrawFn) -> Price:
    model = draw(models())
    minimum = draw(st.none() | prices)
    maximum = draw(st.none() | prices)
    if minimum is not None and maximum is not None and minimum > maximum:
        minimum, maximum = maximum, minimum
    transform = None
    if isinstance(model, PerUnit | Package | Graduated | Volume | Matrix) and draw(st.booleans()):
        transform = QuantityTransform(
            draw(st.decimals(min_value=1, max_value=10**6, places=0)), draw(st.sampled_from(list(TransformRounding)))
        )
    return Price(
        unit=draw(st.sampled_from([USD, JPY])),
        model=model,  # type: ignore[arg-type]
        minimum_amount=minimum,
        maximum_amount=maximum,
        quantity_transform=transform,
        rounding=draw(roundings),
    )


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = EXACT.add(total, value)
    return total


def _usage_for(price: Price, values: list[Decimal]) -> object:
    if isinstance(price.model, Matrix):
        groups = ["a", "b", "c"]
        return GroupedQuantities.of({(groups[i],): value for i, value in enumerate(values[:3])})
    return EventValues(tuple(values))


@given(tier_tables(), bounds, st.booleans(), roundings, quantities, quantities)
def test_graduated_plus_increment_is_graduated(
    tiers: tuple[Tier, ...], tier_bounds: TierBounds, at_zero: bool, mode: RoundingMode, a: Decimal, b: Decimal
) -> None:
    a, b = min(a, b), max(a, b)
    price = Price(unit=USD, model=Graduated(tiers, tier_bounds, at_zero), rounding=mode)
    step = rate_increment(price, a, b)
    assert rate(price, a).amount + step.amount == rate(price, b).amount
    assert rate(price, a).amount_minor + step.amount_minor == rate(price, b).amount_minor
    assert step.amount >= 0  # graduated never decreases as usage grows


@given(st.lists(quantities, min_size=1, max_size=8), tier_tables(), roundings)
def test_increments_add_up_to_the_rounded_total_exactly(
    readings: list[Decimal], tiers: tuple[Tier, ...], mode: RoundingMode
) -> None:
    price = Price(unit=USD, model=Graduated(tiers), rounding=mode, minimum_amount=Decimal(3))
    totals = [Decimal(0), *sorted(readings)]
    steps = [rate_increment(price, prior, total) for prior, total in itertools.pairwise(totals)]
    assert (
        sum(step.amount_minor for step in steps) == rate(price, totals[-1]).amount_minor - rate(price, 0).amount_minor
    )
    assert _exact_sum(step.amount for step in steps) == rate(price, totals[-1]).amount - rate(price, 0).amount


@given(prices, prices, bounds, st.booleans(), quantities)
def test_graduated_and_volume_agree_when_one_tier_covers_everything(
    unit_price: Decimal, flat_fee: Decimal, tier_bounds: TierBounds, at_zero: bool, quantity: Decimal
) -> None:
    one_tier = (Tier(None, unit_price, flat_fee),)
    graduated = Price(unit=USD, model=Graduated(one_tier, tier_bounds, at_zero))
    volume = Price(unit=USD, model=Volume(one_tier, tier_bounds, at_zero))
    assert rate(graduated, quantity).amount == rate(volume, quantity).amount


@given(tier_tables(max_tiers=4), quantities)
def test_graduated_and_volume_agree_inside_the_first_tier(tiers: tuple[Tier, ...], quantity: Decimal) -> None:
    first = tiers[0].up_to
    if first is not None:
        quantity = min(quantity, first)
    graduated = Price(unit=USD, model=Graduated(tiers))
    volume = Price(unit=USD, model=Volume(tiers))
    assert rate(graduated, quantity).amount == rate(volume, quantity).amount


@given(price_objects(), st.lists(quantities, max_size=6))
def test_amounts_are_never_negative_and_lines_add_up(price: Price, values: list[Decimal]) -> None:
    rating = rate(price, _usage_for(price, values))  # type: ignore[arg-type]
    assert rating.amount >= 0 and rating.amount_minor >= 0
    assert _exact_sum(line.amount for line in rating.breakdown) == rating.amount
    if price.minimum_amount is not None:
        assert rating.amount >= min(price.minimum_amount, price.maximum_amount or price.minimum_amount)
    if price.maximum_amount is not None:
        assert rating.amount <= price.maximum_amount


@given(price_objects())
def test_documents_round_trip(price: Price) -> None:
    document = price.document()
    text = json.dumps(document)  # JSON-safe as it is: numbers are strings
    assert price_from_document(json.loads(text)) == price
    assert price_from_document(document).document() == document


@given(tier_tables(), bounds, quantities, quantities)
def test_graduated_is_monotonic(tiers: tuple[Tier, ...], tier_bounds: TierBounds, a: Decimal, b: Decimal) -> None:
    price = Price(unit=USD, model=Graduated(tiers, tier_bounds))
    low, high = sorted((a, b))
    assert rate(price, low).amount <= rate(price, high).amount
