"""`tally customers …` and `tally test-clocks …`: create, list and inspect; advance simulated time."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import typer
from rich.table import Table

from tally.adapters.ids import CUSTOMER, TEST_CLOCK, format_id, parse_id
from tally.cli._context import audit, console, fail, open_tally, rejections_as_errors, resolve_tenant

app = typer.Typer(help="Customers: who usage and invoices belong to.", no_args_is_help=True)
test_clocks_app = typer.Typer(
    help="Test clocks: simulated time for the customers created on them.", no_args_is_help=True
)

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")


def _when(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail("value_must_be_datetime", f"{option} must be an ISO 8601 time, e.g. 2030-01-31T00:00:00Z")
    if value.tzinfo is None:
        fail("datetime_must_have_timezone", f"{option} needs a timezone (Z or +01:00)")
    return value


def _test_clock_id(text: str) -> uuid.UUID:
    parsed = parse_id(TEST_CLOCK, text)
    if parsed is None:
        fail("test_clock_not_found", f"{text!r} is not a test clock id (clk_…)")
    return parsed


def _metadata(pairs: list[str]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            fail("metadata_invalid", "--metadata is key=value")
        metadata[key] = value
    return metadata


@app.command("create")
def create(
    external_id: str = typer.Argument(..., help="Your id for the customer: the `customer` of its usage events."),
    name: str | None = typer.Option(None, "--name", help="Default: the external id."),
    email: str | None = typer.Option(None, "--email"),
    currency: str | None = typer.Option(None, "--currency", help="ISO 4217 (USD) or one of the tenant's units."),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA name, e.g. Europe/Paris."),
    country: str | None = typer.Option(None, "--country", help="Billing address country (ISO 3166-1 alpha-2)."),
    metadata: list[str] = typer.Option([], "--metadata", help="key=value (repeatable)."),
    test_clock: str | None = typer.Option(None, "--test-clock", help="Create it on this test clock (clk_…)."),
    tenant: str | None = TenantOption,
) -> None:
    """Create a customer."""
    from tally.app.create_customer import CustomerInput, create_customer
    from tally.core.customers import Address

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        customer = create_customer(
            tally.engine,
            tally.clock,
            tenant_id,
            CustomerInput(
                external_id=external_id,
                name=name,
                email=email,
                currency=currency,
                timezone=timezone,
                billing_address=Address(country=country) if country else None,
                metadata=_metadata(metadata),
                test_clock_id=_test_clock_id(test_clock) if test_clock else None,
            ),
        )
        customer_id = format_id(CUSTOMER, customer.id)
        audit(tally, tenant_id, "tally customers create", "customer", customer_id)
    console.print(f"customer {customer_id} created: {customer.external_id}")


@app.command("list")
def list_customers(tenant: str | None = TenantOption) -> None:
    """The tenant's customers, newest first."""
    from tally.adapters.pagination import LIMIT_MAX, PageRequest
    from tally.app.customer_queries import list_customers as find

    table = Table(title="customers")
    for column in ("id", "external id", "name", "email", "currency", "timezone", "test clock"):
        table.add_column(column)
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        page = PageRequest(limit=LIMIT_MAX)
        while True:
            found = find(tally.engine, tenant_id, page)
            for customer in found.items:
                table.add_row(
                    format_id(CUSTOMER, customer.id),
                    customer.external_id,
                    customer.name,
                    customer.email or "",
                    customer.currency or "",
                    customer.timezone,
                    format_id(TEST_CLOCK, customer.test_clock_id) if customer.test_clock_id else "",
                )
            if not found.has_more or not found.items:
                break
            page = PageRequest(limit=LIMIT_MAX, starting_after=found.items[-1].id)
    console.print(table)


@app.command("show")
def show(
    customer: str = typer.Argument(..., help="A customer id (cus_…) or external id."),
    tenant: str | None = TenantOption,
) -> None:
    """One customer, as JSON (the same shape as the API)."""
    from tally.api.routers.customers import customer_resource
    from tally.app import customer_queries

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        customer_id = parse_id(CUSTOMER, customer)
        if customer_id is not None:
            found = customer_queries.get_customer(tally.engine, tenant_id, customer_id)
        else:
            found = customer_queries.get_customer_by_external_id(tally.engine, tenant_id, customer)
    console.print_json(json.dumps(customer_resource(found).model_dump(mode="json")))


@test_clocks_app.command("create")
def create_test_clock(
    frozen_time: str = typer.Argument(..., help="The clock's time, e.g. 2030-01-31T00:00:00Z."),
    name: str | None = typer.Option(None, "--name"),
    tenant: str | None = TenantOption,
) -> None:
    """Create a test clock."""
    from tally.app.create_test_clock import TestClockInput
    from tally.app.create_test_clock import create_test_clock as create_clock

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        row = create_clock(
            tally.engine,
            tally.clock,
            tenant_id,
            TestClockInput(frozen_time=_when(frozen_time, "FROZEN_TIME"), name=name),
        )
        clock_id = format_id(TEST_CLOCK, row.id)
        audit(tally, tenant_id, "tally test-clocks create", "test_clock", clock_id)
    console.print(f"test clock {clock_id} created at {row.frozen_time.isoformat()}")


@test_clocks_app.command("advance")
def advance(
    test_clock: str = typer.Argument(..., help="The test clock (clk_…)."),
    frozen_time: str = typer.Argument(..., help="The later time to move to (at most 2 years ahead)."),
    tenant: str | None = TenantOption,
) -> None:
    """Move a test clock forward and run what would have happened in between."""
    from tally.app.advance_test_clock import advance_test_clock

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        advanced = advance_test_clock(
            tally.engine, tally.clock, tenant_id, _test_clock_id(test_clock), _when(frozen_time, "FROZEN_TIME")
        )
        if advanced.moved or advanced.resumed:
            audit(tally, tenant_id, "tally test-clocks advance", "test_clock", test_clock)
    row = advanced.test_clock
    if advanced.resumed is not None:
        console.print(f"completed an unfinished advance to {advanced.resumed.isoformat()}")
    verb = "advanced to" if advanced.moved else "already at"
    console.print(f"test clock {test_clock} {verb} {row.frozen_time.isoformat()} ({row.status})")


@test_clocks_app.command("list")
def list_test_clocks(tenant: str | None = TenantOption) -> None:
    """The tenant's test clocks, newest first."""
    from tally.adapters.pagination import LIMIT_MAX, PageRequest
    from tally.app.test_clock_queries import list_test_clocks as find

    table = Table(title="test clocks")
    for column in ("id", "name", "frozen time", "status"):
        table.add_column(column)
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        page = PageRequest(limit=LIMIT_MAX)
        while True:
            found = find(tally.engine, tenant_id, page)
            for row in found.items:
                table.add_row(format_id(TEST_CLOCK, row.id), row.name, row.frozen_time.isoformat(), row.status)
            if not found.has_more or not found.items:
                break
            page = PageRequest(limit=LIMIT_MAX, starting_after=found.items[-1].id)
    console.print(table)
