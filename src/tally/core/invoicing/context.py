"""What a proposal is computed from: one customer, one currency, everything due through a moment.

`InvoiceContext` is the one input object of `propose` (STYLE rule 11). It checks itself on
construction, in the order of its fields, so one bad input always gets the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tally.core.frozen import quick_init
from tally.core.invoicing.commitments import MinimumCommitment, PriceCap
from tally.core.invoicing.credits import GrantBalance
from tally.core.invoicing.discounts import Redemption
from tally.core.invoicing.lines import BilledLine, LineKey, PriceSource, check_id
from tally.core.invoicing.tax import TaxCalculator
from tally.core.money import AMOUNT_MINOR_MAX, Unit
from tally.core.periods import Period
from tally.core.rating import Price, Usage
from tally.core.rating.models import WIDE
from tally.core.rating.usage import Group
from tally.core.rejections import InvariantViolation, Rejected
from tally.core.subscriptions import BillingEvents

SUBSCRIPTIONS_MAX = 100
USAGE_READINGS_MAX = 100_000
ONE_OFF_CHARGES_MAX = 1_000
# A one-off charge's quantity: more than zero, at most this many units, at most this many decimal
# places (an hour and a half of consulting is 1.5; a trillion of anything is a typo).
ONE_OFF_QUANTITY_MAX = Decimal(10**12)
ONE_OFF_QUANTITY_DECIMAL_PLACES_MAX = 12
ONE_OFF_DESCRIPTION_LENGTH_MAX = 500
BILLED_LINES_MAX = 200_000
REDEMPTIONS_MAX = 20
COMMITMENTS_MAX = 100
CAPS_MAX = 100
WINDOWS_PER_READING_MAX = 1_000
# Product codes become ledger sub-accounts (`revenue.<product>`).
PRODUCT_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRef:
    """A billing price with what its lines show: the catalog price, product and plan version.

    `price_id` is the id billing events use (a subscription item's id); `catalog_price_id` the
    catalog price it comes from (default: the same id).
    """

    price_id: str
    price: Price
    catalog_price_id: str = ""
    code: str = ""
    product: str = ""
    plan_id: str = ""
    plan_version: int | None = None

    def __post_init__(self) -> None:
        check_id(self.price_id, "price_id_invalid", "price_id")
        if not self.catalog_price_id:
            object.__setattr__(self, "catalog_price_id", self.price_id)
        if not set(self.product) <= PRODUCT_CHARACTERS or len(self.product) > 64:
            raise Rejected.because(
                "product_code_invalid", "a product code is up to 64 characters of a-z, 0-9, _ and -", "product"
            )

    def source(self) -> PriceSource:
        return PriceSource(
            price_id=self.price_id,
            catalog_price_id=self.catalog_price_id,
            code=self.code,
            product=self.product,
            plan_id=self.plan_id,
            plan_version=self.plan_version,
        )

    @property
    def name(self) -> str:
        return self.code or self.catalog_price_id


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionBilling:
    """One subscription's billing events (through the run's moment) and the prices they name."""

    events: BillingEvents
    prices: tuple[PriceRef, ...]

    @property
    def subscription_id(self) -> str:
        return self.events.subscription_id

    def price(self, price_id: str) -> PriceRef:
        for ref in self.prices:
            if ref.price_id == price_id:
                return ref
        raise Rejected.because("price_must_be_known", f"no price {price_id!r} was given", "prices")


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class UsageReading:
    """Usage of one price over the due usage windows of one of its billing periods, for one group.

    `windows` are the usage windows the quantity was measured over: for a closing reading, exactly
    the price's due usage windows in `period`. A `progressive` reading (threshold billing, a
    preview) measures usage so far in a period that is still open: it is rated without the price's
    minimum, and a later closing reading of the same period bills the rest.

    `meter_version` and `meter_version_id` name the meter version the quantity was measured with
    (both or neither); the usage line records them so its explanation measures with that version.
    """

    subscription_id: str
    price_id: str
    period: Period
    usage: Usage
    windows: tuple[Period, ...]
    group: Group = ()
    progressive: bool = False
    meter_version: int | None = None
    meter_version_id: int | None = None

    def __post_init__(self) -> None:
        if len(self.windows) > WINDOWS_PER_READING_MAX:
            raise Rejected.because(
                "usage_windows_exceed_limit", f"at most {WINDOWS_PER_READING_MAX} windows", "windows"
            )
        for window in self.windows:
            if not (self.period.start <= window.start < window.end <= self.period.end):
                raise Rejected.because(
                    "usage_window_must_lie_in_period", "each usage window is non-empty and inside the period", "windows"
                )
        if (self.meter_version is None) != (self.meter_version_id is None) or (
            self.meter_version is not None and (isinstance(self.meter_version, bool) or self.meter_version < 1)
        ):
            raise Rejected.because(
                "usage_meter_version_invalid",
                "a reading names its meter version (1 or more) and that version's id together, or neither",
                "meter_version",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class OneOffCharge:
    """A charge outside any subscription: `quantity` of a (one-off) price at a moment."""

    charge_id: str
    price: PriceRef
    at: datetime
    quantity: Decimal = Decimal(1)
    description: str = ""

    def __post_init__(self) -> None:
        check_id(self.charge_id, "charge_id_invalid", "charge_id")
        if self.at.tzinfo is None:
            raise Rejected.because("datetime_must_have_timezone", "at needs a time zone", "at")
        object.__setattr__(self, "quantity", check_one_off_quantity(self.quantity))
        check_one_off_description(self.description)


def check_one_off_quantity(value: object, field_name: str = "quantity") -> Decimal:
    """A one-off charge's quantity: a finite number above zero, at most `ONE_OFF_QUANTITY_MAX`, with
    at most `ONE_OFF_QUANTITY_DECIMAL_PLACES_MAX` decimal places. A float is a programming error."""
    if isinstance(value, float):
        raise TypeError("float is never used for quantities; pass a Decimal or an int")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise Rejected.because("value_must_be_number", "a quantity is a number", field_name)
    number = Decimal(value)
    if not number.is_finite() or number <= 0:
        raise Rejected.because("charge_quantity_must_be_positive", "a charge's quantity is more than zero", field_name)
    if number > ONE_OFF_QUANTITY_MAX:
        raise Rejected.because(
            "charge_quantity_exceeds_limit", f"a charge's quantity is at most {ONE_OFF_QUANTITY_MAX}", field_name
        )
    # Normalized in a context wide enough never to round: 1.50 has two decimal places written, one real.
    exponent = number.normalize(WIDE).as_tuple().exponent
    if not isinstance(exponent, int):  # pragma: no cover - a finite Decimal has an integer exponent
        raise InvariantViolation("a finite Decimal has an integer exponent")
    if -exponent > ONE_OFF_QUANTITY_DECIMAL_PLACES_MAX:
        raise Rejected.because(
            "charge_quantity_exceeds_precision",
            f"a charge's quantity has at most {ONE_OFF_QUANTITY_DECIMAL_PLACES_MAX} decimal places",
            field_name,
        )
    return number


def check_one_off_description(value: str, field_name: str = "description") -> str:
    if len(value) > ONE_OFF_DESCRIPTION_LENGTH_MAX:
        raise Rejected.because(
            "charge_description_exceeds_limit",
            f"a charge's description has at most {ONE_OFF_DESCRIPTION_LENGTH_MAX} characters",
            field_name,
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceContext:
    """Everything `propose` needs for one customer and currency, through `through`.

    - `subscriptions`: each with `billing_events(timeline, through=through)` and its prices.
    - `usage`: readings for the usage periods to (re)rate. A due usage period never billed in full
      must have one; a period billed before is re-rated only when a reading is given (late events).
    - `billed`: every line already on the customer's finalized invoices in this currency (all
      sequences of a key), so the difference can be taken.
    - `redemptions`: every coupon redemption the customer ever had (a discount is recomputed too).
    - `grants`, `customer_balance_minor`: credit balances from the ledger at `through`.
    """

    customer_id: str
    currency: Unit
    through: datetime
    subscriptions: tuple[SubscriptionBilling, ...] = ()
    usage: tuple[UsageReading, ...] = ()
    one_off_charges: tuple[OneOffCharge, ...] = ()
    billed: tuple[BilledLine, ...] = ()
    redemptions: tuple[Redemption, ...] = ()
    commitments: tuple[MinimumCommitment, ...] = ()
    caps: tuple[PriceCap, ...] = ()
    grants: tuple[GrantBalance, ...] = ()
    tax: TaxCalculator | None = None
    customer_balance_minor: int = 0
    # Derived: billed lines by key, sequence order.
    billed_by_key: dict[LineKey, list[BilledLine]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_id(self.customer_id, "customer_id_invalid", "customer_id")
        if self.through.tzinfo is None:
            raise Rejected.because("datetime_must_have_timezone", "through needs a time zone", "through")
        for name, items, limit in (
            ("subscriptions", self.subscriptions, SUBSCRIPTIONS_MAX),
            ("usage", self.usage, USAGE_READINGS_MAX),
            ("one_off_charges", self.one_off_charges, ONE_OFF_CHARGES_MAX),
            ("billed", self.billed, BILLED_LINES_MAX),
            ("redemptions", self.redemptions, REDEMPTIONS_MAX),
            ("commitments", self.commitments, COMMITMENTS_MAX),
            ("caps", self.caps, CAPS_MAX),
        ):
            if len(items) > limit:
                raise Rejected.because(f"{name}_exceed_limit", f"at most {limit} {name} per proposal", name)
        self._check_subscriptions()
        self._check_one_offs()
        _distinct([r.redemption_id for r in self.redemptions], "redemptions_must_be_distinct", "redemptions")
        for redemption in self.redemptions:
            redemption.coupon.check_currency(self.currency)
        _distinct([c.commitment_id for c in self.commitments], "commitments_must_be_distinct", "commitments")
        for commitment in self.commitments:
            commitment.check_currency(self.currency)
        if isinstance(self.customer_balance_minor, bool) or not isinstance(self.customer_balance_minor, int):
            raise TypeError("customer_balance_minor is an int of minor units")
        if not 0 <= self.customer_balance_minor <= AMOUNT_MINOR_MAX:
            raise Rejected.because("customer_balance_out_of_range", "a customer's balance is zero or more", "balance")
        object.__setattr__(self, "billed_by_key", self._billed_by_key())

    def _check_subscriptions(self) -> None:
        _distinct([s.subscription_id for s in self.subscriptions], "subscriptions_must_be_distinct", "subscriptions")
        for billing in self.subscriptions:
            if billing.events.through != self.through:
                raise Rejected.because(
                    "billing_events_must_run_through_the_same_moment",
                    f"the billing events of {billing.subscription_id} run through {billing.events.through}",
                    "subscriptions",
                )
            _distinct([ref.price_id for ref in billing.prices], "prices_must_be_distinct", "prices")
            for price_periods in billing.events.periods:
                self._check_price(billing.price(price_periods.price_id))
            for event in billing.events.events:
                if event.currency != self.currency:
                    raise Rejected.because(
                        "price_currency_must_match_invoice",
                        f"{event.price_id} bills in {event.currency.code}",
                        "prices",
                    )

    def _check_one_offs(self) -> None:
        _distinct([c.charge_id for c in self.one_off_charges], "one_off_charges_must_be_distinct", "one_off_charges")
        for charge in self.one_off_charges:
            self._check_price(charge.price)

    def _check_price(self, ref: PriceRef) -> None:
        if ref.price.unit != self.currency:
            raise Rejected.because(
                "price_currency_must_match_invoice",
                f"{ref.price_id} is in {ref.price.unit.code}; the invoice is in {self.currency.code}",
                "prices",
            )

    def _billed_by_key(self) -> dict[LineKey, list[BilledLine]]:
        by_key: dict[LineKey, list[BilledLine]] = {}
        for line in self.billed:
            by_key.setdefault(line.key, []).append(line)
        for key, lines in by_key.items():
            lines.sort(key=lambda line: line.sequence)
            if [line.sequence for line in lines] != list(range(len(lines))):
                raise Rejected.because(
                    "billed_line_sequences_must_be_contiguous",
                    f"the lines billed for one key must have sequences 0 to n-1 ({key.kind} {key.price_id})",
                    "billed",
                )
        return by_key

    def subscription(self, subscription_id: str) -> SubscriptionBilling | None:
        for billing in self.subscriptions:
            if billing.subscription_id == subscription_id:
                return billing
        return None


def _distinct(ids: list[str], code: str, field_name: str) -> None:
    if len(set(ids)) != len(ids):
        raise Rejected.because(code, f"an id appears twice in {field_name}", field_name)
