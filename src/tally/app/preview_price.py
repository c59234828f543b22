"""Preview a price: rate some usage against a price spec, without storing anything.

gather: the price's unit — an ISO 4217 currency needs nothing, a custom unit is the tenant's own
        (another tenant's unit of the same code is not found: `unit_must_be_known`);
decide: `price_from_document`, then `rate`.

The HTTP API (`POST /v1/prices/preview`) and the CLI (`tally price preview`) come through here.
Preview by price id (`stored_price_for_preview`): the tenant's stored price — or, with a customer,
the price that customer pays at an instant (`effective_price`: their override, if one applies) —
rated exactly as an inline one (`rate_price`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import catalog as catalog_store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._catalog_write import stored_price
from tally.app.customer_clock import clock_for_customer
from tally.app.effective_price import EffectivePrice, effective_price_in
from tally.app.ledger_accounts import resolve_unit
from tally.core import money
from tally.core.rating import (
    EventSummary,
    EventValues,
    GroupedQuantities,
    Price,
    Quantity,
    Rating,
    Usage,
    price_from_document,
    rate,
)
from tally.core.rating.rate import EXACT
from tally.core.rating.usage import Group
from tally.core.rejections import Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class PricePreview:
    """An inline price document (the format of `Price.document()`) and the usage to rate."""

    price: Mapping[str, Any]
    usage: Usage
    apply_minimum: bool = True


@dataclass(frozen=True, slots=True)
class PreviewResult:
    price: Price
    rating: Rating


def preview_price(engine: Engine | None, tenant_id: uuid.UUID | None, preview: PricePreview) -> PreviewResult:
    """The price as understood and its rating of `preview.usage`. Without an engine (the CLI with no
    database), only ISO 4217 currencies can be used."""
    units = _custom_units(engine, tenant_id, preview.price)
    price = price_from_document(preview.price, units)
    return PreviewResult(price, rate(price, preview.usage, apply_minimum=preview.apply_minimum))


def stored_price_for_preview(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    price_id: uuid.UUID,
    *,
    customer_id: uuid.UUID | None = None,
    at: datetime | None = None,
) -> EffectivePrice:
    """A stored price by id; with a customer, what they pay at `at` (default: their clock now)."""

    def work(connection: psycopg.Connection[Any]) -> EffectivePrice:
        if customer_id is None:
            row = catalog_store.get_price(connection, tenant_id, price_id)
            if row is None:
                raise Rejected.because("price_not_found", "no such price", "price_id")
            return EffectivePrice(stored_price(row, catalog_store.custom_units(connection, tenant_id)), row.id, None)
        when = at or clock_for_customer(connection, tenant_id, customer_id, system=clock).now()
        return effective_price_in(connection, tenant_id, customer_id, price_id, when)

    return run_in_transaction(engine, work)


def rate_price(price: Price, usage: Usage, *, apply_minimum: bool = True) -> PreviewResult:
    return PreviewResult(price, rate(price, usage, apply_minimum=apply_minimum))


def _custom_units(engine: Engine | None, tenant_id: uuid.UUID | None, document: object) -> dict[str, money.Unit]:
    code = document.get("currency") if isinstance(document, Mapping) else None
    if engine is None or tenant_id is None or not isinstance(code, str) or code in money.ISO_4217_MINOR_UNITS:
        return {}
    if not money.CUSTOM_UNIT_CODE.match(code):
        return {}  # not a unit code at all: the core names the problem
    try:
        return {code: run_in_transaction(engine, lambda connection: resolve_unit(connection, tenant_id, code))}
    except Rejected:
        return {}  # not this tenant's unit: the core refuses it, naming the `currency` field


def matrix_dimensions(document: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The dimensions of a matrix price document (None for other models, or when malformed: the
    price's own check names that problem)."""
    dimensions = document.get("dimensions") if document.get("model") == "matrix" else None
    if isinstance(dimensions, list | tuple) and all(isinstance(name, str) for name in dimensions):
        return tuple(dimensions)
    return None


def preview_usage(
    dimensions: tuple[str, ...] | None,
    *,
    quantity: Decimal | None = None,
    events: Sequence[tuple[Decimal, Mapping[str, str | None] | None]] | None = None,
    summary: tuple[int, Decimal] | None = None,
    groups: Sequence[tuple[Mapping[str, str | None], Decimal]] | None = None,
) -> Usage:
    """The usage a preview names, in exactly one of its forms (none at all: zero usage).

    Events of a matrix price are summed per group (the group's values in the price's dimension
    order; a dimension an event does not name is null)."""
    forms = (("quantity", quantity), ("events", events), ("summary", summary), ("groups", groups))
    given = [name for name, value in forms if value is not None]
    if len(given) > 1:
        raise Rejected.because(
            "usage_must_be_given_once",
            f"give one of quantity, events, summary or groups, not {' and '.join(given)}",
            given[1],
        )
    if events is not None:
        if dimensions is None:
            return EventValues(tuple(value for value, _ in events))
        totals: dict[Group, Decimal] = {}
        for index, (value, group) in enumerate(events):
            key = _group(dimensions, group or {}, f"events[{index}].group")
            totals[key] = EXACT.add(totals.get(key, Decimal(0)), Quantity(value).value)
        return GroupedQuantities(tuple(totals.items()))
    if summary is not None:
        return EventSummary(summary[0], summary[1])
    if groups is not None:
        if dimensions is None:
            raise Rejected.because("groups_need_a_matrix_price", "groups are the usage of a matrix price", "groups")
        return GroupedQuantities(
            tuple(
                (_group(dimensions, group, f"groups[{index}].group"), value)
                for index, (group, value) in enumerate(groups)
            )
        )
    return Quantity(quantity if quantity is not None else Decimal(0))


def _group(dimensions: tuple[str, ...], group: Mapping[str, str | None], field: str) -> Group:
    for name in group:
        if name not in dimensions:
            raise Rejected.because(
                "group_dimension_unknown", f"{name!r} is not a dimension of this price ({', '.join(dimensions)})", field
            )
    return tuple(group.get(name) for name in dimensions)


def rating_document(result: PreviewResult) -> dict[str, Any]:
    """The preview as JSON-safe data: the price as understood (defaults spelled out) and its rating,
    with matrix groups named by dimension."""
    document = result.rating.document()
    model = result.price.model
    dimensions: tuple[str, ...] | None = getattr(model, "dimensions", None)
    for line in document["breakdown"]:
        if "group" in line and dimensions is not None:
            line["group"] = dict(zip(dimensions, line["group"], strict=True))
    return {"price": result.price.document(), **document}
