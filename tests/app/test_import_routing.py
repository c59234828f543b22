"""Imports by several jobs route each line to the worker its event id hashes to: on files of
resends, conflicting reuses of an id, repeats within a batch, unreadable lines and lines without a
string id, two jobs answer exactly what one job answers (the first line of an id in the file is the
one stored, whatever chunk or worker its later lines fall in), and store the same rows."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.adapters.event_files import LINE_BYTES_MAX, EventFile, LineChunk
from tally.app.import_events import ImportOptions, ImportSummary, _route, import_event_file
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally

AT = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


def _file(path: Path, seed: int, count: int) -> Path:
    generator = random.Random(seed)
    lines: list[bytes] = []
    for index in range(count):
        roll = generator.random()
        if roll < 0.2 and index:
            lines.append(lines[generator.randrange(index)])  # a resend of an earlier line, as it was
            continue
        event = {
            "id": f"e-{generator.randrange(count)}",  # ids reused by other content: conflicts
            "customer": f"c-{generator.randrange(5)}",
            "type": "t",
            "timestamp": (AT + timedelta(seconds=index)).isoformat(),
            "properties": {"n": index},
        }
        if roll < 0.25:
            lines.append(b"not json")
        elif roll < 0.28:
            lines.append(json.dumps({**event, "id": index}).encode())  # an id that is not a string
        elif roll < 0.30:
            lines.append(b'{"id":"' + b"x" * (LINE_BYTES_MAX + 10) + b'"}')  # too long to read
        else:
            lines.append(json.dumps(event).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _import(tally: Tally, path: Path, jobs: int) -> tuple[ImportSummary, uuid.UUID]:
    tenant_id = create_tenant(tally.engine, f"routing-{uuid.uuid4().hex[:8]}")
    with EventFile(path) as source:
        summary = import_event_file(
            tally.engine,
            tally.clock,
            tenant_id,
            source,
            ImportOptions(batch_size=7, jobs=jobs, refusals_kept=1_000),
        )
    return summary, tenant_id


def _stored(database_url: str, tenant_id: uuid.UUID) -> list[tuple[str, str, str]]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT event_id, customer, properties::text FROM events WHERE tenant_id = %s ORDER BY event_id",
            (tenant_id,),
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def _answers(summary: ImportSummary) -> tuple[tuple[int, int, int, int, int], list[tuple[int, str, str | None]]]:
    counts = (summary.lines, summary.accepted, summary.duplicates, summary.conflicts, summary.rejected)
    refused = [(outcome.record.line_number, outcome.status, outcome.code) for outcome in summary.first_refusals]
    return counts, refused


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_jobs_answer_and_store_what_one_job_does(
    tally: Tally, database_url: str, tmp_path: Path, seed: int
) -> None:
    path = _file(tmp_path / "events.ndjson", seed, 300)
    alone, alone_tenant = _import(tally, path, jobs=1)
    routed, routed_tenant = _import(tally, path, jobs=2)
    assert alone.conflicts > 0 and alone.duplicates > 0 and alone.rejected > 0  # the file holds every case
    assert _answers(routed) == _answers(alone)
    assert _stored(database_url, routed_tenant) == _stored(database_url, alone_tenant)
    again, _ = _import(tally, path, jobs=2)  # a fresh tenant: the same answers again
    assert _answers(again) == _answers(alone)


ids = st.one_of(st.text(max_size=4), st.integers(), st.none())


@settings(max_examples=200)
@given(
    st.lists(st.one_of(ids.map(lambda value: json.dumps({"id": value})), st.just("{"), st.just("")), max_size=60),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=10),
)
def test_routing_sends_every_line_once_and_each_id_to_one_worker(texts: list[str], jobs: int, batch_size: int) -> None:
    errors = {index: ("line_too_long", "") for index, text in enumerate(texts) if text == ""}
    chunk = LineChunk(list(range(1, len(texts) + 1)), texts, errors)
    batches = _route(chunk, jobs, batch_size)
    assert sorted(index for _, indexes in batches for index in indexes) == list(range(len(texts)))
    workers_of: dict[str, set[int]] = {}
    for worker, indexes in batches:
        assert 0 <= worker < jobs
        assert 0 < len(indexes) <= batch_size
        assert indexes == sorted(indexes)  # file order within a batch
        for index in indexes:
            if index not in errors and texts[index] != "{":
                value = json.loads(texts[index])["id"]
                if isinstance(value, str):
                    workers_of.setdefault(value, set()).add(worker)
    assert all(len(workers) == 1 for workers in workers_of.values())
    # A worker's batches come in file order, so its lines are written in that order.
    for worker in range(jobs):
        mine = [index for owner, indexes in batches if owner == worker for index in indexes]
        assert mine == sorted(mine)
