"""What every command needs: a built `Tally`, closed when the command ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console

from tally.adapters.ids import parse_id
from tally.bootstrap import Tally, build
from tally.core.rejections import Rejected

# Messages are not wrapped by us (soft wrap): a terminal wraps them itself, and text piped to a file
# or a program keeps each message on one line whatever width the console guessed.
console = Console(soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True)


@contextmanager
def open_tally(*, migrate: bool = True) -> Iterator[Tally]:
    tally = build(migrate=migrate)
    try:
        yield tally
    finally:
        tally.close()


def resolve_tenant(tally: Tally, tenant: str | None) -> uuid.UUID:
    """A tenant by id (`ten_…` or UUID) or by name; with none given, the only tenant there is."""
    from tally.app.tenants import find_tenants_by_name, list_tenants

    if tenant is None:
        tenants = list_tenants(tally.engine)
        if len(tenants) != 1:
            fail("tenant_required", "give --tenant (or TALLY_TENANT): there is not exactly one tenant")
        return tenants[0].id
    parsed = parse_id("ten", tenant)
    if parsed is None:
        try:
            parsed = uuid.UUID(tenant)
        except ValueError:
            parsed = None
    if parsed is not None:
        return parsed
    found = find_tenants_by_name(tally.engine, tenant)
    if len(found) != 1:
        fail("tenant_not_found" if not found else "tenant_name_ambiguous", f"{len(found)} tenants named {tenant!r}")
    return found[0].id


def resolve_customer(tally: Tally, tenant_id: uuid.UUID, text: str) -> uuid.UUID:
    """A customer by id (`cus_…`) or by external id (refused as `customer_not_found` if none)."""
    from tally.app.customer_queries import get_customer_by_external_id

    parsed = parse_id("cus", text)
    if parsed is not None:
        return parsed
    return get_customer_by_external_id(tally.engine, tenant_id, text).id


def fail(code: str, message: str) -> NoReturn:
    error_console.print(f"[bold red]{code}[/bold red]: {message}")
    raise typer.Exit(1)


@contextmanager
def rejections_as_errors() -> Iterator[None]:
    """Turn an expected rejection into a one-line error and exit code 1."""
    try:
        yield
    except Rejected as rejected:
        field = f" ({rejected.rejection.field})" if rejected.rejection.field else ""
        fail(rejected.rejection.code, rejected.rejection.message + field)


def audit(tally: Tally, tenant_id: uuid.UUID, action: str, object_type: str, object_id: str) -> None:
    """Record a change made from the command line in the audit log (actor `cli`)."""
    from tally.app.audit import ACTOR_CLI, AuditEntry, record_audit

    record_audit(
        tally.engine,
        AuditEntry(tenant_id=tenant_id, actor=ACTOR_CLI, action=action, object_type=object_type, object_id=object_id),
    )
