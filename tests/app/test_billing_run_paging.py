"""The billing run pages through the customers due without reading, for each page, every customer
that comes after it: a page of `limit` reads about `limit` customers, one billing record probe each,
however many customers follow (a run over 100,000 customers was once quadratic here)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tally.adapters.postgres import billing_batches
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally

CUSTOMERS = 2_000
PAGE = 50
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _make_due(tally: Tally, tenant_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """`count` customers of the tenant, every one due (a billing event due before now), in id order."""
    with psycopg_transaction(tally.engine) as connection:
        connection.execute(
            """INSERT INTO customers (id, tenant_id, external_id, name, created_at, updated_at)
               SELECT gen_random_uuid(), %(tenant)s, 'paging-' || n, 'Paging ' || n, %(at)s, %(at)s
               FROM generate_series(1, %(count)s) AS n""",
            {"tenant": tenant_id, "at": NOW - timedelta(days=60), "count": count},
        )
        connection.execute(
            """INSERT INTO customer_billing (tenant_id, customer_id, billed_through, next_run_at, updated_at)
               SELECT tenant_id, id, %(billed)s, %(due)s, %(billed)s FROM customers WHERE tenant_id = %(tenant)s""",
            {"tenant": tenant_id, "billed": NOW - timedelta(days=30), "due": NOW - timedelta(days=1)},
        )
        rows = connection.execute("SELECT id FROM customers WHERE tenant_id = %s ORDER BY id", (tenant_id,)).fetchall()
    with psycopg_transaction(tally.engine) as connection:
        connection.execute("ANALYZE customers")
        connection.execute("ANALYZE customer_billing")
    return [row[0] for row in rows]


@pytest.fixture
def customers_due(tally: Tally, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    return _make_due(tally, tenant_id, CUSTOMERS)


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_plan_nodes(child))
    return nodes


@pytest.mark.parametrize("one_tenant", [True, False], ids=["one tenant", "every tenant"])
@pytest.mark.parametrize("position", [0, 10, CUSTOMERS - 2 * PAGE])
def test_a_page_reads_about_a_page_of_customers(
    tally: Tally, tenant_id: uuid.UUID, customers_due: list[uuid.UUID], position: int, one_tenant: bool
) -> None:
    after = (tenant_id, customers_due[position])
    scope = tenant_id if one_tenant else None
    statement, parameters = billing_batches.customers_due_statement(tenant_id, NOW, after[1], PAGE)
    with psycopg_transaction(tally.engine) as connection:
        explained = connection.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).fetchone()
        assert explained is not None
        (plan,) = explained[0]
        page = billing_batches.customers_due_after(connection, scope, NOW, after, PAGE)
    assert page == [(tenant_id, customer) for customer in customers_due[position + 1 : position + 1 + PAGE]]
    nodes = _plan_nodes(plan["Plan"])
    read = sum(node["Actual Rows"] * node["Actual Loops"] for node in nodes if node.get("Relation Name") == "customers")
    billing = [node for node in nodes if node.get("Relation Name") == "customer_billing"]
    assert read <= PAGE + 1, f"a page of {PAGE} read {read} customers"
    assert billing, "the billing records are read"
    assert all(node["Actual Rows"] <= 1 for node in billing), "one billing record per probe"


def _walk(tally: Tally, tenant_id: uuid.UUID | None, page_size: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Every page of the customers due, in order, as the billing run walks them."""
    walked: list[tuple[uuid.UUID, uuid.UUID]] = []
    after = None
    with psycopg_transaction(tally.engine) as connection:
        while page := billing_batches.customers_due_after(connection, tenant_id, NOW, after, page_size):
            assert len(page) <= page_size
            walked.extend(page)
            after = page[-1]
    return walked


def test_pages_walk_every_customer_due_once(tally: Tally, tenant_id: uuid.UUID, customers_due: list[uuid.UUID]) -> None:
    assert _walk(tally, tenant_id, 300) == [(tenant_id, customer) for customer in customers_due]


def test_a_walk_over_every_tenant_crosses_from_one_tenant_to_the_next(
    tally: Tally, tenant_id: uuid.UUID, customers_due: list[uuid.UUID]
) -> None:
    others = [create_tenant(tally.engine, f"paging-{uuid.uuid4().hex[:8]}") for _ in range(2)]
    due = {tenant_id: customers_due} | {other: _make_due(tally, other, 150) for other in others}
    expected = [(tenant, customer) for tenant in sorted(due) for customer in due[tenant]]
    walked = _walk(tally, None, 270)
    assert [pair for pair in walked if pair[0] in due] == expected  # other tests' tenants may be due too
    assert walked == sorted(walked)
    assert len(set(walked)) == len(walked)
