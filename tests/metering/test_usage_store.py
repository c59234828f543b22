"""The PostgreSQL event store equals the reference aggregation, on random histories.

Each example: a fresh tenant, meters of every aggregation (with filters and group_by), then random
steps — batches of events (late ones too), corrections, roll-ups of some of the queue, a meter
created half-way — and at random moments and at the end, usage queries over random windows (edges
cutting hours, every granularity) compared with `reference_usage` over the effective events, with
events spread across rollups and the raw tail. `verify` must find no difference.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.app.backfill_meter_rollups import backfill_pending_versions
from tally.app.event_store import open_event_store
from tally.app.roll_up_events import roll_up_events
from tally.app.tenants import create_tenant
from tally.app.verify_usage_rollups import verify_usage_rollups
from tally.bootstrap import Tally
from tally.core.metering.aggregation import MeteredEvent, reference_usage
from tally.core.metering.meters import MeterVersion
from tally.core.metering.usage import Granularity, UsageQuery
from tests.metering_support import CLOCK, Correction, Ledger, make_meter, write_corrections, write_events

T0 = datetime(2029, 6, 1, tzinfo=UTC)

METERS: list[tuple[str, dict[str, object]]] = [
    ("calls", {"filters": [{"property": "model", "operator": "in", "value": ["a", "b"]}]}),
    ("big_calls", {"filters": [{"property": "tokens", "operator": "gt", "value": Decimal(3)}], "group_by": ["model"]}),
    ("tokens", {"aggregation": "sum", "value_property": "tokens", "group_by": ["model", "region"]}),
    ("peak", {"aggregation": "max", "value_property": "tokens", "group_by": ["model"]}),
    ("floor", {"aggregation": "min", "value_property": "tokens"}),
    ("last", {"aggregation": "latest", "value_property": "tokens", "group_by": ["region"]}),
    ("users", {"aggregation": "unique_count", "value_property": "user", "group_by": ["model"]}),
    ("gb_hours", {"aggregation": "time_weighted_sum", "value_property": "tokens", "group_by": ["model"]}),
]

_tokens = st.one_of(
    st.integers(-3, 20),
    st.decimals(min_value=-5, max_value=50, places=2, allow_nan=False, allow_infinity=False),
    st.sampled_from(["7", "2.50", "1e1", "bad", None]),
)


@st.composite
def _event(draw: st.DrawFn, index: int) -> MeteredEvent:
    properties: dict[str, object] = {}
    for key, values in (
        ("tokens", _tokens),
        ("model", st.sampled_from(["a", "b", "c", None])),
        ("region", st.sampled_from(["eu", "us"])),
        ("user", st.sampled_from(["u1", "u2", "u3", 1, Decimal("1.0"), True])),
    ):
        value = draw(values)
        if value is not None or draw(st.booleans()):
            properties[key] = value
    # Mostly within a day, some over three days (so whole days come from daily rollups).
    minute = draw(st.one_of(st.integers(-240, 720), st.integers(-1500, 3000)))
    return MeteredEvent(
        event_id=f"e{index:04d}",
        customer=draw(st.sampled_from(["c1", "c1", "c2"])),
        type=draw(st.sampled_from(["call", "call", "call", "other"])),
        timestamp=T0 + timedelta(minutes=minute, seconds=draw(st.sampled_from([0, 0, 1, 59]))),
        properties=properties,
    )


@st.composite
def _window(draw: st.DrawFn) -> tuple[datetime, datetime, Granularity, bool]:
    start = T0 + timedelta(minutes=draw(st.integers(-1500, 700)), seconds=draw(st.sampled_from([0, 30])))
    length = timedelta(
        minutes=draw(st.sampled_from([1, 59, 60, 61, 125, 600, 2000, 3000, 5000])),
        seconds=draw(st.sampled_from([0, 1])),
    )
    return start, start + length, draw(st.sampled_from(list(Granularity))), draw(st.booleans())


@st.composite
def _history(draw: st.DrawFn) -> list[tuple[str, object]]:
    steps: list[tuple[str, object]] = []
    written = 0
    for _ in range(draw(st.integers(2, 6))):
        kind = draw(st.sampled_from(["events", "events", "roll_up", "correct", "new_meter", "check"]))
        if kind == "events":
            count = draw(st.integers(1, 12))
            steps.append(("events", [draw(_event(written + index)) for index in range(count)]))
            written += count
        elif kind == "correct" and written:
            corrections = []
            for _ in range(draw(st.integers(1, 3))):
                event_id = f"e{draw(st.integers(0, written - 1)):04d}"
                if draw(st.booleans()):
                    corrections.append(Correction(event_id, "retract"))
                else:
                    corrections.append(
                        Correction(
                            event_id, "amend", {"tokens": draw(_tokens), "model": draw(st.sampled_from(["a", "b"]))}
                        )
                    )
            steps.append(("correct", corrections))
        elif kind in ("roll_up", "new_meter", "check"):
            steps.append((kind, draw(st.integers(1, 3))))
    steps.append(("check", 0))
    steps.append(("roll_up", 1000))
    steps.append(("check", 0))
    return steps


def _check(tally: Tally, tenant_id: uuid.UUID, meters: list[MeterVersion], ledger: Ledger, windows: list) -> None:
    store = open_event_store(tally.engine)
    effective = ledger.effective()
    for meter in meters:
        for start, end, granularity, grouped in windows:
            query = UsageQuery(
                customer="c1",
                meter=meter,
                start=start,
                end=end,
                granularity=granularity,
                group_by=meter.definition.group_by if grouped else (),
            )
            expected = reference_usage(query, effective)
            got = store.usage(tenant_id, query)
            assert got.rows == expected.rows, (meter.code, start, end, granularity, grouped)
            assert got.skipped_events == expected.skipped_events


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_history(), st.lists(_window(), min_size=2, max_size=2))
def test_usage_equals_the_reference(tally: Tally, history: list[tuple[str, object]], windows: list) -> None:
    tenant_id = create_tenant(tally.engine, "usage-property")
    meters = [make_meter(tally.engine, tenant_id, code, **fields) for code, fields in METERS]
    ledger = Ledger()
    late_meters = 0
    for kind, payload in history:
        if kind == "events":
            assert isinstance(payload, list)
            write_events(tally.engine, tenant_id, payload)
            ledger.add_events(payload)
        elif kind == "correct":
            assert isinstance(payload, list)
            write_corrections(tally.engine, tenant_id, payload)
            ledger.add_corrections(payload)
        elif kind == "roll_up":
            assert isinstance(payload, int)
            for _ in range(payload):
                if roll_up_events(tally.engine, batches_max=1).batches == 0:
                    break
        elif kind == "new_meter":
            # A meter made half-way is answered from raw events until backfilled, then from rollups.
            late_meters += 1
            code = f"late_{late_meters}"
            meters.append(
                make_meter(
                    tally.engine,
                    tenant_id,
                    code,
                    aggregation="sum",
                    value_property="tokens",
                    group_by=["model"],
                    backfill=False,
                )
            )
            _check(tally, tenant_id, meters[-1:], ledger, windows)
            backfill_pending_versions(tally.engine, CLOCK)
        else:
            _check(tally, tenant_id, meters, ledger, windows)
    report = verify_usage_rollups(tally.engine, tenant_id)
    assert report.ok, [version for version in report.versions if version.difference_count]
