"""Coupons: percent and amount off, durations, restrictions, stacking order, reconciling, refusals."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.core.invoicing import (
    BilledLine,
    Coupon,
    CouponDuration,
    DurationKind,
    InvoiceContext,
    LineKey,
    LineKind,
    Redemption,
    propose,
    redeem,
)
from tally.core.periods import Interval
from tally.core.rejections import Rejected
from tally.core.subscriptions import ItemsChanged, QuantityChanged, SubscriptionItem, TimelineEntry
from tests.core.invoicing.builders import (
    BASIC_ITEM,
    CALLS_ITEM,
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
from tests.core.subscriptions.builders import MONTH, YEAR, fee, utc

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
    # Redeemed mid-January: coupon period 0 is January, so its fee (charged on January 1, before
    # the coupon) is discounted on the next invoice, and so is January's usage.
    mid = utc(2026, 1, 15)
    items = (PLATFORM_ITEM, TOKENS_ITEM)
    once = discounts(redeemed(percent("10", ONCE), at=mid), through=MAR, tokens=11_000, items=items)
    assert once == [("platform@2026-01-01", -1000), ("tokens@2026-01-01", -1000)]
    twice = discounts(
        redeemed(percent("10", CouponDuration(DurationKind.REPEATING, 2)), at=mid),
        through=APR,
        tokens=11_000,
        items=items,
    )
    assert twice == [
        ("platform@2026-01-01", -1000),
        ("tokens@2026-01-01", -1000),
        ("platform@2026-02-01", -1000),
        ("tokens@2026-02-01", -1000),
    ]
    # Redeemed with the subscription: its first fee counts.
    assert discounts(redeemed(percent("10", ONCE)), through=MAR) == [("platform@2026-01-01", -1000)]


# ----- coupon periods are the subscription's, the same for every price ---------------------------

THREE = CouponDuration(DurationKind.REPEATING, 3)
MAY, JUN, JUL = utc(2026, 5, 1), utc(2026, 6, 1), utc(2026, 7, 1)


def covered(
    duration: CouponDuration,
    *entries: TimelineEntry,
    through: datetime,
    at: datetime = JAN,
    amount_off: int | None = None,
) -> list[tuple[str, str, str, int]]:
    """The discount lines of one redemption (10 % off, or `amount_off`) over a subscription from
    scratch, as (discounted kind, price, service start, amount), in invoice order. Usage: $100 of
    tokens and $100 of calls in every period that has any."""
    billing = subscription(*entries, through=through)
    usage = readings(billing, {"tokens": 11_000, "calls": 50_000})
    coupon = (
        Coupon(coupon_id="off", duration=duration, amount_off_minor=amount_off, currency=USD)
        if amount_off is not None
        else percent("10", duration)
    )
    proposal = propose(context(through, subscriptions=(billing,), usage=usage, redemptions=(redeemed(coupon, at),)))
    found = []
    for line in proposal.lines:
        base = line.key.discount_base()
        if base is not None:
            found.append((base.kind.value, base.price_id, base.service_start.date().isoformat(), line.amount_minor))
    return found


def changed(at: datetime, *items: SubscriptionItem, prorate: bool = True) -> ItemsChanged:
    return ItemsChanged(effective_at=at, items=items, prorate=prorate)


@pytest.mark.parametrize(
    ("duration", "entries", "through", "at", "expected"),
    [
        pytest.param(
            ONCE,
            (started(PLATFORM_ITEM, TOKENS_ITEM), changed(MAR, BASIC_ITEM, TOKENS_ITEM)),
            APR,
            JAN,
            [("fixed_fee", "platform", "2026-01-01", -1000), ("usage", "tokens", "2026-01-01", -1000)],
            id="once: a plan changed to at a later period end is not discounted",
        ),
        pytest.param(
            THREE,
            (started(PLATFORM_ITEM, TOKENS_ITEM), changed(JUN, BASIC_ITEM, TOKENS_ITEM)),
            JUL,
            JAN,
            [
                *(("fixed_fee", "platform", f"2026-0{m}-01", -1000) for m in (1, 2, 3)),
                *(("usage", "tokens", f"2026-0{m}-01", -1000) for m in (1, 2, 3)),
            ],
            id="repeating: a fee joining after the span gets no periods of its own",
        ),
        pytest.param(
            THREE,
            (started(PLATFORM_ITEM), changed(utc(2026, 2, 11), PLATFORM_ITEM, seats(2), CALLS_ITEM)),
            MAY,
            JAN,
            [
                ("fixed_fee", "platform", "2026-01-01", -1000),
                ("fixed_fee", "platform", "2026-02-01", -1000),
                ("fixed_fee", "seats", "2026-02-11", -257),  # 18 of 28 days of $40
                ("usage", "calls", "2026-02-01", -1000),
                ("fixed_fee", "platform", "2026-03-01", -1000),
                ("fixed_fee", "seats", "2026-03-01", -400),
                ("usage", "calls", "2026-03-01", -1000),
            ],
            id="repeating: prices joining mid-span are discounted inside it only",
        ),
        pytest.param(
            THREE,
            (started(PLATFORM_ITEM, seats(2), CALLS_ITEM), changed(utc(2026, 2, 15), PLATFORM_ITEM)),
            APR,
            JAN,
            [
                ("fixed_fee", "platform", "2026-01-01", -1000),
                ("fixed_fee", "seats", "2026-01-01", -400),
                ("usage", "calls", "2026-01-01", -1000),
                ("fixed_fee", "platform", "2026-02-01", -1000),
                ("fixed_fee", "seats", "2026-02-01", -400),
                ("fixed_fee_credit", "seats", "2026-02-15", 200),  # the unused half's discount back
                ("usage", "calls", "2026-02-01", -1000),  # its last period, ended mid-February
                ("fixed_fee", "platform", "2026-03-01", -1000),
            ],
            id="repeating: prices leaving mid-span give back the discount of what is credited",
        ),
        pytest.param(
            CouponDuration(DurationKind.REPEATING, 2),
            (started(PLATFORM_ITEM, TOKENS_ITEM),),
            APR,
            JAN,
            [
                ("fixed_fee", "platform", "2026-01-01", -1000),
                ("usage", "tokens", "2026-01-01", -1000),
                ("fixed_fee", "platform", "2026-02-01", -1000),
                ("usage", "tokens", "2026-02-01", -1000),  # billed on March 1, after the span
            ],
            id="arrears usage of the last covered period is discounted",
        ),
        pytest.param(
            ONCE,
            (started(BASIC_ITEM, TOKENS_ITEM), changed(utc(2026, 1, 16), PLATFORM_ITEM, TOKENS_ITEM)),
            MAR,
            JAN,
            [
                ("fixed_fee", "basic", "2026-01-01", -300),
                ("fixed_fee_credit", "basic", "2026-01-16", 155),
                ("fixed_fee", "platform", "2026-01-16", -516),
                ("usage", "tokens", "2026-01-01", -1000),
            ],
            id="once: a plan change inside the span is prorated with its discounts",
        ),
        pytest.param(
            ONCE,
            (started(BASIC_ITEM, TOKENS_ITEM), changed(utc(2026, 2, 16), PLATFORM_ITEM, TOKENS_ITEM)),
            MAR,
            JAN,
            [("fixed_fee", "basic", "2026-01-01", -300), ("usage", "tokens", "2026-01-01", -1000)],
            id="once: a plan change after the span is prorated without discounts",
        ),
        pytest.param(
            ONCE,
            (started(BASIC_ITEM, TOKENS_ITEM), changed(utc(2026, 1, 10), PLATFORM_ITEM, TOKENS_ITEM)),
            MAR,
            utc(2026, 1, 20),
            [
                ("fixed_fee", "basic", "2026-01-01", -300),
                ("fixed_fee_credit", "basic", "2026-01-10", 213),
                ("fixed_fee", "platform", "2026-01-10", -710),
                ("usage", "tokens", "2026-01-01", -1000),
            ],
            id="once redeemed mid-period: the whole period, prorations before the redemption too",
        ),
        pytest.param(
            THREE,
            (started(PLATFORM_ITEM, TOKENS_ITEM),),
            utc(2026, 6, 1),
            utc(2026, 3, 1, 12),
            [
                *(("fixed_fee", "platform", f"2026-0{m}-01", -1000) for m in (3, 4, 5)),
                *(("usage", "tokens", f"2026-0{m}-01", -1000) for m in (3, 4, 5)),
            ],
            id="repeating redeemed mid-period: the period holding the redemption is the first",
        ),
        pytest.param(
            CouponDuration(DurationKind.FOREVER),
            (started(BASIC_ITEM), changed(utc(2026, 2, 11), BASIC_ITEM, seats(2))),
            APR,
            utc(2026, 2, 1),
            [
                ("fixed_fee", "basic", "2026-02-01", -300),
                ("fixed_fee", "seats", "2026-02-11", -257),
                ("fixed_fee", "basic", "2026-03-01", -300),
                ("fixed_fee", "seats", "2026-03-01", -400),
                ("fixed_fee", "basic", "2026-04-01", -300),
                ("fixed_fee", "seats", "2026-04-01", -400),
            ],
            id="forever: from the redemption's period on, whatever joins",
        ),
        pytest.param(
            ONCE,
            (started(PLATFORM_ITEM, at=utc(2026, 2, 1)),),
            APR,
            JAN,
            [("fixed_fee", "platform", "2026-02-01", -1000)],
            id="redeemed before the subscription starts: counted from its start",
        ),
    ],
)
def test_coupon_periods_are_the_subscriptions_billing_periods(
    duration: CouponDuration,
    entries: tuple[TimelineEntry, ...],
    through: datetime,
    at: datetime,
    expected: list[tuple[str, str, str, int]],
) -> None:
    assert sorted(covered(duration, *entries, through=through, at=at)) == sorted(expected)


def test_an_annual_fee_is_counted_on_the_monthly_periods_and_its_credit_follows_it() -> None:
    # Monthly usage makes the billing periods monthly. The annual fee of January 1 (3 seats, $60)
    # is in coupon period 0; each credit gives back the discount of the fee it takes back, however
    # late it comes: on March 1 the 3 seats' unused 306 of 365 days ($50.30), on June 1 the unused
    # 214 days of the 4 seats charged on March 1 ($46.90) — discounted only if March is covered.
    yearly = fee("seats", "20", YEAR, quantity=3)
    entries = (
        started(yearly, TOKENS_ITEM),
        QuantityChanged(effective_at=MAR, price_id="seats", quantity=4),
        QuantityChanged(effective_at=JUN, price_id="seats", quantity=1),
    )
    assert covered(ONCE, *entries, through=JUL) == [
        ("fixed_fee", "seats", "2026-01-01", -600),
        ("usage", "tokens", "2026-01-01", -1000),
        ("fixed_fee_credit", "seats", "2026-03-01", 503),
    ]
    assert covered(THREE, *entries, through=JUL) == [
        ("fixed_fee", "seats", "2026-01-01", -600),
        ("usage", "tokens", "2026-01-01", -1000),
        ("usage", "tokens", "2026-02-01", -1000),
        ("fixed_fee_credit", "seats", "2026-03-01", 503),
        ("fixed_fee", "seats", "2026-03-01", -671),  # 4 seats for 306 days: $67.07
        ("usage", "tokens", "2026-03-01", -1000),
        ("fixed_fee_credit", "seats", "2026-06-01", 469),
    ]


def test_amount_off_is_one_budget_per_coupon_period_across_prices() -> None:
    # $50 off once: January's fee takes it all; the fee that joins in February gets nothing.
    entries = (started(PLATFORM_ITEM), changed(FEB, BASIC_ITEM))
    assert covered(ONCE, *entries, through=MAR, amount_off=5_000) == [("fixed_fee", "platform", "2026-01-01", -5000)]
    # $150 off for three periods: $100 on each period's fee (all there is), whichever fee it is.
    assert covered(THREE, *entries, through=MAY, amount_off=15_000) == [
        ("fixed_fee", "platform", "2026-01-01", -10000),
        ("fixed_fee", "basic", "2026-02-01", -3000),
        ("fixed_fee", "basic", "2026-03-01", -3000),
    ]


def test_a_redemption_is_not_in_effect_before_its_moment() -> None:
    later = redeemed(percent("10", ONCE), at=utc(2026, 1, 20))
    early = propose(
        context(
            utc(2026, 1, 19),
            subscriptions=(subscription(started(PLATFORM_ITEM), through=utc(2026, 1, 19)),),
            redemptions=(later,),
        )
    )
    assert [line.key.kind for line in early.lines] == [LineKind.FIXED_FEE]
    billed = record((), early)
    month = subscription(started(PLATFORM_ITEM), through=utc(2026, 1, 20))
    after = propose(context(utc(2026, 1, 20), subscriptions=(month,), redemptions=(later,), billed=billed))
    assert [(line.key.kind, line.amount_minor) for line in after.lines] == [(LineKind.DISCOUNT, -1000)]


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


# ----- property: a line is discounted exactly when the billing period it serves is covered -------


@dataclass(frozen=True)
class CouponStory:
    entries: tuple[TimelineEntry, ...]
    redeemed_at: datetime
    duration: CouponDuration


def _items(draw: st.DrawFn, seats_interval: Interval) -> tuple[SubscriptionItem, ...]:
    """Tokens always (so the billing periods stay monthly), a fee or none, seats or none, calls or none."""
    items: list[SubscriptionItem] = [TOKENS_ITEM]
    fee_item = draw(st.sampled_from([None, PLATFORM_ITEM, BASIC_ITEM]))
    if fee_item is not None:
        items.append(fee_item)
    quantity = draw(st.integers(0, 4))
    if quantity:
        items.append(fee("seats", "20", seats_interval, quantity=quantity))
    if draw(st.booleans()):
        items.append(CALLS_ITEM)
    return tuple(items)


@st.composite
def coupon_stories(draw: st.DrawFn) -> CouponStory:
    seats_interval = draw(st.sampled_from([MONTH, YEAR]))
    entries: list[TimelineEntry] = [started(*_items(draw, seats_interval))]
    days = sorted(set(draw(st.lists(st.integers(1, 178), max_size=4))))
    for day in days:
        at = JAN + timedelta(days=day, hours=draw(st.integers(0, 23)))
        entries.append(ItemsChanged(effective_at=at, items=_items(draw, seats_interval), prorate=draw(st.booleans())))
    duration = draw(
        st.sampled_from([ONCE, FOREVER, *(CouponDuration(DurationKind.REPEATING, periods) for periods in (1, 2, 3, 5))])
    )
    redeemed_at = JAN + timedelta(days=draw(st.integers(-20, 180)), hours=draw(st.integers(0, 23)))
    return CouponStory(entries=tuple(entries), redeemed_at=redeemed_at, duration=duration)


def _month(moment: datetime) -> int:
    return (moment.year - 2026) * 12 + moment.month - 1


def _story_context(story: CouponStory, through: datetime, billed: tuple[BilledLine, ...] = ()) -> InvoiceContext:
    billing = subscription(*story.entries, through=through)
    coupon = percent("10", story.duration)
    redemption = Redemption(redemption_id="r1", coupon=coupon, redeemed_at=story.redeemed_at)
    usage = readings(billing, {"tokens": 11_000, "calls": 12_345})
    return context(through, subscriptions=(billing,), usage=usage, redemptions=(redemption,), billed=billed)


@settings(max_examples=200, deadline=None)
@given(coupon_stories(), st.integers(1, 180))
def test_a_line_is_discounted_exactly_when_the_period_it_serves_is_covered(story: CouponStory, day: int) -> None:
    end = utc(2026, 7, 1)
    # Billed month by month (and once at a random moment), then compared with one proposal.
    billed: tuple[BilledLine, ...] = ()
    steps = sorted({JAN + timedelta(days=day), *(utc(2026, month, 1) for month in range(1, 8))})
    for through in steps:
        billed = record(billed, propose(_story_context(story, through, billed)))
        assert propose(_story_context(story, through, billed)).is_empty
    fresh = propose(_story_context(story, end)).lines
    totals: dict[LineKey, int] = {}
    for line in billed:
        totals[line.key] = totals.get(line.key, 0) + line.amount_minor
    assert {k: v for k, v in totals.items() if v} == {
        line.key: line.amount_minor for line in fresh if line.amount_minor
    }

    # The reference: coupon period 0 is the month holding the redemption (or the start, January);
    # a line serves the month of its service start, a fee credit that of the fee it takes back.
    first = _month(max(story.redeemed_at, JAN))
    periods = {DurationKind.ONCE: 1, DurationKind.REPEATING: story.duration.periods, DurationKind.FOREVER: None}
    length = periods[story.duration.kind]
    charges = [line for line in fresh if line.key.kind is not LineKind.DISCOUNT]
    discounts_by_base = {line.key.discount_base(): line.amount_minor for line in fresh if line.key.discount_base()}
    for line in charges:
        key = line.key
        serves = key.service_start
        if key.kind is LineKind.FIXED_FEE_CREDIT:
            serves = max(
                other.key.service_start
                for other in charges
                if other.key.kind is LineKind.FIXED_FEE
                and other.key.price_id == key.price_id
                and other.key.service_end == key.service_end
                and other.key.service_start < key.service_start
            )
        index = _month(serves) - first
        is_covered = index >= 0 and (length is None or index < length)
        tenth = int((Decimal(line.amount_minor) / 10).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        assert discounts_by_base.get(key, 0) == (-tenth if is_covered else 0), (key, serves, story.redeemed_at)
