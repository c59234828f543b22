from __future__ import annotations

import uuid

from tally.app.check_ledger_integrity import run_integrity_check
from tally.app.customer_queries import list_customers
from tally.app.ledger_queries import aggregated_balances
from tally.app.load_demo import load_demo
from tally.bootstrap import Tally


def test_demo_loads_once_and_keeps_the_ledger_consistent(tally: Tally, tenant_id: uuid.UUID) -> None:
    first = load_demo(tally.engine, tally.clock, tenant_id)
    second = load_demo(tally.engine, tally.clock, tenant_id)
    assert first.transactions_posted == 8 and first.transactions_replayed == 0
    assert second.transactions_posted == 0 and second.transactions_replayed == 8
    balances = {
        (group.key["code"], group.key["customer"], group.unit_code): group.balances
        for group in aggregated_balances(tally.engine, tenant_id, ["code", "customer"])
    }
    acme_credit = balances[("customer_credit", "acme", "USD")]
    assert acme_credit.credits_posted - acme_credit.debits_posted == 38_000
    assert run_integrity_check(tally.engine, tally.clock, tenant_id).ok
    customers = list_customers(tally.engine, tenant_id).items
    assert sorted(customer.external_id for customer in customers) == ["acme", "globex", "initech"]
