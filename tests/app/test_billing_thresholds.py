"""Threshold billing on real PostgreSQL and a test clock: the setting as facts, threshold invoices
issued and finalized at once, the period's invoice billing only the rest (graduated tiers over the
whole period), the ledger and the integrity checks agreeing, and nothing billed twice — evaluated
again, at once from two threads, or racing without the customer's lock."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest

from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app import evaluate_billing_thresholds as evaluation
from tally.app._subscription_items import PlanChoice
from tally.app.advance_test_clock import advance_test_clock
from tally.app.check_ledger_integrity import run_integrity_check
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.evaluate_billing_thresholds import Outcome, evaluate_billing_thresholds, evaluate_customer
from tally.app.finalize_invoice import finalize_invoice
from tally.app.invoice_queries import get_invoice
from tally.app.run_billing import bill_customer
from tally.app.set_billing_threshold import ThresholdChange, set_billing_threshold
from tally.app.subscription_queries import get_subscription
from tally.bootstrap import Tally
from tally.core.rejections import Rejected
from tests.invoicing_support import at, balance, calls, count_rows, customer_on_clock
from tests.subscription_support import apply_test_catalog

# Calls: the first 100 of a period at $1, every one after at $0.10 (graduated), and a $30 fee.
CATALOG = """
meters:
  - {code: api_calls, event_type: api.call, aggregation: count}
products:
  - {code: platform, name: Platform}
  - {code: api, name: API}
prices:
  - {code: fee, product: platform, model: flat_fee, currency: USD, amount: 30}
  - code: calls
    product: api
    model: graduated
    currency: USD
    meter: api_calls
    tiers: [{up_to: 100, unit_price: 1}, {unit_price: 0.1}]
plans:
  - {code: metered, name: Metered, prices: [fee, calls]}
"""
THRESHOLD = 5_000  # $50


def _setup(
    tally: Tally, tenant_id: uuid.UUID, threshold: int | None = THRESHOLD
) -> tuple[uuid.UUID, uuid.UUID, str, uuid.UUID]:
    apply_test_catalog(tally, tenant_id, CATALOG)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    created = create_subscription(
        tally.engine,
        tally.clock,
        tenant_id,
        SubscriptionInput(
            customer_id=customer_id,
            plan=PlanChoice(plan_code="metered"),
            billing_threshold=None if threshold is None else ThresholdChange(amount_minor=threshold),
        ),
    )
    return customer_id, clock_id, external, created.row.id


def _invoices(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> list[store.InvoiceRow]:
    with psycopg_transaction(tally.engine) as connection:
        rows = connection.execute(
            f"SELECT {store.INVOICE_COLUMNS} FROM invoices WHERE tenant_id = %s AND customer_id = %s ORDER BY id",
            (tenant_id, customer_id),
        ).fetchall()
    return [store.InvoiceRow(*row) for row in rows]


def _threshold_invoices(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> list[store.InvoiceRow]:
    return [row for row in _invoices(tally, tenant_id, customer_id) if row.billing_reason == "threshold"]


def _usage_lines(tally: Tally, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> list[tuple[int, int, int, bool]]:
    """(sequence, amount, total, provisional) of the invoice's usage lines."""
    lines = get_invoice(tally.engine, tenant_id, invoice_id).lines
    return [
        (line.sequence, line.amount_minor, line.amount_minor_total, line.provisional)
        for line in lines
        if line.key.kind.value == "usage"
    ]


def _many(external: str, tally: Tally, tenant_id: uuid.UUID, count: int, month: int, day: int) -> None:
    calls(tally, tenant_id, external, [at(month, day, hour % 24) for hour in range(count)])


def test_usage_crossing_twice_gives_two_threshold_invoices_and_the_period_bills_the_rest(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer_id, clock_id, external, subscription_id = _setup(tally, tenant_id)
    assert get_subscription(tally.engine, tally.clock, tenant_id, subscription_id).subscription.billing_threshold
    # 30 calls: $30 accrued, under $50. The advance hook evaluates: nothing.
    _many(external, tally, tenant_id, 30, 1, 5)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 6))
    assert _threshold_invoices(tally, tenant_id, customer_id) == []

    # 70 calls so far: $70 ≥ $50 — invoiced at once, finalized, posted.
    _many(external, tally, tenant_id, 40, 1, 8)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 9))
    (first,) = _threshold_invoices(tally, tenant_id, customer_id)
    assert (first.status, first.total_minor, first.amount_due_minor) == ("open", 7_000, 7_000)
    assert first.number is not None
    assert _usage_lines(tally, tenant_id, first.id) == [(0, 7_000, 7_000, True)]
    # Ingest does not treat the period as closed by a provisional line.
    with psycopg_transaction(tally.engine) as connection:
        closure = connection.execute(
            "SELECT closed_through FROM usage_closures WHERE tenant_id = %s AND customer = %s", (tenant_id, external)
        ).fetchone()
    assert closure is None

    # 130 so far: $100 + 30 × $0.10 = $103, $33 more than billed — under the threshold.
    _many(external, tally, tenant_id, 60, 1, 15)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 16))
    assert len(_threshold_invoices(tally, tenant_id, customer_id)) == 1
    # 330 so far: $100 + 230 × $0.10 = $123, $53 more: the second threshold invoice, same line key.
    _many(external, tally, tenant_id, 200, 1, 20)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 21))
    first_again, second = _threshold_invoices(tally, tenant_id, customer_id)
    assert first_again.id == first.id
    assert _usage_lines(tally, tenant_id, second.id) == [(1, 5_300, 12_300, True)]
    assert second.total_minor == 5_300

    # 380 in the month: $128. February's first days: the period invoice bills $5 of usage, once.
    _many(external, tally, tenant_id, 50, 1, 25)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 2))
    bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    with psycopg_transaction(tally.engine) as connection:
        draft = store.draft_of(connection, tenant_id, customer_id, "USD")
    assert draft is not None and draft.billing_reason == "period"
    assert _usage_lines(tally, tenant_id, draft.id) == [(2, 500, 12_800, False)]
    finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)

    invoices = [row for row in _invoices(tally, tenant_id, customer_id) if row.status != "draft"]
    usage_billed = sum(amount for row in invoices for _, amount, _, _ in _usage_lines(tally, tenant_id, row.id))
    assert usage_billed == 12_800  # 380 calls rated once over the whole period, as without thresholds
    owed = sum(row.amount_due_minor for row in invoices)
    assert balance(tally, tenant_id, "accounts_receivable", external) == owed
    report = run_integrity_check(tally.engine, tally.clock, tenant_id)
    assert list(report.discrepancies) == []


def test_evaluating_again_bills_nothing_and_a_threshold_turned_off_is_not_evaluated(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer_id, clock_id, external, subscription_id = _setup(tally, tenant_id, threshold=None)
    _many(external, tally, tenant_id, 80, 1, 3)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 4))
    assert _threshold_invoices(tally, tenant_id, customer_id) == []
    assert evaluate_billing_thresholds(tally.engine, tally.clock, tenant_id=tenant_id).customers == ()

    set_billing_threshold(
        tally.engine, tally.clock, tenant_id, subscription_id, ThresholdChange(amount_minor=THRESHOLD)
    )
    run = evaluate_billing_thresholds(tally.engine, tally.clock, tenant_id=tenant_id)
    assert [(item.customer_id, item.outcome) for item in run.customers] == [(customer_id, Outcome.INVOICED)]
    again = evaluate_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert again.outcome is Outcome.UNDER_THRESHOLD
    assert [a.accrued_minor for a in again.accruals] == [0]
    assert len(_threshold_invoices(tally, tenant_id, customer_id)) == 1

    set_billing_threshold(tally.engine, tally.clock, tenant_id, subscription_id, ThresholdChange(amount_minor=None))
    _many(external, tally, tenant_id, 500, 1, 5)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 6))
    assert len(_threshold_invoices(tally, tenant_id, customer_id)) == 1
    with psycopg_transaction(tally.engine) as connection:
        facts = connection.execute(
            "SELECT sequence, amount_minor FROM subscription_billing_thresholds WHERE subscription_id = %s "
            "ORDER BY sequence",
            (subscription_id,),
        ).fetchall()
    assert facts == [(0, THRESHOLD), (1, None)]


def _ninety_calls_by_january_second(tally: Tally, tenant_id: uuid.UUID) -> uuid.UUID:
    """A customer at January 2nd with 90 calls ($90) so far and a $50 threshold set since, not
    evaluated yet."""
    customer_id, clock_id, external, subscription_id = _setup(tally, tenant_id, threshold=None)
    _many(external, tally, tenant_id, 90, 1, 1)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 2))
    set_billing_threshold(
        tally.engine, tally.clock, tenant_id, subscription_id, ThresholdChange(amount_minor=THRESHOLD)
    )
    return customer_id


def test_two_evaluations_at_once_issue_one_threshold_invoice(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id = _ninety_calls_by_january_second(tally, tenant_id)
    outcomes: list[Outcome] = []
    barrier = threading.Barrier(2)

    def evaluate() -> None:
        barrier.wait()
        outcomes.append(evaluate_customer(tally.engine, tally.clock, tenant_id, customer_id).outcome)

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted([Outcome.INVOICED, Outcome.UNDER_THRESHOLD])
    assert len(_threshold_invoices(tally, tenant_id, customer_id)) == 1


def test_without_the_lock_the_line_constraint_still_refuses_a_second_bill(
    tally: Tally, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_id = _ninety_calls_by_january_second(tally, tenant_id)
    # Both evaluations decide from the same billed state before either writes.
    monkeypatch.setattr(evaluation.store, "lock_customer", lambda *args: None)
    barrier = threading.Barrier(2)
    decide = evaluation.decide_threshold_invoice
    waited: set[int] = set()

    def decide_together(*args: Any) -> Any:
        decision = decide(*args)
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait(timeout=30)
        return decision

    monkeypatch.setattr(evaluation, "decide_threshold_invoice", decide_together)
    insert_lines = evaluation.batches.insert_lines
    refused: list[str] = []

    def insert_lines_seen(*args: Any) -> None:
        try:
            insert_lines(*args)
        except psycopg.errors.UniqueViolation as violation:
            refused.append(str(violation.diag.constraint_name))
            raise

    monkeypatch.setattr(evaluation.batches, "insert_lines", insert_lines_seen)
    outcomes: list[Outcome] = []

    def evaluate() -> None:
        outcomes.append(evaluate_customer(tally.engine, tally.clock, tenant_id, customer_id).outcome)

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted([Outcome.INVOICED, Outcome.UNDER_THRESHOLD])
    (invoice,) = _threshold_invoices(tally, tenant_id, customer_id)
    assert _usage_lines(tally, tenant_id, invoice.id) == [(0, 9_000, 9_000, True)]
    # The second one was refused by the line key's UNIQUE constraint, and ran again to find nothing.
    assert len(refused) == 1 and refused[0].startswith("invoice_lines_")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda: ThresholdChange(amount_minor=0), "billing_threshold_out_of_range"),
        (lambda: ThresholdChange(amount_minor=-5), "billing_threshold_out_of_range"),
        (lambda: ThresholdChange(amount_minor=10**15 + 1), "billing_threshold_out_of_range"),
        (lambda: ThresholdChange(amount_minor=True), "billing_threshold_must_be_minor_units"),  # type: ignore[arg-type]
        (
            lambda: ThresholdChange(amount_minor=100, currency="EUR"),
            "billing_threshold_currency_must_match_subscription",
        ),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_written(
    tally: Tally, tenant_id: uuid.UUID, change: Any, code: str
) -> None:
    customer_id, _, _, subscription_id = _setup(tally, tenant_id, threshold=None)
    with pytest.raises(Rejected) as refused:
        set_billing_threshold(tally.engine, tally.clock, tenant_id, subscription_id, change())
    assert refused.value.rejection.code == code
    # At create too: the subscription is not created either.
    subscriptions = _count(tally, tenant_id, "subscriptions")
    with pytest.raises(Rejected) as at_create:
        create_subscription(
            tally.engine,
            tally.clock,
            tenant_id,
            SubscriptionInput(
                customer_id=customer_id, plan=PlanChoice(plan_code="metered"), billing_threshold=change()
            ),
        )
    assert at_create.value.rejection.code == code
    assert _count(tally, tenant_id, "subscriptions") == subscriptions
    assert _count(tally, tenant_id, "subscription_billing_thresholds") == 0
    assert count_rows(tally, tenant_id, "invoices") == 0


def test_an_unknown_subscription_and_a_repeat_are_answered(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, _, _, subscription_id = _setup(tally, tenant_id)
    with pytest.raises(Rejected) as missing:
        set_billing_threshold(tally.engine, tally.clock, tenant_id, uuid.uuid4(), ThresholdChange(amount_minor=1))
    assert missing.value.rejection.code == "subscription_not_found"
    repeat = set_billing_threshold(
        tally.engine, tally.clock, tenant_id, subscription_id, ThresholdChange(amount_minor=THRESHOLD, currency="USD")
    )
    assert not repeat.recorded
    assert _count(tally, tenant_id, "subscription_billing_thresholds") == 1


def _count(tally: Tally, tenant_id: uuid.UUID, table: str) -> int:
    assert table in {"subscriptions", "subscription_billing_thresholds"}
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", (tenant_id,)).fetchone()
    assert row is not None
    return int(row[0])
