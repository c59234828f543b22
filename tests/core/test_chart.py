from __future__ import annotations

import pytest

from tally.core.ledger.chart import CHART, Owner, chart_account, check_owner
from tally.core.ledger.model import AccountType, Direction
from tally.core.rejections import Rejected


@pytest.mark.parametrize(
    ("code", "account_type", "normal", "owner"),
    [
        ("accounts_receivable", AccountType.ASSET, Direction.DEBIT, Owner.CUSTOMER),
        ("customer_credit", AccountType.LIABILITY, Direction.CREDIT, Owner.CUSTOMER),
        ("deferred_revenue", AccountType.LIABILITY, Direction.CREDIT, Owner.PLATFORM),
        ("revenue.api_calls", AccountType.REVENUE, Direction.CREDIT, Owner.PLATFORM),
        ("discounts", AccountType.REVENUE, Direction.DEBIT, Owner.PLATFORM),  # contra-revenue
        ("promotions", AccountType.EXPENSE, Direction.DEBIT, Owner.PLATFORM),
        ("processor_clearing", AccountType.ASSET, Direction.DEBIT, Owner.PLATFORM),
        ("tax_payable", AccountType.LIABILITY, Direction.CREDIT, Owner.PLATFORM),
        ("breakage_revenue", AccountType.REVENUE, Direction.CREDIT, Owner.PLATFORM),
    ],
)
def test_chart_entries(code: str, account_type: AccountType, normal: Direction, owner: Owner) -> None:
    entry = chart_account(code)
    assert (entry.type, entry.normal_balance, entry.owner) == (account_type, normal, owner)


def test_customer_credit_can_never_be_overdrawn() -> None:
    assert CHART["customer_credit"].minimum_balance == 0


def test_unknown_codes_and_wrong_owners_are_rejected() -> None:
    with pytest.raises(Rejected) as error:
        chart_account("widgets")
    assert error.value.rejection.code == "account_code_must_be_in_chart"
    with pytest.raises(Rejected) as error:
        check_owner(CHART["accounts_receivable"], None)
    assert error.value.rejection.code == "customer_id_required"
    with pytest.raises(Rejected) as error:
        check_owner(CHART["revenue"], "cus_1")
    assert error.value.rejection.code == "customer_id_must_be_empty"
