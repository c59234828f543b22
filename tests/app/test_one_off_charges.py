"""One-off charges through the app layer, on real PostgreSQL: a charge goes onto the customer's next
invoice and into revenue once finalized; a pending charge is cancelled (and taken off the draft), an
invoiced one is not; `invoice_now` bills it at once on an invoice of its own while the customer's
draft keeps its id; customers on test clocks; a charge is billed exactly once whatever runs twice or
at the same time; bad input is refused with a precise code and nothing written."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest

from tally.adapters.clock import FixedClock
from tally.adapters.pagination import PageRequest
from tally.adapters.postgres import invoices as invoice_store
from tally.adapters.postgres import one_off_charges as charge_store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.advance_test_clock import advance_test_clock
from tally.app.archive_price import archive_price
from tally.app.cancel_charge import cancel_charge
from tally.app.charge_queries import get_charge, list_charges
from tally.app.create_charge import ChargeInput, create_charge
from tally.app.finalize_invoice import finalize_invoice
from tally.app.invoice_queries import get_invoice
from tally.app.preview_upcoming_invoice import preview_upcoming_invoice
from tally.app.run_billing import bill_customer, run_billing
from tally.bootstrap import Tally
from tally.core.rejections import Rejected
from tests.invoicing_support import at, balance, customer_on_clock, subscribe
from tests.subscription_support import apply_test_catalog, make_customer, price_id

CATALOG = """
meters:
  - {code: api_calls, event_type: api.call, aggregation: count}
products:
  - {code: platform, name: Platform}
  - {code: services, name: Services}
prices:
  - {code: basic_fee, product: platform, model: flat_fee, currency: USD, amount: 30}
  - {code: calls, product: platform, model: per_unit, currency: USD, meter: api_calls, unit_price: 0.01}
  - {code: setup, product: services, model: flat_fee, currency: USD, amount: 250, interval: null}
  - {code: hours, product: services, model: per_unit, currency: USD, unit_price: 120, billing_timing: in_advance,
     interval: null}
  - {code: setup_eur, product: services, model: flat_fee, currency: EUR, amount: 200, interval: null}
  - {code: old_setup, product: services, model: flat_fee, currency: USD, amount: 99, interval: null}
  - {code: huge, product: services, model: flat_fee, currency: USD, amount: 100000000, interval: null}
plans:
  - code: basic
    name: Basic
    prices: [basic_fee, calls]
"""


def _code(error: pytest.ExceptionInfo[Rejected]) -> str:
    return error.value.rejection.code


def _charge(
    tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID, code: str = "setup", **fields: object
) -> charge_store.ChargeRow:
    created = create_charge(
        tally.engine,
        tally.clock,
        tenant_id,
        ChargeInput(customer_id=customer_id, price_code=code, **fields),  # type: ignore[arg-type]
    )
    return created.charge


def _draft(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> invoice_store.InvoiceRow | None:
    with psycopg_transaction(tally.engine) as connection:
        return invoice_store.draft_of(connection, tenant_id, customer_id, "USD")


def _one_off_lines(tally: Tally, tenant_id: uuid.UUID) -> list[tuple[str, str, int]]:
    """(charge id, invoice status, amount) of every one-off line of the tenant."""
    with psycopg_transaction(tally.engine) as connection:
        rows = connection.execute(
            """SELECT l.reference, i.status, l.amount_minor FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
               WHERE l.tenant_id = %s AND l.kind = 'one_off' ORDER BY l.reference""",
            (tenant_id,),
        ).fetchall()
    return [(str(row[0]), str(row[1]), int(row[2])) for row in rows]


def _rows(tally: Tally, tenant_id: uuid.UUID, table: str) -> int:
    assert table in {"one_off_charges", "one_off_charge_cancellations", "invoices", "ledger_transactions"}
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", (tenant_id,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def catalog(tally: Tally, tenant_id: uuid.UUID) -> None:
    apply_test_catalog(tally, tenant_id, CATALOG)


@pytest.mark.usefixtures("catalog")
def test_a_charge_goes_onto_the_next_invoice_and_into_revenue_once(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 10))
    charge = _charge(tally, tenant_id, customer_id, "hours", quantity=Decimal("2.5"), description="Migration help")
    assert (charge.status, charge.charged_at, charge.currency, charge.invoice_id) == ("pending", at(1, 10), "USD", None)

    # Pending until billed: the upcoming invoice shows it, the draft gets it at the next run.
    upcoming = preview_upcoming_invoice(tally.engine, tally.clock, tenant_id, customer_id)
    assert upcoming.proposal is not None
    assert [(line.key.reference, line.amount_minor) for line in upcoming.proposal.lines if line.key.reference] == [
        (str(charge.id), 30_000)
    ]
    bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    draft = _draft(tally, tenant_id, customer_id)
    assert draft is not None
    lines = {line.key.kind.value: line for line in get_invoice(tally.engine, tenant_id, draft.id).lines}
    one_off = lines["one_off"]
    assert (one_off.amount_minor, one_off.description, one_off.quantity) == (30_000, "Migration help", Decimal("2.5"))
    assert (one_off.key.reference, one_off.key.price_id) == (str(charge.id), str(price_id(tally, tenant_id, "hours")))
    assert get_charge(tally.engine, tenant_id, charge.id).status == "pending"  # a draft is not an invoice

    revenue_before = balance(tally, tenant_id, "revenue.services")
    finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    invoiced = get_charge(tally.engine, tenant_id, charge.id)
    assert (invoiced.status, invoiced.invoice_id) == ("invoiced", draft.id)
    assert balance(tally, tenant_id, "revenue.services") - revenue_before == 30_000
    assert balance(tally, tenant_id, "accounts_receivable", external) == 3_000 + 30_000

    # Billed exactly once: running again, or after the clock moves, never bills it again.
    assert not bill_customer(tally.engine, tally.clock, tenant_id, customer_id).changed
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1, 1))
    assert [charge_id for charge_id, _, _ in _one_off_lines(tally, tenant_id)] == [str(charge.id)]


@pytest.mark.usefixtures("catalog")
def test_a_customer_with_charges_and_no_subscription_is_invoiced(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, _, _ = customer_on_clock(tally, tenant_id, at(3, 1))
    first = _charge(tally, tenant_id, customer_id, "setup", quantity=2)
    second = _charge(tally, tenant_id, customer_id, "hours", quantity=1)
    # The run over every customer due finds it (it has never been billed, and has charges).
    result = run_billing(tally.engine, tally.clock, tenant_id=tenant_id)
    assert [run.customer_id for run in result.customers] == [customer_id]
    draft = _draft(tally, tenant_id, customer_id)
    assert draft is not None and draft.total_minor == 50_000 + 12_000
    assert (draft.period_start, draft.period_end) == (at(3, 1), at(3, 1))
    finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    assert {get_charge(tally.engine, tenant_id, c.id).status for c in (first, second)} == {"invoiced"}
    # A charge recorded after the run makes the customer due again, and lands on a new invoice.
    third = _charge(tally, tenant_id, customer_id, "setup")
    again = run_billing(tally.engine, tally.clock, tenant_id=tenant_id)
    assert [run.customer_id for run in again.customers if run.changed] == [customer_id]
    assert sorted(c for c, status, _ in _one_off_lines(tally, tenant_id) if status == "draft") == [str(third.id)]


@pytest.mark.usefixtures("catalog")
def test_a_pending_charge_is_cancelled_and_taken_off_the_draft(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, _, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    charge = _charge(tally, tenant_id, customer_id)
    kept = _charge(tally, tenant_id, customer_id, "hours")
    bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    draft = _draft(tally, tenant_id, customer_id)
    assert draft is not None and draft.total_minor == 3_000 + 25_000 + 12_000

    cancelled = cancel_charge(tally.engine, tally.clock, tenant_id, charge.id)
    assert (cancelled.status, cancelled.cancelled_at) == ("cancelled", at(1, 1))
    after = _draft(tally, tenant_id, customer_id)
    assert after is not None and after.id == draft.id  # made again without it, under its id
    assert after.total_minor == 3_000 + 12_000
    assert [c for c, _, _ in _one_off_lines(tally, tenant_id)] == [str(kept.id)]
    with pytest.raises(Rejected) as twice:
        cancel_charge(tally.engine, tally.clock, tenant_id, charge.id)
    assert _code(twice) == "charge_is_cancelled"
    # The run never brings it back, and the lists say what each charge is.
    assert not bill_customer(tally.engine, tally.clock, tenant_id, customer_id).changed
    listed = list_charges(tally.engine, tenant_id, customer_id, PageRequest(limit=10))
    assert [(row.id, row.status) for row in listed.items] == [(kept.id, "pending"), (charge.id, "cancelled")]
    only = list_charges(tally.engine, tenant_id, customer_id, PageRequest(limit=10), status="cancelled")
    assert [row.id for row in only.items] == [charge.id]

    # The only line of a draft cancelled: the draft goes away.
    lone_customer, _, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    lone = _charge(tally, tenant_id, lone_customer)
    bill_customer(tally.engine, tally.clock, tenant_id, lone_customer)
    assert _draft(tally, tenant_id, lone_customer) is not None
    cancel_charge(tally.engine, tally.clock, tenant_id, lone.id)
    assert _draft(tally, tenant_id, lone_customer) is None


@pytest.mark.usefixtures("catalog")
def test_an_invoiced_charge_is_never_cancelled(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, _, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    charge = _charge(tally, tenant_id, customer_id)
    bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    draft = _draft(tally, tenant_id, customer_id)
    assert draft is not None
    finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    with pytest.raises(Rejected) as refused:
        cancel_charge(tally.engine, tally.clock, tenant_id, charge.id)
    assert _code(refused) == "charge_is_invoiced"
    assert _rows(tally, tenant_id, "one_off_charge_cancellations") == 0
    # The database refuses it too, should the code ever forget.
    with pytest.raises(psycopg.errors.RestrictViolation), psycopg_transaction(tally.engine) as connection:
        charge_store.insert_cancellation(connection, tenant_id, charge.id, at(1, 1), at(1, 1))
    with pytest.raises(Rejected) as unknown:
        cancel_charge(tally.engine, tally.clock, tenant_id, uuid.uuid4())
    assert _code(unknown) == "charge_not_found"


@pytest.mark.usefixtures("catalog")
def test_the_database_refuses_to_finalize_a_draft_carrying_a_cancelled_charge(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer_id, _, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    charge = _charge(tally, tenant_id, customer_id)
    bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    draft = _draft(tally, tenant_id, customer_id)
    assert draft is not None
    # A cancellation written behind the use case's back (which would have made the draft again).
    with psycopg_transaction(tally.engine) as connection:
        charge_store.insert_cancellation(connection, tenant_id, charge.id, at(1, 1), at(1, 1))
    transactions = _rows(tally, tenant_id, "ledger_transactions")
    with pytest.raises(psycopg.errors.RestrictViolation):
        finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    assert _rows(tally, tenant_id, "ledger_transactions") == transactions  # nothing half-written
    assert get_invoice(tally.engine, tenant_id, draft.id).invoice.status == "draft"


@pytest.mark.usefixtures("catalog")
def test_invoice_now_bills_the_charge_alone_and_the_draft_keeps_its_id(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, _, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    pending = _charge(tally, tenant_id, customer_id, "hours")
    bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    draft = _draft(tally, tenant_id, customer_id)
    assert draft is not None and draft.total_minor == 3_000 + 12_000

    created = create_charge(
        tally.engine,
        tally.clock,
        tenant_id,
        ChargeInput(customer_id=customer_id, price_code="setup", invoice_now=True, due_in_days=7),
    )
    invoice = created.invoice
    assert invoice is not None
    assert (invoice.status, invoice.total_minor, invoice.number is not None) == ("open", 25_000, True)
    assert invoice.due_at == at(1, 8)
    assert [
        (line.key.reference, line.amount_minor) for line in get_invoice(tally.engine, tenant_id, invoice.id).lines
    ] == [(str(created.charge.id), 25_000)]
    assert (created.charge.status, created.charge.invoice_id, created.charge.invoice_now) == (
        "invoiced",
        invoice.id,
        True,
    )
    assert balance(tally, tenant_id, "accounts_receivable", external) == 25_000
    # The draft is as it was, under the same id, still carrying the pending charge only.
    after = _draft(tally, tenant_id, customer_id)
    assert after is not None and (after.id, after.total_minor) == (draft.id, 3_000 + 12_000)
    assert sorted(c for c, status, _ in _one_off_lines(tally, tenant_id) if status == "draft") == [str(pending.id)]
    assert not bill_customer(tally.engine, tally.clock, tenant_id, customer_id).changed
    with pytest.raises(Rejected) as refused:
        cancel_charge(tally.engine, tally.clock, tenant_id, created.charge.id)
    assert _code(refused) == "charge_is_invoiced"


@pytest.mark.usefixtures("catalog")
def test_idempotency_key_replays_the_charge_and_refuses_other_content(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, _, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    request = ChargeInput(customer_id=customer_id, price_code="setup", idempotency_key="k-1", invoice_now=True)
    first = create_charge(tally.engine, tally.clock, tenant_id, request)
    replay = create_charge(tally.engine, tally.clock, tenant_id, request)
    assert replay.replayed and replay.charge.id == first.charge.id
    assert replay.invoice is not None and first.invoice is not None and replay.invoice.id == first.invoice.id
    assert (_rows(tally, tenant_id, "one_off_charges"), _rows(tally, tenant_id, "invoices")) == (1, 1)
    other_customer, _, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    for changed, code in (
        ({"quantity": Decimal(2)}, "exists_with_different_quantity"),
        ({"price_code": "hours"}, "exists_with_different_price"),
        ({"customer_id": other_customer}, "exists_with_different_customer"),
        ({"description": "other"}, "exists_with_different_description"),
        ({"invoice_now": False}, "exists_with_different_invoice_now"),
        ({"charged_at": at(1, 1) - timedelta(days=1)}, "exists_with_different_charged_at"),
    ):
        with pytest.raises(Rejected) as refused:
            create_charge(tally.engine, tally.clock, tenant_id, dataclasses.replace(request, **changed))  # type: ignore[arg-type]
        assert _code(refused) == code
    assert _rows(tally, tenant_id, "one_off_charges") == 1


@pytest.mark.usefixtures("catalog")
def test_a_customer_on_a_test_clock_is_charged_at_its_time(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, clock_id, _ = customer_on_clock(tally, tenant_id, at(5, 1))
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(5, 20))
    charge = _charge(tally, tenant_id, customer_id)
    assert (charge.charged_at, charge.recorded_at) == (at(5, 20), at(5, 20))
    with pytest.raises(Rejected) as future:
        _charge(tally, tenant_id, customer_id, charged_at=at(5, 20, 1))
    assert _code(future) == "charged_at_must_not_be_in_the_future"
    with pytest.raises(Rejected) as old:
        _charge(tally, tenant_id, customer_id, charged_at=at(5, 20) - timedelta(days=367))
    assert _code(old) == "charged_at_out_of_range"
    backdated = _charge(tally, tenant_id, customer_id, charged_at=at(5, 2))
    # The advance hook bills the clock's customers at the new time: both charges on the draft.
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(5, 21))
    draft = _draft(tally, tenant_id, customer_id)
    assert draft is not None and draft.through == at(5, 21)
    assert sorted(c for c, _, _ in _one_off_lines(tally, tenant_id)) == sorted([str(charge.id), str(backdated.id)])


@pytest.mark.usefixtures("catalog")
def test_concurrent_runs_finalizes_and_replays_bill_each_charge_once(tally: Tally, tenant_id: uuid.UUID) -> None:
    customers = [customer_on_clock(tally, tenant_id, at(1, 1))[0] for _ in range(3)]
    for customer_id in customers:
        subscribe(tally, tenant_id, customer_id)
        for _ in range(2):
            _charge(tally, tenant_id, customer_id, "hours")
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def bill_and_finalize() -> None:
        try:
            barrier.wait()
            for _ in range(2):
                run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=tuple(customers))
                for customer_id in customers:
                    draft = _draft(tally, tenant_id, customer_id)
                    if draft is not None:
                        try:
                            finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
                        except Rejected as rejected:  # finalized or deleted by another thread
                            assert rejected.rejection.code in {"invoice_must_be_draft", "invoice_not_found"}
        except BaseException as failure:  # reported below
            failures.append(failure)

    def replay_invoice_now() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                create_charge(
                    tally.engine,
                    tally.clock,
                    tenant_id,
                    ChargeInput(customer_id=customers[0], price_code="setup", invoice_now=True, idempotency_key="once"),
                )
        except BaseException as failure:  # reported below
            failures.append(failure)

    threads = [threading.Thread(target=bill_and_finalize) for _ in range(3)] + [
        threading.Thread(target=replay_invoice_now)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=tuple(customers))
    lines = _one_off_lines(tally, tenant_id)
    assert _rows(tally, tenant_id, "one_off_charges") == 7
    billed = [charge_id for charge_id, status, _ in lines if status != "draft"]
    assert len(billed) == len(set(billed)) == 7  # every charge on exactly one finalized invoice
    assert all(status != "draft" for _, status, _ in lines)


@pytest.mark.usefixtures("catalog")
def test_bad_charges_are_refused_with_a_precise_code_and_nothing_written(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, _, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    no_currency = make_customer(tally, tenant_id, currency=None)
    archive_price(tally.engine, FixedClock(at(1, 1)), tenant_id, price_id(tally, tenant_id, "old_setup"))
    with psycopg_transaction(tally.engine) as connection:
        archived = connection.execute(
            "SELECT id FROM prices WHERE tenant_id = %s AND code = 'old_setup'", (tenant_id,)
        ).fetchone()
    assert archived is not None
    cases: list[tuple[dict[str, object], str]] = [
        ({"customer_id": uuid.uuid4()}, "customer_not_found"),
        ({"price_code": "nope"}, "price_not_found"),
        ({"price_id": uuid.uuid4(), "price_code": None}, "price_not_found"),
        ({"price_id": archived[0], "price_code": None}, "price_archived"),
        ({"price_code": "calls"}, "price_must_not_be_metered"),
        ({"price_code": "basic_fee"}, "price_must_be_one_off"),
        ({"price_code": "setup_eur"}, "price_currency_must_match_customer"),
        ({"customer_id": no_currency}, "customer_currency_required"),
        ({"price_id": archived[0]}, "price_required"),
        ({"quantity": Decimal(0)}, "charge_quantity_must_be_positive"),
        ({"quantity": Decimal(-3)}, "charge_quantity_must_be_positive"),
        ({"quantity": Decimal(10) ** 13}, "charge_quantity_exceeds_limit"),
        ({"quantity": Decimal("0.0000000000001")}, "charge_quantity_exceeds_precision"),
        ({"description": "x" * 501}, "charge_description_exceeds_limit"),
        ({"charged_at": at(1, 1).replace(tzinfo=None)}, "datetime_must_have_timezone"),
        ({"due_in_days": 400}, "due_in_days_out_of_range"),
        ({"idempotency_key": ""}, "idempotency_key_invalid"),
    ]
    for fields, code in cases:
        arguments: dict[str, object] = {"customer_id": customer_id, "price_code": "setup", **fields}
        with pytest.raises(Rejected) as refused:
            create_charge(tally.engine, tally.clock, tenant_id, ChargeInput(**arguments))  # type: ignore[arg-type]
        assert _code(refused) == code, fields
    # An amount that cannot be billed is refused when the charge is made, not when it is billed.
    with pytest.raises(Rejected) as too_much:
        _charge(tally, tenant_id, customer_id, "huge", quantity=Decimal(10) ** 12)
    assert _code(too_much) == "amount_exceeds_limit"
    assert _rows(tally, tenant_id, "one_off_charges") == 0
    assert _rows(tally, tenant_id, "invoices") == 0
