"""Threshold billing in the core: what is accrued, when a threshold is crossed, what the threshold
invoice holds, and that threshold invoices plus the period's invoice bill exactly what the period's
invoice alone would have (tables, then a Hypothesis property over graduated, volume and package
prices)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.core.invoicing import (
    THRESHOLD_MINOR_MAX,
    BilledLine,
    BillingThreshold,
    Coupon,
    CouponDuration,
    DurationKind,
    PriceRef,
    Redemption,
    UsageReading,
    check_threshold_amount,
    check_threshold_currency,
    decide_threshold_invoice,
    propose,
)
from tally.core.periods import Period
from tally.core.rating import Graduated, Package, PerUnit, Price, Quantity, Tier, Volume
from tally.core.rejections import Rejected
from tests.core.invoicing.builders import (
    EUR,
    PLATFORM_ITEM,
    TOKENS,
    TOKENS_ITEM,
    USD,
    brief,
    context,
    readings,
    record,
    started,
    subscription,
)
from tests.core.subscriptions.builders import utc

JAN = utc(2026, 1, 1)
FEB = utc(2026, 2, 1)
MONTH = Period(JAN, FEB)


def _so_far(quantity: int | Decimal, through: datetime, *, period: Period = MONTH) -> UsageReading:
    return UsageReading(
        subscription_id="sub_1",
        price_id="tokens",
        period=period,
        usage=Quantity(Decimal(quantity)),
        windows=(Period(period.start, through),),
        progressive=True,
    )


def _threshold(amount_minor: int, subscription_id: str = "sub_1") -> BillingThreshold:
    return BillingThreshold(subscription_id=subscription_id, amount_minor=amount_minor, currency=USD)


# ----- the setting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (0, "billing_threshold_out_of_range"),
        (-1, "billing_threshold_out_of_range"),
        (THRESHOLD_MINOR_MAX + 1, "billing_threshold_out_of_range"),
        (True, "billing_threshold_must_be_minor_units"),
        (Decimal("10.5"), "billing_threshold_must_be_minor_units"),
        ("100", "billing_threshold_must_be_minor_units"),
        (10.0, "billing_threshold_must_be_minor_units"),
    ],
)
def test_a_threshold_amount_is_positive_whole_minor_units_and_bounded(amount: object, code: str) -> None:
    with pytest.raises(Rejected) as refused:
        check_threshold_amount(amount)
    assert refused.value.rejection.code == code
    assert refused.value.rejection.field == "billing_threshold.amount_minor"


def test_a_threshold_amount_at_its_bounds_is_accepted() -> None:
    assert check_threshold_amount(1) == 1
    assert check_threshold_amount(THRESHOLD_MINOR_MAX) == THRESHOLD_MINOR_MAX


def test_a_threshold_is_in_the_subscriptions_currency() -> None:
    check_threshold_currency(None, "USD")
    check_threshold_currency("USD", "USD")
    with pytest.raises(Rejected) as refused:
        check_threshold_currency("EUR", "USD")
    assert refused.value.rejection.code == "billing_threshold_currency_must_match_subscription"


def test_thresholds_must_match_the_invoice_currency_and_be_distinct() -> None:
    mid = utc(2026, 1, 10)
    ctx = context(mid, subscriptions=(subscription(started(TOKENS_ITEM), through=mid),), usage=(_so_far(10, mid),))
    with pytest.raises(Rejected) as refused:
        decide_threshold_invoice(ctx, [BillingThreshold(subscription_id="sub_1", amount_minor=1, currency=EUR)])
    assert refused.value.rejection.code == "billing_threshold_currency_must_match_invoice"
    with pytest.raises(Rejected) as twice:
        decide_threshold_invoice(ctx, [_threshold(1), _threshold(2)])
    assert twice.value.rejection.code == "billing_thresholds_must_be_distinct"


# ----- deciding ------------------------------------------------------------------------------------

# TOKENS: the first 1,000 free, then 1 cent each. Threshold $500 = 50,000 cents.
THRESHOLD = 50_000


@pytest.mark.parametrize(
    ("tokens_so_far", "accrued", "invoiced"),
    [
        (0, 0, False),
        (1_000, 0, False),  # inside the free tier: nothing accrued, nothing on an invoice
        (50_999, 49_999, False),  # one cent short
        (51_000, 50_000, True),  # exactly the threshold: invoiced (≥)
        (200_000, 199_000, True),
    ],
)
def test_the_threshold_is_crossed_when_the_accrued_usage_reaches_it(
    tokens_so_far: int, accrued: int, invoiced: bool
) -> None:
    mid = utc(2026, 1, 10)
    month = subscription(started(TOKENS_ITEM), through=mid)
    decision = decide_threshold_invoice(
        context(mid, subscriptions=(month,), usage=(_so_far(tokens_so_far, mid),)), [_threshold(THRESHOLD)]
    )
    assert [(a.subscription_id, a.accrued_minor, a.crossed) for a in decision.accruals] == [
        ("sub_1", accrued, invoiced)
    ]
    if invoiced:
        assert decision.proposal is not None
        assert brief(decision.proposal.lines) == [("usage", "tokens", "2026-01-01", accrued)]
        assert decision.proposal.lines[0].billed().provisional
    else:
        assert decision.proposal is None


def test_only_usage_of_open_periods_is_on_a_threshold_invoice() -> None:
    # A platform fee due in advance and last month's closing usage belong to the period invoice
    # (the draft); the threshold invoice holds February's usage so far only.
    mid = utc(2026, 2, 10)
    sub = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=mid)
    closing = readings(sub, {"tokens": 500_000})
    so_far = _so_far(101_000, mid, period=Period(FEB, utc(2026, 3, 1)))
    ctx = context(mid, subscriptions=(sub,), usage=(*closing, so_far))
    decision = decide_threshold_invoice(ctx, [_threshold(THRESHOLD)])
    assert decision.proposal is not None
    assert brief(decision.proposal.lines) == [("usage", "tokens", "2026-02-01", 100_000)]
    # The same context proposes everything for the upcoming invoice.
    assert len(propose(ctx).lines) > 1


def test_accrued_is_net_of_what_earlier_threshold_invoices_billed() -> None:
    first_at, second_at, third_at = utc(2026, 1, 10), utc(2026, 1, 15), utc(2026, 1, 20)
    first = decide_threshold_invoice(
        context(
            first_at,
            subscriptions=(subscription(started(TOKENS_ITEM), through=first_at),),
            usage=(_so_far(61_000, first_at),),
        ),
        [_threshold(THRESHOLD)],
    )
    assert first.proposal is not None
    billed = record((), first.proposal)
    # 20,000 more tokens: $200 more accrued, under the threshold — no invoice.
    second = decide_threshold_invoice(
        context(
            second_at,
            subscriptions=(subscription(started(TOKENS_ITEM), through=second_at),),
            usage=(_so_far(81_000, second_at),),
            billed=billed,
        ),
        [_threshold(THRESHOLD)],
    )
    assert [a.accrued_minor for a in second.accruals] == [20_000]
    assert second.proposal is None
    # 60,000 tokens more since the first invoice: crossed again, the correction line of the same key.
    third = decide_threshold_invoice(
        context(
            third_at,
            subscriptions=(subscription(started(TOKENS_ITEM), through=third_at),),
            usage=(_so_far(121_000, third_at),),
            billed=billed,
        ),
        [_threshold(THRESHOLD)],
    )
    assert third.proposal is not None
    assert [(line.sequence, line.amount_minor, line.amount_minor_total) for line in third.proposal.lines] == [
        (1, 60_000, 120_000)
    ]


def test_a_discount_on_the_usage_counts_against_the_threshold_and_travels_with_it() -> None:
    mid = utc(2026, 1, 10)
    month = subscription(started(TOKENS_ITEM), through=mid)
    half_off = Redemption(
        redemption_id="red-1",
        coupon=Coupon(coupon_id="half", percent_off=Decimal(50), duration=CouponDuration(DurationKind.FOREVER)),
        redeemed_at=JAN,
    )
    ctx = context(mid, subscriptions=(month,), usage=(_so_far(81_000, mid),), redemptions=(half_off,))
    # $800 of usage, $400 after the coupon: under a $500 threshold.
    under = decide_threshold_invoice(ctx, [_threshold(THRESHOLD)])
    assert [a.accrued_minor for a in under.accruals] == [40_000]
    assert under.proposal is None
    over = decide_threshold_invoice(ctx, [_threshold(40_000)])
    assert over.proposal is not None
    assert brief(over.proposal.lines) == [
        ("usage", "tokens", "2026-01-01", 80_000),
        ("discount", "tokens", "2026-01-01", -40_000),
    ]
    assert over.proposal.totals.total_minor == 40_000


def test_a_subscription_without_a_threshold_is_never_on_a_threshold_invoice() -> None:
    mid = utc(2026, 1, 10)
    one = subscription(started(TOKENS_ITEM), through=mid, sid="sub_1")
    two = subscription(started(TOKENS_ITEM), through=mid, sid="sub_2")
    usage = (_so_far(900_000, mid), dataclasses.replace(_so_far(900_000, mid), subscription_id="sub_2"))
    decision = decide_threshold_invoice(context(mid, subscriptions=(one, two), usage=usage), [_threshold(THRESHOLD)])
    assert decision.proposal is not None
    assert {line.key.subscription_id for line in decision.proposal.lines} == {"sub_1"}


def test_a_minimum_is_never_on_a_threshold_invoice_and_is_owed_with_the_period() -> None:
    with_minimum = dataclasses.replace(TOKENS, price=dataclasses.replace(TOKENS.price, minimum_amount=Decimal(1000)))
    mid = utc(2026, 1, 10)
    open_month = subscription(started(TOKENS_ITEM), through=mid, prices=(with_minimum,))
    decision = decide_threshold_invoice(
        context(mid, subscriptions=(open_month,), usage=(_so_far(61_000, mid),)), [_threshold(THRESHOLD)]
    )
    assert decision.proposal is not None
    assert brief(decision.proposal.lines) == [("usage", "tokens", "2026-01-01", 60_000)]
    month = subscription(started(TOKENS_ITEM), through=FEB, prices=(with_minimum,))
    closing = propose(
        context(
            FEB,
            subscriptions=(month,),
            usage=readings(month, {"tokens": 71_000}),
            billed=record((), decision.proposal),
        )
    )
    # $700 of usage in all, $600 of it billed: $100 more, and $300 up to the $1,000 minimum.
    assert brief(closing.lines) == [
        ("usage", "tokens", "2026-01-01", 10_000),
        ("usage_minimum", "tokens", "2026-01-01", 30_000),
    ]


# ----- the property: thresholds change when, never what --------------------------------------------

PRICE_MODELS = {
    "graduated": Graduated(
        tiers=(
            Tier(up_to=Decimal(100), unit_price=Decimal("0.50")),
            Tier(up_to=Decimal(1000), unit_price=Decimal("0.2"), flat_fee=Decimal(5)),
            Tier(up_to=None, unit_price=Decimal("0.013")),
        )
    ),
    "volume": Volume(
        tiers=(
            Tier(up_to=Decimal(100), unit_price=Decimal("0.50")),
            Tier(up_to=Decimal(1000), unit_price=Decimal("0.3"), flat_fee=Decimal(2)),
            Tier(up_to=None, unit_price=Decimal("0.011")),
        )
    ),
    "package": Package(package_size=Decimal(250), package_price=Decimal("7.77"), free_units=Decimal(40)),
    "per_unit": PerUnit(unit_price=Decimal("0.0037")),
}


@settings(max_examples=150, deadline=None)
@given(
    model=st.sampled_from(sorted(PRICE_MODELS)),
    increments=st.lists(st.integers(min_value=0, max_value=3_000), min_size=1, max_size=12),
    threshold_minor=st.integers(min_value=1, max_value=40_000),
    late=st.integers(min_value=0, max_value=2_000),
)
def test_threshold_invoices_and_the_period_invoice_bill_what_the_period_invoice_alone_would(
    model: str, increments: list[int], threshold_minor: int, late: int
) -> None:
    price = PriceRef(price_id="tokens", price=Price(unit=USD, model=PRICE_MODELS[model], meter="tokens"), product="ai")
    prices = (price,)
    billed: tuple[BilledLine, ...] = ()
    threshold_total = 0
    so_far = 0
    for day, increment in enumerate(increments, start=1):
        so_far += increment
        at = JAN + timedelta(days=day * 2, hours=3)
        decision = decide_threshold_invoice(
            context(
                at,
                subscriptions=(subscription(started(TOKENS_ITEM), through=at, prices=prices),),
                usage=(_so_far(so_far, at),),
                billed=billed,
            ),
            [_threshold(threshold_minor)],
        )
        (accrual,) = decision.accruals
        if decision.proposal is None:
            assert accrual.accrued_minor < threshold_minor
            continue
        assert accrual.accrued_minor >= threshold_minor
        assert decision.proposal.totals.subtotal_minor == accrual.accrued_minor
        threshold_total += decision.proposal.totals.total_minor
        billed = record(billed, decision.proposal)
    # Usage can also arrive after the last evaluation; the period's reading holds all of it.
    total_usage = so_far + late
    month = subscription(started(TOKENS_ITEM), through=FEB, prices=prices)
    closing = propose(
        context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": total_usage}), billed=billed)
    )
    alone = propose(context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": total_usage})))
    assert threshold_total + closing.totals.total_minor == alone.totals.total_minor
    # Key by key: each key carries in all what it carries on the period invoice without thresholds.
    carried: dict[object, int] = {}
    for line in (*billed, *(line.billed() for line in closing.lines)):
        carried[line.key] = carried.get(line.key, 0) + line.amount_minor
    assert {key: amount for key, amount in carried.items() if amount} == {
        line.key: line.amount_minor for line in alone.lines if line.amount_minor
    }
    # Recorded, the period is billed in full: proposing again proposes nothing.
    assert propose(
        context(
            FEB, subscriptions=(month,), usage=readings(month, {"tokens": total_usage}), billed=record(billed, closing)
        )
    ).is_empty
