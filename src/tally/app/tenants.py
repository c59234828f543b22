"""Create a tenant: the owner of every other row."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, text

from tally.adapters.ids import new_id
from tally.core.rejections import Rejected


def create_tenant(engine: Engine, name: str) -> uuid.UUID:
    if not 1 <= len(name) <= 200:
        raise Rejected.because(
            "tenant_name_length_must_be_1_to_200", "a tenant name has 1 to 200 characters", "name"
        )
    tenant_id = new_id()
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO tenants (id, name) VALUES (:id, :name)"), {"id": tenant_id, "name": name}
        )
    return tenant_id
