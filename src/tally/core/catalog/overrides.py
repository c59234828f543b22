"""Per-customer price overrides: a negotiated rate for one customer on one price, over a window.

An override is another price document standing in for a catalog price, for one customer, over the
half-open window [effective_from, effective_until) (no end: until ended). It changes what the
customer pays, never how usage is measured or when it is billed: its meter, interval and billing
timing are the base price's (taken from it when the document leaves them out), and its currency is
the base price's and the customer's. Windows of one customer and price never overlap, so at any
instant at most one override applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tally.core.rating import Price
from tally.core.rejections import Rejected

# Taken from the base price when an override's document leaves them out.
INHERITED_KEYS = ("meter", "interval", "billing_timing")


@dataclass(frozen=True, slots=True)
class Window:
    effective_from: datetime
    effective_until: datetime | None = None

    def __post_init__(self) -> None:
        if self.effective_until is not None and self.effective_until <= self.effective_from:
            raise Rejected.because(
                "effective_until_must_follow_effective_from",
                "an override ends after it starts (the window is [effective_from, effective_until))",
                "effective_until",
            )

    def contains(self, at: datetime) -> bool:
        return self.effective_from <= at and (self.effective_until is None or at < self.effective_until)

    def overlaps(self, other: Window) -> bool:
        starts_before_other_ends = other.effective_until is None or self.effective_from < other.effective_until
        ends_after_other_starts = self.effective_until is None or other.effective_from < self.effective_until
        return starts_before_other_ends and ends_after_other_starts


def override_document(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """The override's document with what it may not change taken from the base price's document."""
    document = dict(override)
    for key in INHERITED_KEYS:
        if key not in document:
            document[key] = base.get(key)
    return document


def check_override(base: Price, override: Price, customer_currency: str | None) -> None:
    """Checked in this order: the customer's currency, then the base price's currency, meter,
    interval and billing timing."""
    if customer_currency is not None:
        for price, field in ((base, "price"), (override, "override.currency")):
            if price.unit.code != customer_currency:
                raise Rejected.because(
                    "price_currency_must_match_customer",
                    f"the price is in {price.unit.code}, the customer is billed in {customer_currency}",
                    field,
                )
    if override.unit.code != base.unit.code:
        raise Rejected.because(
            "override_currency_must_match_price", f"the price is in {base.unit.code}", "override.currency"
        )
    for name in INHERITED_KEYS:
        if getattr(override, name) != getattr(base, name):
            raise Rejected.because(
                f"override_{name}_must_match_price",
                f"an override changes the rate, not the {name.replace('_', ' ')} of the price",
                f"override.{name}",
            )


def check_no_overlap(window: Window, existing: Sequence[Window]) -> None:
    for other in existing:
        if window.overlaps(other):
            raise Rejected.because(
                "price_override_overlaps",
                "this customer already has an override of this price in that window; end it first",
                "effective_from",
            )


def choose(windows: Sequence[tuple[Window, Any]], at: datetime) -> Any | None:
    """The value of the window holding `at` (windows do not overlap), or None."""
    for window, value in windows:
        if window.contains(at):
            return value
    return None
