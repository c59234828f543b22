"""A year of billing for five customers on one test clock, driven only through the app's use cases,
with drafts finalized by the clock's own hook once their grace period has passed.

The customers and their stories (all subscribe on 2026-01-01, UTC, monthly):

- **acme** starts on `starter`, upgrades to `growth` on March 16 (at once, prorated), and on August 16
  schedules a downgrade back to `starter` for the end of the period (September 1). Each month one
  of its calls on the last evening arrives during the grace period and joins the draft. Pays every
  invoice.
- **birch** is on `growth` with a 20 %-off coupon for three periods and a 10 % tax rate; on June 16
  it downgrades to `starter` at once (the unused fee credited back, which makes July's total
  negative); that and a partial credit note against its paid June invoice become its balance, which
  pays part of August's invoice. Pays every invoice.
- **cedar** is on `scale` with a promotional grant (usage only, priority 0, expires April 1) and a
  prepaid grant (priority 1, expires April 15): both partly used, their remainders expire (promotion
  expense given back, breakage revenue). A minimum commitment over the second quarter is trued up
  on July's invoice; an 8.5 % tax on the `api` product only. A call of September arrives on October
  16, after September's invoice was finalized. Pays every invoice.
- **dale** is on `starter` with a prepaid grant scoped to the token meter it never uses: it expires
  unused on June 1, all of it breakage. A call of January 20 arrives on February 16 (January's
  usage already invoiced) and a batch is sent twice. Stops paying from October; a partial credit
  note reduces what it owes on November's invoice.
- **elm** starts on `starter`, schedules an upgrade to `growth` for the end of May's period, and
  sends token events of June and July weeks late. Pays all but its last invoice.

Checked after every month: each invoice's total is its lines less credits plus tax and its amount
due follows from its total and the balance used; every ledger transaction balances and the trial
balance is zero; each customer's receivable is what their open invoices still ask; the integrity
job reports nothing. At the end: every usage event (late ones included) lies in exactly one billed
usage key, whose billed quantity and amount are those recomputed from the raw events; each grant's
balance is what was granted less what invoices applied and what expired; invoice numbers are
gapless; a few amounts of the stories; and billing, finalizing, expiring and advancing again
change no row and no balance.

The year runs once per module (a module fixture, about 15 s); each check is its own test, so a
check that fails (its smallest case in tests/app/test_billing_year_findings.py) can be marked
xfail(strict=True) on its own without hiding the others. None is marked today.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from tally.adapters.clock import FixedClock
from tally.adapters.pagination import PageRequest
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_items import PlanChoice
from tally.app._subscription_write import When
from tally.app.advance_test_clock import advance_test_clock
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.app.check_ledger_integrity import run_integrity_check
from tally.app.create_commitment import CommitmentInput, create_commitment
from tally.app.create_coupon import CouponInput, create_coupon
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.create_tax_rate import TaxRateInput, create_tax_rate
from tally.app.create_test_clock import TestClockInput, create_test_clock
from tally.app.expire_credit_grants import expire_credit_grants
from tally.app.finalize_due_invoices import HOOK_NAME, finalize_due_invoices, register_finalization_hook
from tally.app.grant_credits import GrantInput, grant_credits
from tally.app.ingest_events import ingest_events
from tally.app.invoice_queries import InvoiceView, get_invoice
from tally.app.invoicing_term_queries import list_terms
from tally.app.issue_credit_note import CreditNoteInput, issue_invoice_credit_note
from tally.app.record_invoice_payment import PaymentInput, record_invoice_payment
from tally.app.redeem_coupon import RedemptionInput, redeem_coupon
from tally.app.run_billing import run_billing
from tally.app.tenants import create_tenant
from tally.app.test_clock_hooks import unregister_advance_hook
from tally.bootstrap import Tally
from tests.invoicing_support import balance, external_id
from tests.subscription_support import apply_test_catalog, make_customer

GRACE = timedelta(hours=24)
START = datetime(2026, 1, 1, tzinfo=UTC)
FREE_CALLS = 10  # per period and region, then CALL_PRICE_MINOR each
CALL_PRICE_MINOR = 25
TOKENS_PER_CENT = 500  # $0.00002 a token

CATALOG = """
meters:
  - {code: api_calls, event_type: api.call, aggregation: count, group_by: [region]}
  - {code: tokens, event_type: llm.completion, aggregation: sum, value_property: tokens, group_by: [model]}
products:
  - {code: platform, name: Platform}
  - {code: api, name: API}
prices:
  - {code: starter_fee, product: platform, model: flat_fee, currency: USD, amount: 49}
  - {code: growth_fee, product: platform, model: flat_fee, currency: USD, amount: 199}
  - {code: scale_fee, product: platform, model: flat_fee, currency: USD, amount: 499}
  - code: calls
    product: api
    model: graduated
    currency: USD
    meter: api_calls
    tiers: [{up_to: 10, unit_price: 0}, {unit_price: 0.25}]
  - {code: tokens, product: api, model: per_unit, currency: USD, meter: tokens, unit_price: 0.00002}
plans:
  - {code: starter, name: Starter, prices: [starter_fee, calls, tokens]}
  - {code: growth, name: Growth, prices: [growth_fee, calls, tokens]}
  - {code: scale, name: Scale, prices: [scale_fee, calls, tokens]}
"""

PLANS = {"acme": "starter", "birch": "growth", "cedar": "scale", "dale": "starter", "elm": "starter"}
# Calls per half month (a range) and whether the customer also uses tokens.
USAGE = {"acme": (6, 14, True), "birch": (10, 20, True), "cedar": (4, 9, True), "dale": (8, 16, False)}
USAGE["elm"] = (3, 8, True)
REGIONS = ("us", "eu")
MODELS = ("small", "large")


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A moment of 2026; month 13 is January 2027."""
    year, month = (2027, 1) if month == 13 else (2026, month)
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Sent:
    """One usage event as sent: what a meter must count from it."""

    event_id: str
    customer: str  # external id
    meter: str
    group: str
    quantity: int
    timestamp: datetime
    delivered_at: datetime | None = None


@dataclass
class Year:
    tally: Tally
    tenant_id: uuid.UUID
    clock_id: uuid.UUID
    customers: dict[str, uuid.UUID] = field(default_factory=dict)
    externals: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, uuid.UUID] = field(default_factory=dict)
    grants: dict[str, uuid.UUID] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    late_answers: dict[str, bool] = field(default_factory=dict)  # event id → answered `late`
    now: datetime = START

    def advance(self, moment: datetime) -> None:
        advance_test_clock(self.tally.engine, self.tally.clock, self.tenant_id, self.clock_id, moment)
        self.now = moment

    def send(self, events: list[Sent], *, delivered_at: datetime, again: bool = False) -> None:
        """Ingest `events` as received at `delivered_at`, through the ingest use case. `again`: the
        batch was sent before, every event of it must be answered `duplicate` and counts nothing."""
        raw = [
            {
                "id": event.event_id,
                "customer": event.customer,
                "type": "api.call" if event.meter == "api_calls" else "llm.completion",
                "timestamp": event.timestamp.isoformat(),
                "properties": {"region": event.group}
                if event.meter == "api_calls"
                else {"model": event.group, "tokens": event.quantity},
            }
            for event in events
        ]
        result = ingest_events(self.tally.engine, FixedClock(delivered_at), self.tenant_id, raw)
        expected = (0, len(events)) if again else (len(events), 0)
        assert (result.accepted, result.duplicate, result.rejected) == (*expected, 0)
        if not again:
            self.sent.extend(replace(event, delivered_at=delivered_at) for event in events)
            self.late_answers.update((outcome.event_id or "", outcome.late) for outcome in result.outcomes)

    def invoices(self, customer: str | None = None) -> list[InvoiceView]:
        with psycopg_transaction(self.tally.engine) as connection:
            rows = connection.execute(
                """SELECT id FROM invoices WHERE tenant_id = %s AND (%s::uuid IS NULL OR customer_id = %s::uuid)
                   ORDER BY created_at, id""",
                (self.tenant_id, self.customers.get(customer or ""), self.customers.get(customer or "")),
            ).fetchall()
        return [get_invoice(self.tally.engine, self.tenant_id, row[0]) for row in rows]


def usage_of(name: str, external: str, start: datetime, end: datetime) -> list[Sent]:
    """A fixed, seeded sample of a customer's usage with timestamps in [start, end), at noon."""
    low, high, tokens = USAGE[name]
    rng = random.Random(f"{name}:{start.isoformat()}")
    days = (end - start).days
    events = []
    for index in range(rng.randint(low, high)):
        moment = start + timedelta(days=rng.randrange(days), hours=12, minutes=index)
        events.append(Sent(f"{name}-{uuid.uuid4().hex}", external, "api_calls", rng.choice(REGIONS), 1, moment))
    for index in range(rng.randint(1, 4) if tokens else 0):
        moment = start + timedelta(days=rng.randrange(days), hours=13, minutes=index)
        quantity = rng.randrange(1_000, 40_000)
        events.append(Sent(f"{name}-{uuid.uuid4().hex}", external, "tokens", rng.choice(MODELS), quantity, moment))
    return events


def one_call(name: str, year: Year, moment: datetime) -> Sent:
    return Sent(f"{name}-{uuid.uuid4().hex}", year.externals[name], "api_calls", "eu", 1, moment)


def _set_up(tally: Tally, tenant_id: uuid.UUID) -> Year:
    apply_test_catalog(tally, tenant_id, CATALOG)
    clock = create_test_clock(tally.engine, tally.clock, tenant_id, TestClockInput(frozen_time=START))
    year = Year(tally, tenant_id, clock.id)
    engine, system = tally.engine, tally.clock
    for name, plan in PLANS.items():
        customer_id = make_customer(tally, tenant_id, test_clock_id=clock.id)
        year.customers[name] = customer_id
        year.externals[name] = external_id(tally, tenant_id, customer_id)
        year.subscriptions[name] = create_subscription(
            engine, system, tenant_id, SubscriptionInput(customer_id=customer_id, plan=PlanChoice(plan_code=plan))
        ).row.id
    customers = year.customers

    coupon = create_coupon(
        engine,
        system,
        tenant_id,
        CouponInput(code="welcome20", duration="repeating", duration_periods=3, percent_off=Decimal(20)),
    )
    redeem_coupon(engine, system, tenant_id, RedemptionInput(coupon_id=coupon.id, customer_id=customers["birch"]))
    create_tax_rate(
        engine, system, tenant_id, TaxRateInput(name="Sales tax", percent=Decimal(10), customer_id=customers["birch"])
    )
    create_tax_rate(
        engine,
        system,
        tenant_id,
        TaxRateInput(name="API tax", percent=Decimal("8.5"), customer_id=customers["cedar"], product="api"),
    )
    grants = (
        ("cedar_promotional", "cedar", "promotional", 10_000, 0, at(4, 1), "usage", ()),
        ("cedar_prepaid", "cedar", "prepaid", 250_000, 1, at(4, 15), "all", ()),
        ("dale_prepaid", "dale", "prepaid", 5_000, 0, at(6, 1), "meters", ("tokens",)),
    )
    for key, name, kind, amount, priority, expires_at, scope, ids in grants:
        grant = GrantInput(
            customer_id=customers[name],
            kind=kind,
            amount_minor=amount,
            priority=priority,
            expires_at=expires_at,
            scope_kind=scope,
            scope_ids=ids,
        )
        year.grants[key] = grant_credits(engine, system, tenant_id, grant).id
    create_commitment(
        engine,
        system,
        tenant_id,
        CommitmentInput(
            customer_id=customers["cedar"], minimum_minor=200_000, period_start=at(4, 1), period_end=at(7, 1)
        ),
    )
    return year


def _change_plan(year: Year, name: str, plan: str, effective: When) -> None:
    change = ItemsChange(plan=PlanChoice(plan_code=plan), effective=effective)
    change_subscription_items(year.tally.engine, year.tally.clock, year.tenant_id, year.subscriptions[name], change)


def _mid_month(year: Year, month: int) -> None:
    """What happens on the 16th, after the first half's usage is in."""
    if month == 2:  # January's invoice is final: a call of January 20 is late, and a batch is sent twice
        late = one_call("dale", year, at(1, 20, 15))
        year.send([late], delivered_at=year.now)
        again = [event for event in year.sent if event.customer == year.externals["dale"]][:3]
        year.send(again, delivered_at=year.now, again=True)
    elif month == 3:
        _change_plan(year, "acme", "growth", When.NOW)
    elif month == 5:
        _change_plan(year, "elm", "growth", When.PERIOD_END)
    elif month == 6:
        _change_plan(year, "birch", "starter", When.NOW)
    elif month == 7:  # June was invoiced on July 2
        year.send(
            [Sent("elm-late-june", year.externals["elm"], "tokens", "large", 12_345, at(6, 25, 9))],
            delivered_at=year.now,
        )
    elif month == 8:
        _change_plan(year, "acme", "starter", When.PERIOD_END)
        year.send(
            [Sent("elm-late-july", year.externals["elm"], "tokens", "small", 2_500, at(7, 30, 9))],
            delivered_at=year.now,
        )
    elif month == 10:  # September was invoiced on October 2
        year.send(
            [Sent("cedar-late-september", year.externals["cedar"], "tokens", "small", 50_000, at(9, 10, 8))],
            delivered_at=year.now,
        )


def _settle(year: Year, month: int) -> None:
    """On the 2nd, once drafts are final: payments, and the credit notes."""
    engine, system, tenant_id = year.tally.engine, year.tally.clock, year.tenant_id
    for name in PLANS:
        if name == "dale" and month >= 9:  # from the invoice of October 2 on
            continue
        if name == "elm" and month == 12:
            continue
        for view in year.invoices(name):
            if view.invoice.status == "open" and view.invoice.amount_remaining_minor > 0:
                payment = PaymentInput(amount_minor=view.invoice.amount_remaining_minor)
                record_invoice_payment(engine, system, tenant_id, view.invoice.id, payment)
    note: tuple[str, int, str] | None = {
        5: ("birch", 2_500, "product_unsatisfactory"),
        10: ("dale", 1_000, "billing_error"),
    }.get(month)
    if note is not None:
        name, amount_minor, reason = note
        latest = year.invoices(name)[-1].invoice
        assert latest.issued_at == year.now and latest.status in {"open", "paid"}
        issue_invoice_credit_note(
            engine, system, tenant_id, latest.id, CreditNoteInput(amount_minor=amount_minor, reason=reason)
        )


def _check_books(year: Year) -> None:
    """The invariants that must hold at any moment."""
    views = year.invoices()
    for view in views:
        invoice = view.invoice
        lines = sum(line.amount_minor for line in view.lines)
        assert invoice.total_minor == lines - invoice.credits_minor + invoice.tax_minor, invoice.id
        assert invoice.amount_due_minor == (
            invoice.total_minor - invoice.balance_applied_minor + invoice.balance_credited_minor
        ), invoice.id
        assert invoice.tax_minor == sum(int(tax["amount_minor"]) for tax in invoice.tax), invoice.id
    with psycopg_transaction(year.tally.engine) as connection:
        unbalanced = connection.execute(
            """SELECT transaction_id FROM ledger_entries WHERE tenant_id = %s GROUP BY transaction_id, unit_code
               HAVING sum(CASE WHEN direction = 'debit' THEN amount ELSE -amount END) <> 0""",
            (year.tenant_id,),
        ).fetchall()
        trial = connection.execute(
            """SELECT unit_code, sum(debits_posted - credits_posted) FROM ledger_accounts
               WHERE tenant_id = %s GROUP BY unit_code""",
            (year.tenant_id,),
        ).fetchall()
    assert unbalanced == []
    assert all(row[1] == 0 for row in trial), trial
    for name, customer_id in year.customers.items():
        owed = sum(
            view.invoice.amount_remaining_minor
            for view in views
            if view.invoice.customer_id == customer_id and view.invoice.status in {"open", "uncollectible"}
        )
        assert balance(year.tally, year.tenant_id, "accounts_receivable", year.externals[name]) == owed, name
    report = run_integrity_check(year.tally.engine, year.tally.clock, year.tenant_id)
    assert report.ok, report.discrepancies


def _snapshot(year: Year) -> tuple[Any, ...]:
    """Row counts of everything billing writes, and every account's balance."""
    tables = ("invoices", "invoice_lines", "invoice_payments", "credit_notes", "ledger_transactions", "ledger_entries")
    with psycopg_transaction(year.tally.engine) as connection:
        counts = tuple(
            connection.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", (year.tenant_id,)).fetchone()
            for table in tables
        )
        accounts = connection.execute(
            """SELECT code, coalesce(customer_id, ''), unit_code, debits_posted, credits_posted FROM ledger_accounts
               WHERE tenant_id = %s ORDER BY 1, 2, 3""",
            (year.tenant_id,),
        ).fetchall()
        drafts = connection.execute(
            "SELECT id, updated_at, total_minor FROM invoices WHERE tenant_id = %s AND status = 'draft' ORDER BY id",
            (year.tenant_id,),
        ).fetchall()
    return counts, tuple(accounts), tuple(drafts)


def _calls_minor(quantity: Decimal) -> int:
    return int(max(Decimal(0), quantity - FREE_CALLS) * CALL_PRICE_MINOR)


def _tokens_minor(quantity: Decimal) -> int:
    return int((quantity / TOKENS_PER_CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class BilledKey:
    """One billed usage key: its lines in sequence order (with the moment each was finalized) and
    the sent events that fall in its windows."""

    customer: str
    meter: str
    lines: tuple[Any, ...]
    finalized_at: tuple[datetime, ...]
    events: tuple[Sent, ...]


def _billed_usage(year: Year) -> list[BilledKey]:
    """Every usage key billed on a finalized invoice, each sent event placed in the keys whose
    customer, meter, group and windows hold it."""
    keys: dict[tuple[Any, ...], list[tuple[Any, datetime]]] = defaultdict(list)
    for view in year.invoices():
        assert view.invoice.status != "draft" and view.invoice.finalized_at is not None
        for line in view.lines:
            if line.key.kind.value == "usage":
                keys[(view.customer_external_id, line.key)].append((line, view.invoice.finalized_at))
    homes: dict[tuple[Any, ...], list[Sent]] = defaultdict(list)
    for event in year.sent:
        found = [
            (customer, key)
            for (customer, key), lines in keys.items()
            if customer == event.customer
            and lines[0][0].explanation["usage"]["meter"] == event.meter
            and key.group == (event.group,)
            and any(
                datetime.fromisoformat(window["start"]) <= event.timestamp < datetime.fromisoformat(window["end"])
                for window in lines[0][0].explanation["usage"]["windows"]
            )
        ]
        assert len(found) == 1, (event, found)  # billed exactly once: one key's windows hold it
        homes[found[0]].append(event)
    billed = []
    for (customer, key), pairs in keys.items():
        pairs.sort(key=lambda pair: pair[0].sequence)
        lines = tuple(pair[0] for pair in pairs)
        assert [line.sequence for line in lines] == list(range(len(lines))), key
        meter = lines[0].explanation["usage"]["meter"]
        finalized = tuple(pair[1] for pair in pairs)
        billed.append(BilledKey(customer, meter, lines, finalized, tuple(homes[(customer, key)])))
    return billed


def _amount_minor(meter: str, quantity: Decimal) -> int:
    return _calls_minor(quantity) if meter == "api_calls" else _tokens_minor(quantity)


def _check_grants(year: Year) -> dict[str, tuple[int, int, int]]:
    """Each grant's balance (read from its ledger account) against what was granted, applied by
    finalized invoices and expired. Returns (applied, expired, remaining) per grant."""
    applied: dict[str, int] = defaultdict(int)
    for view in year.invoices():
        for posting in view.invoice.postings:
            if posting["template"] == "credits_applied":
                grant = dict(posting["metadata"])["grant_id"]
                applied[grant] += sum(e["amount"] for e in posting["entries"] if e["direction"] == "debit")
    grants = {
        row.id: row
        for row in list_terms(year.tally.engine, year.tenant_id, "credit_grant", PageRequest(limit=100)).items
    }
    found = {}
    for key, grant_id in year.grants.items():
        grant = grants[grant_id]
        account = f"customer_credit.grant_{grant_id}"
        customer = next(name for name, customer_id in year.customers.items() if customer_id == grant.customer_id)
        ledger = balance(year.tally, year.tenant_id, account, year.externals[customer])
        with psycopg_transaction(year.tally.engine) as connection:
            row = connection.execute(
                """SELECT coalesce(sum(e.amount), 0) FROM ledger_transactions t JOIN ledger_entries e
                   ON e.transaction_id = t.id JOIN ledger_accounts a ON a.id = e.account_id
                   WHERE t.tenant_id = %s AND t.template = 'credits_expired' AND a.code = %s""",
                (year.tenant_id, account),
            ).fetchone()
        expired = int(row[0]) if row else 0
        assert grant.remaining_minor == ledger == grant.amount_minor - applied[str(grant_id)] - expired, key
        found[key] = (applied[str(grant_id)], expired, ledger)
    return found


@pytest.fixture(scope="module")
def year(tally: Tally) -> Iterator[Year]:
    """The year, run once for the module's checks (each of which reads it; the last one writes)."""
    tenant_id = create_tenant(tally.engine, f"test-year-{uuid.uuid4().hex[:8]}")
    register_finalization_hook(GRACE)  # as in production; the test session runs without it
    try:
        year = _set_up(tally, tenant_id)
        for month in range(1, 13):
            first, middle, last = at(month, 1), at(month, 16), at(month + 1, 1)
            for name in PLANS:
                year.send(usage_of(name, year.externals[name], first, middle), delivered_at=middle)
            year.advance(middle)
            _mid_month(year, month)
            for name in PLANS:
                year.send(usage_of(name, year.externals[name], middle, last), delivered_at=last)
            year.advance(last)
            # A call of the last evening arrives during the grace period, before the draft is final.
            year.send([one_call("acme", year, last - timedelta(minutes=30))], delivered_at=last + timedelta(hours=12))
            year.advance(last + timedelta(days=1))
            _settle(year, month)
            _check_books(year)
        yield year
    finally:
        unregister_advance_hook(HOOK_NAME)


def _lines(view: InvoiceView, kind: str) -> list[Any]:
    return [line for line in view.lines if line.key.kind.value == kind]


def _issued(year: Year, name: str, month: int) -> InvoiceView:
    """The customer's invoice issued in `month` (13: January 2027)."""
    (view,) = [
        view
        for view in year.invoices(name)
        if view.invoice.issued_at is not None and view.invoice.issued_at.replace(day=1, hour=0) == at(month, 1)
    ]
    return view


def test_every_invoice_is_final_numbered_without_gaps_and_the_books_hold(year: Year) -> None:
    views = year.invoices()
    assert len(views) == 5 * 13  # each customer: January's fee, then one a month through January 2027
    assert all(view.invoice.status in {"open", "paid"} for view in views)
    assert sorted(view.invoice.number or "" for view in views) == [f"INV-{n:06d}" for n in range(1, 66)]
    unpaid = {(view.customer_external_id, view.invoice.issued_at) for view in views if view.invoice.status == "open"}
    dale, elm = year.externals["dale"], year.externals["elm"]
    assert unpaid == {(dale, at(10, 2)), (dale, at(11, 2)), (dale, at(12, 2)), (dale, at(13, 2)), (elm, at(13, 2))}
    _check_books(year)


def test_every_usage_event_is_billed_exactly_once_and_for_the_right_amount(year: Year) -> None:
    billed = _billed_usage(year)
    assert len(billed) > 5 * 12 * 2
    assert sum(len(key.events) for key in billed) == len(year.sent)
    for key in billed:
        quantity = sum((Decimal(event.quantity) for event in key.events), Decimal(0))
        expected = _amount_minor(key.meter, quantity)
        assert sum(line.amount_minor for line in key.lines) == key.lines[-1].amount_minor_total == expected, key
    # Late events, sent after their period's invoice was final, are one correction each on the next
    # invoice, for what they add (a draft holding a correction is due at once: it closed when the
    # corrected period ended).
    corrections = set()
    for key in billed:
        if len(key.lines) == 1:
            continue
        assert len(key.lines) == 2, key
        on_time = [event for event in key.events if event.delivered_at and event.delivered_at <= key.finalized_at[0]]
        first_minor = _amount_minor(key.meter, sum((Decimal(event.quantity) for event in on_time), Decimal(0)))
        assert key.lines[1].amount_minor == key.lines[1].amount_minor_total - first_minor != 0, key
        corrections.add((key.customer, key.lines[0].key.service_start.month, key.finalized_at[1].month))
    externals = year.externals
    assert corrections == {
        (externals["dale"], 1, 3),
        (externals["elm"], 6, 8),
        (externals["elm"], 7, 9),
        (externals["cedar"], 9, 11),
    }


def test_each_usage_line_shows_every_event_that_arrived_before_it_was_finalized(year: Year) -> None:
    for key in _billed_usage(year):
        arrived = [event for event in key.events if event.delivered_at and event.delivered_at <= key.finalized_at[-1]]
        assert key.lines[-1].quantity == sum(event.quantity for event in arrived), key


def test_events_for_invoiced_periods_are_answered_late(year: Year) -> None:
    late = {event_id for event_id, answered_late in year.late_answers.items() if answered_late}
    assert {"elm-late-june", "elm-late-july"} <= late


def test_plan_changes_coupon_tax_and_credit_note(year: Year) -> None:
    # acme: March 16's upgrade prorated over the 16 days left of March, on April's invoice.
    april = _issued(year, "acme", 4)
    proration = [
        (line.key.kind.value, line.amount_minor) for line in april.lines if line.key.service_start == at(3, 16)
    ]
    assert sorted(proration) == [("fixed_fee", round(19_900 * 16 / 31)), ("fixed_fee_credit", -round(4_900 * 16 / 31))]
    # Its downgrade at the end of August's period is prorated nowhere: September is a whole starter fee.
    september = _issued(year, "acme", 9)
    assert [line.amount_minor for line in _lines(september, "fixed_fee")] == [4_900]
    assert _lines(september, "fixed_fee_credit") == []
    # elm's upgrade at the end of May's period: June bills growth in full, nothing credited.
    june = _issued(year, "elm", 6)
    assert [line.amount_minor for line in _lines(june, "fixed_fee")] == [19_900]
    assert _lines(june, "fixed_fee_credit") == []

    # birch: 20 % off for three periods (fees of January to March, usage of January to March; what
    # follows, see the next test), 10 % tax on every invoice, the unused half of June's growth fee
    # credited back.
    birch = year.invoices("birch")
    discounted = sorted(
        {(line.key.reference.split(":")[1], line.key.service_start) for v in birch for line in _lines(v, "discount")}
    )
    assert [item for item in discounted if item[1] < at(4, 1)] == [
        *(("fixed_fee", at(month, 1)) for month in (1, 2, 3)),
        *(("usage", at(month, 1)) for month in (1, 2, 3)),
    ]
    assert [line.amount_minor for line in _lines(birch[0], "discount")] == [-3_980]
    for view in birch:
        base = sum(line.amount_minor for line in view.lines) - view.invoice.credits_minor
        assert view.invoice.tax_minor == int((Decimal(base) / 10).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    july = _issued(year, "birch", 7)
    downgrade = sorted(
        (line.key.kind.value, line.amount_minor)
        for line in july.lines
        if line.key.service_start == at(6, 16) and line.key.kind.value != "discount"
    )
    assert downgrade == [("fixed_fee", 2_450), ("fixed_fee_credit", -9_950)]
    # The credit note against June's paid invoice became balance, and so did July's negative total
    # (the credited growth fee outweighs the month); August's invoice used all of it and still owes.
    june = _issued(year, "birch", 6)
    assert [note.amount_minor for note in june.credit_notes] == [2_500]
    assert (june.invoice.amount_credited_minor, june.invoice.credited_against_due_minor) == (2_500, 0)
    assert july.invoice.total_minor < 0 and july.invoice.balance_credited_minor == -july.invoice.total_minor
    applied = [view.invoice.balance_applied_minor for view in birch]
    assert sum(applied) == 2_500 + july.invoice.balance_credited_minor == applied[7] < birch[7].invoice.total_minor
    assert balance(year.tally, year.tenant_id, "customer_credit.balance", year.externals["birch"]) == 0

    # dale: the credit note reduced what November's open invoice asks.
    november = _issued(year, "dale", 11).invoice
    assert november.credited_against_due_minor == 1_000
    assert november.amount_remaining_minor == november.amount_due_minor - 1_000 > 0


def test_a_coupon_for_three_periods_discounts_nothing_after_them(year: Year) -> None:
    discounted = {line.key.service_start for view in year.invoices("birch") for line in _lines(view, "discount")}
    assert discounted == {at(1, 1), at(2, 1), at(3, 1)}


def test_credits_expire_into_breakage_and_the_commitment_is_trued_up(year: Year) -> None:
    grants = _check_grants(year)
    promotional_applied, promotional_expired, _ = grants["cedar_promotional"]
    prepaid_applied, prepaid_expired, _ = grants["cedar_prepaid"]
    assert grants["dale_prepaid"] == (0, 5_000, 0)  # scoped to tokens, which dale never uses
    assert promotional_applied > 0 and promotional_expired > 0 and promotional_applied + promotional_expired == 10_000
    assert prepaid_applied > 0 and prepaid_expired > 0 and grants["cedar_prepaid"][2] == 0
    assert balance(year.tally, year.tenant_id, "breakage_revenue") == prepaid_expired + 5_000
    assert balance(year.tally, year.tenant_id, "promotions") == promotional_applied
    # The promotional grant paid usage only: never more on an invoice than its usage lines.
    for view in year.invoices("cedar"):
        for posting in view.invoice.postings:
            if posting["template"] == "credits_applied" and dict(posting["metadata"])["grant_id"] == str(
                year.grants["cedar_promotional"]
            ):
                used = sum(entry["amount"] for entry in posting["entries"] if entry["direction"] == "debit")
                assert used <= sum(line.amount_minor for line in _lines(view, "usage"))

    # cedar's second quarter: fees and usage short of $2,000, trued up when the quarter ends.
    spend = sum(
        line.amount_minor
        for view in year.invoices("cedar")
        for line in view.lines
        if line.key.kind.value in {"fixed_fee", "usage"} and at(4, 1) <= line.key.service_start < at(7, 1)
    )
    (true_up,) = [line for view in year.invoices("cedar") for line in _lines(view, "minimum_commitment")]
    assert true_up.amount_minor == 200_000 - spend > 0
    assert true_up.invoice_id == _issued(year, "cedar", 7).invoice.id
    # 8.5 % on the api product only, where no credit paid part of it.
    for view in year.invoices("cedar"):
        if view.invoice.credits_minor == 0:
            api = sum(line.amount_minor for line in view.lines if line.product == "api")
            assert view.invoice.tax_minor == int(
                (Decimal(api) * Decimal("0.085")).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            )


def test_billing_finalizing_expiring_and_advancing_again_change_nothing(year: Year) -> None:
    engine, system, tenant_id = year.tally.engine, year.tally.clock, year.tenant_id
    before = _snapshot(year)
    assert not any(run.changed for run in run_billing(engine, system, tenant_id=tenant_id).customers)
    assert finalize_due_invoices(engine, system, grace_period=GRACE, tenant_id=tenant_id).customers == ()
    assert all(run.grants_expired == 0 for run in expire_credit_grants(engine, system, tenant_id=tenant_id).customers)
    register_finalization_hook(GRACE)
    try:
        year.advance(year.now + timedelta(hours=6))  # every hook again, later the same day
    finally:
        unregister_advance_hook(HOOK_NAME)
    assert _snapshot(year) == before
    report = run_integrity_check(engine, system, tenant_id)
    assert report.ok, report.discrepancies
