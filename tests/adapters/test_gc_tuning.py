"""Bulk-work processes freeze what start-up built and collect the first generation less often."""

from __future__ import annotations

import gc

from tally.adapters.gc_tuning import GEN0_THRESHOLD, tune_for_bulk_work


def test_tuning_freezes_start_up_and_raises_the_first_threshold() -> None:
    before = gc.get_threshold()
    try:
        start_up = [object() for _ in range(10)] + [[] for _ in range(10)]
        tune_for_bulk_work()
        assert gc.get_threshold() == (GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() >= len(start_up) // 2  # the lists (containers) are frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
