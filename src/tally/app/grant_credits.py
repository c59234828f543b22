"""Grant credits to a customer: prepaid (bought) or promotional (given), in money or a custom credit
unit, with an effective date, an optional expiry, a priority and a scope.

In one transaction under the customer's invoicing lock, the grant row and its `credits_granted`
posting are written together: the grant's own account `customer_credit.grant_<id>` (the customer's
credit liability) is credited with the grant, against cash for prepaid credits (the price the
customer paid outside an invoice: its value, or `price_minor` for a custom unit) or the promotions
expense for promotional ones. From then on what is left of the grant is that account's balance.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import catalog as catalog_store
from tally.adapters.postgres import invoicing_terms as store
from tally.app._invoicing import post_in
from tally.app._invoicing_terms import Locked, grant_of, grant_reference, locked, mark_customer_due
from tally.core.invoicing import GrantKind, ScopeKind, credits_granted
from tally.core.rejections import Rejected

SCOPE_IDS_MAX = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantInput:
    customer_id: uuid.UUID
    kind: str
    amount_minor: int
    unit: str | None = None  # default: the customer's currency
    effective_at: datetime | None = None  # default: the customer's now
    expires_at: datetime | None = None
    priority: int = 0
    scope_kind: str = ScopeKind.ALL.value
    scope_ids: tuple[str, ...] = field(default_factory=tuple)  # catalog price UUIDs or meter codes
    value_per_unit: Decimal | None = None
    value_currency: str | None = None
    price_minor: int | None = None  # a prepaid grant in a custom unit: what the customer paid


def grant_credits(engine: Engine, clock: Clock, tenant_id: uuid.UUID, request: GrantInput) -> store.GrantRow:
    if request.kind not in GrantKind.__members__.values():
        raise Rejected.because("grant_kind_invalid", "a grant is prepaid or promotional", "kind")
    if request.scope_kind not in ScopeKind.__members__.values():
        raise Rejected.because("scope_kind_invalid", "a scope is all, usage, prices or meters", "scope.kind")
    if len(request.scope_ids) > SCOPE_IDS_MAX:
        raise Rejected.because("scope_ids_exceed_limit", f"a scope lists at most {SCOPE_IDS_MAX} ids", "scope.ids")

    def act(here: Locked) -> store.GrantRow:
        connection = here.connection
        if here.customer.currency is None:
            raise Rejected.because("customer_currency_required", "the customer has no billing currency", "customer")
        if request.scope_kind == ScopeKind.PRICES.value:
            for price_id in request.scope_ids:
                parsed = _uuid(price_id)
                if parsed is None or catalog_store.get_price(connection, tenant_id, parsed) is None:
                    raise Rejected.because("price_not_found", "no such price", "scope.ids")
        row = store.GrantRow(
            id=new_id(),
            tenant_id=tenant_id,
            customer_id=here.customer.id,
            kind=request.kind,
            unit=request.unit or here.customer.currency,
            amount_minor=request.amount_minor,
            value_per_unit=request.value_per_unit,
            value_currency=request.value_currency,
            effective_at=request.effective_at or here.now,
            expires_at=request.expires_at,
            priority=request.priority,
            scope={"kind": request.scope_kind, "ids": sorted(set(request.scope_ids))},
            recorded_at=here.now,
            ledger_transaction_id=None,
            ended_at=None,
            remaining_minor=0,
        )
        grant = grant_of(row, here.unit)  # the core checks the grant, field by field
        if grant.money.code != here.customer.currency:
            raise Rejected.because(
                "grant_currency_must_match_customer",
                f"the grant pays in {grant.money.code}; the customer is billed in {here.customer.currency}",
                "unit",
            )
        if request.price_minor is not None and not (grant.unit.is_custom and grant.kind is GrantKind.PREPAID):
            raise Rejected.because(
                "grant_price_not_allowed", "only a prepaid grant in a custom unit has a price", "price_minor"
            )
        if request.price_minor is not None and request.price_minor < 0:
            raise Rejected.because("grant_price_must_not_be_negative", "a price is zero or more", "price_minor")
        posting = credits_granted(here.customer.external_id, grant, price_minor=request.price_minor, paid_into="cash")
        reference = grant_reference(row.id)
        (transaction_id,) = post_in(
            here.engine,
            connection,
            here.clock,
            tenant_id,
            [posting],
            key_prefix=f"{reference}:granted",
            effective_at=here.now,
            reference=reference,
        )
        store.insert_grant(connection, dataclasses.replace(row, ledger_transaction_id=transaction_id))
        mark_customer_due(connection, tenant_id, here.customer.id, here.now)
        found = store.get_grant(connection, tenant_id, row.id)
        if found is None:  # pragma: no cover - just written
            raise RuntimeError("grant vanished")
        return found

    return locked(engine, clock, tenant_id, request.customer_id, act)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
