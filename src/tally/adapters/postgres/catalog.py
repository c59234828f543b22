"""The catalog's PostgreSQL side (migration 0007): products, features, prices, plans, plan versions
and their prices, price overrides. Rows in, rows out; the rules live in tally.core.catalog."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import psycopg

from tally.adapters.pagination import Page, PageRequest
from tally.core import money
from tally.core.catalog.model import FeatureSpec, PlanSpec, ProductSpec
from tally.core.rejections import InvariantViolation

DRAFT = "draft"
PUBLISHED = "published"

Connection = psycopg.Connection[Any]
RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class ProductRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    code: str
    name: str
    description: str
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class FeatureRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    code: str
    name: str
    kind: str
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PriceRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    code: str
    product_id: uuid.UUID
    product_code: str
    currency: str
    meter_code: str | None
    document: dict[str, Any]
    metadata: dict[str, str]
    created_at: datetime
    archived_at: datetime | None


@dataclass(frozen=True, slots=True)
class PlanRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    code: str
    name: str
    description: str
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime
    latest_version: int  # 0: no version yet
    published_version: int | None  # the latest published
    draft_version: int | None


@dataclass(frozen=True, slots=True)
class PlanItemRow:
    price_id: uuid.UUID
    price_code: str
    quantity: int | None


@dataclass(frozen=True, slots=True)
class PlanVersionRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    plan_id: uuid.UUID
    plan_code: str
    version: int
    status: str
    trial_days: int
    entitlements: dict[str, bool | int]
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    items: tuple[PlanItemRow, ...]


@dataclass(frozen=True, slots=True)
class OverrideRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    price_id: uuid.UUID
    currency: str
    document: dict[str, Any]
    effective_from: datetime
    effective_until: datetime | None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value))


def _page(rows: list[Any], page: PageRequest) -> Page[Any]:
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if page.backwards:
        rows.reverse()
    return Page(items=rows, has_more=has_more, backwards=page.backwards)


def _keyset(column: str, page: PageRequest, filters: list[str], parameters: dict[str, Any]) -> str:
    """Filters and order for an oldest-first list by a UUIDv7 id column."""
    if page.starting_after is not None:
        filters.append(f"{column} > %(starting_after)s")
        parameters["starting_after"] = page.starting_after
    if page.ending_before is not None:
        filters.append(f"{column} < %(ending_before)s")
        parameters["ending_before"] = page.ending_before
    parameters["limit"] = page.limit + 1
    order = "DESC" if page.backwards else "ASC"
    return f"WHERE {' AND '.join(filters)} ORDER BY {column} {order} LIMIT %(limit)s"


@dataclass(frozen=True, slots=True)
class _CodedTable(Generic[RowT]):
    """Reads of a table whose rows a tenant names by code (products, features, plans), oldest first."""

    table: str
    # The SELECT … FROM of a row, its table aliased or not; `alias` is "p." or "".
    select: str
    alias: str
    row: Callable[..., RowT]

    def get(self, connection: Connection, tenant_id: uuid.UUID, code: str, *, for_update: bool) -> RowT | None:
        if for_update:
            # Locked on its own: the select may join or aggregate, which FOR UPDATE does not allow.
            connection.execute(
                f"SELECT 1 FROM {self.table} WHERE tenant_id = %s AND code = %s FOR UPDATE", (tenant_id, code)
            )
        row = connection.execute(
            f"{self.select} WHERE {self.alias}tenant_id = %s AND {self.alias}code = %s", (tenant_id, code)
        ).fetchone()
        return self.row(*row) if row else None

    def page(self, connection: Connection, tenant_id: uuid.UUID, page: PageRequest) -> Page[RowT]:
        parameters: dict[str, Any] = {"tenant_id": tenant_id}
        tail = _keyset(f"{self.alias}id", page, [f"{self.alias}tenant_id = %(tenant_id)s"], parameters)
        rows = connection.execute(f"{self.select} {tail}", parameters).fetchall()
        return _page([self.row(*row) for row in rows], page)

    def all(self, connection: Connection, tenant_id: uuid.UUID, *, for_share: bool = False) -> list[RowT]:
        lock = " FOR SHARE" if for_share else ""
        rows = connection.execute(
            f"{self.select} WHERE {self.alias}tenant_id = %s ORDER BY {self.alias}id{lock}", (tenant_id,)
        ).fetchall()
        return [self.row(*row) for row in rows]


# ----- units and meters the catalog refers to -------------------------------------------------------


def custom_units(connection: Connection, tenant_id: uuid.UUID) -> dict[str, money.Unit]:
    rows = connection.execute("SELECT code, scale FROM units WHERE tenant_id = %s", (tenant_id,)).fetchall()
    return {code: money.Unit(code=code, scale=scale, is_custom=True) for code, scale in rows}


def meter_exists(connection: Connection, tenant_id: uuid.UUID, code: str) -> bool:
    row = connection.execute("SELECT 1 FROM meters WHERE tenant_id = %s AND code = %s", (tenant_id, code)).fetchone()
    return row is not None


def lock_catalog(connection: Connection, tenant_id: uuid.UUID) -> None:
    """Serialize catalog writers of one tenant (apply reads the whole catalog, then writes)."""
    connection.execute("SELECT pg_advisory_xact_lock(hashtextextended('tally.catalog:' || %s::text, 0))", (tenant_id,))


# ----- products ---------------------------------------------------------------------------------------

PRODUCT_COLUMNS = "id, tenant_id, code, name, description, metadata, created_at, updated_at"
_PRODUCTS = _CodedTable("products", f"SELECT {PRODUCT_COLUMNS} FROM products", "", ProductRow)


def get_product(
    connection: Connection, tenant_id: uuid.UUID, code: str, *, for_update: bool = False
) -> ProductRow | None:
    return _PRODUCTS.get(connection, tenant_id, code, for_update=for_update)


def list_products(connection: Connection, tenant_id: uuid.UUID, page: PageRequest) -> Page[ProductRow]:
    return _PRODUCTS.page(connection, tenant_id, page)


def all_products(connection: Connection, tenant_id: uuid.UUID) -> list[ProductRow]:
    return _PRODUCTS.all(connection, tenant_id)


def count(connection: Connection, table: str, tenant_id: uuid.UUID) -> int:
    if table not in ("products", "features", "prices", "plans"):  # pragma: no cover - programming error
        raise ValueError(table)
    row = connection.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", (tenant_id,)).fetchone()
    if row is None:
        raise InvariantViolation("count(*) answers one row")
    return int(row[0])


# ----- features ---------------------------------------------------------------------------------------

FEATURE_COLUMNS = "id, tenant_id, code, name, kind, metadata, created_at, updated_at"
_FEATURES = _CodedTable("features", f"SELECT {FEATURE_COLUMNS} FROM features", "", FeatureRow)


def get_feature(
    connection: Connection, tenant_id: uuid.UUID, code: str, *, for_update: bool = False
) -> FeatureRow | None:
    return _FEATURES.get(connection, tenant_id, code, for_update=for_update)


def list_features(connection: Connection, tenant_id: uuid.UUID, page: PageRequest) -> Page[FeatureRow]:
    return _FEATURES.page(connection, tenant_id, page)


def all_features(connection: Connection, tenant_id: uuid.UUID, *, for_share: bool = False) -> list[FeatureRow]:
    """Every feature, oldest first. `for_share` holds them until the transaction ends: a plan version
    that grants a feature is written while no one can delete it."""
    return _FEATURES.all(connection, tenant_id, for_share=for_share)


# ----- prices -----------------------------------------------------------------------------------------

_PRICE_SELECT = """
SELECT p.id, p.tenant_id, p.code, p.product_id, r.code, p.currency, p.meter_code, p.document, p.metadata,
       p.created_at, p.archived_at
FROM prices p JOIN products r ON r.id = p.product_id"""


def insert_price(
    connection: Connection,
    *,
    price_id: uuid.UUID,
    tenant_id: uuid.UUID,
    code: str,
    product_id: uuid.UUID,
    currency: str,
    meter_code: str | None,
    document: Mapping[str, Any],
    metadata: Mapping[str, str],
    now: datetime,
) -> bool:
    """False when the tenant already has an active price with this code."""
    row = connection.execute(
        """INSERT INTO prices (id, tenant_id, code, product_id, currency, meter_code, document, metadata, created_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (tenant_id, code) WHERE archived_at IS NULL DO NOTHING RETURNING id""",
        (price_id, tenant_id, code, product_id, currency, meter_code, _json(document), _json(metadata), now),
    ).fetchone()
    return row is not None


def get_price(
    connection: Connection, tenant_id: uuid.UUID, price_id: uuid.UUID, *, for_update: bool = False
) -> PriceRow | None:
    lock = " FOR UPDATE OF p" if for_update else ""
    row = connection.execute(
        f"{_PRICE_SELECT} WHERE p.tenant_id = %s AND p.id = %s{lock}", (tenant_id, price_id)
    ).fetchone()
    return PriceRow(*row) if row else None


def get_active_price(connection: Connection, tenant_id: uuid.UUID, code: str) -> PriceRow | None:
    row = connection.execute(
        f"{_PRICE_SELECT} WHERE p.tenant_id = %s AND p.code = %s AND p.archived_at IS NULL", (tenant_id, code)
    ).fetchone()
    return PriceRow(*row) if row else None


def get_prices(
    connection: Connection, tenant_id: uuid.UUID, price_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PriceRow]:
    rows = connection.execute(
        f"{_PRICE_SELECT} WHERE p.tenant_id = %s AND p.id = ANY(%s)", (tenant_id, list(price_ids))
    ).fetchall()
    return {row[0]: PriceRow(*row) for row in rows}


def active_prices(connection: Connection, tenant_id: uuid.UUID) -> list[PriceRow]:
    rows = connection.execute(
        f"{_PRICE_SELECT} WHERE p.tenant_id = %s AND p.archived_at IS NULL ORDER BY p.id", (tenant_id,)
    ).fetchall()
    return [PriceRow(*row) for row in rows]


def list_prices(
    connection: Connection,
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    product_id: uuid.UUID | None = None,
    code: str | None = None,
    include_archived: bool = False,
) -> Page[PriceRow]:
    filters = ["p.tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if product_id is not None:
        filters.append("p.product_id = %(product_id)s")
        parameters["product_id"] = product_id
    if code is not None:
        filters.append("p.code = %(code)s")
        parameters["code"] = code
    if not include_archived:
        filters.append("p.archived_at IS NULL")
    tail = _keyset("p.id", page, filters, parameters)
    rows = connection.execute(f"{_PRICE_SELECT} {tail}", parameters).fetchall()
    return _page([PriceRow(*row) for row in rows], page)


def archive_price(connection: Connection, price_id: uuid.UUID, now: datetime) -> None:
    connection.execute("UPDATE prices SET archived_at = %s WHERE id = %s AND archived_at IS NULL", (now, price_id))


def update_price_metadata(connection: Connection, price_id: uuid.UUID, metadata: Mapping[str, str]) -> None:
    connection.execute("UPDATE prices SET metadata = %s WHERE id = %s", (_json(metadata), price_id))


# ----- plans and versions -----------------------------------------------------------------------------

_PLAN_SELECT = """
SELECT p.id, p.tenant_id, p.code, p.name, p.description, p.metadata, p.created_at, p.updated_at,
       coalesce((SELECT max(v.version) FROM plan_versions v WHERE v.plan_id = p.id), 0),
       (SELECT max(v.version) FROM plan_versions v WHERE v.plan_id = p.id AND v.status = 'published'),
       (SELECT v.version FROM plan_versions v WHERE v.plan_id = p.id AND v.status = 'draft')
FROM plans p"""


_PLANS = _CodedTable("plans", _PLAN_SELECT, "p.", PlanRow)


def get_plan(connection: Connection, tenant_id: uuid.UUID, code: str, *, for_update: bool = False) -> PlanRow | None:
    return _PLANS.get(connection, tenant_id, code, for_update=for_update)


def list_plans(connection: Connection, tenant_id: uuid.UUID, page: PageRequest) -> Page[PlanRow]:
    return _PLANS.page(connection, tenant_id, page)


def all_plans(connection: Connection, tenant_id: uuid.UUID) -> list[PlanRow]:
    return _PLANS.all(connection, tenant_id)


# ----- products, features and plans: created, then relabeled by code --------------------------------

LabeledSpec = ProductSpec | FeatureSpec | PlanSpec


def _labeled(spec: LabeledSpec) -> tuple[str, dict[str, Any]]:
    """The table of a product, feature or plan, and its label columns: what people read and may
    change in place (a feature has no description; its kind is set once, at creation)."""
    labels: dict[str, Any] = {"name": spec.name, "metadata": _json(spec.metadata)}
    match spec:
        case ProductSpec(description=description):
            return "products", {**labels, "description": description}
        case PlanSpec(description=description):
            return "plans", {**labels, "description": description}
        case FeatureSpec():
            return "features", labels


def insert_labeled(
    connection: Connection, spec: LabeledSpec, *, row_id: uuid.UUID, tenant_id: uuid.UUID, now: datetime
) -> bool:
    """A new product, feature or plan; False when the tenant already has one with its code."""
    table, labels = _labeled(spec)
    columns = {"id": row_id, "tenant_id": tenant_id, "code": spec.code, **labels, "created_at": now, "updated_at": now}
    if isinstance(spec, FeatureSpec):
        columns["kind"] = spec.kind.value
    row = connection.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        " ON CONFLICT (tenant_id, code) DO NOTHING RETURNING id",
        tuple(columns.values()),
    ).fetchone()
    return row is not None


def relabel(connection: Connection, tenant_id: uuid.UUID, spec: LabeledSpec, now: datetime) -> None:
    """Give the tenant's product, feature or plan with the spec's code the spec's labels."""
    table, labels = _labeled(spec)
    assignments = ", ".join(f"{name} = %s" for name in labels)
    updated = connection.execute(
        f"UPDATE {table} SET {assignments}, updated_at = %s WHERE tenant_id = %s AND code = %s RETURNING id",
        (*labels.values(), now, tenant_id, spec.code),
    ).fetchone()
    if updated is None:  # pragma: no cover - callers relabel what they found under lock
        raise LookupError(f"no {table} row {spec.code!r} to relabel")


# ----- deleting what nothing references ---------------------------------------------------------------


def prices_of_product(connection: Connection, product_id: uuid.UUID) -> int:
    """How many prices (active or archived) belong to the product."""
    row = connection.execute("SELECT count(*) FROM prices WHERE product_id = %s", (product_id,)).fetchone()
    if row is None:
        raise InvariantViolation("count(*) answers one row")
    return int(row[0])


def versions_granting(connection: Connection, tenant_id: uuid.UUID, feature_code: str) -> int:
    """How many plan versions (drafts included) grant the feature in their entitlements."""
    row = connection.execute(
        "SELECT count(*) FROM plan_versions WHERE tenant_id = %s AND entitlements ? %s", (tenant_id, feature_code)
    ).fetchone()
    if row is None:
        raise InvariantViolation("count(*) answers one row")
    return int(row[0])


def delete_product(connection: Connection, product_id: uuid.UUID) -> bool:
    """Delete a product; False when a price refers to it after all (one recorded since it was read)."""
    return _delete(connection, "DELETE FROM products WHERE id = %s", (product_id,))


def delete_feature(connection: Connection, feature_id: uuid.UUID) -> None:
    connection.execute("DELETE FROM features WHERE id = %s", (feature_id,))


def delete_plan(connection: Connection, plan_id: uuid.UUID) -> bool:
    """Delete a plan that was never published, with its draft and the draft's items; False when a
    row that refers to it remains (the database refuses to delete published versions anyway)."""
    return _delete(
        connection,
        """DELETE FROM plan_version_prices WHERE plan_version_id IN
               (SELECT id FROM plan_versions WHERE plan_id = %(plan)s AND status = 'draft')""",
        {"plan": plan_id},
        "DELETE FROM plan_versions WHERE plan_id = %(plan)s AND status = 'draft'",
        "DELETE FROM plans WHERE id = %(plan)s",
    )


def _delete(connection: Connection, *statements_and_parameters: Any) -> bool:
    """Run the statements in a savepoint; False (and nothing deleted) when a foreign key refuses."""
    first, parameters, *rest = statements_and_parameters
    try:
        with connection.transaction():
            connection.execute(first, parameters)
            for statement in rest:
                connection.execute(statement, parameters)
    except psycopg.errors.ForeignKeyViolation:
        return False
    return True


_VERSION_SELECT = """
SELECT v.id, v.tenant_id, v.plan_id, p.code, v.version, v.status, v.trial_days, v.entitlements, v.created_at,
       v.updated_at, v.published_at
FROM plan_versions v JOIN plans p ON p.id = v.plan_id"""


def _versions(connection: Connection, rows: list[Any]) -> list[PlanVersionRow]:
    if not rows:
        return []
    items: dict[uuid.UUID, list[PlanItemRow]] = {row[0]: [] for row in rows}
    for version_id, price_id, price_code, quantity in connection.execute(
        """SELECT i.plan_version_id, i.price_id, c.code, i.quantity
           FROM plan_version_prices i JOIN prices c ON c.id = i.price_id
           WHERE i.plan_version_id = ANY(%s) ORDER BY i.plan_version_id, i.position""",
        (list(items),),
    ).fetchall():
        items[version_id].append(PlanItemRow(price_id, price_code, quantity))
    return [PlanVersionRow(*[*row, tuple(items[row[0]])]) for row in rows]


def get_version(
    connection: Connection, tenant_id: uuid.UUID, plan_id: uuid.UUID, version: int, *, for_update: bool = False
) -> PlanVersionRow | None:
    lock = " FOR UPDATE OF v" if for_update else ""
    rows = connection.execute(
        f"{_VERSION_SELECT} WHERE v.tenant_id = %s AND v.plan_id = %s AND v.version = %s{lock}",
        (tenant_id, plan_id, version),
    ).fetchall()
    found = _versions(connection, rows)
    return found[0] if found else None


def list_versions(connection: Connection, tenant_id: uuid.UUID, plan_id: uuid.UUID) -> list[PlanVersionRow]:
    rows = connection.execute(
        f"{_VERSION_SELECT} WHERE v.tenant_id = %s AND v.plan_id = %s ORDER BY v.version", (tenant_id, plan_id)
    ).fetchall()
    return _versions(connection, rows)


def insert_version(
    connection: Connection,
    *,
    version_id: uuid.UUID,
    tenant_id: uuid.UUID,
    plan_id: uuid.UUID,
    version: int,
    trial_days: int,
    entitlements: Mapping[str, bool | int],
    now: datetime,
) -> None:
    connection.execute(
        """INSERT INTO plan_versions (id, tenant_id, plan_id, version, status, trial_days, entitlements, created_at,
                                      updated_at)
           VALUES (%s, %s, %s, %s, 'draft', %s, %s, %s, %s)""",
        (version_id, tenant_id, plan_id, version, trial_days, _json(entitlements), now, now),
    )


def update_version(
    connection: Connection,
    version_id: uuid.UUID,
    *,
    trial_days: int,
    entitlements: Mapping[str, bool | int],
    now: datetime,
) -> None:
    connection.execute(
        "UPDATE plan_versions SET trial_days = %s, entitlements = %s, updated_at = %s WHERE id = %s",
        (trial_days, _json(entitlements), now, version_id),
    )


def replace_items(
    connection: Connection,
    tenant_id: uuid.UUID,
    version_id: uuid.UUID,
    items: Sequence[tuple[uuid.UUID, int | None]],
) -> None:
    """A draft's prices, in order (each a price id and a quantity)."""
    connection.execute("DELETE FROM plan_version_prices WHERE plan_version_id = %s", (version_id,))
    with connection.cursor() as cursor:
        cursor.executemany(
            """INSERT INTO plan_version_prices (tenant_id, plan_version_id, position, price_id, quantity)
               VALUES (%s, %s, %s, %s, %s)""",
            [
                (tenant_id, version_id, position, price_id, quantity)
                for position, (price_id, quantity) in enumerate(items)
            ],
        )


def publish_version(connection: Connection, version_id: uuid.UUID, now: datetime) -> None:
    connection.execute(
        "UPDATE plan_versions SET status = 'published', published_at = %s, updated_at = %s WHERE id = %s",
        (now, now, version_id),
    )


# ----- price overrides --------------------------------------------------------------------------------

OVERRIDE_COLUMNS = (
    "id, tenant_id, customer_id, price_id, currency, document, effective_from, effective_until, metadata, "
    "created_at, updated_at"
)


def insert_override(
    connection: Connection,
    *,
    override_id: uuid.UUID,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    price_id: uuid.UUID,
    currency: str,
    document: Mapping[str, Any],
    effective_from: datetime,
    effective_until: datetime | None,
    metadata: Mapping[str, str],
    now: datetime,
) -> OverrideRow:
    row = connection.execute(
        f"""INSERT INTO price_overrides (id, tenant_id, customer_id, price_id, currency, document, effective_from,
                                         effective_until, metadata, created_at, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {OVERRIDE_COLUMNS}""",
        (
            override_id,
            tenant_id,
            customer_id,
            price_id,
            currency,
            _json(document),
            effective_from,
            effective_until,
            _json(metadata),
            now,
            now,
        ),
    ).fetchone()
    if row is None:
        raise InvariantViolation("INSERT … RETURNING answers a row")
    return OverrideRow(*row)


def get_override(
    connection: Connection, tenant_id: uuid.UUID, override_id: uuid.UUID, *, for_update: bool = False
) -> OverrideRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = connection.execute(
        f"SELECT {OVERRIDE_COLUMNS} FROM price_overrides WHERE tenant_id = %s AND id = %s{lock}",
        (tenant_id, override_id),
    ).fetchone()
    return OverrideRow(*row) if row else None


def overrides_of(
    connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, price_id: uuid.UUID
) -> list[OverrideRow]:
    rows = connection.execute(
        f"""SELECT {OVERRIDE_COLUMNS} FROM price_overrides
            WHERE tenant_id = %s AND customer_id = %s AND price_id = %s ORDER BY effective_from""",
        (tenant_id, customer_id, price_id),
    ).fetchall()
    return [OverrideRow(*row) for row in rows]


def list_overrides(
    connection: Connection,
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    customer_id: uuid.UUID | None = None,
    price_id: uuid.UUID | None = None,
) -> Page[OverrideRow]:
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if customer_id is not None:
        filters.append("customer_id = %(customer_id)s")
        parameters["customer_id"] = customer_id
    if price_id is not None:
        filters.append("price_id = %(price_id)s")
        parameters["price_id"] = price_id
    tail = _keyset("id", page, filters, parameters)
    rows = connection.execute(f"SELECT {OVERRIDE_COLUMNS} FROM price_overrides {tail}", parameters).fetchall()
    return _page([OverrideRow(*row) for row in rows], page)


def end_override(
    connection: Connection, override_id: uuid.UUID, effective_until: datetime, now: datetime
) -> OverrideRow:
    row = connection.execute(
        f"""UPDATE price_overrides SET effective_until = %s, updated_at = %s WHERE id = %s
            RETURNING {OVERRIDE_COLUMNS}""",
        (effective_until, now, override_id),
    ).fetchone()
    if row is None:
        raise InvariantViolation("the override being ended exists (it was read first)")
    return OverrideRow(*row)
