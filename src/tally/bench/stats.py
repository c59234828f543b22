"""What the benchmarks report of a sample: percentiles by the nearest-rank rule."""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], percent: int) -> float:
    """The nearest-rank `percent`-th percentile (1 to 100) of `values`: the smallest value at least
    `percent`% of them do not exceed. 0.0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = -(-len(ordered) * percent // 100)  # ceiling
    return float(ordered[max(0, rank - 1)])
