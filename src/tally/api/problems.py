"""Every error answers RFC 9457 problem+json, with a stable `code` that reads like a sentence.

    {"type": "https://tally.dev/problems/api_key_invalid", "title": "Api key invalid", "status": 401,
     "detail": "…", "code": "api_key_invalid", "field": null, "request_id": "req_…"}

Expected rejections (`tally.core.rejections.Rejected`) carry the code; the HTTP status comes from
the table below. A code not in the table answers 404 if it ends in `_not_found`, else 422. Routers
add their own codes with `register_status(code, status)` at import time.
"""

from __future__ import annotations

import logging
import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from pydantic_core.core_schema import ErrorType
from starlette.exceptions import HTTPException as StarletteHTTPException

from tally.api.context import request_id_of
from tally.core.rejections import InvariantViolation, Rejected

logger = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://tally.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
_CODE_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

_STATUS_BY_CODE: dict[str, int] = {
    "api_key_required": 401,
    "api_key_invalid": 401,
    "api_key_scope_insufficient": 403,
    "idempotency_key_invalid": 400,
    "idempotency_key_reused": 422,
    "idempotency_request_in_progress": 409,
    "idempotent_response_withheld": 409,
    "route_not_found": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "request_body_too_large": 413,
    "unsupported_media_type": 415,
    "bad_request": 400,
    "internal_error": 500,
    "service_unavailable": 503,
}

# Pydantic error types → our codes. A small, stable table: anything not in it is `value_invalid`,
# except custom error types raised by our own validators (`PydanticCustomError("my_code", …)`),
# which are passed through as the code.
_VALIDATION_CODES: dict[str, str] = {
    "missing": "field_required",
    "extra_forbidden": "unknown_field",
    "json_invalid": "malformed_json",
    "json_type": "malformed_json",
    "model_type": "value_must_be_object",
    "model_attributes_type": "value_must_be_object",
    "dict_type": "value_must_be_object",
    "list_type": "value_must_be_list",
    "string_type": "value_must_be_string",
    "int_type": "value_must_be_integer",
    "int_parsing": "value_must_be_integer",
    "int_from_float": "value_must_be_integer",
    "int_parsing_size": "value_out_of_range",
    "float_type": "value_must_be_number",
    "float_parsing": "value_must_be_number",
    "decimal_type": "value_must_be_number",
    "decimal_parsing": "value_must_be_number",
    "finite_number": "value_must_be_number",
    "bool_type": "value_must_be_boolean",
    "bool_parsing": "value_must_be_boolean",
    "uuid_type": "value_must_be_uuid",
    "uuid_parsing": "value_must_be_uuid",
    "datetime_type": "value_must_be_datetime",
    "datetime_parsing": "value_must_be_datetime",
    "datetime_from_date_parsing": "value_must_be_datetime",
    "timezone_aware": "datetime_must_have_timezone",  # pydantic: "Input should have timezone info"
    "date_type": "value_must_be_date",
    "date_parsing": "value_must_be_date",
    "greater_than": "value_out_of_range",
    "greater_than_equal": "value_out_of_range",
    "less_than": "value_out_of_range",
    "less_than_equal": "value_out_of_range",
    "multiple_of": "value_out_of_range",
    "decimal_max_digits": "value_out_of_range",
    "decimal_max_places": "value_out_of_range",
    "decimal_whole_digits": "value_out_of_range",
    "string_too_short": "value_too_short",
    "string_too_long": "value_too_long",
    "too_short": "value_too_short",
    "too_long": "value_too_long",
    "string_pattern_mismatch": "value_format_invalid",
    "literal_error": "value_not_allowed",
    "enum": "value_not_allowed",
    "union_tag_invalid": "value_not_allowed",
    "union_tag_not_found": "field_required",
    "none_required": "value_not_allowed",
}
_PYDANTIC_ERROR_TYPES = frozenset(typing.get_args(ErrorType))

_HTTP_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "api_key_required",
    404: "route_not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_body_too_large",
    415: "unsupported_media_type",
    503: "service_unavailable",
}


class Problem(BaseModel):
    """The body of every error response (RFC 9457), for the OpenAPI document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None
    request_id: str | None


# Declared on every /v1 router so the OpenAPI document shows problem+json, not FastAPI's defaults.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": description}
    for status, description in (
        (401, "No or invalid API key"),
        (403, "The API key lacks the scope"),
        (404, "Not found (also: another tenant's object)"),
        (409, "A request with this Idempotency-Key is in progress"),
        (422, "Rejected: see `code` and `field`"),
    )
}


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def register_status(code: str, status: int) -> None:
    """Give a rejection code its HTTP status. Registering a code twice with different statuses fails."""
    if not _CODE_PATTERN.match(code):
        raise ValueError(f"problem codes are lower_snake_case sentences, got {code!r}")
    if not 400 <= status <= 599:
        raise ValueError(f"a problem status is 4xx or 5xx, got {status}")
    existing = _STATUS_BY_CODE.get(code)
    if existing is not None and existing != status:
        raise ValueError(f"problem code {code!r} already answers {existing}")
    _STATUS_BY_CODE[code] = status


def status_for(code: str) -> int:
    status = _STATUS_BY_CODE.get(code)
    if status is not None:
        return status
    return 404 if code.endswith("_not_found") else 422


def title_for(code: str) -> str:
    words = code.replace("_", " ")
    return words[:1].upper() + words[1:]


def problem_body(
    code: str,
    detail: str,
    *,
    status: int | None = None,
    field: str | None = None,
    request_id: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title_for(code),
        "status": status if status is not None else status_for(code),
        "detail": detail,
        "code": code,
        "field": field,
        "request_id": request_id,
    }
    if extensions:
        body.update(extensions)
    return body


def problem_response(
    code: str,
    detail: str,
    *,
    status: int | None = None,
    field: str | None = None,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> ProblemResponse:
    body = problem_body(code, detail, status=status, field=field, request_id=request_id, extensions=extensions)
    return ProblemResponse(body, status_code=body["status"], headers=dict(headers or {}))


def rejection_response(error: Rejected, request_id: str | None) -> ProblemResponse:
    rejection = error.rejection
    headers = {"WWW-Authenticate": "Bearer"} if status_for(rejection.code) == 401 else None
    return problem_response(
        rejection.code, rejection.message, field=rejection.field, request_id=request_id, headers=headers
    )


def field_path(location: Sequence[int | str]) -> str | None:
    """`("body", "entries", 1, "amount")` → `entries[1].amount`; None for the body as a whole."""
    parts = list(location)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or None


def validation_code(error_type: str) -> str:
    code = _VALIDATION_CODES.get(error_type)
    if code is not None:
        return code
    if error_type not in _PYDANTIC_ERROR_TYPES and _CODE_PATTERN.match(error_type):
        return error_type  # a custom error raised by one of our validators
    return "value_invalid"


def _validation_problem(error: Mapping[str, Any]) -> dict[str, str | None]:
    error_type = str(error.get("type", ""))
    code = validation_code(error_type)
    location = tuple(error.get("loc", ()))
    field = None if error_type in ("json_invalid", "json_type") else field_path(location)
    if code == "field_required" and field is None:
        code = "request_body_required"
    elif location == ("body",) and isinstance(error.get("input"), bytes | bytearray):
        code = "request_body_must_be_json"  # a body without a JSON Content-Type is not parsed
    detail = str(error.get("msg", "invalid value"))
    if code == "unknown_field":
        detail = f"unknown field {field!r}" if field else "unknown field"
    elif code == "malformed_json":
        detail = "the request body is not valid JSON"
    elif code == "request_body_required":
        detail = "this request needs a JSON body"
    elif code == "request_body_must_be_json":
        detail = "send the body as JSON, with Content-Type: application/json"
    return {"code": code, "field": field, "detail": detail}


async def _on_rejected(request: Request, error: Exception) -> ProblemResponse:
    if not isinstance(error, Rejected):
        raise InvariantViolation("this handler is registered for Rejected only")
    return rejection_response(error, request_id_of(request.scope))


async def _on_validation_error(request: Request, error: Exception) -> ProblemResponse:
    if not isinstance(error, RequestValidationError):
        raise InvariantViolation("this handler is registered for RequestValidationError only")
    problems = [_validation_problem(item) for item in error.errors()]
    first = problems[0] if problems else {"code": "value_invalid", "field": None, "detail": "invalid request"}
    return problem_response(
        str(first["code"]),
        str(first["detail"]),
        status=422,
        field=first["field"],
        request_id=request_id_of(request.scope),
        extensions={"errors": problems},
    )


async def _on_http_exception(request: Request, error: Exception) -> ProblemResponse:
    if not isinstance(error, StarletteHTTPException):
        raise InvariantViolation("this handler is registered for HTTPException only")
    code = _HTTP_STATUS_CODES.get(error.status_code, "bad_request" if error.status_code < 500 else "internal_error")
    detail = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
    if code == "route_not_found":
        detail = f"no route {request.method} {request.url.path}"
    elif code == "method_not_allowed":
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(
        code,
        detail,
        status=error.status_code,
        request_id=request_id_of(request.scope),
        headers=error.headers,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Rejected, _on_rejected)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
