"""The ledger on PostgreSQL agrees with the pure reference ledger, on random operation sequences.

Each example gets a fresh tenant and the accounts of `tests.ledger_model.ACCOUNTS`. Every operation
goes through tally's use cases and through the reference ledger; both must give the same answer
(posted, replayed — the same transaction — or the same rejection code). At the end the cached
balances in the database equal the reference's, and the integrity check finds nothing.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings

from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.check_ledger_integrity import run_integrity_check
from tally.app.ledger_accounts import AccountInput, create_account, create_unit
from tally.app.post_ledger_transactions import EntryInput, TransactionInput, post_transaction
from tally.app.resolve_pending_transaction import ResolutionInput, resolve_pending_transaction
from tally.app.reverse_ledger_transaction import ReversalInput, reverse_transaction
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.core.ledger.model import AccountType, Balances, Direction
from tally.core.rejections import Rejected
from tests.ledger_model import (
    ACCOUNTS,
    UNKNOWN_ACCOUNT,
    Answer,
    Operation,
    PostRequest,
    ReferenceLedger,
    Request,
    ResolveRequest,
    ReverseRequest,
    operations,
    plan,
)


def _create_accounts(tally: Tally, tenant_id: uuid.UUID) -> list[str]:
    create_unit(tally.engine, tenant_id, "CREDITS", 0, "Credits")
    ids = []
    for account in ACCOUNTS:
        row, _ = create_account(
            tally.engine,
            tenant_id,
            AccountInput(
                code=f"prop.{account.name}",
                unit_code=account.unit_code,
                type=AccountType.ASSET if account.normal_balance is Direction.DEBIT else AccountType.LIABILITY,
                normal_balance=account.normal_balance,
                minimum_balance=account.minimum_balance,
            ),
        )
        ids.append(str(row.id))
    return ids


def _execute(tally: Tally, tenant_id: uuid.UUID, request: Request, to_database: dict[str, uuid.UUID]) -> Answer:
    """Send `request` through tally's use cases; reference transaction ids are mapped to stored ones."""

    def target(reference_id: str | None) -> uuid.UUID | None:
        return to_database[reference_id] if reference_id is not None else None

    try:
        match request:
            case PostRequest():
                entries = tuple(
                    EntryInput(
                        account_id=None if entry.account_id == UNKNOWN_ACCOUNT else uuid.UUID(entry.account_id),
                        direction=entry.direction,
                        amount=entry.amount,
                    )
                    for entry in request.entries
                )
                transaction = TransactionInput(
                    idempotency_key=request.key,
                    entries=entries,
                    pending=request.pending,
                    description=request.description,
                )
                outcome = post_transaction(tally.engine, tally.clock, tenant_id, transaction)
                return Answer(str(outcome.unwrap().id), outcome.replayed)
            case ResolveRequest():
                resolution = ResolutionInput(
                    pending_transaction_id=target(request.target),
                    idempotency_key=request.key,
                    void=request.void,
                    entries=request.entries,
                    description=request.description,
                )
                stored, replayed = resolve_pending_transaction(tally.engine, tally.clock, tenant_id, resolution)
                return Answer(str(stored.id), replayed)
            case ReverseRequest():
                reversal = ReversalInput(
                    transaction_id=target(request.target), idempotency_key=request.key, description=request.description
                )
                stored, replayed = reverse_transaction(tally.engine, tally.clock, tenant_id, reversal)
                return Answer(str(stored.id), replayed)
    except Rejected as rejected:
        return Answer(code=rejected.rejection.code)
    raise AssertionError(request)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations(max_size=16))
def test_the_database_ledger_matches_the_reference_ledger(tally: Tally, ops: list[Operation]) -> None:
    tenant_id = create_tenant(tally.engine, f"property-{uuid.uuid4().hex[:8]}")
    account_ids = _create_accounts(tally, tenant_id)
    reference = ReferenceLedger.with_accounts(account_ids)
    to_database: dict[str, uuid.UUID] = {}
    sent: list[Request] = []
    for index, operation in enumerate(ops):
        request = plan(operation, index, reference, sent)
        if request is None:
            continue
        sent.append(request)
        expected = reference.handle(request)
        actual = _execute(tally, tenant_id, request, to_database)
        assert (actual.code, actual.replayed) == (expected.code, expected.replayed), (index, request)
        if expected.transaction_id is not None and actual.transaction_id is not None:
            if expected.replayed:
                assert to_database[expected.transaction_id] == uuid.UUID(actual.transaction_id)
            else:
                to_database[expected.transaction_id] = uuid.UUID(actual.transaction_id)

    with psycopg_transaction(tally.engine) as connection:
        rows = connection.execute(
            """SELECT id::text, debits_posted, credits_posted, debits_pending, credits_pending
               FROM ledger_accounts WHERE tenant_id = %s""",
            (tenant_id,),
        ).fetchall()
    assert {row[0]: Balances(*row[1:]) for row in rows} == reference.balances
    report = run_integrity_check(tally.engine, tally.clock, tenant_id)
    assert report.discrepancy_count == 0, report.discrepancies
