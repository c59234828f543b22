"""A usage line explains itself down to the events, against the meter version it was billed with.

On real PostgreSQL: random usage (seeded) of a grouped sum meter and a grouped count meter, with a
retracted and an amended event, events outside the windows, of another customer, and in other
groups; a line's events are exactly the reference's (computed with the core's meter rules), and add
up to the line's quantity. A meter changed after billing never reinterprets a billed line; a line
written before lines recorded their meter version is explained with the version then in force.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tally.adapters.clock import FixedClock
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.advance_test_clock import advance_test_clock
from tally.app.backfill_meter_rollups import backfill_pending_versions
from tally.app.event_store import open_event_store
from tally.app.finalize_invoice import finalize_invoice
from tally.app.invoice_queries import LineEvents, LineEventsQuery, explain_line, get_invoice, list_line_events
from tally.app.meter_queries import resolve_version
from tally.app.roll_up_events import roll_up_events
from tally.app.update_meter import MeterUpdate, update_meter
from tally.bootstrap import Tally
from tally.core.invoicing import LineKind
from tally.core.metering.aggregation import MeteredEvent, matches, series_of
from tally.core.metering.meters import MeterVersion
from tally.core.metering.usage import Granularity, MatchedEvent, UsageQuery
from tally.core.rejections import Rejected
from tests.invoicing_support import at, customer_on_clock, subscribe
from tests.metering_support import Correction, Ledger, write_corrections, write_events
from tests.subscription_support import apply_test_catalog

CATALOG = """
meters:
  - {code: tokens, event_type: llm.completion, aggregation: sum, value_property: tokens, group_by: [model]}
  - {code: completions, event_type: llm.completion, aggregation: count, group_by: [model]}
products:
  - {code: platform, name: Platform}
  - {code: ai, name: AI}
prices:
  - {code: ai_fee, product: platform, model: flat_fee, currency: USD, amount: 10}
  - {code: tokens, product: ai, model: per_unit, currency: USD, meter: tokens, unit_price: 0.00001}
  - {code: completions, product: ai, model: per_unit, currency: USD, meter: completions, unit_price: 0.01}
plans:
  - code: ai
    name: AI
    prices: [ai_fee, tokens, completions]
"""

MODELS = ("small", "large", None)  # None: the property is missing (a group of its own)


def _random_events(generator: random.Random, customer: str, other: str) -> list[MeteredEvent]:
    """A few hundred completions: most in January (the billed window), some before and after it,
    some of another customer, some of another type, a few with a value the sum meter skips."""
    events: list[MeteredEvent] = []
    for index in range(320):
        roll = generator.random()
        moment = at(1, 1) + timedelta(seconds=generator.randrange(0, 31 * 86_400))
        owner, kind = customer, "llm.completion"
        if roll < 0.06:
            moment = at(1, 1) - timedelta(seconds=generator.randrange(1, 5 * 86_400))  # before the window
        elif roll < 0.12:
            moment = at(2, 1) + timedelta(seconds=generator.randrange(0, 3600))  # after it (February)
        elif roll < 0.17:
            owner = other
        elif roll < 0.21:
            kind = "llm.embedding"
        properties: dict[str, Any] = {
            "tokens": generator.randrange(1, 5000),
            "tier": generator.choice(["free", "paid"]),
        }
        model = generator.choice(MODELS)
        if model is not None:
            properties["model"] = model
        if index % 53 == 0:
            properties["tokens"] = "lots"  # not a number: skipped by the sum, still a completion
        events.append(MeteredEvent(f"ev-{index:04d}-{uuid.uuid4().hex[:6]}", owner, kind, moment, properties))
    # One event exactly at the window's end (excluded) and one exactly at its start (included).
    events.append(MeteredEvent("ev-at-end", customer, "llm.completion", at(2, 1), {"tokens": 7, "model": "small"}))
    events.append(MeteredEvent("ev-at-start", customer, "llm.completion", at(1, 1), {"tokens": 5, "model": "small"}))
    return events


def _roll_up(tally: Tally) -> None:
    backfill_pending_versions(tally.engine, FixedClock(at(1, 1)), versions_max=None)
    while roll_up_events(tally.engine).batches:
        pass


def _billed_january(tally: Tally, tenant_id: uuid.UUID, seed: int) -> tuple[uuid.UUID, str, Ledger, uuid.UUID]:
    """A customer on the AI plan from January 1 with random usage, one retraction and one
    amendment, billed through February 1 (01:00): (invoice id, external id, what was written, clock)."""
    apply_test_catalog(tally, tenant_id, CATALOG)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id, "ai")
    generator = random.Random(seed)
    ledger = Ledger()
    events = _random_events(generator, external, f"{external}-other")
    write_events(tally.engine, tenant_id, events)
    ledger.add_events(events)
    january = [e for e in events if e.customer == external and e.type == "llm.completion" and at(1, 1) < e.timestamp]
    january = [e for e in january if e.timestamp < at(2, 1) and isinstance(e.properties["tokens"], int)]
    retracted, amended = january[0], january[1]
    # The amendment moves the event to another group with another value.
    moved = "large" if amended.properties.get("model") != "large" else "small"
    corrections = [
        Correction(retracted.event_id, "retract"),
        Correction(amended.event_id, "amend", {"tokens": 4242, "model": moved, "tier": "paid"}),
    ]
    write_corrections(tally.engine, tenant_id, corrections)
    ledger.add_corrections(corrections)
    _roll_up(tally)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1, 1))
    with psycopg_transaction(tally.engine) as connection:
        draft = store.draft_of(connection, tenant_id, customer_id, "USD")
    assert draft is not None
    return draft.id, external, ledger, clock_id


def _usage_lines(
    tally: Tally, tenant_id: uuid.UUID, invoice_id: uuid.UUID, meter: str | None = None
) -> list[store.LineRow]:
    """January's usage lines of the invoice (of one meter)."""
    lines = get_invoice(tally.engine, tenant_id, invoice_id).lines
    usage = [
        line
        for line in lines
        if line.key.kind is LineKind.USAGE
        and line.key.service_start == at(1, 1)
        and meter in (None, line.explanation["usage"]["meter"])
    ]
    assert usage, [line.key for line in lines]
    return usage


def _all_events(
    tally: Tally, tenant_id: uuid.UUID, invoice_id: uuid.UUID, line_id: uuid.UUID, limit: int
) -> list[MatchedEvent]:
    """Every page of a line's events, in order."""
    found: list[MatchedEvent] = []
    cursor = None
    for _ in range(1000):
        page = list_line_events(
            tally.engine, tenant_id, invoice_id, line_id, LineEventsQuery(cursor=cursor, limit=limit)
        )
        assert len(page.events) <= limit
        found.extend(page.events)
        if page.next_cursor is None:
            return found
        assert len(page.events) == limit
        cursor = page.next_cursor
    raise AssertionError("a listing that never ends")


def _reference(ledger: Ledger, meter: MeterVersion, customer: str, group: Sequence[str | None]) -> list[str]:
    """The ids of the events the meter counts for the line, by the core's rules, in listing order."""
    definition = meter.definition
    counted = []
    for event in ledger.effective():
        if event.customer != customer or not (at(1, 1) <= event.timestamp < at(2, 1)):
            continue
        if not matches(definition, event) or series_of(definition, event.properties) != tuple(group):
            continue
        if definition.value_property is not None and not isinstance(event.properties.get("tokens"), int):
            continue  # skipped: its value is not a number
        counted.append(event)
    counted.sort(key=lambda event: (event.timestamp, event.event_id.encode()))
    return [event.event_id for event in counted]


@pytest.mark.parametrize("seed", [7, 2026])
def test_a_lines_events_are_exactly_what_it_was_measured_from(tally: Tally, tenant_id: uuid.UUID, seed: int) -> None:
    invoice_id, external, ledger, _ = _billed_january(tally, tenant_id, seed)
    lines = _usage_lines(tally, tenant_id, invoice_id)
    # Both meters, every model seen (including the missing one), each a line of its own.
    assert {line.key.group for line in lines} >= {("small",), ("large",), (None,)}
    assert {line.explanation["usage"]["meter"] for line in lines} == {"tokens", "completions"}
    retracted_id = ledger.corrections[0].event_id
    amended_id = ledger.corrections[1].event_id
    listed_anywhere: set[str] = set()
    for line in lines:
        meter_code = line.explanation["usage"]["meter"]
        meter = resolve_version(tally.engine, tenant_id, meter_code)
        events = _all_events(tally, tenant_id, invoice_id, line.id, limit=17)
        ids = [event.event_id for event in events]
        assert ids == _reference(ledger, meter, external, line.key.group), (meter_code, line.key.group)
        assert len(set(ids)) == len(ids)
        assert line.quantity is not None
        if meter_code == "tokens":
            assert sum((event.value for event in events if event.value is not None), Decimal(0)) == line.quantity
            assert all(event.value is not None for event in events)
        else:
            assert all(event.value == 1 for event in events)
            assert len(events) == line.quantity
        # The explanation counts the same events, and says where they are.
        explained = explain_line(tally.engine, tenant_id, invoice_id, line.id)
        assert explained.event_count == len(events)
        assert sum((w.value or Decimal(0) for w in explained.windows), Decimal(0)) == line.quantity
        listed_anywhere.update(ids)
        by_id = {event.event_id: event for event in events}
        if amended_id in by_id:
            assert '"tokens": 4242' in by_id[amended_id].properties_json
            assert meter_code != "tokens" or by_id[amended_id].value == 4242
    assert retracted_id not in listed_anywhere
    assert amended_id in listed_anywhere
    assert "ev-at-start" in listed_anywhere and "ev-at-end" not in listed_anywhere
    # Nothing of the other customer, of another type, or outside January.
    written = {event.event_id: event for event in ledger.events}
    for event_id in listed_anywhere:
        event = written[event_id]
        assert (event.customer, event.type) == (external, "llm.completion")
        assert at(1, 1) <= event.timestamp < at(2, 1)


def test_pages_are_keyset_pages(tally: Tally, tenant_id: uuid.UUID) -> None:
    invoice_id, _, _, _ = _billed_january(tally, tenant_id, 11)
    line = next(
        line
        for line in _usage_lines(tally, tenant_id, invoice_id)
        if line.explanation["usage"]["meter"] == "completions"
    )
    every = _all_events(tally, tenant_id, invoice_id, line.id, limit=1000)
    assert len(every) > 10
    for limit in (1, 3, len(every) - 1, len(every)):
        assert [e.event_id for e in _all_events(tally, tenant_id, invoice_id, line.id, limit)] == [
            e.event_id for e in every
        ]
    first = list_line_events(tally.engine, tenant_id, invoice_id, line.id, LineEventsQuery(limit=len(every)))
    assert first.next_cursor is None and not first.has_more
    # Events at the same moment are ordered by id, and the cursor splits them exactly.
    ordered = [(e.timestamp, e.event_id.encode()) for e in every]
    assert ordered == sorted(ordered)


def test_a_meter_changed_after_billing_never_reinterprets_the_line(tally: Tally, tenant_id: uuid.UUID) -> None:
    invoice_id, external, _, _ = _billed_january(tally, tenant_id, 5)
    finalize_invoice(tally.engine, tally.clock, tenant_id, invoice_id)
    lines = [
        line for line in _usage_lines(tally, tenant_id, invoice_id) if line.explanation["usage"]["meter"] == "tokens"
    ]
    billed_version = resolve_version(tally.engine, tenant_id, "tokens")
    for line in lines:
        assert line.explanation["usage"]["meter_version"] == billed_version.version == 1
        assert line.explanation["usage"]["meter_version_id"] == billed_version.version_id
    # Version 2 counts paid completions only.
    updated = update_meter(
        tally.engine,
        FixedClock(at(2, 15)),
        tenant_id,
        "tokens",
        MeterUpdate(definition={"filters": [{"property": "tier", "operator": "equals", "value": "paid"}]}),
    )
    assert updated.version_created and updated.state.version.version == 2
    _roll_up(tally)
    latest = updated.state.version.to_core()
    reinterpreted = 0
    for line in lines:
        explained = explain_line(tally.engine, tenant_id, invoice_id, line.id)
        assert explained.meter is not None and not explained.meter.inferred
        assert explained.meter.version.version == 1
        assert sum((w.value or Decimal(0) for w in explained.windows), Decimal(0)) == line.quantity
        events = _all_events(tally, tenant_id, invoice_id, line.id, limit=100)
        assert sum((e.value or Decimal(0) for e in events), Decimal(0)) == line.quantity
        assert any('"tier": "free"' in e.properties_json for e in events)
        # The latest version would tell another story: the test would see a reinterpretation.
        now = open_event_store(tally.engine).usage(
            tenant_id,
            UsageQuery(
                customer=external,
                meter=latest,
                start=at(1, 1),
                end=at(2, 1),
                granularity=Granularity.TOTAL,
                group_by=latest.definition.group_by,
            ),
        )
        measured = sum((row.value or Decimal(0) for row in now.rows if row.group == line.key.group), Decimal(0))
        reinterpreted += measured != line.quantity
    assert reinterpreted == len(lines)


def _strip_meter_version(tally: Tally, line_id: uuid.UUID, *, created_at: datetime | None = None) -> None:
    """Make a draft's line read as one written before lines recorded their meter version (lines are
    never edited: the draft's line is deleted and written again, as a refresh does)."""
    with psycopg_transaction(tally.engine) as connection:
        connection.execute(
            "CREATE TEMP TABLE old_line ON COMMIT DROP AS SELECT * FROM invoice_lines WHERE id = %s", (line_id,)
        )
        connection.execute("DELETE FROM invoice_lines WHERE id = %s", (line_id,))
        connection.execute(
            """UPDATE old_line SET explanation = explanation #- '{usage,meter_version}' #- '{usage,meter_version_id}',
                                  created_at = coalesce(%s, created_at)""",
            (created_at,),
        )
        connection.execute("INSERT INTO invoice_lines SELECT * FROM old_line")


def test_a_line_without_its_meter_version_is_explained_with_the_version_then_in_force(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    invoice_id, _, _, _ = _billed_january(tally, tenant_id, 3)
    line = next(
        line for line in _usage_lines(tally, tenant_id, invoice_id) if line.explanation["usage"]["meter"] == "tokens"
    )
    _strip_meter_version(tally, line.id)
    # Version 2 is made after the line was written (February 1, 01:00 by the customer's clock).
    update_meter(
        tally.engine,
        FixedClock(at(3, 1)),
        tenant_id,
        "tokens",
        MeterUpdate(definition={"filters": [{"property": "tier", "operator": "equals", "value": "paid"}]}),
    )
    _roll_up(tally)
    explained = explain_line(tally.engine, tenant_id, invoice_id, line.id)
    assert "meter_version" not in explained.line.explanation["usage"]
    assert explained.meter is not None and explained.meter.inferred
    assert explained.meter.version.version == 1
    assert sum((w.value or Decimal(0) for w in explained.windows), Decimal(0)) == line.quantity
    page = list_line_events(tally.engine, tenant_id, invoice_id, line.id, LineEventsQuery(limit=1000))
    assert page.meter.inferred and page.meter.version.version == 1
    assert sum((e.value or Decimal(0) for e in page.events), Decimal(0)) == line.quantity

    # Written before any version existed (not derivable): the latest, still said to be inferred.
    _strip_meter_version(tally, line.id, created_at=datetime(2020, 1, 1, tzinfo=UTC))
    explained = explain_line(tally.engine, tenant_id, invoice_id, line.id)
    assert explained.meter is not None and explained.meter.inferred
    assert explained.meter.version.version == 2


def _code(call: Any) -> str:
    with pytest.raises(Rejected) as refused:
        call()
    return refused.value.rejection.code


def test_refusals_have_stable_codes_and_precedence(tally: Tally, tenant_id: uuid.UUID) -> None:
    invoice_id, _, _, _ = _billed_january(tally, tenant_id, 1)
    lines = get_invoice(tally.engine, tenant_id, invoice_id).lines
    fee = next(line for line in lines if line.key.kind is LineKind.FIXED_FEE)
    usage = _usage_lines(tally, tenant_id, invoice_id)[0]

    def events(invoice: uuid.UUID, line: uuid.UUID, **query: Any) -> LineEvents:
        return list_line_events(tally.engine, tenant_id, invoice, line, LineEventsQuery(**query))

    assert _code(lambda: events(invoice_id, fee.id)) == "invoice_line_has_no_usage"
    assert _code(lambda: events(invoice_id, uuid.uuid4())) == "invoice_line_not_found"
    assert _code(lambda: events(uuid.uuid4(), usage.id)) == "invoice_not_found"
    assert _code(lambda: events(invoice_id, usage.id, limit=0)) == "limit_out_of_range"
    assert _code(lambda: events(invoice_id, usage.id, limit=1001)) == "limit_out_of_range"
    assert _code(lambda: events(invoice_id, usage.id, cursor="not-a-cursor")) == "cursor_invalid"
    # Bad input is refused before anything is looked up.
    assert _code(lambda: events(uuid.uuid4(), uuid.uuid4(), limit=0)) == "limit_out_of_range"
    # Another tenant's line is not found.
    other = uuid.UUID(int=tenant_id.int ^ 1)
    assert _code(lambda: list_line_events(tally.engine, other, invoice_id, usage.id, LineEventsQuery())) == (
        "invoice_not_found"
    )
    explained = explain_line(tally.engine, tenant_id, invoice_id, fee.id)
    assert explained.meter is None and explained.event_count is None and explained.windows == ()
