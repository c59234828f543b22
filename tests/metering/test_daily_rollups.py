"""Whole days come from daily rollups (a month is ~30 rows per series), kept equal to their hours."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.event_store import open_event_store
from tally.app.roll_up_events import roll_up_events
from tally.app.verify_usage_rollups import verify_usage_rollups
from tally.bootstrap import Tally
from tally.core.metering.aggregation import MeteredEvent, reference_usage
from tally.core.metering.usage import Granularity, UsageQuery
from tests.metering_support import Correction, Ledger, make_meter, write_corrections, write_events

T0 = datetime(2029, 11, 1, tzinfo=UTC)


def test_whole_days_are_read_from_daily_rows(tally: Tally, tenant_id: uuid.UUID) -> None:
    meters = [
        make_meter(tally.engine, tenant_id, "tokens", aggregation="sum", value_property="tokens", group_by=["model"]),
        make_meter(tally.engine, tenant_id, "users", aggregation="unique_count", value_property="user"),
        make_meter(tally.engine, tenant_id, "gauge", aggregation="time_weighted_sum", value_property="tokens"),
        make_meter(tally.engine, tenant_id, "last", aggregation="latest", value_property="tokens"),
    ]
    events = [
        MeteredEvent(
            f"e{index}",
            "c1",
            "call",
            T0 + timedelta(minutes=53 * index),
            {"tokens": Decimal(index % 7), "model": "ab"[index % 2], "user": f"u{index % 5}"},
        )
        for index in range(200)  # about a week
    ]
    ledger = Ledger()
    ledger.add_events(events)
    write_events(tally.engine, tenant_id, events)
    roll_up_events(tally.engine)
    corrections = [Correction("e30", "retract"), Correction("e31", "amend", {"tokens": 100, "model": "b", "user": "z"})]
    write_corrections(tally.engine, tenant_id, corrections)
    ledger.add_corrections(corrections)
    store = open_event_store(tally.engine)

    def check() -> None:
        for meter in meters:
            for granularity in (Granularity.TOTAL, Granularity.DAY, Granularity.HOUR):
                query = UsageQuery(
                    customer="c1",
                    meter=meter,
                    start=T0 + timedelta(hours=5, minutes=30),
                    end=T0 + timedelta(days=6, hours=2),
                    granularity=granularity,
                    group_by=meter.definition.group_by,
                )
                assert store.usage(tenant_id, query).rows == reference_usage(query, ledger.effective()).rows

    check()  # the correction is queued: its day is read from hours, its hour from raw events
    roll_up_events(tally.engine)
    check()
    assert verify_usage_rollups(tally.engine, tenant_id).ok

    # The daily rows are what a whole-day query reads: change one and the answer (and verify) says so.
    with psycopg_transaction(tally.engine) as connection:
        connection.execute(
            """UPDATE usage_rollups_daily SET value_sum = value_sum + 1000
               WHERE meter_version_id = %s AND day = %s AND group_values = '{a}'""",
            (meters[0].version_id, T0 + timedelta(days=2)),
        )
    query = UsageQuery(customer="c1", meter=meters[0], start=T0, end=T0 + timedelta(days=7))
    assert store.usage(tenant_id, query).rows != reference_usage(query, ledger.effective()).rows
    report = verify_usage_rollups(tally.engine, tenant_id, "tokens")
    assert [(difference.span, difference.what) for difference in report.versions[0].sample] == [("day", "value_sum")]
