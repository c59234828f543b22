"""Coupons: percent and amount off, durations, restrictions, stacking order, reconciling, refusals."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

import pytest

from tally.core.invoicing import Coupon, CouponDuration, DurationKind, LineKind, Redemption, propose, redeem
from tally.core.rejections import Rejected
from tally.core.subscriptions import QuantityChanged
from tests.core.invoicing.builders import (
    EUR,
    PLATFORM_ITEM,
    TOKENS_ITEM,
    USD,
    context,
    readings,
    record,
    seats,
    started,
    subscription,
)
from tests.core.subscriptions.builders import utc

JAN, FEB, MAR, APR = utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 4, 1)
FOREVER = CouponDuration(DurationKind.FOREVER)
ONCE = CouponDuration(DurationKind.ONCE)


def percent(value: str, duration: CouponDuration = FOREVER, **restrictions: frozenset[str]) -> Coupon:
    return Coupon(
        coupon_id=f"pct-{value.replace('.', '_')}", duration=duration, percent_off=Decimal(value), **restrictions
    )


def amount(minor: int, duration: CouponDuration = FOREVER) -> Coupon:
    return Coupon(coupon_id=f"off-{minor}", duration=duration, amount_off_minor=minor, currency=USD)


def redeemed(coupon: Coupon, at: datetime = JAN, rid: str | None = None, **fields: str) -> Redemption:
    return Redemption(redemption_id=rid or f"r-{coupon.coupon_id}", coupon=coupon, redeemed_at=at, **fields)


def discounts(
    *coupons: Redemption, through: datetime = JAN, tokens: int | None = None, items: tuple = (PLATFORM_ITEM,)
) -> list[tuple[str, int]]:
    month = subscription(started(*items), through=through)
    usage = readings(month, {"tokens": tokens}) if tokens is not None else ()
    proposal = propose(context(through, subscriptions=(month,), usage=usage, redemptions=coupons))
    return [
        (f"{line.key.price_id}@{line.key.service_start.date()}", line.amount_minor)
        for line in proposal.lines
        if line.key.kind is LineKind.DISCOUNT
    ]


@pytest.mark.parametrize(
    ("coupons", "expected"),
    [
        # One coupon.
        ([redeemed(percent("10"))], [("platform@2026-01-01", -1000)]),
        ([redeemed(amount(2500))], [("platform@2026-01-01", -2500)]),
        # Percent before amount, whatever the order of redemption: 100 − 10 % − 10 = 80.
        (
            [redeemed(amount(1000)), redeemed(percent("10"), rid="r-later")],
            [("platform@2026-01-01", -1000), ("platform@2026-01-01", -1000)],
        ),
        # Two percents chain: 10 % then 10 % of the rest is 19 %.
        (
            [redeemed(percent("10")), redeemed(percent("10.0"), rid="r-second")],
            [("platform@2026-01-01", -1000), ("platform@2026-01-01", -900)],
        ),
        # An amount off never exceeds what the period charges.
        ([redeemed(amount(50_000))], [("platform@2026-01-01", -10000)]),
        # 100 % off leaves nothing for a later coupon.
        ([redeemed(percent("100")), redeemed(amount(500))], [("platform@2026-01-01", -10000)]),
        # Rounded once per line: 33.335 % of 100.00 is 33.335 → 33.34.
        ([redeemed(percent("33.335"))], [("platform@2026-01-01", -3334)]),
    ],
)
def test_stacking_on_one_line(coupons: list[Redemption], expected: list[tuple[str, int]]) -> None:
    assert sorted(discounts(*coupons)) == sorted(expected)


def test_durations_count_periods_from_the_redemption() -> None:
    # Redeemed mid-January: coupon period 0 is the next invoice's February fee and January's usage.
    mid = utc(2026, 1, 15)
    items = (PLATFORM_ITEM, TOKENS_ITEM)
    once = discounts(redeemed(percent("10", ONCE), at=mid), through=MAR, tokens=11_000, items=items)
    assert once == [("tokens@2026-01-01", -1000), ("platform@2026-02-01", -1000)]
    twice = discounts(
        redeemed(percent("10", CouponDuration(DurationKind.REPEATING, 2)), at=mid),
        through=APR,
        tokens=11_000,
        items=items,
    )
    assert twice == [
        ("tokens@2026-01-01", -1000),
        ("platform@2026-02-01", -1000),
        ("tokens@2026-02-01", -1000),
        ("platform@2026-03-01", -1000),
    ]
    # Redeemed with the subscription: its first fee counts.
    assert discounts(redeemed(percent("10", ONCE)), through=MAR) == [("platform@2026-01-01", -1000)]


def test_restrictions_to_prices_and_plans() -> None:
    items = (PLATFORM_ITEM, TOKENS_ITEM)
    only_tokens = redeemed(percent("50", price_ids=frozenset({"tokens"})))
    assert discounts(only_tokens, through=FEB, tokens=11_000, items=items) == [("tokens@2026-01-01", -5000)]
    other_plan = redeemed(percent("50", plan_ids=frozenset({"basic"})))
    assert discounts(other_plan, through=FEB, tokens=11_000, items=items) == []
    other_subscription = redeemed(percent("50"), subscription_id="sub_2")
    assert discounts(other_subscription, through=FEB) == []


def test_a_percent_discount_follows_prorations() -> None:
    entries = (started(seats(3)), QuantityChanged(effective_at=utc(2026, 1, 16), price_id="seats", quantity=5))
    month = subscription(*entries, through=utc(2026, 1, 16))
    proposal = propose(context(utc(2026, 1, 16), subscriptions=(month,), redemptions=(redeemed(percent("10")),)))
    assert [(line.key.kind.value, line.amount_minor) for line in proposal.lines] == [
        ("fixed_fee", 6000),
        ("discount", -600),
        ("fixed_fee_credit", -3097),
        ("discount", 310),  # the unused time's discount is given back
        ("fixed_fee", 5161),
        ("discount", -516),
    ]


def test_a_discount_is_reconciled_with_the_line_it_discounts() -> None:
    month = subscription(started(TOKENS_ITEM), through=FEB)
    coupon = (redeemed(percent("10")),)
    first = propose(context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 11_000}), redemptions=coupon))
    late = propose(
        context(
            FEB,
            subscriptions=(month,),
            usage=readings(month, {"tokens": 21_000}),
            redemptions=coupon,
            billed=record((), first),
        )
    )
    assert [(line.key.kind.value, line.sequence, line.amount_minor) for line in late.lines] == [
        ("usage", 1, 10000),
        ("discount", 1, -1000),
    ]


def test_amount_off_is_shared_in_due_order_and_stays_put() -> None:
    # $150 off per period over a $100 fee (due at the period start) and the usage (due at its end).
    items = (PLATFORM_ITEM, TOKENS_ITEM)
    coupon = redeemed(amount(15_000))
    first_context = context(JAN, subscriptions=(subscription(started(*items), through=JAN),), redemptions=(coupon,))
    first = propose(first_context)
    assert [line.amount_minor for line in first.lines if line.key.kind is LineKind.DISCOUNT] == [-10000]
    month = subscription(started(*items), through=FEB)
    second = propose(
        context(
            FEB,
            subscriptions=(month,),
            usage=readings(month, {"tokens": 11_000}),
            redemptions=(coupon,),
            billed=record((), first),
        )
    )
    # January: the fee kept its $100, the usage gets the remaining $50 of it; February's fee $100.
    assert [
        (line.key.price_id, line.key.service_start.month, line.amount_minor)
        for line in second.lines
        if line.key.kind is LineKind.DISCOUNT
    ] == [("tokens", 1, -5000), ("platform", 2, -10000)]


def test_wrong_currency_and_bad_coupons_are_refused() -> None:
    euros = Coupon(coupon_id="euros", duration=FOREVER, amount_off_minor=500, currency=EUR)
    codes = {}
    for name, call in {
        "redeem": lambda: redeem(euros, redemption_id="r1", redeemed_at=JAN, currency=USD),
        "context": lambda: context(JAN, redemptions=(redeemed(euros),)),
        "both": lambda: Coupon(
            coupon_id="x", duration=FOREVER, percent_off=Decimal(5), amount_off_minor=5, currency=USD
        ),
        "neither": lambda: Coupon(coupon_id="x", duration=FOREVER),
        "percent": lambda: Coupon(coupon_id="x", duration=FOREVER, percent_off=Decimal(101)),
        "zero": lambda: Coupon(coupon_id="x", duration=FOREVER, percent_off=Decimal(0)),
        "amount": lambda: Coupon(coupon_id="x", duration=FOREVER, amount_off_minor=0, currency=USD),
        "currency": lambda: Coupon(coupon_id="x", duration=FOREVER, amount_off_minor=5),
        "repeating": lambda: CouponDuration(DurationKind.REPEATING),
        "periods": lambda: CouponDuration(DurationKind.ONCE, 3),
        "id": lambda: Coupon(coupon_id="Has Spaces", duration=FOREVER, percent_off=Decimal(5)),
    }.items():
        with pytest.raises(Rejected) as refused:
            call()
        codes[name] = refused.value.rejection.code
    assert codes == {
        "redeem": "coupon_currency_must_match_invoice",
        "context": "coupon_currency_must_match_invoice",
        "both": "coupon_must_be_percent_or_amount",
        "neither": "coupon_must_be_percent_or_amount",
        "percent": "percent_off_out_of_range",
        "zero": "percent_off_out_of_range",
        "amount": "amount_off_must_be_positive",
        "currency": "currency_required",
        "repeating": "duration_periods_required",
        "periods": "duration_periods_not_allowed",
        "id": "coupon_id_invalid",
    }
    assert dataclasses.replace(euros, currency=USD).currency == USD


def test_amount_off_never_exceeds_the_period_net_of_its_credits() -> None:
    # Five seats ($100), all removed on January 16: 16 of 31 days credited ($51.61), $48.39 left.
    entries = (started(seats(5)), QuantityChanged(effective_at=utc(2026, 1, 16), price_id="seats", quantity=0))
    month = subscription(*entries, through=utc(2026, 1, 16))
    coupon = redeemed(amount(8_000, ONCE))
    proposal = propose(context(utc(2026, 1, 16), subscriptions=(month,), redemptions=(coupon,)))
    assert [(line.key.kind.value, line.amount_minor) for line in proposal.lines] == [
        ("fixed_fee", 10_000),
        ("discount", -4_839),
        ("fixed_fee_credit", -5_161),
    ]
    assert proposal.totals.total_minor == 0
