"""The hand-written binary arrays reach PostgreSQL as the very values psycopg's own lists would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.adapters.postgres.arrays import BytesArray, IntArray, TextArray, TimestampArray, UuidArray

# PostgreSQL text holds any character but NUL (and no lone surrogates).
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
moments = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


@settings(max_examples=60)
@given(
    st.lists(texts, max_size=30),
    st.one_of(
        st.lists(st.binary(max_size=20), max_size=30),
        st.integers(min_value=0, max_value=20).flatmap(
            lambda size: st.lists(st.binary(min_size=size, max_size=size), max_size=30)
        ),
    ),
    st.lists(moments, max_size=30),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=30),
    st.lists(st.uuids(), max_size=30),
)
def test_arrays_arrive_as_psycopgs_own_lists_would(
    database_url: str,
    strings: list[str],
    blobs: list[bytes],
    timestamps: list[datetime],
    numbers: list[int],
    ids: list[uuid.UUID],
) -> None:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            """SELECT %(texts)s::text[] IS NOT DISTINCT FROM %(text_list)s::text[],
                      %(blobs)s::bytea[] IS NOT DISTINCT FROM %(blob_list)s::bytea[],
                      %(moments)s::timestamptz[] IS NOT DISTINCT FROM %(moment_list)s::timestamptz[],
                      cardinality(%(texts)s::text[]), %(moments)s::timestamptz[],
                      %(numbers)s::bigint[] IS NOT DISTINCT FROM %(number_list)s::bigint[], %(numbers)s::bigint[],
                      %(ids)s::uuid[] IS NOT DISTINCT FROM %(id_list)s::uuid[], %(ids)s::uuid[]""",
            {
                "texts": TextArray(strings),
                "text_list": strings,
                "blobs": BytesArray(blobs),
                "blob_list": blobs,
                "moments": TimestampArray(timestamps),
                "moment_list": timestamps,
                "numbers": IntArray(numbers),
                "number_list": numbers,
                "ids": UuidArray(ids),
                "id_list": ids,
            },
            binary=True,
        ).fetchone()
    assert row is not None
    assert row[:4] == (True, True, True, len(strings))
    assert row[4] == timestamps
    assert row[5] is True
    assert row[6] == numbers
    assert row[7] is True
    assert row[8] == ids
