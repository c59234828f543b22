"""Customers and test clocks: the rules for their fields, checked before anything is stored.

A customer is the company's own customer (`external_id`, the id its usage events carry in their
`customer` field) with the details billing needs: name, email, currency, billing address, tax ids,
timezone, metadata. Each check answers an expected rejection with a stable code; the checks run in
the order the fields are listed in `CustomerFields`, so one bad input always gets the same code.

Test clocks move forward only, by at most `TEST_CLOCK_ADVANCE_MAX` at a time.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from tally.core import money
from tally.core.rejections import Rejected

EXTERNAL_ID_LENGTH_MAX = 255  # the length of an event's `customer` field
NAME_LENGTH_MAX = 200
EMAIL_LENGTH_MAX = 254  # RFC 5321: the longest address a mail server accepts
TAX_IDS_MAX = 10
TAX_ID_VALUE_LENGTH_MAX = 64
ADDRESS_LINE_LENGTH_MAX = 200
METADATA_KEYS_MAX = 50
METADATA_KEY_LENGTH_MAX = 40
METADATA_VALUE_LENGTH_MAX = 500
TIMEZONE_DEFAULT = "UTC"

# One advance moves a test clock at most this far: two years and a leap day. Longer simulations
# advance in steps, so scheduled work (billing runs) sees each period go by.
TEST_CLOCK_ADVANCE_MAX = timedelta(days=731)

# A deliberately plain check: one @, a non-empty local part, a dotted domain, no spaces. Deliverability
# is the mail server's business; this catches typos and non-addresses.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
# Tax id types name a country or region and a scheme, as Stripe spells them: eu_vat, us_ein, gb_vat.
_TAX_ID_TYPE = re.compile(r"^[a-z]{2,4}_[a-z]{2,8}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")  # ISO 3166-1 alpha-2

ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code", "country")


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """A billing address. `country` is ISO 3166-1 alpha-2 (upper case); every field is optional."""

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None

    def document(self) -> dict[str, str]:
        return {name: value for name in ADDRESS_FIELDS if (value := getattr(self, name)) is not None}

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Address:
        return cls(**{name: document.get(name) for name in ADDRESS_FIELDS})


@dataclass(frozen=True, slots=True)
class TaxId:
    type: str
    value: str

    def document(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerFields:
    """The editable details of a customer, in the order they are checked."""

    name: str
    email: str | None = None
    billing_address: Address | None = None
    tax_ids: tuple[TaxId, ...] = ()
    timezone: str = TIMEZONE_DEFAULT
    metadata: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> CustomerFields:
        validate_name(self.name)
        if self.email is not None:
            validate_email(self.email)
        if self.billing_address is not None:
            validate_address(self.billing_address)
        validate_tax_ids(self.tax_ids)
        validate_timezone(self.timezone)
        validate_metadata(self.metadata)
        return self


def validate_external_id(external_id: str) -> None:
    """Exactly what an event's `customer` field accepts, so every event can be matched to a customer."""
    if not 1 <= len(external_id) <= EXTERNAL_ID_LENGTH_MAX or not _storable(external_id):
        raise Rejected.because(
            "customer_external_id_invalid",
            f"an external id has 1 to {EXTERNAL_ID_LENGTH_MAX} characters (no NUL), like an event's customer",
            "external_id",
        )


def _storable(text: str) -> bool:
    # PostgreSQL text holds neither NUL nor unpaired surrogates (which UTF-8 cannot encode).
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def validate_name(name: str, field_name: str = "name") -> None:
    if not 1 <= len(name) <= NAME_LENGTH_MAX or not name.strip() or not _storable(name):
        raise Rejected.because("name_invalid", f"a name has 1 to {NAME_LENGTH_MAX} characters", field_name)


def validate_email(email: str) -> None:
    if len(email) > EMAIL_LENGTH_MAX or not _EMAIL.match(email) or not _storable(email):
        raise Rejected.because("customer_email_invalid", f"{email[:80]!r} is not an email address", "email")


def validate_address(address: Address) -> None:
    for name in ADDRESS_FIELDS:
        value = getattr(address, name)
        if value is not None and (len(value) > ADDRESS_LINE_LENGTH_MAX or not _storable(value)):
            raise Rejected.because(
                "customer_address_field_too_long",
                f"address fields have at most {ADDRESS_LINE_LENGTH_MAX} characters",
                f"billing_address.{name}",
            )
    if address.country is not None and not _COUNTRY.match(address.country):
        raise Rejected.because(
            "customer_address_country_invalid",
            "country is a two-letter ISO 3166-1 code in upper case (US, DE, JP)",
            "billing_address.country",
        )


def validate_tax_ids(tax_ids: Sequence[TaxId]) -> None:
    if len(tax_ids) > TAX_IDS_MAX:
        raise Rejected.because(
            "customer_tax_ids_exceed_limit", f"a customer has at most TAX_IDS_MAX = {TAX_IDS_MAX} tax ids", "tax_ids"
        )
    seen: set[tuple[str, str]] = set()
    for index, tax_id in enumerate(tax_ids):
        if not _TAX_ID_TYPE.match(tax_id.type):
            raise Rejected.because(
                "customer_tax_id_type_invalid",
                "a tax id type is a region and a scheme in lower case, e.g. eu_vat, us_ein, gb_vat",
                f"tax_ids[{index}].type",
            )
        if (
            not 1 <= len(tax_id.value) <= TAX_ID_VALUE_LENGTH_MAX
            or tax_id.value != tax_id.value.strip()
            or not _storable(tax_id.value)
        ):
            raise Rejected.because(
                "customer_tax_id_value_invalid",
                f"a tax id value has 1 to {TAX_ID_VALUE_LENGTH_MAX} characters, without surrounding spaces",
                f"tax_ids[{index}].value",
            )
        if (tax_id.type, tax_id.value) in seen:
            raise Rejected.because("customer_tax_id_duplicated", "the same tax id is listed twice", f"tax_ids[{index}]")
        seen.add((tax_id.type, tax_id.value))


@cache
def _timezone_names() -> frozenset[str]:
    # The IANA names the tz database knows. `ZoneInfo(name)` alone would also accept file paths that
    # happen to exist under the zoneinfo directory (e.g. "localtime", "posixrules").
    return frozenset(zoneinfo.available_timezones() - {"localtime", "posixrules", "Factory"})


def validate_timezone(name: str) -> None:
    if name not in _timezone_names():
        raise Rejected.because(
            "customer_timezone_unknown",
            f"{name[:80]!r} is not an IANA timezone name (e.g. Europe/Paris, America/New_York, UTC)",
            "timezone",
        )


def validate_metadata(metadata: Mapping[str, str], field_name: str = "metadata") -> None:
    if len(metadata) > METADATA_KEYS_MAX:
        raise Rejected.because(
            "metadata_exceeds_limit", f"metadata has at most METADATA_KEYS_MAX = {METADATA_KEYS_MAX} keys", field_name
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= METADATA_KEY_LENGTH_MAX or not _storable(key):
            raise Rejected.because(
                "metadata_key_invalid", f"metadata keys have 1 to {METADATA_KEY_LENGTH_MAX} characters", field_name
            )
        if not isinstance(value, str) or len(value) > METADATA_VALUE_LENGTH_MAX or not _storable(value):
            raise Rejected.because(
                "metadata_value_invalid",
                f"metadata values are strings of at most {METADATA_VALUE_LENGTH_MAX} characters",
                f"{field_name}.{key}",
            )


def validate_currency_code(code: str) -> bool:
    """Whether `code` is spelled like a currency or custom unit; the caller then checks it exists."""
    return code in money.ISO_4217_MINOR_UNITS or bool(money.CUSTOM_UNIT_CODE.match(code))


def check_advance(frozen_time: datetime, target: datetime) -> bool:
    """Whether moving a test clock from `frozen_time` to `target` moves it at all (False: same time).

    Rejects going backwards and moving further than `TEST_CLOCK_ADVANCE_MAX` in one advance."""
    if target.tzinfo is None:
        raise Rejected.because("datetime_must_have_timezone", "frozen_time needs a timezone", "frozen_time")
    if target < frozen_time:
        raise Rejected.because(
            "test_clock_cannot_go_backwards",
            f"the clock is at {frozen_time.isoformat()}; it only moves forward",
            "frozen_time",
        )
    if target - frozen_time > TEST_CLOCK_ADVANCE_MAX:
        raise Rejected.because(
            "test_clock_advance_exceeds_limit",
            f"one advance moves the clock at most TEST_CLOCK_ADVANCE_MAX = {TEST_CLOCK_ADVANCE_MAX.days} days; "
            "advance in steps",
            "frozen_time",
        )
    return target > frozen_time
