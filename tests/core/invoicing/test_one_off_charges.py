"""One-off charges in the pure core: what a charge's line carries (a table per pricing model), the
checks on a charge's quantity and description (a table of codes), and properties: a charge is
billed once whatever else is billed with it, and its line is quantity × price, rounded once."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.core.invoicing import LineKind, OneOffCharge, PriceRef, Proposal, propose
from tally.core.invoicing.context import InvoiceContext, check_one_off_quantity
from tally.core.money import RoundingMode
from tally.core.rating import FlatFee, Graduated, Package, PerUnit, Price, Tier
from tally.core.rejections import Rejected
from tests.core.invoicing.builders import JPY, PLATFORM_ITEM, USD, context, record, started, subscription
from tests.core.subscriptions.builders import utc

JAN = utc(2026, 1, 1)
MID_JAN = utc(2026, 1, 15)


def one_off(
    price_id: str, model: object, *, unit: object = USD, rounding: RoundingMode = RoundingMode.HALF_UP
) -> PriceRef:
    timing = None if isinstance(model, FlatFee) else "in_advance"
    return PriceRef(
        price_id=price_id,
        price=Price(unit=unit, model=model, interval=None, billing_timing=timing, rounding=rounding),  # type: ignore[arg-type]
        product="services",
        code=price_id,
    )


SETUP = one_off("setup", FlatFee(amount=Decimal(250)))
HOURS = one_off("hours", PerUnit(unit_price=Decimal("120.50")))
BOXES = one_off("boxes", Package(package_size=Decimal(10), package_price=Decimal(7)))
TIERED = one_off(
    "tiered",
    Graduated(tiers=(Tier(up_to=Decimal(10), unit_price=Decimal(5)), Tier(up_to=None, unit_price=Decimal(1)))),
)
CENTS = one_off("cents", PerUnit(unit_price=Decimal("0.333")), rounding=RoundingMode.DOWN)


def charge(price: PriceRef, quantity: Decimal | int = 1, charge_id: str = "chg_1", **fields: object) -> OneOffCharge:
    return OneOffCharge(charge_id=charge_id, price=price, at=MID_JAN, quantity=Decimal(quantity), **fields)  # type: ignore[arg-type]


def again(ctx: InvoiceContext, proposal: Proposal) -> Proposal:
    return propose(dataclasses.replace(ctx, billed=record(ctx.billed, proposal)))


@pytest.mark.parametrize(
    ("price", "quantity", "amount_minor", "shown_quantity"),
    [
        (SETUP, 1, 25_000, "1"),
        (SETUP, 3, 75_000, "3"),  # a flat fee is charged per unit of quantity, like a fee's seats
        (SETUP, Decimal("0.5"), 12_500, "0.5"),
        (HOURS, Decimal("1.5"), 18_075, "1.5"),
        (BOXES, 11, 1_400, "11"),  # two packages of ten
        (TIERED, 12, 5_200, "12"),  # 10 × 5 + 2 × 1
        (CENTS, 1, 33, "1"),  # 0.333 rounded down once, on the line
        (CENTS, 3, 99, "3"),
    ],
)
def test_a_charge_line_is_its_quantity_priced_and_rounded_once(
    price: PriceRef, quantity: Decimal | int, amount_minor: int, shown_quantity: str
) -> None:
    ctx = context(MID_JAN, one_off_charges=(charge(price, quantity, description="Onboarding"),))
    proposal = propose(ctx)
    [line] = proposal.lines
    assert (line.key.kind, line.key.reference, line.key.subscription_id) == (LineKind.ONE_OFF, "chg_1", "")
    assert (line.key.service_start, line.key.service_end, line.due_at) == (MID_JAN, MID_JAN, MID_JAN)
    assert line.amount_minor == amount_minor
    assert str(line.explanation.quantity) == shown_quantity
    assert line.explanation.price is not None and line.explanation.price.price_id == price.price_id
    assert line.description == "Onboarding"
    assert proposal.totals.total_minor == amount_minor
    assert again(ctx, proposal).is_empty


def test_a_charge_without_description_shows_its_price() -> None:
    [line] = propose(context(MID_JAN, one_off_charges=(charge(SETUP),))).lines
    assert line.description == "setup"


def test_charges_ride_with_subscription_lines_and_each_is_billed_once() -> None:
    month = subscription(started(PLATFORM_ITEM), through=MID_JAN)
    charges = (charge(SETUP, charge_id="chg_a"), charge(SETUP, charge_id="chg_b"), charge(HOURS, 2, "chg_c"))
    ctx = context(MID_JAN, subscriptions=(month,), one_off_charges=charges)
    proposal = propose(ctx)
    assert sorted((line.key.kind.value, line.key.reference, line.amount_minor) for line in proposal.lines) == [
        ("fixed_fee", "", 10_000),
        ("one_off", "chg_a", 25_000),
        ("one_off", "chg_b", 25_000),
        ("one_off", "chg_c", 24_100),
    ]
    assert again(ctx, proposal).is_empty
    # Once invoiced, a charge is no longer gathered: its billed line stays as it is, never taken back.
    after = dataclasses.replace(ctx, billed=record(ctx.billed, proposal), one_off_charges=charges[:1])
    assert propose(after).is_empty


@pytest.mark.parametrize(
    ("quantity", "code"),
    [
        (0, "charge_quantity_must_be_positive"),
        (-1, "charge_quantity_must_be_positive"),
        (Decimal("-0.5"), "charge_quantity_must_be_positive"),
        (Decimal("NaN"), "charge_quantity_must_be_positive"),
        (Decimal("Infinity"), "charge_quantity_must_be_positive"),
        (10**12 + 1, "charge_quantity_exceeds_limit"),
        (Decimal("1E+20"), "charge_quantity_exceeds_limit"),
        (Decimal("0.0000000000001"), "charge_quantity_exceeds_precision"),
        (Decimal("1.0000000000000000000000000000001"), "charge_quantity_exceeds_precision"),
        ("3", "value_must_be_number"),
        (True, "value_must_be_number"),
    ],
)
def test_bad_quantities_are_refused_with_a_precise_code(quantity: object, code: str) -> None:
    with pytest.raises(Rejected) as refused:
        check_one_off_quantity(quantity)
    assert refused.value.rejection.code == code
    with pytest.raises(Rejected) as through_the_charge:
        OneOffCharge(charge_id="chg_1", price=SETUP, at=MID_JAN, quantity=quantity)  # type: ignore[arg-type]
    assert through_the_charge.value.rejection.code == code


def test_quantities_keep_their_written_zeros_out_of_the_precision_check() -> None:
    assert check_one_off_quantity(Decimal("1.500000000000000000")) == Decimal("1.5")
    assert check_one_off_quantity(10**12) == Decimal(10**12)
    with pytest.raises(TypeError):
        check_one_off_quantity(1.5)


def test_other_bad_charges_are_refused() -> None:
    with pytest.raises(Rejected) as long_text:
        charge(SETUP, description="x" * 501)
    assert long_text.value.rejection.code == "charge_description_exceeds_limit"
    with pytest.raises(Rejected) as naive:
        OneOffCharge(charge_id="chg_1", price=SETUP, at=MID_JAN.replace(tzinfo=None))
    assert naive.value.rejection.code == "datetime_must_have_timezone"
    in_yen = one_off("yen", FlatFee(amount=Decimal(1000)), unit=JPY)
    with pytest.raises(Rejected) as currency:
        context(MID_JAN, one_off_charges=(charge(in_yen),))
    assert currency.value.rejection.code == "price_currency_must_match_invoice"
    with pytest.raises(Rejected) as twice:
        context(MID_JAN, one_off_charges=(charge(SETUP), charge(HOURS)))
    assert twice.value.rejection.code == "one_off_charges_must_be_distinct"
    huge = one_off("huge", FlatFee(amount=Decimal(10**17)))
    with pytest.raises(Rejected) as too_much:
        propose(context(MID_JAN, one_off_charges=(charge(huge, 10**6),)))
    assert too_much.value.rejection.code == "amount_exceeds_limit"


@given(
    amount=st.decimals(min_value=0, max_value=10**6, places=4),
    quantity=st.decimals(min_value=Decimal("0.001"), max_value=10**6, places=3),
    rounding=st.sampled_from(list(RoundingMode)),
)
def test_a_flat_fee_charge_is_amount_times_quantity_rounded_once(
    amount: Decimal, quantity: Decimal, rounding: RoundingMode
) -> None:
    price = one_off("fee", FlatFee(amount=amount), rounding=rounding)
    per_unit = one_off("unit", PerUnit(unit_price=amount), rounding=rounding)
    [fee_line] = propose(context(MID_JAN, one_off_charges=(charge(price, quantity),))).lines
    [unit_line] = propose(context(MID_JAN, one_off_charges=(charge(per_unit, quantity),))).lines
    # The same money whichever of the two models says "this much per unit".
    assert fee_line.amount_minor == unit_line.amount_minor
    exact = amount * quantity
    assert abs(Decimal(fee_line.amount_minor) - exact * 100) < 1
    assert fee_line.explanation.exact_amount == exact


@given(
    quantities=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=8),
    billed_first=st.integers(min_value=0, max_value=8),
)
def test_charges_are_billed_exactly_once_however_they_are_split_over_invoices(
    quantities: list[int], billed_first: int
) -> None:
    charges = tuple(charge(HOURS, quantity, f"chg_{index}") for index, quantity in enumerate(quantities))
    first_ctx = context(MID_JAN, one_off_charges=charges[:billed_first])
    first = propose(first_ctx)
    second_ctx = context(MID_JAN, one_off_charges=charges, billed=record((), first))
    second = propose(second_ctx)
    billed = [line.key.reference for line in (*first.lines, *second.lines)]
    assert sorted(billed) == sorted(c.charge_id for c in charges)
    total = sum(line.amount_minor for line in (*first.lines, *second.lines))
    assert total == sum(round(Decimal("120.50") * q * 100) for q in quantities)
    assert again(second_ctx, second).is_empty
