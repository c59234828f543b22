"""Credit grants: prepaid (bought) and promotional (given) credits, burned down against invoice lines.

A grant holds an amount in a unit: the invoice's currency, or a tenant's custom credit unit with a
declared value (`value_per_unit`, in `value_currency` major units per one credit). It takes effect at
`effective_at`, may expire at `expires_at` (strictly later), has a `priority` (lower burns first) and
a scope: every charge, only usage, or only some prices or meters.

**Burn-down.** Lines are served in invoice order; each takes from the grants that cover it, in this
order: priority, then the soonest expiry (never-expiring last), then the oldest (`effective_at`), then
the grant id so the order is total. A grant serves a line only while it is in effect at the run's
moment (`effective_at <= at < expires_at`). Credits never exceed a line's net amount, nor a grant's
remaining balance.

**Custom units.** Serving money from a grant of credits needs a conversion. A grant can serve at most
`floor(remaining × value)` minor units of money; the credits it gives up for the money it served on
one invoice are `money / value`, rounded up to the credit unit's smallest part once per grant and
invoice — so a grant never serves more money than the credits it gave up are worth.

**Expiry.** At `expires_at`, whatever remains of a grant expires: `expire_grants` describes each
expiry (credits and their money value) so the ledger can move it out of the customer's credit.

Each consumption and each expiry is one ledger transaction (see `postings.py`); the remaining
balance of a grant is the balance of its own customer-credit sub-account, which can never go below
zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tally.core.frozen import quick_init
from tally.core.invoicing.lines import USAGE_KINDS, LineKey, LineKind, check_identifier
from tally.core.money import (
    AMOUNT_MINOR_MAX,
    COMPUTATION_CONTEXT,
    RoundingMode,
    Unit,
    decimal_from_minor,
    round_to_unit,
)
from tally.core.rating.models import check_price
from tally.core.rejections import Rejected, require

PRIORITY_MAX = 1_000
GRANTS_MAX = 1_000


class GrantKind(StrEnum):
    PREPAID = "prepaid"  # bought: the customer paid for it
    PROMOTIONAL = "promotional"  # given: a cost to the platform


class ScopeKind(StrEnum):
    ALL = "all"  # every charge line
    USAGE = "usage"  # usage lines only (usage, its minimum and cap)
    PRICES = "prices"  # lines of the listed prices (billing or catalog ids)
    METERS = "meters"  # usage lines of prices reading the listed meters


@dataclass(frozen=True, slots=True)
class GrantScope:
    kind: ScopeKind = ScopeKind.ALL
    ids: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ScopeKind(self.kind))
        if not isinstance(self.ids, frozenset):
            raise Rejected.because("value_must_be_set", "scope ids are a set", "scope.ids")
        if self.kind in (ScopeKind.PRICES, ScopeKind.METERS) and not self.ids:
            raise Rejected.because("scope_ids_required", f"a {self.kind} scope lists at least one id", "scope.ids")
        if self.kind in (ScopeKind.ALL, ScopeKind.USAGE) and self.ids:
            raise Rejected.because("scope_ids_not_allowed", f"an {self.kind} scope lists no ids", "scope.ids")

    def covers(self, demand: CreditDemand) -> bool:
        match self.kind:
            case ScopeKind.ALL:
                return True
            case ScopeKind.USAGE:
                return demand.kind in USAGE_KINDS
            case ScopeKind.PRICES:
                return demand.price_id in self.ids or demand.catalog_price_id in self.ids
            case ScopeKind.METERS:
                return demand.kind in USAGE_KINDS and demand.meter in self.ids


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditGrant:
    grant_id: str
    kind: GrantKind
    unit: Unit
    amount_minor: int  # granted, in the grant's unit
    effective_at: datetime
    expires_at: datetime | None = None
    priority: int = 0
    scope: GrantScope = field(default_factory=GrantScope)
    # Custom units only: what one credit is worth, in major units of `value_currency`.
    value_per_unit: Decimal | None = None
    value_currency: Unit | None = None

    def __post_init__(self) -> None:
        check_identifier(self.grant_id, "grant_id_invalid", "grant_id")
        object.__setattr__(self, "kind", GrantKind(self.kind))
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TypeError("amount_minor is an int of minor units")
        if not 0 < self.amount_minor <= AMOUNT_MINOR_MAX:
            raise Rejected.because("grant_amount_must_be_positive", "a grant is for an amount above zero", "amount")
        if self.effective_at.tzinfo is None or (self.expires_at is not None and self.expires_at.tzinfo is None):
            raise Rejected.because("datetime_must_have_timezone", "grant dates need a time zone", "effective_at")
        if self.expires_at is not None and self.expires_at <= self.effective_at:
            raise Rejected.because(
                "grant_must_expire_after_it_takes_effect", "expires_at must be later than effective_at", "expires_at"
            )
        if (
            isinstance(self.priority, bool)
            or not isinstance(self.priority, int)
            or not 0 <= self.priority <= PRIORITY_MAX
        ):
            raise Rejected.because("grant_priority_out_of_range", f"priority is 0 to {PRIORITY_MAX}", "priority")
        if self.unit.is_custom:
            if self.value_per_unit is None or self.value_currency is None:
                raise Rejected.because(
                    "credit_unit_value_required",
                    "a grant in a custom unit says what one unit is worth",
                    "value_per_unit",
                )
            value = check_price(self.value_per_unit, "value_per_unit")
            if value == 0:
                raise Rejected.because(
                    "credit_unit_value_must_be_positive", "a credit is worth more than 0", "value_per_unit"
                )
            if self.value_currency.is_custom:
                raise Rejected.because(
                    "value_currency_must_be_money", "a credit's value is in a currency", "value_currency"
                )
        elif self.value_per_unit is not None or self.value_currency is not None:
            raise Rejected.because(
                "credit_unit_value_not_allowed", "a grant in money is worth its amount", "value_per_unit"
            )

    @property
    def money(self) -> Unit:
        """The currency this grant pays in."""
        return self.value_currency if self.value_currency is not None else self.unit

    def in_effect(self, at: datetime) -> bool:
        return self.effective_at <= at and (self.expires_at is None or at < self.expires_at)

    def burn_order(self) -> tuple[int, bool, datetime, datetime, str]:
        expiry = self.expires_at or self.effective_at
        return (self.priority, self.expires_at is None, expiry, self.effective_at, self.grant_id)

    def money_capacity(self, remaining_minor: int) -> int:
        """The most money (minor units of `money`) `remaining_minor` of this grant can pay."""
        if not self.unit.is_custom:
            return remaining_minor
        value = COMPUTATION_CONTEXT.multiply(
            decimal_from_minor(remaining_minor, self.unit), self.value_per_unit or Decimal(0)
        )
        return round_to_unit(value, self.money, RoundingMode.DOWN)

    def units_for(self, money_minor: int) -> int:
        """The grant's units given up to pay `money_minor`, rounded up once."""
        if not self.unit.is_custom:
            return money_minor
        credits = COMPUTATION_CONTEXT.divide(
            decimal_from_minor(money_minor, self.money), self.value_per_unit or Decimal(1)
        )
        return round_to_unit(credits, self.unit, RoundingMode.UP)

    def money_value(self, units_minor: int) -> int:
        """What `units_minor` of this grant are worth in money (for breakage), rounded once."""
        if not self.unit.is_custom:
            return units_minor
        value = COMPUTATION_CONTEXT.multiply(
            decimal_from_minor(units_minor, self.unit), self.value_per_unit or Decimal(0)
        )
        return round_to_unit(value, self.money)


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantBalance:
    """A grant with what is left of it (from the ledger)."""

    grant: CreditGrant
    remaining_minor: int

    def __post_init__(self) -> None:
        if isinstance(self.remaining_minor, bool) or not isinstance(self.remaining_minor, int):
            raise TypeError("remaining_minor is an int of minor units")
        if not 0 <= self.remaining_minor <= self.grant.amount_minor:
            raise Rejected.because(
                "grant_balance_out_of_range", "a grant's remaining balance is 0 to its amount", "remaining"
            )


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class CreditDemand:
    """What one invoice line still owes, and what a grant's scope needs to know about it."""

    key: LineKey
    kind: LineKind
    price_id: str
    catalog_price_id: str
    meter: str
    amount_minor: int  # positive


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditConsumption:
    """What one grant paid on one invoice: `units_minor` of the grant for `money_minor`, by line."""

    grant: CreditGrant
    units_minor: int
    money_minor: int
    lines: tuple[tuple[LineKey, int], ...]
    remaining_after_minor: int


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class CreditApplication:
    consumptions: tuple[CreditConsumption, ...]

    @property
    def money_minor(self) -> int:
        return sum(consumption.money_minor for consumption in self.consumptions)

    def by_line(self) -> dict[LineKey, int]:
        applied: dict[LineKey, int] = {}
        for consumption in self.consumptions:
            for key, amount in consumption.lines:
                applied[key] = applied.get(key, 0) + amount
        return applied


def burn_down(
    balances: Sequence[GrantBalance], demands: Sequence[CreditDemand], *, currency: Unit, at: datetime
) -> CreditApplication:
    """Pay `demands` (in order) from the grants in burn-down order; see the module's rules."""
    if len(balances) > GRANTS_MAX:
        raise Rejected.because("grants_exceed_limit", f"at most GRANTS_MAX = {GRANTS_MAX} grants per invoice", "grants")
    if len({balance.grant.grant_id for balance in balances}) != len(balances):
        raise Rejected.because("grants_must_be_distinct", "a grant appears twice", "grants")
    usable = sorted(
        (b for b in balances if b.remaining_minor > 0 and b.grant.money == currency and b.grant.in_effect(at)),
        key=lambda b: b.grant.burn_order(),
    )
    capacity = {b.grant.grant_id: b.grant.money_capacity(b.remaining_minor) for b in usable}
    served: dict[str, list[tuple[LineKey, int]]] = {b.grant.grant_id: [] for b in usable}
    for demand in demands:
        require(demand.amount_minor > 0, "a credit demand is positive")
        left = demand.amount_minor
        for balance in usable:
            if left == 0:
                break
            grant_id = balance.grant.grant_id
            if capacity[grant_id] == 0 or not balance.grant.scope.covers(demand):
                continue
            take = min(left, capacity[grant_id])
            capacity[grant_id] -= take
            left -= take
            served[grant_id].append((demand.key, take))
    consumptions: list[CreditConsumption] = []
    for balance in usable:
        lines = served[balance.grant.grant_id]
        if not lines:
            continue
        money_minor = sum(amount for _, amount in lines)
        units = balance.grant.units_for(money_minor)
        require(0 < units <= balance.remaining_minor, "a grant never gives more than it has")
        consumptions.append(
            CreditConsumption(
                grant=balance.grant,
                units_minor=units,
                money_minor=money_minor,
                lines=tuple(lines),
                remaining_after_minor=balance.remaining_minor - units,
            )
        )
    return CreditApplication(consumptions=tuple(consumptions))


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditExpiry:
    """What is left of a grant when it expires: `units_minor` of it, worth `money_minor`."""

    grant: CreditGrant
    expired_at: datetime
    units_minor: int
    money_minor: int


def expire_grants(balances: Sequence[GrantBalance], *, at: datetime) -> tuple[CreditExpiry, ...]:
    """The expiry of every grant that has expired by `at` with something left, in burn-down order."""
    expiries: list[CreditExpiry] = []
    for balance in sorted(balances, key=lambda b: b.grant.burn_order()):
        expires_at = balance.grant.expires_at
        if expires_at is None or expires_at > at or balance.remaining_minor == 0:
            continue
        expiries.append(
            CreditExpiry(
                grant=balance.grant,
                expired_at=expires_at,
                units_minor=balance.remaining_minor,
                money_minor=balance.grant.money_value(balance.remaining_minor),
            )
        )
    return tuple(expiries)
