"""Cursor pagination: limits, both directions, stable cursors; and the keyset helper itself."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from tally.adapters.pagination import PageRequest
from tally.adapters.postgres.pagination import fetch_page
from tally.adapters.postgres.tables import api_keys
from tally.app.api_keys import create_api_key
from tally.bootstrap import Tally
from tally.core.rejections import InvariantViolation
from tests.api.support import Headers, TestClient


@pytest.fixture
def five_more_keys(tally: Tally, tenant_id: uuid.UUID, admin_headers: Headers) -> None:
    """The tenant then has six keys: the admin's and these five."""
    for index in range(5):
        create_api_key(tally.engine, tenant_id, f"k{index}", ["read"])


def _ids(client: TestClient, headers: Headers, query: str = "") -> dict:  # type: ignore[type-arg]
    response = client.get(f"/v1/api_keys{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.usefixtures("five_more_keys")
def test_pages_forward_and_backward(client: TestClient, admin_headers: Headers) -> None:
    everything = _ids(client, admin_headers, "?limit=100")
    all_ids = [item["id"] for item in everything["data"]]
    assert len(all_ids) == 6 and all_ids == sorted(all_ids, reverse=True)  # newest first
    assert everything == {**everything, "object": "list", "has_more": False, "next_cursor": None, "url": "/v1/api_keys"}

    seen: list[str] = []
    query = "?limit=4"
    while True:
        page = _ids(client, admin_headers, query)
        seen += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        assert page["next_cursor"] == page["data"][-1]["id"]
        query = f"?limit=4&starting_after={page['next_cursor']}"
    assert seen == all_ids

    # Backwards from the oldest: the page right before it, in list order.
    before = _ids(client, admin_headers, f"?limit=2&ending_before={all_ids[-1]}")
    assert [item["id"] for item in before["data"]] == all_ids[-3:-1]
    assert before["has_more"] is True and before["next_cursor"] == all_ids[-3]
    first = _ids(client, admin_headers, f"?limit=5&ending_before={before['next_cursor']}")
    assert [item["id"] for item in first["data"]] == all_ids[:3] and first["has_more"] is False


def test_default_limit_is_20(client: TestClient, admin_headers: Headers) -> None:
    assert len(_ids(client, admin_headers)["data"]) == 1


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("?limit=0", "limit_out_of_range", "limit"),
        ("?limit=101", "limit_out_of_range", "limit"),
        ("?limit=ten", "value_must_be_integer", "limit"),
        ("?starting_after=acct_01m7zf2x1re009w1hpsra27cee", "cursor_invalid", "starting_after"),
        ("?ending_before=garbage", "cursor_invalid", "ending_before"),
        (
            "?starting_after=key_01m7zf2x1re009w1hpsra27cee&ending_before=key_01m7zf2x1re009w1hpsra27cee",
            "cursors_are_mutually_exclusive",
            "ending_before",
        ),
    ],
)
def test_bad_page_parameters(client: TestClient, admin_headers: Headers, query: str, code: str, field: str) -> None:
    response = client.get(f"/v1/api_keys{query}", headers=admin_headers)
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["field"]) == (code, field)


def test_keyset_helper_in_ascending_order(tally: Tally, tenant_id: uuid.UUID) -> None:
    created = [create_api_key(tally.engine, tenant_id, f"k{index}", ["read"])[0].id for index in range(5)]
    statement = select(api_keys.c.id, api_keys.c.name).where(api_keys.c.tenant_id == tenant_id)
    with tally.engine.connect() as connection:
        first = fetch_page(connection, statement, api_keys.c.id, PageRequest(limit=2), descending=False)
        assert [row["id"] for row in first.items] == created[:2] and first.has_more
        rest = fetch_page(
            connection, statement, api_keys.c.id, PageRequest(limit=10, starting_after=created[1]), descending=False
        )
        assert [row["id"] for row in rest.items] == created[2:] and not rest.has_more
        back = fetch_page(
            connection, statement, api_keys.c.id, PageRequest(limit=2, ending_before=created[4]), descending=False
        )
        assert [row["id"] for row in back.items] == created[2:4] and back.has_more and back.backwards


def test_page_requests_guard_their_invariants() -> None:
    with pytest.raises(InvariantViolation):
        PageRequest(limit=0)
    with pytest.raises(InvariantViolation):
        PageRequest(limit=1, starting_after=uuid.uuid4(), ending_before=uuid.uuid4())
