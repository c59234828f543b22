"""`CopyCells` text reaches PostgreSQL as the very values psycopg's own COPY formatting would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.adapters.postgres.copy_cells import CopyCells

moments = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-9))]),
)


@settings(max_examples=40)
@given(st.lists(st.tuples(moments, st.uuids()), min_size=1, max_size=20))
def test_cells_store_what_psycopg_would(database_url: str, rows: list[tuple[datetime, uuid.UUID]]) -> None:
    cells = CopyCells()
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "CREATE TEMPORARY TABLE copied (n int, own timestamptz, own_id uuid, memo timestamptz, memo_id uuid)"
        )
        with connection.cursor() as cursor, cursor.copy("COPY copied FROM STDIN") as copy:
            # Each row twice, so the second comes from the memo.
            for index, (moment, value) in enumerate(rows + rows):
                copy.write_row((index, moment, value, cells.moment(moment), cells.id(value)))
        stored = connection.execute("SELECT own, own_id, memo, memo_id FROM copied ORDER BY n").fetchall()
    assert [(row[2], row[3]) for row in stored] == [(row[0], row[1]) for row in stored]
    assert [row[2] for row in stored] == [moment for moment, _ in rows + rows]


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        CopyCells().moment(datetime(2026, 1, 1))
