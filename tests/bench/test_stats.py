"""The benchmarks' percentile: nearest rank, by integer arithmetic."""

from __future__ import annotations

import pytest

from tally.bench.stats import percentile


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        ([], 99, 0.0),
        ([7], 50, 7.0),
        ([3, 1, 2], 50, 2.0),  # unsorted input
        (list(range(1, 101)), 99, 99.0),
        (list(range(1, 301)), 99, 297.0),
        (list(range(1, 11)), 100, 10.0),
        (list(range(1, 11)), 1, 1.0),
        ([1, 2, 3, 4], 25, 1.0),
        ([1, 2, 3, 4], 26, 2.0),
    ],
)
def test_nearest_rank(values: list[int], percent: int, expected: float) -> None:
    assert percentile(values, percent) == expected
