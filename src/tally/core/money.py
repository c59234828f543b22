"""Money: units (ISO 4217 currencies and custom credit units), the one rounding function, allocation.

Storage amounts are integers of a unit's smallest part (`amount_minor`). Computation uses exact
`Decimal` in a context wide enough that nothing is rounded before `round_to_unit` says so.
`float` never appears here: a float amount is refused at the door.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tally.core.frozen import quick_init
from tally.core.rejections import Rejected, require

# The computation context: 60 significant digits covers a per-token price of 1e-12 times a quantity of
# 1e30 with room to spare. Traps make any silent inexactness (outside explicit quantize) a bug.
COMPUTATION_CONTEXT = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_UP,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

# Only for moving the decimal point between major and minor units: its precision is the largest there
# is, so `scaleb` keeps every digit of the coefficient and never rounds on its own.
_SHIFT_CONTEXT = decimal.Context(
    prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[decimal.InvalidOperation]
)

# Unit prices and intermediate values keep at least this many decimal places.
DECIMAL_PLACES_MIN = 12

# A ledger amount is a PostgreSQL bigint; larger values are refused as input, never wrapped.
AMOUNT_MINOR_MAX = 2**63 - 1

SCALE_MAX = 18

# ISO 4217 active codes by minor-unit digits. Every code not listed as 0, 3 or 4 has 2.
_ISO_MINOR_UNITS_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_ISO_MINOR_UNITS_3 = "BHD IQD JOD KWD LYD OMR TND"
_ISO_MINOR_UNITS_4 = "CLF UYW"
_ISO_MINOR_UNITS_2 = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF "
    "CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ "
    "GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD "
    "MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON "
    "RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS "
    "UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)

ISO_4217_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_ISO_MINOR_UNITS_2.split(), 2),
    **dict.fromkeys(_ISO_MINOR_UNITS_0.split(), 0),
    **dict.fromkeys(_ISO_MINOR_UNITS_3.split(), 3),
    **dict.fromkeys(_ISO_MINOR_UNITS_4.split(), 4),
}

# Custom units (credits, tokens) are upper-case, 2 to 16 characters, and never an ISO code.
CUSTOM_UNIT_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,15}$")


class RoundingMode(StrEnum):
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"
    DOWN = "down"
    UP = "up"


_DECIMAL_ROUNDING = {
    RoundingMode.HALF_UP: decimal.ROUND_HALF_UP,
    RoundingMode.HALF_EVEN: decimal.ROUND_HALF_EVEN,
    RoundingMode.DOWN: decimal.ROUND_DOWN,
    RoundingMode.UP: decimal.ROUND_UP,
}


@quick_init
@dataclass(frozen=True, slots=True)
class Unit:
    """What an amount counts: an ISO 4217 currency or a tenant's custom unit with a declared scale."""

    code: str
    scale: int
    is_custom: bool = False

    def __post_init__(self) -> None:
        require(0 <= self.scale <= SCALE_MAX, f"unit scale out of range: {self.scale}")


def currency(code: str) -> Unit:
    """The ISO 4217 currency `code`, or a rejection `currency_must_be_known`."""
    minor_units = ISO_4217_MINOR_UNITS.get(code)
    if minor_units is None:
        raise Rejected.because("currency_must_be_known", f"{code!r} is not an ISO 4217 currency code", "currency")
    return Unit(code=code, scale=minor_units)


def custom_unit(code: str, scale: int) -> Unit:
    """A custom unit; its code must not shadow a currency, and its scale must be 0 to 18."""
    if not CUSTOM_UNIT_CODE.match(code):
        raise Rejected.because(
            "unit_code_must_be_upper_case", "unit codes are 2-16 characters of A-Z, 0-9 and _", "code"
        )
    if code in ISO_4217_MINOR_UNITS:
        raise Rejected.because("unit_code_must_not_be_a_currency", f"{code} is an ISO 4217 currency", "code")
    if not 0 <= scale <= SCALE_MAX:
        raise Rejected.because("unit_scale_out_of_range", f"scale must be 0 to {SCALE_MAX}", "scale")
    return Unit(code=code, scale=scale, is_custom=True)


def round_to_unit(value: Decimal, unit: Unit, mode: RoundingMode = RoundingMode.HALF_UP) -> int:
    """THE rounding function: an exact amount in major units to an integer of minor units.

    It is the only place in tally where money loses precision. Call it once per invoice line,
    never on intermediate values.
    """
    _refuse_float(value)
    # The shift keeps every digit: shifted in the 60-digit computation context, an amount with more
    # digits would be rounded once there and again here (…0.00999…9 ending past digit 60 became …1).
    minor = value.scaleb(unit.scale, _SHIFT_CONTEXT).quantize(
        Decimal(1), rounding=_DECIMAL_ROUNDING[mode], context=COMPUTATION_CONTEXT
    )
    return int(minor)


def minor_from_decimal(value: Decimal, unit: Unit, field: str = "amount") -> int:
    """An exact amount in major units (e.g. "12.34" USD) to minor units, refusing lost digits."""
    _refuse_float(value)
    if not value.is_finite():
        raise Rejected.because("amount_must_be_finite", "amount must be a finite number", field)
    minor = value.scaleb(unit.scale, _SHIFT_CONTEXT)  # every digit kept, however far past the point
    if minor != minor.to_integral_value():
        raise Rejected.because(
            "amount_exceeds_unit_precision",
            f"{unit.code} amounts have at most {unit.scale} decimal places",
            field,
        )
    return int(minor)


def decimal_from_minor(amount_minor: int, unit: Unit) -> Decimal:
    """Minor units back to an exact Decimal in major units (12345 USD cents → Decimal('123.45'))."""
    return Decimal(amount_minor).scaleb(-unit.scale, COMPUTATION_CONTEXT)


def allocate(amount_minor: int, weights: Sequence[int | Decimal]) -> list[int]:
    """Split `amount_minor` over `weights` so the parts sum exactly to it (largest remainder).

    Deterministic: remainders are handed out one unit at a time to the largest fractional parts,
    ties to the earlier position. A negative amount is split like its absolute value, negated.
    """
    require(len(weights) > 0, "allocate needs at least one weight")
    for weight in weights:
        _refuse_float(weight)
        require(weight >= 0, "allocation weights must not be negative")
    weight_total = sum((Decimal(weight) for weight in weights), Decimal(0))
    require(weight_total > 0, "allocation weights must not all be zero")
    sign = -1 if amount_minor < 0 else 1
    magnitude = abs(amount_minor)
    shares = [
        COMPUTATION_CONTEXT.divide(COMPUTATION_CONTEXT.multiply(Decimal(magnitude), Decimal(weight)), weight_total)
        for weight in weights
    ]
    parts = [int(share.to_integral_value(rounding=decimal.ROUND_FLOOR)) for share in shares]
    leftover = magnitude - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda index: (-(shares[index] - parts[index]), index))
    for index in by_remainder[:leftover]:
        parts[index] += 1
    require(sum(parts) == magnitude, "allocation must sum to the amount")
    return [sign * part for part in parts]


def allocate_evenly(amount_minor: int, parts: int) -> list[int]:
    """Split `amount_minor` into `parts` near-equal integers that sum exactly to it."""
    require(parts > 0, "allocate_evenly needs at least one part")
    return allocate(amount_minor, [1] * parts)


def _refuse_float(value: object) -> None:
    if isinstance(value, float):
        raise TypeError("float is never used for money or quantities; pass a Decimal or an int")
