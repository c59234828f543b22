"""A tenant's invoice profile in PostgreSQL (migration 0011): the seller block of its documents."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceProfileRow:
    seller_name: str
    email: str | None
    address_lines: tuple[str, ...]
    tax_ids: tuple[tuple[str, str], ...]  # (type, value)
    locale: str
    notes: tuple[str, ...]
    footer: str | None
    updated_at: datetime | None


def get_profile(connection: Connection, tenant_id: uuid.UUID) -> InvoiceProfileRow | None:
    row = connection.execute(
        """SELECT seller_name, email, address_lines, tax_ids, locale, notes, footer, updated_at
           FROM invoice_profiles WHERE tenant_id = %s""",
        (tenant_id,),
    ).fetchone()
    if row is None:
        return None
    return InvoiceProfileRow(
        seller_name=row[0],
        email=row[1],
        address_lines=tuple(row[2]),
        tax_ids=tuple((item["type"], item["value"]) for item in row[3]),
        locale=row[4],
        notes=tuple(row[5]),
        footer=row[6],
        updated_at=row[7],
    )


def put_profile(connection: Connection, tenant_id: uuid.UUID, profile: InvoiceProfileRow, now: datetime) -> None:
    """Replace the tenant's profile as a whole (the last write wins; it moves no money)."""
    connection.execute(
        """INSERT INTO invoice_profiles (tenant_id, seller_name, email, address_lines, tax_ids, locale, notes, footer,
                                         updated_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (tenant_id) DO UPDATE SET seller_name = EXCLUDED.seller_name, email = EXCLUDED.email,
               address_lines = EXCLUDED.address_lines, tax_ids = EXCLUDED.tax_ids, locale = EXCLUDED.locale,
               notes = EXCLUDED.notes, footer = EXCLUDED.footer, updated_at = EXCLUDED.updated_at""",
        (
            tenant_id,
            profile.seller_name,
            profile.email,
            json.dumps(list(profile.address_lines)),
            json.dumps([{"type": kind, "value": value} for kind, value in profile.tax_ids]),
            profile.locale,
            json.dumps(list(profile.notes)),
            profile.footer,
            now,
        ),
    )


def tenant_name(connection: Connection, tenant_id: uuid.UUID) -> str | None:
    """The tenant's own name: the seller of a tenant that set no profile."""
    row = connection.execute("SELECT name FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    return None if row is None else str(row[0])
