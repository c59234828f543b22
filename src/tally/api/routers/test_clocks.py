"""/v1/test_clocks: simulated time for the customers created on a clock. Reading needs `read`;
creating, advancing and deleting need `admin`.

`POST /v1/test_clocks/{id}/advance` moves the clock forward (at most two years per call) and runs
what would have happened in between before it answers; the answer's `status` is `ready`. While an
advance runs, another answers 409 `test_clock_advance_in_progress`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.schemas import ApiModel, ListResponse, Resource
from tally.app import test_clock_queries
from tally.app.advance_test_clock import advance_test_clock
from tally.app.create_test_clock import TestClockInput, create_test_clock
from tally.app.delete_test_clock import delete_test_clock
from tally.bootstrap import Tally
from tally.core.customers import NAME_LENGTH_MAX
from tally.core.rejections import Rejected

router = APIRouter(prefix="/test_clocks", tags=["Test clocks"])

register_status("test_clock_advance_in_progress", 409)
register_status("test_clock_has_customers", 409)
register_status("test_clocks_exceed_limit", 409)


class CreateTestClock(ApiModel):
    frozen_time: datetime = Field(description="The clock's time, with a timezone (past or future).")
    name: str | None = Field(default=None, max_length=NAME_LENGTH_MAX * 10, description='Default: "Test clock".')
    metadata: dict[str, str] = Field(default_factory=dict, max_length=1000)


class AdvanceTestClock(ApiModel):
    frozen_time: datetime = Field(description="The later time to move to (at most 2 years ahead).")


class TestClockResource(Resource):
    object: Literal["test_clock"] = "test_clock"
    name: str
    frozen_time: datetime
    status: Literal["ready", "advancing"]
    deleted: bool | None = Field(default=None, description="On delete: true.")


def _resource(row: test_clock_queries.TestClock) -> TestClockResource:
    return TestClockResource(
        id=ids.format_id(ids.TEST_CLOCK, row.id),
        created_at=row.created_at,
        metadata=dict(row.metadata),
        name=row.name,
        frozen_time=row.frozen_time,
        status=row.status,  # type: ignore[arg-type]
    )


def _test_clock_id(text: str) -> uuid.UUID:
    parsed = ids.parse_id(ids.TEST_CLOCK, text)
    if parsed is None:
        raise Rejected.because("test_clock_not_found", "no such test clock", "id")
    return parsed


@router.post("", status_code=201, response_model=TestClockResource, summary="Create a test clock")
def create(
    body: CreateTestClock, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> TestClockResource:
    row = create_test_clock(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        TestClockInput(frozen_time=body.frozen_time, name=body.name, metadata=body.metadata),
    )
    return _resource(row)


@router.get("", response_model=ListResponse[TestClockResource], summary="List test clocks, newest first")
def list_test_clocks(
    request: Request,
    page: PageRequest = Depends(page_request(ids.TEST_CLOCK)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[TestClockResource]:
    found = test_clock_queries.list_test_clocks(tally.engine, principal.tenant_id, page)
    return list_response(found.map(_resource), request)


@router.get("/{id}", response_model=TestClockResource, summary="Get a test clock")
def get_test_clock(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> TestClockResource:
    return _resource(test_clock_queries.get_test_clock(tally.engine, principal.tenant_id, _test_clock_id(id)))


@router.post("/{id}/advance", response_model=TestClockResource, summary="Advance a test clock")
def advance(
    id: str, body: AdvanceTestClock, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> TestClockResource:
    """422 `test_clock_cannot_go_backwards` for an earlier time, `test_clock_advance_exceeds_limit` beyond
    two years; advancing to the clock's own time changes nothing (and completes an advance that was
    left unfinished by a crash)."""
    advanced = advance_test_clock(tally.engine, tally.clock, principal.tenant_id, _test_clock_id(id), body.frozen_time)
    return _resource(advanced.test_clock)


@router.delete("/{id}", response_model=TestClockResource, summary="Delete a test clock without customers")
def delete(
    id: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> TestClockResource:
    """409 `test_clock_has_customers` while customers live on it."""
    resource = _resource(delete_test_clock(tally.engine, principal.tenant_id, _test_clock_id(id)))
    resource.deleted = True
    return resource
