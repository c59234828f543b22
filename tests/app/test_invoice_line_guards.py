"""The database's own guards on invoice lines, should the code ever forget them: lines go onto
drafts only, a finalized invoice's lines are never deleted, no line is ever edited; a statement that
breaks a rule writes nothing, even when most of its rows were fine (migration 0010)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tally.adapters.postgres import invoices as invoice_store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.finalize_invoice import finalize_invoice
from tally.app.run_billing import bill_customer
from tally.bootstrap import Tally
from tests.invoicing_support import at, customer_on_clock, subscribe
from tests.subscription_support import apply_test_catalog

CATALOG = """
products:
  - {code: platform, name: Platform}
prices:
  - {code: basic_fee, product: platform, model: flat_fee, currency: USD, amount: 30}
plans:
  - code: basic
    name: Basic
    prices: [basic_fee]
"""


@pytest.fixture
def drafts(tally: Tally, tenant_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """(a finalized invoice, a draft): two customers' first invoices, one of them finalized."""
    apply_test_catalog(tally, tenant_id, CATALOG)
    invoices = []
    for _ in range(2):
        customer_id, _, _ = customer_on_clock(tally, tenant_id, at(1, 1))
        subscribe(tally, tenant_id, customer_id)
        bill_customer(tally.engine, tally.clock, tenant_id, customer_id)
        with psycopg_transaction(tally.engine) as connection:
            draft = invoice_store.draft_of(connection, tenant_id, customer_id, "USD")
        assert draft is not None
        invoices.append(draft.id)
    finalize_invoice(tally.engine, tally.clock, tenant_id, invoices[0])
    return invoices[0], invoices[1]


def _lines(tally: Tally, invoice_id: uuid.UUID) -> int:
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute("SELECT count(*) FROM invoice_lines WHERE invoice_id = %s", (invoice_id,)).fetchone()
    assert row is not None
    return int(row[0])


# A copy of each line of the given invoices, onto `target`, under a new id and a new sequence.
_COPY_LINES = """
INSERT INTO invoice_lines
SELECT (jsonb_populate_record(line, jsonb_build_object(
            'id', gen_random_uuid(), 'invoice_id', %(target)s::uuid, 'sequence', line.sequence + 1000,
            'position', line.position + 1000))).*
FROM invoice_lines line
WHERE line.invoice_id = ANY(%(sources)s)
"""


def _copy_lines(connection: psycopg.Connection, target: uuid.UUID, sources: list[uuid.UUID]) -> None:
    connection.execute(_COPY_LINES, {"target": target, "sources": sources})


def test_a_finalized_invoice_takes_no_new_line_and_the_statement_writes_nothing(
    tally: Tally, drafts: tuple[uuid.UUID, uuid.UUID]
) -> None:
    finalized, draft = drafts
    before = _lines(tally, finalized), _lines(tally, draft)
    with (
        pytest.raises(psycopg.errors.RestrictViolation, match="lines are added to drafts only"),
        psycopg_transaction(tally.engine) as connection,
    ):
        _copy_lines(connection, finalized, [draft])
    assert (_lines(tally, finalized), _lines(tally, draft)) == before
    # A draft takes them.
    with psycopg_transaction(tally.engine) as connection:
        _copy_lines(connection, draft, [finalized])
    assert _lines(tally, draft) == before[1] + before[0]


def test_a_finalized_invoices_lines_are_never_deleted_even_beside_a_drafts(
    tally: Tally, drafts: tuple[uuid.UUID, uuid.UUID]
) -> None:
    finalized, draft = drafts
    before = _lines(tally, finalized), _lines(tally, draft)
    with (
        pytest.raises(psycopg.errors.RestrictViolation, match="never deleted"),
        psycopg_transaction(tally.engine) as connection,
    ):
        connection.execute("DELETE FROM invoice_lines WHERE invoice_id = ANY(%s)", ([draft, finalized],))
    assert (_lines(tally, finalized), _lines(tally, draft)) == before
    with psycopg_transaction(tally.engine) as connection:
        connection.execute("DELETE FROM invoice_lines WHERE invoice_id = %s", (draft,))
    assert _lines(tally, draft) == 0


@pytest.mark.parametrize("which", ["finalized", "draft"])
def test_no_line_is_ever_edited(tally: Tally, drafts: tuple[uuid.UUID, uuid.UUID], which: str) -> None:
    invoice_id = drafts[0] if which == "finalized" else drafts[1]
    with (
        pytest.raises(psycopg.errors.RestrictViolation, match="never edited"),
        psycopg_transaction(tally.engine) as connection,
    ):
        connection.execute("UPDATE invoice_lines SET description = 'edited' WHERE invoice_id = %s", (invoice_id,))
