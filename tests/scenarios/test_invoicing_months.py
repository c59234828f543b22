"""Five months of one customer on a test clock: a fixed fee in advance, usage in arrears, an upgrade
mid-month (prorated), every draft finalized and paid as the months pass. At the end: each invoice's
total is the sum of its lines, the ledger balances, the receivable equals what open invoices still
ask, every usage event lies in exactly one billed usage window, and a further run changes nothing."""

from __future__ import annotations

import uuid
from datetime import datetime

from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_items import PlanChoice
from tally.app.advance_test_clock import advance_test_clock
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.app.finalize_invoice import finalize_invoice
from tally.app.invoice_queries import get_invoice
from tally.app.record_invoice_payment import PaymentInput, record_invoice_payment
from tally.app.run_billing import run_billing
from tally.bootstrap import Tally
from tests.invoicing_support import at, balance, calls, count_rows, customer_on_clock, setup_catalog, subscribe


def _finalize_and_pay(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID, pay: bool = True) -> None:
    with psycopg_transaction(tally.engine) as connection:
        draft = store.draft_of(connection, tenant_id, customer_id, "USD")
    assert draft is not None
    invoice = finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    if pay and invoice.amount_due_minor:
        record_invoice_payment(
            tally.engine, tally.clock, tenant_id, draft.id, PaymentInput(amount_minor=invoice.amount_due_minor)
        )


def test_five_months_of_fees_usage_and_an_upgrade(tally: Tally, tenant_id: uuid.UUID) -> None:
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscription_id = subscribe(tally, tenant_id, customer_id, "basic")
    run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,))
    _finalize_and_pay(tally, tenant_id, customer_id)  # January's fee: $30

    events: list[datetime] = []
    usage_days = {1: [3, 17, 30], 2: [1, 14], 3: [2, 20, 28, 31], 4: [9]}
    for month in (1, 2, 3, 4):
        moments = [at(month, day, 12) for day in usage_days[month]]
        calls(tally, tenant_id, external, moments)
        events.extend(moments)
        if month == 3:
            advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(3, 16))
            change_subscription_items(
                tally.engine, tally.clock, tenant_id, subscription_id, ItemsChange(plan=PlanChoice(plan_code="pro"))
            )
        advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(month + 1, 1))
        # The last month's draft stays open (finalized, not paid), so the receivable is not zero.
        _finalize_and_pay(tally, tenant_id, customer_id, pay=month != 4)

    with psycopg_transaction(tally.engine) as connection:
        invoices = [
            store.get_invoice(connection, tenant_id, row[0])
            for row in connection.execute(
                "SELECT id FROM invoices WHERE tenant_id = %s ORDER BY number", (tenant_id,)
            ).fetchall()
        ]
    assert [invoice.number for invoice in invoices if invoice] == [f"INV-{n:06d}" for n in range(1, 6)]
    views = [get_invoice(tally.engine, tenant_id, invoice.id) for invoice in invoices if invoice]
    for view in views:
        assert view.invoice.total_minor == sum(line.amount_minor for line in view.lines)
    lines = [line for view in views for line in view.lines]

    # Invoice 4 (April 1): 16 days of basic credited back, 16 days of pro charged (prorated by the
    # second), March's usage and April's pro fee.
    march = [(line.key.kind.value, line.amount_minor) for line in views[3].lines if line.key.kind.value != "usage"]
    assert ("fixed_fee_credit", -1548) in march  # $30 × 16/31
    assert ("fixed_fee", 4645) in march  # $90 × 16/31
    assert [view.invoice.total_minor for view in views] == [3000, 3003, 3002, -1548 + 4645 + 4 + 9000, 9000 + 1]

    # Every usage event lies in exactly one billed usage window (first lines; corrections share it).
    windows = [
        (datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"]))
        for line in lines
        if line.key.kind.value == "usage" and line.sequence == 0
        for window in line.explanation["usage"]["windows"]
    ]
    for moment in events:
        assert sum(1 for start, end in windows if start <= moment < end) == 1, moment

    # The ledger: every transaction balances; the receivable is what open invoices still ask.
    with psycopg_transaction(tally.engine) as connection:
        unbalanced = connection.execute(
            """SELECT transaction_id FROM ledger_entries WHERE tenant_id = %s GROUP BY transaction_id, unit_code
               HAVING sum(CASE WHEN direction = 'debit' THEN amount ELSE -amount END) <> 0""",
            (tenant_id,),
        ).fetchall()
    assert unbalanced == []
    open_remaining = sum(view.invoice.amount_remaining_minor for view in views if view.invoice.status == "open")
    assert open_remaining == 9001
    assert balance(tally, tenant_id, "accounts_receivable", external) == open_remaining
    assert balance(tally, tenant_id, "cash") == sum(view.invoice.amount_paid_minor for view in views)

    # Billing again, at the same moment, changes nothing.
    before = (count_rows(tally, tenant_id, "invoices"), count_rows(tally, tenant_id, "invoice_lines"))
    assert not run_billing(tally.engine, tally.clock, tenant_id=tenant_id).changed
    assert (count_rows(tally, tenant_id, "invoices"), count_rows(tally, tenant_id, "invoice_lines")) == before
