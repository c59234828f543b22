"""Worked examples of `propose`: each line kind, reconciling after changes, and bad input."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from tally.core.invoicing import (
    BilledLine,
    InvoiceContext,
    LineKind,
    OneOffCharge,
    PriceCap,
    PriceRef,
    Proposal,
    UsageReading,
    propose,
)
from tally.core.periods import Period
from tally.core.rating import FlatFee, GroupedQuantities, Price
from tally.core.rejections import Rejected
from tally.core.subscriptions import Canceled, ItemsChanged, QuantityChanged
from tests.core.invoicing.builders import (
    BASIC_ITEM,
    EUR,
    PLATFORM_ITEM,
    PRICES,
    TOKENS,
    TOKENS_ITEM,
    USD,
    brief,
    context,
    readings,
    record,
    seats,
    started,
    subscription,
)
from tests.core.subscriptions.builders import utc

JAN, FEB, MAR = utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 3, 1)


def again(ctx: InvoiceContext, proposal: Proposal) -> Proposal:
    """Propose the same context once `proposal` is recorded as billed."""
    return propose(dataclasses.replace(ctx, billed=record(ctx.billed, proposal)))


def test_fees_are_billed_in_advance_and_usage_in_arrears() -> None:
    start = subscription(started(PLATFORM_ITEM, seats(3), TOKENS_ITEM), through=JAN)
    first_context = context(JAN, subscriptions=(start,))
    first = propose(first_context)
    assert brief(first.lines) == [
        ("fixed_fee", "platform", "2026-01-01", 10000),
        ("fixed_fee", "seats", "2026-01-01", 6000),
    ]
    assert first.totals.amount_due_minor == 16000
    assert again(first_context, first).is_empty

    month = subscription(started(PLATFORM_ITEM, seats(3), TOKENS_ITEM), through=FEB)
    second_context = context(
        FEB, subscriptions=(month,), usage=readings(month, {"tokens": 251_000}), billed=record((), first)
    )
    second = propose(second_context)
    # 250,000 tokens past the free 1,000 at 1 cent; February's fees in advance.
    assert brief(second.lines) == [
        ("usage", "tokens", "2026-01-01", 250000),
        ("fixed_fee", "platform", "2026-02-01", 10000),
        ("fixed_fee", "seats", "2026-02-01", 6000),
    ]
    assert again(second_context, second).is_empty


def test_a_usage_line_explains_itself() -> None:
    month = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=FEB)
    proposal = propose(context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 1500})))
    line = next(line for line in proposal.lines if line.key.kind is LineKind.USAGE)
    explanation = line.explanation
    assert explanation.price is not None and explanation.price.plan_version == 3
    assert explanation.usage is not None and explanation.usage.meter == "tokens"
    assert explanation.usage.windows == (Period(JAN, FEB),)
    assert explanation.rating is not None
    assert [(b.tier, b.quantity, b.amount) for b in explanation.rating.breakdown] == [
        (1, Decimal(1000), Decimal(0)),
        (2, Decimal(500), Decimal("5.00")),
    ]
    assert explanation.billing_period == Period(JAN, FEB)
    document = line.document()
    assert document["explanation"]["usage"]["meter"] == "tokens"
    assert document["key"]["kind"] == "usage"
    # Readings that do not name their meter version leave it unknown on the line.
    assert (document["explanation"]["usage"]["meter_version"], explanation.usage.meter_version_id) == (None, None)


def test_a_usage_line_records_the_meter_version_it_was_measured_with() -> None:
    month = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=FEB)
    grouped = readings(month, {"tokens": {("gpt",): 1500, ("claude",): 10}})
    measured = tuple(dataclasses.replace(r, meter_version=2, meter_version_id=417) for r in grouped)
    proposal = propose(context(FEB, subscriptions=(month,), usage=measured))
    usage_lines = [line for line in proposal.lines if line.key.kind is LineKind.USAGE]
    assert len(usage_lines) == 2
    for line in usage_lines:
        assert line.explanation.usage is not None
        assert (line.explanation.usage.meter_version, line.explanation.usage.meter_version_id) == (2, 417)
        assert line.document()["explanation"]["usage"]["meter_version"] == 2
        assert line.document()["explanation"]["usage"]["meter_version_id"] == 417
    # Two groups of one period measured with different versions cannot both be right.
    mixed = (measured[0], dataclasses.replace(measured[1], meter_version=1, meter_version_id=416))
    assert _code(lambda: propose(context(FEB, subscriptions=(month,), usage=mixed))) == "usage_readings_must_agree"


@pytest.mark.parametrize(
    ("meter_version", "meter_version_id"),
    [(1, None), (None, 7), (0, 7), (-1, 7), (True, 7)],
)
def test_a_reading_names_its_meter_version_and_id_together(meter_version: object, meter_version_id: object) -> None:
    month = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=FEB)
    good = readings(month, {"tokens": 10})[0]
    assert (
        _code(lambda: dataclasses.replace(good, meter_version=meter_version, meter_version_id=meter_version_id))
        == "usage_meter_version_invalid"
    )


def test_a_seat_change_prorates_with_a_credit_and_a_charge() -> None:
    entries = (started(seats(3)), QuantityChanged(effective_at=utc(2026, 1, 16), price_id="seats", quantity=5))
    month = subscription(*entries, through=utc(2026, 1, 16))
    proposal = propose(context(utc(2026, 1, 16), subscriptions=(month,)))
    # 16 of January's 31 days remain: 3 seats credited, 5 charged, each rounded once.
    assert brief(proposal.lines) == [
        ("fixed_fee", "seats", "2026-01-01", 6000),
        ("fixed_fee_credit", "seats", "2026-01-16", -3097),
        ("fixed_fee", "seats", "2026-01-16", 5161),
    ]
    credit = proposal.lines[1]
    assert credit.explanation.proration is not None and credit.explanation.proration.units_used == 16 * 86400


def test_a_backdated_change_is_repaired_by_new_lines_never_by_edits() -> None:
    plain = subscription(started(seats(3)), through=FEB)
    billed = record((), propose(context(FEB, subscriptions=(plain,))))
    # Later, a change effective on January 16 is recorded: only the difference is proposed.
    changed = subscription(
        started(seats(3)), QuantityChanged(effective_at=utc(2026, 1, 16), price_id="seats", quantity=5), through=FEB
    )
    ctx = context(FEB, subscriptions=(changed,), billed=billed)
    repair = propose(ctx)
    assert [(kind, start, amount) for kind, _, start, amount in brief(repair.lines)] == [
        ("fixed_fee_credit", "2026-01-16", -3097),
        ("fixed_fee", "2026-01-16", 5161),
        ("fixed_fee", "2026-02-01", 4000),  # February was billed for 3 seats: 2 more
    ]
    assert [line.sequence for line in repair.lines] == [0, 0, 1]
    assert repair.lines[2].amount_minor_total == 10000 and repair.lines[2].amount_minor_billed_prior == 6000
    assert again(ctx, repair).is_empty


def test_a_backdated_cancel_takes_back_fees_no_longer_due() -> None:
    plain = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=FEB)
    billed = record((), propose(context(FEB, subscriptions=(plain,), usage=readings(plain, {"tokens": 5000}))))
    canceled = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), Canceled(effective_at=utc(2026, 1, 16)), through=FEB)
    ctx = context(FEB, subscriptions=(canceled,), billed=billed)
    repair = propose(ctx)
    # The usage of January was billed in full and not re-read: it stands. February's fee goes.
    assert brief(repair.lines) == [
        ("fixed_fee_credit", "platform", "2026-01-16", -5161),
        ("fixed_fee", "platform", "2026-02-01", -10000),
    ]
    assert repair.lines[1].description.startswith("Correction")
    assert repair.totals.balance_credited_minor == 15161 and repair.totals.amount_due_minor == 0
    assert again(ctx, repair).is_empty


def test_late_usage_bills_the_difference_as_the_next_sequence_of_the_key() -> None:
    month = subscription(started(TOKENS_ITEM), through=FEB)
    first = propose(context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 251_000})))
    late_context = context(
        FEB, subscriptions=(month,), usage=readings(month, {"tokens": 301_000}), billed=record((), first)
    )
    late = propose(late_context)
    assert brief(late.lines) == [("usage", "tokens", "2026-01-01", 50000)]
    assert late.lines[0].sequence == 1 and late.lines[0].description.startswith("Correction")
    corrected_down = propose(
        context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 1_000}), billed=record((), first))
    )
    assert brief(corrected_down.lines) == [("usage", "tokens", "2026-01-01", -250000)]


def test_usage_per_dimension_group_is_one_line_per_group() -> None:
    month = subscription(started(TOKENS_ITEM), through=FEB)
    proposal = propose(
        context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": {("gpt",): 1500, ("claude",): 700}}))
    )
    assert [(line.key.group, line.amount_minor) for line in proposal.lines] == [(("claude",), 0), (("gpt",), 500)]


def test_a_matrix_price_rates_each_group_at_its_own_rate() -> None:
    from tally.core.rating import Matrix, MatrixRate

    matrix = PriceRef(
        price_id="tokens",
        price=Price(
            unit=USD,
            meter="tokens",
            model=Matrix(
                dimensions=("model",),
                rates=(MatrixRate(("gpt",), Decimal("0.02")), MatrixRate(("claude",), Decimal("0.03"))),
            ),
        ),
    )
    month = subscription(started(TOKENS_ITEM), through=FEB, prices=(matrix,))
    groups = {("gpt",): GroupedQuantities.of({("gpt",): 100}), ("claude",): GroupedQuantities.of({("claude",): 100})}
    proposal = propose(context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": groups})))
    assert [(line.key.group, line.amount_minor) for line in proposal.lines] == [(("claude",), 300), (("gpt",), 200)]


def test_zero_usage_shows_once_then_never_again() -> None:
    month = subscription(started(TOKENS_ITEM), through=FEB)
    ctx = context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 0}))
    first = propose(ctx)
    assert brief(first.lines) == [("usage", "tokens", "2026-01-01", 0)]
    assert again(ctx, first).is_empty


def test_a_period_minimum_is_owed_once_the_period_closes() -> None:
    with_minimum = dataclasses.replace(TOKENS, price=dataclasses.replace(TOKENS.price, minimum_amount=Decimal(50)))
    prices = (with_minimum,)
    month = subscription(started(TOKENS_ITEM), through=FEB, prices=prices)
    proposal = propose(context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 2000})))
    assert brief(proposal.lines) == [
        ("usage", "tokens", "2026-01-01", 1000),
        ("usage_minimum", "tokens", "2026-01-01", 4000),
    ]
    # A progressive reading mid-period owes no minimum yet.
    mid = utc(2026, 1, 20)
    open_month = subscription(started(TOKENS_ITEM), through=mid, prices=prices)
    progressive = UsageReading(
        subscription_id="sub_1",
        price_id="tokens",
        period=Period(JAN, FEB),
        usage=_quantity(2000),
        windows=(Period(JAN, mid),),
        progressive=True,
    )
    threshold = propose(context(mid, subscriptions=(open_month,), usage=(progressive,)))
    assert brief(threshold.lines) == [("usage", "tokens", "2026-01-01", 1000)]


def test_threshold_billing_then_the_period_end_bills_the_rest() -> None:
    mid = utc(2026, 1, 20)
    open_month = subscription(started(TOKENS_ITEM), through=mid)
    so_far = UsageReading(
        subscription_id="sub_1",
        price_id="tokens",
        period=Period(JAN, FEB),
        usage=_quantity(101_000),
        windows=(Period(JAN, mid),),
        progressive=True,
    )
    threshold = propose(context(mid, subscriptions=(open_month,), usage=(so_far,)))
    assert brief(threshold.lines) == [("usage", "tokens", "2026-01-01", 100000)]
    billed = record((), threshold)
    month = subscription(started(TOKENS_ITEM), through=FEB)
    # The period end must re-read the period: a provisional line is not billed in full.
    with pytest.raises(Rejected) as refused:
        propose(context(FEB, subscriptions=(month,), billed=billed))
    assert refused.value.rejection.code == "usage_reading_missing"
    closing = propose(context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 251_000}), billed=billed))
    assert brief(closing.lines) == [("usage", "tokens", "2026-01-01", 150000)]


def test_a_cap_limits_a_price_per_period() -> None:
    month = subscription(started(TOKENS_ITEM), through=FEB)
    proposal = propose(
        context(
            FEB,
            subscriptions=(month,),
            usage=readings(month, {"tokens": 251_000}),
            caps=(PriceCap(price_id="tokens", maximum_amount=Decimal(1000)),),
        )
    )
    assert brief(proposal.lines) == [
        ("usage", "tokens", "2026-01-01", 250000),
        ("usage_cap", "tokens", "2026-01-01", -150000),
    ]
    assert proposal.totals.total_minor == 100000


def test_one_off_charges_are_lines_of_their_own() -> None:
    setup = PriceRef(price_id="setup", price=Price(unit=USD, model=FlatFee(amount=Decimal(250)), interval=None))
    charge = OneOffCharge(charge_id="chg_1", price=setup, at=utc(2026, 1, 10), description="Onboarding")
    ctx = context(JAN, one_off_charges=(charge,))
    proposal = propose(ctx)
    assert [(line.key.kind, line.key.reference, line.amount_minor, line.description) for line in proposal.lines] == [
        (LineKind.ONE_OFF, "chg_1", 25000, "Onboarding")
    ]
    assert again(ctx, proposal).is_empty


def test_a_plan_change_at_period_end_makes_no_proration() -> None:
    entries = (started(PLATFORM_ITEM), ItemsChanged(effective_at=FEB, items=(BASIC_ITEM,)))
    month = subscription(*entries, through=FEB)
    proposal = propose(context(FEB, subscriptions=(month,)))
    assert brief(proposal.lines) == [
        ("fixed_fee", "platform", "2026-01-01", 10000),
        ("fixed_fee", "basic", "2026-02-01", 3000),
    ]


# ----- bad input --------------------------------------------------------------------------------


def _quantity(value: int) -> object:
    from tally.core.rating import Quantity

    return Quantity(Decimal(value))


def _code(call: object) -> str:
    with pytest.raises(Rejected) as refused:
        call()  # type: ignore[operator]
    return refused.value.rejection.code


def test_bad_contexts_are_refused_with_stable_codes() -> None:
    month = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=FEB)
    good = readings(month, {"tokens": 10})
    in_euros = dataclasses.replace(
        month, prices=tuple(dataclasses.replace(p, price=dataclasses.replace(p.price, unit=EUR)) for p in month.prices)
    )
    wrong_window = (dataclasses.replace(good[0], windows=(Period(JAN, utc(2026, 1, 20)),)),)
    cases = {
        "usage_reading_missing": lambda: propose(context(FEB, subscriptions=(month,))),
        "price_currency_must_match_invoice": lambda: context(FEB, subscriptions=(in_euros,)),
        "billing_events_must_run_through_the_same_moment": lambda: context(JAN, subscriptions=(month,)),
        "subscriptions_must_be_distinct": lambda: context(FEB, subscriptions=(month, month)),
        "price_must_be_known": lambda: context(FEB, subscriptions=(dataclasses.replace(month, prices=()),)),
        "usage_windows_must_match_billing_events": lambda: propose(
            context(FEB, subscriptions=(month,), usage=wrong_window)
        ),
        "usage_groups_must_be_distinct": lambda: propose(context(FEB, subscriptions=(month,), usage=good + good)),
        "billed_line_sequences_must_be_contiguous": lambda: context(
            FEB,
            billed=(
                BilledLine(
                    key=propose(context(FEB, subscriptions=(month,), usage=good)).lines[0].key,
                    sequence=1,
                    amount_minor=5,
                ),
            ),
        ),
        "customer_balance_out_of_range": lambda: context(FEB, customer_balance_minor=-1),
    }
    assert {code: _code(call) for code, call in cases.items()} == {code: code for code in cases}


def test_every_price_in_the_catalog_builds() -> None:
    assert {p.price_id for p in PRICES} == {"platform", "basic", "seats", "tokens", "calls"}
