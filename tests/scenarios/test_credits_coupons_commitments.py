"""Four months of one customer on a test clock with every invoicing term at once: a prepaid grant
and a promotional grant (different priorities, scopes and expiries), a 20 %-off coupon on the fee
for two periods, a minimum commitment over the quarter (trued up when it ends) and a 10 % tax rate.

Checked: each invoice's totals, the burn-down order (the promotional grant, priority 0 and usage
only, pays usage; the prepaid one pays the rest), breakage at each expiry posted once (promotion
expense given back, breakage revenue booked), every grant's remaining balance equal to its ledger
account and to what was granted less what invoices applied and what expired, the ledger balanced,
and a further billing run and expiry run changing nothing.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from tally.adapters.postgres import catalog as catalog_store
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres import invoicing_terms as term_store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.advance_test_clock import advance_test_clock
from tally.app.create_commitment import CommitmentInput, create_commitment
from tally.app.create_coupon import CouponInput, create_coupon
from tally.app.create_tax_rate import TaxRateInput, create_tax_rate
from tally.app.expire_credit_grants import expire_credit_grants
from tally.app.finalize_invoice import finalize_invoice
from tally.app.grant_credits import GrantInput, grant_credits
from tally.app.invoice_queries import get_invoice
from tally.app.record_invoice_payment import PaymentInput, record_invoice_payment
from tally.app.redeem_coupon import RedemptionInput, redeem_coupon
from tally.app.run_billing import run_billing
from tally.bootstrap import Tally
from tests.invoicing_support import at, balance, calls, count_rows, customer_on_clock, setup_catalog, subscribe


def _finalize(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> uuid.UUID:
    with psycopg_transaction(tally.engine) as connection:
        draft = store.draft_of(connection, tenant_id, customer_id, "USD")
    assert draft is not None
    invoice = finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    if invoice.amount_due_minor:
        record_invoice_payment(
            tally.engine, tally.clock, tenant_id, draft.id, PaymentInput(amount_minor=invoice.amount_due_minor)
        )
    return draft.id


def _ledger_balanced(tally: Tally, tenant_id: uuid.UUID) -> bool:
    with psycopg_transaction(tally.engine) as connection:
        rows = connection.execute(
            """SELECT unit_code, sum(debits_posted) - sum(credits_posted) FROM ledger_accounts
               WHERE tenant_id = %s GROUP BY unit_code""",
            (tenant_id,),
        ).fetchall()
    return all(row[1] == 0 for row in rows) and bool(rows)


def test_grants_coupon_commitment_and_tax_over_four_months(tally: Tally, tenant_id: uuid.UUID) -> None:
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    with psycopg_transaction(tally.engine) as connection:
        fee = catalog_store.get_active_price(connection, tenant_id, "basic_fee")
    assert fee is not None
    create_tax_rate(
        tally.engine, tally.clock, tenant_id, TaxRateInput(name="VAT", percent=Decimal(10), customer_id=customer_id)
    )
    coupon = create_coupon(
        tally.engine,
        tally.clock,
        tenant_id,
        CouponInput(
            code="fee20", duration="repeating", duration_periods=2, percent_off=Decimal(20), price_ids=(fee.id,)
        ),
    )
    redeem_coupon(tally.engine, tally.clock, tenant_id, RedemptionInput(coupon_id=coupon.id, customer_id=customer_id))
    prepaid = grant_credits(
        tally.engine,
        tally.clock,
        tenant_id,
        GrantInput(customer_id=customer_id, kind="prepaid", amount_minor=9000, priority=1, expires_at=at(3, 15)),
    )
    promotional = grant_credits(
        tally.engine,
        tally.clock,
        tenant_id,
        GrantInput(
            customer_id=customer_id,
            kind="promotional",
            amount_minor=1000,
            priority=0,
            scope_kind="usage",
            expires_at=at(2, 15),
        ),
    )
    create_commitment(
        tally.engine,
        tally.clock,
        tenant_id,
        CommitmentInput(customer_id=customer_id, minimum_minor=10000, period_start=at(1, 1), period_end=at(4, 1)),
    )
    # Granting posts at once: prepaid against cash, promotional against the promotion expense.
    assert balance(tally, tenant_id, "cash") == 9000
    assert balance(tally, tenant_id, "promotions") == 1000

    subscribe(tally, tenant_id, customer_id, "basic")
    run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,))
    invoices = [_finalize(tally, tenant_id, customer_id)]
    for moment, events in ((at(2, 1), 3), (at(2, 15), 0), (at(3, 1), 2), (at(3, 15), 0), (at(4, 1), 4)):
        previous = at(moment.month, 1) if moment.day == 15 else at(moment.month - 1, 1)
        calls(tally, tenant_id, external, [at(previous.month, 5 + day, 12) for day in range(events)])
        advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, moment)
        if moment.day == 1:
            invoices.append(_finalize(tally, tenant_id, customer_id))

    views = [get_invoice(tally.engine, tenant_id, invoice_id) for invoice_id in invoices]
    for view in views:
        assert view.invoice.total_minor == (
            sum(line.amount_minor for line in view.lines) - view.invoice.credits_minor + view.invoice.tax_minor
        )
    summary = [
        (v.invoice.subtotal_minor, v.invoice.discount_minor, v.invoice.credits_minor, v.invoice.tax_minor)
        for v in views
    ]
    assert summary == [
        (3000, -600, 2400, 0),  # Jan: fee less 20 %, paid by the prepaid grant
        (3003, -600, 2403, 0),  # Feb: fee less 20 % (prepaid), January's 3 calls (promotional)
        (3002, 0, 3002, 0),  # Mar: the coupon is over; the promotional grant expired on Feb 15
        (3000 + 4 + 2191, 0, 0, 520),  # Apr: true-up of 100 − 78.09, tax 10 % of 51.95
    ]
    assert [v.invoice.total_minor for v in views] == [0, 0, 0, 5715]
    true_up = [line for line in views[3].lines if line.key.kind.value == "minimum_commitment"]
    assert [line.amount_minor for line in true_up] == [2191]

    # Burn-down on February's invoice: the promotional grant (priority 0) paid the usage only.
    credits = {
        posting["metadata"][0][1]: posting
        for posting in views[1].invoice.postings
        if posting["template"] == "credits_applied"
    }
    assert set(credits) == {str(prepaid.id), str(promotional.id)}
    assert [e["amount"] for e in credits[str(promotional.id)]["entries"] if e["direction"] == "debit"] == [3]

    # Breakage: each remainder expired once, at its expiry.
    assert balance(tally, tenant_id, "promotions") == 3  # 1000 granted, 997 given back on Feb 15
    assert balance(tally, tenant_id, "breakage_revenue") == 9000 - 2400 - 2400 - 3002
    with psycopg_transaction(tally.engine) as connection:
        grants = {row.id: row for row in term_store.list_grants(connection, tenant_id, _page()).items}
    for grant in grants.values():
        ledger = balance(tally, tenant_id, f"customer_credit.grant_{grant.id}", external)
        assert grant.remaining_minor == ledger == 0
    applied = sum(v.invoice.credits_minor for v in views)
    assert applied + 997 + 1198 == 9000 + 1000
    assert _ledger_balanced(tally, tenant_id)
    assert balance(tally, tenant_id, "accounts_receivable", external) == 0

    # Nothing more to do: a billing run and an expiry run write nothing.
    before = (count_rows(tally, tenant_id, "ledger_transactions"), count_rows(tally, tenant_id, "invoice_lines"))
    assert run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,)).changed == 0
    assert expire_credit_grants(tally.engine, tally.clock, tenant_id=tenant_id).grants_expired == 0
    assert (
        expire_credit_grants(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,)).grants_expired
        == 0
    )
    after = (count_rows(tally, tenant_id, "ledger_transactions"), count_rows(tally, tenant_id, "invoice_lines"))
    assert after == before


def _page():  # type: ignore[no-untyped-def]
    from tally.adapters.pagination import PageRequest

    return PageRequest(limit=100)
