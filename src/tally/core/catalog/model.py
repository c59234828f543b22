"""The catalog's resources as plain values, and the rules that hold whoever writes them (API or files).

A product, a feature and a plan have a stable code and labels edited in place. A price is immutable:
its code names "the current price of this thing", and a change is a new price under the same code
(the old one archived). A plan's content lives in numbered versions; a published version never
changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from tally.core.metering.meters import MeterDefinition
from tally.core.rating import Price
from tally.core.rejections import Rejected

CODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
NAME_LENGTH_MAX = 200
DESCRIPTION_LENGTH_MAX = 1000
METADATA_KEYS_MAX = 50
METADATA_KEY_LENGTH_MAX = 40
METADATA_VALUE_LENGTH_MAX = 500
TRIAL_DAYS_MAX = 730
PLAN_ITEMS_MAX = 50
ENTITLEMENTS_MAX = 200
LIMIT_VALUE_MAX = 10**15
QUANTITY_MAX = 1_000_000_000

Metadata = Mapping[str, str]
EntitlementValue = bool | int


class FeatureKind(StrEnum):
    BOOLEAN = "boolean"  # a flag: the plan grants it or not
    LIMIT = "limit"  # a number: how much of it the plan grants


def check_code(code: object, kind: str, field_name: str = "code") -> str:
    if not isinstance(code, str) or not CODE.match(code):
        raise Rejected.because(
            f"{kind}_code_invalid", "a code is 1 to 63 characters of a-z, 0-9 and _, starting with a letter", field_name
        )
    return code


def check_labels(kind: str, name: object, description: object = "", metadata: object = None) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_LENGTH_MAX:
        raise Rejected.because(f"{kind}_name_invalid", f"name is 1 to {NAME_LENGTH_MAX} characters", "name")
    if not isinstance(description, str) or len(description) > DESCRIPTION_LENGTH_MAX:
        raise Rejected.because(
            f"{kind}_description_too_long", f"description is at most {DESCRIPTION_LENGTH_MAX} characters", "description"
        )
    check_metadata(metadata if metadata is not None else {})


def check_metadata(metadata: object, field_name: str = "metadata") -> dict[str, str]:
    if not isinstance(metadata, Mapping):
        raise Rejected.because("metadata_must_be_object", "metadata maps text keys to text values", field_name)
    if len(metadata) > METADATA_KEYS_MAX:
        raise Rejected.because("metadata_exceeds_limit", f"at most {METADATA_KEYS_MAX} metadata keys", field_name)
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= METADATA_KEY_LENGTH_MAX:
            raise Rejected.because(
                "metadata_key_invalid", f"keys are 1 to {METADATA_KEY_LENGTH_MAX} characters", field_name
            )
        if not isinstance(value, str) or len(value) > METADATA_VALUE_LENGTH_MAX:
            raise Rejected.because(
                "metadata_value_invalid",
                f"values are text of at most {METADATA_VALUE_LENGTH_MAX} characters",
                field_name,
            )
    return dict(metadata)


# ----- the resources, as the diff compares them ---------------------------------------------------
# `source` says where a spec was written (file and path) for error messages; it is never compared.


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterSpec:
    code: str
    name: str
    description: str = ""
    metadata: Metadata = field(default_factory=dict)
    definition: MeterDefinition
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductSpec:
    code: str
    name: str
    description: str = ""
    metadata: Metadata = field(default_factory=dict)
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_code(self.code, "product")
        check_labels("product", self.name, self.description, self.metadata)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureSpec:
    code: str
    name: str
    kind: FeatureKind
    metadata: Metadata = field(default_factory=dict)
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_code(self.code, "feature")
        check_labels("feature", self.name, "", self.metadata)


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceSpec:
    """A price's code, its product's code and its terms. Two specs with equal `terms()` are the same
    price; anything else about a price (but metadata) is a replacement."""

    code: str
    product: str
    price: Price
    metadata: Metadata = field(default_factory=dict)
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_code(self.code, "price")
        check_code(self.product, "product", "product")
        check_metadata(self.metadata)

    def terms(self) -> tuple[str, dict[str, Any]]:
        return (self.product, self.price.document())


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanItem:
    """A price in a plan version (by code in files, by id in the API) and, for a fixed fee, the
    default quantity (seats) a subscription starts with. Usage prices have no quantity."""

    price: str
    quantity: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanContent:
    """What a plan version holds."""

    items: tuple[PlanItem, ...] = ()
    trial_days: int = 0
    entitlements: Mapping[str, EntitlementValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSpec:
    code: str
    name: str
    description: str = ""
    metadata: Metadata = field(default_factory=dict)
    content: PlanContent = PlanContent()
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_code(self.code, "plan")
        check_labels("plan", self.name, self.description, self.metadata)


# ----- plan versions ------------------------------------------------------------------------------


def check_plan_content(
    content: PlanContent,
    prices: Mapping[str, Price],
    features: Mapping[str, FeatureKind],
) -> PlanContent:
    """A version's content, checked and normalized (a fixed fee's quantity defaults to 1).

    `prices` holds every item's price by the reference the items use; `features` the tenant's (or
    the catalog's) features by code. Checked in this order: limits, trial, items one by one
    (duplicates, quantity), one currency across the items, then entitlements in key order."""
    if len(content.items) > PLAN_ITEMS_MAX:
        raise Rejected.because(
            "plan_items_exceed_limit", f"a plan version has at most {PLAN_ITEMS_MAX} prices", "items"
        )
    if len(content.entitlements) > ENTITLEMENTS_MAX:
        raise Rejected.because(
            "entitlements_exceed_limit", f"a plan version has at most {ENTITLEMENTS_MAX} entitlements", "entitlements"
        )
    if isinstance(content.trial_days, bool) or not isinstance(content.trial_days, int):
        raise Rejected.because("trial_days_invalid", "trial_days is a whole number of days", "trial_days")
    if not 0 <= content.trial_days <= TRIAL_DAYS_MAX:
        raise Rejected.because("trial_days_invalid", f"trial_days is 0 to {TRIAL_DAYS_MAX}", "trial_days")
    items: list[PlanItem] = []
    seen: set[str] = set()
    currencies: set[str] = set()
    for index, item in enumerate(content.items):
        where = f"items[{index}]"
        if item.price in seen:
            raise Rejected.because("plan_price_duplicated", "a price appears once per plan version", f"{where}.price")
        seen.add(item.price)
        price = prices.get(item.price)
        if price is None:
            raise Rejected.because("price_must_exist", f"no active price {item.price!r}", f"{where}.price")
        quantity = item.quantity
        if price.meter is not None:
            if quantity is not None:
                raise Rejected.because(
                    "plan_item_quantity_needs_a_fixed_price",
                    "a usage price's quantity is measured: only fixed fees have a quantity",
                    f"{where}.quantity",
                )
        else:
            quantity = 1 if quantity is None else quantity
            if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= QUANTITY_MAX:
                raise Rejected.because(
                    "plan_item_quantity_invalid", f"quantity is a whole number 0 to {QUANTITY_MAX}", f"{where}.quantity"
                )
        currencies.add(price.unit.code)
        if len(currencies) > 1:
            raise Rejected.because(
                "plan_prices_must_share_currency",
                f"a plan version is billed in one currency, not {', '.join(sorted(currencies))}",
                f"{where}.price",
            )
        items.append(PlanItem(price=item.price, quantity=quantity))
    entitlements: dict[str, EntitlementValue] = {}
    for code in sorted(content.entitlements):
        value = content.entitlements[code]
        where = f"entitlements.{code}"
        kind = features.get(code)
        if kind is None:
            raise Rejected.because("feature_must_exist", f"no feature {code!r}", where)
        if kind is FeatureKind.BOOLEAN:
            if not isinstance(value, bool):
                raise Rejected.because("entitlement_must_be_boolean", f"{code} is a flag: true or false", where)
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LIMIT_VALUE_MAX:
            raise Rejected.because(
                "entitlement_must_be_limit", f"{code} is a limit: a whole number 0 to {LIMIT_VALUE_MAX}", where
            )
        entitlements[code] = value
    return PlanContent(items=tuple(items), trial_days=content.trial_days, entitlements=entitlements)


# ----- migrating subscriptions between plan versions (a seam) --------------------------------------


class MigrationTiming(StrEnum):
    IMMEDIATELY = "immediately"  # prorated from `effective_at`
    PERIOD_END = "period_end"  # at each subscription's current period end


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanMigration:
    """Move the subscriptions on `plan` version `from_version` to `to_version` (published, same
    plan). Both versions stay as they are: a migration is a change recorded on each subscription's
    timeline, never an edit of a version."""

    plan: str
    from_version: int
    to_version: int
    timing: MigrationTiming
    effective_at: datetime | None = None  # IMMEDIATELY only: when; default the customer's clock now


class SubscriptionMigrator(Protocol):
    """Implemented by the subscription module (not yet built): records, for every subscription of
    the plan on `from_version`, a plan change to `to_version` on its timeline, with the usual
    proration for IMMEDIATELY, and answers the subscriptions changed. The catalog only guarantees
    that both versions exist, are published and will never change."""

    def migrate(self, migration: PlanMigration) -> Sequence[str]: ...
