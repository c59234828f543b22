"""Event files for bulk import: NDJSON or CSV, plain or gzip, read as a stream of records.

A file of any size is read a line or a block of lines at a time (memory stays bounded), and each
record keeps its line number and its original text, so a rejection can point at the line and a
rejects file can hold the lines exactly as they were.

NDJSON: one JSON object per line (`{"id":…,"customer":…,"type":…,"timestamp":…,"properties":{…}}`);
blank lines are skipped. Numbers are read exactly (`int` or `Decimal`, never `float`), as the API
reads them.

CSV: a header row, then one event per row. Columns: `id`, `customer`, `type`, `timestamp`, and the
properties either as one `properties` column holding a JSON object, or one `properties.<name>`
column per property (both may be used; a `properties.<name>` cell wins over the same key in the
JSON column). A `properties.<name>` cell that reads as a JSON number is a number, anything else is
text, and an empty cell leaves the property out. An empty `id`/`customer`/`type`/`timestamp` cell
leaves the field out (validation then says which is missing).

Gzip is recognized by its magic bytes, whatever the file is called. The format comes from the name
(`.csv`, `.ndjson`, `.jsonl`, `.json`, each optionally followed by `.gz`) unless given.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from tally.core.metering.events import decode_json

FileFormat = Literal["ndjson", "csv"]
GZIP_MAGIC = b"\x1f\x8b"
# A limit on one line (or CSV row): an event is small; a longer line is rejected, not buffered.
LINE_BYTES_MAX = 1024 * 1024
# NDJSON read in bulk (`EventFile.line_chunks`) goes by blocks of this many bytes: small enough to
# stay in the processor's cache (larger blocks read more slowly), and less than `LINE_BYTES_MAX`, so
# a block of ordinary lines is short enough that none of its lines can be too long.
READ_BLOCK_BYTES = 64 * 1024
CSV_FIELDS = ("id", "customer", "type", "timestamp")
PROPERTIES_COLUMN = "properties"
PROPERTY_COLUMN_PREFIX = "properties."
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class EventFileError(Exception):
    """The file as a whole cannot be read (unknown format, bad CSV header): nothing is imported."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One line of the file. Either `event` (a JSON-like mapping, not yet validated) or `error`
    (`(code, detail)`: it could not even be read as an event), or neither: an NDJSON line read with
    `decode=False`, whose `raw` text is still to be decoded (`decoded()`). `raw` is the line as it was."""

    line_number: int
    raw: str
    event: dict[str, Any] | None = None
    error: tuple[str, str] | None = None

    @property
    def pending(self) -> bool:
        return self.event is None and self.error is None

    def decoded(self) -> SourceRecord:
        if not self.pending:
            return self
        event, error = decode_line(self.raw)
        return SourceRecord(self.line_number, self.raw, event=event, error=error)


@dataclass(frozen=True, slots=True)
class LineChunk:
    """Consecutive NDJSON lines, read but not decoded: each line's number and text (blank lines are
    skipped). A line that could not be read (too long) has empty text and its `(code, detail)` in
    `errors`, under its index."""

    numbers: list[int]
    texts: list[str]
    errors: dict[int, tuple[str, str]]

    def record(self, index: int) -> SourceRecord:
        return SourceRecord(self.numbers[index], self.texts[index], error=self.errors.get(index))

    def records(self) -> list[SourceRecord]:
        return [self.record(index) for index in range(len(self.texts))]


def decode_line(text: str) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """One NDJSON line: (the event object, None) or (None, (code, detail))."""
    try:
        value = decode_json(text)
    except ValueError as error:
        return None, ("malformed_json", str(error))
    if not isinstance(value, dict):
        return None, ("value_must_be_object", "each line must be a JSON object")
    return value, None


def detect_format(path: Path) -> FileFormat:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".gzip"):
        suffixes.pop()
    if suffixes and suffixes[-1] == ".csv":
        return "csv"
    if suffixes and suffixes[-1] in (".ndjson", ".jsonl", ".json"):
        return "ndjson"
    raise EventFileError(f"cannot tell the format of {path.name} from its name: give --format ndjson or csv")


class EventFile:
    """An open event file: iterate `records()`, watch `bytes_read` (of the file on disk) for progress."""

    def __init__(self, path: Path, file_format: FileFormat | None = None) -> None:
        self.path = path
        self.format: FileFormat = file_format or detect_format(path)
        self.size_bytes = path.stat().st_size
        self._raw: BinaryIO = path.open("rb")
        self.compressed = self._raw.read(2) == GZIP_MAGIC
        self._raw.seek(0)
        self._stream: BinaryIO = gzip.GzipFile(fileobj=self._raw, mode="rb") if self.compressed else self._raw  # type: ignore[assignment]
        self.csv_header: list[str] | None = None

    def __enter__(self) -> EventFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()
        self._raw.close()

    @property
    def bytes_read(self) -> int:
        """How far into the file on disk (compressed bytes for gzip)."""
        return self.size_bytes if self._raw.closed else self._raw.tell()

    def records(self, *, decode: bool = True) -> Iterator[SourceRecord]:
        """The file's records. `decode=False` leaves NDJSON lines undecoded (`SourceRecord.pending`),
        for a consumer that decodes them elsewhere (another thread or process)."""
        return self._ndjson_records(decode) if self.format == "ndjson" else self._csv_records()

    def _ndjson_records(self, decode: bool) -> Iterator[SourceRecord]:
        for line_number, text, error in self._ndjson_lines():
            if error is not None:
                yield SourceRecord(line_number, "", error=error)
                continue
            record = SourceRecord(line_number, text)
            yield record.decoded() if decode else record

    def line_chunks(self, size: int) -> Iterator[LineChunk]:
        """The NDJSON lines in chunks of `size` (a `size` below 1: one chunk), read but not decoded,
        with no object per line: for a consumer that decodes whole chunks elsewhere (worker
        processes). The lines, their numbers and their errors are those of `records()`."""
        if self.format != "ndjson":
            raise EventFileError("line chunks are for NDJSON files")
        chunk_size = size if size > 0 else sys.maxsize
        chunk = LineChunk([], [], {})
        for numbers, texts, errors in self._ndjson_line_runs():
            start = 0
            while start < len(texts):
                stop = min(len(texts), start + chunk_size - len(chunk.texts))
                if errors:
                    shift = len(chunk.texts) - start
                    chunk.errors.update(
                        (index + shift, error) for index, error in errors.items() if start <= index < stop
                    )
                chunk.numbers.extend(numbers[start:stop])
                chunk.texts.extend(texts[start:stop])
                start = stop
                if len(chunk.texts) == chunk_size:
                    yield chunk
                    chunk = LineChunk([], [], {})
        if chunk.texts:
            yield chunk

    def _ndjson_line_runs(self) -> Iterator[tuple[Sequence[int], list[str], dict[int, tuple[str, str]]]]:
        """The NDJSON lines, read by blocks of `READ_BLOCK_BYTES`: runs of consecutive lines, each as
        (line numbers, texts, errors by index in the run). Blank lines are skipped; a line longer
        than `LINE_BYTES_MAX` has empty text and the error `line_too_long`.

        A block ends at its last newline; the incomplete line after it is carried into the next
        block, unless it is already longer than `LINE_BYTES_MAX`: it is then reported and the rest
        of it is skipped as it is read, so a block never holds more than `LINE_BYTES_MAX` bytes of
        an unfinished line."""
        line_bytes_max = LINE_BYTES_MAX
        block_bytes = READ_BLOCK_BYTES
        read = self._stream.read
        lines_before = 0  # lines that end before `unfinished`
        unfinished = b""  # the start of a line whose end is not read yet
        skipping = False  # within a line too long to read, already reported
        while data := read(block_bytes):
            if skipping:
                newline = data.find(b"\n")
                if newline < 0:
                    continue
                data = data[newline + 1 :]
                skipping = False
            buffer = unfinished + data if unfinished else data
            last_newline = buffer.rfind(b"\n")
            if last_newline >= 0:
                run, line_count = _block_lines(buffer, last_newline, lines_before + 1, line_bytes_max)
                lines_before += line_count
                if run[1]:
                    yield run
                unfinished = buffer[last_newline + 1 :]
            else:
                unfinished = buffer
            if len(unfinished) > line_bytes_max:
                lines_before += 1
                yield [lines_before], [""], {0: _line_too_long(line_bytes_max)}
                unfinished = b""
                skipping = True
        if unfinished:  # a last line without a newline
            run, _ = _block_lines(unfinished, len(unfinished), lines_before + 1, line_bytes_max)
            if run[1]:
                yield run

    def _ndjson_lines(self) -> Iterator[tuple[int, str, tuple[str, str] | None]]:
        """(line number, text, None), or (line number, "", (code, detail)) for a line that cannot be
        read; blank lines skipped."""
        for numbers, texts, errors in self._ndjson_line_runs():
            for index, (line_number, text) in enumerate(zip(numbers, texts, strict=True)):
                yield line_number, text, errors.get(index)

    def _csv_records(self) -> Iterator[SourceRecord]:
        text_stream = io.TextIOWrapper(self._stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            yield from self._csv_rows(csv.reader(text_stream))
        finally:
            text_stream.detach()  # the file stays open (and its position readable) until `close()`

    def _csv_rows(self, reader: Any) -> Iterator[SourceRecord]:
        header = next(reader, None)
        if header is None:
            return
        columns = [column.strip() for column in header]
        unknown = [
            column
            for column in columns
            if column not in (*CSV_FIELDS, PROPERTIES_COLUMN)
            and not (column.startswith(PROPERTY_COLUMN_PREFIX) and len(column) > len(PROPERTY_COLUMN_PREFIX))
        ]
        if unknown:
            raise EventFileError(
                f"unknown CSV columns {', '.join(map(repr, unknown))}: use id, customer, type, timestamp, "
                "properties and properties.<name>"
            )
        if len(set(columns)) != len(columns):
            raise EventFileError("a CSV column appears twice in the header")
        self.csv_header = columns
        while True:
            line_number = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield SourceRecord(line_number, "", error=("csv_row_malformed", str(error)))
                continue
            if not any(cell.strip() for cell in row):
                continue
            raw = _csv_line(row)
            if len(raw) > LINE_BYTES_MAX:
                yield SourceRecord(line_number, "", error=("line_too_long", f"longer than {LINE_BYTES_MAX} bytes"))
                continue
            if len(row) != len(columns):
                yield SourceRecord(
                    line_number, raw, error=("csv_row_malformed", f"{len(row)} cells, the header has {len(columns)}")
                )
                continue
            yield _csv_record(line_number, raw, columns, row)


def _line_too_long(line_bytes_max: int) -> tuple[str, str]:
    return "line_too_long", f"longer than {line_bytes_max} bytes"


def _line_text(line: bytes, line_number: int) -> str | None:
    """The text of one NDJSON line (with or without its newline), or None for a blank line."""
    # Bytes that are not UTF-8 are kept (as lone surrogates): the event is then rejected for them,
    # never stored with a silent replacement character.
    text = line.decode("utf-8", errors="surrogateescape").rstrip("\r\n")
    if line_number == 1:
        text = text.removeprefix("\ufeff")  # a byte-order mark some tools write
    return text if text.strip() else None


def _block_lines(
    buffer: bytes, end: int, first_number: int, line_bytes_max: int
) -> tuple[tuple[Sequence[int], list[str], dict[int, tuple[str, str]]], int]:
    """The lines of `buffer[:end]` (whole lines joined by newlines, without the last newline),
    numbered from `first_number`, as `EventFile._ndjson_line_runs` yields them; and how many lines
    there are."""
    # A block no longer than the limit (so none of its lines is too long) and without a carriage
    # return is decoded at once: the same text as decoding each line, since a newline byte is never
    # part of a UTF-8 sequence. Its lines are kept as they are if each starts with an ASCII character
    # above the space ("!" to DEL): none is then blank, whitespace only or led by a byte-order mark.
    if end <= line_bytes_max and buffer.find(b"\r", 0, end) < 0:
        block_text = str(memoryview(buffer)[:end], "utf-8", "surrogateescape")
        texts = block_text.split("\n")
        if min(texts) >= "!" and (block_text.isascii() or max(texts) < "\x80"):
            return (range(first_number, first_number + len(texts)), texts, {}), len(texts)
    lines = buffer[:end].split(b"\n")
    numbers: list[int] = []
    texts = []
    errors: dict[int, tuple[str, str]] = {}
    for line_number, line in enumerate(lines, first_number):
        if len(line) > line_bytes_max:
            errors[len(texts)] = _line_too_long(line_bytes_max)
            text: str | None = ""
        else:
            text = _line_text(line, line_number)
        if text is not None:
            numbers.append(line_number)
            texts.append(text)
    return (numbers, texts, errors), len(lines)


def _csv_line(row: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    return buffer.getvalue()


def _csv_record(line_number: int, raw: str, columns: list[str], row: list[str]) -> SourceRecord:
    event: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for column, cell in zip(columns, row, strict=True):
        if column == PROPERTIES_COLUMN:
            if not cell.strip():
                continue
            try:
                value = decode_json(cell)
            except ValueError as error:
                return SourceRecord(line_number, raw, error=("malformed_json", f"properties: {error}"))
            if not isinstance(value, dict):
                return SourceRecord(
                    line_number, raw, error=("value_must_be_object", "the properties column must hold a JSON object")
                )
            properties = {**value, **properties}
        elif column.startswith(PROPERTY_COLUMN_PREFIX):
            if cell == "":
                continue
            name = column[len(PROPERTY_COLUMN_PREFIX) :]
            properties[name] = decode_json(cell) if _JSON_NUMBER.fullmatch(cell) else cell
        elif cell != "":
            event[column] = cell
    event["properties"] = properties
    return SourceRecord(line_number, raw, event=event)


class RejectsWriter:
    """Writes refused lines as they were, in the input's format (CSV with its header), so the file
    can be fixed and imported again."""

    def __init__(self, path: Path, source: EventFile) -> None:
        self._file = path.open("w", encoding="utf-8", errors="surrogateescape", newline="")
        self._source = source
        self._line_end = "\r\n" if source.format == "csv" else "\n"
        self._header_written = False
        self.lines_written = 0

    def write(self, record: SourceRecord) -> None:
        if not record.raw:
            return  # an overlong or unreadable line has no text to keep
        if not self._header_written and self._source.csv_header is not None:
            self._file.write(_csv_line(self._source.csv_header) + self._line_end)
        self._header_written = True
        self._file.write(record.raw + self._line_end)
        self.lines_written += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
