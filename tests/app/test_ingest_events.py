"""Ingesting events on real PostgreSQL: outcomes, exactly once (also under concurrency), late flags,
the timestamp window, corrections, and the partitions of `events`."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from tally.adapters.clock import FixedClock
from tally.adapters.postgres import events as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.correct_event import CorrectionInput, correct_event
from tally.app.event_queries import EventQuery, get_event, list_events
from tally.app.ingest_events import IngestOptions, ingest_events, ingest_events_counted
from tally.app.maintain_event_partitions import maintain_event_partitions
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.core.metering.events import TimestampWindow, parse_event
from tally.core.rejections import Rejected, Rejection

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


def event(event_id: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": event_id,
        "customer": "cus_1",
        "type": "api_call",
        "timestamp": (NOW - timedelta(hours=1)).isoformat(),
        "properties": {"tokens": 10, "cost": Decimal("0.000123")},
    }
    values.update(changes)
    return values


def scalar(engine: Engine, query: str, **parameters: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(query), parameters).scalar()


def stored_count(engine: Engine, tenant_id: uuid.UUID) -> int:
    return int(scalar(engine, "SELECT count(*) FROM events WHERE tenant_id = :t", t=tenant_id))


def test_new_events_are_accepted_stored_batched_and_queued(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock
) -> None:
    result = ingest_events(tally.engine, clock, tenant_id, [event("a"), event("b", customer="cus_new")])
    assert [outcome.result for outcome in result.outcomes] == ["accepted", "accepted"]
    assert (result.accepted, result.duplicate, result.conflict, result.rejected) == (2, 0, 0, 0)
    assert result.received_at == NOW and result.batch_id is not None
    with tally.engine.connect() as connection:
        batch = connection.execute(
            text("SELECT tenant_id, received_at, source, event_count FROM ingest_batches WHERE batch_id = :b"),
            {"b": result.batch_id},
        ).one()
        assert tuple(batch) == (tenant_id, NOW, "api", 2)
        assert (
            connection.execute(
                text("SELECT tenant_id FROM rollup_queue WHERE batch_id = :b"), {"b": result.batch_id}
            ).scalar()
            == tenant_id
        )
        stored = connection.execute(
            text(
                'SELECT event_id, customer, "timestamp", properties::text, received_at, batch_id FROM events '
                "WHERE tenant_id = :t ORDER BY event_id"
            ),
            {"t": tenant_id},
        ).all()
    assert [row[0] for row in stored] == ["a", "b"]
    # A customer tally does not know yet is no reason to drop usage: it is stored by its external id.
    assert stored[1][1] == "cus_new"
    assert stored[0][2] == NOW - timedelta(hours=1)
    assert stored[0][3] == '{"cost": 0.000123, "tokens": 10}'  # exact, never a float
    assert stored[0][4] == NOW and stored[0][5] == result.batch_id


def test_a_resend_is_a_duplicate_and_never_counts_twice(tally: Tally, tenant_id: uuid.UUID, clock: FixedClock) -> None:
    ingest_events(tally.engine, clock, tenant_id, [event("a"), event("b")])
    clock.advance_to(NOW + timedelta(minutes=1))
    # Key order and number spelling do not make a different event.
    again = event("a", properties={"cost": Decimal("0.0001230"), "tokens": 10})
    result = ingest_events(tally.engine, clock, tenant_id, [again, event("b"), event("c")])
    assert [outcome.result for outcome in result.outcomes] == ["duplicate", "duplicate", "accepted"]
    assert stored_count(tally.engine, tenant_id) == 3
    all_duplicates = ingest_events(tally.engine, clock, tenant_id, [event("a")])
    assert all_duplicates.batch_id is None and all_duplicates.duplicate == 1
    assert scalar(tally.engine, "SELECT count(*) FROM ingest_batches WHERE tenant_id = :t", t=tenant_id) == 2


def test_same_id_different_content_is_a_conflict_and_the_original_is_kept(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock
) -> None:
    ingest_events(tally.engine, clock, tenant_id, [event("a")])
    result = ingest_events(tally.engine, clock, tenant_id, [event("a", properties={"tokens": 11})])
    outcome = result.outcomes[0]
    assert outcome.result == "conflict" and outcome.rejection is not None
    assert outcome.rejection.code == "exists_with_different_content"
    assert scalar(tally.engine, "SELECT properties->>'tokens' FROM events WHERE tenant_id = :t", t=tenant_id) == "10"


def test_duplicate_ids_within_a_batch_first_wins(tally: Tally, tenant_id: uuid.UUID, clock: FixedClock) -> None:
    batch = [event("a"), event("a"), event("a", customer="cus_2"), event("b"), event("a")]
    result = ingest_events(tally.engine, clock, tenant_id, batch)
    assert [outcome.result for outcome in result.outcomes] == [
        "accepted",
        "duplicate",
        "conflict",
        "accepted",
        "duplicate",
    ]
    assert stored_count(tally.engine, tenant_id) == 2
    # Against a stored event: every occurrence is compared with what is stored.
    result = ingest_events(tally.engine, clock, tenant_id, [event("a", customer="cus_2"), event("a")])
    assert [outcome.result for outcome in result.outcomes] == ["conflict", "duplicate"]


def test_invalid_events_are_rejected_and_the_valid_ones_stored(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock
) -> None:
    batch = [
        event("a"),
        event("b", timestamp="2026-03-01T10:00:00"),
        {"customer": "c"},
        "not an event",
        event("e", properties={"n": Decimal("NaN")}),
        event("f"),
    ]
    result = ingest_events(tally.engine, clock, tenant_id, batch)
    assert [(outcome.result, outcome.event_id) for outcome in result.outcomes] == [
        ("accepted", "a"),
        ("rejected", "b"),
        ("rejected", None),
        ("rejected", None),
        ("rejected", "e"),
        ("accepted", "f"),
    ]
    codes = [outcome.rejection.code for outcome in result.outcomes if outcome.rejection is not None]
    assert codes == ["timestamp_must_have_timezone", "id_required", "event_must_be_object", "number_must_be_finite"]
    assert stored_count(tally.engine, tenant_id) == 2
    # A rejected id is not taken: sent again, fixed, it is accepted.
    fixed = ingest_events(tally.engine, clock, tenant_id, [event("b")])
    assert fixed.outcomes[0].result == "accepted"


def test_an_all_rejected_or_empty_batch_writes_nothing(tally: Tally, tenant_id: uuid.UUID, clock: FixedClock) -> None:
    for batch in ([], [event("a", type="")]):
        result = ingest_events(tally.engine, clock, tenant_id, batch)
        assert result.batch_id is None and result.accepted == 0
    assert scalar(tally.engine, "SELECT count(*) FROM ingest_batches WHERE tenant_id = :t", t=tenant_id) == 0


def test_a_batch_has_at_most_ten_thousand_events(tally: Tally, tenant_id: uuid.UUID, clock: FixedClock) -> None:
    with pytest.raises(Rejected) as error:
        ingest_events(tally.engine, clock, tenant_id, [event("a")] * 10_001)
    assert error.value.rejection.code == "batch_too_large"


def test_the_timestamp_window_follows_the_clock_and_the_options(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock
) -> None:
    options = IngestOptions(horizon_days=7, future_skew_seconds=60)
    batch = [
        event("old", timestamp=(NOW - timedelta(days=7, microseconds=1)).isoformat()),
        event("oldest", timestamp=(NOW - timedelta(days=7)).isoformat()),
        event("newest", timestamp=(NOW + timedelta(seconds=60)).isoformat()),
        event("future", timestamp=(NOW + timedelta(seconds=60, microseconds=1)).isoformat()),
    ]
    result = ingest_events(tally.engine, clock, tenant_id, batch, options=options)
    assert [(outcome.result, outcome.rejection.code if outcome.rejection else None) for outcome in result.outcomes] == [
        ("rejected", "timestamp_too_old"),
        ("accepted", None),
        ("accepted", None),
        ("rejected", "timestamp_in_future"),
    ]
    clock.advance_to(NOW + timedelta(days=30))
    later = ingest_events(
        tally.engine, clock, tenant_id, [event("old-now", timestamp=NOW.isoformat())], options=options
    )
    assert later.outcomes[0].rejection is not None and later.outcomes[0].rejection.code == "timestamp_too_old"


def test_parsed_events_and_the_import_source_are_accepted(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock
) -> None:
    window = TimestampWindow(NOW - timedelta(days=365), NOW)
    parsed = [parse_event(event("a"), window), parse_event(event("b", timestamp="2025-06-01T00:00:00Z"), window)]
    result = ingest_events(tally.engine, clock, tenant_id, parsed, source="import")
    # The window is checked again: the one parsed with a wider window is too old now.
    assert [outcome.result for outcome in result.outcomes] == ["accepted", "rejected"]
    assert scalar(tally.engine, "SELECT source FROM ingest_batches WHERE batch_id = :b", b=result.batch_id) == "import"


# Batches drawn from a few ids (so resends, repeats within a batch and conflicts are common), a few
# contents, some rejected events, and a customer whose usage is closed (late events).
_batch_events = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", "e\x1fseparated"]),
        st.sampled_from(["cus_1", "cus_late", "cus\x1f2"]),
        st.sampled_from([1, 2]),
        st.sampled_from(["ok", "ok", "ok", "too_old", "no_type"]),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(_batch_events, min_size=1, max_size=4))
def test_the_counted_answer_is_the_full_answer_counted(
    tally: Tally, clock: FixedClock, batches: list[list[tuple[str, str, int, str]]]
) -> None:
    # The same batches into two tenants, one answered event by event, the other as counts: the counts
    # and the refused events (by index) agree, and so does what is stored.
    full_tenant = create_tenant(tally.engine, f"full-{uuid.uuid4().hex[:8]}")
    counted_tenant = create_tenant(tally.engine, f"counted-{uuid.uuid4().hex[:8]}")
    for tenant in (full_tenant, counted_tenant):
        close_usage(tally.engine, tenant, "cus_late", NOW - timedelta(minutes=30))
    for batch in batches:
        raws = []
        for event_id, customer, tokens, shape in batch:
            raw = event(event_id, customer=customer, properties={"tokens": tokens})
            if shape == "too_old":
                raw["timestamp"] = "2001-01-01T00:00:00Z"
            elif shape == "no_type":
                del raw["type"]
            raws.append(raw)
        full = ingest_events(tally.engine, clock, full_tenant, raws, source="import")
        counted = ingest_events_counted(tally.engine, clock, counted_tenant, raws)
        assert (counted.accepted, counted.duplicate, counted.conflict, counted.rejected, counted.late) == (
            full.accepted,
            full.duplicate,
            full.conflict,
            full.rejected,
            full.late,
        )
        assert counted.refused == [
            (index, outcome)
            for index, outcome in enumerate(full.outcomes)
            if outcome.result in ("conflict", "rejected")
        ]
        assert (counted.batch_id is None) == (full.batch_id is None)
    stored = (
        'SELECT event_id, customer, type, "timestamp", properties::text FROM events WHERE tenant_id = :t '
        "ORDER BY event_id"
    )
    with tally.engine.connect() as connection:
        assert [tuple(row) for row in connection.execute(text(stored), {"t": full_tenant})] == [
            tuple(row) for row in connection.execute(text(stored), {"t": counted_tenant})
        ]


def test_values_holding_the_column_separator_are_stored_exactly(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock
) -> None:
    # Text columns usually travel joined by a separator; a batch with a value holding it goes as
    # arrays instead, so no value is ever split.
    separator = store.SEPARATOR
    raws = [
        event(f"id{separator}1", customer=f"cus{separator}", type=f"{separator}t", properties={"k": f"v{separator}"}),
        event("plain"),
    ]
    result = ingest_events(tally.engine, clock, tenant_id, raws)
    assert [outcome.result for outcome in result.outcomes] == ["accepted", "accepted"]
    with tally.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT event_id, customer, type, properties->>'k' FROM events WHERE tenant_id = :t ORDER BY 1"),
            {"t": tenant_id},
        ).all()
    assert [tuple(row) for row in rows] == [
        (f"id{separator}1", f"cus{separator}", f"{separator}t", f"v{separator}"),
        ("plain", "cus_1", "api_call", None),
    ]
    again = ingest_events(tally.engine, clock, tenant_id, raws)
    assert [outcome.result for outcome in again.outcomes] == ["duplicate", "duplicate"]


def close_usage(engine: Engine, tenant_id: uuid.UUID, customer: str, through: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO usage_closures (tenant_id, customer, closed_through, updated_at) "
                "VALUES (:t, :c, :through, :now)"
            ),
            {"t": tenant_id, "c": customer, "through": through, "now": NOW},
        )


def late_rows(engine: Engine, tenant_id: uuid.UUID) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text(
                    'SELECT event_id, customer, "timestamp", kind, flagged_at, resolved_at FROM late_usage '
                    "WHERE tenant_id = :t ORDER BY flagged_at, event_id"
                ),
                {"t": tenant_id},
            )
        ]


def test_events_in_an_invoiced_period_are_accepted_and_flagged_late(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock
) -> None:
    close_usage(tally.engine, tenant_id, "cus_1", NOW - timedelta(days=1))
    before = NOW - timedelta(days=2)
    at = NOW - timedelta(days=1)
    batch = [event("late", timestamp=before.isoformat()), event("on-time", timestamp=at.isoformat())]
    batch.append(event("other", customer="cus_2", timestamp=before.isoformat()))
    result = ingest_events(tally.engine, clock, tenant_id, batch)
    assert [(outcome.result, outcome.late) for outcome in result.outcomes] == [
        ("accepted", True),
        ("accepted", False),
        ("accepted", False),
    ]
    assert result.late == 1
    assert late_rows(tally.engine, tenant_id) == [("late", "cus_1", before, "late_event", NOW, None)]
    # A duplicate of a late event is not flagged again.
    ingest_events(tally.engine, clock, tenant_id, [event("late", timestamp=before.isoformat())])
    assert len(late_rows(tally.engine, tenant_id)) == 1


@pytest.mark.parametrize("source", ["api", "import"])
def test_concurrent_batches_with_overlapping_ids_store_each_id_once(
    tally: Tally, tenant_id: uuid.UUID, source: Literal["api", "import"]
) -> None:
    clock = FixedClock(NOW)
    rounds, threads, per_batch = 3, 4, 300
    outcomes: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(round_index: int, thread_index: int, barrier: threading.Barrier) -> None:
        # Each thread's batch overlaps the next thread's by half, in a different order.
        start = thread_index * per_batch // 2
        ids = [f"r{round_index}-{number}" for number in range(start, start + per_batch)]
        if thread_index % 2:
            ids.reverse()
        batch = [event(event_id) for event_id in ids]
        barrier.wait()
        try:
            result = ingest_events(tally.engine, clock, tenant_id, batch, source=source)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
            return
        with lock:
            for outcome in result.outcomes:
                outcomes[(outcome.event_id or "", outcome.result)] += 1

    for round_index in range(rounds):
        barrier = threading.Barrier(threads)
        workers = [threading.Thread(target=work, args=(round_index, index, barrier)) for index in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert not errors
    ids = {event_id for event_id, _ in outcomes}
    for event_id in ids:
        assert outcomes[(event_id, "accepted")] == 1, event_id
        assert outcomes[(event_id, "conflict")] == 0
    assert stored_count(tally.engine, tenant_id) == len(ids)
    assert scalar(tally.engine, "SELECT count(*) FROM event_ids WHERE tenant_id = :t", t=tenant_id) == len(ids)


@pytest.mark.parametrize("source", ["api", "import"])
def test_concurrent_conflicting_batches_keep_one_original(
    tally: Tally, tenant_id: uuid.UUID, source: Literal["api", "import"]
) -> None:
    clock = FixedClock(NOW)
    results: list[list[str]] = []
    barrier = threading.Barrier(2)

    def work(customer: str) -> None:
        batch = [event(f"e{number}", customer=customer) for number in range(200)]
        barrier.wait()
        answered = ingest_events(tally.engine, clock, tenant_id, batch, source=source)
        results.append([outcome.result for outcome in answered.outcomes])

    workers = [threading.Thread(target=work, args=(customer,)) for customer in ("cus_a", "cus_b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for number in range(200):
        assert sorted(result[number] for result in results) == ["accepted", "conflict"]
    assert stored_count(tally.engine, tenant_id) == 200


# ----- the registry probe and its fallback ---------------------------------------------------------


class _Settlings(dict[str, str]):
    """`store._SETTLING`, counting how often a write settled its ids one by one (an API batch always
    does; an import's only when it lost a race)."""

    used = 0

    def __getitem__(self, statement: str) -> str:
        type(self).used += 1
        return super().__getitem__(statement)


@pytest.fixture
def settlings(monkeypatch: pytest.MonkeyPatch) -> type[_Settlings]:
    _Settlings.used = 0
    monkeypatch.setattr(store, "_SETTLING", _Settlings(store._SETTLING))
    return _Settlings


def test_each_id_is_probed_in_the_registry_partition_postgresql_stores_it_in(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock, settlings: type[_Settlings]
) -> None:
    # Ids of every shape: short, long, non-ASCII, a UUID, digits (the hash is over their UTF-8 bytes).
    ids = [f"{prefix}{number}" for number in range(300) for prefix in ("e-", "événement-", "🧾", "x" * 200)]
    ids += [str(uuid.UUID(int=number * 7919)) for number in range(200)]
    for start in range(0, len(ids), 500):
        batch = [event(event_id) for event_id in ids[start : start + 500]]
        ingest_events(tally.engine, clock, tenant_id, batch, source="import")
    partitions = scalar(tally.engine, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'event_ids'::regclass")
    assert partitions == store.REGISTRY_PARTITIONS
    misplaced = scalar(
        tally.engine,
        "SELECT count(*) FROM event_ids WHERE tenant_id = :t AND tableoid::regclass::text <> 'event_ids_' || "
        + store.REGISTRY_PARTITION_SQL.format(id="event_id"),
        t=tenant_id,
    )
    assert misplaced == 0
    # So an import's resends are found by the probe: answered without the settling statement.
    resends = [event(event_id) for event_id in ids[::7]] + [event("new")]
    result = ingest_events(tally.engine, clock, tenant_id, resends, source="import")
    assert Counter(outcome.result for outcome in result.outcomes) == {"duplicate": len(ids[::7]), "accepted": 1}
    assert settlings.used == 0
    # An API batch settles its ids one by one from the start (its races with retries are common).
    assert ingest_events(tally.engine, clock, tenant_id, [event("from-api")]).outcomes[0].result == "accepted"
    assert settlings.used == 1


def _wait_for_a_lock_wait(engine: Engine) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while datetime.now(UTC) < deadline:
        waiting = scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        if waiting:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the second writer never waited for the first")


@pytest.mark.parametrize(
    ("first_commits", "resend_changes", "answer"),
    [(True, {}, "duplicate"), (True, {"customer": "cus_2"}, "conflict"), (False, {}, "accepted")],
)
def test_an_id_registered_by_a_concurrent_transaction_is_settled_once(
    tally: Tally,
    tenant_id: uuid.UUID,
    clock: FixedClock,
    settlings: type[_Settlings],
    first_commits: bool,
    resend_changes: dict[str, Any],
    answer: str,
) -> None:
    """The probe cannot see an id another transaction has registered but not committed: the plain
    insert waits for that transaction, then fails if it committed, and the write is settled id by id
    instead; or goes through if it rolled back."""
    window = TimestampWindow(NOW - timedelta(days=365), NOW)
    first = parse_event(event("x"), window)
    assert not isinstance(first, Rejection)
    results: list[Any] = []
    with psycopg_transaction(tally.engine) as connection:
        store.write_events(connection, tenant_id, NOW, "import", [first])
        second = threading.Thread(
            target=lambda: results.append(
                ingest_events(
                    tally.engine, clock, tenant_id, [event("x", **resend_changes), event("y")], source="import"
                )
            )
        )
        second.start()
        _wait_for_a_lock_wait(tally.engine)
        if not first_commits:
            connection.rollback()
    second.join(timeout=30)
    assert [(outcome.event_id, outcome.result) for outcome in results[0].outcomes] == [("x", answer), ("y", "accepted")]
    assert settlings.used == (1 if first_commits else 0)
    assert scalar(tally.engine, "SELECT count(*) FROM event_ids WHERE tenant_id = :t", t=tenant_id) == 2
    assert stored_count(tally.engine, tenant_id) == 2
    customer = scalar(tally.engine, "SELECT customer FROM events WHERE tenant_id = :t AND event_id = 'x'", t=tenant_id)
    assert customer == ("cus_1" if first_commits else resend_changes.get("customer", "cus_1"))


# ----- corrections --------------------------------------------------------------------------------


def test_retracting_records_a_correction_batch_and_is_idempotent(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock
) -> None:
    ingest_events(tally.engine, clock, tenant_id, [event("a")])
    clock.advance_to(NOW + timedelta(minutes=5))
    first = correct_event(
        tally.engine, clock, tenant_id, CorrectionInput(event_id="a", kind="retract", reason="sent twice")
    )
    assert first.created and not first.late
    assert first.correction.kind == "retract" and first.correction.reason == "sent twice"
    assert first.correction.created_at == NOW + timedelta(minutes=5)
    with tally.engine.connect() as connection:
        batch = connection.execute(
            text("SELECT source, event_count, received_at FROM ingest_batches WHERE batch_id = :b"),
            {"b": first.correction.batch_id},
        ).one()
        queued = connection.execute(
            text("SELECT count(*) FROM rollup_queue WHERE batch_id = :b"), {"b": first.correction.batch_id}
        ).scalar()
    assert tuple(batch) == ("correction", 1, NOW + timedelta(minutes=5))
    assert queued == 1
    again = correct_event(tally.engine, clock, tenant_id, CorrectionInput(event_id="a", kind="retract"))
    assert not again.created and again.correction == first.correction
    view = get_event(tally.engine, tenant_id, "a")
    assert view.retracted and view.effective_properties_json is None
    assert len(view.corrections) == 1
    # The event itself is never rewritten.
    assert view.event.properties_json == '{"cost": 0.000123, "tokens": 10}'
    with pytest.raises(Rejected) as error:
        correct_event(tally.engine, clock, tenant_id, CorrectionInput(event_id="a", kind="amend", properties={}))
    assert error.value.rejection.code == "event_already_retracted"


def test_amendments_replace_properties_and_the_latest_wins(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock
) -> None:
    ingest_events(tally.engine, clock, tenant_id, [event("a")])
    first = correct_event(
        tally.engine, clock, tenant_id, CorrectionInput(event_id="a", kind="amend", properties={"tokens": 12})
    )
    second = correct_event(
        tally.engine,
        clock,
        tenant_id,
        CorrectionInput(event_id="a", kind="amend", properties={"tokens": 13, "cost": Decimal("1.50")}),
    )
    assert first.created and second.created and first.correction.batch_id != second.correction.batch_id
    same = correct_event(
        tally.engine,
        clock,
        tenant_id,
        CorrectionInput(event_id="a", kind="amend", properties={"cost": Decimal("1.5"), "tokens": 13}),
    )
    assert not same.created and same.correction.id == second.correction.id
    view = get_event(tally.engine, tenant_id, "a")
    assert not view.retracted
    assert view.effective_properties_json == '{"cost": 1.5, "tokens": 13}'
    # A resend of the original is still a duplicate: the registry keeps the original content.
    assert ingest_events(tally.engine, clock, tenant_id, [event("a")]).outcomes[0].result == "duplicate"


def test_corrections_of_unknown_events_and_bad_input_are_refused(
    tally: Tally, tenant_id: uuid.UUID, clock: FixedClock, make_other_tenant: uuid.UUID
) -> None:
    ingest_events(tally.engine, clock, make_other_tenant, [event("theirs")])
    for event_id in ("nope", "theirs"):
        with pytest.raises(Rejected) as error:
            correct_event(tally.engine, clock, tenant_id, CorrectionInput(event_id=event_id, kind="retract"))
        assert error.value.rejection.code == "event_not_found"
    ingest_events(tally.engine, clock, tenant_id, [event("a")])
    for correction, code in (
        (CorrectionInput(event_id="a", kind="amend"), "properties_required"),
        (CorrectionInput(event_id="a", kind="amend", properties=[1]), "properties_must_be_object"),
        (CorrectionInput(event_id="a", kind="amend", properties={"x": 0.5}), "number_must_not_be_float"),
        (CorrectionInput(event_id="a", kind="retract", reason=5), "reason_must_be_string"),
    ):
        with pytest.raises(Rejected) as error:
            correct_event(tally.engine, clock, tenant_id, correction)
        assert error.value.rejection.code == code


@pytest.fixture
def make_other_tenant(tally: Tally) -> uuid.UUID:
    from tally.app.tenants import create_tenant

    return create_tenant(tally.engine, f"other-{uuid.uuid4().hex[:8]}")


def test_corrections_in_an_invoiced_period_are_flagged(tally: Tally, tenant_id: uuid.UUID, clock: FixedClock) -> None:
    at = NOW - timedelta(days=3)
    ingest_events(tally.engine, clock, tenant_id, [event("a", timestamp=at.isoformat())])
    close_usage(tally.engine, tenant_id, "cus_1", NOW - timedelta(days=1))
    amended = correct_event(
        tally.engine, clock, tenant_id, CorrectionInput(event_id="a", kind="amend", properties={"tokens": 1})
    )
    retracted = correct_event(tally.engine, clock, tenant_id, CorrectionInput(event_id="a", kind="retract"))
    assert amended.late and retracted.late
    # Both flags carry the fixed clock's moment and the same event: their order is not defined.
    assert sorted((row[0], row[3]) for row in late_rows(tally.engine, tenant_id)) == [("a", "amend"), ("a", "retract")]


def test_concurrent_retractions_record_one(tally: Tally, tenant_id: uuid.UUID, clock: FixedClock) -> None:
    ingest_events(tally.engine, clock, tenant_id, [event("a")])
    barrier = threading.Barrier(4)
    created: list[bool] = []

    def work() -> None:
        barrier.wait()
        created.append(
            correct_event(tally.engine, clock, tenant_id, CorrectionInput(event_id="a", kind="retract")).created
        )

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(created) == [False, False, False, True]


# ----- reading ------------------------------------------------------------------------------------


def test_listing_is_ordered_by_time_then_id_and_pages(tally: Tally, tenant_id: uuid.UUID, clock: FixedClock) -> None:
    times = [NOW - timedelta(hours=hours) for hours in (3, 1, 2, 2)]
    batch = [
        event(event_id, timestamp=moment.isoformat(), customer="cus_1" if event_id != "d" else "cus_2")
        for event_id, moment in zip(("a", "b", "c2", "c1"), times, strict=True)
    ]
    batch[1]["type"] = "other"
    ingest_events(tally.engine, clock, tenant_id, [*batch, event("d", customer="cus_2")])
    seen: list[str] = []
    cursor = None
    while True:
        page = list_events(tally.engine, clock, tenant_id, EventQuery(limit=2, cursor=cursor))
        seen += [item.event.event_id for item in page.items]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == ["a", "c1", "c2", "b", "d"]
    by_customer = list_events(tally.engine, clock, tenant_id, EventQuery(customer="cus_1", type="api_call"))
    assert [item.event.event_id for item in by_customer.items] == ["a", "c1", "c2"]
    window = list_events(
        tally.engine, clock, tenant_id, EventQuery(start=NOW - timedelta(hours=2), end=NOW - timedelta(hours=1))
    )
    assert [item.event.event_id for item in window.items] == ["c1", "c2"]
    for query, code in (
        (EventQuery(cursor="garbage"), "cursor_invalid"),
        (EventQuery(limit=0), "limit_out_of_range"),
        (EventQuery(start=NOW, end=NOW), "time_range_invalid"),
        (EventQuery(start=NOW - timedelta(days=40), end=NOW), "time_range_too_long"),
    ):
        with pytest.raises(Rejected) as error:
            list_events(tally.engine, clock, tenant_id, query)
        assert error.value.rejection.code == code
    long_for_one_customer = EventQuery(customer="cus_1", start=NOW - timedelta(days=80), end=NOW)
    assert len(list_events(tally.engine, clock, tenant_id, long_for_one_customer).items) == 4


# ----- partitions ---------------------------------------------------------------------------------


def partitions(engine: Engine) -> set[str]:
    with psycopg_transaction(engine) as connection:
        return {partition.name for partition in store.event_partitions(connection)}


def test_partitions_are_created_and_stray_rows_moved_into_them(tally: Tally, tenant_id: uuid.UUID) -> None:
    clock = FixedClock(datetime(1999, 5, 20, tzinfo=UTC))
    # No partition for May 1999 yet: the event lands in the default partition.
    ingest_events(tally.engine, clock, tenant_id, [event("stray", timestamp="1999-05-10T00:00:00Z")])
    created = store.ensure_event_partitions(
        tally.engine, datetime(1999, 4, 15, tzinfo=UTC), datetime(1999, 6, 1, tzinfo=UTC)
    )
    assert created == ["events_1999_04", "events_1999_05"]
    assert (
        store.ensure_event_partitions(tally.engine, datetime(1999, 4, 1, tzinfo=UTC), datetime(1999, 6, 1, tzinfo=UTC))
        == []
    )
    assert scalar(tally.engine, "SELECT count(*) FROM events_1999_05 WHERE tenant_id = :t", t=tenant_id) == 1
    assert scalar(tally.engine, "SELECT count(*) FROM events_default WHERE tenant_id = :t", t=tenant_id) == 0
    assert get_event(tally.engine, tenant_id, "stray").event.event_id == "stray"


def test_retention_drops_whole_old_partitions_and_keeps_the_dedup_registry(tally: Tally, tenant_id: uuid.UUID) -> None:
    clock = FixedClock(datetime(2001, 3, 10, tzinfo=UTC))
    settings = tally.settings.model_copy(update={"ingest_horizon_days": 90, "event_retention_days": 120})
    done = maintain_event_partitions(tally.engine, clock, settings)
    assert "events_2001_03" in done.created and "events_2001_06" in done.created
    ingest_events(
        tally.engine,
        clock,
        tenant_id,
        [event("march", timestamp="2001-03-01T00:00:00Z"), event("later", timestamp="2001-03-09T00:00:00Z")],
    )
    clock.advance_to(datetime(2001, 8, 15, tzinfo=UTC))  # cutoff: 2001-04-17
    done = maintain_event_partitions(tally.engine, clock, settings)
    assert "events_2001_03" in done.dropped and "events_2001_04" not in done.dropped
    assert "events_2001_03" not in partitions(tally.engine)
    assert scalar(tally.engine, "SELECT count(*) FROM events WHERE tenant_id = :t", t=tenant_id) == 0
    assert scalar(tally.engine, "SELECT count(*) FROM event_ids WHERE tenant_id = :t", t=tenant_id) == 2
    with pytest.raises(Rejected):
        get_event(tally.engine, tenant_id, "march")
    # The id stays taken: a resend (inside a window that allows it) is a duplicate, not a new event.
    result = ingest_events(
        tally.engine,
        clock,
        tenant_id,
        [event("march", timestamp="2001-03-01T00:00:00Z")],
        options=IngestOptions(horizon_days=3650),
    )
    assert result.outcomes[0].result == "duplicate"


def test_retention_shorter_than_the_horizon_is_refused(tally: Tally) -> None:
    settings = tally.settings.model_copy(update={"ingest_horizon_days": 90, "event_retention_days": 30})
    with pytest.raises(ValueError, match="RETENTION"):
        maintain_event_partitions(tally.engine, FixedClock(NOW), settings)


def test_start_up_creates_the_partitions_of_the_ingest_window(tally: Tally) -> None:
    from tally.bootstrap import build

    started = build(tally.settings, migrate=True, clock=FixedClock(datetime(2003, 6, 15, tzinfo=UTC)))
    try:
        names = partitions(started.engine)
    finally:
        started.close()
    # From a month before the 90-day horizon (mid-February) to three months ahead (mid-September).
    assert {f"events_2003_{month:02d}" for month in range(2, 10)} <= names
    assert "events_2003_01" not in names and "events_2003_10" not in names
