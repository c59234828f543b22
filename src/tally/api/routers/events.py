"""/v1/events: ingest usage events (one or a batch, JSON or NDJSON, optionally gzip), read them,
and correct them (retract, amend).

Ingest bodies are not parsed by Pydantic: the raw body is read (bounded by the body-size middleware),
decompressed with a bound on the output, decoded with exact numbers, and handed to the use case,
whose core parser validates each event. Answers are rendered here too, keeping numbers exact.

Scopes: ingesting and correcting need `ingest` (or `admin`); reading needs `read`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from tally.adapters import ids
from tally.adapters.event_json import parse_json_body, parse_json_lines
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.problems import register_status
from tally.api.raw_json import RawJson
from tally.api.raw_json import exact_json as _exact_json
from tally.app import event_queries
from tally.app.correct_event import CorrectionInput, CorrectionResult, EventCorrection, correct_event
from tally.app.event_queries import EventQuery, EventView
from tally.app.ingest_events import IngestOptions, IngestResult, ingest_events
from tally.bootstrap import Tally
from tally.core.metering.events import (
    EVENTS_PER_BATCH_MAX,
    JsonLineError,
    TimestampWindow,
    count_json_lines,
    decode_json,
    decode_json_lines,
)
from tally.core.rejections import Rejected

router = APIRouter(prefix="/events", tags=["Events"])

register_status("batch_too_large", 413)
register_status("decompressed_body_too_large", 413)
register_status("content_encoding_unsupported", 415)
register_status("request_body_gzip_invalid", 400)
register_status("event_already_retracted", 409)

NDJSON_MEDIA_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/jsonlines"})
JSON_MEDIA_TYPES = frozenset({"", "application/json"})


# ----- shapes (for the OpenAPI document; answers are rendered by hand, see _ExactJson) -------------


class EventResultItem(BaseModel):
    index: int = Field(description="Position of the event in the request.")
    id: str | None = Field(description="The event's id; null when it had no usable one.")
    result: Literal["accepted", "duplicate", "conflict", "rejected"]
    late: bool | None = Field(default=None, description="Present (true) when accepted into an invoiced period.")
    code: str | None = Field(default=None, description="Why: for `rejected` and `conflict`.")
    field: str | None = Field(default=None, description="The offending field of the event, e.g. `properties.tokens`.")
    message: str | None = None


class IngestResponse(BaseModel):
    object: Literal["event_ingest_result"] = "event_ingest_result"
    batch_id: int | None = Field(description="The batch the new events were stored in; null when none was new.")
    received_at: datetime
    accepted: int
    duplicate: int
    conflict: int
    rejected: int
    late: int
    results: list[EventResultItem]


class CorrectionResource(BaseModel):
    object: Literal["event_correction"] = "event_correction"
    id: str
    event_id: str
    kind: Literal["retract", "amend"]
    properties: dict[str, Any] | None
    reason: str
    created_at: datetime
    batch_id: int
    late: bool | None = Field(default=None, description="On a correction answer: the event is in an invoiced period.")


class EventResource(BaseModel):
    object: Literal["event"] = "event"
    id: str
    customer: str
    type: str
    timestamp: datetime
    properties: dict[str, Any]
    received_at: datetime
    batch_id: int
    retracted: bool
    effective_properties: dict[str, Any] | None = Field(
        description="What usage counts: after amendments; null once retracted."
    )
    corrections: list[CorrectionResource]


class EventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EventResource]
    has_more: bool
    next_cursor: str | None
    url: str


class EventInput(BaseModel):
    """An event as sent (documentation only: bodies are validated by tally's own parser)."""

    id: str = Field(max_length=255, description="Yours, unique per tenant forever.")
    customer: str = Field(max_length=255, description="Your customer id.")
    type: str = Field(max_length=255, description="The event name meters select on.")
    timestamp: datetime = Field(description="When the usage happened: ISO 8601 with an offset or Z.")
    properties: dict[str, Any] = Field(default_factory=dict, description="JSON object; numbers are kept exact.")


_INGEST_BODY_DOCUMENT = {
    "requestBody": {
        "required": True,
        "description": (
            f"One event (an object) or up to {EVENTS_PER_BATCH_MAX} (an array), or NDJSON (one event per line) with "
            "`Content-Type: application/x-ndjson`. May be gzip-compressed (`Content-Encoding: gzip`)."
        ),
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        EventInput.model_json_schema(),
                        {"type": "array", "items": EventInput.model_json_schema(), "maxItems": EVENTS_PER_BATCH_MAX},
                    ]
                },
                "example": {
                    "id": "req_8f14e45f",
                    "customer": "cus_42",
                    "type": "llm_tokens",
                    "timestamp": "2025-01-31T12:00:00.123456Z",
                    "properties": {"model": "large", "input_tokens": 1200, "cost": 0.0042},
                },
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


# ----- ingest -------------------------------------------------------------------------------------


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _decompressed(body: bytes, encoding: str, bytes_max: int) -> bytes:
    """The body, gunzipped if `encoding` says so, never growing past `bytes_max` (gzip bombs stop there)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > bytes_max:
            raise Rejected.because("request_body_too_large", f"the request body is larger than {bytes_max} bytes")
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise Rejected.because(
            "content_encoding_unsupported", f"Content-Encoding {encoding!r} is not supported; use gzip or none"
        )
    chunks: list[bytes] = []
    size = 0
    remaining = body
    try:
        while True:  # a gzip stream may hold several members, one after the other
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = decompressor.decompress(remaining, bytes_max - size + 1)
            size += len(chunk)
            if size > bytes_max or decompressor.unconsumed_tail:
                raise Rejected.because(
                    "decompressed_body_too_large", f"the request body decompresses to more than {bytes_max} bytes"
                )
            chunks.append(chunk)
            if not decompressor.eof:
                raise Rejected.because("request_body_gzip_invalid", "the gzip stream is truncated")
            remaining = decompressor.unused_data
            if not remaining.strip(b"\x00"):
                break
    except zlib.error as error:
        raise Rejected.because("request_body_gzip_invalid", f"the request body is not valid gzip: {error}") from error
    return b"".join(chunks)


def _decode_events(text: bytes, media_type: str) -> list[Any]:
    """The events of a body: an object (one event), an array, or NDJSON lines. Raises `Rejected`."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Rejected.because("malformed_json", "the request body is not UTF-8") from error
    if media_type in NDJSON_MEDIA_TYPES:
        count = count_json_lines(decoded)
        if count > EVENTS_PER_BATCH_MAX:
            raise Rejected.because(
                "batch_too_large", f"a request holds at most {EVENTS_PER_BATCH_MAX} events, got {count}", "events"
            )
        try:
            return decode_json_lines(decoded)
        except JsonLineError as error:
            raise Rejected.because("malformed_json", str(error), f"[{error.value_index}]") from error
    if media_type not in JSON_MEDIA_TYPES:
        raise Rejected.because(
            "unsupported_media_type", "send application/json (one event or an array) or application/x-ndjson"
        )
    if not decoded.strip():
        raise Rejected.because("request_body_required", "send one event or an array of events")
    try:
        document = decode_json(decoded)
    except ValueError as error:
        raise Rejected.because("malformed_json", f"the request body is not valid JSON: {error}") from error
    if isinstance(document, dict):
        return [document]
    if isinstance(document, list):
        if len(document) > EVENTS_PER_BATCH_MAX:
            raise Rejected.because(
                "batch_too_large",
                f"a request holds at most {EVENTS_PER_BATCH_MAX} events, got {len(document)}",
                "events",
            )
        return document
    raise Rejected.because(
        "request_body_must_be_event_or_list", "the body must be one event (an object) or an array of events"
    )


def _events_of(text: bytes, media_type: str, window: TimestampWindow) -> Sequence[Any]:
    """The events of a body: parsed in bulk where the fast path can (`tally.adapters.event_json`),
    decoded the general way otherwise. Either way, ingest gives every event the same answer."""
    if media_type in NDJSON_MEDIA_TYPES:
        parsed = parse_json_lines(text, window)
    elif media_type in JSON_MEDIA_TYPES:
        parsed = parse_json_body(text, window)
    else:
        parsed = None
    if parsed is None:
        return _decode_events(text, media_type)
    if len(parsed) > EVENTS_PER_BATCH_MAX:
        raise Rejected.because(
            "batch_too_large", f"a request holds at most {EVENTS_PER_BATCH_MAX} events, got {len(parsed)}", "events"
        )
    return parsed


class _Answered(msgspec.Struct, omit_defaults=True):
    """One result of an ingest answer, for an event stored or already stored (`late` only when true)."""

    index: int
    id: str | None
    result: str
    late: bool = False


class _Refused(msgspec.Struct):
    """One result for a conflict or a rejection: why, always with all three fields."""

    index: int
    id: str | None
    result: str
    code: str
    field: str | None
    message: str


def _ingest_answer(result: IngestResult) -> bytes:
    results: list[_Answered | _Refused] = []
    append = results.append
    for index, (kind, event_id, rejection, late) in enumerate(result.outcomes):
        if rejection is None:
            append(_Answered(index, event_id, kind, late))
        else:
            append(_Refused(index, event_id, kind, rejection.code, rejection.field, rejection.message))
    document = {
        "object": "event_ingest_result",
        "batch_id": result.batch_id,
        "received_at": result.received_at.isoformat(),
        "accepted": result.accepted,
        "duplicate": result.duplicate,
        "conflict": result.conflict,
        "rejected": result.rejected,
        "late": result.late,
        "results": results,
    }
    return msgspec.json.encode(document)


def _ingest(
    tally: Tally, principal: Principal, body: bytes, media_type: str, encoding: str
) -> tuple[bytes, int | None]:
    settings = tally.settings
    options = IngestOptions.from_settings(settings)
    text = _decompressed(body, encoding, settings.ingest_body_bytes_max)
    events = _events_of(text, media_type, options.window(tally.clock.now()))
    result = ingest_events(tally.engine, tally.clock, principal.tenant_id, events, source="api", options=options)
    return _ingest_answer(result), result.batch_id


@router.post(
    "",
    response_model=IngestResponse,
    summary="Ingest events: one, or a batch of up to 10,000",
    openapi_extra=_INGEST_BODY_DOCUMENT,
)
async def create_events(
    request: Request, principal: Principal = require_scope("ingest"), tally: Tally = Depends(get_tally)
) -> Response:
    """Answers once the events are committed, with one result per event, in order: `accepted`,
    `duplicate` (same id, same content: already counted), `conflict` (same id, different content:
    the original is kept) or `rejected` (with `code` and `field`). Valid events of a batch are stored
    even when others are rejected. A body that is unusable as a whole (not JSON, too large, more than
    10,000 events) is refused with a problem and nothing is stored."""
    body = await request.body()
    answer, batch_id = await run_in_threadpool(
        _ingest, tally, principal, body, _media_type(request), request.headers.get("content-encoding", "")
    )
    if batch_id is not None:
        # The audit log names the batch (and need not parse a large answer to find an id).
        request.state.audit_object = ("ingest_batch", str(batch_id))
    return Response(answer, media_type="application/json")


# ----- reading ------------------------------------------------------------------------------------


def _correction(row: EventCorrection, late: bool | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "object": "event_correction",
        "id": ids.format_id(ids.EVENT_CORRECTION, row.id),
        "event_id": row.event_id,
        "kind": row.kind,
        "properties": RawJson(row.properties_json) if row.properties_json is not None else None,
        "reason": row.reason,
        "created_at": row.created_at,
        "batch_id": row.batch_id,
    }
    if late is not None:
        document["late"] = late
    return document


def _event(view: EventView) -> dict[str, Any]:
    row = view.event
    return {
        "object": "event",
        "id": row.event_id,
        "customer": row.customer,
        "type": row.type,
        "timestamp": row.timestamp,
        "properties": RawJson(row.properties_json),
        "received_at": row.received_at,
        "batch_id": row.batch_id,
        "retracted": view.retracted,
        "effective_properties": (
            RawJson(view.effective_properties_json) if view.effective_properties_json is not None else None
        ),
        "corrections": [_correction(correction) for correction in view.corrections],
    }


@router.get("", response_model=EventList, summary="List raw events by time, then id")
def list_events(
    request: Request,
    customer: Annotated[str | None, Query(description="Your customer id.")] = None,
    type: Annotated[str | None, Query(description="Event type.")] = None,
    from_: Annotated[
        datetime | None, Query(alias="from", description="Inclusive; default: 31 days before `to`.")
    ] = None,
    to: Annotated[datetime | None, Query(description="Exclusive; default: a day from now.")] = None,
    limit: Annotated[int, Query(description=f"1 to {event_queries.EVENTS_PAGE_LIMIT_MAX}.")] = (
        event_queries.EVENTS_PAGE_LIMIT_DEFAULT
    ),
    starting_after: Annotated[str | None, Query(description="A `next_cursor` from the previous page.")] = None,
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> Response:
    """Ordered by `timestamp`, then `id`. Without `customer`, the window is at most 31 days."""
    for name, value in (("from", from_), ("to", to)):
        if value is not None and value.tzinfo is None:
            raise Rejected.because("datetime_must_have_timezone", f"{name} needs a UTC offset or Z", name)
    page = event_queries.list_events(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        EventQuery(customer=customer, type=type, start=from_, end=to, cursor=starting_after, limit=limit),
    )
    return _exact_json(
        {
            "object": "list",
            "data": [_event(view) for view in page.items],
            "has_more": page.has_more,
            "next_cursor": page.next_cursor,
            "url": request.url.path,
        }
    )


@router.get("/{id:path}", response_model=EventResource, summary="Get an event with its corrections")
def get_event(id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)) -> Response:
    return _exact_json(_event(event_queries.get_event(tally.engine, principal.tenant_id, id)))


# ----- corrections --------------------------------------------------------------------------------


async def _correction_body(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        document = decode_json(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise Rejected.because("malformed_json", "the request body is not valid JSON") from error
    if not isinstance(document, dict):
        raise Rejected.because("value_must_be_object", "the body must be a JSON object")
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise Rejected.because("unknown_field", f"unknown field {unknown[0]!r}", unknown[0])
    return document


def _correction_answer(result: CorrectionResult) -> Response:
    return _exact_json(_correction(result.correction, result.late), 201 if result.created else 200)


@router.post(
    "/{id:path}/retract",
    status_code=201,
    response_model=CorrectionResource,
    summary="Retract an event (201), or answer its retraction (200)",
)
async def retract_event(
    id: str, request: Request, principal: Principal = require_scope("ingest"), tally: Tally = Depends(get_tally)
) -> Response:
    """Takes the event out of usage from now on, as a new fact; the event itself is kept. Body
    (optional): `{"reason": "…"}`. Retracting again answers the first retraction."""
    body = await _correction_body(request, frozenset({"reason"}))
    result = await run_in_threadpool(
        correct_event,
        tally.engine,
        tally.clock,
        principal.tenant_id,
        CorrectionInput(event_id=id, kind="retract", reason=body.get("reason")),
    )
    return _correction_answer(result)


@router.post(
    "/{id:path}/amend",
    status_code=201,
    response_model=CorrectionResource,
    summary="Amend an event's properties (201), or answer the same latest amendment (200)",
)
async def amend_event(
    id: str, request: Request, principal: Principal = require_scope("ingest"), tally: Tally = Depends(get_tally)
) -> Response:
    """Body: `{"properties": {…}, "reason": "…"}`. The new properties replace the event's for usage;
    the latest amendment wins. A retracted event cannot be amended (409 `event_already_retracted`)."""
    body = await _correction_body(request, frozenset({"properties", "reason"}))
    result = await run_in_threadpool(
        correct_event,
        tally.engine,
        tally.clock,
        principal.tenant_id,
        CorrectionInput(event_id=id, kind="amend", properties=body.get("properties"), reason=body.get("reason")),
    )
    return _correction_answer(result)
