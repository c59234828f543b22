"""Bulk-work processes freeze what start-up built and collect the first generation less often."""

from __future__ import annotations

import gc
import weakref

from tally.adapters.gc_tuning import GEN0_THRESHOLD, collector_paused, tune_for_bulk_work


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


def test_collector_paused_turns_it_off_for_the_block_and_back_on() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_paused_comes_back_on_after_an_error() -> None:
    try:
        with collector_paused():
            raise KeyError("inside")
    except KeyError:
        pass
    assert gc.isenabled()


def test_collector_paused_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_cycles_made_while_paused_are_collected_afterwards() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    with collector_paused():
        first, second = Node(), Node()
        first.other, second.other = second, first
        alive = weakref.ref(first)
        del first, second
        assert alive() is not None  # a cycle: reference counting alone does not free it
    gc.collect()
    assert alive() is None
