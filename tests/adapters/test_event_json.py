"""The fast event parser answers exactly what the core's definition answers.

For random bodies — valid events, and every way an event can be odd: long or empty or non-ASCII
text, NUL, timestamps of every shape and outside the window, numbers of every spelling (2.50, 1E-7,
-0.0, 1e400, NaN, huge integers), deep or large properties, escapes, unknown fields, wrong types —
`parse_json_body` either declines the body (None) or gives, per event, the very `Event` that
`parse_event` makes, or the raw object that `parse_event` then judges as it would have anyway.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tally.adapters.event_json import parse_json_body, parse_json_lines
from tally.core.metering.events import Event, TimestampWindow, decode_json, parse_event

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = TimestampWindow(earliest=NOW - timedelta(days=90), latest=NOW + timedelta(minutes=5))

# ----- JSON text, with number literals spelled every way ------------------------------------------

PLAIN_NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.decimals(min_value=-1000, max_value=1000, places=6).map(lambda value: f"{value:f}"),
)
ODD_NUMBERS = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
    st.sampled_from(
        [
            "2.50",
            "2.5",
            "0.000005",
            "1E-7",
            "1e-7",
            "1E+2",
            "-0.0",
            "-0",
            "0.0",
            "100.0",
            "1e400",
            "-1.5e3",
            "12345678901234567890123456789012345678.5",
            "0." + "1" * 39,
            "NaN",
            "Infinity",
            "-Infinity",
        ]
    ),
)
# Mostly what clients send, often enough something odd.
NUMBER_LITERALS = st.one_of(PLAIN_NUMBERS, PLAIN_NUMBERS, PLAIN_NUMBERS, ODD_NUMBERS)
PLAIN_TEXT = st.text(alphabet="abc_-.0123456789", min_size=1, max_size=20)
ODD_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "x" * 255, "x" * 256, "a\x00b", "é", "株式会社", '"quoted"', "back\\slash", "\n\t\x01"]),
)
TEXT = st.one_of(PLAIN_TEXT, PLAIN_TEXT, PLAIN_TEXT, ODD_TEXT)


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


# JSON strings, written with their non-ASCII characters as they are or as \u escapes.
STRINGS = st.tuples(TEXT, st.booleans()).map(lambda drawn: json.dumps(drawn[0], ensure_ascii=drawn[1]))
scalars = st.one_of(NUMBER_LITERALS, STRINGS, st.sampled_from(["true", "false", "null"]))


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{_string(key)}:{value}" for key, value in pairs) + "}"


json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(TEXT, children), max_size=4).map(_object),
    ),
    max_leaves=12,
)

IN_WINDOW = st.datetimes(
    min_value=datetime(2025, 12, 2), max_value=datetime(2026, 3, 1, 12), timezones=st.just(UTC)
).map(lambda moment: moment.isoformat().replace("+00:00", "Z"))
TIMESTAMPS = st.one_of(
    IN_WINDOW,
    IN_WINDOW,
    IN_WINDOW,
    st.datetimes(min_value=datetime(2025, 11, 1), max_value=datetime(2026, 3, 2)).map(datetime.isoformat),
    st.sampled_from(
        [
            "2026-03-01T12:00:00+02:00",
            "2026-03-01T12:00:00.123456-05:30",
            "2026-03-01",
            "yesterday",
            "",
            "2026-02-30T00:00:00Z",
            "2026-03-01T12:04:59Z",
            "2026-03-01T12:05:01Z",
            "1999-01-01T00:00:00Z",
        ]
    ),
)


@st.composite
def events(draw: st.DrawFn) -> str:
    fields: list[tuple[str, str]] = [
        ("id", draw(STRINGS)),
        ("customer", draw(STRINGS)),
        ("type", draw(STRINGS)),
        ("timestamp", _string(draw(TIMESTAMPS))),
    ]
    choice = draw(st.integers(0, 19))
    if choice < 16:
        fields.append(("properties", draw(st.lists(st.tuples(TEXT, json_values), max_size=6).map(_object))))
    elif choice == 16:
        fields.append(("properties", draw(json_values)))  # maybe not an object
    elif choice == 17:
        fields.append(("extra", "1"))
    elif choice == 18:
        fields[draw(st.integers(0, 3))] = (fields[0][0], draw(json_values))  # a wrong type, or a repeated key
    draw(st.randoms()).shuffle(fields)
    return "{" + ",".join(f'"{name}":{value}' for name, value in fields) + "}"


def _same_answers(fast: list[Any], slow_raws: list[Any]) -> None:
    assert len(fast) == len(slow_raws)
    event(f"fast path made {min(sum(isinstance(item, Event) for item in fast), 2)}+ events")
    for fast_item, raw in zip(fast, slow_raws, strict=True):
        expected = parse_event(raw, WINDOW)
        if isinstance(fast_item, Event):
            assert fast_item == expected
            assert isinstance(expected, Event)
            assert fast_item.properties_json == expected.properties_json
            assert fast_item.content_hash == expected.content_hash
        else:
            # Left to the definition: judged by it, from the same raw content.
            assert parse_event(fast_item, WINDOW) == expected


@settings(max_examples=200)
@given(st.lists(events(), max_size=6))
def test_a_json_array_gets_the_definitions_answers(bodies: list[str]) -> None:
    text = "[" + ",".join(bodies) + "]"
    fast = parse_json_body(text.encode(), WINDOW)
    if fast is None:
        event("declined")
        return  # declined: the caller takes the general path, which is the definition
    _same_answers(fast, decode_json(text))


@settings(max_examples=200)
@given(events())
def test_one_object_gets_the_definitions_answer(body: str) -> None:
    fast = parse_json_body(body.encode(), WINDOW)
    if fast is not None:
        _same_answers(fast, [decode_json(body)])


@settings(max_examples=200)
@given(st.lists(events(), max_size=5), st.sampled_from(["\n", "\r\n", "\n\n  \n"]))
def test_ndjson_lines_get_the_definitions_answers(bodies: list[str], separator: str) -> None:
    text = separator.join(bodies)
    fast = parse_json_lines(text.encode(), WINDOW)
    if fast is not None:
        _same_answers(fast, [decode_json(line) for line in text.split("\n") if line.strip()])


def _event(**fields: Any) -> dict[str, Any]:
    event = {"id": "e1", "customer": "c1", "type": "t", "timestamp": "2026-03-01T11:00:00Z", "properties": {}}
    event.update(fields)
    return event


def test_plain_events_take_the_fast_path() -> None:
    body = json.dumps([_event(id=f"e{n}", properties={"tokens": n, "model": "m"}) for n in range(3)])
    parsed = parse_json_body(body.encode(), WINDOW)
    assert parsed is not None and all(isinstance(item, Event) for item in parsed)
    assert parsed[2].properties_json == '{"model":"m","tokens":2}'


def test_numbers_are_canonical_on_the_fast_path() -> None:
    body = '{"id":"e","customer":"c","type":"t","timestamp":"2026-03-01T11:00:00Z","properties":{"b":2.50,"a":100.0}}'
    parsed = parse_json_body(body.encode(), WINDOW)
    assert parsed is not None and isinstance(parsed[0], Event)
    assert parsed[0].properties_json == '{"a":100,"b":2.5}'


def test_odd_events_are_left_to_the_definition() -> None:
    body = json.dumps([_event(), _event(id="x" * 256), _event(timestamp="1999-01-01T00:00:00Z"), _event(customer="é")])
    parsed = parse_json_body(body.encode(), WINDOW)
    assert parsed is not None
    assert isinstance(parsed[0], Event)
    assert [type(item) for item in parsed[1:]] == [dict, dict, dict]


def test_bodies_it_cannot_type_are_declined() -> None:
    assert parse_json_body(b'[{"id":1,"customer":"c","type":"t","timestamp":"2026-03-01T11:00:00Z"}]', WINDOW) is None
    assert parse_json_body(b"not json", WINDOW) is None
    assert (
        parse_json_body(b'{"id":"e","customer":"c","type":"t","timestamp":"x","properties":{"v":NaN}}', WINDOW) is None
    )
    assert (
        parse_json_body(
            b'{"id":"e","customer":"c","type":"t","timestamp":"x","properties":{"v":1E999999999999999999999}}', WINDOW
        )
        is None
    )


def test_numbers_a_decimal_cannot_print_canonically_are_left_to_the_definition() -> None:
    # 1E-7 is canonically 0.0000001, which `str()` of a Decimal never prints; 1.50 is canonically 1.5.
    body = json.dumps([_event(id="a", properties={"v": 1}), _event(id="b", properties={"v": 2})])
    body = body.replace('"v": 1', '"v": 1E-7').replace('"v": 2', '"v": [1.50, {"w": 2.0}]')
    parsed = parse_json_body(body.encode(), WINDOW)
    assert parsed is not None
    assert type(parsed[0]) is dict and parsed[0]["properties"] == {"v": Decimal("1E-7")}
    assert isinstance(parsed[1], Event) and parsed[1].properties_json == '{"v":[1.5,{"w":2}]}'
    assert parse_event(parsed[0], WINDOW) == parse_event(json.loads(body, parse_float=Decimal)[0], WINDOW)


def test_escaped_properties_are_left_to_the_definition() -> None:
    # NUL is refused by the core; any escape at all sends the event to the definition.
    body = json.dumps([_event(properties={"note": "a\x00b"}), _event(id="e2", properties={"note": "line\nbreak"})])
    parsed = parse_json_body(body.encode(), WINDOW)
    assert parsed is not None and [type(item) for item in parsed] == [dict, dict]
    rejected = parse_event(parsed[0], WINDOW)
    assert not isinstance(rejected, Event) and rejected.code == "properties_invalid"
    assert isinstance(parse_event(parsed[1], WINDOW), Event)
