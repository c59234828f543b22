"""Commitments: a minimum spend per period (trued up by a line), and caps on a usage price.

**Minimum spend.** A `MinimumCommitment` promises at least `minimum_minor` of spend over `period`,
for one subscription or the whole customer, over all prices or some. Spend is the net of every
charge line whose service period lies inside the commitment's period (and whose price is in scope),
after its discounts: what the customer is actually charged. Once the period has ended (its end at or
before the run's `through`), a `minimum_commitment` line charges the shortfall, if any. The true-up is
recomputed like every line, so usage corrected later moves it, and a true-up is never discounted.

**Caps.** A `PriceCap` limits what one usage price charges per billing period (for one subscription,
or all of the customer's), on top of the price's own `maximum_amount`: the lower one wins. Usage over
the cap shows as a negative `usage_cap` line, so the usage line itself still shows the real quantity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tally.core.invoicing.lines import (
    CHARGE_KINDS,
    CommitmentSource,
    ExpectedLine,
    Explanation,
    LineKey,
    LineKind,
    check_id,
    check_identifier,
)
from tally.core.money import AMOUNT_MINOR_MAX, Unit
from tally.core.periods import Period
from tally.core.rating.models import check_price
from tally.core.rejections import Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class MinimumCommitment:
    commitment_id: str
    period: Period
    minimum_minor: int
    currency: Unit
    subscription_id: str | None = None
    price_ids: frozenset[str] = field(default_factory=frozenset)  # empty: every price

    def __post_init__(self) -> None:
        check_identifier(self.commitment_id, "commitment_id_invalid", "commitment_id")
        if isinstance(self.minimum_minor, bool) or not isinstance(self.minimum_minor, int):
            raise TypeError("minimum_minor is an int of minor units")
        if not 0 < self.minimum_minor <= AMOUNT_MINOR_MAX:
            raise Rejected.because(
                "commitment_amount_must_be_positive", "a minimum commitment is above zero", "minimum"
            )
        if self.period.start >= self.period.end:
            raise Rejected.because("commitment_period_must_not_be_empty", "a commitment covers some time", "period")
        if self.subscription_id is not None:
            check_id(self.subscription_id, "subscription_id_invalid", "subscription_id")
        for price_id in self.price_ids:
            check_id(price_id, "price_id_invalid", "price_ids")

    def check_currency(self, currency: Unit) -> None:
        if self.currency != currency:
            raise Rejected.because(
                "commitment_currency_must_match_invoice",
                f"commitment {self.commitment_id} is in {self.currency.code}; the invoice is in {currency.code}",
                "commitment",
            )

    def key(self) -> LineKey:
        return LineKey(
            self.subscription_id or "",
            "",
            self.period.start,
            self.period.end,
            (),
            LineKind.MINIMUM_COMMITMENT,
            self.commitment_id,
        )

    def counts(self, key: LineKey) -> bool:
        """Whether a charge line (or a discount of one) counts toward this commitment's spend."""
        base = key.discount_base() or key
        if base.kind not in CHARGE_KINDS:
            return False
        if self.subscription_id is not None and base.subscription_id != self.subscription_id:
            return False
        if self.price_ids and base.price_id not in self.price_ids:
            return False
        start, end = base.service_start, base.service_end
        return self.period.start <= start < self.period.end and end <= self.period.end


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceCap:
    """At most `maximum_amount` (exact, major units) per billing period of a usage price."""

    price_id: str
    maximum_amount: Decimal
    subscription_id: str | None = None

    def __post_init__(self) -> None:
        check_id(self.price_id, "price_id_invalid", "price_id")
        object.__setattr__(self, "maximum_amount", check_price(self.maximum_amount, "maximum_amount"))
        if self.subscription_id is not None:
            check_id(self.subscription_id, "subscription_id_invalid", "subscription_id")

    def applies(self, subscription_id: str, price_id: str) -> bool:
        return self.price_id == price_id and self.subscription_id in (None, subscription_id)


def true_up_lines(
    commitments: Sequence[MinimumCommitment], effective: Mapping[LineKey, int], through: datetime
) -> list[ExpectedLine]:
    """The true-up line of every commitment whose period has ended, from the effective line totals."""
    lines: list[ExpectedLine] = []
    for commitment in commitments:
        if commitment.period.end > through:
            continue
        counted = sorted((key for key in effective if commitment.counts(key)), key=LineKey.sort_key)
        spend = sum(effective[key] for key in counted)
        shortfall = commitment.minimum_minor - spend
        if shortfall <= 0:
            continue
        lines.append(
            ExpectedLine(
                key=commitment.key(),
                amount_minor=shortfall,
                due_at=commitment.period.end,
                description=f"Minimum commitment true-up ({commitment.commitment_id})",
                explanation=Explanation(
                    billing_period=commitment.period,
                    commitment=CommitmentSource(
                        commitment_id=commitment.commitment_id,
                        minimum_minor=commitment.minimum_minor,
                        spend_minor=spend,
                        counted=tuple(counted),
                    ),
                ),
            )
        )
    return lines
