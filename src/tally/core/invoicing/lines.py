"""Invoice lines: what identifies them across recomputations (`LineKey`), and how each explains itself.

A line's key is what the database puts a unique constraint on, together with the line's `sequence`
(0 for the first line of a key, 1, 2, … for later corrections of it). Reconciling recomputes the
total every key should carry, subtracts what lines of that key already carry, and emits the
difference as the next sequence of that key. Two runs racing on the same key both propose the same
sequence, so the second insert fails on the constraint instead of billing twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tally.core.frozen import quick_init
from tally.core.money import RoundingMode
from tally.core.periods import Period
from tally.core.rating import Rating
from tally.core.rating.usage import Group
from tally.core.rejections import Rejected
from tally.core.subscriptions import Proration

# Ids that become parts of line keys and ledger sub-accounts: lower case, digits, `_` and `-`
# (a UUID's text form fits). Coupon and grant ids appear in account codes and discount references.
IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
# Subscription, price and charge ids come from other modules; these only bound their length.
ID_LENGTH_MAX = 255


class LineKind(StrEnum):
    """What a line is. The order is the order lines are listed in on an invoice."""

    FIXED_FEE_CREDIT = "fixed_fee_credit"  # the unused part of a fee billed before a change (negative)
    FIXED_FEE = "fixed_fee"  # a recurring fee for (part of) a period, billed in advance
    USAGE = "usage"  # usage of one price, one period, one dimension group, billed in arrears
    USAGE_MINIMUM = "usage_minimum"  # raising a usage price's period to its minimum amount
    USAGE_CAP = "usage_cap"  # capping a usage price's period at its maximum (negative)
    ONE_OFF = "one_off"  # a one-off charge
    MINIMUM_COMMITMENT = "minimum_commitment"  # the true-up to a minimum spend commitment
    DISCOUNT = "discount"  # one coupon's discount on one charge line (negative, or a reversal)


KIND_ORDER = {kind: position for position, kind in enumerate(LineKind)}
# Lines that charge for something (as opposed to adjusting another line).
CHARGE_KINDS = frozenset(
    {
        LineKind.FIXED_FEE,
        LineKind.FIXED_FEE_CREDIT,
        LineKind.USAGE,
        LineKind.USAGE_MINIMUM,
        LineKind.USAGE_CAP,
        LineKind.ONE_OFF,
    }
)
USAGE_KINDS = frozenset({LineKind.USAGE, LineKind.USAGE_MINIMUM, LineKind.USAGE_CAP})
FEE_KINDS = frozenset({LineKind.FIXED_FEE, LineKind.FIXED_FEE_CREDIT})


def line_account(kind: LineKind, product: str) -> str:
    """The chart code a line's amount goes to: fees are deferred (recognized over their service
    period), discounts are contra-revenue, everything else is revenue of its product."""
    if kind in FEE_KINDS:
        return "deferred_revenue"
    if kind is LineKind.DISCOUNT:
        return "discounts"
    return f"revenue.{product}" if product else "revenue"


def check_identifier(value: object, code: str, field: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise Rejected.because(
            code, "ids are 1 to 64 characters of a-z, 0-9, _ and -, starting with a letter or digit", field
        )
    return value


def check_id(value: object, code: str, field: str, *, empty_allowed: bool = False) -> str:
    if not isinstance(value, str) or len(value) > ID_LENGTH_MAX or (not value and not empty_allowed):
        raise Rejected.because(code, f"ids are 1 to {ID_LENGTH_MAX} characters", field)
    return value


def group_sort_key(group: Group) -> tuple[tuple[bool, str], ...]:
    return tuple((value is not None, value or "") for value in group)


@quick_init
@dataclass(frozen=True, slots=True)
class LineKey:
    """What a line is about, stable across recomputations.

    - `subscription_id`: the subscription the line comes from; "" for customer-level lines
      (one-off charges, customer-wide commitments).
    - `price_id`: the billing price (the subscription item's id, or a one-off charge's price);
      "" for lines about no single price (a commitment true-up).
    - `service_start`, `service_end`: the service period the line pays for. For a fee: the part of
      the period charged or credited. For usage, its minimum and cap: the price's whole billing
      period (tiers apply per period). For a one-off charge: `[at, at)`. For a commitment: its period.
    - `group`: the dimension values of a usage line (in the meter's group-by order); () otherwise.
    - `kind`: the line kind.
    - `reference`: what else tells lines apart: a one-off charge's id, a commitment's id, and for a
      discount `<coupon id>:<kind of the discounted line>`.

    No part is ever null, so a unique constraint over them works in any database.
    """

    subscription_id: str
    price_id: str
    service_start: datetime
    service_end: datetime
    group: Group
    kind: LineKind
    reference: str = ""

    @property
    def service_period(self) -> Period:
        return Period(self.service_start, self.service_end)

    def sort_key(self) -> tuple[Any, ...]:
        """Invoice order: by subscription, service start, kind, price; a discount right after its
        line; commitment true-ups last."""
        base = self.discount_base() or self
        return (
            base.kind is LineKind.MINIMUM_COMMITMENT,
            base.subscription_id,
            base.service_start,
            KIND_ORDER[base.kind],
            base.price_id,
            base.service_end,
            group_sort_key(base.group),
            base.reference,
            self.kind is LineKind.DISCOUNT,
            self.reference if self.kind is LineKind.DISCOUNT else "",
        )

    def discount_base(self) -> LineKey | None:
        """For a discount line, the key of the line it discounts; None for any other line."""
        if self.kind is not LineKind.DISCOUNT:
            return None
        _, _, base_kind = self.reference.partition(":")
        return LineKey(
            self.subscription_id, self.price_id, self.service_start, self.service_end, self.group, LineKind(base_kind)
        )

    def discounted_by(self, coupon_id: str) -> LineKey:
        return LineKey(
            self.subscription_id,
            self.price_id,
            self.service_start,
            self.service_end,
            self.group,
            LineKind.DISCOUNT,
            f"{coupon_id}:{self.kind.value}",
        )

    def document(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "price_id": self.price_id,
            "service_start": self.service_start.isoformat(),
            "service_end": self.service_end.isoformat(),
            "group": list(self.group),
            "kind": self.kind.value,
            "reference": self.reference,
        }


# ----- explanations ------------------------------------------------------------------------------


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class PriceSource:
    """Which price and plan version a line was priced with."""

    price_id: str
    catalog_price_id: str
    code: str
    product: str
    plan_id: str
    plan_version: int | None

    def document(self) -> dict[str, Any]:
        return {
            "price_id": self.price_id,
            "catalog_price_id": self.catalog_price_id,
            "code": self.code,
            "product": self.product,
            "plan_id": self.plan_id,
            "plan_version": self.plan_version,
        }


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class UsageSource:
    """Where a usage line's quantity came from: the meter and the version it was measured with, the
    windows it was measured over, and the dimension group. The explain endpoint turns this into a
    query down to the events, against that same version (a meter changed since then is a new
    version and never reinterprets a billed line).

    `meter_version` (1, 2, …) and `meter_version_id` (the store's key of that version) are None only
    for readings that did not say (core tests); the billing run always records both."""

    meter: str
    windows: tuple[Period, ...]
    group: Group
    progressive: bool
    meter_version: int | None = None
    meter_version_id: int | None = None

    def document(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "meter_version": self.meter_version,
            "meter_version_id": self.meter_version_id,
            "windows": [{"start": w.start.isoformat(), "end": w.end.isoformat()} for w in self.windows],
            "group": list(self.group),
            "progressive": self.progressive,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscountSource:
    coupon_id: str
    redemption_id: str
    percent_off: Decimal | None
    amount_off_minor: int | None
    # Which of the coupon's periods the discounted line falls in (0 = the first).
    coupon_period: int
    # The charge line's amount before this coupon (after earlier coupons), in minor units.
    base_amount_minor: int

    def document(self) -> dict[str, Any]:
        return {
            "coupon_id": self.coupon_id,
            "redemption_id": self.redemption_id,
            "percent_off": None if self.percent_off is None else str(self.percent_off),
            "amount_off_minor": self.amount_off_minor,
            "coupon_period": self.coupon_period,
            "base_amount_minor": self.base_amount_minor,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitmentSource:
    commitment_id: str
    minimum_minor: int
    spend_minor: int
    counted: tuple[LineKey, ...]

    def document(self) -> dict[str, Any]:
        return {
            "commitment_id": self.commitment_id,
            "minimum_minor": self.minimum_minor,
            "spend_minor": self.spend_minor,
            "counted": [key.document() for key in self.counted],
        }


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """How a line's total was derived. Every field that does not apply is None."""

    price: PriceSource | None = None
    billing_period: Period | None = None
    quantity: Decimal | None = None
    unit_amount: Decimal | None = None
    proration: Proration | None = None
    rating: Rating | None = None  # the tier breakdown of a usage line or a one-off charge
    usage: UsageSource | None = None
    # The exact amount before the one rounding, and the mode of that rounding.
    exact_amount: Decimal | None = None
    rounding: RoundingMode = RoundingMode.HALF_UP
    discount: DiscountSource | None = None
    commitment: CommitmentSource | None = None
    note: str = ""

    def document(self) -> dict[str, Any]:
        proration = self.proration
        return {
            "price": None if self.price is None else self.price.document(),
            "billing_period": None
            if self.billing_period is None
            else {"start": self.billing_period.start.isoformat(), "end": self.billing_period.end.isoformat()},
            "quantity": None if self.quantity is None else str(self.quantity),
            "unit_amount": None if self.unit_amount is None else str(self.unit_amount),
            "proration": None
            if proration is None
            else {
                "basis": proration.basis.value,
                "units_used": proration.units_used,
                "units_in_period": proration.units_in_period,
            },
            "rating": None if self.rating is None else self.rating.document(),
            "usage": None if self.usage is None else self.usage.document(),
            "exact_amount": None if self.exact_amount is None else str(self.exact_amount),
            "rounding": self.rounding.value,
            "discount": None if self.discount is None else self.discount.document(),
            "commitment": None if self.commitment is None else self.commitment.document(),
            "note": self.note,
        }


# ----- lines -------------------------------------------------------------------------------------


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectedLine:
    """What a key should carry in total, recomputed from scratch."""

    key: LineKey
    amount_minor: int
    due_at: datetime
    description: str
    explanation: Explanation
    # Where the line's revenue goes: the product of its price ("" when none).
    product: str = ""


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class BilledLine:
    """A line already on an invoice (draft lines excluded: a draft is recomputed, not reconciled)."""

    key: LineKey
    sequence: int
    amount_minor: int
    # Billed from a progressive reading (usage so far in an open period): the period still needs
    # a closing reading.
    provisional: bool = False
    # The invoice the line is on ("" when the caller does not say): where a late-usage credit note
    # for the line's period is issued against.
    invoice_id: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TypeError("amount_minor is an int of minor units")
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int) or self.sequence < 0:
            raise Rejected.because("line_sequence_out_of_range", "a line sequence is 0 or more", "billed.sequence")


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceLine:
    """A line of a proposed invoice: the difference between what its key should carry and what it
    already carries. `amount_minor = amount_minor_total − amount_minor_billed_prior`."""

    key: LineKey
    sequence: int
    amount_minor: int
    amount_minor_total: int
    amount_minor_billed_prior: int
    due_at: datetime
    description: str
    explanation: Explanation
    product: str = ""

    @property
    def is_correction(self) -> bool:
        return self.sequence > 0

    def billed(self) -> BilledLine:
        """This line as it reads once recorded on an invoice."""
        usage = self.explanation.usage
        return BilledLine(
            key=self.key,
            sequence=self.sequence,
            amount_minor=self.amount_minor,
            provisional=usage is not None and usage.progressive,
        )

    def document(self) -> dict[str, Any]:
        return {
            "key": self.key.document(),
            "sequence": self.sequence,
            "amount_minor": self.amount_minor,
            "amount_minor_total": self.amount_minor_total,
            "amount_minor_billed_prior": self.amount_minor_billed_prior,
            "due_at": self.due_at.isoformat(),
            "description": self.description,
            "product": self.product,
            "explanation": self.explanation.document(),
        }
