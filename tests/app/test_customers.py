"""Customers on real PostgreSQL: create, the external id rule, updates, currency set once, lists, the clock seam."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from tally.adapters.clock import FixedClock, SystemClock
from tally.adapters.pagination import PageRequest
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app import customer_queries
from tally.app.create_customer import CustomerInput, create_customer
from tally.app.create_test_clock import TestClockInput, create_test_clock
from tally.app.customer_clock import clock_for_customer
from tally.app.ledger_accounts import create_unit
from tally.app.update_customer import CustomerUpdate, update_customer
from tally.bootstrap import Tally
from tally.core.customers import Address, TaxId
from tally.core.rejections import Rejected

NOW = datetime(2030, 3, 1, 12, tzinfo=UTC)


def _code(error: pytest.ExceptionInfo[Rejected]) -> tuple[str, str | None]:
    return error.value.rejection.code, error.value.rejection.field


def test_create_defaults_and_external_id_taken(tally: Tally, tenant_id: uuid.UUID) -> None:
    clock = FixedClock(NOW)
    customer = create_customer(tally.engine, clock, tenant_id, CustomerInput(external_id="acme"))
    assert (customer.name, customer.timezone, customer.currency, customer.created_at) == ("acme", "UTC", None, NOW)
    assert customer.tax_ids == () and customer.billing_address is None and customer.metadata == {}
    with pytest.raises(Rejected) as error:
        create_customer(tally.engine, clock, tenant_id, CustomerInput(external_id="acme", name="Acme again"))
    assert _code(error) == ("customer_external_id_taken", "external_id")
    assert customer_queries.get_customer_by_external_id(tally.engine, tenant_id, "acme").id == customer.id


def test_every_field_round_trips(tally: Tally, tenant_id: uuid.UUID) -> None:
    create_unit(tally.engine, tenant_id, "CREDITS", 0, "Credits")
    customer = create_customer(
        tally.engine,
        SystemClock(),
        tenant_id,
        CustomerInput(
            external_id="cust-1",
            name="Acme, Inc.",
            email="billing@acme.example",
            currency="CREDITS",
            billing_address=Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US"),
            tax_ids=(TaxId("eu_vat", "DE123456789"), TaxId("us_ein", "12-3456789")),
            timezone="America/New_York",
            metadata={"segment": "enterprise"},
        ),
    )
    again = customer_queries.get_customer(tally.engine, tenant_id, customer.id)
    assert again == customer
    assert again.billing_address == Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")
    assert again.tax_ids == (TaxId("eu_vat", "DE123456789"), TaxId("us_ein", "12-3456789"))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"external_id": ""}, ("customer_external_id_invalid", "external_id")),
        ({"external_id": "x" * 256}, ("customer_external_id_invalid", "external_id")),
        ({"external_id": "a\x00b"}, ("customer_external_id_invalid", "external_id")),
        ({"name": ""}, ("name_invalid", "name")),
        ({"name": "\ud800"}, ("name_invalid", "name")),  # an unpaired surrogate: not storable
        ({"email": "not-an-email"}, ("customer_email_invalid", "email")),
        ({"email": "a@b"}, ("customer_email_invalid", "email")),
        ({"currency": "usd"}, ("customer_currency_unknown", "currency")),
        ({"currency": "ZZZ"}, ("customer_currency_unknown", "currency")),
        ({"billing_address": Address(country="usa")}, ("customer_address_country_invalid", "billing_address.country")),
        ({"billing_address": Address(line1="x" * 201)}, ("customer_address_field_too_long", "billing_address.line1")),
        (
            {"tax_ids": tuple(TaxId("eu_vat", f"DE{n}") for n in range(11))},
            ("customer_tax_ids_exceed_limit", "tax_ids"),
        ),
        ({"tax_ids": (TaxId("VAT", "1"),)}, ("customer_tax_id_type_invalid", "tax_ids[0].type")),
        ({"tax_ids": (TaxId("eu_vat", ""),)}, ("customer_tax_id_value_invalid", "tax_ids[0].value")),
        ({"tax_ids": (TaxId("eu_vat", "1"), TaxId("eu_vat", "1"))}, ("customer_tax_id_duplicated", "tax_ids[1]")),
        ({"timezone": "Mars/Olympus"}, ("customer_timezone_unknown", "timezone")),
        ({"timezone": "localtime"}, ("customer_timezone_unknown", "timezone")),
        ({"metadata": {f"k{n}": "v" for n in range(51)}}, ("metadata_exceeds_limit", "metadata")),
        ({"metadata": {"k" * 41: "v"}}, ("metadata_key_invalid", "metadata")),
        ({"metadata": {"k": "v" * 501}}, ("metadata_value_invalid", "metadata.k")),
        ({"test_clock_id": uuid.uuid4()}, ("test_clock_not_found", "test_clock")),
    ],
)
def test_bad_input_has_precise_codes(
    tally: Tally, tenant_id: uuid.UUID, fields: dict[str, object], expected: tuple[str, str]
) -> None:
    values: dict[str, object] = {"external_id": "acme", **fields}
    with pytest.raises(Rejected) as error:
        create_customer(tally.engine, SystemClock(), tenant_id, CustomerInput(**values))  # type: ignore[arg-type]
    assert _code(error) == expected
    assert customer_queries.find_customer_by_external_id(tally.engine, tenant_id, "acme") is None


def test_update_replaces_sent_fields_and_currency_is_set_once(tally: Tally, tenant_id: uuid.UUID) -> None:
    created = create_customer(
        tally.engine,
        FixedClock(NOW),
        tenant_id,
        CustomerInput(external_id="acme", email="a@acme.example", tax_ids=(TaxId("eu_vat", "1"),)),
    )
    later = FixedClock(datetime(2030, 4, 1, tzinfo=UTC))
    unchanged = update_customer(tally.engine, later, tenant_id, created.id, CustomerUpdate(name="acme"))
    assert unchanged.updated_at == NOW  # nothing changed: nothing written
    updated = update_customer(
        tally.engine,
        later,
        tenant_id,
        created.id,
        CustomerUpdate(name="Acme", email=None, tax_ids=(), timezone="Asia/Tokyo", currency="JPY", metadata={"a": "b"}),
    )
    assert (updated.name, updated.email, updated.tax_ids, updated.timezone, updated.currency, updated.metadata) == (
        "Acme",
        None,
        (),
        "Asia/Tokyo",
        "JPY",
        {"a": "b"},
    )
    assert (updated.created_at, updated.updated_at) == (NOW, later.now())
    same = update_customer(tally.engine, later, tenant_id, created.id, CustomerUpdate(currency="JPY"))
    assert same.currency == "JPY"
    with pytest.raises(Rejected) as error:
        update_customer(tally.engine, later, tenant_id, created.id, CustomerUpdate(currency="USD"))
    assert _code(error) == ("customer_currency_immutable", "currency")
    with pytest.raises(Rejected) as error:
        update_customer(tally.engine, later, tenant_id, created.id, CustomerUpdate(email="nope"))
    assert _code(error) == ("customer_email_invalid", "email")
    with pytest.raises(Rejected) as error:
        update_customer(tally.engine, later, tenant_id, uuid.uuid4(), CustomerUpdate(name="x"))
    assert _code(error) == ("customer_not_found", "id")


def test_the_database_refuses_identity_changes(tally: Tally, tenant_id: uuid.UUID) -> None:
    customer = create_customer(tally.engine, SystemClock(), tenant_id, CustomerInput(external_id="a", currency="EUR"))
    for change in ("currency = 'USD'", "external_id = 'b'", "test_clock_id = gen_random_uuid()"):
        with pytest.raises(psycopg.errors.IntegrityError), psycopg_transaction(tally.engine) as connection:
            connection.execute(f"UPDATE customers SET {change} WHERE id = %s", (customer.id,))


def test_list_pages_newest_first_and_tenants_are_apart(tally: Tally, tenant_id: uuid.UUID) -> None:
    ids = [
        create_customer(tally.engine, SystemClock(), tenant_id, CustomerInput(external_id=f"c{n}")).id for n in range(5)
    ]
    first = customer_queries.list_customers(tally.engine, tenant_id, PageRequest(limit=2))
    assert [row.id for row in first.items] == ids[::-1][:2] and first.has_more
    second = customer_queries.list_customers(
        tally.engine, tenant_id, PageRequest(limit=2, starting_after=first.items[-1].id)
    )
    assert [row.id for row in second.items] == ids[::-1][2:4]
    back = customer_queries.list_customers(
        tally.engine, tenant_id, PageRequest(limit=2, ending_before=second.items[0].id)
    )
    assert [row.id for row in back.items] == ids[::-1][:2] and not back.has_more

    other = uuid.UUID(int=tenant_id.int ^ 1)
    assert customer_queries.find_customer_by_external_id(tally.engine, other, "c0") is None
    with pytest.raises(Rejected) as error:
        customer_queries.get_customer(tally.engine, other, ids[0])
    assert _code(error) == ("customer_not_found", "id")


def test_clock_for_customer(tally: Tally, tenant_id: uuid.UUID) -> None:
    system = FixedClock(NOW)
    frozen = datetime(2031, 1, 31, tzinfo=UTC)
    test_clock = create_test_clock(tally.engine, system, tenant_id, TestClockInput(frozen_time=frozen))
    simulated = create_customer(
        tally.engine, system, tenant_id, CustomerInput(external_id="sim", test_clock_id=test_clock.id)
    )
    real = create_customer(tally.engine, system, tenant_id, CustomerInput(external_id="real"))
    assert simulated.created_at == frozen  # lives at its clock's time
    assert clock_for_customer(tally.engine, tenant_id, simulated.id).now() == frozen
    assert clock_for_customer(tally.engine, tenant_id, real.id, system=system) is system
    assert isinstance(clock_for_customer(tally.engine, tenant_id, real.id), SystemClock)
    with psycopg_transaction(tally.engine) as connection:
        assert clock_for_customer(connection, tenant_id, simulated.id).now() == frozen
    with pytest.raises(Rejected) as error:
        clock_for_customer(tally.engine, uuid.UUID(int=tenant_id.int ^ 1), simulated.id)
    assert _code(error) == ("customer_not_found", "customer")
    on_clock = customer_queries.list_customers(tally.engine, tenant_id, test_clock_id=test_clock.id)
    assert [row.id for row in on_clock.items] == [simulated.id]
