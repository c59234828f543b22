"""Corrections of stored events: new facts, never edits.

`retract` takes an event out of usage; `amend` replaces its properties (the latest amendment wins).
An event's effective properties are those of its latest amendment, or its own; a retracted event
has none. Retracting is final: a retracted event cannot be amended.

Repeating a correction changes nothing: a second retraction answers the first, and an amendment
with the properties of the latest amendment answers that amendment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from tally.core.rejections import Rejection

CorrectionKind = Literal["retract", "amend"]
REASON_LENGTH_MAX: Final = 500


@dataclass(frozen=True, slots=True)
class Correction:
    kind: CorrectionKind
    properties_json: str | None  # canonical JSON (see events.canonical_json); None for a retraction


def effective_properties(properties_json: str, corrections: Sequence[Correction]) -> str | None:
    """The properties usage sees after `corrections` (oldest first); None once retracted."""
    effective: str | None = properties_json
    for correction in corrections:
        if correction.kind == "retract":
            return None
        effective = correction.properties_json
    return effective


def decide_correction(
    corrections: Sequence[Correction], kind: CorrectionKind, properties_json: str | None
) -> int | Rejection | None:
    """Whether a new correction is recorded (None), an earlier one already answers it (its index in
    `corrections`), or it is refused."""
    if (kind == "amend") != (properties_json is not None):
        raise ValueError("an amendment has properties, a retraction none")
    retraction = next((index for index, item in enumerate(corrections) if item.kind == "retract"), None)
    if kind == "retract":
        return retraction
    if retraction is not None:
        return Rejection("event_already_retracted", "a retracted event cannot be amended", "id")
    # No retraction: every correction so far is an amendment, and the last one is in effect.
    if corrections and corrections[-1].properties_json == properties_json:
        return len(corrections) - 1
    return None


def check_reason(reason: object) -> str | Rejection:
    if reason is None:
        return ""
    if not isinstance(reason, str):
        return Rejection("reason_must_be_string", "reason must be a string", "reason")
    if len(reason) > REASON_LENGTH_MAX:
        return Rejection("reason_too_long", f"reason may have at most {REASON_LENGTH_MAX} characters", "reason")
    if "\x00" in reason:
        return Rejection("reason_invalid", "reason must not contain NUL characters", "reason")
    try:
        reason.encode()
    except UnicodeEncodeError:
        return Rejection("reason_invalid", "reason must not contain unpaired surrogates", "reason")
    return reason
