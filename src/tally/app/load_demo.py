"""The demo: an AI company's catalog and five customers billed for three months on a test clock.

What it makes, all through the same use cases the API calls:

- a catalog (catalog-as-code): a seat fee per plan and token usage priced per model (`nova-mini`,
  `nova-max`, one meter each) with graduated tiers, in USD and EUR; plans `starter`, `team`,
  `team_eu`;
- the coupon `launch25` (25 % off the `starter` plan for three periods);
- the test clock "Tally demo", frozen at 2026-01-01, and five customers on it: one upgrading from
  `starter` to `team` on February 15, one paying with prepaid credits, one with the coupon, one
  billed in euros, one that stops paying;
- usage events generated from a fixed seed, delivered as the clock moves to February 1,
  February 15, March 1 and April 1. Each advance runs the billing run (the clock's hook); on the
  1st every draft is finalized, and the invoices of the month before are paid by bank transfer —
  except by the customer that stops paying.

Idempotent, like every write from outside: each step looks at what is already there and does only
what is missing — the catalog apply plans nothing, customers, subscriptions, grants and
redemptions are found before they are made, events are stored once per id, a clock already past a
moment is not moved, only drafts are finalized and only open invoices are paid. Loading the demo
again writes nothing, and a load that stopped half-way finishes where it stopped.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from tally.adapters.clock import Clock, FixedClock
from tally.adapters.pagination import PageRequest
from tally.adapters.postgres import invoicing_terms as term_store
from tally.adapters.postgres import subscriptions as subscription_store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.adapters.postgres.invoices import InvoiceRow
from tally.app._subscription_items import PlanChoice
from tally.app.advance_test_clock import advance_test_clock
from tally.app.apply_catalog import apply_catalog
from tally.app.catalog_files import parse_catalog_text
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.app.create_coupon import CouponInput, create_coupon
from tally.app.create_customer import CustomerInput, create_customer
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.create_test_clock import TestClockInput, create_test_clock
from tally.app.customer_queries import find_customer_by_external_id
from tally.app.finalize_invoice import finalize_invoice
from tally.app.grant_credits import GrantInput, grant_credits
from tally.app.ingest_events import ingest_events
from tally.app.invoice_queries import list_invoices
from tally.app.invoicing_term_queries import list_terms
from tally.app.record_invoice_payment import PaymentInput, record_invoice_payment
from tally.app.redeem_coupon import RedemptionInput, redeem_coupon
from tally.app.run_billing import run_billing
from tally.app.subscription_queries import list_subscriptions
from tally.app.test_clock_queries import get_test_clock, list_test_clocks
from tally.core.rejections import InvariantViolation, Rejected

DEMO_CLOCK_NAME = "Tally demo"
DEMO_START = datetime(2026, 1, 1, tzinfo=UTC)
# Where the clock stops: the usage since the last stop is delivered, then the clock moves there.
DEMO_STOPS = tuple(datetime(2026, month, day, tzinfo=UTC) for month, day in ((2, 1), (2, 15), (3, 1), (4, 1)))
DEMO_END = DEMO_STOPS[-1]
UPGRADE_AT = datetime(2026, 2, 15, tzinfo=UTC)
COUPON_CODE = "launch25"
# Changing the seed (or the profiles) changes every usage figure: the events of a loaded demo are
# stored by id, so a changed demo needs a fresh database.
USAGE_SEED = "tally-demo-1"
EVENTS_PER_MODEL_PER_DAY = 3
# Far more than the demo makes; a bound so a mistake in the loop fails loudly instead of paging on.
INVOICES_PER_CUSTOMER_MAX = 100
CREDITS_EXPIRE_AT = datetime(2027, 1, 1, tzinfo=UTC)
FINALIZED_STATUSES = frozenset({"open", "paid", "uncollectible"})

DEMO_CATALOG = """\
# The demo's catalog: an AI API company selling seats and tokens of two models.
meters:
  - code: tokens_nova_mini
    name: nova-mini tokens
    event_type: llm.completion
    aggregation: sum
    value_property: tokens
    filters: [{property: model, operator: equals, value: nova-mini}]
  - code: tokens_nova_max
    name: nova-max tokens
    event_type: llm.completion
    aggregation: sum
    value_property: tokens
    filters: [{property: model, operator: equals, value: nova-max}]

products:
  - {code: seats, name: Seats}
  - {code: inference, name: Inference, description: Tokens processed by the hosted models.}

prices:
  - {code: starter_seat, product: seats, model: per_unit, currency: USD, unit_price: 20, billing_timing: in_advance}
  - {code: team_seat, product: seats, model: per_unit, currency: USD, unit_price: 35, billing_timing: in_advance}
  - {code: team_seat_eur, product: seats, model: per_unit, currency: EUR, unit_price: 32, billing_timing: in_advance}
  # Per million tokens, in tiers: the more a month uses, the less each further million costs.
  - code: nova_mini_tokens
    product: inference
    model: graduated
    currency: USD
    meter: tokens_nova_mini
    quantity_transform: {divide_by: 1000000}
    tiers:
      - {up_to: 50, unit_price: 0.60}
      - {up_to: 500, unit_price: 0.45}
      - {unit_price: 0.30}
  - code: nova_max_tokens
    product: inference
    model: graduated
    currency: USD
    meter: tokens_nova_max
    quantity_transform: {divide_by: 1000000}
    tiers:
      - {up_to: 10, unit_price: 8.00}
      - {up_to: 100, unit_price: 6.50}
      - {unit_price: 5.00}
  - code: nova_mini_tokens_eur
    product: inference
    model: graduated
    currency: EUR
    meter: tokens_nova_mini
    quantity_transform: {divide_by: 1000000}
    tiers:
      - {up_to: 50, unit_price: 0.55}
      - {up_to: 500, unit_price: 0.42}
      - {unit_price: 0.28}
  - code: nova_max_tokens_eur
    product: inference
    model: graduated
    currency: EUR
    meter: tokens_nova_max
    quantity_transform: {divide_by: 1000000}
    tiers:
      - {up_to: 10, unit_price: 7.40}
      - {up_to: 100, unit_price: 6.00}
      - {unit_price: 4.60}

plans:
  - code: starter
    name: Starter
    prices: [{price: starter_seat, quantity: 3}, nova_mini_tokens, nova_max_tokens]
  - code: team
    name: Team
    prices: [{price: team_seat, quantity: 10}, nova_mini_tokens, nova_max_tokens]
  - code: team_eu
    name: Team (EUR)
    prices: [{price: team_seat_eur, quantity: 8}, nova_mini_tokens_eur, nova_max_tokens_eur]
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoCustomer:
    """One customer of the demo and its story."""

    external_id: str
    name: str
    email: str
    currency: str
    plan: str
    # Millions of tokens a month, per model, in January; `growth` multiplies it each month after.
    mini_tokens_millions: int
    max_tokens_millions: int
    growth: Decimal = Decimal(1)
    upgrade_to: str | None = None  # on UPGRADE_AT
    coupon: bool = False
    prepaid_minor: int = 0
    # Invoices issued at or after this moment stay open; earlier ones are paid on the next 1st.
    unpaid_from: datetime = DEMO_END


DEMO_CUSTOMERS = (
    DemoCustomer(
        external_id="lumen-labs",
        name="Lumen Labs",
        email="billing@lumenlabs.example",
        currency="USD",
        plan="starter",
        upgrade_to="team",
        mini_tokens_millions=40,
        max_tokens_millions=6,
        growth=Decimal("1.8"),
    ),
    DemoCustomer(
        external_id="pinecrest",
        name="Pinecrest Health",
        email="ap@pinecrest.example",
        currency="USD",
        plan="team",
        prepaid_minor=300_000,
        mini_tokens_millions=220,
        max_tokens_millions=30,
    ),
    DemoCustomer(
        external_id="brightwave",
        name="Brightwave Studio",
        email="accounts@brightwave.example",
        currency="USD",
        plan="starter",
        coupon=True,
        mini_tokens_millions=25,
        max_tokens_millions=3,
        growth=Decimal("1.2"),
    ),
    DemoCustomer(
        external_id="fjord-analytics",
        name="Fjord Analytics AS",
        email="faktura@fjord.example",
        currency="EUR",
        plan="team_eu",
        mini_tokens_millions=600,
        max_tokens_millions=120,
    ),
    DemoCustomer(
        external_id="quarry-robotics",
        name="Quarry Robotics",
        email="finance@quarry.example",
        currency="USD",
        plan="starter",
        mini_tokens_millions=12,
        max_tokens_millions=1,
        unpaid_from=datetime(2026, 3, 1, tzinfo=UTC),
    ),
)


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    """Where one demo customer stands once the demo is loaded. Amounts in the currency's minor units."""

    external_id: str
    name: str
    currency: str
    plan: str
    invoices: int  # finalized
    charges_minor: int  # what the invoices' lines charged, before discounts and credits
    discount_minor: int  # as a positive amount
    credits_used_minor: int
    paid_minor: int
    open_minor: int  # what finalized invoices still ask
    credits_left_minor: int


@dataclass(frozen=True, slots=True)
class DemoSummary:
    customers: tuple[CustomerSummary, ...]
    clock_time: datetime
    writes: int  # steps that wrote something this time (0 when the demo was loaded already)
    events_stored: int


@dataclass(slots=True)
class _Session:
    """One load of the demo: where it writes, and how much it wrote."""

    engine: Engine
    clock: Clock
    tenant_id: uuid.UUID
    writes: int = 0
    events_stored: int = 0


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A demo customer as stored."""

    story: DemoCustomer
    customer_id: uuid.UUID
    subscription_id: uuid.UUID


def load_demo(engine: Engine, clock: Clock, tenant_id: uuid.UUID) -> DemoSummary:
    """Load what is missing of the demo into the tenant, then summarize it."""
    session = _Session(engine, clock, tenant_id)
    # The company's catalog and coupon date from the day the demo starts.
    start = FixedClock(DEMO_START)
    applied = apply_catalog(engine, start, tenant_id, [parse_catalog_text("demo-catalog.yaml", DEMO_CATALOG)])
    session.writes += 0 if applied.plan.empty else 1
    coupon_id = _coupon(session, start)
    test_clock_id = _test_clock(session)
    loaded = [_customer(session, story, test_clock_id, coupon_id) for story in DEMO_CUSTOMERS]
    if _clock_time(session, test_clock_id) == DEMO_START:
        # The fees billed in advance for January: no advance has run the billing run yet.
        run_billing(engine, clock, tenant_id=tenant_id, customer_ids=tuple(item.customer_id for item in loaded))
    _close_month(session, loaded, DEMO_START)
    previous = DEMO_START
    for stop in DEMO_STOPS:
        if _clock_time(session, test_clock_id) < stop:
            _deliver_usage(session, previous, stop)
            advance_test_clock(engine, clock, tenant_id, test_clock_id, stop)
            session.writes += 1
        if stop == UPGRADE_AT:
            _upgrade(session, loaded)
        if stop.day == 1:
            _close_month(session, loaded, stop)
        previous = stop
    return DemoSummary(
        customers=tuple(_summarize(session, item) for item in loaded),
        clock_time=_clock_time(session, test_clock_id),
        writes=session.writes,
        events_stored=session.events_stored,
    )


def _coupon(session: _Session, clock: Clock) -> uuid.UUID:
    with psycopg_transaction(session.engine) as connection:
        found = term_store.get_coupon_by_code(connection, session.tenant_id, COUPON_CODE)
    if found is not None:
        return found.id
    session.writes += 1
    coupon = CouponInput(
        code=COUPON_CODE, duration="repeating", duration_periods=3, percent_off=Decimal(25), plan_codes=("starter",)
    )
    return create_coupon(session.engine, clock, session.tenant_id, coupon).id


def _test_clock(session: _Session) -> uuid.UUID:
    page = PageRequest(limit=100)  # a tenant has at most 100 test clocks: one page holds them all
    for test_clock in list_test_clocks(session.engine, session.tenant_id, page).items:
        if test_clock.name == DEMO_CLOCK_NAME:
            return test_clock.id
    session.writes += 1
    wanted = TestClockInput(frozen_time=DEMO_START, name=DEMO_CLOCK_NAME)
    return create_test_clock(session.engine, session.clock, session.tenant_id, wanted).id


def _clock_time(session: _Session, test_clock_id: uuid.UUID) -> datetime:
    return get_test_clock(session.engine, session.tenant_id, test_clock_id).frozen_time


def _customer(session: _Session, story: DemoCustomer, test_clock_id: uuid.UUID, coupon_id: uuid.UUID) -> _Loaded:
    engine, clock, tenant_id = session.engine, session.clock, session.tenant_id
    customer = find_customer_by_external_id(engine, tenant_id, story.external_id)
    if customer is None:
        session.writes += 1
        details = CustomerInput(
            external_id=story.external_id,
            name=story.name,
            email=story.email,
            currency=story.currency,
            test_clock_id=test_clock_id,
        )
        customer = create_customer(engine, clock, tenant_id, details)
    elif customer.test_clock_id != test_clock_id:
        raise Rejected.because(
            "demo_customer_exists_off_the_demo_clock",
            f"customer {story.external_id!r} exists but not on the test clock {DEMO_CLOCK_NAME!r}; "
            "load the demo into an empty tenant",
            "external_id",
        )
    if story.coupon and not _has_term(session, "coupon_redemption", customer.id):
        session.writes += 1
        redeem_coupon(engine, clock, tenant_id, RedemptionInput(coupon_id=coupon_id, customer_id=customer.id))
    if story.prepaid_minor and not _has_term(session, "credit_grant", customer.id):
        session.writes += 1
        grant = GrantInput(
            customer_id=customer.id,
            kind="prepaid",
            amount_minor=story.prepaid_minor,
            expires_at=CREDITS_EXPIRE_AT,
            priority=1,
        )
        grant_credits(engine, clock, tenant_id, grant)
    subscriptions = list_subscriptions(engine, clock, tenant_id, PageRequest(limit=10), customer_id=customer.id).items
    if subscriptions:
        return _Loaded(story, customer.id, subscriptions[-1].subscription.row.id)  # newest first: the first made
    session.writes += 1
    wanted = SubscriptionInput(customer_id=customer.id, plan=PlanChoice(plan_code=story.plan))
    return _Loaded(story, customer.id, create_subscription(engine, clock, tenant_id, wanted).row.id)


def _has_term(session: _Session, term: str, customer_id: uuid.UUID) -> bool:
    page = PageRequest(limit=1)
    return bool(list_terms(session.engine, session.tenant_id, term, page, customer_id=customer_id).items)


def usage_events(story: DemoCustomer, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The customer's `llm.completion` events in [start, end), the same on every call: each day's
    come from a generator seeded by the customer and the day, so any stretch can be made alone."""
    events: list[dict[str, Any]] = []
    day = start
    while day < end:
        months_in = day.month - DEMO_START.month + 12 * (day.year - DEMO_START.year)
        scale = story.growth**months_in
        generator = random.Random(f"{USAGE_SEED}:{story.external_id}:{day.date().isoformat()}")
        for model, millions in (("nova-mini", story.mini_tokens_millions), ("nova-max", story.max_tokens_millions)):
            # A month's tokens spread over about 30 days and a few calls a day, each within ±40 %.
            mean = Decimal(millions) * 1_000_000 * scale / 30 / EVENTS_PER_MODEL_PER_DAY
            for call in range(EVENTS_PER_MODEL_PER_DAY):
                moment = day + timedelta(seconds=generator.randrange(86_400))
                tokens = int(mean * generator.randrange(60, 141) / 100)
                events.append(
                    {
                        "id": f"demo-{story.external_id}-{day.date().isoformat()}-{model}-{call}",
                        "customer": story.external_id,
                        "type": "llm.completion",
                        "timestamp": moment.isoformat(),
                        "properties": {"model": model, "tokens": tokens},
                    }
                )
        day += timedelta(days=1)
    return events


def _deliver_usage(session: _Session, start: datetime, end: datetime) -> None:
    """The usage of [start, end) arrives as the clock reaches `end`, before the billing run there."""
    events = [event for story in DEMO_CUSTOMERS for event in usage_events(story, start, end)]
    result = ingest_events(session.engine, FixedClock(end), session.tenant_id, events)
    refused = [outcome for outcome in result.outcomes if outcome.rejection is not None]
    if refused:
        raise InvariantViolation(f"the demo's own usage was refused: {refused[0]}")
    session.events_stored += result.accepted


def _upgrade(session: _Session, loaded: Sequence[_Loaded]) -> None:
    for item in loaded:
        target = item.story.upgrade_to
        if target is None or _plan_code(session, item.subscription_id) == target:
            continue
        session.writes += 1
        change = ItemsChange(plan=PlanChoice(plan_code=target))
        change_subscription_items(session.engine, session.clock, session.tenant_id, item.subscription_id, change)


def _plan_code(session: _Session, subscription_id: uuid.UUID) -> str:
    """The plan of the subscription's latest start or items change."""
    with psycopg_transaction(session.engine) as connection:
        entries = subscription_store.timeline_of(connection, subscription_id)
        version_ids = [entry.plan_version_id for entry in entries if entry.plan_version_id is not None]
        version = (
            subscription_store.plan_version(connection, session.tenant_id, version_ids[-1]) if version_ids else None
        )
    return version.plan_code if version is not None else ""


def _close_month(session: _Session, loaded: Sequence[_Loaded], at: datetime) -> None:
    """On the 1st: finalize each draft, and take payment of the invoices issued before that are paid."""
    engine, clock, tenant_id = session.engine, session.clock, session.tenant_id
    for item in loaded:
        for invoice in _invoices(session, item.customer_id):
            if invoice.status == "draft":
                session.writes += 1
                finalize_invoice(engine, clock, tenant_id, invoice.id)
        for invoice in _invoices(session, item.customer_id):
            issued = invoice.issued_at
            if invoice.status != "open" or issued is None or issued >= at or issued >= item.story.unpaid_from:
                continue
            session.writes += 1
            payment = PaymentInput(amount_minor=invoice.amount_remaining_minor, reference=f"demo {invoice.number}")
            record_invoice_payment(engine, clock, tenant_id, invoice.id, payment)


def _invoices(session: _Session, customer_id: uuid.UUID) -> list[InvoiceRow]:
    """The customer's invoices, oldest first."""
    page = PageRequest(limit=INVOICES_PER_CUSTOMER_MAX)
    found = list_invoices(session.engine, session.tenant_id, page, customer_id=customer_id)
    if found.has_more:
        raise InvariantViolation(f"a demo customer has more than {INVOICES_PER_CUSTOMER_MAX} invoices")
    return sorted(found.items, key=lambda invoice: invoice.created_at)


def _summarize(session: _Session, item: _Loaded) -> CustomerSummary:
    finalized = [invoice for invoice in _invoices(session, item.customer_id) if invoice.status in FINALIZED_STATUSES]
    page = PageRequest(limit=100)
    grants = list_terms(session.engine, session.tenant_id, "credit_grant", page, customer_id=item.customer_id).items
    return CustomerSummary(
        external_id=item.story.external_id,
        name=item.story.name,
        currency=item.story.currency,
        plan=_plan_code(session, item.subscription_id),
        invoices=len(finalized),
        charges_minor=sum(invoice.subtotal_minor for invoice in finalized),
        discount_minor=-sum(invoice.discount_minor for invoice in finalized),
        credits_used_minor=sum(invoice.credits_minor for invoice in finalized),
        paid_minor=sum(invoice.amount_paid_minor for invoice in finalized),
        open_minor=sum(invoice.amount_remaining_minor for invoice in finalized if invoice.status != "paid"),
        credits_left_minor=sum(grant.remaining_minor for grant in grants),
    )
