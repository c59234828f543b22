"""The billing run in chunks against one customer at a time, on real PostgreSQL: on seeded random
customers (their own test clocks, plans, usage in several meters — grouped, cut hour edges, rolled
up or still queued — one-off charges pending, invoiced or cancelled, a customer with charges and
no subscription, earlier invoices finalized for some) both produce exactly the same drafts,
lines and billing records; running again changes nothing; concurrent runs bill each thing once.
Chunks billed in worker processes (`jobs`) leave exactly what one process leaves."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.connections import RetryRequested, psycopg_transaction
from tally.app import run_billing as run_billing_module
from tally.app.cancel_charge import cancel_charge
from tally.app.create_charge import ChargeInput, create_charge
from tally.app.finalize_invoice import finalize_invoice
from tally.app.roll_up_events import roll_up_events
from tally.app.run_billing import bill_customer, run_billing
from tally.bootstrap import Tally
from tally.core.metering.aggregation import MeteredEvent
from tests.invoicing_support import at, customer_on_clock, subscribe
from tests.metering_support import write_events
from tests.subscription_support import apply_test_catalog, make_customer, price_id

CATALOG = """
meters:
  - {code: calls, event_type: api.call, aggregation: count}
  - {code: tokens, event_type: llm.call, aggregation: sum, value_property: tokens, group_by: [model]}
  - {code: peak, event_type: storage.sample, aggregation: max, value_property: gb}
products:
  - {code: platform, name: Platform}
  - {code: usage, name: Usage}
prices:
  - {code: basic_fee, product: platform, model: flat_fee, currency: USD, amount: 30}
  - {code: pro_fee, product: platform, model: flat_fee, currency: USD, amount: 90}
  - {code: calls, product: usage, model: per_unit, currency: USD, meter: calls, unit_price: 0.013}
  - {code: tokens, product: usage, model: per_unit, currency: USD, meter: tokens, unit_price: 0.000021}
  - {code: peak, product: usage, model: per_unit, currency: USD, meter: peak, unit_price: 0.5}
  - {code: setup, product: platform, model: flat_fee, currency: USD, amount: 250, interval: null}
  - {code: hours, product: platform, model: per_unit, currency: USD, unit_price: 0.7, billing_timing: in_advance,
     interval: null}
plans:
  - code: basic
    name: Basic
    prices: [basic_fee, calls, tokens]
  - code: pro
    name: Pro
    prices: [pro_fee, calls, tokens, peak]
"""

EVENT_TYPES = ("api.call", "llm.call", "storage.sample")


def _events(generator: random.Random, customer: str, start: datetime, days: int) -> list[MeteredEvent]:
    events = []
    for _ in range(generator.randrange(0, 30)):
        kind = generator.choice(EVENT_TYPES)
        properties: dict[str, Any] = {}
        if kind == "llm.call":
            properties = {"tokens": generator.randrange(1, 5000), "model": generator.choice(["a", "b", "c"])}
        elif kind == "storage.sample":
            properties = {"gb": generator.randrange(1, 100)}
        moment = start + timedelta(seconds=generator.randrange(0, days * 86_400))
        events.append(MeteredEvent(f"e-{uuid.uuid4().hex}", customer, kind, moment, properties))
    return events


def _move_clock(tally: Tally, clock_id: uuid.UUID, moment: datetime) -> None:
    with psycopg_transaction(tally.engine) as connection:
        connection.execute("UPDATE test_clocks SET frozen_time = %s WHERE id = %s", (moment, clock_id))


def _snapshot(tally: Tally, tenant_id: uuid.UUID) -> tuple[list[Any], list[Any], list[Any]]:
    """Drafts, their lines and the billing records, without the ids the run makes up."""
    with psycopg_transaction(tally.engine) as connection:
        drafts = connection.execute(
            """SELECT customer_id, currency, through, period_start, period_end, subtotal_minor, discount_minor,
                      credits_minor, tax_minor, total_minor, balance_applied_minor, balance_credited_minor,
                      amount_due_minor, tax, creditable, postings, created_at, updated_at
               FROM invoices WHERE tenant_id = %s AND status = 'draft' ORDER BY customer_id""",
            (tenant_id,),
        ).fetchall()
        lines = connection.execute(
            """SELECT l.customer_id, l.subscription_id, l.price_id, l.service_start, l.service_end, l.group_values,
                      l.kind, l.reference, l.sequence, l.position, l.amount_minor, l.amount_minor_total,
                      l.amount_minor_billed_prior, l.quantity, l.product, l.description, l.due_at, l.provisional,
                      l.explanation::text, l.created_at
               FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
               WHERE l.tenant_id = %s AND i.status = 'draft' ORDER BY l.customer_id, l.position""",
            (tenant_id,),
        ).fetchall()
        billing = connection.execute(
            """SELECT customer_id, billed_through, next_run_at FROM customer_billing
               WHERE tenant_id = %s ORDER BY customer_id""",
            (tenant_id,),
        ).fetchall()
    return drafts, lines, billing


def _delete_drafts(tally: Tally, tenant_id: uuid.UUID) -> None:
    with psycopg_transaction(tally.engine) as connection:
        for (invoice_id,) in connection.execute(
            "SELECT id FROM invoices WHERE tenant_id = %s AND status = 'draft'", (tenant_id,)
        ).fetchall():
            store.delete_draft(connection, invoice_id)
        connection.execute("DELETE FROM customer_billing WHERE tenant_id = %s", (tenant_id,))


def _random_customers(tally: Tally, tenant_id: uuid.UUID, seed: int, count: int) -> list[uuid.UUID]:
    """Customers on their own clocks, some with an invoice finalized a month in, all moved on."""
    generator = random.Random(seed)
    apply_test_catalog(tally, tenant_id, CATALOG)
    fees = {"basic": price_id(tally, tenant_id, "basic_fee"), "pro": price_id(tally, tenant_id, "pro_fee")}
    customers: list[uuid.UUID] = []
    clocks: list[tuple[uuid.UUID, uuid.UUID, datetime]] = []
    for _ in range(count):
        start = at(1, 1) + timedelta(days=generator.randrange(0, 25), minutes=generator.randrange(0, 1440))
        customer_id, clock_id, external = customer_on_clock(tally, tenant_id, start)
        plan = generator.choice(["basic", "pro"])
        # Seats differ between customers of one plan (their items differ in quantity alone).
        subscribe(tally, tenant_id, customer_id, plan, {fees[plan]: generator.choice([1, 1, 2, 5])})
        write_events(tally.engine, tenant_id, _events(generator, external, start, 40))
        if generator.random() < 0.4:
            _one_off(tally, tenant_id, customer_id, generator)
        customers.append(customer_id)
        clocks.append((customer_id, clock_id, start))
    roll_up_events(tally.engine)  # the first month's usage rolled up; what follows stays queued
    for customer_id, clock_id, start in clocks:
        _move_clock(tally, clock_id, start + timedelta(days=33, hours=generator.randrange(0, 24)))
        if generator.random() < 0.5:
            bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
            with psycopg_transaction(tally.engine) as connection:
                draft = store.draft_of(connection, tenant_id, customer_id, "USD")
            if draft is not None:
                finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    for customer_id, clock_id, start in clocks:
        with psycopg_transaction(tally.engine) as connection:
            row = connection.execute(
                "SELECT external_id FROM customers WHERE tenant_id = %s AND id = %s", (tenant_id, customer_id)
            ).fetchone()
        assert row is not None
        write_events(tally.engine, tenant_id, _events(generator, str(row[0]), start + timedelta(days=25), 40))
        _move_clock(
            tally, clock_id, start + timedelta(days=generator.randrange(34, 75), minutes=generator.randrange(60))
        )
        for _ in range(generator.choice([0, 0, 1, 2])):
            _one_off(tally, tenant_id, customer_id, generator)
    charged_only, _, _ = customer_on_clock(tally, tenant_id, at(2, 10))  # charges, no subscription
    for _ in range(3):
        _one_off(tally, tenant_id, charged_only, generator)
    customers.append(charged_only)
    customers.append(make_customer(tally, tenant_id, currency=None))  # nothing to bill: no currency
    generator.shuffle(customers)
    return customers


def _one_off(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID, generator: random.Random) -> None:
    """A one-off charge at the customer's now (sometimes dated back a few days), cancelled at times."""
    backdated = None
    if generator.random() < 0.3:
        with psycopg_transaction(tally.engine) as connection:
            row = connection.execute(
                """SELECT k.frozen_time FROM customers c JOIN test_clocks k ON k.id = c.test_clock_id
                   WHERE c.tenant_id = %s AND c.id = %s""",
                (tenant_id, customer_id),
            ).fetchone()
        assert row is not None
        backdated = row[0] - timedelta(days=generator.randrange(1, 5), seconds=generator.randrange(86_400))
    created = create_charge(
        tally.engine,
        tally.clock,
        tenant_id,
        ChargeInput(
            customer_id=customer_id,
            price_code=generator.choice(["setup", "hours"]),
            quantity=Decimal(generator.randrange(1, 400)) / generator.choice([1, 10, 100]),
            description=generator.choice(["", "Onboarding", "Extra support"]),
            charged_at=backdated,
        ),
    )
    if generator.random() < 0.2:
        cancel_charge(tally.engine, tally.clock, tenant_id, created.charge.id)


def _count_pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times a run handed its chunks to worker processes (one entry per pool)."""
    pools: list[int] = []
    real = run_billing_module._bill_in_pool

    def counted(*args: Any, **kwargs: Any) -> Any:
        pools.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(run_billing_module, "_bill_in_pool", counted)
    return pools


@pytest.mark.parametrize(("seed", "jobs"), [(1, 1), (2, 1), (1, 2), (2, 3)])
def test_chunks_bill_exactly_what_one_customer_at_a_time_bills(
    tally: Tally, tenant_id: uuid.UUID, seed: int, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = _random_customers(tally, tenant_id, seed, 14)
    pools = _count_pools(monkeypatch)

    chunked = run_billing(
        tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=tuple(customers), chunk_size=4, jobs=jobs
    )
    assert len(pools) == (jobs > 1)  # four chunks: in worker processes unless told to stay in this one
    in_chunks = _snapshot(tally, tenant_id)
    assert not chunked.refused
    assert sum(1 for run in chunked.customers if run.created) >= 10
    assert sum(1 for line in in_chunks[1] if line[6] == "one_off") >= 3  # pending charges are on the drafts

    _delete_drafts(tally, tenant_id)
    alone = [bill_customer(tally.engine, tally.clock, tenant_id, customer_id) for customer_id in customers]
    one_by_one = _snapshot(tally, tenant_id)

    assert in_chunks[0] == one_by_one[0]  # drafts: totals, tax, creditable, postings, times
    assert in_chunks[1] == one_by_one[1]  # every line, its key, amounts and explanation
    assert in_chunks[2] == one_by_one[2]  # billed through, next run
    by_customer = {run.customer_id: run for run in chunked.customers}
    assert [(by_customer[run.customer_id].created, by_customer[run.customer_id].lines) for run in alone] == [
        (run.created, run.lines) for run in alone
    ]

    # Running again, in chunks or not, changes nothing.
    again = run_billing(
        tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=tuple(customers), chunk_size=3, jobs=jobs
    )
    assert again.changed == 0
    assert _snapshot(tally, tenant_id)[1] == one_by_one[1]


def test_a_run_over_every_customer_due_in_worker_processes_bills_what_one_process_bills(
    tally: Tally, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = _random_customers(tally, tenant_id, 5, 12)
    pools = _count_pools(monkeypatch)
    _delete_drafts(tally, tenant_id)  # both runs start from no drafts and no billing records

    alone = run_billing(tally.engine, tally.clock, tenant_id=tenant_id, chunk_size=3, jobs=1)
    in_one_process = _snapshot(tally, tenant_id)
    assert pools == []
    _delete_drafts(tally, tenant_id)

    pooled = run_billing(tally.engine, tally.clock, tenant_id=tenant_id, chunk_size=3, jobs=2)
    assert pools == [1]
    assert _snapshot(tally, tenant_id) == in_one_process
    # Every customer with a subscription (not the one without a currency), in id order, with the
    # same outcomes but for the new drafts' ids.
    assert len(pooled.customers) == len(customers) - 1
    assert [run.customer_id for run in pooled.customers] == sorted(run.customer_id for run in pooled.customers)
    assert [(r.customer_id, r.created, r.changed, r.lines, r.rejection) for r in pooled.customers] == [
        (r.customer_id, r.created, r.changed, r.lines, r.rejection) for r in alone.customers
    ]
    assert run_billing(tally.engine, tally.clock, tenant_id=tenant_id, chunk_size=3, jobs=2).changed == 0


def test_a_refusal_leaves_the_others_billed_and_a_failed_chunk_bills_one_by_one(
    tally: Tally, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = _random_customers(tally, tenant_id, 3, 6)
    stranger = uuid.uuid4()  # no such customer: refused, the rest of its chunk billed
    result = run_billing(
        tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(stranger, *customers), chunk_size=7
    )
    assert [run.rejection.code for run in result.refused if run.rejection] == ["customer_not_found"]
    assert sum(1 for run in result.customers if run.invoice_id is not None) >= 4

    # A chunk whose writes fail (here made to fail as a UNIQUE violation would) rolls back whole and
    # is billed one customer at a time, to the same drafts.
    _delete_drafts(tally, tenant_id)
    calls: list[int] = []

    def failing(connection: Any, tenant: uuid.UUID, writes: Any) -> None:
        calls.append(len(writes))
        raise RetryRequested

    monkeypatch.setattr(run_billing_module, "write_drafts", failing)
    fallen_back = run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=tuple(customers))
    # Two writes per customer: its regular draft and its extra invoice of late usage (none here).
    assert calls == [2 * (len([run for run in result.customers if run.rejection is None]) - 1)]
    after_fallback = _snapshot(tally, tenant_id)
    monkeypatch.undo()
    _delete_drafts(tally, tenant_id)
    for customer_id in customers:
        bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert after_fallback == _snapshot(tally, tenant_id)
    assert sorted(run.customer_id for run in fallen_back.customers) == sorted(customers)
    assert not fallen_back.refused


def test_concurrent_chunked_runs_bill_each_thing_once(tally: Tally, tenant_id: uuid.UUID) -> None:
    customers = _random_customers(tally, tenant_id, 4, 10)
    _delete_drafts(tally, tenant_id)
    barrier = threading.Barrier(3)
    failures: list[BaseException] = []

    def run(chunk_size: int, reverse: bool) -> None:
        try:
            barrier.wait()
            named = tuple(reversed(customers)) if reverse else tuple(customers)
            for _ in range(2):
                run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=named, chunk_size=chunk_size)
        except BaseException as failure:  # reported below
            failures.append(failure)

    threads = [threading.Thread(target=run, args=(size, size % 2 == 0)) for size in (3, 4, 11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    concurrent = _snapshot(tally, tenant_id)
    with psycopg_transaction(tally.engine) as connection:
        drafts = connection.execute(
            "SELECT customer_id, count(*) FROM invoices WHERE tenant_id = %s AND status = 'draft' GROUP BY 1",
            (tenant_id,),
        ).fetchall()
    assert all(count == 1 for _, count in drafts)
    # And what they left is what one run alone leaves.
    _delete_drafts(tally, tenant_id)
    for customer_id in customers:
        bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    alone = _snapshot(tally, tenant_id)
    assert [row[:-2] for row in concurrent[0]] == [row[:-2] for row in alone[0]]
    assert [row[:-1] for row in concurrent[1]] == [row[:-1] for row in alone[1]]
