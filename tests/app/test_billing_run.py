"""The billing run on real PostgreSQL: drafts created and refreshed, nothing billed twice (again,
or by concurrent runs), finalize posts exactly once with a gapless number, and every lifecycle
refusal leaves nothing half-written."""

from __future__ import annotations

import threading
import uuid

import pytest

from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.billing_batches import billing_run_lock
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.advance_test_clock import advance_test_clock
from tally.app.finalize_invoice import finalize_invoice
from tally.app.invoice_queries import get_invoice
from tally.app.issue_credit_note import CreditNoteInput, issue_invoice_credit_note
from tally.app.mark_invoice_uncollectible import mark_invoice_uncollectible
from tally.app.record_invoice_payment import PaymentInput, record_invoice_payment
from tally.app.run_billing import bill_customer, run_billing
from tally.app.tenants import create_tenant
from tally.app.void_invoice import void_invoice
from tally.bootstrap import Tally
from tally.core.rejections import Rejected
from tests.invoicing_support import (
    at,
    balance,
    calls,
    count_rows,
    customer_on_clock,
    setup_catalog,
    subscribe,
)


def _draft(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> store.InvoiceRow:
    with psycopg_transaction(tally.engine) as connection:
        draft = store.draft_of(connection, tenant_id, customer_id, "USD")
    assert draft is not None
    return draft


def test_a_run_drafts_what_is_due_and_a_second_run_changes_nothing(tally: Tally, tenant_id: uuid.UUID) -> None:
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    first = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert first.created and first.changed
    draft = _draft(tally, tenant_id, customer_id)
    assert (draft.status, draft.total_minor, draft.amount_due_minor) == ("draft", 3000, 3000)
    lines = get_invoice(tally.engine, tenant_id, draft.id).lines
    assert [(line.key.kind.value, line.amount_minor) for line in lines] == [("fixed_fee", 3000)]

    again = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert not again.changed and again.invoice_id == draft.id
    assert count_rows(tally, tenant_id, "invoice_lines") == 1
    assert _draft(tally, tenant_id, customer_id).updated_at == draft.updated_at

    # A month later the usage of January and February's fee are due: the draft is refreshed.
    calls(tally, tenant_id, external, [at(1, 5), at(1, 20), at(1, 31, 23)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1, 1))
    refreshed = _draft(tally, tenant_id, customer_id)
    assert refreshed.id == draft.id
    kinds = sorted(
        (line.key.kind.value, line.amount_minor) for line in get_invoice(tally.engine, tenant_id, draft.id).lines
    )
    assert kinds == [("fixed_fee", 3000), ("fixed_fee", 3000), ("usage", 3)]
    assert refreshed.total_minor == 6003
    assert not run_billing(tally.engine, tally.clock, tenant_id=tenant_id).changed


def test_finalize_numbers_posts_once_and_the_next_run_bills_only_what_is_new(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    draft = _draft(tally, tenant_id, customer_id)
    transactions = count_rows(tally, tenant_id, "ledger_transactions")

    final = finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    assert (final.status, final.number) == ("open", "INV-000001")
    assert balance(tally, tenant_id, "accounts_receivable", external) == 3000
    assert balance(tally, tenant_id, "deferred_revenue") == 3000
    assert count_rows(tally, tenant_id, "ledger_transactions") == transactions + 1

    with pytest.raises(Rejected) as refused:
        finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    assert refused.value.rejection.code == "invoice_must_be_draft"
    assert count_rows(tally, tenant_id, "ledger_transactions") == transactions + 1

    # Nothing new is due: no draft. In February, only February's fee and January's usage.
    assert bill_customer(tally.engine, tally.clock, tenant_id, customer_id).invoice_id is None
    calls(tally, tenant_id, external, [at(1, 10)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1))
    second = finalize_invoice(tally.engine, tally.clock, tenant_id, _draft(tally, tenant_id, customer_id).id)
    assert (second.number, second.total_minor) == ("INV-000002", 3001)
    assert balance(tally, tenant_id, "accounts_receivable", external) == 6001


def test_payments_credit_notes_void_and_uncollectible(tally: Tally, tenant_id: uuid.UUID) -> None:
    setup_catalog(tally, tenant_id)
    customer_id, _, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    invoice_id = _draft(tally, tenant_id, customer_id).id

    with pytest.raises(Rejected) as draft_paid:
        record_invoice_payment(tally.engine, tally.clock, tenant_id, invoice_id, PaymentInput(amount_minor=100))
    assert draft_paid.value.rejection.code == "invoice_must_be_finalized"
    finalize_invoice(tally.engine, tally.clock, tenant_id, invoice_id)

    for amount, code in ((0, "payment_amount_must_be_positive"), (-5, "payment_amount_must_be_positive")):
        with pytest.raises(Rejected) as bad:
            record_invoice_payment(tally.engine, tally.clock, tenant_id, invoice_id, PaymentInput(amount_minor=amount))
        assert bad.value.rejection.code == code
    with pytest.raises(Rejected) as too_much:
        issue_invoice_credit_note(
            tally.engine, tally.clock, tenant_id, invoice_id, CreditNoteInput(amount_minor=3001, reason="other")
        )
    assert too_much.value.rejection.code == "credit_note_exceeds_creditable_amount"
    assert count_rows(tally, tenant_id, "credit_notes") == 0

    invoice, _ = issue_invoice_credit_note(
        tally.engine, tally.clock, tenant_id, invoice_id, CreditNoteInput(amount_minor=1000, reason="billing_error")
    )
    assert (invoice.status, invoice.amount_remaining_minor) == ("open", 2000)
    assert balance(tally, tenant_id, "accounts_receivable", external) == 2000
    with pytest.raises(Rejected) as with_note:
        void_invoice(tally.engine, tally.clock, tenant_id, invoice_id)
    assert with_note.value.rejection.code == "invoice_must_have_no_credit_notes"

    uncollectible = mark_invoice_uncollectible(tally.engine, tally.clock, tenant_id, invoice_id)
    assert uncollectible.status == "uncollectible"
    paid, payment = record_invoice_payment(
        tally.engine, tally.clock, tenant_id, invoice_id, PaymentInput(amount_minor=2500, reference="wire 42")
    )
    assert (paid.status, payment.applied_minor, payment.overpaid_minor) == ("paid", 2000, 500)
    assert balance(tally, tenant_id, "accounts_receivable", external) == 0
    assert balance(tally, tenant_id, "customer_credit.balance", external) == 500
    with pytest.raises(Rejected) as paid_void:
        void_invoice(tally.engine, tally.clock, tenant_id, invoice_id)
    assert paid_void.value.rejection.code == "invoice_must_not_be_paid"


def test_void_reverses_every_posting(tally: Tally, tenant_id: uuid.UUID) -> None:
    setup_catalog(tally, tenant_id)
    customer_id, _, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    invoice_id = _draft(tally, tenant_id, customer_id).id
    finalize_invoice(tally.engine, tally.clock, tenant_id, invoice_id)
    voided = void_invoice(tally.engine, tally.clock, tenant_id, invoice_id)
    assert voided.status == "void"
    assert balance(tally, tenant_id, "accounts_receivable", external) == 0
    assert balance(tally, tenant_id, "deferred_revenue") == 0
    # A void forgives: the run does not bill the same fee again.
    assert bill_customer(tally.engine, tally.clock, tenant_id, customer_id).invoice_id is None
    with pytest.raises(Rejected) as twice:
        void_invoice(tally.engine, tally.clock, tenant_id, invoice_id)
    assert twice.value.rejection.code == "invoice_is_void"


def test_concurrent_runs_and_finalizes_bill_each_thing_once(tally: Tally, tenant_id: uuid.UUID) -> None:
    setup_catalog(tally, tenant_id)
    customers = []
    for _ in range(3):
        customer_id, _, external = customer_on_clock(tally, tenant_id, at(1, 1))
        subscribe(tally, tenant_id, customer_id)
        calls(tally, tenant_id, external, [at(1, 2), at(1, 3)])
        customers.append(customer_id)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=tuple(customers))
                for customer_id in customers:
                    with psycopg_transaction(tally.engine) as connection:
                        draft = store.draft_of(connection, tenant_id, customer_id, "USD")
                    if draft is not None:
                        try:
                            finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
                        except Rejected as rejected:  # another thread finalized it first
                            assert rejected.rejection.code in {"invoice_must_be_draft", "invoice_not_found"}
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with psycopg_transaction(tally.engine) as connection:
        numbers = connection.execute(
            "SELECT number FROM invoices WHERE tenant_id = %s AND status <> 'draft' ORDER BY number", (tenant_id,)
        ).fetchall()
        per_customer = connection.execute(
            """SELECT customer_id, count(*), sum(amount_minor) FROM invoice_lines WHERE tenant_id = %s
               GROUP BY customer_id""",
            (tenant_id,),
        ).fetchall()
    # One fee line per customer, once, whatever the interleaving; numbers 1..n without a gap.
    assert sorted(count for _, count, _ in per_customer) == [1, 1, 1]
    assert all(total == 3000 for _, _, total in per_customer)
    assert [row[0] for row in numbers] == [f"INV-{n:06d}" for n in range(1, len(numbers) + 1)]
    assert len(numbers) == 3


def test_an_overlapping_run_over_every_customer_is_refused_at_once(tally: Tally, tenant_id: uuid.UUID) -> None:
    """While a run over every customer due of the tenant is under way, another one answers
    `billing_run_in_progress` and writes nothing; one customer's run, another tenant's run, and a run
    after the first ended all go ahead."""
    setup_catalog(tally, tenant_id)
    customer_id, _, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    other = create_tenant(tally.engine, f"other-{uuid.uuid4().hex[:8]}")

    def drafts() -> int:
        with psycopg_transaction(tally.engine) as connection:
            row = connection.execute("SELECT count(*) FROM invoices WHERE tenant_id = %s", (tenant_id,)).fetchone()
        assert row is not None
        return int(row[0])

    with billing_run_lock(tally.engine, tenant_id) as held:
        assert held
        with pytest.raises(Rejected) as refused:
            run_billing(tally.engine, tally.clock, tenant_id=tenant_id)
        assert refused.value.rejection.code == "billing_run_in_progress"
        assert drafts() == 0
        assert run_billing(tally.engine, tally.clock, tenant_id=other).customers == ()
        with billing_run_lock(tally.engine, tenant_id) as again:
            assert not again  # the lock is not taken twice, even by its own process
        (named,) = run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,)).customers
        assert named.created
    assert drafts() == 1
    assert run_billing(tally.engine, tally.clock, tenant_id=tenant_id).changed == 0
