"""Rollup workers running while events and corrections arrive: usage never double counts or misses.

Two rollup workers and a backfill run on threads while the test writes batches; after every write
(and so at random points of the workers' progress) usage must equal the reference over everything
committed so far, and once the queue is drained, `verify` must find no difference.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tally.app.backfill_meter_rollups import backfill_next_version
from tally.app.event_store import open_event_store
from tally.app.roll_up_events import roll_up_events
from tally.app.verify_usage_rollups import verify_usage_rollups
from tally.bootstrap import Tally
from tally.core.metering.aggregation import MeteredEvent, reference_usage
from tally.core.metering.usage import Granularity, UsageQuery
from tests.metering_support import CLOCK, Correction, Ledger, make_meter, write_corrections, write_events

T0 = datetime(2029, 7, 1, tzinfo=UTC)


def test_usage_stays_exact_while_workers_roll_up(tally: Tally, tenant_id: uuid.UUID) -> None:
    engine = tally.engine
    meters = [
        make_meter(engine, tenant_id, "calls"),
        make_meter(engine, tenant_id, "tokens", aggregation="sum", value_property="tokens", group_by=["model"]),
        make_meter(engine, tenant_id, "users", aggregation="unique_count", value_property="user"),
        make_meter(engine, tenant_id, "gauge", aggregation="time_weighted_sum", value_property="tokens"),
    ]
    stop = threading.Event()
    failures: list[BaseException] = []

    def worker(batches_max: int) -> None:
        try:
            while not stop.is_set():
                roll_up_events(engine, batches_max=batches_max)
                backfill_next_version(engine, CLOCK)
        except BaseException as error:  # surfaced by the test thread
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(size,), daemon=True) for size in (1, 3)]
    for thread in threads:
        thread.start()
    generator = random.Random(7)
    ledger = Ledger()
    store = open_event_store(engine)
    written = 0
    try:
        for step in range(20):
            if step == 7:
                meters.append(
                    make_meter(engine, tenant_id, "late", aggregation="max", value_property="tokens", backfill=False)
                )
            if written and generator.random() < 0.25:
                corrections = [
                    Correction(
                        f"e{generator.randrange(written)}", "amend", {"tokens": generator.randint(0, 9), "model": "b"}
                    )
                    if generator.random() < 0.6
                    else Correction(f"e{generator.randrange(written)}", "retract")
                    for _ in range(2)
                ]
                write_corrections(engine, tenant_id, corrections)
                ledger.add_corrections(corrections)
            events = [
                MeteredEvent(
                    f"e{written + index}",
                    "c1",
                    "call",
                    T0 + timedelta(minutes=generator.randint(0, 300), seconds=generator.randint(0, 59)),
                    {
                        "tokens": Decimal(generator.randint(0, 400)) / 8,
                        "model": generator.choice("ab"),
                        "user": generator.choice(["u1", "u2", "u3", "u4"]),
                    },
                )
                for index in range(generator.randint(1, 8))
            ]
            write_events(engine, tenant_id, events)
            ledger.add_events(events)
            written += len(events)
            start = T0 + timedelta(minutes=generator.randint(0, 120), seconds=generator.choice([0, 30]))
            for meter in meters:
                query = UsageQuery(
                    customer="c1",
                    meter=meter,
                    start=start,
                    end=start + timedelta(minutes=generator.randint(30, 400)),
                    granularity=generator.choice(list(Granularity)),
                    group_by=meter.definition.group_by,
                )
                assert store.usage(tenant_id, query).rows == reference_usage(query, ledger.effective()).rows, (
                    step,
                    meter.code,
                )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not failures, failures
    while roll_up_events(engine).batches:
        pass
    report = verify_usage_rollups(engine, tenant_id)
    assert report.ok
    assert all(version.state == "ready" for version in report.versions)
