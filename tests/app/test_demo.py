"""The demo, loaded into a fresh tenant: three months of five customers on a test clock give finalized
invoices whose totals are the sum of their lines, a balanced ledger whose receivables equal the open
invoices, the story each customer is there to tell, and nothing more when it is loaded again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tally.adapters.pagination import PageRequest
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.check_ledger_integrity import run_integrity_check
from tally.app.customer_queries import get_customer_by_external_id
from tally.app.invoice_queries import get_invoice, list_invoices
from tally.app.load_demo import DEMO_CUSTOMERS, DEMO_END, load_demo, usage_events
from tally.bootstrap import Tally
from tests.invoicing_support import balance

# What each load writes, table by table: a second load must leave every count as it was.
TABLES = (
    "customers",
    "subscriptions",
    "invoices",
    "invoice_lines",
    "invoice_payments",
    "ledger_transactions",
    "ledger_entries",
    "coupon_redemptions",
    "credit_grants",
    "events",
)


def _counts(tally: Tally, tenant_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    with psycopg_transaction(tally.engine) as connection:
        for table in TABLES:
            row = connection.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", (tenant_id,)).fetchone()
            assert row is not None
            counts[table] = int(row[0])
    return counts


def test_the_demo_bills_three_months_and_loads_once(tally: Tally, tenant_id: uuid.UUID) -> None:
    first = load_demo(tally.engine, tally.clock, tenant_id)
    assert first.clock_time == DEMO_END
    assert first.writes > 0 and first.events_stored > 0

    invoices = list_invoices(tally.engine, tenant_id, PageRequest(limit=100)).items
    # Four invoices each (January 1, February 1, March 1, April 1), all finalized, numbered without gaps.
    assert len(invoices) == 4 * len(DEMO_CUSTOMERS)
    assert {invoice.status for invoice in invoices} <= {"open", "paid"}
    assert sorted(invoice.number or "" for invoice in invoices) == [f"INV-{n:06d}" for n in range(1, 21)]
    for invoice in invoices:
        view = get_invoice(tally.engine, tenant_id, invoice.id)
        lines = sum(line.amount_minor for line in view.lines)
        assert invoice.subtotal_minor + invoice.discount_minor == lines, invoice.number
        assert invoice.total_minor == lines - invoice.credits_minor + invoice.tax_minor, invoice.number

    # The ledger balances, per transaction and per unit, and its integrity check finds nothing.
    with psycopg_transaction(tally.engine) as connection:
        unbalanced = connection.execute(
            """SELECT transaction_id FROM ledger_entries WHERE tenant_id = %s GROUP BY transaction_id, unit_code
               HAVING sum(CASE WHEN direction = 'debit' THEN amount ELSE -amount END) <> 0""",
            (tenant_id,),
        ).fetchall()
    assert unbalanced == []
    assert run_integrity_check(tally.engine, tally.clock, tenant_id).ok

    # Each customer's receivable is what its open invoices still ask, and the summary says the same.
    rows = {row.external_id: row for row in first.customers}
    for story in DEMO_CUSTOMERS:
        customer = get_customer_by_external_id(tally.engine, tenant_id, story.external_id)
        owed = sum(
            invoice.amount_remaining_minor
            for invoice in invoices
            if invoice.customer_id == customer.id and invoice.status == "open"
        )
        assert balance(tally, tenant_id, "accounts_receivable", story.external_id, story.currency) == owed
        assert rows[story.external_id].open_minor == owed
        row = rows[story.external_id]
        assert row.invoices == 4
        # No tax and no overpayment in the demo: what was charged is discounted, paid by credits, paid or owed.
        assert row.charges_minor - row.discount_minor - row.credits_used_minor == row.paid_minor + row.open_minor

    # The stories: the upgrade, the coupon, the prepaid credits, the customer who stopped paying.
    assert rows["lumen-labs"].plan == "team"
    assert rows["brightwave"].discount_minor > 0
    assert all(rows[name].discount_minor == 0 for name in rows if name != "brightwave")
    assert rows["pinecrest"].credits_used_minor > 0 and rows["pinecrest"].credits_left_minor > 0
    assert rows["pinecrest"].credits_used_minor + rows["pinecrest"].credits_left_minor == 300_000
    assert rows["fjord-analytics"].currency == "EUR"
    quarry = get_customer_by_external_id(tally.engine, tenant_id, "quarry-robotics")
    quarry_open = [i for i in invoices if i.customer_id == quarry.id and i.status == "open"]
    assert len(quarry_open) == 2  # March 1 and April 1
    everyone_else = [i for i in invoices if i.customer_id != quarry.id and i.status == "open"]
    assert all(i.issued_at == datetime(2026, 4, 1, tzinfo=UTC) for i in everyone_else)
    lumen = get_customer_by_external_id(tally.engine, tenant_id, "lumen-labs")
    lumen_kinds = {
        line.key.kind.value
        for invoice in invoices
        if invoice.customer_id == lumen.id
        for line in get_invoice(tally.engine, tenant_id, invoice.id).lines
    }
    assert {"fixed_fee", "fixed_fee_credit", "usage"} <= lumen_kinds  # the upgrade was prorated

    # Loading again writes nothing and answers the same summary.
    before = _counts(tally, tenant_id)
    second = load_demo(tally.engine, tally.clock, tenant_id)
    assert second.writes == 0 and second.events_stored == 0
    assert _counts(tally, tenant_id) == before
    assert second.customers == first.customers


def test_usage_is_the_same_on_every_call_and_for_any_stretch() -> None:
    story = DEMO_CUSTOMERS[0]
    january = usage_events(story, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert january == usage_events(story, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    halves = usage_events(story, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC)) + usage_events(
        story, datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    )
    assert halves == january
    assert len({event["id"] for event in january}) == len(january)
