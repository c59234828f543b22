"""Demo data for a new installation: a small ledger a person can explore through the API.

Every posting uses a fixed idempotency key, so loading the demo twice changes nothing: the second
run is all replays. Later issues grow the demo (catalog, usage, invoices).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.app.create_customer import CustomerInput, create_customer
from tally.app.customer_queries import find_customer_by_external_id
from tally.app.ledger_accounts import create_unit
from tally.app.post_ledger_template import post_template
from tally.app.resolve_pending_transaction import ResolutionInput, resolve_pending_transaction
from tally.core.ledger.templates import (
    CreditsApplied,
    CreditsPurchased,
    PromotionalCreditsGranted,
    credits_applied,
    credits_purchased,
    promotional_credits_granted,
)

DEMO_CUSTOMERS = ("acme", "globex", "initech")
# The demo customers' details; their external ids are what the demo ledger and usage name them by.
_DEMO_CUSTOMER_DETAILS = {
    "acme": ("Acme Corporation", "billing@acme.example", "America/Los_Angeles"),
    "globex": ("Globex", "ap@globex.example", "Europe/Berlin"),
    "initech": ("Initech", "finance@initech.example", "America/Chicago"),
}


@dataclass(frozen=True, slots=True)
class DemoSummary:
    transactions_posted: int
    transactions_replayed: int


def load_demo(engine: Engine, clock: Clock, tenant_id: uuid.UUID) -> DemoSummary:
    create_unit(engine, tenant_id, "CREDITS", 0, "AI credits")
    for customer in DEMO_CUSTOMERS:
        if find_customer_by_external_id(engine, tenant_id, customer) is None:
            name, email, timezone = _DEMO_CUSTOMER_DETAILS[customer]
            create_customer(
                engine,
                clock,
                tenant_id,
                CustomerInput(external_id=customer, name=name, email=email, currency="USD", timezone=timezone),
            )
    posted = replayed = 0

    def count(was_replayed: bool) -> None:
        nonlocal posted, replayed
        if was_replayed:
            replayed += 1
        else:
            posted += 1

    for position, customer in enumerate(DEMO_CUSTOMERS, start=1):
        purchase = credits_purchased(CreditsPurchased(customer_id=customer, unit_code="USD", amount=50_000 * position))
        _, was_replayed = post_template(
            engine,
            clock,
            tenant_id,
            purchase,
            idempotency_key=f"demo-purchase-{customer}",
            reference=f"demo-{customer}",
        )
        count(was_replayed)
        grant = promotional_credits_granted(
            PromotionalCreditsGranted(customer_id=customer, unit_code="CREDITS", amount=1_000 * position)
        )
        _, was_replayed = post_template(engine, clock, tenant_id, grant, idempotency_key=f"demo-promo-{customer}")
        count(was_replayed)

    # A hold on acme's prepaid credits, then captured in part: a two-phase transaction.
    hold_posting = credits_applied(CreditsApplied(customer_id="acme", unit_code="USD", amount=12_000))
    hold, was_replayed = post_template(
        engine, clock, tenant_id, hold_posting, idempotency_key="demo-hold-acme", pending=True
    )
    count(was_replayed)
    _, was_replayed = resolve_pending_transaction(
        engine,
        clock,
        tenant_id,
        ResolutionInput(pending_transaction_id=hold.id, idempotency_key="demo-hold-acme-capture"),
    )
    count(was_replayed)
    return DemoSummary(transactions_posted=posted, transactions_replayed=replayed)
