"""Isolation factories for /v1/ledger and /v1/units (see tests/api/isolation.py)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient


def _accounts(client: TestClient, headers: Headers) -> tuple[str, str]:
    """A funded wallet and its funding account, as the tenant of `headers`."""
    suffix = uuid.uuid4().hex[:10]
    ids = []
    for body in (
        {"code": f"wallet.w{suffix}", "unit": "USD", "type": "liability", "minimum_balance": 0},
        {"code": "opening_balance_equity", "unit": "USD"},
    ):
        response = client.post("/v1/ledger/accounts", json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        ids.append(str(response.json()["id"]))
    return ids[0], ids[1]


def _transfer_body(client: TestClient, headers: Headers, *, pending: bool = False) -> dict[str, Any]:
    wallet, equity = _accounts(client, headers)
    return {
        "idempotency_key": uuid.uuid4().hex,
        "pending": pending,
        "entries": [
            {"account_id": equity, "direction": "debit", "amount": 100},
            {"account_id": wallet, "direction": "credit", "amount": 100},
        ],
    }


def create_account(client: TestClient, headers: Headers) -> str:
    return _accounts(client, headers)[0]


def create_transaction(client: TestClient, headers: Headers) -> str:
    response = client.post(
        "/v1/ledger/transactions", json=_transfer_body(client, headers, pending=True), headers=headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create_entry(client: TestClient, headers: Headers) -> str:
    response = client.post("/v1/ledger/transactions", json=_transfer_body(client, headers), headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["entries"][0]["id"])


def _key_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"idempotency_key": uuid.uuid4().hex}


def _account_refused(response: Any) -> bool:
    return response.status_code == 422 and response.json().get("code") == "account_must_exist"


def _batch_refused(response: Any) -> bool:
    results = response.json().get("results", []) if response.status_code == 200 else []
    return bool(results) and all(result.get("code") == "account_must_exist" for result in results)


FACTORIES = [
    IsolationFactory(
        prefix="/v1/ledger/accounts",
        create=create_account,
        creates_via=frozenset({("POST", "/v1/ledger/accounts")}),
    ),
    IsolationFactory(
        prefix="/v1/ledger/balances",
        create=create_account,
        # Balances are summed by type, code or customer: an account id never appears.
        not_listed=frozenset({"/v1/ledger/balances"}),
    ),
    IsolationFactory(
        prefix="/v1/ledger/transactions",
        create=create_transaction,
        bodies={
            ("POST", "/v1/ledger/transactions"): _transfer_body,
            ("POST", "/v1/ledger/transactions/batch"): lambda client, headers: {
                "transactions": [_transfer_body(client, headers), _transfer_body(client, headers)]
            },
            ("POST", "/v1/ledger/transactions/{id}/post"): _key_body,
            ("POST", "/v1/ledger/transactions/{id}/void"): _key_body,
            ("POST", "/v1/ledger/transactions/{id}/reverse"): _key_body,
        },
        refused={
            ("POST", "/v1/ledger/transactions"): _account_refused,
            ("POST", "/v1/ledger/transactions/batch"): _batch_refused,
        },
    ),
    IsolationFactory(prefix="/v1/ledger/entries", create=create_entry),
    IsolationFactory(
        prefix="/v1/units",
        create=lambda client, headers: "TOKENS",
        creates_via=frozenset({("POST", "/v1/units")}),
    ),
]
