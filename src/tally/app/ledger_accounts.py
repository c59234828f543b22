"""Create ledger accounts (get-or-create on their identity), and custom units to keep them in.

An account's identity is (code, unit, customer). Creating one that exists with the same attributes
returns it; with different attributes it is refused, naming the first field that differs.
Chart-of-accounts codes take their type, normal balance and floor from the chart.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Engine

from tally.adapters.ids import new_id
from tally.adapters.postgres import ledger as store
from tally.adapters.postgres.connections import psycopg_transaction, run_in_transaction
from tally.core import money
from tally.core.ledger.chart import CHART, chart_account, check_owner
from tally.core.ledger.model import AccountType, Direction
from tally.core.ledger.templates import AccountRef
from tally.core.rejections import Rejected

LedgerAccount = store.AccountRow
NAME_LENGTH_MAX = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountInput:
    code: str
    unit_code: str
    customer_id: str | None = None
    name: str | None = None
    type: AccountType | None = None
    normal_balance: Direction | None = None
    minimum_balance: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Resolved:
    code: str
    name: str
    type: AccountType
    normal_balance: Direction
    minimum_balance: int | None


def _resolve(account: AccountInput) -> _Resolved:
    """Decide the account's attributes: from the chart for chart codes, from the input otherwise."""
    base = account.code.split(".", 1)[0]
    if base in CHART:
        chart = chart_account(account.code)
        check_owner(chart, account.customer_id)
        if account.type is not None and account.type is not chart.type:
            raise Rejected.because("account_type_must_match_chart", f"{base} accounts are {chart.type}", "type")
        if account.normal_balance is not None and account.normal_balance is not chart.normal_balance:
            raise Rejected.because(
                "normal_balance_must_match_chart",
                f"{base} accounts have a {chart.normal_balance} normal balance",
                "normal_balance",
            )
        if account.minimum_balance is not None and account.minimum_balance != chart.minimum_balance:
            raise Rejected.because(
                "minimum_balance_must_match_chart", f"{base} accounts have a fixed floor", "minimum_balance"
            )
        return _Resolved(
            account.code, account.name or chart.name, chart.type, chart.normal_balance, chart.minimum_balance
        )
    if account.type is None:
        raise Rejected.because("account_type_required", "a code outside the chart of accounts needs a type", "type")
    normal = account.normal_balance or account.type.default_normal_balance
    return _Resolved(account.code, account.name or account.code, account.type, normal, account.minimum_balance)


def resolve_unit(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, code: str) -> money.Unit:
    """An ISO 4217 currency, or a custom unit the tenant declared."""
    if code in money.ISO_4217_MINOR_UNITS:
        return money.currency(code)
    row = connection.execute("SELECT scale FROM units WHERE tenant_id = %s AND code = %s", (tenant_id, code)).fetchone()
    if row is None:
        raise Rejected.because(
            "unit_must_be_known",
            f"{code!r} is neither an ISO 4217 currency nor a unit of this tenant",
            "unit",
        )
    return money.Unit(code=code, scale=row[0], is_custom=True)


def _validate(account: AccountInput) -> None:
    if not store.ACCOUNT_CODE.match(account.code):
        raise Rejected.because(
            "account_code_must_be_lower_snake_case",
            "codes are lower_snake_case, optionally with dot-separated sub-keys (revenue.api_calls)",
            "code",
        )
    if account.name is not None and not 1 <= len(account.name) <= NAME_LENGTH_MAX:
        raise Rejected.because("name_length_must_be_1_to_200", "names have 1 to 200 characters", "name")
    if account.customer_id is not None and not 1 <= len(account.customer_id) <= 255:
        raise Rejected.because(
            "customer_id_length_must_be_1_to_255", "customer ids have 1 to 255 characters", "customer_id"
        )
    if account.minimum_balance is not None and abs(account.minimum_balance) > money.AMOUNT_MINOR_MAX:
        raise Rejected.because("minimum_balance_out_of_range", "the floor must fit in 64 bits", "minimum_balance")


def create_account(engine: Engine, tenant_id: uuid.UUID, account: AccountInput) -> tuple[LedgerAccount, bool]:
    """Get or create the account; returns it and whether it was created now."""
    _validate(account)
    resolved = _resolve(account)

    def work(connection: psycopg.Connection[Any]) -> tuple[LedgerAccount, bool]:
        unit = resolve_unit(connection, tenant_id, account.unit_code)
        return _get_or_create(connection, tenant_id, account, resolved, unit)

    return run_in_transaction(engine, work)


def _get_or_create(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    account: AccountInput,
    resolved: _Resolved,
    unit: money.Unit,
) -> tuple[LedgerAccount, bool]:
    inserted = connection.execute(
        f"""INSERT INTO ledger_accounts (id, tenant_id, code, name, type, normal_balance, unit_code, unit_scale,
                                         customer_id, minimum_balance, metadata)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (tenant_id, code, unit_code, coalesce(customer_id, '')) DO NOTHING
            RETURNING {store.ACCOUNT_COLUMNS}""",
        (
            new_id(),
            tenant_id,
            resolved.code,
            resolved.name,
            resolved.type.value,
            resolved.normal_balance.value,
            unit.code,
            unit.scale,
            account.customer_id,
            resolved.minimum_balance,
            Jsonb(account.metadata),
        ),
    ).fetchone()
    if inserted is not None:
        return store.AccountRow(*inserted), True
    existing = store.find_account_by_identity(connection, tenant_id, resolved.code, unit.code, account.customer_id)
    if existing is None:  # pragma: no cover - the conflict row cannot vanish: accounts are never deleted
        raise Rejected.because("account_identity_conflict", "retry the request", "code")
    differences = (
        ("type", existing.type, resolved.type.value),
        ("normal_balance", existing.normal_balance, resolved.normal_balance.value),
        ("minimum_balance", existing.minimum_balance, resolved.minimum_balance),
        ("name", existing.name, resolved.name),
        ("metadata", existing.metadata, account.metadata),
    )
    for name, before, after in differences:
        if before != after:
            raise Rejected.because(
                f"account_exists_with_different_{name}",
                f"an account with this code, unit and customer exists with a different {name.replace('_', ' ')}",
                name,
            )
    return existing, False


def ensure_accounts(engine: Engine, tenant_id: uuid.UUID, refs: list[AccountRef]) -> dict[AccountRef, LedgerAccount]:
    """The chart accounts named by `refs`, created on first use (for posting templates)."""
    found: dict[AccountRef, LedgerAccount] = {}
    with psycopg_transaction(engine) as connection:
        for ref in refs:
            row = store.find_account_by_identity(connection, tenant_id, ref.code, ref.unit_code, ref.customer_id)
            if row is not None:
                found[ref] = row
    for ref in refs:
        if ref not in found:
            found[ref], _ = create_account(
                engine,
                tenant_id,
                AccountInput(code=ref.code, unit_code=ref.unit_code, customer_id=ref.customer_id),
            )
    return found


@dataclass(frozen=True, slots=True)
class UnitRecord:
    code: str
    scale: int
    name: str


def create_unit(engine: Engine, tenant_id: uuid.UUID, code: str, scale: int, name: str) -> tuple[UnitRecord, bool]:
    """Declare a custom unit (credits, tokens). Idempotent on the code; a different scale is refused."""
    unit = money.custom_unit(code, scale)
    if not 1 <= len(name) <= NAME_LENGTH_MAX:
        raise Rejected.because("name_length_must_be_1_to_200", "names have 1 to 200 characters", "name")

    def work(connection: psycopg.Connection[Any]) -> tuple[UnitRecord, bool]:
        inserted = connection.execute(
            "INSERT INTO units (tenant_id, code, scale, name) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING code",
            (tenant_id, unit.code, unit.scale, name),
        ).fetchone()
        row = connection.execute(
            "SELECT code, scale, name FROM units WHERE tenant_id = %s AND code = %s", (tenant_id, unit.code)
        ).fetchone()
        if row is None:  # pragma: no cover - just inserted or already there
            raise Rejected.because("unit_must_be_known", "retry the request", "code")
        record = UnitRecord(*row)
        if record.scale != unit.scale:
            raise Rejected.because("unit_exists_with_different_scale", "a unit's scale never changes", "scale")
        return record, inserted is not None

    return run_in_transaction(engine, work)
