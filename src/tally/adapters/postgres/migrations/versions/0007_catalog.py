"""The catalog: products, features, immutable prices, plans with versions, per-customer price overrides.

Immutability is enforced here, not only in the code above: a price's terms never change (only its
metadata and, once, its archival), a published plan version and its items never change, and an
override's terms never change (only its end, which may only come earlier). Subscriptions added by
later migrations reference prices and plan versions that can therefore never be reinterpreted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- What is sold. Labels are edited in place; the code is stable.
CREATE TABLE products (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    code         text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    UNIQUE (tenant_id, code),
    UNIQUE (tenant_id, id)
);

-- A feature plans grant: a boolean flag or a numeric limit (enforced by entitlement checks).
CREATE TABLE features (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    code         text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL CHECK (kind IN ('boolean', 'limit')),
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    UNIQUE (tenant_id, code)
);

-- A price: the rating core's price document (tally.core.rating, canonical form), immutable. A change
-- is a new price with the same code; the old one is archived. One active price per code.
CREATE TABLE prices (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    code         text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    product_id   uuid NOT NULL,
    currency     text NOT NULL CHECK (currency ~ '^[A-Z][A-Z0-9_]{1,15}$'),
    meter_code   text,
    document     jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object'),
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   timestamptz NOT NULL,
    archived_at  timestamptz,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);
CREATE UNIQUE INDEX prices_active_code ON prices (tenant_id, code) WHERE archived_at IS NULL;
CREATE INDEX prices_product ON prices (tenant_id, product_id);

CREATE FUNCTION prices_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'prices are never deleted: archive them' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.code <> OLD.code OR NEW.product_id <> OLD.product_id
       OR NEW.currency <> OLD.currency OR NEW.meter_code IS DISTINCT FROM OLD.meter_code
       OR NEW.document <> OLD.document OR NEW.created_at <> OLD.created_at
       OR (OLD.archived_at IS NOT NULL AND NEW.archived_at IS DISTINCT FROM OLD.archived_at) THEN
        RAISE EXCEPTION 'prices are immutable: create a new price and archive this one'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER prices_are_immutable BEFORE UPDATE OR DELETE ON prices
    FOR EACH ROW EXECUTE FUNCTION prices_are_immutable();

-- A plan: a stable code and labels. What it sells lives in its numbered versions.
CREATE TABLE plans (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    code         text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    UNIQUE (tenant_id, code),
    UNIQUE (tenant_id, id)
);

-- A plan version: a draft (editable) until published, then immutable forever. At most one draft
-- per plan. `entitlements` maps feature codes to true/false (flags) or a limit (integers as text).
CREATE TABLE plan_versions (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    plan_id       uuid NOT NULL,
    version       integer NOT NULL CHECK (version >= 1),
    status        text NOT NULL CHECK (status IN ('draft', 'published')),
    trial_days    integer NOT NULL DEFAULT 0 CHECK (trial_days BETWEEN 0 AND 730),
    entitlements  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(entitlements) = 'object'),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    published_at  timestamptz,
    CHECK ((status = 'published') = (published_at IS NOT NULL)),
    UNIQUE (plan_id, version),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, plan_id) REFERENCES plans (tenant_id, id)
);
CREATE UNIQUE INDEX plan_versions_one_draft ON plan_versions (plan_id) WHERE status = 'draft';

-- The prices a version bundles, in order, with the default quantity of seat-based fixed fees.
CREATE TABLE plan_version_prices (
    tenant_id        uuid NOT NULL,
    plan_version_id  uuid NOT NULL,
    position         integer NOT NULL CHECK (position >= 0),
    price_id         uuid NOT NULL,
    quantity         integer CHECK (quantity IS NULL OR quantity BETWEEN 0 AND 1000000000),
    PRIMARY KEY (plan_version_id, position),
    UNIQUE (plan_version_id, price_id),
    FOREIGN KEY (tenant_id, plan_version_id) REFERENCES plan_versions (tenant_id, id),
    FOREIGN KEY (tenant_id, price_id) REFERENCES prices (tenant_id, id)
);
CREATE INDEX plan_version_prices_price ON plan_version_prices (price_id);

-- A published version never changes, nor do its items; it is never deleted.
CREATE FUNCTION plan_versions_published_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'published' THEN
        RAISE EXCEPTION 'plan version % is published: make a new version', OLD.version
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.tenant_id <> OLD.tenant_id OR NEW.plan_id <> OLD.plan_id
                             OR NEW.version <> OLD.version OR NEW.created_at <> OLD.created_at) THEN
        RAISE EXCEPTION 'a plan version keeps its plan and number' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER plan_versions_published_are_immutable BEFORE UPDATE OR DELETE ON plan_versions
    FOR EACH ROW EXECUTE FUNCTION plan_versions_published_are_immutable();

CREATE FUNCTION plan_version_prices_follow_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    version_id uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        version_id := OLD.plan_version_id;
    ELSE
        version_id := NEW.plan_version_id;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.plan_version_id <> OLD.plan_version_id THEN
        RAISE EXCEPTION 'a plan item keeps its version' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM plan_versions WHERE id = version_id AND status = 'published') THEN
        RAISE EXCEPTION 'the prices of a published plan version never change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER plan_version_prices_follow_version BEFORE INSERT OR UPDATE OR DELETE ON plan_version_prices
    FOR EACH ROW EXECUTE FUNCTION plan_version_prices_follow_version();

-- A negotiated rate: for one customer and one price, another price document over a half-open
-- window [effective_from, effective_until). Windows of one (customer, price) never overlap (checked
-- under the customer's lock). Only the end may change, and only to an earlier time.
CREATE TABLE price_overrides (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    customer_id      uuid NOT NULL,
    price_id         uuid NOT NULL,
    currency         text NOT NULL,
    document         jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object'),
    effective_from   timestamptz NOT NULL,
    effective_until  timestamptz,
    metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CHECK (effective_until IS NULL OR effective_until > effective_from),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, price_id) REFERENCES prices (tenant_id, id)
);
CREATE INDEX price_overrides_customer_price ON price_overrides (tenant_id, customer_id, price_id, effective_from);

CREATE FUNCTION price_overrides_only_end_earlier() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'price overrides are never deleted: end them' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.customer_id <> OLD.customer_id OR NEW.price_id <> OLD.price_id
       OR NEW.currency <> OLD.currency OR NEW.document <> OLD.document
       OR NEW.effective_from <> OLD.effective_from OR NEW.created_at <> OLD.created_at
       OR (OLD.effective_until IS NOT NULL
           AND (NEW.effective_until IS NULL OR NEW.effective_until > OLD.effective_until)) THEN
        RAISE EXCEPTION 'a price override keeps its terms; its end may only come earlier'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER price_overrides_only_end_earlier BEFORE UPDATE OR DELETE ON price_overrides
    FOR EACH ROW EXECUTE FUNCTION price_overrides_only_end_earlier();
"""

DOWNGRADE = """
DROP TRIGGER price_overrides_only_end_earlier ON price_overrides;
DROP FUNCTION price_overrides_only_end_earlier();
DROP TABLE price_overrides;
DROP TRIGGER plan_version_prices_follow_version ON plan_version_prices;
DROP FUNCTION plan_version_prices_follow_version();
DROP TRIGGER plan_versions_published_are_immutable ON plan_versions;
DROP FUNCTION plan_versions_published_are_immutable();
DROP TABLE plan_version_prices;
DROP TABLE plan_versions;
DROP TABLE plans;
DROP TRIGGER prices_are_immutable ON prices;
DROP FUNCTION prices_are_immutable();
DROP TABLE prices;
DROP TABLE features;
DROP TABLE products;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
