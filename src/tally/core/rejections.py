"""Expected rejections: values with a stable, sentence-like code.

A rejection is not a bug. It is the answer to bad input or a business rule, and every caller must
handle it. Bugs (broken invariants) raise `InvariantViolation` instead and must never be caught to
carry on with wrong money.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request cannot be carried out. `code` is stable on the wire; `message` is for people."""

    code: str
    message: str
    field: str | None = None


class Rejected(Exception):
    """Carries a `Rejection` up to the edge, where it becomes a problem+json answer."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"{rejection.code}: {rejection.message}")
        self.rejection = rejection

    @classmethod
    def because(cls, code: str, message: str, field: str | None = None) -> Rejected:
        return cls(Rejection(code=code, message=message, field=field))


class InvariantViolation(Exception):
    """A programmer error or corrupted state. Roll back, alert; never continue with wrong money."""


def require(condition: bool, message: str) -> None:
    """An assertion that survives `python -O`. Use for invariants, never for input validation."""
    if not condition:
        raise InvariantViolation(message)
