"""Meter versions: a changed definition is a new version, history keeps its meaning, backfills."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.backfill_meter_rollups import backfill_pending_versions
from tally.app.create_meter import MeterInput, create_meter
from tally.app.meter_queries import get_meter, list_versions
from tally.app.query_usage import UsageRequest, query_usage
from tally.app.roll_up_events import roll_up_events
from tally.app.update_meter import MeterUpdate, update_meter
from tally.bootstrap import Tally
from tally.core.metering.aggregation import MeteredEvent
from tally.core.metering.meters import MeterDefinitionInput
from tally.core.rejections import Rejected
from tests.metering_support import CLOCK, make_meter, write_events

T0 = datetime(2029, 8, 1, tzinfo=UTC)


def _usage(tally: Tally, tenant_id: uuid.UUID, version: int | None = None) -> tuple[Decimal | None, str, int]:
    result = query_usage(
        tally.engine,
        tenant_id,
        UsageRequest(customer="c1", meter_code="tokens", start=T0, end=T0 + timedelta(days=1), meter_version=version),
    )
    return result.rows[0].value, result.source, result.query.meter.version


def test_a_changed_definition_is_a_new_version_and_history_keeps_its_meaning(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    make_meter(tally.engine, tenant_id, "tokens", aggregation="sum", value_property="tokens")
    write_events(
        tally.engine,
        tenant_id,
        [
            MeteredEvent("a", "c1", "call", T0 + timedelta(minutes=5), {"tokens": 10, "model": "x"}),
            MeteredEvent("b", "c1", "call", T0 + timedelta(minutes=65), {"tokens": 5, "model": "y"}),
        ],
    )
    roll_up_events(tally.engine)
    assert _usage(tally, tenant_id) == (Decimal(15), "rollups", 1)

    relabelled = update_meter(tally.engine, CLOCK, tenant_id, "tokens", MeterUpdate(name="Tokens", description="d"))
    assert (relabelled.version_created, relabelled.state.version.version, relabelled.state.meter.name) == (
        False,
        1,
        "Tokens",
    )
    same = update_meter(tally.engine, CLOCK, tenant_id, "tokens", MeterUpdate(definition={"value_property": "tokens"}))
    assert not same.version_created

    changed = update_meter(
        tally.engine,
        CLOCK,
        tenant_id,
        "tokens",
        MeterUpdate(definition={"filters": [{"property": "model", "operator": "equals", "value": "x"}]}),
    )
    assert (changed.version_created, changed.changed_fields, changed.state.version.version) == (True, ("filters",), 2)
    assert changed.state.version.rollup_state == "backfilling"
    # Until backfilled, version 2 is answered from raw events; version 1 keeps its meaning.
    assert _usage(tally, tenant_id) == (Decimal(10), "raw", 2)
    assert _usage(tally, tenant_id, version=1) == (Decimal(15), "rollups", 1)
    backfill_pending_versions(tally.engine, CLOCK)
    assert _usage(tally, tenant_id) == (Decimal(10), "rollups", 2)
    assert [row.version for row in list_versions(tally.engine, tenant_id, "tokens")] == [1, 2]
    assert get_meter(tally.engine, tenant_id, "tokens").version.version == 2

    with pytest.raises(Rejected) as caught:
        _usage(tally, tenant_id, version=3)
    assert caught.value.rejection.code == "meter_version_not_found"

    count = update_meter(
        tally.engine,
        CLOCK,
        tenant_id,
        "tokens",
        MeterUpdate(definition={"aggregation": "count", "value_property": None}),
    )
    assert count.changed_fields == ("aggregation", "value_property")
    # A partial change is applied to the latest definition (now a count, without a value property).
    with pytest.raises(Rejected, match="value_property_required"):
        update_meter(tally.engine, CLOCK, tenant_id, "tokens", MeterUpdate(definition={"aggregation": "max"}))


def test_creating_again_is_idempotent_on_the_code(tally: Tally, tenant_id: uuid.UUID) -> None:
    definition = MeterDefinitionInput(event_type="call", aggregation="count")
    first = create_meter(tally.engine, CLOCK, tenant_id, MeterInput(code="calls", definition=definition))
    again = create_meter(tally.engine, CLOCK, tenant_id, MeterInput(code="calls", definition=definition))
    assert (first.created, again.created, again.state.meter.id) == (True, False, first.state.meter.id)
    for meter, code in (
        (MeterInput(code="calls", definition=MeterDefinitionInput(event_type="x", aggregation="count")), "event_type"),
        (MeterInput(code="calls", name="Calls", definition=definition), "name"),
    ):
        with pytest.raises(Rejected) as caught:
            create_meter(tally.engine, CLOCK, tenant_id, meter)
        assert caught.value.rejection.code == f"meter_exists_with_different_{code}"
    with pytest.raises(Rejected, match="meter_not_found"):
        update_meter(tally.engine, CLOCK, tenant_id, "nope", MeterUpdate(name="x"))


def test_versions_are_immutable_in_the_database(tally: Tally, tenant_id: uuid.UUID) -> None:
    version = make_meter(tally.engine, tenant_id, "calls")
    for statement in (
        "UPDATE meter_versions SET definition = '{}' WHERE id = %s",
        "UPDATE meter_versions SET event_type = 'other' WHERE id = %s",
        "DELETE FROM meter_versions WHERE id = %s",
    ):
        with (
            pytest.raises(psycopg.errors.IntegrityConstraintViolation),
            psycopg_transaction(tally.engine) as connection,
        ):
            connection.execute(statement, (version.version_id,))


def test_unknown_meters_and_bad_windows(tally: Tally, tenant_id: uuid.UUID) -> None:
    make_meter(tally.engine, tenant_id, "tokens", aggregation="sum", value_property="tokens")
    with pytest.raises(Rejected, match="meter_not_found"):
        query_usage(
            tally.engine, tenant_id, UsageRequest(customer="c", meter_code="nope", start=T0, end=T0 + timedelta(1))
        )
    with pytest.raises(Rejected, match="time_range_inverted"):
        query_usage(tally.engine, tenant_id, UsageRequest(customer="c", meter_code="nope", start=T0, end=T0))


def test_verify_skips_hours_past_retention() -> None:
    from tally.app.verify_usage_rollups import retained_since

    now = datetime(2030, 5, 20, 12, tzinfo=UTC)
    assert retained_since(now, None) is None
    # A 30-day cutoff falls on 20 April: April's partition is kept whole, March's may be gone.
    assert retained_since(now, 30) == datetime(2030, 4, 1, tzinfo=UTC)
