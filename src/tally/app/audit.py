"""The audit log: who changed what, when, through which request.

The API writes one entry per successful mutating request (actor `api_key:<key id>`); the CLI writes
one per change it makes (actor `cli`). Entries are appended, never edited.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from tally.adapters.ids import new_id
from tally.adapters.postgres import audit as rows

ACTOR_CLI = "cli"
ACTION_LENGTH_MAX = 300
ENTRIES_LISTED_MAX = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    tenant_id: uuid.UUID
    actor: str
    action: str
    object_type: str | None = None
    object_id: str | None = None
    request_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedAuditEntry(AuditEntry):
    id: uuid.UUID
    occurred_at: datetime


def record_audit(engine: Engine, entry: AuditEntry) -> uuid.UUID:
    entry_id = new_id()
    with engine.begin() as connection:
        rows.insert_entry(
            connection,
            entry_id=entry_id,
            tenant_id=entry.tenant_id,
            actor=entry.actor,
            action=entry.action[:ACTION_LENGTH_MAX],
            object_type=entry.object_type,
            object_id=entry.object_id,
            request_id=entry.request_id,
            details=dict(entry.details),
        )
    return entry_id


def latest_audit_entries(engine: Engine, tenant_id: uuid.UUID, limit: int = 100) -> list[RecordedAuditEntry]:
    with engine.connect() as connection:
        found = rows.latest(connection, tenant_id, min(limit, ENTRIES_LISTED_MAX))
    return [
        RecordedAuditEntry(
            id=row["id"],
            occurred_at=row["occurred_at"],
            tenant_id=row["tenant_id"],
            actor=row["actor"],
            action=row["action"],
            object_type=row["object_type"],
            object_id=row["object_id"],
            request_id=row["request_id"],
            details=dict(row["details"]),
        )
        for row in found
    ]
