"""`tally meters` and `tally usage` end to end: create, query, roll up, and verify (which catches tampering)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from typer.testing import CliRunner

from tally.adapters.clock import SystemClock
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.create_meter import MeterInput, create_meter
from tally.app.tenants import create_tenant, find_tenants_by_name
from tally.bootstrap import Tally
from tally.cli import app
from tally.core.metering.aggregation import MeteredEvent
from tally.core.metering.meters import MeterDefinitionInput
from tests.metering_support import write_events

T0 = datetime(2029, 10, 1, tzinfo=UTC)


def test_meters_usage_and_verify(database_url: str, tally: Tally) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    tenant_id = create_tenant(tally.engine, tenant)
    runner = CliRunner()

    def run(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "200"}
        )
        return result.exit_code, result.output

    gte = '{"property": "tokens", "operator": "gte", "value": 0.5}'
    code, output = run(
        "meters", "create", "--code", "tokens", "--event-type", "llm.call", "--aggregation", "sum",
        "--value-property", "tokens", "--group-by", "model", "--filter", gte,
    )  # fmt: skip
    assert code == 0 and "created" in output, output
    code, output = run("meters", "create", "--code", "Bad", "--event-type", "x")
    assert code == 1 and "meter_code_invalid" in output
    assert "tokens" in run("meters", "list")[1]

    write_events(
        tally.engine,
        tenant_id,
        [
            MeteredEvent("a", "acme", "llm.call", T0 + timedelta(minutes=1), {"tokens": Decimal("1.25"), "model": "x"}),
            MeteredEvent("b", "acme", "llm.call", T0 + timedelta(minutes=2), {"tokens": Decimal("0.25"), "model": "x"}),
        ],
    )
    code, output = run("usage", "roll-up")
    assert code == 0 and "rolled up" in output, output
    window = (
        "--customer",
        "acme",
        "--meter",
        "tokens",
        "--from",
        T0.isoformat(),
        "--to",
        (T0 + timedelta(days=1)).isoformat(),
    )
    code, output = run("usage", "query", *window, "--json")
    assert code == 0, output
    assert json.loads(output)["data"][0]["value"] == "1.25"
    code, output = run("usage", "query", *window, "--group-by", "model", "--granularity", "hour")
    assert code == 0 and "1.25" in output

    code, output = run("usage", "verify", "--tenant", tenant)
    assert code == 0 and "rollups match raw events" in output, output
    with psycopg_transaction(tally.engine) as connection:
        connection.execute("UPDATE usage_rollups SET value_sum = value_sum + 1 WHERE tenant_id = %s", (tenant_id,))
    code, output = run("usage", "verify", "--tenant", tenant, "--meter", "tokens")
    assert code == 1 and "value_sum" in output and "1 differences" in output, output
    assert find_tenants_by_name(tally.engine, tenant)


def test_roll_up_backfills_every_pending_meter_version_however_many(database_url: str, tally: Tally) -> None:
    """More versions pending than one default pass of `backfill_pending_versions` takes (100): the
    command still leaves none pending (a test database collects many from other tests)."""
    tenant_id = create_tenant(tally.engine, f"cli-{uuid.uuid4().hex[:8]}")
    definition = MeterDefinitionInput(event_type="call", aggregation="count")
    for index in range(105):
        create_meter(tally.engine, SystemClock(), tenant_id, MeterInput(code=f"m{index}", definition=definition))
    result = CliRunner().invoke(app, ["usage", "roll-up"], env={"TALLY_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    with psycopg_transaction(tally.engine) as connection:
        pending = connection.execute(
            "SELECT count(*) FROM meter_versions WHERE rollup_state <> 'ready'",
        ).fetchone()
    assert pending == (0,)
