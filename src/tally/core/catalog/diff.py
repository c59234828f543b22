"""The difference between the catalog the files declare and the one stored: what `catalog plan`
shows and `catalog apply` does.

How declarations map onto immutable resources:

- meters: labels change in place; a changed definition is a new meter version;
- products, features: labels change in place; a feature's kind never changes
  (`feature_kind_is_immutable`);
- prices: a changed product or price document is a *replacement* — a new price under the same code,
  and the old one archived; changed metadata alone is updated in place;
- plans: labels change in place; content (prices, quantities, trial, entitlements) that differs from
  the latest published version — or that references a price being replaced or already archived — is
  a new published version (an existing draft is filled and published instead);
- archivals: the files own the products they declare, so an active price of a declared product that
  no file declares is archived. Nothing else is ever removed: meters, features, plans and products
  that no file declares are left alone.

Applying a plan and planning again gives no changes (tested as a property).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tally.core.catalog.files import Catalog, located
from tally.core.catalog.model import (
    FeatureKind,
    FeatureSpec,
    MeterSpec,
    PlanContent,
    PlanSpec,
    PriceSpec,
    ProductSpec,
    check_plan_content,
)
from tally.core.metering.meters import definition_changes
from tally.core.rating import Price
from tally.core.rejections import Rejected


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"  # labels or metadata, in place
    NEW_VERSION = "new_version"  # a meter or plan version
    REPLACE = "replace"  # a new price under the code; the old one archived
    ARCHIVE = "archive"


@dataclass(frozen=True, slots=True, kw_only=True)
class CurrentPlan:
    """A stored plan: labels, and the content of its latest published version (empty without one),
    with its items by price code. `stale_prices`: codes whose item price is no longer the active
    price of that code (archived or replaced)."""

    spec: PlanSpec
    published_version: int | None
    draft_version: int | None
    latest_version: int
    stale_prices: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class CurrentCatalog:
    """The stored catalog, as plain values: active prices only."""

    meters: Mapping[str, MeterSpec] = field(default_factory=dict)
    products: Mapping[str, ProductSpec] = field(default_factory=dict)
    features: Mapping[str, FeatureSpec] = field(default_factory=dict)
    prices: Mapping[str, PriceSpec] = field(default_factory=dict)
    plans: Mapping[str, CurrentPlan] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    section: str  # meters, products, features, prices, plans
    code: str
    action: Action
    fields: tuple[str, ...] = ()  # what differs (update, new_version, replace)
    version: int | None = None  # the version made (new_version)

    def document(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "code": self.code,
            "action": self.action.value,
            "fields": list(self.fields),
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class CatalogPlan:
    """The changes, in the order they are applied: meters, products, features, prices, plans,
    then archivals."""

    changes: tuple[Change, ...]
    # Each declared plan's content, checked and normalized (items by price code).
    plan_contents: Mapping[str, PlanContent] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.changes

    def document(self) -> dict[str, Any]:
        counts: dict[str, int] = {action.value: 0 for action in Action}
        for change in self.changes:
            counts[change.action.value] += 1
        return {"changes": [change.document() for change in self.changes], "summary": counts}


def _label_changes(current: Any, desired: Any, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for name in names if getattr(current, name) != getattr(desired, name))


def diff_catalog(desired: Catalog, current: CurrentCatalog) -> CatalogPlan:
    """What to do so the stored catalog declares what the files declare. Rejects references to codes
    that neither the files nor the store have, and changes no rule allows."""
    # References first, in section order.
    for spec in desired.prices.values():
        with located(spec.source):
            if spec.product not in desired.products and spec.product not in current.products:
                raise Rejected.because("product_must_exist", f"no product {spec.product!r}", "product")
            meter = spec.price.meter
            if meter is not None and meter not in desired.meters and meter not in current.meters:
                raise Rejected.because("meter_must_exist", f"no meter {meter!r}", "meter")
    for feature in desired.features.values():
        stored = current.features.get(feature.code)
        if stored is not None and stored.kind is not feature.kind:
            with located(feature.source):
                raise Rejected.because(
                    "feature_kind_is_immutable",
                    f"feature {feature.code} is a {stored.kind} feature; make a new feature instead",
                    "kind",
                )

    archived = {
        code for code, spec in current.prices.items() if spec.product in desired.products and code not in desired.prices
    }
    available: dict[str, Price] = {code: spec.price for code, spec in current.prices.items() if code not in archived}
    available.update({code: spec.price for code, spec in desired.prices.items()})
    kinds: dict[str, FeatureKind] = {code: spec.kind for code, spec in current.features.items()}
    kinds.update({code: spec.kind for code, spec in desired.features.items()})
    contents: dict[str, PlanContent] = {}
    for plan in desired.plans.values():
        with located(plan.source):
            contents[plan.code] = check_plan_content(plan.content, available, kinds)

    changes: list[Change] = []
    for code, meter_spec in desired.meters.items():
        stored_meter = current.meters.get(code)
        if stored_meter is None:
            changes.append(Change(section="meters", code=code, action=Action.CREATE))
            continue
        labels = _label_changes(stored_meter, meter_spec, ("name", "description", "metadata"))
        if labels:
            changes.append(Change(section="meters", code=code, action=Action.UPDATE, fields=labels))
        definition = definition_changes(stored_meter.definition, meter_spec.definition)
        if definition:
            changes.append(Change(section="meters", code=code, action=Action.NEW_VERSION, fields=definition))
    labelled: tuple[tuple[str, Mapping[str, Any], Mapping[str, Any], tuple[str, ...]], ...] = (
        ("products", desired.products, current.products, ("name", "description", "metadata")),
        ("features", desired.features, current.features, ("name", "metadata")),
    )
    for section, desired_specs, stored_specs, names in labelled:
        for code, labelled_spec in desired_specs.items():
            stored_labels = stored_specs.get(code)
            if stored_labels is None:
                changes.append(Change(section=section, code=code, action=Action.CREATE))
            elif labels := _label_changes(stored_labels, labelled_spec, names):
                changes.append(Change(section=section, code=code, action=Action.UPDATE, fields=labels))
    replaced: set[str] = set()
    for code, price in desired.prices.items():
        stored_price = current.prices.get(code)
        if stored_price is None:
            changes.append(Change(section="prices", code=code, action=Action.CREATE))
            continue
        if stored_price.terms() != price.terms():
            fields: tuple[str, ...] = ("product",) if stored_price.product != price.product else ()
            before, after = stored_price.price.document(), price.price.document()
            fields += tuple(name for name in after if before.get(name) != after[name])
            changes.append(Change(section="prices", code=code, action=Action.REPLACE, fields=fields))
            replaced.add(code)
        elif stored_price.metadata != price.metadata:
            changes.append(Change(section="prices", code=code, action=Action.UPDATE, fields=("metadata",)))
    for code, plan in desired.plans.items():
        stored_plan = current.plans.get(code)
        if stored_plan is None:
            changes.append(Change(section="plans", code=code, action=Action.CREATE))
            changes.append(Change(section="plans", code=code, action=Action.NEW_VERSION, version=1))
            continue
        labels = _label_changes(stored_plan.spec, plan, ("name", "description", "metadata"))
        if labels:
            changes.append(Change(section="plans", code=code, action=Action.UPDATE, fields=labels))
        content = contents[code]
        content_fields = _content_changes(stored_plan, content, replaced | archived)
        if content_fields:
            version = stored_plan.draft_version or stored_plan.latest_version + 1
            changes.append(
                Change(section="plans", code=code, action=Action.NEW_VERSION, fields=content_fields, version=version)
            )
    for code in sorted(archived):
        changes.append(Change(section="prices", code=code, action=Action.ARCHIVE))
    return CatalogPlan(tuple(changes), contents)


def _content_changes(stored: CurrentPlan, content: PlanContent, moved: set[str]) -> tuple[str, ...]:
    before = stored.spec.content
    fields: list[str] = []
    if stored.published_version is None:
        return ("prices", "trial_days", "entitlements")
    item_prices = {item.price for item in content.items}
    if before.items != content.items or item_prices & (moved | stored.stale_prices):
        fields.append("prices")
    if before.trial_days != content.trial_days:
        fields.append("trial_days")
    if _typed(before.entitlements) != _typed(content.entitlements):
        fields.append("entitlements")
    return tuple(fields)


def _typed(entitlements: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    # true and 1 are equal in Python; an entitlement's type is part of its meaning.
    return {code: (type(value).__name__, value) for code, value in entitlements.items()}
