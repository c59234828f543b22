"""SQLAlchemy Core descriptions of the platform tables created by migration 0001.

The migrations own the schema; these `Table` objects only describe it so queries can be composed
(keyset pagination needs real columns). Other domains declare their tables in their own modules,
on the same `metadata`.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB, UUID

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("metadata", JSONB, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("name", Text, nullable=False),
    Column("secret_hash", BYTEA, nullable=False),
    Column("secret_hint", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("metadata", JSONB, nullable=False),
)

idempotent_requests = Table(
    "idempotent_requests",
    metadata,
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("request_fingerprint", BYTEA, nullable=False),
    Column("state", Text, nullable=False),
    Column("locked_until", DateTime(timezone=True)),
    Column("response_status", Integer),
    Column("response_headers", JSONB),
    Column("response_body", BYTEA),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("object_type", Text),
    Column("object_id", Text),
    Column("request_id", Text),
    Column("details", JSONB, nullable=False),
)
