"""The garbage collector, tuned for processes that handle events in bulk.

An ingest request makes tens of thousands of short-lived containers (decoded events, their
properties, outcomes). With CPython's defaults the cyclic collector runs every 700 of them, and
every so often walks everything the process holds: measured, a fifth of ingest's Python time. So a
serving, importing or billing worker process calls `tune_for_bulk_work()` once it has started:

- `gc.freeze()` moves what start-up built (modules, the app, settings, pools) out of the collector's
  sight: it lives as long as the process and holds no garbage;
- the first generation is collected every 20,000 allocations instead of 700, which one request's
  garbage fits in (it is freed by reference counting anyway; the collector is only for cycles).

Memory stays bounded: what waits for a collection is at most one generation's worth of objects.

A billing chunk is different: it reads and keeps a thousand customers' rows, timelines and proposals
until its transaction commits, so the live set grows through the whole chunk and every collection
(of whatever generation) walks more of it. `collector_paused()` turns the cyclic collector off for
one such bounded unit of work; cycles made meanwhile (billing makes few: exceptions caught with their
tracebacks, mostly) wait for the first collection after it, so memory is still bounded by the chunk.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

GEN0_THRESHOLD: Final = 20_000


def tune_for_bulk_work() -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off while the block runs (reference counting still frees everything
    without cycles), back on afterwards if it was on before. Process-wide: meant for one bounded
    unit of work, such as a billing chunk (a second or two)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
