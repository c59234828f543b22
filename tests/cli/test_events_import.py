"""`tally events import`: NDJSON, CSV, gzip; idempotent re-runs; bad lines; --dry-run and --rejects."""

from __future__ import annotations

import csv
import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from tally.adapters.event_files import LINE_BYTES_MAX
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app

AT = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=123456)


@pytest.fixture
def tenant(tally: Tally) -> tuple[str, uuid.UUID]:
    name = f"import-{uuid.uuid4().hex[:8]}"
    return name, create_tenant(tally.engine, name)


@pytest.fixture
def run(database_url: str, tenant: tuple[str, uuid.UUID]):
    runner = CliRunner()

    def invoke(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app,
            ["events", "import", *arguments],
            env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant[0], "COLUMNS": "200"},
        )
        return result.exit_code, result.output

    return invoke


def _stored(database_url: str, tenant_id: uuid.UUID) -> dict[str, tuple[str, str, dict]]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT event_id, customer, type, properties::text FROM events WHERE tenant_id = %s", (tenant_id,)
        ).fetchall()
    return {row[0]: (row[1], row[2], json.loads(row[3], parse_float=Decimal)) for row in rows}


def _event(index: int, **overrides) -> dict:
    return {
        "id": f"evt-{index}",
        "customer": f"cust-{index % 3}",
        "type": "tokens",
        "timestamp": AT.isoformat(),
        "properties": {"tokens": index, "cost": "x"} if index % 2 else {"tokens": index},
        **overrides,
    }


def _ndjson(path: Path, lines: list[str]) -> Path:
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _summary(output: str) -> dict[str, int]:
    counts = {}
    for name in ("accepted", "duplicates", "conflicts", "rejected", "valid"):
        for line in output.splitlines():
            cells = [cell.strip() for cell in line.replace("┃", "│").split("│") if cell.strip()]
            if len(cells) == 2 and cells[0] == name:
                counts[name] = int(cells[1].replace(",", ""))
    return counts


def test_ndjson_imports_and_a_rerun_counts_nothing_twice(run, tmp_path, database_url, tenant) -> None:
    path = _ndjson(tmp_path / "events.ndjson", [json.dumps(_event(index)) for index in range(25)])
    code, output = run(str(path), "--batch-size", "7")
    assert code == 0, output
    assert _summary(output) == {"accepted": 25, "duplicates": 0, "conflicts": 0, "rejected": 0}
    code, output = run(str(path), "--batch-size", "10")
    assert code == 0, output
    assert _summary(output) == {"accepted": 0, "duplicates": 25, "conflicts": 0, "rejected": 0}
    stored = _stored(database_url, tenant[1])
    assert len(stored) == 25
    assert stored["evt-3"] == ("cust-0", "tokens", {"tokens": 3, "cost": "x"})


def test_numbers_stay_exact(run, tmp_path, database_url, tenant) -> None:
    line = json.dumps(_event(1, properties={}))[:-3] + '{"cost": 0.000000000000000001, "big": 12345678901234567890123}}'
    code, output = run(str(_ndjson(tmp_path / "exact.jsonl", [line])))
    assert code == 0, output
    properties = _stored(database_url, tenant[1])["evt-1"][2]
    assert properties == {"cost": Decimal("1E-18"), "big": 12345678901234567890123}


def test_gzip_is_recognized_by_its_bytes_whatever_the_name(run, tmp_path, database_url, tenant) -> None:
    lines = [json.dumps(_event(index)) for index in range(5)]
    assert run(str(_ndjson(tmp_path / "events.ndjson.gz", lines)))[0] == 0
    disguised = tmp_path / "more.ndjson"
    disguised.write_bytes(gzip.compress("\n".join(json.dumps(_event(index)) for index in range(5, 9)).encode()))
    code, output = run(str(disguised))
    assert code == 0, output
    assert len(_stored(database_url, tenant[1])) == 9


@pytest.mark.parametrize("jobs", [1, 2])
def test_bad_lines_are_rejected_with_line_numbers_and_written_to_rejects(
    run, tmp_path, database_url, tenant, jobs
) -> None:
    lines = [
        json.dumps(_event(0)),
        # The same id, other content: a conflict. (In the same chunk as the original: with several
        # jobs, chunks are ingested in parallel and which of two lines with one id wins is open.)
        json.dumps(_event(0, properties={"tokens": 999})),
        "",  # blank lines are skipped, but still counted as lines of the file
        "{not json",
        json.dumps(_event(1, customer="")),
        "[1, 2]",
        json.dumps(_event(2, timestamp="2001-01-01T00:00:00Z")),
        json.dumps(_event(3)),
    ]
    path = _ndjson(tmp_path / "mixed.ndjson", lines)
    rejects = tmp_path / "rejects.ndjson"
    # Small chunks, so that with two jobs the chunks are ingested in parallel and answered in order.
    code, output = run(str(path), "--rejects", str(rejects), "--jobs", str(jobs), "--batch-size", "2")
    assert code == 1, output
    assert _summary(output) == {"accepted": 2, "duplicates": 0, "conflicts": 1, "rejected": 4}
    for line_number, code_text in (
        (2, "exists_with_different_content"),
        (4, "malformed_json"),
        (5, "customer_required"),
        (6, "value_must_be_object"),
        (7, "timestamp_too_old"),
    ):
        assert any(row.strip().startswith(f"│ {line_number} ") and code_text in row for row in output.splitlines()), (
            f"line {line_number}: {code_text}\n{output}"
        )
    assert rejects.read_text().splitlines() == [lines[index] for index in (1, 3, 4, 5, 6)]
    assert set(_stored(database_url, tenant[1])) == {"evt-0", "evt-3"}


def test_csv_with_property_columns_and_a_json_column(run, tmp_path, database_url, tenant) -> None:
    path = tmp_path / "events.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "customer", "type", "timestamp", "properties", "properties.tokens", "properties.zip"])
        writer.writerow(["c1", "acme", "tokens", AT.isoformat(), '{"model": "large", "tokens": 1}', "1200", "02134"])
        writer.writerow(["c2", "acme", "tokens", AT.isoformat(), "", "0.000002", ""])
        writer.writerow(["c3", "acme", "tokens", AT.isoformat(), '{"zip": "02134"}', "", 'x,y\n"z"'])
        writer.writerow(["c4", "", "tokens", AT.isoformat(), "", "1", ""])
        writer.writerow(["c5", "acme", "tokens", AT.isoformat(), "{oops", "1", ""])
        writer.writerow(["c6", "acme"])
    rejects = tmp_path / "rejects.csv"
    code, output = run(str(path), "--rejects", str(rejects))
    assert code == 1, output
    assert _summary(output) == {"accepted": 3, "duplicates": 0, "conflicts": 0, "rejected": 3}, output
    stored = _stored(database_url, tenant[1])
    # A property column wins over the same key in the JSON column; numeric-looking cells are numbers;
    # anything else is text; an empty cell leaves the property out.
    assert stored["c1"][2] == {"model": "large", "tokens": 1200, "zip": "02134"}  # not a JSON number: text
    assert stored["c2"][2] == {"tokens": Decimal("0.000002")}
    assert stored["c3"][2] == {"zip": 'x,y\n"z"'}
    with rejects.open(newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0][:2] == ["id", "customer"]
    assert [row[0] for row in rows[1:]] == ["c4", "c5", "c6"]


def test_csv_with_an_unknown_column_is_refused_as_a_whole(run, tmp_path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("id,customer,type,timestamp,amount\n")
    code, output = run(str(path))
    assert code == 1 and "unknown CSV columns 'amount'" in output


def test_dry_run_validates_and_writes_nothing(run, tmp_path, database_url, tenant) -> None:
    lines = [json.dumps(_event(0)), json.dumps(_event(1, type=7)), "nope"]
    code, output = run(str(_ndjson(tmp_path / "events.ndjson.gz", lines)), "--dry-run")
    assert code == 1, output
    assert _summary(output) == {"valid": 1, "rejected": 2}
    assert "type_must_be_string" in output and "malformed_json" in output
    assert _stored(database_url, tenant[1]) == {}
    code, output = run(str(_ndjson(tmp_path / "good.ndjson", lines[:1])), "--dry-run")
    assert code == 0, output


def test_the_format_must_be_known(run, tmp_path) -> None:
    path = tmp_path / "events.txt"
    path.write_text(json.dumps(_event(0)) + "\n")
    code, output = run(str(path))
    assert code == 1 and "--format" in output
    assert run(str(path), "--format", "ndjson")[0] == 0


@pytest.mark.parametrize("jobs", [1, 2])
def test_unreadable_lines_among_whole_chunks_keep_their_line_numbers(run, tmp_path, database_url, tenant, jobs) -> None:
    # Several jobs take the file by chunks of undecoded lines: an overlong line and one that is not
    # UTF-8 must still be refused by line number, and every good line stored once.
    good = [json.dumps(_event(index)) for index in range(7)]
    path = tmp_path / "chunks.ndjson"
    with path.open("wb") as file:
        file.write(("\n".join(good[:3]) + "\n").encode())
        file.write(b'{"id":"' + b"x" * (LINE_BYTES_MAX + 10) + b'"}\n')  # line 4: too long
        file.write((good[3] + "\n").encode())
        file.write(b'{"id":"bad-\xff","customer":"c","type":"t","timestamp":"2026-01-01T00:00:00Z"}\n')  # line 6
        file.write(("\n".join(good[4:]) + "\n").encode())
    code, output = run(str(path), "--jobs", str(jobs), "--batch-size", "3")
    assert code == 1, output
    assert _summary(output) == {"accepted": 7, "duplicates": 0, "conflicts": 0, "rejected": 2}
    for line_number, code_text in ((4, "line_too_long"), (6, "id_invalid")):
        assert any(row.strip().startswith(f"│ {line_number} ") and code_text in row for row in output.splitlines()), (
            f"line {line_number}: {code_text}\n{output}"
        )
    assert set(_stored(database_url, tenant[1])) == {f"evt-{index}" for index in range(7)}
    # Again: nothing counted twice.
    code, output = run(str(path), "--jobs", str(jobs), "--batch-size", "3")
    assert _summary(output) == {"accepted": 0, "duplicates": 7, "conflicts": 0, "rejected": 2}
