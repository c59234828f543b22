"""Minimum commitments (true-ups), and tax from a per-customer rate table."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tally.core.invoicing import (
    Coupon,
    CouponDuration,
    CustomerTaxRates,
    DurationKind,
    LineKind,
    MinimumCommitment,
    Redemption,
    TaxRate,
    TaxRateTable,
    propose,
)
from tally.core.periods import Period
from tally.core.rejections import Rejected
from tests.core.invoicing.builders import (
    EUR,
    PLATFORM_ITEM,
    TOKENS_ITEM,
    USD,
    context,
    readings,
    record,
    started,
    subscription,
)
from tests.core.subscriptions.builders import utc

JAN, FEB, MAR = utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 3, 1)
JANUARY = Period(JAN, FEB)


def commitment(minimum: int, **fields: object) -> MinimumCommitment:
    return MinimumCommitment(commitment_id="c1", period=JANUARY, minimum_minor=minimum, currency=USD, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("minimum", "tokens", "true_up"),
    [
        (50_000, 11_000, 50_000 - 10_000 - 10_000),  # fee $100 + usage $100 → $300 short
        (15_000, 11_000, None),  # spend above the minimum: no line
        (20_000, 11_000, None),  # exactly the minimum
    ],
)
def test_a_minimum_is_trued_up_when_its_period_ends(minimum: int, tokens: int, true_up: int | None) -> None:
    month = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=FEB)
    proposal = propose(
        context(
            FEB, subscriptions=(month,), usage=readings(month, {"tokens": tokens}), commitments=(commitment(minimum),)
        )
    )
    found = [line.amount_minor for line in proposal.lines if line.key.kind is LineKind.MINIMUM_COMMITMENT]
    assert found == ([] if true_up is None else [true_up])


def test_spend_counts_discounts_and_late_usage_moves_the_true_up() -> None:
    month = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=FEB)
    half = Redemption(
        redemption_id="r1",
        coupon=Coupon(coupon_id="half", duration=CouponDuration(DurationKind.FOREVER), percent_off=Decimal(50)),
        redeemed_at=JAN,
    )
    ctx = context(
        FEB,
        subscriptions=(month,),
        usage=readings(month, {"tokens": 11_000}),
        commitments=(commitment(50_000),),
        redemptions=(half,),
    )
    first = propose(ctx)
    true_up = next(line for line in first.lines if line.key.kind is LineKind.MINIMUM_COMMITMENT)
    # Spend is what the customer is charged for January: ($100 + $100) × 50 %.
    assert true_up.amount_minor == 40_000
    assert true_up.explanation.commitment is not None and true_up.explanation.commitment.spend_minor == 10_000
    late = propose(
        context(
            FEB,
            subscriptions=(month,),
            usage=readings(month, {"tokens": 41_000}),
            commitments=(commitment(50_000),),
            redemptions=(half,),
            billed=record((), first),
        )
    )
    assert [(line.key.kind.value, line.sequence, line.amount_minor) for line in late.lines] == [
        ("usage", 1, 30_000),
        ("discount", 1, -15_000),
        ("minimum_commitment", 1, -15_000),
    ]


def test_an_open_period_owes_no_true_up_and_the_currency_must_match() -> None:
    month = subscription(started(PLATFORM_ITEM), through=JAN)
    proposal = propose(context(JAN, subscriptions=(month,), commitments=(commitment(50_000),)))
    assert all(line.key.kind is not LineKind.MINIMUM_COMMITMENT for line in proposal.lines)
    with pytest.raises(Rejected) as refused:
        context(JAN, commitments=(MinimumCommitment(commitment_id="c", period=JANUARY, minimum_minor=5, currency=EUR),))
    assert refused.value.rejection.code == "commitment_currency_must_match_invoice"


VAT = TaxRate(rate_id="vat", name="VAT", percent=Decimal(20), jurisdiction="FR")
REDUCED = TaxRate(rate_id="reduced", name="VAT reduced", percent=Decimal("5.5"), jurisdiction="FR")
TABLE = TaxRateTable({"cus_1": CustomerTaxRates(default=(VAT,), by_product={"ai": (REDUCED,)})})


def test_tax_per_rate_on_net_lines_rounded_once() -> None:
    month = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=FEB)
    proposal = propose(context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 1_333}), tax=TABLE))
    # Fees ($100 + $100) at 20 %; usage $3.33 at 5.5 % = 0.18315 → 0.18.
    assert [(line.rate.rate_id, line.taxable_minor, line.amount_minor) for line in proposal.tax] == [
        ("reduced", 333, 18),
        ("vat", 20_000, 4_000),
    ]
    assert proposal.totals.total_minor == 20_333 + 4_018
    untaxed = propose(
        context(FEB, customer_id="cus_2", subscriptions=(month,), usage=readings(month, {"tokens": 1_333}), tax=TABLE)
    )
    assert untaxed.tax == ()


def test_bad_tax_rates_are_refused() -> None:
    with pytest.raises(Rejected) as refused:
        TaxRate(rate_id="x", name="x", percent=Decimal(101))
    assert refused.value.rejection.code == "tax_percent_out_of_range"
    with pytest.raises(Rejected) as refused:
        CustomerTaxRates(default=(VAT, VAT))
    assert refused.value.rejection.code == "tax_rates_must_be_distinct"
