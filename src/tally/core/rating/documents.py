"""Prices as documents: plain JSON-safe dicts, the one format the API, catalog files and the database
share. `price_from_document` reads one (refusing unknown keys); `Price.document()` writes one, with
every default spelled out and numbers as canonical strings, so reading it back gives an equal price.

Checks run in this order: the document is an object; `model` is known; no unknown key; `currency`;
the model's fields (in the order `Price`'s models check them); then the fields every price has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from tally.core import money
from tally.core.money import RoundingMode, Unit
from tally.core.periods import Interval
from tally.core.rating.models import (
    DEFAULT_INTERVAL,
    TIERS_MAX,
    BillingTiming,
    FlatFee,
    Graduated,
    Matrix,
    MatrixRate,
    ModelKind,
    Package,
    PackageRounding,
    Percentage,
    PerUnit,
    Price,
    PricingModel,
    QuantityTransform,
    Tier,
    TierBounds,
    TransformRounding,
    Volume,
    check_tiers,
    refuse_float,
)
from tally.core.rejections import Rejected

COMMON_KEYS = (
    "model",
    "currency",
    "meter",
    "billing_timing",
    "interval",
    "minimum_amount",
    "maximum_amount",
    "quantity_transform",
    "rounding",
)
MODEL_KEYS: dict[ModelKind, tuple[str, ...]] = {
    ModelKind.FLAT_FEE: ("amount",),
    ModelKind.PER_UNIT: ("unit_price",),
    ModelKind.PACKAGE: ("package_size", "package_price", "package_rounding", "free_units"),
    ModelKind.GRADUATED: ("tiers", "tier_bounds", "flat_fee_at_zero_usage"),
    ModelKind.VOLUME: ("tiers", "tier_bounds", "flat_fee_at_zero_usage"),
    ModelKind.PERCENTAGE: (
        "rate_percent",
        "fixed_fee_per_event",
        "per_event_minimum",
        "per_event_maximum",
        "free_events",
        "free_amount",
    ),
    ModelKind.MATRIX: ("dimensions", "rates", "default_unit_price"),
}
TIER_KEYS = ("from", "up_to", "unit_price", "flat_fee")
RATE_KEYS = ("values", "unit_price")
INTERVAL_KEYS = ("unit", "count")
TRANSFORM_KEYS = ("divide_by", "rounding")

# A number written as text: a sign, digits with an optional point, an optional exponent. NaN and
# Infinity are read too, so that they are refused by the field's own rule (`price_must_be_finite`).
_NUMBER_TEXT = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$")
_NON_FINITE_TEXT = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
NUMBER_TEXT_LENGTH_MAX = 100


def price_from_document(document: object, units: Mapping[str, Unit] | None = None) -> Price:
    """A `Price` from its document, or `Rejected` with the first problem's code and field.

    `currency` is an ISO 4217 code or a custom unit's code; custom units are looked up in `units`
    (the tenant's, resolved by the caller — the core does no I/O).
    """
    if not isinstance(document, Mapping):
        raise Rejected.because("price_document_must_be_object", "a price is a JSON object")
    model_name = document.get("model")
    if model_name is None:
        raise Rejected.because("price_field_required", "a price names its model", "model")
    try:
        kind = ModelKind(model_name) if isinstance(model_name, str) else None
    except ValueError:
        kind = None
    if kind is None:
        raise Rejected.because("pricing_model_unknown", f"model is one of {', '.join(ModelKind)}", "model")
    _refuse_unknown(document, (*COMMON_KEYS, *MODEL_KEYS[kind]), "")
    unit = _unit(_required(document, "currency"), units or {})
    model = _model(kind, document)
    return Price(
        unit=unit,
        model=model,
        meter=_optional_text(document.get("meter"), "meter"),
        billing_timing=_choice(
            document.get("billing_timing"), BillingTiming, "billing_timing_unknown", "billing_timing"
        ),
        interval=_interval(document["interval"]) if "interval" in document else DEFAULT_INTERVAL,
        minimum_amount=_optional_number(document.get("minimum_amount"), "minimum_amount"),
        maximum_amount=_optional_number(document.get("maximum_amount"), "maximum_amount"),
        quantity_transform=_transform(document.get("quantity_transform")),
        rounding=_choice(document.get("rounding"), RoundingMode, "rounding_mode_unknown", "rounding")
        or RoundingMode.HALF_UP,
    )


def _model(kind: ModelKind, document: Mapping[str, Any]) -> PricingModel:
    match kind:
        case ModelKind.FLAT_FEE:
            return FlatFee(_number(_required(document, "amount"), "amount"))
        case ModelKind.PER_UNIT:
            return PerUnit(_number(_required(document, "unit_price"), "unit_price"))
        case ModelKind.PACKAGE:
            return Package(
                package_size=_number(_required(document, "package_size"), "package_size"),
                package_price=_number(_required(document, "package_price"), "package_price"),
                rounding=_choice(
                    document.get("package_rounding"), PackageRounding, "package_rounding_unknown", "package_rounding"
                )
                or PackageRounding.UP,
                free_units=_number(document.get("free_units", 0), "free_units"),
            )
        case ModelKind.GRADUATED | ModelKind.VOLUME:
            tiers, starts = _tiers(document.get("tiers"))
            bounds = _choice(document.get("tier_bounds"), TierBounds, "tier_bounds_unknown", "tier_bounds")
            at_zero = _boolean(document.get("flat_fee_at_zero_usage", False), "flat_fee_at_zero_usage")
            checked = check_tiers(tiers, starts)  # the table's rules, naming gaps and overlaps by `from`
            model_type = Graduated if kind is ModelKind.GRADUATED else Volume
            return model_type(checked, bounds or TierBounds.INCLUSIVE, at_zero)
        case ModelKind.PERCENTAGE:
            free_events = document.get("free_events", 0)
            refuse_float(free_events)
            if isinstance(free_events, str) and free_events.isdigit():
                free_events = int(free_events)
            return Percentage(
                rate_percent=_number(_required(document, "rate_percent"), "rate_percent"),
                fixed_fee_per_event=_number(document.get("fixed_fee_per_event", 0), "fixed_fee_per_event"),
                per_event_minimum=_optional_number(document.get("per_event_minimum"), "per_event_minimum"),
                per_event_maximum=_optional_number(document.get("per_event_maximum"), "per_event_maximum"),
                free_events=free_events,
                free_amount=_number(document.get("free_amount", 0), "free_amount"),
            )
        case ModelKind.MATRIX:
            dimensions = document.get("dimensions")
            if not isinstance(dimensions, list | tuple):
                raise Rejected.because("matrix_dimensions_required", "dimensions is a list of names", "dimensions")
            rates = document.get("rates", [])
            if not isinstance(rates, list | tuple):
                raise Rejected.because("value_must_be_list", "rates is a list", "rates")
            return Matrix(
                dimensions=tuple(dimensions),
                rates=tuple(_rate(item, index) for index, item in enumerate(rates)),
                default_unit_price=_optional_number(document.get("default_unit_price"), "default_unit_price"),
            )


def _tiers(raw: object) -> tuple[list[Tier], tuple[Decimal | None, ...]]:
    if raw is None:
        raise Rejected.because("tiers_required", "a tiered price has at least one tier", "tiers")
    if not isinstance(raw, list | tuple):
        raise Rejected.because("value_must_be_list", "tiers is a list", "tiers")
    if not raw:
        raise Rejected.because("tiers_required", "a tiered price has at least one tier", "tiers")
    if len(raw) > TIERS_MAX:
        raise Rejected.because("tiers_exceed_limit", f"a price has at most {TIERS_MAX} tiers", "tiers")
    tiers: list[Tier] = []
    starts: list[Decimal | None] = []
    for index, item in enumerate(raw):
        field = f"tiers[{index}]"
        if not isinstance(item, Mapping):
            raise Rejected.because("value_must_be_object", "each tier is an object", field)
        _refuse_unknown(item, TIER_KEYS, f"{field}.")
        starts.append(_optional_number(item.get("from"), f"{field}.from"))
        tiers.append(
            Tier(
                up_to=_optional_number(item.get("up_to"), f"{field}.up_to"),
                unit_price=_number(item.get("unit_price", 0), f"{field}.unit_price"),
                flat_fee=_number(item.get("flat_fee", 0), f"{field}.flat_fee"),
            )
        )
    return tiers, tuple(starts)


def _rate(item: object, index: int) -> MatrixRate:
    field = f"rates[{index}]"
    if not isinstance(item, Mapping):
        raise Rejected.because("value_must_be_object", "each rate is an object", field)
    _refuse_unknown(item, RATE_KEYS, f"{field}.")
    values = item.get("values")
    if not isinstance(values, list | tuple):
        raise Rejected.because("value_must_be_list", "values is a list, one per dimension", f"{field}.values")
    return MatrixRate(
        values=tuple(values), unit_price=_number(_required(item, "unit_price", field), f"{field}.unit_price")
    )


def _unit(code: object, units: Mapping[str, Unit]) -> Unit:
    if not isinstance(code, str):
        raise Rejected.because("value_must_be_string", "currency is a currency or unit code", "currency")
    if code in money.ISO_4217_MINOR_UNITS:
        return money.currency(code)
    unit = units.get(code)
    if unit is not None:
        return unit
    if money.CUSTOM_UNIT_CODE.match(code):
        raise Rejected.because(
            "unit_must_be_known", f"{code!r} is neither an ISO 4217 currency nor a unit of this tenant", "currency"
        )
    raise Rejected.because("currency_must_be_known", f"{code!r} is not an ISO 4217 currency code", "currency")


def _interval(raw: object) -> Interval | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise Rejected.because("value_must_be_object", 'interval is {"unit": "month", "count": 1}, or null', "interval")
    _refuse_unknown(raw, INTERVAL_KEYS, "interval.")
    unit = raw.get("unit")
    count = raw.get("count", 1)
    refuse_float(count)
    if not isinstance(unit, str):
        raise Rejected.because(
            "interval_unit_unknown", "interval.unit is day, week, month, quarter or year", "interval"
        )
    if isinstance(count, bool) or not isinstance(count, int):
        raise Rejected.because("interval_count_out_of_range", "interval.count is a whole number", "interval_count")
    return Interval.parse(unit, count)


def _transform(raw: object) -> QuantityTransform | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise Rejected.because("value_must_be_object", "quantity_transform is an object", "quantity_transform")
    _refuse_unknown(raw, TRANSFORM_KEYS, "quantity_transform.")
    rounding = raw.get("rounding", TransformRounding.NONE.value)
    return QuantityTransform(
        divide_by=_number(_required(raw, "divide_by", "quantity_transform"), "quantity_transform.divide_by"),
        rounding=rounding,
    )


# ----- field readers -----------------------------------------------------------------------------


def _refuse_unknown(document: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in document:
        if key not in allowed:
            raise Rejected.because("price_field_unknown", f"unknown field {key!r}", f"{prefix}{key}")


def _required(document: Mapping[str, Any], key: str, prefix: str = "") -> Any:
    if document.get(key) is None:
        raise Rejected.because("price_field_required", f"{key} is required", f"{prefix}.{key}" if prefix else key)
    return document[key]


def _number(value: object, field: str) -> Decimal:
    """A JSON number (int or Decimal) or a number written as text. A float is a bug (TypeError)."""
    refuse_float(value)
    if isinstance(value, bool):
        raise Rejected.because("value_must_be_number", "give a number, not a boolean", field)
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str) and len(value) <= NUMBER_TEXT_LENGTH_MAX:
        text = value.strip()
        if _NUMBER_TEXT.match(text) or text.lower() in _NON_FINITE_TEXT:
            return Decimal(text)
    raise Rejected.because("value_must_be_number", 'give a number (a JSON number or a string like "0.25")', field)


def _optional_number(value: object, field: str) -> Decimal | None:
    return None if value is None else _number(value, field)


def _optional_text(value: object, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise Rejected.because("value_must_be_string", f"{field} is a string", field)


def _boolean(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise Rejected.because("value_must_be_boolean", "give true or false", field)
    return value


E = TypeVar("E", bound=StrEnum)


def _choice(value: object, choices: type[E], code: str, field: str) -> E | None:
    if value is None:
        return None
    try:
        return choices(str(value))
    except ValueError:
        names = ", ".join(item.value for item in choices)
        raise Rejected.because(code, f"{field} is one of {names}", field) from None
