"""Foundation: tenants, API keys, idempotent requests, audit log, units, and the double-entry ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


UPGRADE = r"""
CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    name          text NOT NULL,
    -- sha256 of the whole secret; the secret itself is shown once and never stored.
    secret_hash   bytea NOT NULL UNIQUE,
    secret_hint   text NOT NULL,
    scopes        text[] NOT NULL CHECK (cardinality(scopes) > 0
                    AND scopes <@ ARRAY['admin', 'ingest', 'read']::text[]),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

-- One row per (tenant, Idempotency-Key) of a POST: in flight, then the stored response.
CREATE TABLE idempotent_requests (
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    key                  text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    method               text NOT NULL,
    path                 text NOT NULL,
    request_fingerprint  bytea NOT NULL,
    state                text NOT NULL CHECK (state IN ('in_flight', 'completed')),
    locked_until         timestamptz,
    response_status      integer,
    response_headers     jsonb,
    response_body        bytea,
    created_at           timestamptz NOT NULL DEFAULT now(),
    completed_at         timestamptz,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotent_requests_created ON idempotent_requests (created_at);

CREATE TABLE audit_log (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    object_type  text,
    object_id    text,
    request_id   text,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, occurred_at DESC);

-- Custom units (credits, tokens) a tenant declares; ISO 4217 currencies need no row.
CREATE TABLE units (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    code        text NOT NULL,
    scale       smallint NOT NULL CHECK (scale BETWEEN 0 AND 18),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code)
);

CREATE TABLE ledger_accounts (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    code             text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]*(\.[a-z0-9_\-]+)*$' AND length(code) <= 120),
    name             text NOT NULL,
    type             text NOT NULL CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    normal_balance   text NOT NULL CHECK (normal_balance IN ('debit', 'credit')),
    unit_code        text NOT NULL,
    unit_scale       smallint NOT NULL CHECK (unit_scale BETWEEN 0 AND 18),
    customer_id      text CHECK (length(customer_id) BETWEEN 1 AND 255),
    -- The floor for the available balance in the account's normal direction (0: must not go negative).
    minimum_balance  bigint,
    -- Cached totals; the integrity check proves they equal the sums of the entries.
    debits_posted    bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted   bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending   bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending  bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The database itself refuses a balance below the floor, whatever the code above it does.
    CONSTRAINT ledger_accounts_minimum_balance CHECK (
        minimum_balance IS NULL OR
        CASE normal_balance
            WHEN 'debit' THEN debits_posted - credits_posted - credits_pending
            ELSE credits_posted - debits_posted - debits_pending
        END >= minimum_balance
    )
);
CREATE UNIQUE INDEX ledger_accounts_identity
    ON ledger_accounts (tenant_id, code, unit_code, coalesce(customer_id, ''));
CREATE UNIQUE INDEX ledger_accounts_tenant ON ledger_accounts (tenant_id, id);
CREATE INDEX ledger_accounts_customer ON ledger_accounts (tenant_id, customer_id) WHERE customer_id IS NOT NULL;

-- kind: posted (single phase), pending (reserves), post_pending / void_pending (resolve a pending
-- transaction exactly once), reversal (undoes a posted transaction exactly once).
CREATE TABLE ledger_transactions (
    id                       uuid PRIMARY KEY,
    tenant_id                uuid NOT NULL REFERENCES tenants (id),
    idempotency_key          text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    kind                     text NOT NULL
        CHECK (kind IN ('posted', 'pending', 'post_pending', 'void_pending', 'reversal')),
    template                 text NOT NULL,
    effective_at             timestamptz NOT NULL,
    recorded_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    description              text NOT NULL DEFAULT '',
    reference                text,
    metadata                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    pending_transaction_id   uuid REFERENCES ledger_transactions (id),
    reverses_transaction_id  uuid REFERENCES ledger_transactions (id),
    entry_count              smallint NOT NULL,
    CHECK ((kind IN ('post_pending', 'void_pending')) = (pending_transaction_id IS NOT NULL)),
    CHECK ((kind = 'reversal') = (reverses_transaction_id IS NOT NULL)),
    CHECK (kind = 'void_pending' OR entry_count >= 2)
);
CREATE UNIQUE INDEX ledger_transactions_idempotency ON ledger_transactions (tenant_id, idempotency_key);
-- A pending transaction is resolved, and a posted one reversed, at most once: the database enforces it.
CREATE UNIQUE INDEX ledger_transactions_resolution
    ON ledger_transactions (pending_transaction_id) WHERE pending_transaction_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_transactions_reversal
    ON ledger_transactions (reverses_transaction_id) WHERE reverses_transaction_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_transactions_tenant ON ledger_transactions (tenant_id, id);
CREATE INDEX ledger_transactions_reference ON ledger_transactions (tenant_id, reference) WHERE reference IS NOT NULL;

CREATE TABLE ledger_entries (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    transaction_id  uuid NOT NULL,
    entry_index     smallint NOT NULL,
    account_id      uuid NOT NULL,
    direction       text NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount          bigint NOT NULL CHECK (amount > 0),
    unit_code       text NOT NULL,
    -- 'pending' entries reserve; 'posted' entries move balances. Copied from the transaction so
    -- balances are one indexed scan.
    phase           text NOT NULL CHECK (phase IN ('pending', 'posted')),
    effective_at    timestamptz NOT NULL,
    UNIQUE (transaction_id, entry_index),
    -- Composite keys: an entry can never point at another tenant's account or transaction.
    FOREIGN KEY (tenant_id, transaction_id) REFERENCES ledger_transactions (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES ledger_accounts (tenant_id, id)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, effective_at);
CREATE INDEX ledger_entries_tenant ON ledger_entries (tenant_id, id);

-- Append-only: posted history is never edited. Corrections are reversal transactions.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Results of the ledger integrity check; discrepancies are reported, never "fixed".
CREATE TABLE integrity_runs (
    id                 uuid PRIMARY KEY,
    started_at         timestamptz NOT NULL,
    finished_at        timestamptz NOT NULL,
    tenant_id          uuid REFERENCES tenants (id),
    checks_run         integer NOT NULL,
    discrepancy_count  integer NOT NULL,
    discrepancies      jsonb NOT NULL
);
CREATE INDEX integrity_runs_finished ON integrity_runs (finished_at DESC);
"""

DOWNGRADE = """
DROP TABLE integrity_runs;
DROP TABLE ledger_entries;
DROP TABLE ledger_transactions;
DROP FUNCTION ledger_refuse_change();
DROP TABLE ledger_accounts;
DROP TABLE units;
DROP TABLE audit_log;
DROP TABLE idempotent_requests;
DROP TABLE api_keys;
DROP TABLE tenants;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
