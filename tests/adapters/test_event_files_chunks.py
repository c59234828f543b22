"""`EventFile.line_chunks` reads NDJSON by blocks, yet gives exactly the chunks of the line-by-line
reading (`readline`, as imports read files before): the same line numbers, texts and errors, on files
with blank and whitespace-only lines, carriage returns, a byte-order mark, bytes that are not UTF-8,
lines too long to read and a last line with or without its newline, plain or gzip, whatever the
chunk size, block size and line limit."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.adapters import event_files
from tally.adapters.event_files import LINE_BYTES_MAX, EventFile, EventFileError, LineChunk

Chunks = list[tuple[list[int], list[str], dict[int, tuple[str, str]]]]
BOM = "\ufeff".encode()
# Characters `str.strip` removes, and some it keeps but that could be taken for them.
SPACES = [" ", "\t", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u3000"]
ODD_LEADS = ["\ufeff", "\x7f", "\x80", "\u200b", "é", "~", "!"]


def _write(path: Path, data: bytes, compressed: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if compressed else data)
    return path


def _chunks(path: Path, size: int) -> Chunks:
    with EventFile(path, "ndjson") as source:
        return [(chunk.numbers, chunk.texts, chunk.errors) for chunk in source.line_chunks(size)]


def _lines_read_one_by_one(source: EventFile) -> Iterator[tuple[int, str, tuple[str, str] | None]]:
    """The reading the block reader must equal, line by line with `readline` (as import read files
    before it): a line longer than the limit is reported and skipped, blank lines are skipped."""
    limit = event_files.LINE_BYTES_MAX
    line_number = 0
    readline = source._stream.readline
    while line := readline(limit + 1):
        line_number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = readline(limit)
            yield line_number, "", ("line_too_long", f"longer than {limit} bytes")
            continue
        text = line.decode("utf-8", errors="surrogateescape").rstrip("\r\n")
        if line_number == 1:
            text = text.removeprefix("\ufeff")
        if text.strip():
            yield line_number, text, None


def _line_by_line_chunks(path: Path, size: int) -> Chunks:
    """The chunks `line_chunks` must give, made from the line-by-line reading."""
    chunks: Chunks = []
    chunk = LineChunk([], [], {})
    with EventFile(path, "ndjson") as source:
        for line_number, text, error in _lines_read_one_by_one(source):
            if error is not None:
                chunk.errors[len(chunk.texts)] = error
            chunk.numbers.append(line_number)
            chunk.texts.append(text)
            if len(chunk.texts) == size:
                chunks.append((chunk.numbers, chunk.texts, chunk.errors))
                chunk = LineChunk([], [], {})
    if chunk.texts:
        chunks.append((chunk.numbers, chunk.texts, chunk.errors))
    return chunks


@st.composite
def _lines(draw: st.DrawFn, line_bytes_max: int) -> bytes:
    kind = draw(st.sampled_from(["event"] * 6 + ["unicode", "bytes", "blank", "spaces", "odd lead", "long"]))
    if kind == "event":
        text = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12))
        return json.dumps({"id": f"e-{draw(st.integers(0, 999))}", "s": text}, separators=(",", ":")).encode()
    if kind == "unicode":
        return draw(st.text(max_size=12)).replace("\n", "").encode("utf-8")
    if kind == "bytes":
        return draw(st.binary(max_size=12)).replace(b"\n", b"")
    if kind == "blank":
        return b""
    if kind == "spaces":
        return "".join(draw(st.lists(st.sampled_from(SPACES), min_size=1, max_size=4))).encode()
    if kind == "odd lead":
        return (draw(st.sampled_from(ODD_LEADS + SPACES)) + '{"id":"e"}').encode()
    length = draw(st.integers(max(0, line_bytes_max - 2), line_bytes_max * 3 + 2))
    return b"{" + b"x" * max(0, length - 1)


@st.composite
def _ndjson_files(draw: st.DrawFn) -> tuple[bytes, int]:
    line_bytes_max = draw(st.integers(1, 60))
    lines = draw(st.lists(_lines(line_bytes_max), max_size=30))
    ends = [draw(st.sampled_from([b"\n"] * 4 + [b"\r\n", b"\r\r\n", b"\r"])) for _ in lines]
    data = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    if draw(st.booleans()) and lines:
        data = data.removesuffix(ends[-1])  # a last line without its newline
    if draw(st.booleans()):
        data = BOM + data
    return data, line_bytes_max


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("event-files") / "events.ndjson"


@settings(max_examples=500)
@given(_ndjson_files(), st.integers(1, 80), st.integers(-1, 9), st.booleans())
def test_chunks_read_by_blocks_are_the_chunks_read_line_by_line(
    scratch: Path, file: tuple[bytes, int], block_bytes: int, size: int, compressed: bool
) -> None:
    data, line_bytes_max = file
    path = _write(scratch, data, compressed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(event_files, "LINE_BYTES_MAX", line_bytes_max)
        patch.setattr(event_files, "READ_BLOCK_BYTES", block_bytes)
        chunks = _chunks(path, size)
        expected = _line_by_line_chunks(path, size)
        with EventFile(path, "ndjson") as source:
            records = [(record.line_number, record.raw, record.error) for record in source.records(decode=False)]
        with EventFile(path, "ndjson") as source:
            lines = list(_lines_read_one_by_one(source))
    assert chunks == expected
    assert all(len(texts) == size for _, texts, _ in chunks[:-1])
    # `records()` (one job, CSV's sibling) reads by the same blocks.
    assert records == lines


@given(st.lists(st.binary(max_size=10).map(lambda line: line.replace(b"\n", b""))))
def test_decoding_a_block_decodes_each_of_its_lines(lines: list[bytes]) -> None:
    block = b"\n".join(lines)
    whole = block.decode("utf-8", errors="surrogateescape")
    assert whole == "\n".join(line.decode("utf-8", errors="surrogateescape") for line in lines)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b'{"a":1}\n{"b":2}\n', [([1, 2], ['{"a":1}', '{"b":2}'], {})], id="plain"),
        pytest.param(b'{"a":1}\n{"b":2}', [([1, 2], ['{"a":1}', '{"b":2}'], {})], id="no last newline"),
        pytest.param(b'\n{"a":1}\n\n  \t\n{"b":2}\n\n', [([2, 5], ['{"a":1}', '{"b":2}'], {})], id="blank lines"),
        pytest.param(
            '{"a":1}\n\u3000\x85\n\xa0{"b":2}\n'.encode(),
            [([1, 3], ['{"a":1}', '\xa0{"b":2}'], {})],
            id="unicode spaces",
        ),
        pytest.param(
            b'{"a":1}\r\n{"b":2}\r\r\n{"c":\r3}\r', [([1, 2, 3], ['{"a":1}', '{"b":2}', '{"c":\r3}'], {})], id="crlf"
        ),
        pytest.param(
            BOM + b'{"a":1}\n' + BOM + b'{"b":2}\n',
            [([1, 2], ['{"a":1}', '\ufeff{"b":2}'], {})],
            id="bom on line 1 only",
        ),
        pytest.param(BOM + b"\n" + BOM + b'{"b":2}\n', [([2], ['\ufeff{"b":2}'], {})], id="bom alone"),
        pytest.param(
            b'{"a":"\xff\xe2\x82"}\n{"\xc3\xa9":1}\n',
            [([1, 2], ['{"a":"\udcff\udce2\udc82"}', '{"é":1}'], {})],
            id="invalid utf-8",
        ),
        pytest.param(b"", [], id="empty"),
        pytest.param(b"\n \n", [], id="only blanks"),
    ],
)
def test_lines(tmp_path: Path, data: bytes, expected: Chunks) -> None:
    path = _write(tmp_path / "events.ndjson", data)
    assert _chunks(path, 10) == expected
    assert _line_by_line_chunks(path, 10) == expected


TOO_LONG = ("line_too_long", f"longer than {LINE_BYTES_MAX} bytes")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param([LINE_BYTES_MAX, 3], ([1, 2], [LINE_BYTES_MAX, 3], {}), id="at the limit"),
        pytest.param([LINE_BYTES_MAX + 1, 3], ([1, 2], [0, 3], {0: TOO_LONG}), id="one byte over"),
        pytest.param([3, 3 * LINE_BYTES_MAX, 0, 3], ([1, 2, 4], [3, 0, 3], {1: TOO_LONG}), id="far over"),
        pytest.param([3, LINE_BYTES_MAX], ([1, 2], [3, LINE_BYTES_MAX], {}), id="last at the limit"),
        pytest.param([3, LINE_BYTES_MAX + 1], ([1, 2], [3, 0], {1: TOO_LONG}), id="last over"),
    ],
)
@pytest.mark.parametrize("last_newline", [True, False])
@pytest.mark.parametrize("compressed", [False, True])
def test_lines_too_long(
    tmp_path: Path,
    lines: list[int],
    expected: tuple[list[int], list[int], dict[int, tuple[str, str]]],
    last_newline: bool,
    compressed: bool,
) -> None:
    """Lines of the given lengths in bytes, at the real limit and block size."""
    data = b"\n".join(b"{" + b"x" * (length - 1) if length else b"" for length in lines)
    path = _write(tmp_path / "events.ndjson.gz", data + b"\n" if last_newline else data, compressed)
    numbers, lengths, errors = expected
    texts = ["{" + "x" * (length - 1) if length else "" for length in lengths]
    assert _chunks(path, 10) == [(numbers, texts, errors)]
    assert _line_by_line_chunks(path, 10) == [(numbers, texts, errors)]


def _events(count: int) -> Iterator[bytes]:
    for index in range(count):
        yield b'{"id":"e-%d","customer":"c","type":"t","properties":{"n":%d}}\n' % (index, index)


@pytest.mark.parametrize("compressed", [False, True])
def test_chunks_hold_size_lines_and_their_errors(tmp_path: Path, compressed: bool) -> None:
    data = bytearray(b"".join(_events(20_000)))
    line_start = data.index(b"\n", 150_000) + 1
    data[line_start:line_start] = b"\n" + b"x" * (LINE_BYTES_MAX + 1) + b"\n \r\n"
    path = _write(tmp_path / "events.ndjson", bytes(data), compressed)
    chunks = _chunks(path, 999)
    assert chunks == _line_by_line_chunks(path, 999)
    assert [len(texts) for _, texts, _ in chunks] == [999] * 20 + [21]
    assert sum(len(errors) for _, _, errors in chunks) == 1


def test_a_size_below_1_gives_one_chunk(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.ndjson", b"".join(_events(5)))
    chunks = _chunks(path, 0)
    assert chunks == _line_by_line_chunks(path, 0)
    assert [numbers for numbers, _, _ in chunks] == [[1, 2, 3, 4, 5]]


def test_plain_blocks_are_read_without_work_per_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "events.ndjson", b"".join(_events(10_000)))
    expected = _line_by_line_chunks(path, 1000)

    def no_line_text(line: bytes, line_number: int) -> str | None:
        raise AssertionError(f"line {line_number} was read on its own")

    monkeypatch.setattr(event_files, "_line_text", no_line_text)
    assert _chunks(path, 1000) == expected


def test_a_line_too_long_is_never_held_whole(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.ndjson", b'{"a":1}\n{' + b"x" * (16 * LINE_BYTES_MAX) + b'}\n{"b":2}\n')
    tracemalloc.start()
    try:
        chunks = _chunks(path, 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chunks == [([1, 2, 3], ['{"a":1}', "", '{"b":2}'], {1: TOO_LONG})]
    assert peak < 4 * LINE_BYTES_MAX


def test_only_ndjson_comes_in_line_chunks(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.csv", b"id,customer,type,timestamp\n")
    with EventFile(path) as source, pytest.raises(EventFileError):
        next(source.line_chunks(10))
