"""Import events in bulk (`tally events import`): records from a file, in chunks, through ingest.

Each chunk goes through `ingest_events` with `source="import"` — the very rules, dedup and results
of the HTTP API, straight against the database. So an import is idempotent like every other write:
running it again finds every event a duplicate and counts nothing twice.

The file is read on a thread of its own, a few chunks ahead of the database, so at most a few
chunks are in memory however large the file is. With `jobs=1` the lines are decoded on that thread
too and each chunk is ingested here, decoding the next chunk while the database writes this one.
With `jobs=N`, N worker processes each decode and ingest whole chunks (in transactions of their
own): JSON decoding and validation, which take more CPU than the database's part, then run on N
cores. Chunks go to them in turn, except that a line whose event id is in a chunk still being
written goes to the worker writing it (only the id is read here; `_Router`): two workers never write
one id at once (one would wait for the other's transaction), and the first line of an id in the
file is the one stored, as with one job. Outcomes are reported in file order either way.

Lines that cannot even be read as an event (not JSON, not an object, a malformed CSV row) are
rejected with their line number and never reach ingest.

With `dry_run`, events are only validated (the same checks ingest runs first); nothing is written,
and whether an event would be a duplicate or a conflict is not known.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal, TypeVar

import msgspec
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.event_files import EventFile, LineChunk, SourceRecord, decode_line
from tally.adapters.event_json import parse_json_texts
from tally.adapters.gc_tuning import tune_for_bulk_work
from tally.adapters.postgres import database
from tally.app.ingest_events import IngestOptions, ingest_events_counted
from tally.core.metering.events import EVENTS_PER_BATCH_MAX, Event, parse_event, raw_event_id
from tally.core.rejections import Rejection

LineStatus = Literal["accepted", "duplicate", "conflict", "rejected", "valid"]
REFUSALS_KEPT_MAX = 1_000
JOBS_MAX = 32
# Chunks read ahead of the one being written: enough to keep the database busy, few in memory.
CHUNKS_AHEAD = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportOptions:
    # Events per chunk (one ingest transaction): the API's largest batch. Per-chunk costs (a
    # statement, a commit) then weigh least: 10,000 took about 5 % less CPU per event than 5,000.
    batch_size: int = EVENTS_PER_BATCH_MAX
    dry_run: bool = False
    # Worker processes that decode and ingest chunks in parallel; 1: all in this process.
    jobs: int = 1
    # How many refusals the summary keeps (with their line numbers); the counts are always complete.
    refusals_kept: int = 20
    # The timestamp window, as the API applies it (`IngestOptions.from_settings`).
    ingest: IngestOptions = field(default_factory=IngestOptions)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= EVENTS_PER_BATCH_MAX:
            raise ValueError(f"batch_size must be 1 to {EVENTS_PER_BATCH_MAX}, not {self.batch_size}")
        if not 1 <= self.jobs <= JOBS_MAX:
            raise ValueError(f"jobs must be 1 to {JOBS_MAX}, not {self.jobs}")
        if not 0 <= self.refusals_kept <= REFUSALS_KEPT_MAX:
            raise ValueError(f"refusals_kept must be 0 to {REFUSALS_KEPT_MAX}, not {self.refusals_kept}")


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """What became of one line. `code`/`field`/`message` say why for `conflict` and `rejected`."""

    record: SourceRecord
    status: LineStatus
    event_id: str | None = None
    code: str | None = None
    field: str | None = None
    message: str | None = None

    @property
    def refused(self) -> bool:
        return self.status in ("conflict", "rejected")


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    """One chunk's lines: how many, and the refused ones (conflicts and rejections), in file order."""

    lines: int
    refused: list[LineOutcome]


@dataclass(slots=True)
class ImportSummary:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    valid: int = 0  # dry run: passed validation
    first_refusals: list[LineOutcome] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return self.conflicts + self.rejected


ChunkListener = Callable[[ChunkOutcome], None]
# What ingest answers for a chunk: how many lines were stored (`accepted`, `duplicate`; dry run:
# `valid`), and the refused lines by index, in order: (result, event id, code, field, message), or
# None for a line already refused as unreadable (its reason is in its record). Stored lines are
# most lines: they are only counted.
_Refusal = tuple[str, str | None, str | None, str | None, str | None]
_Answers = tuple[dict[str, int], list[tuple[int, _Refusal | None]]]


def import_events(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    records: Iterable[SourceRecord],
    options: ImportOptions,
    *,
    on_chunk: ChunkListener | None = None,
) -> ImportSummary:
    """Ingest `records` chunk by chunk; `on_chunk` sees each chunk's outcome in file order (progress,
    a rejects file). Records may be undecoded (`SourceRecord.pending`): they are decoded here.

    With `jobs` > 1, call this from a program whose main module can be imported without side effects
    (the `if __name__ == "__main__":` idiom): the worker processes are started with `spawn`."""
    summary = ImportSummary()
    counts: collections.Counter[str] = collections.Counter()
    parallel = options.jobs > 1 and not options.dry_run
    chunks = _read_ahead(records, options.batch_size, decode=not parallel)
    if parallel:
        answered = _ingest_in_processes(engine, clock, tenant_id, chunks, options)
    else:
        answered = (
            (
                chunk,
                _validate(clock, chunk, options.ingest)
                if options.dry_run
                else _ingest(engine, clock, tenant_id, chunk, options.ingest),
            )
            for chunk in chunks
        )
    for chunk, (chunk_counts, refusals) in answered:
        refused = [_refused(chunk[index], answer) for index, answer in refusals]
        _tally(summary, counts, options, chunk_counts, refused)
        if on_chunk is not None:
            on_chunk(ChunkOutcome(len(chunk), refused))
    _fill_counts(summary, counts)
    return summary


def import_event_file(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    source: EventFile,
    options: ImportOptions,
    *,
    on_chunk: ChunkListener | None = None,
) -> ImportSummary:
    """`import_events` for an open event file. An NDJSON file ingested by several processes goes by
    whole chunks of undecoded lines: this process only reads lines and tallies what the workers
    answer (counts, and the refused lines), so it does next to nothing per event."""
    if source.format != "ndjson" or options.jobs == 1 or options.dry_run:
        return import_events(engine, clock, tenant_id, source.records(decode=False), options, on_chunk=on_chunk)
    summary = ImportSummary()
    counts: collections.Counter[str] = collections.Counter()
    for chunk, (chunk_counts, refusals) in _ingest_line_chunks(
        engine, clock, tenant_id, source.line_chunks(options.batch_size), options
    ):
        refused = [_refused(chunk.record(index), answer) for index, answer in refusals]
        _tally(summary, counts, options, chunk_counts, refused)
        if on_chunk is not None:
            on_chunk(ChunkOutcome(len(chunk.texts), refused))
    _fill_counts(summary, counts)
    return summary


def _tally(
    summary: ImportSummary,
    counts: collections.Counter[str],
    options: ImportOptions,
    chunk_counts: dict[str, int],
    refused: list[LineOutcome],
) -> None:
    counts.update(chunk_counts)
    for outcome in refused:
        counts[outcome.status] += 1
        if len(summary.first_refusals) < options.refusals_kept:
            summary.first_refusals.append(outcome)


def _fill_counts(summary: ImportSummary, counts: collections.Counter[str]) -> None:
    summary.lines = counts.total()
    summary.accepted = counts["accepted"]
    summary.duplicates = counts["duplicate"]
    summary.conflicts = counts["conflict"]
    summary.rejected = counts["rejected"]
    summary.valid = counts["valid"]


def _refused(record: SourceRecord, answer: _Refusal | None) -> LineOutcome:
    if answer is None:
        unreadable_code, message = record.error or ("line_unreadable", "")
        return LineOutcome(record, "rejected", code=unreadable_code, message=message)
    result, event_id, code, field_name, detail = answer
    return LineOutcome(record, result, event_id, code, field_name, detail)  # type: ignore[arg-type]


def _ingest_chunk(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    events: Sequence[Event | dict[str, Any] | None],
    ingest: IngestOptions,
) -> _Answers:
    """Ingest the events of a chunk (None: an unreadable line, skipped) in one transaction."""
    readable_at = [index for index, event in enumerate(events) if event is not None]
    refusals: list[tuple[int, _Refusal | None]] = [(index, None) for index, event in enumerate(events) if event is None]
    if not readable_at:
        return {}, refusals
    readable = events if not refusals else [events[index] for index in readable_at]
    counted = ingest_events_counted(engine, clock, tenant_id, readable, source="import", options=ingest)
    refusals += [
        (readable_at[index], (outcome.result, outcome.event_id, rejection.code, rejection.field, rejection.message))
        for index, outcome in counted.refused
        if (rejection := outcome.rejection) is not None
    ]
    refusals.sort(key=itemgetter(0))  # two sorted runs: merged in one pass
    return {"accepted": counted.accepted, "duplicate": counted.duplicate}, refusals


def _ingest(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, chunk: Sequence[SourceRecord], ingest: IngestOptions
) -> _Answers:
    return _ingest_chunk(engine, clock, tenant_id, [record.event for record in chunk], ingest)


def _validate(clock: Clock, chunk: Sequence[SourceRecord], ingest: IngestOptions) -> _Answers:
    window = ingest.window(clock.now())
    valid = 0
    refusals: list[tuple[int, _Refusal | None]] = []
    for index, record in enumerate(chunk):
        if record.event is None:
            refusals.append((index, None))
            continue
        parsed = parse_event(record.event, window)
        if isinstance(parsed, Rejection):
            refusals.append(
                (index, ("rejected", raw_event_id(record.event), parsed.code, parsed.field, parsed.message))
            )
        else:
            valid += 1
    return {"valid": valid}, refusals


# Several processes.

_worker: dict[str, Any] = {}


def _start_worker(database_url: str, clock: Clock) -> None:
    _worker["engine"] = database.make_engine(database_url, pool_size=1)
    _worker["clock"] = clock
    tune_for_bulk_work()


def _work(tenant_id: uuid.UUID, items: Sequence[str | dict[str, Any] | None], ingest: IngestOptions) -> _Answers:
    """In a worker process: decode the pending lines (text), then ingest the chunk. A chunk of lines
    only (the usual case) is decoded and parsed in bulk when the fast path can (`parse_json_texts`:
    the same answers); otherwise line by line."""
    engine, clock = _worker["engine"], _worker["clock"]
    if items and all(type(item) is str for item in items):
        parsed = parse_json_texts(items, ingest.window(clock.now()))  # type: ignore[arg-type]
        if parsed is not None:
            return _ingest_chunk(engine, clock, tenant_id, parsed, ingest)
    events: list[dict[str, Any] | None] = []
    unreadable: dict[int, tuple[str, str]] = {}
    for index, item in enumerate(items):
        if isinstance(item, str):
            event, error = decode_line(item)
            if error is not None:
                unreadable[index] = error
            events.append(event)
        else:
            events.append(item)
    counts, refusals = _ingest_chunk(engine, clock, tenant_id, events, ingest)
    return counts, [
        (index, _unreadable(*unreadable[index]) if index in unreadable else answer) for index, answer in refusals
    ]


def _unreadable(code: str, message: str) -> _Refusal:
    return ("rejected", None, code, None, message)


def _work_lines(
    tenant_id: uuid.UUID, texts: Sequence[str], unreadable: Sequence[int], ingest: IngestOptions
) -> _Answers:
    """In a worker process: decode and ingest a chunk of lines (`unreadable`: the indexes of lines
    the reader refused)."""
    items: list[str | None] = list(texts)
    for index in unreadable:
        items[index] = None
    return _work(tenant_id, items, ingest)


_Chunk = TypeVar("_Chunk")
# What a chunk in flight holds: the ids one worker is writing for it.
_Held = tuple[int, set[str]]


def _ingest_line_chunks(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, chunks: Iterator[LineChunk], options: ImportOptions
) -> Iterator[tuple[LineChunk, _Answers]]:
    """Chunks of undecoded lines, ingested by `options.jobs` processes (`_routed`)."""

    def submit(worker: ProcessPoolExecutor, chunk: LineChunk, indexes: list[int]) -> Future[_Answers]:
        texts = chunk.texts if len(indexes) == len(chunk.texts) else [chunk.texts[index] for index in indexes]
        unreadable = [position for position, index in enumerate(indexes) if index in chunk.errors]
        return worker.submit(_work_lines, tenant_id, texts, unreadable, options.ingest)

    return _routed(engine, clock, options.jobs, chunks, ids_of=_line_ids, submit=submit)


def _ingest_in_processes(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    chunks: Iterator[list[SourceRecord]],
    options: ImportOptions,
) -> Iterator[tuple[list[SourceRecord], _Answers]]:
    """Chunks of records (decoded, or lines still to decode), ingested by `options.jobs` processes
    (`_routed`)."""

    def submit(worker: ProcessPoolExecutor, chunk: list[SourceRecord], indexes: list[int]) -> Future[_Answers]:
        items = [chunk[index].raw if chunk[index].pending else chunk[index].event for index in indexes]
        return worker.submit(_work, tenant_id, items, options.ingest)

    return _routed(engine, clock, options.jobs, chunks, ids_of=_record_ids, submit=submit)


def _routed(
    engine: Engine,
    clock: Clock,
    jobs: int,
    chunks: Iterator[_Chunk],
    *,
    ids_of: Callable[[_Chunk], list[str | None]],
    submit: Callable[[ProcessPoolExecutor, _Chunk, list[int]], Future[_Answers]],
) -> Iterator[tuple[_Chunk, _Answers]]:
    """Chunks go to `jobs` worker processes in turn, at most two each in flight; answers come back
    in order. A line whose event id is in a chunk still in flight goes to the worker writing that
    chunk (`_Router`), after it: two workers never write one id at once."""
    database_url = engine.url.render_as_string(hide_password=False)
    router = _Router(jobs)
    in_flight: collections.deque[tuple[_Chunk, list[_Held], list[tuple[list[int], Future[_Answers]]]]] = (
        collections.deque()
    )
    with contextlib.ExitStack() as stack:
        workers = [
            stack.enter_context(
                ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(database_url, clock),
                )
            )
            for _ in range(jobs)
        ]
        for chunk in chunks:
            holds, batches = router.route(
                ids_of(chunk), (held for _, chunk_holds, _ in in_flight for held in chunk_holds)
            )
            parts = [(indexes, submit(workers[worker], chunk, indexes)) for worker, indexes in batches]
            in_flight.append((chunk, holds, parts))
            if len(in_flight) >= 2 * jobs:
                done, _, oldest = in_flight.popleft()
                yield done, _merged(oldest)
        while in_flight:
            done, _, oldest = in_flight.popleft()
            yield done, _merged(oldest)


class _EventId(msgspec.Struct):
    """A line's `id` alone (msgspec skips the rest of the object without building it)."""

    id: object = None


_read_event_id = msgspec.json.Decoder(_EventId).decode


class _Router:
    """Which worker writes each line of a chunk. Chunks go to the workers in turn (a chunk's ids are
    usually near one another, and so are its rows in the indexes). A line whose id is held by a
    chunk still in flight goes instead to the worker holding it, which writes it after that chunk:
    otherwise its insert into the dedup registry would wait for the other worker's transaction, and
    the two workers would take turns. It also keeps the first line of an id in the file the one
    stored, as with one job. Only the id of each line is read, and the ids are matched by set
    operations (C), so a line costs well under a microsecond here. A line without a readable string
    id (it will be refused) stays with its chunk. Where a line goes decides who writes it, never
    what it is answered."""

    def __init__(self, jobs: int) -> None:
        self._jobs = jobs
        self._next = 0

    def route(
        self, ids: Sequence[str | None], in_flight: Iterable[_Held]
    ) -> tuple[list[_Held], list[tuple[int, list[int]]]]:
        """For a chunk whose lines have `ids` (None: no readable string id): the ids it will hold, by
        worker, while in flight, and its (worker, indexes in file order) batches, the chunk's own
        worker's first. `in_flight`: what the chunks still in flight hold."""
        own = self._next
        self._next = (own + 1) % self._jobs
        present = {event_id for event_id in ids if event_id is not None}
        moved: dict[str, int] = {}
        for worker, held in in_flight:
            for event_id in present & held:
                moved[event_id] = worker  # every chunk in flight holding an id sent it to one worker
        if not moved:
            return [(own, present)], [(own, list(range(len(ids))))]
        routed: dict[int, list[int]] = {own: []}
        for index, line_id in enumerate(ids):
            routed.setdefault(moved.get(line_id, own) if line_id is not None else own, []).append(index)
        holds: dict[int, set[str]] = {own: present - moved.keys()}
        for moved_id, worker in moved.items():
            holds.setdefault(worker, set()).add(moved_id)
        return list(holds.items()), [(worker, indexes) for worker, indexes in routed.items() if indexes]


def _line_ids(chunk: LineChunk) -> list[str | None]:
    """Each line's event id, or None for a line without a readable string id."""
    if not chunk.errors:
        try:
            values = [_read_event_id(text).id for text in chunk.texts]
        except (msgspec.DecodeError, UnicodeError):
            pass
        else:
            return [value if type(value) is str else None for value in values]
    return [None if index in chunk.errors else _text_id(text) for index, text in enumerate(chunk.texts)]


def _record_ids(chunk: list[SourceRecord]) -> list[str | None]:
    """Each record's event id (read from its line if it is still to decode), or None."""
    ids: list[str | None] = []
    for record in chunk:
        if record.pending:
            ids.append(_text_id(record.raw))
        else:
            value = None if record.event is None else record.event.get("id")
            ids.append(value if type(value) is str else None)
    return ids


def _text_id(text: str) -> str | None:
    try:
        value = _read_event_id(text).id
    except (msgspec.DecodeError, UnicodeError):
        return None
    return value if type(value) is str else None


def _merged(parts: list[tuple[list[int], Future[_Answers]]]) -> _Answers:
    """One chunk's answers from its batches': counts summed, refusals mapped back to chunk indexes."""
    counts: collections.Counter[str] = collections.Counter()
    refusals: list[tuple[int, _Refusal | None]] = []
    for indexes, future in parts:
        part_counts, part_refusals = future.result()
        counts.update(part_counts)
        refusals += [(indexes[position], answer) for position, answer in part_refusals]
    refusals.sort(key=itemgetter(0))
    return dict(counts), refusals


# Reading ahead.

_END = object()


def _read_ahead(records: Iterable[SourceRecord], batch_size: int, *, decode: bool) -> Iterator[list[SourceRecord]]:
    """Chunks of `batch_size` records, read (and with `decode`, decoded) on a thread of its own,
    `CHUNKS_AHEAD` ahead of the consumer."""
    chunks: queue.Queue[object] = queue.Queue(maxsize=CHUNKS_AHEAD)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            chunk: list[SourceRecord] = []
            for record in records:
                chunk.append(record.decoded() if decode else record)
                if len(chunk) == batch_size:
                    if not put(chunk):
                        return
                    chunk = []
            if chunk and not put(chunk):
                return
            put(_END)
        except BaseException as error:  # handed to the consumer, which raises it
            put(error)

    reader = threading.Thread(target=read, name="tally-import-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = chunks.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()
