"""Corrections in the core: effective properties and idempotent decisions."""

from __future__ import annotations

import pytest

from tally.core.metering.corrections import (
    REASON_LENGTH_MAX,
    Correction,
    check_reason,
    decide_correction,
    effective_properties,
)
from tally.core.rejections import Rejection

RETRACT = Correction("retract", None)


def amend(text: str) -> Correction:
    return Correction("amend", text)


@pytest.mark.parametrize(
    ("corrections", "effective"),
    [
        ([], '{"a":1}'),
        ([amend('{"a":2}')], '{"a":2}'),
        ([amend('{"a":2}'), amend('{"a":3}')], '{"a":3}'),
        ([amend('{"a":2}'), RETRACT], None),
        ([RETRACT], None),
    ],
)
def test_effective_properties(corrections: list[Correction], effective: str | None) -> None:
    assert effective_properties('{"a":1}', corrections) == effective


def test_retracting_twice_answers_the_first_retraction() -> None:
    assert decide_correction([], "retract", None) is None
    assert decide_correction([amend("{}"), RETRACT], "retract", None) == 1


def test_a_retracted_event_cannot_be_amended() -> None:
    decision = decide_correction([RETRACT], "amend", "{}")
    assert isinstance(decision, Rejection) and decision.code == "event_already_retracted"


def test_amending_with_the_latest_properties_answers_that_amendment() -> None:
    corrections = [amend('{"a":2}'), amend('{"a":3}')]
    assert decide_correction(corrections, "amend", '{"a":3}') == 1
    assert decide_correction(corrections, "amend", '{"a":2}') is None  # back to an earlier value: a new fact
    assert decide_correction([], "amend", '{"a":1}') is None


def test_the_kind_and_properties_must_agree() -> None:
    with pytest.raises(ValueError):
        decide_correction([], "amend", None)
    with pytest.raises(ValueError):
        decide_correction([], "retract", "{}")


@pytest.mark.parametrize(
    ("reason", "code"),
    [(1, "reason_must_be_string"), ("x" * (REASON_LENGTH_MAX + 1), "reason_too_long"), ("a\x00", "reason_invalid")],
)
def test_reasons_are_checked(reason: object, code: str) -> None:
    checked = check_reason(reason)
    assert isinstance(checked, Rejection) and checked.code == code


def test_a_reason_is_optional() -> None:
    assert check_reason(None) == ""
    assert check_reason("duplicate sent by a retry bug") == "duplicate sent by a retry bug"
