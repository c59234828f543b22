"""Subscriptions in PostgreSQL (migrations 0008 and 0009): the `subscriptions` rows, their append-only
`subscription_timeline`, and the catalog reads subscriptions need (prices, plan versions, overrides
from migration 0007's tables). Facts are encoded here as JSON and decoded back into the core's
timeline entries; the rules live in tally.core.subscriptions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import jsonb
from tally.adapters.postgres.pagination import keyset_rows
from tally.core import money
from tally.core.frozen import quick_init
from tally.core.periods import Interval
from tally.core.rating.models import BillingTiming
from tally.core.rejections import InvariantViolation
from tally.core.subscriptions import (
    BillingAnchor,
    Canceled,
    CancelScheduled,
    CancelUnscheduled,
    ItemKind,
    ItemsChanged,
    Paused,
    ProrationBasis,
    QuantityChanged,
    Resumed,
    Started,
    SubscriptionItem,
    TimelineEntry,
    TrialUsage,
    Withdrawn,
)
from tally.core.subscriptions.cycles import AnchorKind

Connection = psycopg.Connection[Any]


@quick_init
@dataclass(frozen=True, slots=True)
class ItemOrigin:
    """Where an item came from in the catalog: the price, the override that set its amount, its code."""

    price_id: uuid.UUID
    override_id: uuid.UUID | None
    price_code: str


@dataclass(frozen=True, slots=True)
class RecordedEntry:
    """One stored fact: the core's entry plus what the app knows about it."""

    sequence: int
    entry: TimelineEntry
    recorded_at: datetime
    # The plan version whose prices a start or an items change put on (None: explicit prices).
    plan_version_id: uuid.UUID | None
    # Item id → catalog origin, for the items of a start or an items change.
    origins: Mapping[str, ItemOrigin]

    @property
    def kind(self) -> str:
        return _KIND[type(self.entry)]


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    plan_version_id: uuid.UUID | None
    metadata: dict[str, str]
    created_at: datetime
    status: str
    status_as_of: datetime
    started_at: datetime
    ended_at: datetime | None
    next_due_at: datetime | None
    entries: int
    updated_at: datetime


SUBSCRIPTION_COLUMNS = (
    "id, tenant_id, customer_id, plan_version_id, metadata, created_at, status, status_as_of, started_at, "
    "ended_at, next_due_at, entries, updated_at"
)

_KIND: dict[type, str] = {
    Started: "started",
    ItemsChanged: "items_changed",
    QuantityChanged: "quantity_changed",
    Paused: "paused",
    Resumed: "resumed",
    CancelScheduled: "cancel_scheduled",
    CancelUnscheduled: "cancel_unscheduled",
    Canceled: "canceled",
    Withdrawn: "withdrawn",
}


# ----- the codec: entries as JSON -------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _encode_item(item: SubscriptionItem, origin: ItemOrigin) -> dict[str, Any]:
    return {
        "id": item.price_id,
        "kind": item.kind.value,
        "interval": {"unit": item.interval.unit.value, "count": item.interval.count},
        "currency": item.currency.code,
        "scale": item.currency.scale,
        "custom_unit": item.currency.is_custom,
        "unit_amount": None if item.unit_amount is None else str(item.unit_amount),
        "quantity": item.quantity,
        "billing_timing": None if item.billing_timing is None else item.billing_timing.value,
        "price_id": str(origin.price_id),
        "override_id": None if origin.override_id is None else str(origin.override_id),
        "price_code": origin.price_code,
    }


def _decode_item(document: Mapping[str, Any]) -> tuple[SubscriptionItem, ItemOrigin]:
    unit = money.Unit(code=document["currency"], scale=document["scale"], is_custom=document["custom_unit"])
    amount = document["unit_amount"]
    item = SubscriptionItem(
        price_id=document["id"],
        kind=ItemKind(document["kind"]),
        interval=Interval.parse(document["interval"]["unit"], document["interval"]["count"]),
        currency=unit,
        unit_amount=None if amount is None else Decimal(amount),
        quantity=document["quantity"],
        # Items recorded before fixed fees could be billed in arrears have no timing: the default.
        billing_timing=None if document.get("billing_timing") is None else BillingTiming(document["billing_timing"]),
    )
    override = document["override_id"]
    origin = ItemOrigin(
        price_id=uuid.UUID(document["price_id"]),
        override_id=None if override is None else uuid.UUID(override),
        price_code=document["price_code"],
    )
    return item, origin


def encode_entry(recorded: RecordedEntry) -> dict[str, Any]:
    """The JSON payload of one fact (its kind and times are columns of their own too)."""
    entry = recorded.entry
    payload: dict[str, Any] = {"effective_at": entry.effective_at.isoformat()}
    match entry:
        case Started() | ItemsChanged():
            missing = [item.price_id for item in entry.items if item.price_id not in recorded.origins]
            if missing:
                raise InvariantViolation(f"items without a catalog origin: {missing}")
            payload["items"] = [_encode_item(item, recorded.origins[item.price_id]) for item in entry.items]
            payload["plan_version_id"] = None if recorded.plan_version_id is None else str(recorded.plan_version_id)
            if isinstance(entry, Started):
                payload |= {
                    "timezone": entry.timezone,
                    "anchor": {"kind": entry.anchor.kind.value, "day_of_month": entry.anchor.day_of_month},
                    "trial_end": _time(entry.trial_end),
                    "trial_usage": entry.trial_usage.value,
                    "proration_basis": entry.proration_basis.value,
                }
            else:
                payload["prorate"] = entry.prorate
        case QuantityChanged():
            payload |= {"price_id": entry.price_id, "quantity": entry.quantity, "prorate": entry.prorate}
        case CancelScheduled():
            payload |= {"ends_at": entry.ends_at.isoformat(), "prorate": entry.prorate}
        case Canceled():
            payload["prorate"] = entry.prorate
        case Withdrawn():
            payload["withdraws"] = entry.withdraws
        case Paused() | Resumed() | CancelUnscheduled():
            pass
    return payload


# Items decoded so far, by their document's JSON: subscriptions of one plan hold the same items, so
# a chunk of timelines decodes each once (the values are frozen, so they are shared safely).
ItemMemo = dict[bytes, tuple[SubscriptionItem, ItemOrigin]]


def _decode_item_once(document: Mapping[str, Any], memo: ItemMemo) -> tuple[SubscriptionItem, ItemOrigin]:
    key = jsonb.encoded(document)
    found = memo.get(key)
    if found is None:
        found = memo[key] = _decode_item(document)
    return found


def decode_entry(
    sequence: int, kind: str, recorded_at: datetime, payload: Mapping[str, Any], memo: ItemMemo | None = None
) -> RecordedEntry:
    """One recorded fact from its row; `memo`, if given, holds the items decoded before."""
    effective_at = datetime.fromisoformat(payload["effective_at"])
    origins: dict[str, ItemOrigin] = {}
    plan_version_id: uuid.UUID | None = None
    entry: TimelineEntry
    if kind in {"started", "items_changed"}:
        documents = payload["items"]
        if memo is None:
            decoded = [_decode_item(document) for document in documents]
        else:
            decoded = [_decode_item_once(document, memo) for document in documents]
        items = tuple(item for item, _ in decoded)
        origins = {item.price_id: origin for item, origin in decoded}
        if payload["plan_version_id"] is not None:
            plan_version_id = uuid.UUID(payload["plan_version_id"])
        if kind == "started":
            anchor = payload["anchor"]
            entry = Started(
                effective_at=effective_at,
                items=items,
                timezone=payload["timezone"],
                anchor=BillingAnchor(AnchorKind(anchor["kind"]), anchor["day_of_month"]),
                trial_end=_parse_time(payload["trial_end"]),
                trial_usage=TrialUsage(payload["trial_usage"]),
                proration_basis=ProrationBasis(payload["proration_basis"]),
            )
        else:
            entry = ItemsChanged(effective_at=effective_at, items=items, prorate=payload["prorate"])
    elif kind == "quantity_changed":
        entry = QuantityChanged(
            effective_at=effective_at,
            price_id=payload["price_id"],
            quantity=payload["quantity"],
            prorate=payload["prorate"],
        )
    elif kind == "paused":
        entry = Paused(effective_at=effective_at)
    elif kind == "resumed":
        entry = Resumed(effective_at=effective_at)
    elif kind == "cancel_scheduled":
        entry = CancelScheduled(
            effective_at=effective_at, ends_at=datetime.fromisoformat(payload["ends_at"]), prorate=payload["prorate"]
        )
    elif kind == "cancel_unscheduled":
        entry = CancelUnscheduled(effective_at=effective_at)
    elif kind == "canceled":
        entry = Canceled(effective_at=effective_at, prorate=payload["prorate"])
    elif kind == "withdrawn":
        entry = Withdrawn(effective_at=effective_at, withdraws=payload["withdraws"])
    else:  # pragma: no cover - a CHECK constraint keeps kinds to this list
        raise InvariantViolation(f"unknown timeline entry kind {kind!r}")
    return RecordedEntry(sequence, entry, recorded_at, plan_version_id, origins)


# ----- subscriptions and their timelines ------------------------------------------------------------


def insert_subscription(
    connection: Connection,
    *,
    subscription_id: uuid.UUID,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    plan_version_id: uuid.UUID | None,
    metadata: Mapping[str, str],
    status: str,
    status_as_of: datetime,
    started_at: datetime,
    ended_at: datetime | None,
    next_due_at: datetime | None,
    now: datetime,
) -> None:
    connection.execute(
        """INSERT INTO subscriptions (id, tenant_id, customer_id, plan_version_id, metadata, created_at, status,
                                      status_as_of, started_at, ended_at, next_due_at, entries, updated_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s)""",
        (
            subscription_id,
            tenant_id,
            customer_id,
            plan_version_id,
            json.dumps(dict(metadata)),
            now,
            status,
            status_as_of,
            started_at,
            ended_at,
            next_due_at,
            now,
        ),
    )


def append_entry(
    connection: Connection, tenant_id: uuid.UUID, subscription_id: uuid.UUID, recorded: RecordedEntry
) -> None:
    """Append one fact. The caller holds the subscription's lock; `recorded.sequence` is the next one."""
    connection.execute(
        """INSERT INTO subscription_timeline
               (tenant_id, subscription_id, sequence, kind, effective_at, recorded_at, payload)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (
            tenant_id,
            subscription_id,
            recorded.sequence,
            recorded.kind,
            recorded.entry.effective_at,
            recorded.recorded_at,
            json.dumps(encode_entry(recorded)),
        ),
    )


def refresh_cache(
    connection: Connection,
    subscription_id: uuid.UUID,
    *,
    status: str,
    status_as_of: datetime,
    ended_at: datetime | None,
    next_due_at: datetime | None,
    entries: int,
    now: datetime,
) -> None:
    connection.execute(
        """UPDATE subscriptions SET status = %s, status_as_of = %s, ended_at = %s, next_due_at = %s,
                  entries = %s, updated_at = %s
           WHERE id = %s""",
        (status, status_as_of, ended_at, next_due_at, entries, now, subscription_id),
    )


def get_subscription(
    connection: Connection, tenant_id: uuid.UUID, subscription_id: uuid.UUID, *, for_update: bool = False
) -> SubscriptionRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = connection.execute(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant_id = %s AND id = %s{lock}",
        (tenant_id, subscription_id),
    ).fetchone()
    return SubscriptionRow(*row) if row else None


def timeline_of(connection: Connection, subscription_id: uuid.UUID) -> list[RecordedEntry]:
    rows = connection.execute(
        """SELECT sequence, kind, recorded_at, payload FROM subscription_timeline
           WHERE subscription_id = %s ORDER BY sequence""",
        (subscription_id,),
    ).fetchall()
    return [decode_entry(*row) for row in rows]


def list_subscriptions(
    connection: Connection,
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    customer_id: uuid.UUID | None = None,
    status: str | None = None,
) -> Page[SubscriptionRow]:
    """Newest first (ids are UUIDv7). `status` filters on the cached status."""
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if customer_id is not None:
        filters.append("customer_id = %(customer_id)s")
        parameters["customer_id"] = customer_id
    if status is not None:
        filters.append("status = %(status)s")
        parameters["status"] = status
    rows, has_more = keyset_rows(connection, "subscriptions", SUBSCRIPTION_COLUMNS, filters, parameters, page)
    return Page(items=[SubscriptionRow(*row) for row in rows], has_more=has_more, backwards=page.backwards)


def subscription_ids_of_customers(
    connection: Connection, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    rows = connection.execute(
        "SELECT id FROM subscriptions WHERE tenant_id = %s AND customer_id = ANY(%s) ORDER BY id",
        (tenant_id, list(customer_ids)),
    ).fetchall()
    return [row[0] for row in rows]


def subscription_ids_on_plan_version(
    connection: Connection, tenant_id: uuid.UUID, plan_version_id: uuid.UUID
) -> list[uuid.UUID]:
    """Subscriptions whose timeline ever put this plan version's prices on (candidates for a migration)."""
    rows = connection.execute(
        """SELECT DISTINCT subscription_id FROM subscription_timeline
           WHERE tenant_id = %s AND kind IN ('started', 'items_changed') AND payload->>'plan_version_id' = %s
           ORDER BY subscription_id""",
        (tenant_id, str(plan_version_id)),
    ).fetchall()
    return [row[0] for row in rows]


def lock_customer(connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> None:
    """Serialize the subscription writes of one customer (creates, and bulk work across its subscriptions)."""
    connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('tally.subscriptions.customer:' || %s::text, 0))",
        (customer_id,),
    )


# ----- catalog reads (tables of migration 0007) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogPriceRow:
    id: uuid.UUID
    code: str
    currency: str
    document: dict[str, Any]
    archived_at: datetime | None


@dataclass(frozen=True, slots=True)
class PlanVersionRow:
    id: uuid.UUID
    plan_code: str
    version: int
    status: str
    trial_days: int
    # (price id, default quantity) in the version's order.
    items: tuple[tuple[uuid.UUID, int | None], ...]


@dataclass(frozen=True, slots=True)
class OverrideRow:
    id: uuid.UUID
    document: dict[str, Any]


def catalog_prices(
    connection: Connection, tenant_id: uuid.UUID, price_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CatalogPriceRow]:
    rows = connection.execute(
        "SELECT id, code, currency, document, archived_at FROM prices WHERE tenant_id = %s AND id = ANY(%s)",
        (tenant_id, list(price_ids)),
    ).fetchall()
    return {row[0]: CatalogPriceRow(*row) for row in rows}


def _plan_version(connection: Connection, row: Sequence[Any] | None) -> PlanVersionRow | None:
    if row is None:
        return None
    items = connection.execute(
        "SELECT price_id, quantity FROM plan_version_prices WHERE plan_version_id = %s ORDER BY position",
        (row[0],),
    ).fetchall()
    return PlanVersionRow(row[0], row[1], row[2], row[3], row[4], tuple((item[0], item[1]) for item in items))


_PLAN_VERSION_SELECT = """SELECT v.id, p.code, v.version, v.status, v.trial_days
    FROM plan_versions v JOIN plans p ON p.id = v.plan_id"""


def plan_version(connection: Connection, tenant_id: uuid.UUID, plan_version_id: uuid.UUID) -> PlanVersionRow | None:
    row = connection.execute(
        f"{_PLAN_VERSION_SELECT} WHERE v.tenant_id = %s AND v.id = %s", (tenant_id, plan_version_id)
    ).fetchone()
    return _plan_version(connection, row)


def plan_version_by_code(
    connection: Connection, tenant_id: uuid.UUID, plan_code: str, version: int | None
) -> PlanVersionRow | None:
    """A plan's version by number, or its latest published version when `version` is None."""
    if version is not None:
        row = connection.execute(
            f"{_PLAN_VERSION_SELECT} WHERE p.tenant_id = %s AND p.code = %s AND v.version = %s",
            (tenant_id, plan_code, version),
        ).fetchone()
    else:
        row = connection.execute(
            f"""{_PLAN_VERSION_SELECT} WHERE p.tenant_id = %s AND p.code = %s AND v.status = 'published'
                ORDER BY v.version DESC LIMIT 1""",
            (tenant_id, plan_code),
        ).fetchone()
    return _plan_version(connection, row)


def override_at(
    connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, price_id: uuid.UUID, at: datetime
) -> OverrideRow | None:
    """The customer's override of this price whose window [from, until) holds `at` (windows never overlap)."""
    row = connection.execute(
        """SELECT id, document FROM price_overrides
           WHERE tenant_id = %s AND customer_id = %s AND price_id = %s
             AND effective_from <= %s AND (effective_until IS NULL OR effective_until > %s)
           ORDER BY effective_from DESC LIMIT 1""",
        (tenant_id, customer_id, price_id, at, at),
    ).fetchone()
    return OverrideRow(*row) if row else None


def custom_units(connection: Connection, tenant_id: uuid.UUID) -> dict[str, money.Unit]:
    rows = connection.execute("SELECT code, scale FROM units WHERE tenant_id = %s", (tenant_id,)).fetchall()
    return {code: money.Unit(code=code, scale=scale, is_custom=True) for code, scale in rows}


def count_subscriptions_of_customer(connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> int:
    row = connection.execute(
        "SELECT count(*) FROM subscriptions WHERE tenant_id = %s AND customer_id = %s", (tenant_id, customer_id)
    ).fetchone()
    return int(row[0]) if row else 0


def active_price_id(connection: Connection, tenant_id: uuid.UUID, code: str) -> uuid.UUID | None:
    row = connection.execute(
        "SELECT id FROM prices WHERE tenant_id = %s AND code = %s AND archived_at IS NULL", (tenant_id, code)
    ).fetchone()
    return row[0] if row else None
