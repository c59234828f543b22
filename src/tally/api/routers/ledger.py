"""/v1/ledger: accounts, transactions (single, batch, two-phase, reversals), entries and balances.

Reading needs the `read` scope; writing needs `admin`. Every write is idempotent on the
transaction's `idempotency_key` (from the body, or the Idempotency-Key header when the body has
none): a replay answers 200 with the original, a replay with different content 409
`exists_with_different_<field>`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import Field, StringConstraints

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.schemas import ApiModel, ListResponse, Metadata, Resource
from tally.app import ledger_queries
from tally.app._ledger_write import LedgerTransaction, Outcome
from tally.app.ledger_accounts import AccountInput, LedgerAccount, create_account
from tally.app.post_ledger_transactions import EntryInput, TransactionInput, post_batch, post_transaction
from tally.app.resolve_pending_transaction import ResolutionInput, resolve_pending_transaction
from tally.app.reverse_ledger_transaction import ReversalInput, reverse_transaction
from tally.bootstrap import Tally
from tally.core.ledger.model import (
    DESCRIPTION_LENGTH_MAX,
    ENTRIES_PER_TRANSACTION_MAX,
    REFERENCE_LENGTH_MAX,
    TRANSACTIONS_PER_BATCH_MAX,
    AccountType,
    Balances,
    Direction,
    Entry,
)
from tally.core.rejections import Rejected

router = APIRouter(prefix="/ledger", tags=["Ledger"])

for _code in (
    "exists_with_different_kind",
    "exists_with_different_pending_transaction",
    "exists_with_different_reversed_transaction",
    "exists_with_different_accounts",
    "exists_with_different_directions",
    "exists_with_different_amount",
    "exists_with_different_effective_at",
    "exists_with_different_template",
    "exists_with_different_description",
    "exists_with_different_reference",
    "exists_with_different_metadata",
    "pending_transaction_already_resolved",
    "transaction_already_reversed",
    "account_exists_with_different_type",
    "account_exists_with_different_normal_balance",
    "account_exists_with_different_minimum_balance",
    "account_exists_with_different_name",
    "account_exists_with_different_metadata",
):
    register_status(_code, 409)
register_status("idempotency_key_required", 400)

UnitCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{1,15}$")]
AccountCode = Annotated[str, StringConstraints(min_length=1, max_length=120)]
DecimalString = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,30}(\.[0-9]{1,18})?$")]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_LENGTH_MAX)]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=REFERENCE_LENGTH_MAX)]
CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


# ----- shapes -------------------------------------------------------------------------------------


class BalanceBody(ApiModel):
    posted: int = Field(description="Posted balance, positive in the account's normal direction.")
    pending: int = Field(description="Net of unresolved pending transactions, in the normal direction.")
    available: int = Field(description="Posted less pending amounts that would reduce it.")
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int


def _balance(balances: Balances, normal: Direction) -> BalanceBody:
    return BalanceBody(
        posted=balances.posted(normal),
        pending=balances.pending(normal),
        available=balances.available(normal),
        debits_posted=balances.debits_posted,
        credits_posted=balances.credits_posted,
        debits_pending=balances.debits_pending,
        credits_pending=balances.credits_pending,
    )


class CreateAccount(ApiModel):
    code: AccountCode = Field(description="A chart code (`customer_credit`, `revenue.api_calls`) or a custom code.")
    unit: UnitCode = Field(description="ISO 4217 currency or a custom unit of this tenant.")
    customer_id: CustomerId | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    type: AccountType | None = Field(default=None, description="Required for codes outside the chart.")
    normal_balance: Direction | None = None
    minimum_balance: int | None = Field(
        default=None, description="Floor for the available balance (0: never negative)."
    )
    metadata: Metadata = Field(default_factory=dict)


class AccountResource(Resource):
    object: Literal["ledger_account"] = "ledger_account"
    code: str
    name: str
    type: AccountType
    normal_balance: Direction
    unit: str
    unit_scale: int
    customer_id: str | None
    minimum_balance: int | None
    balance: BalanceBody


def _account(row: LedgerAccount) -> AccountResource:
    normal = Direction(row.normal_balance)
    return AccountResource(
        id=ids.format_id(ids.ACCOUNT, row.id),
        created_at=row.created_at,
        metadata=row.metadata,
        code=row.code,
        name=row.name,
        type=AccountType(row.type),
        normal_balance=normal,
        unit=row.unit_code,
        unit_scale=row.unit_scale,
        customer_id=row.customer_id,
        minimum_balance=row.minimum_balance,
        balance=_balance(row.to_core().balances, normal),
    )


class EntryBody(ApiModel):
    account_id: str
    direction: Direction
    amount: int | None = Field(default=None, strict=True, description="In the unit's smallest part (cents).")
    amount_decimal: DecimalString | None = Field(
        default=None, description='Exact, in major units ("12.50"); more digits than the unit has are refused.'
    )


class CreateTransaction(ApiModel):
    idempotency_key: IdempotencyKey | None = Field(
        default=None, description="Required here or as the Idempotency-Key header. Unique per tenant, forever."
    )
    entries: list[EntryBody] = Field(min_length=1, max_length=ENTRIES_PER_TRANSACTION_MAX)
    pending: bool = Field(default=False, description="Reserve now; post or void later.")
    effective_at: datetime | None = Field(default=None, description="Business time; default: when recorded.")
    description: Description = ""
    reference: Reference | None = Field(default=None, description="The source, e.g. an invoice id.")
    metadata: Metadata = Field(default_factory=dict)


class CreateBatch(ApiModel):
    transactions: list[CreateTransaction] = Field(min_length=1, max_length=TRANSACTIONS_PER_BATCH_MAX)


class PostPending(ApiModel):
    idempotency_key: IdempotencyKey | None = None
    entries: list[EntryBody] | None = Field(
        default=None, max_length=ENTRIES_PER_TRANSACTION_MAX, description="Post part of it; omit to post it all."
    )
    effective_at: datetime | None = None
    description: Description = ""
    metadata: Metadata = Field(default_factory=dict)


class VoidPending(ApiModel):
    idempotency_key: IdempotencyKey | None = None
    effective_at: datetime | None = None
    description: Description = ""
    metadata: Metadata = Field(default_factory=dict)


class Reverse(VoidPending):
    pass


class EntryResource(Resource):
    object: Literal["ledger_entry"] = "ledger_entry"
    transaction_id: str
    entry_index: int
    account_id: str
    direction: Direction
    amount: int
    unit: str
    phase: Literal["pending", "posted"]
    effective_at: datetime


class TransactionResource(Resource):
    object: Literal["ledger_transaction"] = "ledger_transaction"
    idempotency_key: str
    kind: Literal["posted", "pending", "post_pending", "void_pending", "reversal"]
    template: str
    effective_at: datetime
    recorded_at: datetime
    description: str
    reference: str | None
    pending_transaction_id: str | None
    reverses_transaction_id: str | None
    entries: list[EntryResource]


def _entry(row: ledger_queries.LedgerEntry, recorded_at: datetime | None = None) -> EntryResource:
    created_at = row.recorded_at or recorded_at
    if created_at is None:  # pragma: no cover - every caller supplies one or the other
        raise TypeError("an entry resource needs its transaction's recorded_at")
    return EntryResource(
        id=ids.format_id(ids.ENTRY, row.id),
        created_at=created_at,
        transaction_id=ids.format_id(ids.TRANSACTION, row.transaction_id),
        entry_index=row.entry_index,
        account_id=ids.format_id(ids.ACCOUNT, row.account_id),
        direction=Direction(row.direction),
        amount=row.amount,
        unit=row.unit_code,
        phase="pending" if row.phase == "pending" else "posted",
        effective_at=row.effective_at,
    )


def _transaction(row: LedgerTransaction) -> TransactionResource:
    return TransactionResource(
        id=ids.format_id(ids.TRANSACTION, row.id),
        created_at=row.recorded_at,
        metadata={str(key): str(value) for key, value in row.metadata.items()},
        idempotency_key=row.idempotency_key,
        kind=row.kind,  # type: ignore[arg-type]
        template=row.template,
        effective_at=row.effective_at,
        recorded_at=row.recorded_at,
        description=row.description,
        reference=row.reference,
        pending_transaction_id=(
            ids.format_id(ids.TRANSACTION, row.pending_transaction_id) if row.pending_transaction_id else None
        ),
        reverses_transaction_id=(
            ids.format_id(ids.TRANSACTION, row.reverses_transaction_id) if row.reverses_transaction_id else None
        ),
        entries=[_entry(entry, row.recorded_at) for entry in row.entries],
    )


class BatchItemResult(ApiModel):
    index: int
    result: Literal["posted", "replayed", "rejected"]
    transaction: TransactionResource | None = None
    code: str | None = None
    field: str | None = None
    message: str | None = None


class BatchResult(ApiModel):
    object: Literal["ledger_batch_result"] = "ledger_batch_result"
    posted: int
    replayed: int
    rejected: int
    results: list[BatchItemResult]


class BalanceResource(ApiModel):
    object: Literal["ledger_balance"] = "ledger_balance"
    account_id: str
    unit: str
    normal_balance: Direction
    as_of: datetime | None
    balance: BalanceBody


class BalanceGroupResource(ApiModel):
    group: dict[str, str | None]
    unit: str
    account_count: int
    normal_balance: Direction | None
    balance: BalanceBody | None = Field(description="Present when the group's accounts share a normal balance.")
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int


class BalanceGroups(ApiModel):
    object: Literal["ledger_balance_groups"] = "ledger_balance_groups"
    group_by: list[str]
    data: list[BalanceGroupResource]


# ----- translation --------------------------------------------------------------------------------


def _account_uuid(text: str) -> uuid.UUID | None:
    return ids.parse_id(ids.ACCOUNT, text)


def _transaction_uuid(text: str) -> uuid.UUID:
    parsed = ids.parse_id(ids.TRANSACTION, text)
    if parsed is None:
        raise Rejected.because("transaction_not_found", "no such transaction for this tenant", "id")
    return parsed


def _key(body_key: str | None, header_key: str | None) -> str:
    key = body_key or header_key
    if not key:
        raise Rejected.because(
            "idempotency_key_required",
            "ledger writes need an idempotency_key in the body or an Idempotency-Key header",
            "idempotency_key",
        )
    return key


def _entry_input(entry: EntryBody) -> EntryInput:
    return EntryInput(
        account_id=_account_uuid(entry.account_id),
        direction=entry.direction,
        amount=entry.amount,
        amount_decimal=Decimal(entry.amount_decimal) if entry.amount_decimal is not None else None,
    )


def _transaction_input(body: CreateTransaction, header_key: str | None) -> TransactionInput:
    return TransactionInput(
        idempotency_key=_key(body.idempotency_key, header_key),
        entries=tuple(_entry_input(entry) for entry in body.entries),
        pending=body.pending,
        effective_at=body.effective_at,
        description=body.description,
        reference=body.reference,
        metadata=body.metadata,
    )


def _answer(response: Response, row: LedgerTransaction, replayed: bool) -> TransactionResource:
    response.status_code = 200 if replayed else 201
    return _transaction(row)


IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key", include_in_schema=False)]


# ----- accounts -----------------------------------------------------------------------------------


@router.post("/accounts", status_code=201, response_model=AccountResource, summary="Create (or get) an account")
def create_ledger_account(
    body: CreateAccount,
    response: Response,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> AccountResource:
    """Accounts are identified by code, unit and customer: creating an existing one returns it (200)."""
    row, created = create_account(
        tally.engine,
        principal.tenant_id,
        AccountInput(
            code=body.code,
            unit_code=body.unit,
            customer_id=body.customer_id,
            name=body.name,
            type=body.type,
            normal_balance=body.normal_balance,
            minimum_balance=body.minimum_balance,
            metadata=body.metadata,
        ),
    )
    response.status_code = 201 if created else 200
    return _account(row)


@router.get("/accounts", response_model=ListResponse[AccountResource], summary="List accounts, oldest first")
def list_ledger_accounts(
    request: Request,
    customer_id: str | None = None,
    code: str | None = None,
    unit: str | None = None,
    page: PageRequest = Depends(page_request(ids.ACCOUNT)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[AccountResource]:
    found = ledger_queries.list_accounts(
        tally.engine, principal.tenant_id, customer_id=customer_id, code=code, unit_code=unit, page=page
    )
    return list_response(found.map(_account), request)


@router.get("/accounts/{id}", response_model=AccountResource, summary="Get an account with its balance")
def get_ledger_account(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> AccountResource:
    return _account(ledger_queries.get_account(tally.engine, principal.tenant_id, _account_uuid(id)))


@router.get(
    "/accounts/{id}/balance", response_model=BalanceResource, summary="An account's balance, now or as of a time"
)
def get_ledger_balance(
    id: str,
    as_of: Annotated[datetime | None, Query(description="Effective time (ISO 8601 with offset).")] = None,
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> BalanceResource:
    found = ledger_queries.account_balance(tally.engine, principal.tenant_id, _account_uuid(id), as_of)
    return BalanceResource(
        account_id=ids.format_id(ids.ACCOUNT, found.account_id),
        unit=found.unit_code,
        normal_balance=found.normal_balance,
        as_of=as_of,
        balance=_balance(found.balances, found.normal_balance),
    )


@router.get("/balances", response_model=BalanceGroups, summary="Balances summed by type, code, customer or owner")
def get_ledger_balances(
    group_by: Annotated[list[Literal["type", "code", "customer", "owner"]], Query()] = ["type"],  # noqa: B006
    type: AccountType | None = None,
    customer_id: str | None = None,
    unit: str | None = None,
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> BalanceGroups:
    """Always per unit: amounts in different units are never added together."""
    groups = ledger_queries.aggregated_balances(
        tally.engine,
        principal.tenant_id,
        list(dict.fromkeys(group_by)),
        account_type=type.value if type else None,
        customer_id=customer_id,
        unit_code=unit,
    )
    return BalanceGroups(
        group_by=list(dict.fromkeys(group_by)),
        data=[
            BalanceGroupResource(
                group={name: (str(value) if value is not None else None) for name, value in group.key.items()},
                unit=group.unit_code,
                account_count=group.account_count,
                normal_balance=group.normal_balance,
                balance=_balance(group.balances, group.normal_balance) if group.normal_balance else None,
                debits_posted=group.balances.debits_posted,
                credits_posted=group.balances.credits_posted,
                debits_pending=group.balances.debits_pending,
                credits_pending=group.balances.credits_pending,
            )
            for group in groups
        ],
    )


# ----- transactions -------------------------------------------------------------------------------


@router.post(
    "/transactions",
    status_code=201,
    response_model=TransactionResource,
    summary="Post a transaction (201), or replay one (200)",
)
def create_ledger_transaction(
    body: CreateTransaction,
    response: Response,
    idempotency_key: IdempotencyHeader = None,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> TransactionResource:
    outcome = post_transaction(
        tally.engine, tally.clock, principal.tenant_id, _transaction_input(body, idempotency_key)
    )
    return _answer(response, outcome.unwrap(), outcome.replayed)


@router.post("/transactions/batch", response_model=BatchResult, summary="Post up to 1,000 transactions at once")
def create_ledger_transactions_batch(
    body: CreateBatch,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> BatchResult:
    """Items are independent and applied in order, each seeing the balances the earlier ones left.
    Each item needs its own `idempotency_key`. The answer lists one result per item, in order."""
    inputs: list[TransactionInput | None] = []
    early: dict[int, BatchItemResult] = {}
    for index, item in enumerate(body.transactions):
        try:
            inputs.append(_transaction_input(item, None))
        except Rejected as rejected:
            inputs.append(None)
            early[index] = _rejected_item(
                index, rejected.rejection.code, rejected.rejection.field, rejected.rejection.message
            )
    valid = [item for item in inputs if item is not None]
    outcomes = iter(post_batch(tally.engine, tally.clock, principal.tenant_id, valid) if valid else [])
    results = [early[index] if item is None else _item(index, next(outcomes)) for index, item in enumerate(inputs)]
    return BatchResult(
        posted=sum(result.result == "posted" for result in results),
        replayed=sum(result.result == "replayed" for result in results),
        rejected=sum(result.result == "rejected" for result in results),
        results=results,
    )


def _rejected_item(index: int, code: str, field: str | None, message: str) -> BatchItemResult:
    return BatchItemResult(
        index=index,
        result="rejected",
        code=code,
        field=f"transactions[{index}].{field}" if field else f"transactions[{index}]",
        message=message,
    )


def _item(index: int, outcome: Outcome) -> BatchItemResult:
    if outcome.rejection is not None:
        return _rejected_item(index, outcome.rejection.code, outcome.rejection.field, outcome.rejection.message)
    return BatchItemResult(
        index=index, result="replayed" if outcome.replayed else "posted", transaction=_transaction(outcome.unwrap())
    )


@router.get(
    "/transactions", response_model=ListResponse[TransactionResource], summary="List transactions, oldest first"
)
def list_ledger_transactions(
    request: Request,
    reference: str | None = None,
    page: PageRequest = Depends(page_request(ids.TRANSACTION)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[TransactionResource]:
    found = ledger_queries.list_transactions(tally.engine, principal.tenant_id, reference=reference, page=page)
    return list_response(found.map(_transaction), request)


@router.get("/transactions/{id}", response_model=TransactionResource, summary="Get a transaction with its entries")
def get_ledger_transaction(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> TransactionResource:
    return _transaction(ledger_queries.get_transaction(tally.engine, principal.tenant_id, _transaction_uuid(id)))


@router.post(
    "/transactions/{id}/post", status_code=201, response_model=TransactionResource, summary="Post a pending transaction"
)
def post_pending_transaction(
    id: str,
    body: PostPending,
    response: Response,
    idempotency_key: IdempotencyHeader = None,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> TransactionResource:
    """Posts it in full, or the given entries (at most the reserved amount per account and direction);
    the rest of the reservation is released. A pending transaction is resolved exactly once."""
    entries = None
    if body.entries is not None:
        entries = []
        for index, entry in enumerate(body.entries):
            if entry.amount is None:
                raise Rejected.because(
                    "amount_required", "partial posts give integer amounts", f"entries[{index}].amount"
                )
            account_id = _account_uuid(entry.account_id)
            entries.append(Entry(str(account_id) if account_id else "unknown", entry.direction, entry.amount))
    row, replayed = resolve_pending_transaction(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        ResolutionInput(
            pending_transaction_id=_transaction_uuid(id),
            idempotency_key=_key(body.idempotency_key, idempotency_key),
            entries=entries,
            effective_at=body.effective_at,
            description=body.description,
            metadata=body.metadata,
        ),
    )
    return _answer(response, row, replayed)


@router.post(
    "/transactions/{id}/void", status_code=201, response_model=TransactionResource, summary="Void a pending transaction"
)
def void_pending_transaction(
    id: str,
    body: VoidPending,
    response: Response,
    idempotency_key: IdempotencyHeader = None,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> TransactionResource:
    row, replayed = resolve_pending_transaction(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        ResolutionInput(
            pending_transaction_id=_transaction_uuid(id),
            idempotency_key=_key(body.idempotency_key, idempotency_key),
            void=True,
            effective_at=body.effective_at,
            description=body.description,
            metadata=body.metadata,
        ),
    )
    return _answer(response, row, replayed)


@router.post(
    "/transactions/{id}/reverse",
    status_code=201,
    response_model=TransactionResource,
    summary="Reverse a posted transaction",
)
def reverse_ledger_transaction(
    id: str,
    body: Reverse,
    response: Response,
    idempotency_key: IdempotencyHeader = None,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> TransactionResource:
    """The correction for a posted transaction: its entries again, in the opposite directions. Once."""
    row, replayed = reverse_transaction(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        ReversalInput(
            transaction_id=_transaction_uuid(id),
            idempotency_key=_key(body.idempotency_key, idempotency_key),
            effective_at=body.effective_at,
            description=body.description,
            metadata=body.metadata,
        ),
    )
    return _answer(response, row, replayed)


# ----- entries ------------------------------------------------------------------------------------


@router.get("/entries", response_model=ListResponse[EntryResource], summary="List entries, oldest first")
def list_ledger_entries(
    request: Request,
    account_id: str | None = None,
    transaction_id: str | None = None,
    customer_id: str | None = None,
    unit: str | None = None,
    phase: Literal["pending", "posted"] | None = None,
    effective_from: Annotated[datetime | None, Query(description="Inclusive.")] = None,
    effective_to: Annotated[datetime | None, Query(description="Exclusive.")] = None,
    page: PageRequest = Depends(page_request(ids.ENTRY)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[EntryResource]:
    # An unparsable id filters to nothing, as an unknown id would.
    nothing = uuid.UUID(int=0)
    entry_filter = ledger_queries.EntryFilter(
        account_id=(_account_uuid(account_id) or nothing) if account_id else None,
        transaction_id=(ids.parse_id(ids.TRANSACTION, transaction_id) or nothing) if transaction_id else None,
        customer_id=customer_id,
        unit_code=unit,
        phase=phase,
        effective_from=effective_from,
        effective_to=effective_to,
    )
    found = ledger_queries.list_entries(tally.engine, principal.tenant_id, entry_filter, page)
    return list_response(found.map(_entry), request)
