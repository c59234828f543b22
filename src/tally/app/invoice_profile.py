"""The tenant's invoice profile: who the seller is on its invoice documents.

One profile per tenant, replaced as a whole (`PUT /v1/account/invoice_profile`). A tenant without
one prints its own name as the seller and writes documents in `LOCALE_DEFAULT`. Only presentation
depends on it; no amount and no posting does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from babel import Locale, UnknownLocaleError
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import invoice_profiles as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.customers import TaxId, validate_email, validate_name, validate_tax_ids
from tally.core.rejections import Rejected

LOCALE_DEFAULT = "en_US"
ADDRESS_LINES_MAX = 8
NOTES_MAX = 10
LINE_LENGTH_MAX = 200
NOTE_LENGTH_MAX = 500
FOOTER_LENGTH_MAX = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceProfile:
    """The seller block and the defaults of a tenant's documents. `configured` is False for the
    stand-in of a tenant that never set a profile."""

    seller_name: str
    email: str | None = None
    address_lines: tuple[str, ...] = ()
    tax_ids: tuple[TaxId, ...] = ()
    locale: str = LOCALE_DEFAULT
    notes: tuple[str, ...] = ()
    footer: str | None = None
    configured: bool = True

    def validate(self) -> InvoiceProfile:
        """Checked in field order, so one bad profile always gets the same code."""
        validate_name(self.seller_name, "seller_name")
        if self.email is not None:
            validate_email(self.email)
        _require_texts(self.address_lines, ADDRESS_LINES_MAX, LINE_LENGTH_MAX, "address_lines")
        validate_tax_ids(self.tax_ids)
        require_locale(self.locale)
        _require_texts(self.notes, NOTES_MAX, NOTE_LENGTH_MAX, "notes")
        if self.footer is not None:
            _require_texts((self.footer,), 1, FOOTER_LENGTH_MAX, "footer")
        return self


def require_locale(locale: str) -> str:
    """`locale` if CLDR knows it (en_US, de_DE, ja_JP), else the rejection `locale_unknown`."""
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        raise Rejected.because("locale_unknown", f"{locale[:40]!r} is not a known CLDR locale", "locale") from None
    return locale


def _require_texts(texts: tuple[str, ...], count_max: int, length_max: int, field: str) -> None:
    if len(texts) > count_max:
        raise Rejected.because("invoice_profile_field_exceeds_limit", f"at most {count_max} entries", field)
    for index, text in enumerate(texts):
        if not text.strip() or len(text) > length_max or "\x00" in text:
            raise Rejected.because(
                "invoice_profile_text_invalid", f"1 to {length_max} characters, not blank", f"{field}[{index}]"
            )


def get_invoice_profile(engine: Engine, tenant_id: uuid.UUID) -> InvoiceProfile:
    with psycopg_transaction(engine) as connection:
        row = store.get_profile(connection, tenant_id)
        if row is not None:
            return _profile(row)
        name = store.tenant_name(connection, tenant_id)
    return InvoiceProfile(seller_name=name or "Seller", configured=False)


def set_invoice_profile(engine: Engine, clock: Clock, tenant_id: uuid.UUID, profile: InvoiceProfile) -> InvoiceProfile:
    profile.validate()
    row = store.InvoiceProfileRow(
        seller_name=profile.seller_name,
        email=profile.email,
        address_lines=profile.address_lines,
        tax_ids=tuple((tax_id.type, tax_id.value) for tax_id in profile.tax_ids),
        locale=profile.locale,
        notes=profile.notes,
        footer=profile.footer,
        updated_at=None,
    )
    with psycopg_transaction(engine) as connection:
        store.put_profile(connection, tenant_id, row, clock.now())
        stored = store.get_profile(connection, tenant_id)
    if stored is None:  # pragma: no cover - just written in the same transaction
        raise RuntimeError("invoice profile not stored")
    return _profile(stored)


def _profile(row: store.InvoiceProfileRow) -> InvoiceProfile:
    return InvoiceProfile(
        seller_name=row.seller_name,
        email=row.email,
        address_lines=row.address_lines,
        tax_ids=tuple(TaxId(kind, value) for kind, value in row.tax_ids),
        locale=row.locale,
        notes=row.notes,
        footer=row.footer,
    )
