"""Catalog files: the desired catalog, read from documents already parsed (YAML is read by the caller).

A file is a mapping with any of the sections `meters`, `products`, `features`, `prices`, `plans`,
each a list of resources. Files are merged; a code appears once across all of them (per section).
Every problem is a `Rejected` whose field names the file and the path inside it
(`catalog/api.yaml: prices[1].tiers[0].up_to`). Checks run file by file, section by section in the
order above, item by item, so the same files always give the same first error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tally.core import money
from tally.core.catalog.model import (
    ENTITLEMENTS_MAX,
    PLAN_ITEMS_MAX,
    FeatureKind,
    FeatureSpec,
    MeterSpec,
    PlanContent,
    PlanItem,
    PlanSpec,
    PriceSpec,
    ProductSpec,
    check_code,
    check_labels,
    check_metadata,
)
from tally.core.metering.meters import MeterDefinitionInput
from tally.core.rating import price_from_document
from tally.core.rejections import Rejected, Rejection

SECTIONS = ("meters", "products", "features", "prices", "plans")
ITEMS_PER_SECTION_MAX = 10_000
METER_KEYS = (
    "code",
    "name",
    "description",
    "metadata",
    "event_type",
    "aggregation",
    "value_property",
    "time_unit",
    "filters",
    "group_by",
)
PRODUCT_KEYS = ("code", "name", "description", "metadata")
FEATURE_KEYS = ("code", "name", "kind", "metadata")
PRICE_CATALOG_KEYS = ("code", "product", "metadata")  # every other key belongs to the price document
PLAN_KEYS = ("code", "name", "description", "metadata", "trial_days", "prices", "entitlements")
PLAN_ITEM_KEYS = ("price", "quantity")


@dataclass(frozen=True, slots=True)
class CatalogSource:
    """One file: its name (for messages) and its parsed content."""

    name: str
    content: object


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    """A whole catalog by section, each resource by code."""

    meters: Mapping[str, MeterSpec] = field(default_factory=dict)
    products: Mapping[str, ProductSpec] = field(default_factory=dict)
    features: Mapping[str, FeatureSpec] = field(default_factory=dict)
    prices: Mapping[str, PriceSpec] = field(default_factory=dict)
    plans: Mapping[str, PlanSpec] = field(default_factory=dict)


@contextmanager
def located(where: str) -> Iterator[None]:
    """Re-raise a rejection with `where` in front of its field (and message)."""
    try:
        yield
    except Rejected as rejected:
        inner = rejected.rejection
        path = f"{where}.{inner.field}" if inner.field else where
        if inner.field and inner.field.startswith("["):
            path = f"{where}{inner.field}"
        raise Rejected(Rejection(code=inner.code, message=f"{path}: {inner.message}", field=path)) from None


def _refuse_unknown(item: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in item:
        if key not in allowed:
            raise Rejected.because(
                "catalog_field_unknown", f"unknown key {str(key)[:60]!r} (allowed: {', '.join(allowed)})", str(key)
            )


def _required(item: Mapping[str, Any], key: str) -> Any:
    if key not in item or item[key] is None:
        raise Rejected.because("catalog_field_required", f"{key} is required", key)
    return item[key]


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Rejected.because("catalog_item_must_be_mapping", f"{what} is a mapping of keys to values")
    return value


def read_catalog(sources: Sequence[CatalogSource], units: Mapping[str, money.Unit] | None = None) -> Catalog:
    """The catalog the files declare. `units` are the tenant's custom units, for prices in them."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for source in sources:
        with located(source.name):
            content = {} if source.content is None else _mapping(source.content, "a catalog file")
            _refuse_unknown(content, SECTIONS)
        for section in SECTIONS:
            items = content.get(section)
            if items is None:
                continue
            if not isinstance(items, list):
                raise Rejected.because(
                    "catalog_section_must_be_list", f"{source.name}: {section} is a list", f"{source.name}: {section}"
                )
            if len(items) + len(sections[section]) > ITEMS_PER_SECTION_MAX:
                raise Rejected.because(
                    "catalog_items_exceed_limit",
                    f"at most {ITEMS_PER_SECTION_MAX} {section} across the files",
                    f"{source.name}: {section}",
                )
            for index, raw in enumerate(items):
                where = f"{source.name}: {section}[{index}]"
                with located(where):
                    spec = _READERS[section](_mapping(raw, f"each of {section}"), where, units or {})
                earlier = sections[section].get(spec.code)
                if earlier is not None:
                    raise Rejected.because(
                        "catalog_code_duplicated",
                        f"{where}: {section} code {spec.code!r} is also declared at {earlier.source}",
                        f"{where}.code",
                    )
                sections[section][spec.code] = spec
    return Catalog(**sections)


def _meter(item: Mapping[str, Any], where: str, units: Mapping[str, money.Unit]) -> MeterSpec:
    _refuse_unknown(item, METER_KEYS)
    code = check_code(_required(item, "code"), "meter")
    name = item.get("name") or code
    description = item.get("description") or ""
    metadata = check_metadata(item.get("metadata") or {})
    check_labels("meter", name, description, metadata)
    definition = MeterDefinitionInput(
        event_type=_required(item, "event_type"),
        aggregation=_required(item, "aggregation"),
        value_property=item.get("value_property"),
        time_unit=item.get("time_unit"),
        filters=tuple(item.get("filters") or ()),
        group_by=tuple(item.get("group_by") or ()),
    ).validate()
    return MeterSpec(
        code=code, name=name, description=description, metadata=metadata, definition=definition, source=where
    )


def _product(item: Mapping[str, Any], where: str, units: Mapping[str, money.Unit]) -> ProductSpec:
    _refuse_unknown(item, PRODUCT_KEYS)
    code = check_code(_required(item, "code"), "product")
    return ProductSpec(
        code=code,
        name=item.get("name") or code,
        description=item.get("description") or "",
        metadata=check_metadata(item.get("metadata") or {}),
        source=where,
    )


def _feature(item: Mapping[str, Any], where: str, units: Mapping[str, money.Unit]) -> FeatureSpec:
    _refuse_unknown(item, FEATURE_KEYS)
    code = check_code(_required(item, "code"), "feature")
    kind = _required(item, "kind")
    if kind not in tuple(FeatureKind):
        raise Rejected.because("feature_kind_unknown", "kind is boolean or limit", "kind")
    return FeatureSpec(
        code=code,
        name=item.get("name") or code,
        kind=FeatureKind(kind),
        metadata=check_metadata(item.get("metadata") or {}),
        source=where,
    )


def _price(item: Mapping[str, Any], where: str, units: Mapping[str, money.Unit]) -> PriceSpec:
    code = check_code(_required(item, "code"), "price")
    product = check_code(_required(item, "product"), "product", "product")
    document = {key: value for key, value in item.items() if key not in PRICE_CATALOG_KEYS}
    return PriceSpec(
        code=code,
        product=product,
        price=price_from_document(document, units),
        metadata=check_metadata(item.get("metadata") or {}),
        source=where,
    )


def _plan(item: Mapping[str, Any], where: str, units: Mapping[str, money.Unit]) -> PlanSpec:
    _refuse_unknown(item, PLAN_KEYS)
    code = check_code(_required(item, "code"), "plan")
    raw_items = item.get("prices") or []
    if not isinstance(raw_items, list):
        raise Rejected.because("catalog_section_must_be_list", "prices is a list of price codes", "prices")
    if len(raw_items) > PLAN_ITEMS_MAX:
        raise Rejected.because(
            "plan_items_exceed_limit", f"a plan version has at most {PLAN_ITEMS_MAX} prices", "prices"
        )
    items = []
    for index, raw in enumerate(raw_items):
        with located(f"prices[{index}]"):
            entry = _mapping(
                {"price": raw} if isinstance(raw, str) else raw, "a plan's price (a code, or {price, quantity})"
            )
            _refuse_unknown(entry, PLAN_ITEM_KEYS)
            quantity = entry.get("quantity")
            if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int)):
                raise Rejected.because("plan_item_quantity_invalid", "quantity is a whole number", "quantity")
            items.append(PlanItem(price=check_code(_required(entry, "price"), "price", "price"), quantity=quantity))
    entitlements = item.get("entitlements") or {}
    with located("entitlements"):
        entitlements = _mapping(entitlements, "entitlements (feature code: true/false or a limit)")
    if len(entitlements) > ENTITLEMENTS_MAX:
        raise Rejected.because(
            "entitlements_exceed_limit", f"a plan version has at most {ENTITLEMENTS_MAX} entitlements", "entitlements"
        )
    trial_days = item.get("trial_days", 0)
    if isinstance(trial_days, bool) or not isinstance(trial_days, int):
        raise Rejected.because("trial_days_invalid", "trial_days is a whole number of days", "trial_days")
    return PlanSpec(
        code=code,
        name=item.get("name") or code,
        description=item.get("description") or "",
        metadata=check_metadata(item.get("metadata") or {}),
        content=PlanContent(items=tuple(items), trial_days=trial_days, entitlements=dict(entitlements)),
        source=where,
    )


_READERS: dict[str, Any] = {
    "meters": _meter,
    "products": _product,
    "features": _feature,
    "prices": _price,
    "plans": _plan,
}
