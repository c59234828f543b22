"""Invoices: drafts, finalized invoices and their lines, payments, credit notes, and the facts the
invoicing core reads besides subscriptions and usage (coupons, grants, commitments, tax rates).

What is a financial fact is append-only or frozen, and the database refuses the rest:

- `invoice_lines` of a finalized invoice are never changed or deleted. A draft's lines are replaced
  when the draft is refreshed (a draft is a proposal, not a fact). The UNIQUE constraint on
  (tenant, customer, currency, line key, sequence) makes billing one thing twice impossible, even
  for two billing runs racing for one customer: the second insert fails instead of billing again.
- `invoices` move only forward through their lifecycle (draft → open → paid / void /
  uncollectible), and once finalized their number, dates and totals are frozen. At most one draft
  per customer and currency. Numbers come from `invoice_number_counters`, updated in the finalizing
  transaction, so they are gapless per tenant.
- `invoice_payments`, `credit_notes`, `coupons`, `coupon_redemptions`, `credit_grants`,
  `commitments` and `tax_rates` are append-only: corrections are new rows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

APPEND_ONLY = (
    "invoice_payments",
    "credit_notes",
    "coupons",
    "coupon_redemptions",
    "credit_grants",
    "commitments",
    "tax_rates",
)

UPGRADE = r"""
CREATE FUNCTION invoicing_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END $$;

CREATE TABLE invoice_number_counters (
    tenant_id    uuid PRIMARY KEY REFERENCES tenants (id),
    last_number  bigint NOT NULL CHECK (last_number >= 1)
);

CREATE TABLE invoices (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    customer_id    uuid NOT NULL,
    currency       text NOT NULL,
    status         text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    number         text CHECK (number IS NULL OR length(number) BETWEEN 1 AND 64),
    -- The moment the proposal was computed through, and the span of its lines' service periods.
    through        timestamptz NOT NULL,
    period_start   timestamptz NOT NULL,
    period_end     timestamptz NOT NULL CHECK (period_end >= period_start),
    subtotal_minor          bigint NOT NULL,
    discount_minor          bigint NOT NULL,
    credits_minor           bigint NOT NULL CHECK (credits_minor >= 0),
    tax_minor               bigint NOT NULL,
    total_minor             bigint NOT NULL,
    balance_applied_minor   bigint NOT NULL CHECK (balance_applied_minor >= 0),
    balance_credited_minor  bigint NOT NULL CHECK (balance_credited_minor >= 0),
    amount_due_minor        bigint NOT NULL CHECK (amount_due_minor >= 0),
    amount_paid_minor       bigint NOT NULL DEFAULT 0 CHECK (amount_paid_minor >= 0),
    amount_credited_minor   bigint NOT NULL DEFAULT 0 CHECK (amount_credited_minor >= 0),
    credited_against_due_minor bigint NOT NULL DEFAULT 0,
    -- What the core decided with the lines: tax lines, what credit notes may take back per account,
    -- and the ledger postings finalizing will write (so finalizing posts exactly what was shown).
    tax            jsonb NOT NULL CHECK (jsonb_typeof(tax) = 'array'),
    creditable     jsonb NOT NULL CHECK (jsonb_typeof(creditable) = 'array'),
    postings       jsonb NOT NULL CHECK (jsonb_typeof(postings) = 'array'),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    issued_at      timestamptz,
    due_at         timestamptz,
    finalized_at   timestamptz,
    paid_at        timestamptz,
    voided_at      timestamptz,
    uncollectible_at timestamptz,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, number),
    CHECK (total_minor = subtotal_minor + discount_minor - credits_minor + tax_minor),
    CHECK (amount_due_minor = total_minor - balance_applied_minor + balance_credited_minor),
    CHECK (0 <= credited_against_due_minor AND credited_against_due_minor <= amount_credited_minor),
    CHECK (amount_paid_minor + credited_against_due_minor <= amount_due_minor),
    CHECK ((status = 'draft') = (number IS NULL)),
    CHECK ((status = 'draft') = (finalized_at IS NULL)),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX invoices_customer ON invoices (tenant_id, customer_id, id);
CREATE INDEX invoices_tenant ON invoices (tenant_id, id);
CREATE UNIQUE INDEX invoices_one_draft ON invoices (tenant_id, customer_id, currency) WHERE status = 'draft';

-- An invoice only moves forward, and what finalizing fixed stays fixed.
CREATE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'a finalized invoice is never deleted' USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.customer_id <> OLD.customer_id OR NEW.currency <> OLD.currency
       OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'an invoice keeps its tenant, customer, currency and creation'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.status <> 'draft' AND (
           NEW.number IS DISTINCT FROM OLD.number OR NEW.issued_at IS DISTINCT FROM OLD.issued_at
           OR NEW.due_at IS DISTINCT FROM OLD.due_at OR NEW.finalized_at IS DISTINCT FROM OLD.finalized_at
           OR NEW.total_minor <> OLD.total_minor OR NEW.amount_due_minor <> OLD.amount_due_minor
           OR NEW.subtotal_minor <> OLD.subtotal_minor OR NEW.tax_minor <> OLD.tax_minor
           OR NEW.postings <> OLD.postings OR NEW.through <> OLD.through
           OR NEW.amount_paid_minor < OLD.amount_paid_minor
           OR NEW.amount_credited_minor < OLD.amount_credited_minor) THEN
        RAISE EXCEPTION 'a finalized invoice keeps its number, dates, totals and postings'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.status <> OLD.status AND NOT (
           (OLD.status = 'draft' AND NEW.status IN ('open', 'paid'))
           OR (OLD.status = 'open' AND NEW.status IN ('paid', 'void', 'uncollectible'))
           OR (OLD.status = 'uncollectible' AND NEW.status IN ('paid', 'void'))) THEN
        RAISE EXCEPTION 'an invoice does not go from % to %', OLD.status, NEW.status
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_guard();

-- One row per line: the core's line key, its sequence, the amounts and the explanation.
CREATE TABLE invoice_lines (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    invoice_id       uuid NOT NULL,
    customer_id      uuid NOT NULL,
    currency         text NOT NULL,
    -- The line key (tally.core.invoicing.LineKey); no part is null.
    subscription_id  text NOT NULL,
    price_id         text NOT NULL,
    service_start    timestamptz NOT NULL,
    service_end      timestamptz NOT NULL CHECK (service_end >= service_start),
    group_values     jsonb NOT NULL CHECK (jsonb_typeof(group_values) = 'array'),
    kind             text NOT NULL CHECK (kind IN ('fixed_fee_credit', 'fixed_fee', 'usage', 'usage_minimum',
                                                   'usage_cap', 'one_off', 'minimum_commitment', 'discount')),
    reference        text NOT NULL,
    sequence         integer NOT NULL CHECK (sequence >= 0),
    position         integer NOT NULL CHECK (position >= 0),
    amount_minor               bigint NOT NULL,
    amount_minor_total         bigint NOT NULL,
    amount_minor_billed_prior  bigint NOT NULL,
    quantity         numeric,
    product          text NOT NULL,
    description      text NOT NULL,
    due_at           timestamptz NOT NULL,
    provisional      boolean NOT NULL,
    explanation      jsonb NOT NULL CHECK (jsonb_typeof(explanation) = 'object'),
    created_at       timestamptz NOT NULL,
    CHECK (amount_minor = amount_minor_total - amount_minor_billed_prior),
    UNIQUE (tenant_id, customer_id, currency, subscription_id, price_id, service_start, service_end, group_values,
            kind, reference, sequence),
    UNIQUE (invoice_id, position),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
CREATE INDEX invoice_lines_customer ON invoice_lines (tenant_id, customer_id, currency);

-- A draft's lines are replaced with the draft; a finalized invoice's lines never change.
CREATE FUNCTION invoice_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    invoice_status text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'invoice lines are never edited' USING ERRCODE = 'restrict_violation';
    END IF;
    SELECT status INTO invoice_status FROM invoices WHERE id = COALESCE(OLD.invoice_id, NEW.invoice_id);
    IF TG_OP = 'DELETE' AND invoice_status IS NOT NULL AND invoice_status <> 'draft' THEN
        RAISE EXCEPTION 'the lines of a finalized invoice are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'INSERT' AND invoice_status <> 'draft' THEN
        RAISE EXCEPTION 'lines are added to drafts only' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN COALESCE(NEW, OLD);
END $$;
CREATE TRIGGER invoice_lines_guard BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION invoice_lines_guard();
CREATE TRIGGER invoice_lines_no_truncate BEFORE TRUNCATE ON invoice_lines
    FOR EACH STATEMENT EXECUTE FUNCTION invoicing_refuse_change();

-- Where the billing run left each customer: the moment billed through, and when something can fall
-- due next (from the billing events). A cache that only decides when to look again.
CREATE TABLE customer_billing (
    tenant_id       uuid NOT NULL,
    customer_id     uuid NOT NULL,
    billed_through  timestamptz NOT NULL,
    next_run_at     timestamptz,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, customer_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX customer_billing_next_run ON customer_billing (next_run_at) WHERE next_run_at IS NOT NULL;

CREATE TABLE invoice_payments (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    invoice_id      uuid NOT NULL,
    customer_id     uuid NOT NULL,
    currency        text NOT NULL,
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    applied_minor   bigint NOT NULL CHECK (applied_minor >= 0),
    overpaid_minor  bigint NOT NULL CHECK (overpaid_minor >= 0),
    method          text NOT NULL CHECK (length(method) BETWEEN 1 AND 64),
    reference       text NOT NULL CHECK (length(reference) <= 255),
    received_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    ledger_transaction_id uuid NOT NULL,
    CHECK (amount_minor = applied_minor + overpaid_minor),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
CREATE INDEX invoice_payments_invoice ON invoice_payments (invoice_id, id);

CREATE TABLE credit_notes (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL,
    invoice_id         uuid NOT NULL,
    customer_id        uuid NOT NULL,
    currency           text NOT NULL,
    amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
    against_due_minor  bigint NOT NULL CHECK (against_due_minor >= 0),
    to_balance_minor   bigint NOT NULL CHECK (to_balance_minor >= 0),
    reason             text NOT NULL,
    memo               text NOT NULL CHECK (length(memo) <= 1000),
    by_account         jsonb NOT NULL CHECK (jsonb_typeof(by_account) = 'array'),
    issued_at          timestamptz NOT NULL,
    ledger_transaction_id uuid NOT NULL,
    CHECK (amount_minor = against_due_minor + to_balance_minor),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
CREATE INDEX credit_notes_invoice ON credit_notes (invoice_id, id);

-- What the invoicing core reads besides subscriptions and usage. Each row is one frozen fact.
CREATE TABLE coupons (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    code              text NOT NULL CHECK (length(code) BETWEEN 1 AND 63),
    percent_off       numeric CHECK (percent_off > 0 AND percent_off <= 100),
    amount_off_minor  bigint CHECK (amount_off_minor > 0),
    currency          text,
    duration          text NOT NULL CHECK (duration IN ('once', 'repeating', 'forever')),
    duration_periods  integer CHECK (duration_periods BETWEEN 1 AND 1200),
    plan_ids          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(plan_ids) = 'array'),
    price_ids         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(price_ids) = 'array'),
    created_at        timestamptz NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, code),
    CHECK ((percent_off IS NULL) <> (amount_off_minor IS NULL)),
    CHECK ((amount_off_minor IS NULL) = (currency IS NULL)),
    CHECK ((duration = 'repeating') = (duration_periods IS NOT NULL))
);

CREATE TABLE coupon_redemptions (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    coupon_id        uuid NOT NULL,
    customer_id      uuid NOT NULL,
    subscription_id  uuid,
    redeemed_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, coupon_id) REFERENCES coupons (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id)
);
CREATE INDEX coupon_redemptions_customer ON coupon_redemptions (tenant_id, customer_id);

CREATE TABLE credit_grants (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    customer_id      uuid NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('prepaid', 'promotional')),
    unit             text NOT NULL,
    amount_minor     bigint NOT NULL CHECK (amount_minor > 0),
    value_per_unit   numeric CHECK (value_per_unit > 0),
    value_currency   text,
    effective_at     timestamptz NOT NULL,
    expires_at       timestamptz,
    priority         integer NOT NULL DEFAULT 0,
    scope            jsonb NOT NULL CHECK (jsonb_typeof(scope) = 'object'),
    recorded_at      timestamptz NOT NULL,
    ledger_transaction_id uuid,
    CHECK (expires_at IS NULL OR expires_at > effective_at),
    CHECK ((value_per_unit IS NULL) = (value_currency IS NULL)),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX credit_grants_customer ON credit_grants (tenant_id, customer_id);

CREATE TABLE commitments (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    customer_id      uuid NOT NULL,
    subscription_id  uuid,
    currency         text NOT NULL,
    minimum_minor    bigint NOT NULL CHECK (minimum_minor > 0),
    period_start     timestamptz NOT NULL,
    period_end       timestamptz NOT NULL CHECK (period_end > period_start),
    price_ids        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(price_ids) = 'array'),
    recorded_at      timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX commitments_customer ON commitments (tenant_id, customer_id);

-- Per customer (or the tenant's default when customer_id is NULL), optionally per product.
CREATE TABLE tax_rates (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    customer_id   uuid,
    product       text,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    jurisdiction  text NOT NULL DEFAULT '',
    percent       numeric NOT NULL CHECK (percent >= 0 AND percent <= 100),
    recorded_at   timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX tax_rates_customer ON tax_rates (tenant_id, customer_id);

"""

TRIGGERS = "\n".join(
    f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION invoicing_refuse_change();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION invoicing_refuse_change();"""
    for table in APPEND_ONLY
)

DOWNGRADE = """
DROP TABLE tax_rates, commitments, credit_grants, coupon_redemptions, coupons, credit_notes, invoice_payments,
    customer_billing, invoice_lines, invoices, invoice_number_counters;
DROP FUNCTION invoicing_refuse_change();
DROP FUNCTION invoice_lines_guard();
DROP FUNCTION invoices_guard();
"""


def upgrade() -> None:
    op.execute(UPGRADE + TRIGGERS)


def downgrade() -> None:
    op.execute(DOWNGRADE)
