"""The chart of accounts: the accounts tally's posting templates use, per tenant and unit.

A code names an account's role. Platform accounts exist once per tenant and unit; customer accounts
once per tenant, unit and customer. A code may carry a sub-key after a dot (`revenue.api_calls`) to
split a role, e.g. revenue per product; the part before the dot picks the chart entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tally.core.ledger.model import AccountType, Direction
from tally.core.rejections import Rejected


class Owner(StrEnum):
    PLATFORM = "platform"
    CUSTOMER = "customer"


@dataclass(frozen=True, slots=True)
class ChartAccount:
    code: str
    name: str
    type: AccountType
    normal_balance: Direction
    owner: Owner
    minimum_balance: int | None = None


def _entry(
    code: str,
    name: str,
    account_type: AccountType,
    owner: Owner,
    *,
    contra: bool = False,
    floor: int | None = None,
) -> ChartAccount:
    normal = account_type.default_normal_balance
    return ChartAccount(code, name, account_type, normal.opposite() if contra else normal, owner, floor)


CHART: dict[str, ChartAccount] = {
    chart_account.code: chart_account
    for chart_account in (
        _entry("cash", "Cash", AccountType.ASSET, Owner.PLATFORM),
        _entry("processor_clearing", "Payment processor clearing", AccountType.ASSET, Owner.PLATFORM),
        _entry("accounts_receivable", "Accounts receivable", AccountType.ASSET, Owner.CUSTOMER),
        # What a customer may still spend: it must never be overdrawn.
        _entry("customer_credit", "Customer credit", AccountType.LIABILITY, Owner.CUSTOMER, floor=0),
        _entry("deferred_revenue", "Deferred revenue", AccountType.LIABILITY, Owner.PLATFORM),
        _entry("tax_payable", "Tax payable", AccountType.LIABILITY, Owner.PLATFORM),
        _entry("revenue", "Revenue", AccountType.REVENUE, Owner.PLATFORM),
        _entry("breakage_revenue", "Breakage revenue", AccountType.REVENUE, Owner.PLATFORM),
        _entry("discounts", "Discounts", AccountType.REVENUE, Owner.PLATFORM, contra=True),
        _entry("promotions", "Promotional credits", AccountType.EXPENSE, Owner.PLATFORM),
        _entry("processor_fees", "Payment processor fees", AccountType.EXPENSE, Owner.PLATFORM),
        _entry("dispute_losses", "Dispute losses", AccountType.EXPENSE, Owner.PLATFORM),
        _entry("opening_balance_equity", "Opening balance equity", AccountType.EQUITY, Owner.PLATFORM),
        # Where a custom credit unit turns into money: each unit balances on its own in a transaction.
        _entry("unit_conversion", "Unit conversion", AccountType.EQUITY, Owner.PLATFORM),
    )
}


def chart_account(code: str) -> ChartAccount:
    """The chart entry for `code` (sub-keys allowed), or a rejection `account_code_must_be_in_chart`."""
    base = code.split(".", 1)[0]
    found = CHART.get(base)
    if found is None:
        raise Rejected.because(
            "account_code_must_be_in_chart",
            f"{base!r} is not in the chart of accounts; give type and normal_balance for a custom account",
            "code",
        )
    return found


def check_owner(entry: ChartAccount, customer_id: str | None) -> None:
    if entry.owner is Owner.CUSTOMER and customer_id is None:
        raise Rejected.because("customer_id_required", f"{entry.code} accounts belong to a customer", "customer_id")
    if entry.owner is Owner.PLATFORM and customer_id is not None:
        raise Rejected.because(
            "customer_id_must_be_empty",
            f"{entry.code} is a platform account, not a customer's",
            "customer_id",
        )
