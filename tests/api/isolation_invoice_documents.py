"""Isolation factories for /v1/account/invoice_profile (see tests/api/isolation.py).

The invoice documents and the export (/v1/invoices/{id}.pdf|.html, /v1/invoices/export) are
covered by the /v1/invoices factory: B gets 404 for A's invoice and B's export never shows it.
"""

from __future__ import annotations

import uuid

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient


def _profile(client: TestClient, headers: Headers) -> str:
    """A's profile names a seller only A may ever see."""
    seller = f"Seller {uuid.uuid4().hex[:12]}"
    response = client.put("/v1/account/invoice_profile", json={"seller_name": seller}, headers=headers)
    assert response.status_code == 200, response.text
    return seller


FACTORIES = [
    IsolationFactory(
        prefix="/v1/account/invoice_profile",
        create=_profile,
        creates_via=frozenset({("PUT", "/v1/account/invoice_profile")}),
    ),
]
