"""Finding the tenant a CLI command acts on, creating it when asked to."""

from __future__ import annotations

import uuid

from tally.adapters.ids import TENANT, format_id, parse_id
from tally.app.audit import ACTOR_CLI, AuditEntry, record_audit
from tally.app.tenants import create_tenant, find_tenants_by_name, get_tenant
from tally.bootstrap import Tally
from tally.cli._context import fail


def tenant_id_of(text: str) -> uuid.UUID | None:
    """The id in `ten_…` or a plain UUID; None if `text` is a name."""
    parsed = parse_id(TENANT, text)
    if parsed is not None:
        return parsed
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def find_or_create_tenant(tally: Tally, name_or_id: str) -> tuple[uuid.UUID, bool]:
    """The tenant with this id (must exist) or name (created if none has it). True: created."""
    tenant_id = tenant_id_of(name_or_id)
    if tenant_id is not None:
        return get_tenant(tally.engine, tenant_id).id, False
    found = find_tenants_by_name(tally.engine, name_or_id)
    if len(found) > 1:
        fail("tenant_name_ambiguous", f"{len(found)} tenants are named {name_or_id!r}: give the tenant's id")
    if found:
        return found[0].id, False
    tenant_id = create_tenant(tally.engine, name_or_id)
    record_audit(
        tally.engine,
        AuditEntry(
            tenant_id=tenant_id,
            actor=ACTOR_CLI,
            action="tally tenants create",
            object_type="tenant",
            object_id=format_id(TENANT, tenant_id),
        ),
    )
    return tenant_id, True
