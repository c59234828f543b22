"""Imports by several jobs send a line whose id a chunk in flight holds to the worker writing that
chunk: on files of resends, conflicting reuses of an id, repeats within a batch, unreadable lines
and lines without a string id, two jobs answer exactly what one job answers (the first line of an
id in the file is the one stored, whatever chunk or worker its later lines fall in), and store the
same rows; and the router never lets two workers hold one id."""

from __future__ import annotations

import collections
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
from tally.app.import_events import (
    ImportOptions,
    ImportSummary,
    _line_ids,
    _Router,
    import_event_file,
    import_events,
)
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


def _import(tally: Tally, path: Path, jobs: int, how: str = "lines") -> tuple[ImportSummary, uuid.UUID]:
    """`how`: the file as chunks of lines (`import_event_file`), or as records through
    `import_events`, still to decode (`pending`) or decoded by the reader (`decoded`)."""
    tenant_id = create_tenant(tally.engine, f"routing-{uuid.uuid4().hex[:8]}")
    options = ImportOptions(batch_size=7, jobs=jobs, refusals_kept=1_000)
    with EventFile(path) as source:
        if how == "lines":
            summary = import_event_file(tally.engine, tally.clock, tenant_id, source, options)
        else:
            records = source.records(decode=how == "decoded")
            summary = import_events(tally.engine, tally.clock, tenant_id, records, options)
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


@pytest.mark.parametrize("how", ["pending", "decoded"])
def test_records_in_two_jobs_answer_and_store_what_one_job_does(
    tally: Tally, database_url: str, tmp_path: Path, how: str
) -> None:
    path = _file(tmp_path / "events.ndjson", 4, 300)
    alone, alone_tenant = _import(tally, path, jobs=1, how=how)
    routed, routed_tenant = _import(tally, path, jobs=2, how=how)
    assert alone.conflicts > 0 and alone.duplicates > 0 and alone.rejected > 0
    assert _answers(routed) == _answers(alone)
    assert _stored(database_url, routed_tenant) == _stored(database_url, alone_tenant)


ids = st.one_of(st.sampled_from(["a", "b", "c", "d", "e", "f"]), st.integers(), st.none())
lines = st.one_of(ids.map(lambda value: json.dumps({"id": value})), st.just("{"), st.just(""))


@settings(max_examples=200)
@given(
    st.lists(st.lists(lines, min_size=1, max_size=12), max_size=12),
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=1, max_value=4),
)
def test_two_workers_never_hold_one_id_and_each_line_goes_once(
    chunks_of_texts: list[list[str]], jobs: int, window: int
) -> None:
    router = _Router(jobs)
    in_flight: collections.deque[list[tuple[int, set[str]]]] = collections.deque()
    for number, texts in enumerate(chunks_of_texts):
        errors = {index: ("line_too_long", "") for index, text in enumerate(texts) if text == ""}
        chunk = LineChunk(list(range(len(texts))), texts, errors)
        holds, batches = router.route(_line_ids(chunk), (held for chunk_holds in in_flight for held in chunk_holds))
        assert sorted(index for _, indexes in batches for index in indexes) == list(range(len(texts)))
        own = number % jobs  # chunks go to the workers in turn
        for _, indexes in batches:
            assert indexes == sorted(indexes)  # file order within a batch
        sent: dict[str, set[int]] = collections.defaultdict(set)
        for worker, indexes in batches:
            for index in indexes:
                value = None if index in errors or texts[index] == "{" else json.loads(texts[index])["id"]
                if isinstance(value, str):
                    sent[value].add(worker)
        for worker, indexes in batches:
            for index in indexes:
                if worker != own:  # moved: only a line whose id that worker holds in flight
                    event_id = json.loads(texts[index])["id"]
                    assert any(
                        worker == holder and event_id in held
                        for chunk_holds in in_flight
                        for holder, held in chunk_holds
                    )
        for event_id, workers in sent.items():
            assert len(workers) == 1, event_id  # one worker writes an id within a chunk
            holders = {worker for chunk_holds in in_flight for worker, held in chunk_holds if event_id in held}
            assert holders <= workers, event_id  # and it is the one already writing it
        assert {event_id: {w for w, held in holds if event_id in held} for event_id in sent} == sent
        in_flight.append(holds)
        if len(in_flight) > window:
            in_flight.popleft()
