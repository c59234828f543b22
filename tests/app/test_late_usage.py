"""Late and amended usage for a finalized period, under each tenant policy (tally.core.invoicing.late_usage).

One customer on the `basic` plan ($30 a month in advance, $0.01 a call in arrears), January billed
and finalized on February 2. Then calls for January arrive late, or January calls are retracted:

- `next_invoice`: the difference is a correction line on the customer's next draft;
- `separate`: more usage is an extra invoice of its own; less is a `late_usage` credit note against
  January's invoice, carrying the lines it credits.

Either way each `late_usage` flag is resolved in the run that bills or credits its difference, and
what January's usage key carries over every invoice and credit note equals the calls that remain.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from tally.adapters.clock import FixedClock
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_items import PlanChoice
from tally.app.advance_test_clock import advance_test_clock
from tally.app.cancel_subscription import Cancellation, cancel_subscription
from tally.app.correct_event import CorrectionInput, correct_event
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.finalize_invoice import finalize_invoice
from tally.app.ingest_events import ingest_events
from tally.app.invoice_queries import get_invoice
from tally.app.run_billing import bill_customer, run_billing
from tally.app.tenant_billing_settings import BillingSettingsInput, get_billing_settings, set_billing_settings
from tally.bootstrap import Tally
from tally.core.invoicing import LateUsagePolicy
from tally.core.rejections import Rejected
from tests.invoicing_support import at, balance, customer_on_clock, external_id, setup_catalog, subscribe
from tests.subscription_support import make_customer

JANUARY = (at(1, 1), at(2, 1))


def _ingest(tally: Tally, tenant_id: uuid.UUID, customer: str, times: Sequence[datetime], now: datetime) -> list[str]:
    ids = [f"call-{uuid.uuid4().hex}" for _ in times]
    events = [
        {"id": event_id, "customer": customer, "type": "api.call", "timestamp": moment.isoformat()}
        for event_id, moment in zip(ids, times, strict=True)
    ]
    ingest_events(tally.engine, FixedClock(now), tenant_id, events)
    return ids


def _january_billed(tally: Tally, tenant_id: uuid.UUID, policy: str) -> tuple[uuid.UUID, str, uuid.UUID, list[str]]:
    """(customer, external id, January's finalized invoice, the ids of its 100 calls)."""
    setup_catalog(tally, tenant_id)
    set_billing_settings(tally.engine, tally.clock, tenant_id, BillingSettingsInput(late_usage_policy=policy))
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    ids = _ingest(tally, tenant_id, external, [at(1, 5, hour) for hour in range(20)] * 5, at(1, 6))
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 2))
    draft = _draft(tally, tenant_id, customer_id)
    assert draft is not None
    january = finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    assert january.subtotal_minor == 3000 + 3000 + 100  # January's and February's fees, 100 calls
    return customer_id, external, january.id, ids


def _retract(tally: Tally, tenant_id: uuid.UUID, event_ids: Sequence[str]) -> None:
    for event_id in event_ids:
        correct_event(
            tally.engine, FixedClock(at(2, 10)), tenant_id, CorrectionInput(event_id=event_id, kind="retract")
        )


def _draft(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID, billing_reason: str = "period") -> Any:
    with psycopg_transaction(tally.engine) as connection:
        return store.draft_of(connection, tenant_id, customer_id, "USD", billing_reason)


def _flags(tally: Tally, tenant_id: uuid.UUID) -> list[tuple[str, str | None]]:
    with psycopg_transaction(tally.engine) as connection:
        rows = connection.execute(
            "SELECT kind, resolution FROM late_usage WHERE tenant_id = %s ORDER BY flagged_at, id", (tenant_id,)
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _january_usage_carried(tally: Tally, tenant_id: uuid.UUID, *, drafts: bool) -> int:
    """What January's usage key carries over finalized invoices (and drafts, if asked) and credit notes."""
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(
            """SELECT coalesce(sum(amount_minor), 0) FROM (
                   SELECT l.amount_minor FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
                   WHERE l.tenant_id = %(t)s AND l.kind = 'usage' AND l.service_start = %(start)s
                     AND (i.status <> 'draft' OR %(drafts)s)
                   UNION ALL
                   SELECT amount_minor FROM credit_note_lines
                   WHERE tenant_id = %(t)s AND kind = 'usage' AND service_start = %(start)s) carried""",
            {"t": tenant_id, "start": JANUARY[0], "drafts": drafts},
        ).fetchone()
    assert row is not None
    return int(row[0])


def _counts(tally: Tally, tenant_id: uuid.UUID) -> tuple[int, ...]:
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(
            """SELECT (SELECT count(*) FROM invoices WHERE tenant_id = %(t)s),
                      (SELECT count(*) FROM invoice_lines WHERE tenant_id = %(t)s),
                      (SELECT count(*) FROM credit_notes WHERE tenant_id = %(t)s),
                      (SELECT count(*) FROM credit_note_lines WHERE tenant_id = %(t)s),
                      (SELECT count(*) FROM ledger_transactions WHERE tenant_id = %(t)s),
                      (SELECT count(*) FROM late_usage WHERE tenant_id = %(t)s AND resolved_at IS NULL)""",
            {"t": tenant_id},
        ).fetchone()
    assert row is not None
    return tuple(row)


# ----- the setting ---------------------------------------------------------------------------------------


def test_the_policy_defaults_to_next_invoice_and_refuses_an_unknown_value(tally: Tally, tenant_id: uuid.UUID) -> None:
    settings = get_billing_settings(tally.engine, tenant_id)
    assert (settings.late_usage_policy, settings.recorded_at) == (LateUsagePolicy.NEXT_INVOICE, None)
    with pytest.raises(Rejected) as refused:
        set_billing_settings(tally.engine, tally.clock, tenant_id, BillingSettingsInput(late_usage_policy="weekly"))
    assert (refused.value.rejection.code, refused.value.rejection.field) == (
        "late_usage_policy_unknown",
        "late_usage_policy",
    )
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(
            "SELECT count(*) FROM tenant_billing_settings WHERE tenant_id = %s", (tenant_id,)
        ).fetchone()
    assert row == (0,)  # nothing half-written

    changed = set_billing_settings(
        tally.engine, tally.clock, tenant_id, BillingSettingsInput(late_usage_policy="separate")
    )
    again = set_billing_settings(
        tally.engine, tally.clock, tenant_id, BillingSettingsInput(late_usage_policy="separate")
    )
    assert (changed[0].late_usage_policy, changed[1], again[1]) == (LateUsagePolicy.SEPARATE, True, False)
    assert get_billing_settings(tally.engine, tenant_id).late_usage_policy is LateUsagePolicy.SEPARATE


# ----- next_invoice ----------------------------------------------------------------------------------------


def test_next_invoice_late_calls_become_a_correction_line_on_the_next_draft(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, external, _, _ = _january_billed(tally, tenant_id, "next_invoice")
    _ingest(tally, tenant_id, external, [at(1, 20)] * 50, at(2, 10))
    assert _flags(tally, tenant_id) == [("late_event", None)] * 50

    run = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    # On a draft, the flags stay open (they keep January measured until the draft is final).
    assert (run.late_invoice_id, run.credit_notes, run.flags_resolved) == (None, (), 0)
    draft = get_invoice(tally.engine, tenant_id, run.invoice_id) if run.invoice_id else None
    assert draft is not None
    (line,) = draft.lines
    assert (line.key.kind.value, line.key.service_period.start, line.sequence, line.amount_minor) == (
        "usage",
        JANUARY[0],
        1,
        50,
    )
    assert line.description.startswith("Correction:")
    assert _flags(tally, tenant_id) == [("late_event", None)] * 50

    before = _counts(tally, tenant_id)
    assert run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,)).changed == 0
    assert _counts(tally, tenant_id) == before
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 150

    finalize_invoice(tally.engine, tally.clock, tenant_id, run.invoice_id)
    assert _flags(tally, tenant_id) == [("late_event", f"invoice:{run.invoice_id}")] * 50
    assert run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,)).changed == 0
    assert _january_usage_carried(tally, tenant_id, drafts=False) == 150


def test_next_invoice_retracted_calls_become_a_negative_line(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, _, _, ids = _january_billed(tally, tenant_id, "next_invoice")
    _retract(tally, tenant_id, ids[:30])
    run = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert run.invoice_id is not None
    (line,) = get_invoice(tally.engine, tenant_id, run.invoice_id).lines
    assert (line.sequence, line.amount_minor) == (1, -30)
    assert _flags(tally, tenant_id) == [("retract", None)] * 30
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 70
    finalize_invoice(tally.engine, tally.clock, tenant_id, run.invoice_id)
    assert _flags(tally, tenant_id) == [("retract", f"invoice:{run.invoice_id}")] * 30


# ----- separate --------------------------------------------------------------------------------------------


def test_separate_late_calls_become_an_extra_invoice_billed_once(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, external, january_id, _ = _january_billed(tally, tenant_id, "separate")
    _ingest(tally, tenant_id, external, [at(1, 20)] * 50, at(2, 10))

    run = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert run.invoice_id is None  # nothing else is due on February 2
    assert run.late_invoice_id is not None and run.flags_resolved == 0
    extra = get_invoice(tally.engine, tenant_id, run.late_invoice_id)
    assert (extra.invoice.billing_reason, extra.invoice.status, extra.invoice.total_minor) == (
        "late_usage",
        "draft",
        50,
    )
    (line,) = extra.lines
    assert (line.key.service_period.start, line.sequence, line.amount_minor) == (JANUARY[0], 1, 50)
    assert _flags(tally, tenant_id) == [("late_event", None)] * 50

    finalized = finalize_invoice(tally.engine, tally.clock, tenant_id, run.late_invoice_id)
    assert _flags(tally, tenant_id) == [("late_event", f"invoice:{run.late_invoice_id}")] * 50
    assert (finalized.status, finalized.amount_due_minor, finalized.number is not None) == ("open", 50, True)
    before = _counts(tally, tenant_id)
    again = run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,))
    assert (again.changed, _counts(tally, tenant_id)) == (0, before)
    # January's usage: 100 calls on January's invoice, 50 on the extra one; nothing twice.
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 150
    assert get_invoice(tally.engine, tenant_id, january_id).invoice.amount_credited_minor == 0

    # February's own invoice is the regular draft as ever, beside no extra draft.
    advance_clock = _clock_of(tally, tenant_id, customer_id)
    advance_test_clock(tally.engine, tally.clock, tenant_id, advance_clock, at(3, 2))
    assert _draft(tally, tenant_id, customer_id, "late_usage") is None
    regular = _draft(tally, tenant_id, customer_id)
    assert regular is not None and regular.subtotal_minor == 3000  # March's fee; February had no calls


def test_separate_retracted_calls_become_a_credit_note_against_the_invoice_that_billed_them(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer_id, _, january_id, ids = _january_billed(tally, tenant_id, "separate")
    receivable = balance(tally, tenant_id, "accounts_receivable", _external(tally, tenant_id, customer_id))
    _retract(tally, tenant_id, ids[:30])

    # Through the chunked run, which bills a customer with a credit note to issue on its own.
    (run,) = run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,)).customers
    assert (run.invoice_id, run.late_invoice_id, len(run.credit_notes), run.flags_resolved) == (None, None, 1, 30)
    january = get_invoice(tally.engine, tenant_id, january_id)
    (note,) = january.credit_notes
    assert (note.id, note.reason, note.amount_minor, note.against_due_minor) == (
        run.credit_notes[0],
        "late_usage",
        30,
        30,
    )
    assert january.invoice.amount_credited_minor == 30
    assert balance(tally, tenant_id, "accounts_receivable", _external(tally, tenant_id, customer_id)) == receivable - 30
    assert _flags(tally, tenant_id) == [("retract", f"credit_note:{note.id}")] * 30

    before = _counts(tally, tenant_id)
    assert run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,)).changed == 0
    assert _counts(tally, tenant_id) == before  # the credit note's lines count as billed: no second credit
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 70


def test_separate_a_credit_beyond_what_is_creditable_stays_on_the_next_invoice(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer_id, _, january_id, ids = _january_billed(tally, tenant_id, "separate")
    from tally.app.issue_credit_note import CreditNoteInput, issue_invoice_credit_note

    january = get_invoice(tally.engine, tenant_id, january_id).invoice
    issue_invoice_credit_note(
        tally.engine,
        tally.clock,
        tenant_id,
        january_id,
        CreditNoteInput(amount_minor=january.total_minor - 10, reason="billing_error"),
    )
    _retract(tally, tenant_id, ids[:30])
    run = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert (run.credit_notes, run.late_invoice_id) == ((), None)
    assert run.invoice_id is not None
    (line,) = get_invoice(tally.engine, tenant_id, run.invoice_id).lines
    assert (line.sequence, line.amount_minor) == (1, -30)
    assert _flags(tally, tenant_id) == [("retract", None)] * 30
    finalize_invoice(tally.engine, tally.clock, tenant_id, run.invoice_id)
    assert _flags(tally, tenant_id) == [("retract", f"invoice:{run.invoice_id}")] * 30


def test_a_late_usage_credit_note_by_hand_is_refused(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, _, january_id, _ = _january_billed(tally, tenant_id, "separate")
    from tally.app.issue_credit_note import CreditNoteInput, issue_invoice_credit_note

    with pytest.raises(Rejected) as refused:
        issue_invoice_credit_note(
            tally.engine, tally.clock, tenant_id, january_id, CreditNoteInput(amount_minor=10, reason="late_usage")
        )
    assert refused.value.rejection.code == "credit_note_reason_reserved"


def test_separate_two_runs_at_once_credit_once(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer_id, _, january_id, ids = _january_billed(tally, tenant_id, "separate")
    _retract(tally, tenant_id, ids[:30])
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    # One through the chunked run (which bills a customer with a credit note on its own), one alone.
    def bill(chunked: bool) -> None:
        try:
            barrier.wait()
            if chunked:
                run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,))
            else:
                bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
        except BaseException as failure:
            failures.append(failure)

    threads = [threading.Thread(target=bill, args=(chunked,)) for chunked in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    january = get_invoice(tally.engine, tenant_id, january_id)
    assert [note.amount_minor for note in january.credit_notes] == [30]
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 70
    assert all(resolution is not None for _, resolution in _flags(tally, tenant_id))


def test_switching_back_to_next_invoice_moves_the_extra_draft_onto_the_next_invoice(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer_id, external, _, _ = _january_billed(tally, tenant_id, "separate")
    _ingest(tally, tenant_id, external, [at(1, 20)] * 5, at(2, 10))
    first = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert first.late_invoice_id is not None
    set_billing_settings(tally.engine, tally.clock, tenant_id, BillingSettingsInput(late_usage_policy="next_invoice"))
    second = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert (second.late_invoice_id, second.invoice_id is not None) == (None, True)
    assert _draft(tally, tenant_id, customer_id, "late_usage") is None
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 105


def _external(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> str:
    from tests.invoicing_support import external_id

    return external_id(tally, tenant_id, customer_id)


def _clock_of(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> uuid.UUID:
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(
            "SELECT test_clock_id FROM customers WHERE tenant_id = %s AND id = %s", (tenant_id, customer_id)
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def test_a_flag_older_than_the_lookback_is_still_billed(tally: Tally, tenant_id: uuid.UUID) -> None:
    """A late call accepted at the edge of the ingest horizon, for a customer whose next billing run
    comes months later: the run measures January again because an open flag lies in it, however
    long ago January ended (`LATE_USAGE_LOOKBACK` alone would have left it behind)."""
    customer_id, external, _, _ = _january_billed(tally, tenant_id, "next_invoice")
    _ingest(tally, tenant_id, external, [datetime(2026, 1, 31, 12, tzinfo=UTC)] * 3, at(4, 29))
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(
            "SELECT test_clock_id FROM customers WHERE tenant_id = %s AND id = %s", (tenant_id, customer_id)
        ).fetchone()
    assert row is not None
    advance_test_clock(tally.engine, tally.clock, tenant_id, row[0], at(6, 2))

    run = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert run.invoice_id is not None
    # On the draft, the flags stay open, and every run measures January again: the line stays.
    assert _flags(tally, tenant_id) == [("late_event", None)] * 3
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 103
    assert run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,)).changed == 0
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 103

    finalize_invoice(tally.engine, tally.clock, tenant_id, run.invoice_id)
    assert _flags(tally, tenant_id) == [("late_event", f"invoice:{run.invoice_id}")] * 3
    assert _january_usage_carried(tally, tenant_id, drafts=False) == 103
    # Resolved, January is no longer measured again, and what was billed stays billed.
    assert run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,)).changed == 0
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 103


class _LateEventDuringMeasurement:
    """An event store that, once the run has measured usage, has a late event for January ingested
    and committed by another transaction: its flag appears after the measurement."""

    def __init__(self, tally: Tally, tenant_id: uuid.UUID, customer: str) -> None:
        from tally.app.event_store import open_event_store

        self.inner = open_event_store(tally.engine)
        self.tally, self.tenant_id, self.customer = tally, tenant_id, customer
        self.ingested: list[str] = []

    def usage(self, tenant_id: uuid.UUID, query: Any) -> Any:
        result = self.inner.usage(tenant_id, query)
        if not self.ingested:
            self.ingested = _ingest(self.tally, self.tenant_id, self.customer, [at(1, 20)], at(2, 10))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_flag_that_appears_after_usage_was_measured_is_left_for_the_next_pass(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer_id, external, _, _ = _january_billed(tally, tenant_id, "next_invoice")
    store_during = _LateEventDuringMeasurement(tally, tenant_id, external)
    bill_customer(tally.engine, tally.clock, tenant_id, customer_id, event_store=store_during)
    assert store_during.ingested
    # Its event was not in the measurement: the flag must stay open, not be settled as "no change".
    assert _flags(tally, tenant_id) == [("late_event", None)]
    run = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert run.invoice_id is not None
    finalize_invoice(tally.engine, tally.clock, tenant_id, run.invoice_id)
    assert _january_usage_carried(tally, tenant_id, drafts=False) == 101  # the late call billed once
    assert _flags(tally, tenant_id) == [("late_event", f"invoice:{run.invoice_id}")]


def test_a_late_call_after_the_extra_draft_was_made_stays_open_at_its_finalizing_and_is_billed_next(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    # The extra draft bills 50 late January calls; 7 more arrive before it is finalized by hand,
    # without a refresh. Finalizing resolves only the flags the draft carries: the 7 stay open and
    # the next run bills them; none is lost, none is billed twice.
    customer_id, external, _, _ = _january_billed(tally, tenant_id, "separate")
    _ingest(tally, tenant_id, external, [at(1, 20)] * 50, at(2, 10))
    run = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert run.late_invoice_id is not None
    _ingest(tally, tenant_id, external, [at(1, 21)] * 7, at(2, 11))

    finalized = finalize_invoice(tally.engine, tally.clock, tenant_id, run.late_invoice_id)
    assert finalized.total_minor == 50
    flags = _flags(tally, tenant_id)
    assert flags.count(("late_event", f"invoice:{run.late_invoice_id}")) == 50
    assert flags.count(("late_event", None)) == 7

    again = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert again.late_invoice_id is not None
    assert get_invoice(tally.engine, tenant_id, again.late_invoice_id).invoice.total_minor == 7
    finalize_invoice(tally.engine, tally.clock, tenant_id, again.late_invoice_id)
    assert _flags(tally, tenant_id).count(("late_event", None)) == 0
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 100 + 50 + 7


def test_a_retraction_after_the_draft_was_made_is_credited_even_past_the_lookback(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    # Months later (past the 92 days for which runs measure an ended period again anyway), 3
    # January calls are retracted: the next draft carries -3. Two more are retracted before that
    # draft is finalized by hand. Only the open flags keep January measured now: if finalizing
    # resolved the two as well, they would never be credited and the customer would stay overbilled.
    customer_id, _, _, ids = _january_billed(tally, tenant_id, "next_invoice")
    advance_test_clock(tally.engine, tally.clock, tenant_id, _clock_of(tally, tenant_id, customer_id), at(6, 2))
    june = _draft(tally, tenant_id, customer_id)  # May's usage and June's fee, made by the advance
    assert june is not None
    finalize_invoice(tally.engine, tally.clock, tenant_id, june.id)
    later = FixedClock(at(6, 3))
    for event_id in ids[:3]:
        correct_event(tally.engine, later, tenant_id, CorrectionInput(event_id=event_id, kind="retract"))
    run = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert run.invoice_id is not None
    for event_id in ids[3:5]:
        correct_event(tally.engine, later, tenant_id, CorrectionInput(event_id=event_id, kind="retract"))
    finalize_invoice(tally.engine, tally.clock, tenant_id, run.invoice_id)
    assert _january_usage_carried(tally, tenant_id, drafts=False) == 97
    assert _flags(tally, tenant_id).count(("retract", None)) == 2

    again = bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
    assert again.invoice_id is not None
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 95


def _ended_with_january(tally: Tally, tenant_id: uuid.UUID) -> tuple[uuid.UUID, str]:
    """(customer, external id): on the system's clock (fixed clocks here; a test clock's customer
    is looked at every run), `basic` from January 1, canceled for February 1, 10 calls on January 5.
    After January's invoice nothing is ever due for it again."""
    setup_catalog(tally, tenant_id)
    customer_id = make_customer(tally, tenant_id)
    external = external_id(tally, tenant_id, customer_id)
    created = create_subscription(
        tally.engine,
        FixedClock(at(1, 1)),
        tenant_id,
        SubscriptionInput(customer_id=customer_id, plan=PlanChoice(plan_code="basic")),
    )
    cancel_subscription(tally.engine, FixedClock(at(1, 2)), tenant_id, created.row.id, Cancellation(effective=at(2, 1)))
    _ingest(tally, tenant_id, external, [at(1, 5)] * 10, at(1, 6))
    return customer_id, external


def test_a_late_call_for_a_customer_with_nothing_else_due_is_billed_by_the_scheduled_run(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    # After January's invoice nothing is due for the customer ever again; a late January call must
    # still make the scheduled run look at it.
    customer_id, external = _ended_with_january(tally, tenant_id)
    february = FixedClock(at(2, 2))
    run_billing(tally.engine, february, tenant_id=tenant_id)
    january = _draft(tally, tenant_id, customer_id)
    assert january is not None
    finalize_invoice(tally.engine, february, tenant_id, january.id)
    run_billing(tally.engine, february, tenant_id=tenant_id)
    assert run_billing(tally.engine, FixedClock(at(2, 5)), tenant_id=tenant_id).customers == ()  # nothing due

    _ingest(tally, tenant_id, external, [at(1, 20)] * 4, at(2, 10))
    run = run_billing(tally.engine, FixedClock(at(2, 11)), tenant_id=tenant_id)
    assert [item.customer_id for item in run.customers] == [customer_id]
    correction = _draft(tally, tenant_id, customer_id)
    assert correction is not None and correction.subtotal_minor == 4


def test_a_call_that_arrived_between_the_draft_and_its_finalizing_is_billed_by_the_next_run(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    # Not late when it arrived (January was not closed yet), and not on the draft either (it was
    # computed before): finalizing makes the customer due, so the next scheduled run measures
    # January again and bills the call, though nothing else is ever due for this customer.
    customer_id, external = _ended_with_january(tally, tenant_id)
    run_billing(tally.engine, FixedClock(at(2, 2)), tenant_id=tenant_id)
    january = _draft(tally, tenant_id, customer_id)
    assert january is not None and january.subtotal_minor == 3000 + 10  # the fee and 10 calls
    _ingest(tally, tenant_id, external, [at(1, 31)], at(2, 2, 12))
    finalize_invoice(tally.engine, FixedClock(at(2, 3)), tenant_id, january.id)
    assert _flags(tally, tenant_id) == []  # it was not late when it arrived

    run = run_billing(tally.engine, FixedClock(at(2, 4)), tenant_id=tenant_id)
    assert [item.customer_id for item in run.customers] == [customer_id]
    correction = _draft(tally, tenant_id, customer_id)
    assert correction is not None and correction.subtotal_minor == 1
    assert _january_usage_carried(tally, tenant_id, drafts=True) == 11
