"""The invoicing invariants in the integrity job: they pass on real billing (fees, usage, a credit
note, payments, a void) and report each kind of violation put into the data behind the code's back."""

from __future__ import annotations

import uuid

import psycopg

from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.advance_test_clock import advance_test_clock
from tally.app.check_ledger_integrity import run_integrity_check
from tally.app.finalize_invoice import finalize_invoice
from tally.app.issue_credit_note import CreditNoteInput, issue_invoice_credit_note
from tally.app.record_invoice_payment import PaymentInput, record_invoice_payment
from tally.app.void_invoice import void_invoice
from tally.bootstrap import Tally
from tests.invoicing_support import at, calls, customer_on_clock, setup_catalog, subscribe

INVOICE_CHECKS = {
    "receivable_must_equal_open_invoices",
    "invoice_must_be_posted_once",
    "usage_must_be_billed_once",
    "late_usage_must_reach_an_invoice",
}


def _draft(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> uuid.UUID:
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(
            "SELECT id FROM invoices WHERE tenant_id = %s AND customer_id = %s AND status = 'draft'",
            (tenant_id, customer_id),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _found(tally: Tally, tenant_id: uuid.UUID) -> dict[str, list[str]]:
    report = run_integrity_check(tally.engine, tally.clock, tenant_id)
    found: dict[str, list[str]] = {}
    for discrepancy in report.discrepancies:
        found.setdefault(discrepancy.check, []).append(discrepancy.object_id)
    return found


def _billed(tally: Tally, tenant_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    """(customer, clock, January's invoice paid after a credit note, February's draft with January's usage)."""
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    calls(tally, tenant_id, external, [at(1, 2), at(1, 3), at(1, 20)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 10))
    january = _draft(tally, tenant_id, customer_id)
    finalize_invoice(tally.engine, tally.clock, tenant_id, january)
    issue_invoice_credit_note(
        tally.engine, tally.clock, tenant_id, january, CreditNoteInput(amount_minor=500, reason="other")
    )
    record_invoice_payment(tally.engine, tally.clock, tenant_id, january, PaymentInput(amount_minor=2500))
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1))
    return customer_id, clock_id, january, _draft(tally, tenant_id, customer_id)


def test_real_billing_passes_and_a_receivable_out_of_step_is_reported(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, clock_id, _, february = _billed(tally, tenant_id)
    finalize_invoice(tally.engine, tally.clock, tenant_id, february)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(3, 1))
    march = _draft(tally, tenant_id, customer_id)
    finalize_invoice(tally.engine, tally.clock, tenant_id, march)
    void_invoice(tally.engine, tally.clock, tenant_id, march)
    report = run_integrity_check(tally.engine, tally.clock, tenant_id)
    assert report.ok, report.discrepancies
    assert report.checks_run >= 13

    # February says it was partly paid, but no payment reached the ledger.
    with psycopg.connect(tally.database_url, autocommit=True) as connection:
        connection.execute("UPDATE invoices SET amount_paid_minor = 100 WHERE id = %s", (february,))
    found = _found(tally, tenant_id)
    assert set(found) == {"receivable_must_equal_open_invoices"}
    assert found["receivable_must_equal_open_invoices"][0].endswith(":USD")


def test_a_posting_too_many_or_on_a_draft_is_reported(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, _, january, february = _billed(tally, tenant_id)
    assert not set(_found(tally, tenant_id)) & INVOICE_CHECKS
    with psycopg.connect(tally.database_url, autocommit=True) as connection:
        for invoice_id in (january, february):  # a second posting of a finalized one; one of a draft
            connection.execute(
                """INSERT INTO ledger_transactions (id, tenant_id, idempotency_key, kind, template, effective_at,
                                                    entry_count)
                   VALUES (gen_random_uuid(), %s, %s, 'posted', 'invoice_finalized', now(), 2)""",
                (tenant_id, f"invoice:{invoice_id}:finalized:7"),
            )
    found = _found(tally, tenant_id)
    assert sorted(found["invoice_must_be_posted_once"]) == sorted([str(january), str(february)])


def test_usage_billed_in_two_lines_is_reported(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, _, _, february = _billed(tally, tenant_id)
    # January's usage billed a second time, under another price, on the same invoice.
    with psycopg.connect(tally.database_url, autocommit=True) as connection:
        connection.execute(
            """INSERT INTO invoice_lines (id, tenant_id, invoice_id, customer_id, currency, subscription_id, price_id,
                   service_start, service_end, group_values, kind, reference, sequence, position, amount_minor,
                   amount_minor_total, amount_minor_billed_prior, quantity, product, description, due_at, provisional,
                   explanation, created_at)
               SELECT gen_random_uuid(), tenant_id, invoice_id, customer_id, currency, subscription_id, 'copied',
                   service_start, service_end, group_values, kind, reference, sequence, 99, amount_minor,
                   amount_minor_total, amount_minor_billed_prior, quantity, product, description, due_at, provisional,
                   explanation, created_at
               FROM invoice_lines WHERE invoice_id = %s AND kind = 'usage'""",
            (february,),
        )
    assert "usage_must_be_billed_once" not in _found(tally, tenant_id)  # a draft bills nothing yet
    finalize_invoice(tally.engine, tally.clock, tenant_id, february)
    found = _found(tally, tenant_id)
    assert found["usage_must_be_billed_once"] == [str(customer_id)]
    assert not {"receivable_must_equal_open_invoices", "invoice_must_be_posted_once"} & set(found)


def test_late_usage_resolved_beyond_the_horizon_is_reported(tally: Tally, tenant_id: uuid.UUID) -> None:
    """A flag resolved `beyond_horizon` is usage never billed: the check names it."""
    setup_catalog(tally, tenant_id)
    customer_id, _, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    with psycopg_transaction(tally.engine) as connection:
        flag = uuid.uuid4()
        connection.execute(
            """INSERT INTO late_usage (id, tenant_id, customer, event_id, "timestamp", kind, flagged_at,
                                       resolved_at, resolution)
               VALUES (%s, %s, %s, 'e-1', %s, 'late_event', %s, %s, 'beyond_horizon')""",
            (flag, tenant_id, external, at(1, 5), at(4, 1), at(6, 1)),
        )
    assert _found(tally, tenant_id).get("late_usage_must_reach_an_invoice") == [str(flag)]
