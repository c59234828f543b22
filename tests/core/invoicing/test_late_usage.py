"""Where late usage goes (`tally.core.invoicing.late_usage`): tables for the policy, the split, and
the resolution of flags."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from tally.core.invoicing import (
    BEYOND_HORIZON,
    NO_CHANGE,
    BilledLine,
    LateFlag,
    LateUsagePolicy,
    flag_resolutions,
    parse_late_usage_policy,
    propose,
    reconcile,
)
from tally.core.rejections import Rejected
from tests.core.invoicing.builders import TOKENS_ITEM, brief, context, readings, record, started, subscription
from tests.core.subscriptions.builders import utc

FEB, MAR = utc(2026, 2, 1), utc(2026, 3, 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("next_invoice", LateUsagePolicy.NEXT_INVOICE), ("separate", LateUsagePolicy.SEPARATE)],
)
def test_known_policies_parse(value: str, expected: LateUsagePolicy) -> None:
    assert parse_late_usage_policy(value) is expected


@pytest.mark.parametrize("value", ["weekly", "", "SEPARATE", " separate", None, 1, ["separate"]])
def test_unknown_policies_are_refused_with_one_code(value: object) -> None:
    with pytest.raises(Rejected) as refused:
        parse_late_usage_policy(value)
    assert (refused.value.rejection.code, refused.value.rejection.field) == (
        "late_usage_policy_unknown",
        "late_usage_policy",
    )


def _january_billed(tokens: int) -> tuple[object, tuple[BilledLine, ...]]:
    """A usage-only subscription whose January was billed for `tokens`, on invoice `in-jan`."""
    month = subscription(started(TOKENS_ITEM), through=FEB)
    first = propose(context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": tokens})))
    billed = tuple(dataclasses.replace(line, invoice_id="in-jan") for line in record((), first))
    return month, billed


def _split(tokens_now: int, policy: LateUsagePolicy, creditable: dict[str, int] | None = None) -> object:
    month, billed = _january_billed(251_000)
    ctx = context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": tokens_now}), billed=billed)
    reconciled = reconcile(ctx)
    return reconciled, reconciled.split(policy, creditable)


@pytest.mark.parametrize(
    ("tokens_now", "policy", "creditable", "regular", "extra", "credited"),
    [
        # next_invoice: the difference, up or down, is on the next invoice as today.
        (301_000, LateUsagePolicy.NEXT_INVOICE, None, [50000], [], []),
        (1_000, LateUsagePolicy.NEXT_INVOICE, None, [-250000], [], []),
        # separate: more is an extra invoice; less a credit against January's invoice...
        (301_000, LateUsagePolicy.SEPARATE, None, [], [50000], []),
        (1_000, LateUsagePolicy.SEPARATE, {"in-jan": 250000}, [], [], [("in-jan", 250000)]),
        # ...unless January's invoice cannot credit that much: then the next invoice carries it whole.
        (1_000, LateUsagePolicy.SEPARATE, {"in-jan": 249999}, [-250000], [], []),
        (1_000, LateUsagePolicy.SEPARATE, {}, [-250000], [], []),
        # no difference, nothing anywhere
        (251_000, LateUsagePolicy.SEPARATE, None, [], [], []),
    ],
)
def test_late_lines_go_where_the_policy_says(
    tokens_now: int,
    policy: LateUsagePolicy,
    creditable: dict[str, int] | None,
    regular: list[int],
    extra: list[int],
    credited: list[tuple[str, int]],
) -> None:
    reconciled, split = _split(tokens_now, policy, creditable)
    assert [line.amount_minor for line in split.regular.lines] == regular  # type: ignore[attr-defined]
    assert [line.amount_minor for line in split.extra.lines] == extra  # type: ignore[attr-defined]
    assert [(c.invoice_id, c.amount_minor) for c in split.credits] == credited  # type: ignore[attr-defined]
    # Every reconciled line lands in exactly one place.
    assert sorted(brief(split.lines)) == sorted(brief(reconciled.lines))  # type: ignore[attr-defined]


def test_next_invoice_is_exactly_the_proposal_of_today() -> None:
    month, billed = _january_billed(251_000)
    ctx = context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 301_000}), billed=billed)
    assert reconcile(ctx).split(LateUsagePolicy.NEXT_INVOICE).regular == propose(ctx)


def test_a_period_never_billed_in_full_is_not_late() -> None:
    month = subscription(started(TOKENS_ITEM), through=FEB)
    ctx = context(FEB, subscriptions=(month,), usage=readings(month, {"tokens": 10_000}))
    split = reconcile(ctx).split(LateUsagePolicy.SEPARATE)
    assert (len(split.regular.lines), split.extra.lines, split.credits) == (1, (), ())


def _at(day: int, month: int = 1) -> datetime:
    return utc(2026, month, day)


def test_flags_are_resolved_by_where_their_period_went() -> None:
    month = subscription(started(TOKENS_ITEM), through=MAR)
    _, billed = _january_billed(251_000)
    # Through March 1 January and February are due; only February is measured again (January is
    # beyond the horizon), with a difference for February.
    february_only = tuple(r for r in readings(month, {"tokens": 301_000}) if r.period.start == FEB)
    ctx = context(MAR, subscriptions=(month,), usage=february_only, billed=billed)
    lines = propose(ctx).lines
    placed = [(line, "invoice:next") for line in lines]
    flags = [
        LateFlag("jan", _at(20)),  # January: billed in full, not measured again
        LateFlag("feb", _at(10, 2)),  # February: measured, billed on the next invoice
        LateFlag("before", utc(2025, 12, 20)),  # before the subscription: nothing billable
    ]
    assert flag_resolutions(ctx, flags, placed) == {
        "jan": BEYOND_HORIZON,
        "feb": "invoice:next",
        "before": NO_CHANGE,
    }
    # Measured again, nothing to bill (the run placed no line for it): no_change.
    assert flag_resolutions(ctx, [LateFlag("feb", _at(10, 2))], []) == {"feb": NO_CHANGE}


def test_a_flag_in_a_period_under_way_stays_open() -> None:
    month = subscription(started(TOKENS_ITEM), through=utc(2026, 2, 15))
    ctx = context(utc(2026, 2, 15), subscriptions=(month,), usage=readings(month, {"tokens": 1}))
    assert flag_resolutions(ctx, [LateFlag("now", _at(10, 2))], []) == {}
