"""Credit grants: burn-down order, scope, custom units, expiry and breakage, refusals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from tally.core.invoicing import (
    CreditDemand,
    CreditGrant,
    GrantBalance,
    GrantKind,
    GrantScope,
    LineKey,
    LineKind,
    ScopeKind,
    burn_down,
    expire_grants,
    propose,
)
from tally.core.money import custom_unit
from tally.core.rejections import Rejected
from tests.core.invoicing.builders import EUR, PLATFORM_ITEM, TOKENS_ITEM, USD, context, readings, started, subscription
from tests.core.subscriptions.builders import utc

JAN, FEB = utc(2026, 1, 1), utc(2026, 2, 1)
CREDITS = custom_unit("CREDITS", 0)
DECEMBER = utc(2025, 12, 1)


def grant(
    grant_id: str,
    amount: int = 1000,
    *,
    priority: int = 0,
    effective: datetime = DECEMBER,
    expires: datetime | None = None,
    scope: GrantScope | None = None,
    kind: GrantKind = GrantKind.PREPAID,
    remaining: int | None = None,
) -> GrantBalance:
    created = CreditGrant(
        grant_id=grant_id,
        kind=kind,
        unit=USD,
        amount_minor=amount,
        effective_at=effective,
        expires_at=expires,
        priority=priority,
        scope=scope or GrantScope(),
    )
    return GrantBalance(grant=created, remaining_minor=amount if remaining is None else remaining)


def demand(amount: int, kind: LineKind = LineKind.USAGE, price: str = "tokens", meter: str = "tokens") -> CreditDemand:
    key = LineKey("sub_1", price, JAN, FEB, (), kind)
    return CreditDemand(key=key, kind=kind, price_id=price, catalog_price_id=price, meter=meter, amount_minor=amount)


def taken(balances: list[GrantBalance], *demands: CreditDemand) -> list[tuple[str, int]]:
    application = burn_down(balances, list(demands), currency=USD, at=JAN)
    return [(c.grant.grant_id, c.money_minor) for c in application.consumptions]


@pytest.mark.parametrize(
    ("balances", "expected"),
    [
        # Priority first, whatever the expiry.
        (
            [grant("late", priority=1, expires=utc(2026, 1, 2)), grant("first", priority=0)],
            [("first", 1000), ("late", 500)],
        ),
        # Then the soonest expiry; never-expiring last.
        (
            [grant("never"), grant("soon", expires=utc(2026, 3, 1)), grant("sooner", expires=utc(2026, 2, 1))],
            [("sooner", 1000), ("soon", 500)],
        ),
        # Then the oldest.
        (
            [grant("new", effective=utc(2025, 12, 20)), grant("old", effective=utc(2025, 11, 1))],
            [("old", 1000), ("new", 500)],
        ),
        # Not in effect yet, or expired already: not used.
        (
            [
                grant("future", effective=utc(2026, 1, 2)),
                grant("gone", effective=utc(2025, 1, 1), expires=JAN),
                grant("now", 100),
            ],
            [("now", 100)],
        ),
        # Never more than a grant's remaining balance.
        ([grant("half", remaining=300), grant("rest")], [("half", 300), ("rest", 1000)]),
    ],
)
def test_burn_down_order(balances: list[GrantBalance], expected: list[tuple[str, int]]) -> None:
    assert taken(balances, demand(1500)) == expected


def test_scope_decides_which_lines_a_grant_pays() -> None:
    usage_only = grant("usage", scope=GrantScope(ScopeKind.USAGE))
    meters = grant("meter", scope=GrantScope(ScopeKind.METERS, frozenset({"api_calls"})))
    prices = grant("price", scope=GrantScope(ScopeKind.PRICES, frozenset({"platform"})))
    fee = demand(400, LineKind.FIXED_FEE, price="platform", meter="")
    calls = demand(300, price="calls", meter="api_calls")
    tokens = demand(200)
    application = burn_down([usage_only, meters, prices], [fee, calls, tokens], currency=USD, at=JAN)
    paid = {(c.grant.grant_id, key.price_id): amount for c in application.consumptions for key, amount in c.lines}
    # Equal priority, expiry and age: by grant id, so the meter grant pays the calls first.
    assert paid == {("price", "platform"): 400, ("meter", "calls"): 300, ("usage", "tokens"): 200}


def test_a_grant_in_a_custom_unit_pays_at_its_value_rounding_credits_up_once() -> None:
    credits = CreditGrant(
        grant_id="credits",
        kind=GrantKind.PREPAID,
        unit=CREDITS,
        amount_minor=1000,
        effective_at=utc(2025, 12, 1),
        value_per_unit=Decimal("0.003"),
        value_currency=USD,
    )
    # 1,000 credits at $0.003 are worth $3.00: they pay $1.00 of a line for ⌈100 / 0.3⌉ = 334 credits.
    one = burn_down([GrantBalance(grant=credits, remaining_minor=1000)], [demand(100)], currency=USD, at=JAN)
    assert [(c.units_minor, c.money_minor, c.remaining_after_minor) for c in one.consumptions] == [(334, 100, 666)]
    # 100 credits left are worth 30 cents: that is all they pay.
    all_of_it = burn_down([GrantBalance(grant=credits, remaining_minor=100)], [demand(5000)], currency=USD, at=JAN)
    assert [(c.units_minor, c.money_minor) for c in all_of_it.consumptions] == [(100, 30)]
    # A grant valued in another currency pays nothing here.
    assert (
        burn_down([GrantBalance(grant=credits, remaining_minor=100)], [demand(5000)], currency=EUR, at=JAN).consumptions
        == ()
    )


def test_expired_remainders_are_breakage() -> None:
    balances = [
        grant("spent", expires=FEB, remaining=0),
        grant("left", expires=FEB, remaining=250),
        grant("later", expires=utc(2026, 3, 1), remaining=100),
        grant("never", remaining=100),
    ]
    expiries = expire_grants(balances, at=FEB)
    assert [(e.grant.grant_id, e.units_minor, e.money_minor, e.expired_at) for e in expiries] == [
        ("left", 250, 250, FEB)
    ]


def test_credits_on_an_invoice_pay_lines_after_discounts_and_before_tax() -> None:
    month = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=FEB)
    usage_credit = grant("promo", 20_000, scope=GrantScope(ScopeKind.USAGE), kind=GrantKind.PROMOTIONAL)
    proposal = propose(
        context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 11_000}), grants=(usage_credit,))
    )
    # $100 usage paid by the usage-only grant; the fees ($100 January, $100 February) are not.
    assert proposal.credits.money_minor == 10_000
    assert proposal.totals.amount_due_minor == 20_000
    consumption = proposal.credits.consumptions[0]
    assert consumption.remaining_after_minor == 10_000


def test_bad_grants_are_refused() -> None:
    cases = {
        "grant_must_expire_after_it_takes_effect": dict(expires_at=utc(2025, 12, 1)),
        "grant_amount_must_be_positive": dict(amount_minor=0),
        "grant_priority_out_of_range": dict(priority=-1),
        "credit_unit_value_required": dict(unit=CREDITS),
        "credit_unit_value_not_allowed": dict(value_per_unit=Decimal(1), value_currency=USD),
    }
    codes = {}
    for code, fields in cases.items():
        base = dict(grant_id="g", kind=GrantKind.PREPAID, unit=USD, amount_minor=10, effective_at=utc(2025, 12, 1))
        with pytest.raises(Rejected) as refused:
            CreditGrant(**{**base, **fields})  # type: ignore[arg-type]
        codes[code] = refused.value.rejection.code
    assert codes == {code: code for code in cases}
    with pytest.raises(Rejected) as refused:
        GrantBalance(grant=grant("g").grant, remaining_minor=1001)
    assert refused.value.rejection.code == "grant_balance_out_of_range"
    with pytest.raises(Rejected) as refused:
        GrantScope(ScopeKind.PRICES)
    assert refused.value.rejection.code == "scope_ids_required"
