"""The events behind a usage answer (`EventStore.matched_events`) against the reference, for every
aggregation that is made of values: on random events (seeded) with retractions and amendments, the
listed events of a window and group make exactly the reference answer."""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tally.app.event_store import open_event_store
from tally.bootstrap import Tally
from tally.core.metering.aggregation import MeteredEvent, distinct_key, reference_usage
from tally.core.metering.usage import Granularity, MatchedEvent, MatchedEventsQuery, UsageQuery
from tests.metering_support import Correction, Ledger, make_meter, write_corrections, write_events

T0 = datetime(2029, 5, 1, tzinfo=UTC)
WINDOWS = ((T0 + timedelta(hours=2), T0 + timedelta(hours=30)), (T0 + timedelta(hours=40), T0 + timedelta(hours=47)))


def _events(generator: random.Random) -> list[MeteredEvent]:
    events = []
    for index in range(250):
        value: Any = generator.choice([generator.randrange(0, 50), f"u{generator.randrange(0, 30)}", "x1", None])
        properties: dict[str, Any] = {"v": value, "region": generator.choice(["eu", "us"])}
        if value is None:
            del properties["v"]
        moment = T0 + timedelta(minutes=generator.randrange(0, 48 * 60))
        customer = "c1" if generator.random() < 0.9 else "c2"
        events.append(MeteredEvent(f"m{index:03d}", customer, "call", moment, properties))
    return events


def _listed(tally: Tally, tenant_id: uuid.UUID, query: MatchedEventsQuery) -> list[MatchedEvent]:
    store = open_event_store(tally.engine)
    listed: list[MatchedEvent] = []
    after = None
    while True:
        page = store.matched_events(tenant_id, dataclasses.replace(query, after=after))
        listed.extend(page.events)
        if not page.has_more:
            return listed
        after = (page.events[-1].timestamp, page.events[-1].event_id)


@pytest.mark.parametrize("aggregation", ["sum", "max", "min", "latest", "unique_count"])
def test_listed_events_make_the_reference_answer(tally: Tally, tenant_id: uuid.UUID, aggregation: str) -> None:
    generator = random.Random(aggregation)
    meter = make_meter(
        tally.engine,
        tenant_id,
        "m_" + aggregation,
        aggregation=aggregation,
        value_property="v",
        group_by=("region",),
        filters=({"property": "region", "operator": "in", "value": ["eu", "us"]},),
    )
    ledger = Ledger()
    events = _events(generator)
    write_events(tally.engine, tenant_id, events)
    ledger.add_events(events)
    inside = [e for e in events if e.customer == "c1" and any(lo <= e.timestamp < hi for lo, hi in WINDOWS)]
    corrections = [
        Correction(inside[0].event_id, "retract"),
        Correction(inside[1].event_id, "amend", {"v": 49, "region": "eu"}),
        Correction(inside[2].event_id, "amend", {"v": "u-new", "region": "us"}),
    ]
    write_corrections(tally.engine, tenant_id, corrections)
    ledger.add_corrections(corrections)
    effective = ledger.effective()
    for group in (("eu",), ("us",)):
        query = MatchedEventsQuery(customer="c1", meter=meter, windows=WINDOWS, group=group, limit=7)
        listed = _listed(tally, tenant_id, query)
        assert inside[0].event_id not in {event.event_id for event in listed}
        ordered = [(event.timestamp, event.event_id.encode()) for event in listed]
        assert ordered == sorted(ordered) and len(set(ordered)) == len(ordered)
        total = 0
        for start, end in WINDOWS:
            answer = reference_usage(
                UsageQuery(customer="c1", meter=meter, start=start, end=end, group_by=("region",)), effective
            )
            rows = [row for row in answer.rows if row.group == group]
            expected = rows[0].value if rows else None
            window_events = [event for event in listed if start <= event.timestamp < end]
            assert len(window_events) == sum(row.event_count for row in rows)
            total += len(window_events)
            values = [event.value for event in window_events if event.value is not None]
            match aggregation:
                case "sum":
                    assert sum(values, Decimal(0)) == expected
                case "max":
                    assert (max(values) if values else None) == expected
                case "min":
                    assert (min(values) if values else None) == expected
                case "latest":
                    assert (window_events[-1].value if window_events else None) == expected
                case "unique_count":
                    keys = {
                        distinct_key(json.loads(e.distinct_value_json or "null", parse_float=Decimal))
                        for e in window_events
                    }
                    assert None not in keys and Decimal(len(keys)) == expected
                    assert all(event.value is None for event in window_events)
        assert total == len(listed)  # nothing listed outside the windows


def test_the_count_of_a_window_is_the_number_of_events_listed(tally: Tally, tenant_id: uuid.UUID) -> None:
    meter = make_meter(tally.engine, tenant_id, "calls", aggregation="count")
    events = _events(random.Random(3))
    write_events(tally.engine, tenant_id, events)
    start, end = WINDOWS[0]
    listed = _listed(tally, tenant_id, MatchedEventsQuery(customer="c1", meter=meter, windows=(WINDOWS[0],), group=()))
    answer = open_event_store(tally.engine).usage(
        tenant_id, UsageQuery(customer="c1", meter=meter, start=start, end=end, granularity=Granularity.TOTAL)
    )
    assert Decimal(len(listed)) == answer.rows[0].value
    assert {event.value for event in listed} == {Decimal(1)}
