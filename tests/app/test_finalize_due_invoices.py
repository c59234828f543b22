"""Drafts finalized once their grace period has passed, by the customer's clock, on real PostgreSQL:
not before, with late events on the invoice, once (again, or by concurrent runs: gapless numbers
and one posting each), and one customer's refusal never stopping the others."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_items import PlanChoice
from tally.app.advance_test_clock import advance_test_clock
from tally.app.cancel_subscription import Cancellation, cancel_subscription
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.finalize_due_invoices import (
    HOOK_NAME,
    FinalizationRun,
    Outcome,
    finalize_due_invoices,
    register_finalization_hook,
)
from tally.app.invoice_queries import get_invoice
from tally.app.test_clock_hooks import advance_hooks, unregister_advance_hook
from tally.bootstrap import Tally, build
from tally.core.rejections import Rejected
from tests.invoicing_support import at, balance, calls, count_rows, customer_on_clock, setup_catalog, subscribe
from tests.subscription_support import apply_test_catalog

GRACE = timedelta(hours=24)


@pytest.fixture
def auto_finalize() -> Iterator[None]:
    """The hook as bootstrap registers it with the default setting (the test session runs without)."""
    register_finalization_hook(GRACE)
    try:
        yield
    finally:
        unregister_advance_hook(HOOK_NAME)


def _invoices(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> list[store.InvoiceRow]:
    with psycopg_transaction(tally.engine) as connection:
        ids = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM invoices WHERE tenant_id = %s AND customer_id = %s ORDER BY created_at, id",
                (tenant_id, customer_id),
            ).fetchall()
        ]
        found = [store.get_invoice(connection, tenant_id, invoice_id) for invoice_id in ids]
    return [invoice for invoice in found if invoice is not None]


def _finalizing_postings(tally: Tally, tenant_id: uuid.UUID) -> dict[str, int]:
    """Finalizing ledger transactions per invoice id (their keys are `invoice:<id>:finalized:<n>`)."""
    with psycopg_transaction(tally.engine) as connection:
        rows = connection.execute(
            """SELECT split_part(idempotency_key, ':', 2), count(*) FROM ledger_transactions
               WHERE tenant_id = %s AND idempotency_key LIKE 'invoice:%%:finalized:%%' GROUP BY 1""",
            (tenant_id,),
        ).fetchall()
    return {str(row[0]): int(row[1]) for row in rows}


def _usage_quantity(tally: Tally, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> list[tuple[str, int]]:
    lines = get_invoice(tally.engine, tenant_id, invoice_id).lines
    return sorted((line.key.kind.value, line.amount_minor) for line in lines)


def test_on_a_test_clock_a_draft_waits_out_its_grace_period_and_carries_late_events(
    tally: Tally, tenant_id: uuid.UUID, auto_finalize: None
) -> None:
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)

    # January's fee falls due at the start: half a day later it is still a draft.
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 1, 12))
    (first,) = _invoices(tally, tenant_id, customer_id)
    assert (first.status, first.number, first.total_minor) == ("draft", None, 3000)
    assert _finalizing_postings(tally, tenant_id) == {}

    # Exactly one grace period after it closed: finalized, numbered, posted.
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 2))
    (first,) = _invoices(tally, tenant_id, customer_id)
    assert (first.status, first.number, first.issued_at) == ("open", "INV-000001", at(1, 2))
    assert balance(tally, tenant_id, "accounts_receivable", external) == 3000
    assert _finalizing_postings(tally, tenant_id) == {str(first.id): 1}

    # January's usage and February's fee close on February 1st; through the grace period the draft
    # is refreshed, not finalized, and an event of January that arrives late joins it.
    calls(tally, tenant_id, external, [at(1, 5), at(1, 20)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1, 6))
    second = _invoices(tally, tenant_id, customer_id)[1]
    assert (second.status, second.total_minor) == ("draft", 3002)
    calls(tally, tenant_id, external, [datetime(2026, 1, 31, 23, 30, tzinfo=UTC)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, datetime(2026, 2, 1, 23, 59, tzinfo=UTC))
    assert _invoices(tally, tenant_id, customer_id)[1].status == "draft"

    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 2))
    first, second = _invoices(tally, tenant_id, customer_id)
    assert (second.status, second.number, second.total_minor) == ("open", "INV-000002", 3003)
    assert _usage_quantity(tally, tenant_id, second.id) == [("fixed_fee", 3000), ("usage", 3)]
    assert balance(tally, tenant_id, "accounts_receivable", external) == 6003
    postings = _finalizing_postings(tally, tenant_id)
    assert postings == {str(first.id): 1, str(second.id): 1}

    # Again, by hand and by a further advance within the period: nothing changes.
    transactions = count_rows(tally, tenant_id, "ledger_transactions")
    again = finalize_due_invoices(tally.engine, tally.clock, grace_period=GRACE, tenant_id=tenant_id)
    assert again.customers == ()
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 3))
    assert [invoice.number for invoice in _invoices(tally, tenant_id, customer_id)] == ["INV-000001", "INV-000002"]
    assert count_rows(tally, tenant_id, "ledger_transactions") == transactions


def test_finalizing_refreshes_the_draft_first(tally: Tally, tenant_id: uuid.UUID) -> None:
    """No hook here: the draft was last billed before the late event arrived, and only the
    finalization's own refresh can put it on the invoice."""
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    calls(tally, tenant_id, external, [at(1, 10)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 3))
    (draft,) = _invoices(tally, tenant_id, customer_id)
    assert (draft.status, draft.total_minor) == ("draft", 6001)

    calls(tally, tenant_id, external, [at(1, 31, 22)])
    result = finalize_due_invoices(tally.engine, tally.clock, grace_period=GRACE, tenant_id=tenant_id)
    assert [(item.customer_id, item.outcome, item.number) for item in result.customers] == [
        (customer_id, Outcome.FINALIZED, "INV-000001")
    ]
    (final,) = _invoices(tally, tenant_id, customer_id)
    assert (final.id, final.status, final.total_minor) == (draft.id, "open", 6002)
    assert balance(tally, tenant_id, "accounts_receivable", external) == 6002


def test_the_grace_period_is_counted_on_each_customers_own_clock(tally: Tally, tenant_id: uuid.UUID) -> None:
    setup_catalog(tally, tenant_id)
    early, early_clock, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    late, late_clock, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    for customer_id in (early, late):
        subscribe(tally, tenant_id, customer_id)
    advance_test_clock(tally.engine, tally.clock, tenant_id, early_clock, at(1, 2, 1))
    advance_test_clock(tally.engine, tally.clock, tenant_id, late_clock, at(1, 1, 23))

    result = finalize_due_invoices(tally.engine, tally.clock, grace_period=GRACE, tenant_id=tenant_id)
    assert [(item.customer_id, item.outcome) for item in result.customers] == [(early, Outcome.FINALIZED)]
    assert [invoice.status for invoice in _invoices(tally, tenant_id, late)] == ["draft"]


REFUSAL_CATALOG = """
meters:
  - {code: api_calls, event_type: api.call, aggregation: count}
products:
  - {code: platform, name: Platform}
prices:
  - {code: flat, product: platform, model: flat_fee, currency: USD, amount: 30}
  - {code: calls, product: platform, model: per_unit, currency: USD, meter: api_calls, unit_price: 0.01}
plans:
  - {code: flat, name: Flat, prices: [flat]}
  - {code: metered, name: Metered, prices: [flat, calls]}
"""


def test_a_customer_refused_is_reported_and_the_others_are_finalized(tally: Tally, tenant_id: uuid.UUID) -> None:
    apply_test_catalog(tally, tenant_id, REFUSAL_CATALOG)
    metered, metered_clock, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    flat, flat_clock, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, metered, plan="metered")
    subscribe(tally, tenant_id, flat, plan="flat")
    for clock_id in (metered_clock, flat_clock):
        advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 3))
    # The meter of the metered customer's usage price disappears: refreshing its draft is refused.
    with psycopg_transaction(tally.engine) as connection:
        connection.execute("UPDATE meters SET code = 'api_calls_gone' WHERE tenant_id = %s", (tenant_id,))

    result = finalize_due_invoices(tally.engine, tally.clock, grace_period=GRACE, tenant_id=tenant_id)
    outcomes = {item.customer_id: item for item in result.customers}
    assert outcomes[metered].outcome is Outcome.REFUSED
    assert outcomes[metered].rejection is not None and outcomes[metered].rejection.code == "meter_not_found"
    assert (outcomes[flat].outcome, outcomes[flat].number) == (Outcome.FINALIZED, "INV-000001")
    assert [invoice.status for invoice in _invoices(tally, tenant_id, metered)] == ["draft"]
    assert [invoice.status for invoice in _invoices(tally, tenant_id, flat)] == ["open"]

    with psycopg_transaction(tally.engine) as connection:
        connection.execute("UPDATE meters SET code = 'api_calls' WHERE tenant_id = %s", (tenant_id,))
    retried = finalize_due_invoices(tally.engine, tally.clock, grace_period=GRACE, tenant_id=tenant_id)
    assert [(item.customer_id, item.outcome, item.number) for item in retried.customers] == [
        (metered, Outcome.FINALIZED, "INV-000002")
    ]


def test_concurrent_runs_finalize_each_draft_once_with_gapless_numbers(tally: Tally, tenant_id: uuid.UUID) -> None:
    setup_catalog(tally, tenant_id)
    customers: dict[uuid.UUID, str] = {}
    for _ in range(4):
        customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
        subscribe(tally, tenant_id, customer_id)
        calls(tally, tenant_id, external, [at(1, 2), at(1, 3)])
        advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 2))
        customers[customer_id] = external
    barrier = threading.Barrier(5)
    runs: list[FinalizationRun] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            for _ in range(2):
                runs.append(finalize_due_invoices(tally.engine, tally.clock, grace_period=GRACE, tenant_id=tenant_id))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors

    outcomes = [item for result in runs for item in result.customers]
    assert not [item for item in outcomes if item.outcome is Outcome.REFUSED]
    finalized = sorted(item.customer_id for item in outcomes if item.outcome is Outcome.FINALIZED)
    assert finalized == sorted(customers)  # each customer once, whichever run got there
    with psycopg_transaction(tally.engine) as connection:
        rows = connection.execute(
            "SELECT id, number, status FROM invoices WHERE tenant_id = %s ORDER BY number", (tenant_id,)
        ).fetchall()
    assert [row[1] for row in rows] == [f"INV-{n:06d}" for n in range(1, 5)]
    assert {row[2] for row in rows} == {"open"}
    assert _finalizing_postings(tally, tenant_id) == {str(row[0]): 1 for row in rows}
    for customer_id, external in customers.items():
        (invoice,) = _invoices(tally, tenant_id, customer_id)
        assert invoice.total_minor == 6002
        assert balance(tally, tenant_id, "accounts_receivable", external) == 6002


def test_bootstrap_registers_the_hook_after_billing_only_when_on(tally: Tally) -> None:
    assert HOOK_NAME not in dict(advance_hooks())  # the test session runs with it off
    built = build(tally.settings.model_copy(update={"invoice_auto_finalize": True}), migrate=False)
    try:
        names = [name for name, _ in advance_hooks()]
        assert names.index("billing.run_due") < names.index("credits.expire_due") < names.index(HOOK_NAME)
        assert names[-1] == HOOK_NAME
    finally:
        unregister_advance_hook(HOOK_NAME)
        built.close()


def test_a_grace_period_out_of_bounds_is_a_programming_error(tally: Tally) -> None:
    for grace in (timedelta(hours=-1), timedelta(days=31)):
        with pytest.raises(ValueError, match="grace period"):
            finalize_due_invoices(tally.engine, tally.clock, grace_period=grace)


def test_an_advance_refused_is_resumed_and_finalizes(tally: Tally, tenant_id: uuid.UUID) -> None:
    """A refusal leaves the advance unfinished and the draft a draft; the same advance again, once the
    cause is fixed, runs every hook again and ends with the invoice finalized."""
    apply_test_catalog(tally, tenant_id, REFUSAL_CATALOG)
    metered, clock_id, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, metered, plan="metered")
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1, 12))  # drafts, within grace
    with psycopg_transaction(tally.engine) as connection:
        connection.execute("UPDATE meters SET code = 'api_calls_gone' WHERE tenant_id = %s", (tenant_id,))
    register_finalization_hook(GRACE)
    try:
        with pytest.raises(Rejected) as refused:
            # The billing hook runs first and refuses the same customer; the advance stops there.
            advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 3))
        assert refused.value.rejection.code == "meter_not_found"
        assert [invoice.status for invoice in _invoices(tally, tenant_id, metered)] == ["draft"]
        with psycopg_transaction(tally.engine) as connection:
            connection.execute("UPDATE meters SET code = 'api_calls' WHERE tenant_id = %s", (tenant_id,))
        # The same advance again: the unfinished one is resumed, every hook runs, the draft is final.
        advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 3))
        assert [invoice.status for invoice in _invoices(tally, tenant_id, metered)] == ["open"]
    finally:
        unregister_advance_hook(HOOK_NAME)


def test_a_draft_a_backdated_change_makes_younger_is_left_until_its_new_closing(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    """Due when gathered (January 1st's fee), but the refresh takes that fee back: what is left fell
    due within the grace period, so the draft waits."""
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    first = subscribe(tally, tenant_id, customer_id)
    create_subscription(
        tally.engine,
        tally.clock,
        tenant_id,
        SubscriptionInput(customer_id=customer_id, plan=PlanChoice(plan_code="pro"), start_at=at(1, 2, 10)),
    )
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 2, 12))
    (draft,) = _invoices(tally, tenant_id, customer_id)
    assert draft.total_minor == 3000 + 9000
    cancel_subscription(tally.engine, tally.clock, tenant_id, first, Cancellation(effective=at(1, 1)))

    result = finalize_due_invoices(tally.engine, tally.clock, grace_period=GRACE, tenant_id=tenant_id)
    assert [(item.outcome, item.invoice_id) for item in result.customers] == [(Outcome.NOT_DUE_AFTER_REFRESH, draft.id)]
    (refreshed,) = _invoices(tally, tenant_id, customer_id)
    assert (refreshed.status, refreshed.total_minor) == ("draft", 9000)
