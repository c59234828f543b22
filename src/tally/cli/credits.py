"""`tally coupon …`, `tally credit …`, `tally commitment create`, `tally tax-rate …`: the terms a
customer is billed under besides its subscriptions. Customers are named by `cus_…` or external id."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import typer
from rich.table import Table

from tally.adapters import ids
from tally.cli._context import audit, console, fail, open_tally, rejections_as_errors, resolve_customer, resolve_tenant

coupons_app = typer.Typer(help="Coupons: create, list, redeem, archive.", no_args_is_help=True)
credits_app = typer.Typer(help="Credit grants: grant, list, expire; the expiry job.", no_args_is_help=True)
commitments_app = typer.Typer(help="Minimum commitments.", no_args_is_help=True)
tax_rates_app = typer.Typer(help="Tax rates: create, retire.", no_args_is_help=True)

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")


def _parsed(prefix: str, text: str, code: str) -> uuid.UUID:
    parsed = ids.parse_id(prefix, text)
    if parsed is None:
        fail(code, f"{text!r} is not a {prefix}_… id")
    return parsed


@coupons_app.command("create")
def create_coupon(
    code: str,
    percent_off: str | None = typer.Option(None, "--percent-off"),
    amount_off_minor: int | None = typer.Option(None, "--amount-off-minor"),
    currency: str | None = typer.Option(None, "--currency"),
    duration: str = typer.Option("once", "--duration", help="once, repeating or forever."),
    periods: int | None = typer.Option(None, "--periods", help="Repeating: how many periods."),
    plan: list[str] = typer.Option([], "--plan", help="Only this plan (code); repeatable."),
    tenant: str | None = TenantOption,
) -> None:
    """Create a coupon (percent or amount off)."""
    from tally.app.create_coupon import CouponInput
    from tally.app.create_coupon import create_coupon as create

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        row = create(
            tally.engine,
            tally.clock,
            tenant_id,
            CouponInput(
                code=code,
                duration=duration,
                duration_periods=periods,
                percent_off=None if percent_off is None else Decimal(percent_off),
                amount_off_minor=amount_off_minor,
                currency=currency,
                plan_codes=tuple(plan),
            ),
        )
        coupon = ids.format_id(ids.COUPON, row.id)
        audit(tally, tenant_id, "coupon.create", "coupon", coupon)
        console.print(f"{coupon} {row.code}")


@coupons_app.command("redeem")
def redeem(
    coupon: str,
    customer: str,
    tenant: str | None = TenantOption,
) -> None:
    """Redeem a coupon (`coupon_…` or its code) for a customer, at the customer's now."""
    from tally.adapters.postgres import invoicing_terms as store
    from tally.adapters.postgres.connections import psycopg_transaction
    from tally.app.redeem_coupon import RedemptionInput, redeem_coupon

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        coupon_id = ids.parse_id(ids.COUPON, coupon)
        if coupon_id is None:
            with psycopg_transaction(tally.engine) as connection:
                found = store.get_coupon_by_code(connection, tenant_id, coupon)
            if found is None:
                fail("coupon_not_found", f"no coupon {coupon!r}")
            coupon_id = found.id
        row = redeem_coupon(
            tally.engine,
            tally.clock,
            tenant_id,
            RedemptionInput(coupon_id=coupon_id, customer_id=resolve_customer(tally, tenant_id, customer)),
        )
        redemption = ids.format_id(ids.COUPON_REDEMPTION, row.id)
        audit(tally, tenant_id, "coupon_redemption.create", "coupon_redemption", redemption)
        console.print(redemption)


@credits_app.command("grant")
def grant(
    customer: str,
    amount_minor: int,
    kind: str = typer.Option("prepaid", "--kind", help="prepaid or promotional."),
    unit: str | None = typer.Option(None, "--unit", help="Default: the customer's currency."),
    expires_at: datetime | None = typer.Option(None, "--expires-at"),
    priority: int = typer.Option(0, "--priority", help="Lower burns first."),
    tenant: str | None = TenantOption,
) -> None:
    """Grant credits; posts `credits_granted` (prepaid against cash, promotional against promotions)."""
    from tally.app.grant_credits import GrantInput, grant_credits

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        row = grant_credits(
            tally.engine,
            tally.clock,
            tenant_id,
            GrantInput(
                customer_id=resolve_customer(tally, tenant_id, customer),
                kind=kind,
                amount_minor=amount_minor,
                unit=unit,
                expires_at=expires_at,
                priority=priority,
            ),
        )
        grant_id = ids.format_id(ids.CREDIT_GRANT, row.id)
        audit(tally, tenant_id, "credit_grant.create", "credit_grant", grant_id)
        console.print(f"{grant_id} {row.remaining_minor} {row.unit}")


@credits_app.command("list")
def list_grants(customer: str, tenant: str | None = TenantOption) -> None:
    """A customer's grants with what is left of each (its ledger balance)."""
    from tally.adapters.pagination import LIMIT_MAX, PageRequest
    from tally.app.invoicing_term_queries import list_terms

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        page = list_terms(
            tally.engine,
            tenant_id,
            "credit_grant",
            PageRequest(limit=LIMIT_MAX),
            customer_id=resolve_customer(tally, tenant_id, customer),
        )
        table = Table(title="credit grants")
        for column in ("grant", "kind", "unit", "amount", "remaining", "priority", "expires"):
            table.add_column(column)
        for row in page.items:
            expires = row.expires_effectively_at
            table.add_row(
                ids.format_id(ids.CREDIT_GRANT, row.id),
                row.kind,
                row.unit,
                str(row.amount_minor),
                str(row.remaining_minor),
                str(row.priority),
                "" if expires is None else expires.isoformat(),
            )
        console.print(table)


@credits_app.command("expire")
def expire(grant_id: str, tenant: str | None = TenantOption) -> None:
    """Expire a grant now: what is left is posted as `credits_expired`."""
    from tally.app.end_credit_grant import end_credit_grant

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        row = end_credit_grant(
            tally.engine, tally.clock, tenant_id, _parsed(ids.CREDIT_GRANT, grant_id, "credit_grant_not_found")
        )
        audit(tally, tenant_id, "credit_grant.expire", "credit_grant", grant_id)
        console.print(f"{grant_id} expired; {row.remaining_minor} left")


@credits_app.command("expire-due")
def expire_due(tenant: str | None = TenantOption) -> None:
    """Run the expiry job now for the tenant (what the worker does on `credit_expiry_cron`)."""
    from tally.app.expire_credit_grants import expire_credit_grants

    with open_tally() as tally, rejections_as_errors():
        result = expire_credit_grants(tally.engine, tally.clock, tenant_id=resolve_tenant(tally, tenant))
        console.print(f"{result.grants_expired} grants expired")


@commitments_app.command("create")
def create_commitment(
    customer: str,
    minimum_minor: int,
    period_start: datetime = typer.Option(..., "--from"),
    period_end: datetime = typer.Option(..., "--to"),
    tenant: str | None = TenantOption,
) -> None:
    """A minimum spend over [from, to); the shortfall is billed when the period ends."""
    from tally.app.create_commitment import CommitmentInput
    from tally.app.create_commitment import create_commitment as create

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        row = create(
            tally.engine,
            tally.clock,
            tenant_id,
            CommitmentInput(
                customer_id=resolve_customer(tally, tenant_id, customer),
                minimum_minor=minimum_minor,
                period_start=period_start,
                period_end=period_end,
            ),
        )
        commitment = ids.format_id(ids.COMMITMENT, row.id)
        audit(tally, tenant_id, "commitment.create", "commitment", commitment)
        console.print(commitment)


@tax_rates_app.command("create")
def create_tax_rate(
    name: str,
    percent: str,
    customer: str | None = typer.Option(None, "--customer", help="Default: the tenant's default rate."),
    product: str | None = typer.Option(None, "--product"),
    tenant: str | None = TenantOption,
) -> None:
    """A tax rate for a customer (or the tenant's default), optionally for one product."""
    from tally.app.create_tax_rate import TaxRateInput
    from tally.app.create_tax_rate import create_tax_rate as create

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        row = create(
            tally.engine,
            tally.clock,
            tenant_id,
            TaxRateInput(
                name=name,
                percent=Decimal(percent),
                customer_id=None if customer is None else resolve_customer(tally, tenant_id, customer),
                product=product,
            ),
        )
        rate = ids.format_id(ids.TAX_RATE, row.id)
        audit(tally, tenant_id, "tax_rate.create", "tax_rate", rate)
        console.print(rate)


@tax_rates_app.command("retire")
def retire(rate_id: str, tenant: str | None = TenantOption) -> None:
    """Invoices computed from now on no longer apply the rate."""
    from tally.app.retire_tax_rate import retire_tax_rate

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        retire_tax_rate(tally.engine, tally.clock, tenant_id, _parsed(ids.TAX_RATE, rate_id, "tax_rate_not_found"))
        audit(tally, tenant_id, "tax_rate.retire", "tax_rate", rate_id)
        console.print(f"{rate_id} retired")
