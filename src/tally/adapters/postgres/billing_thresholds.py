"""Subscriptions' billing thresholds in PostgreSQL (migration 0015): append-only facts, numbered per
subscription in recording order; the last one is the setting in force (amount NULL: off)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Connection = psycopg.Connection[Any]

# Threshold changes recorded per subscription at most (the sequence's CHECK says the same).
CHANGES_PER_SUBSCRIPTION_MAX = 1_000


@dataclass(frozen=True, slots=True)
class ThresholdFact:
    subscription_id: uuid.UUID
    sequence: int
    amount_minor: int | None  # None: threshold billing turned off
    currency: str
    recorded_at: datetime


_COLUMNS = "subscription_id, sequence, amount_minor, currency, recorded_at"


def facts_of(connection: Connection, tenant_id: uuid.UUID, subscription_id: uuid.UUID) -> list[ThresholdFact]:
    rows = connection.execute(
        f"""SELECT {_COLUMNS} FROM subscription_billing_thresholds
            WHERE tenant_id = %s AND subscription_id = %s ORDER BY sequence""",
        (tenant_id, subscription_id),
    ).fetchall()
    return [ThresholdFact(*row) for row in rows]


def in_force(
    connection: Connection, tenant_id: uuid.UUID, subscription_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ThresholdFact]:
    """The last fact of each subscription that has any (whether it turns thresholds on or off)."""
    if not subscription_ids:
        return {}
    rows = connection.execute(
        f"""SELECT DISTINCT ON (subscription_id) {_COLUMNS} FROM subscription_billing_thresholds
            WHERE tenant_id = %s AND subscription_id = ANY(%s)
            ORDER BY subscription_id, sequence DESC""",
        (tenant_id, list(subscription_ids)),
    ).fetchall()
    return {row[0]: ThresholdFact(*row) for row in rows}


def append(connection: Connection, tenant_id: uuid.UUID, fact: ThresholdFact) -> None:
    """Append one fact; the caller holds the subscription's lock and numbers it next (the primary
    key refuses a duplicate sequence)."""
    connection.execute(
        f"""INSERT INTO subscription_billing_thresholds (tenant_id, {_COLUMNS})
            VALUES (%s, %s, %s, %s, %s, %s)""",
        (tenant_id, fact.subscription_id, fact.sequence, fact.amount_minor, fact.currency, fact.recorded_at),
    )


def customers_with_thresholds_after(
    connection: Connection,
    tenant_id: uuid.UUID | None,
    after: tuple[uuid.UUID, uuid.UUID] | None,
    limit: int,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The next `limit` (tenant, customer) pairs after `after`, in (tenant, id) order, of customers
    with at least one subscription not ended whose threshold in force is on."""
    # Driven from the threshold facts (few subscriptions have any), the last fact of each.
    rows = connection.execute(
        """SELECT DISTINCT s.tenant_id, s.customer_id
           FROM (SELECT DISTINCT ON (t.subscription_id) t.subscription_id, t.amount_minor
                 FROM subscription_billing_thresholds t
                 WHERE %(tenant_id)s::uuid IS NULL OR t.tenant_id = %(tenant_id)s
                 ORDER BY t.subscription_id, t.sequence DESC) latest
           JOIN subscriptions s ON s.id = latest.subscription_id
           WHERE latest.amount_minor IS NOT NULL AND s.status <> 'ended'
             AND (%(after_tenant)s::uuid IS NULL OR (s.tenant_id, s.customer_id) > (%(after_tenant)s, %(after_id)s))
           ORDER BY s.tenant_id, s.customer_id
           LIMIT %(limit)s""",
        {
            "tenant_id": tenant_id,
            "after_tenant": None if after is None else after[0],
            "after_id": None if after is None else after[1],
            "limit": limit,
        },
    ).fetchall()
    return [(row[0], row[1]) for row in rows]
