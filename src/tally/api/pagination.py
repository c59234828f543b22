"""List endpoints: `limit`, `starting_after`, `ending_before` in; a `ListResponse` out.

    @router.get("", response_model=ListResponse[ApiKeyResource])
    def list_keys(request: Request, page: PageRequest = Depends(page_request("key")), …):
        found = list_api_keys(engine, principal.tenant_id, page)        # uses fetch_page()
        return list_response(found.map(to_resource), request)

The store side is `tally.adapters.postgres.pagination.fetch_page` (keyset on a UUIDv7 id column).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Query, Request

from tally.adapters.ids import parse_id
from tally.adapters.pagination import LIMIT_DEFAULT, LIMIT_MAX, Page, PageRequest
from tally.adapters.postgres.pagination import fetch_page, keyset_select
from tally.api.schemas import ListResponse, Resource
from tally.core.rejections import Rejected

__all__ = [
    "LIMIT_DEFAULT",
    "LIMIT_MAX",
    "Page",
    "PageRequest",
    "fetch_page",
    "keyset_select",
    "list_response",
    "page_request",
]


ResourceT = TypeVar("ResourceT", bound=Resource)


def page_request(prefix: str) -> Callable[..., PageRequest]:
    """A dependency reading the page parameters of a list whose ids carry `prefix` (`key_…`)."""

    def dependency(
        limit: Annotated[int, Query(description=f"1 to {LIMIT_MAX} items.")] = LIMIT_DEFAULT,
        starting_after: Annotated[
            str | None, Query(description="Cursor: the items after this id (the next page).")
        ] = None,
        ending_before: Annotated[
            str | None, Query(description="Cursor: the items before this id (the previous page).")
        ] = None,
    ) -> PageRequest:
        if not 1 <= limit <= LIMIT_MAX:
            raise Rejected.because("limit_out_of_range", f"limit must be 1 to {LIMIT_MAX}", "limit")
        if starting_after is not None and ending_before is not None:
            raise Rejected.because(
                "cursors_are_mutually_exclusive",
                "use starting_after or ending_before, not both",
                "ending_before",
            )
        return PageRequest(
            limit=limit,
            starting_after=_cursor(prefix, starting_after, "starting_after"),
            ending_before=_cursor(prefix, ending_before, "ending_before"),
        )

    return dependency


def _cursor(prefix: str, value: str | None, field: str) -> uuid.UUID | None:
    if value is None:
        return None
    parsed = parse_id(prefix, value)
    if parsed is None:
        raise Rejected.because("cursor_invalid", f"{field} must be an id starting with {prefix}_", field)
    return parsed


def list_response(page: Page[ResourceT], request: Request) -> ListResponse[ResourceT]:
    """Wrap a page of resources. `url` is the list's path, without query parameters."""
    items = list(page.items)
    next_cursor: str | None = None
    if page.has_more and items:
        next_cursor = items[0].id if page.backwards else items[-1].id
    return ListResponse(data=items, has_more=page.has_more, next_cursor=next_cursor, url=request.url.path)
