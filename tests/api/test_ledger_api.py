"""The ledger over HTTP: shapes, status codes, problem codes, and that refused input writes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient


def _account(client: TestClient, headers: Headers, code: str, **extra: Any) -> dict[str, Any]:
    body = {"code": code, "unit": extra.pop("unit", "USD"), **extra}
    response = client.post("/v1/ledger/accounts", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _transfer(debit: str, credit: str, amount: int, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "entries": [
            {"account_id": debit, "direction": "debit", "amount": amount},
            {"account_id": credit, "direction": "credit", "amount": amount},
        ],
        **extra,
    }


@pytest.fixture
def funded(client: TestClient, admin_headers: Headers) -> dict[str, str]:
    equity = _account(client, admin_headers, "opening_balance_equity")["id"]
    alice = _account(client, admin_headers, "wallet.alice", type="liability", minimum_balance=0)["id"]
    bob = _account(client, admin_headers, "wallet.bob", type="liability", minimum_balance=0)["id"]
    response = client.post(
        "/v1/ledger/transactions", json=_transfer(equity, alice, 10_000, "fund"), headers=admin_headers
    )
    assert response.status_code == 201, response.text
    return {"equity": equity, "alice": alice, "bob": bob}


def _problem(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    if field is not None:
        assert body["field"] == field, body


def _balance(client: TestClient, headers: Headers, account: str) -> dict[str, int]:
    return client.get(f"/v1/ledger/accounts/{account}/balance", headers=headers).json()["balance"]


def test_account_creation_is_get_or_create(client: TestClient, admin_headers: Headers) -> None:
    first = client.post("/v1/ledger/accounts", json={"code": "cash", "unit": "EUR"}, headers=admin_headers)
    again = client.post("/v1/ledger/accounts", json={"code": "cash", "unit": "EUR"}, headers=admin_headers)
    assert (first.status_code, again.status_code) == (201, 200)
    body = first.json()
    assert body["id"] == again.json()["id"] and body["id"].startswith("acct_")
    assert body["object"] == "ledger_account" and body["type"] == "asset" and body["normal_balance"] == "debit"
    assert body["balance"]["posted"] == 0 and body["unit_scale"] == 2
    assert set(body) >= {"id", "object", "created_at", "metadata"}


def test_post_replay_and_conflicting_replay(client: TestClient, admin_headers: Headers, funded: dict[str, str]) -> None:
    transfer = _transfer(funded["alice"], funded["bob"], 2_500, "pay-1", description="rent")
    first = client.post("/v1/ledger/transactions", json=transfer, headers=admin_headers)
    assert first.status_code == 201
    body = first.json()
    assert body["object"] == "ledger_transaction" and body["kind"] == "posted"
    assert [entry["amount"] for entry in body["entries"]] == [2_500, 2_500]
    replay = client.post("/v1/ledger/transactions", json=transfer, headers=admin_headers)
    assert replay.status_code == 200 and replay.json()["id"] == body["id"]
    changed = {**transfer, "description": "other"}
    _problem(
        client.post("/v1/ledger/transactions", json=changed, headers=admin_headers),
        409,
        "exists_with_different_description",
    )
    assert _balance(client, admin_headers, funded["bob"])["posted"] == 2_500


def test_bad_input_gets_precise_codes_and_writes_nothing(
    client: TestClient, admin_headers: Headers, funded: dict[str, str], tally: Tally
) -> None:
    alice, bob = funded["alice"], funded["bob"]
    foreign_tenant = create_tenant(tally.engine, "foreign")
    unbalanced = _transfer(alice, bob, 100, "u")
    unbalanced["entries"][1]["amount"] = 99
    decimals = _transfer(alice, bob, 0, "d")
    for entry in decimals["entries"]:
        del entry["amount"]
        entry["amount_decimal"] = "1.001"
    cases: list[tuple[Any, int, str, str | None]] = [
        (unbalanced, 422, "transaction_must_balance", "entries"),
        (decimals, 422, "amount_exceeds_unit_precision", "entries[0].amount_decimal"),
        (
            _transfer(alice, "acct_00000000000000000000000000", 100, "x"),
            422,
            "account_must_exist",
            "entries[1].account_id",
        ),
        (_transfer(alice, "nonsense", 100, "y"), 422, "account_must_exist", "entries[1].account_id"),
        (_transfer(alice, bob, 2**63, "o"), 422, "amount_exceeds_maximum", "entries[0].amount"),
        (_transfer(alice, bob, -5, "n"), 422, "amount_must_be_positive", "entries[0].amount"),
        (_transfer(alice, bob, 20_000, "big"), 422, "balance_must_not_fall_below_minimum", "entries[0].account_id"),
        ({**_transfer(alice, bob, 1, "z"), "surprise": 1}, 422, "unknown_field", "surprise"),
        (
            {k: v for k, v in _transfer(alice, bob, 1, "z").items() if k != "idempotency_key"},
            400,
            "idempotency_key_required",
            "idempotency_key",
        ),
    ]
    for body, status, code, field in cases:
        _problem(client.post("/v1/ledger/transactions", json=body, headers=admin_headers), status, code, field)
    float_amount = _transfer(alice, bob, 1, "f")
    float_amount["entries"][0]["amount"] = 1.5
    response = client.post("/v1/ledger/transactions", json=float_amount, headers=admin_headers)
    assert response.status_code == 422 and response.json()["field"] == "entries[0].amount"
    malformed = client.post(
        "/v1/ledger/transactions",
        content=b'{"entries": [',
        headers={**admin_headers, "content-type": "application/json"},
    )
    _problem(malformed, 422, "malformed_json")
    _problem(
        client.post("/v1/ledger/accounts", json={"code": "cash", "unit": "XXY"}, headers=admin_headers),
        422,
        "unit_must_be_known",
        "unit",
    )
    # Nothing was written by any of them.
    assert _balance(client, admin_headers, bob)["posted"] == 0
    assert _balance(client, admin_headers, alice)["posted"] == 10_000
    listed = client.get("/v1/ledger/transactions", headers=admin_headers).json()
    assert len(listed["data"]) == 1
    del foreign_tenant


def test_another_tenants_accounts_are_invisible(
    client: TestClient, admin_headers: Headers, make_headers: MakeHeaders, funded: dict[str, str], tally: Tally
) -> None:
    other = make_headers(create_tenant(tally.engine, "other"))
    _problem(client.get(f"/v1/ledger/accounts/{funded['alice']}", headers=other), 404, "account_not_found")
    theirs = _account(client, other, "wallet.mallory", type="liability")["id"]
    _problem(
        client.post(
            "/v1/ledger/transactions", json=_transfer(funded["alice"], theirs, 1, "steal"), headers=admin_headers
        ),
        422,
        "account_must_exist",
    )


def test_scopes(client: TestClient, make_headers: MakeHeaders, tenant_id: uuid.UUID, funded: dict[str, str]) -> None:
    reader = make_headers(tenant_id, scopes=("read",))
    assert client.get(f"/v1/ledger/accounts/{funded['alice']}", headers=reader).status_code == 200
    _problem(
        client.post("/v1/ledger/transactions", json=_transfer(funded["alice"], funded["bob"], 1, "r"), headers=reader),
        403,
        "api_key_scope_insufficient",
    )
    ingest = make_headers(tenant_id, scopes=("ingest",))
    _problem(client.get(f"/v1/ledger/accounts/{funded['alice']}", headers=ingest), 403, "api_key_scope_insufficient")


def test_two_phase_and_reversal(client: TestClient, admin_headers: Headers, funded: dict[str, str]) -> None:
    alice, bob = funded["alice"], funded["bob"]
    hold = client.post(
        "/v1/ledger/transactions", json=_transfer(alice, bob, 4_000, "hold", pending=True), headers=admin_headers
    )
    assert hold.status_code == 201 and hold.json()["kind"] == "pending"
    hold_id = hold.json()["id"]
    assert _balance(client, admin_headers, alice) | {} == {
        "posted": 10_000,
        "pending": -4_000,
        "available": 6_000,
        "debits_posted": 0,
        "credits_posted": 10_000,
        "debits_pending": 4_000,
        "credits_pending": 0,
    }
    partial = {
        "idempotency_key": "capture",
        "entries": [
            {"account_id": alice, "direction": "debit", "amount": 3_000},
            {"account_id": bob, "direction": "credit", "amount": 3_000},
        ],
    }
    posted = client.post(f"/v1/ledger/transactions/{hold_id}/post", json=partial, headers=admin_headers)
    assert posted.status_code == 201 and posted.json()["pending_transaction_id"] == hold_id
    again = client.post(f"/v1/ledger/transactions/{hold_id}/post", json=partial, headers=admin_headers)
    assert again.status_code == 200 and again.json()["id"] == posted.json()["id"]
    _problem(
        client.post(f"/v1/ledger/transactions/{hold_id}/void", json={"idempotency_key": "v"}, headers=admin_headers),
        409,
        "pending_transaction_already_resolved",
    )
    assert _balance(client, admin_headers, alice)["available"] == 7_000
    reversed_ = client.post(
        f"/v1/ledger/transactions/{posted.json()['id']}/reverse",
        json={"idempotency_key": "undo"},
        headers=admin_headers,
    )
    assert reversed_.status_code == 201 and reversed_.json()["kind"] == "reversal"
    assert _balance(client, admin_headers, alice)["posted"] == 10_000
    _problem(
        client.post("/v1/ledger/transactions/txn_nope/reverse", json={"idempotency_key": "n"}, headers=admin_headers),
        404,
        "transaction_not_found",
    )


def test_batch_entries_and_balances(client: TestClient, admin_headers: Headers, funded: dict[str, str]) -> None:
    alice, bob = funded["alice"], funded["bob"]
    batch = {
        "transactions": [
            _transfer(alice, bob, 6_000, "b1"),
            _transfer(alice, bob, 6_000, "b2"),
            {k: v for k, v in _transfer(alice, bob, 1, "b3").items() if k != "idempotency_key"},
            _transfer(alice, bob, 4_000, "b4"),
        ]
    }
    response = client.post("/v1/ledger/transactions/batch", json=batch, headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["result"] for item in body["results"]] == ["posted", "rejected", "rejected", "posted"]
    assert body["results"][1]["code"] == "balance_must_not_fall_below_minimum"
    assert body["results"][2]["code"] == "idempotency_key_required"
    assert (body["posted"], body["rejected"]) == (2, 2)

    page = client.get(f"/v1/ledger/entries?account_id={bob}&limit=1", headers=admin_headers).json()
    assert page["object"] == "list" and page["has_more"] and len(page["data"]) == 1
    second = client.get(
        f"/v1/ledger/entries?account_id={bob}&limit=1&starting_after={page['next_cursor']}", headers=admin_headers
    ).json()
    assert [entry["amount"] for entry in page["data"] + second["data"]] == [6_000, 4_000]
    assert not second["has_more"]

    groups = client.get("/v1/ledger/balances?group_by=code", headers=admin_headers).json()
    by_code = {group["group"]["code"]: group for group in groups["data"]}
    assert by_code["wallet.bob"]["balance"]["posted"] == 10_000
    assert by_code["opening_balance_equity"]["balance"]["posted"] == -10_000


def test_units(client: TestClient, admin_headers: Headers) -> None:
    created = client.post("/v1/units", json={"code": "TOKENS", "scale": 0, "name": "Tokens"}, headers=admin_headers)
    assert created.status_code == 201
    assert (
        client.post(
            "/v1/units", json={"code": "TOKENS", "scale": 0, "name": "Tokens"}, headers=admin_headers
        ).status_code
        == 200
    )
    _problem(
        client.post("/v1/units", json={"code": "TOKENS", "scale": 2, "name": "Tokens"}, headers=admin_headers),
        409,
        "unit_exists_with_different_scale",
    )
    _problem(
        client.post("/v1/units", json={"code": "USD", "scale": 2, "name": "x"}, headers=admin_headers),
        422,
        "unit_code_must_not_be_a_currency",
    )
    account = _account(client, admin_headers, "customer_credit", unit="TOKENS", customer_id="cus_1")
    assert account["unit"] == "TOKENS" and account["minimum_balance"] == 0
