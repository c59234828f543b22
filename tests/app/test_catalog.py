"""The catalog on real PostgreSQL: catalog files planned and applied, prices, plan versions and
their immutability (in the database too), overrides and the effective price."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tally.adapters.clock import FixedClock
from tally.adapters.ids import PRICE, format_id
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app import _catalog_write as catalog_write
from tally.app import apply_catalog as apply_module
from tally.app.apply_catalog import apply_catalog
from tally.app.archive_price import archive_price
from tally.app.catalog_files import load_catalog_files, parse_catalog_text
from tally.app.catalog_queries import get_plan, get_plan_version, list_plan_versions
from tally.app.create_customer import CustomerInput, create_customer
from tally.app.create_feature import FeatureInput, create_feature
from tally.app.create_plan import PlanInput, create_plan
from tally.app.create_plan_version import PlanVersionInput, create_plan_version
from tally.app.create_price import PriceInput, create_price
from tally.app.create_price_override import OverrideInput, create_price_override
from tally.app.create_product import ProductInput, create_product
from tally.app.effective_price import effective_price
from tally.app.end_price_override import end_price_override
from tally.app.plan_catalog import plan_catalog
from tally.app.publish_plan_version import publish_plan_version
from tally.app.update_plan_version import PlanVersionUpdate, update_plan_version
from tally.bootstrap import Tally
from tally.core.catalog.model import PlanItem
from tally.core.rejections import Rejected

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "catalog"
CLOCK = FixedClock(datetime(2030, 1, 1, tzinfo=UTC))


def _summary(plan: Any) -> list[tuple[str, str, str]]:
    return [(change.section, change.code, change.action.value) for change in plan.changes]


def _code(call: Any) -> str:
    with pytest.raises(Rejected) as raised:
        call()
    return raised.value.rejection.code


def test_the_example_catalog_applies_once_then_plans_nothing(tally: Tally, tenant_id: uuid.UUID) -> None:
    sources = load_catalog_files([EXAMPLE])
    planned = plan_catalog(tally.engine, tenant_id, sources)
    assert ("meters", "tokens", "create") in _summary(planned)
    assert ("plans", "pro", "new_version") in _summary(planned)
    applied = apply_catalog(tally.engine, CLOCK, tenant_id, sources)
    assert _summary(applied.plan) == _summary(planned)
    assert plan_catalog(tally.engine, tenant_id, sources).empty
    assert apply_catalog(tally.engine, CLOCK, tenant_id, sources).plan.empty
    pro = get_plan(tally.engine, tenant_id, "pro")
    assert (pro.published_version, pro.draft_version) == (1, None)
    version = get_plan_version(tally.engine, tenant_id, "pro", 1)
    assert [(item.price_code, item.quantity) for item in version.items] == [
        ("pro_monthly", 1),
        ("pro_seat", 3),
        ("pro_tokens", None),
    ]
    assert (version.status, version.trial_days, version.entitlements) == ("published", 14, {"seats": 10, "sso": True})


CATALOG = """
meters:
  - {code: calls, event_type: api.call, aggregation: count}
products:
  - {code: api, name: API}
features:
  - {code: sso, kind: boolean}
prices:
  - {code: base, product: api, model: flat_fee, currency: USD, amount: 10}
  - {code: calls, product: api, model: per_unit, currency: USD, meter: calls, unit_price: 0.01}
plans:
  - code: starter
    name: Starter
    prices: [base, calls]
    entitlements: {sso: false}
"""


def _source(text: str, name: str = "catalog.yaml") -> list[Any]:
    return [parse_catalog_text(name, text)]


def test_a_changed_price_is_a_new_price_and_a_new_plan_version(tally: Tally, tenant_id: uuid.UUID) -> None:
    apply_catalog(tally.engine, CLOCK, tenant_id, _source(CATALOG))
    first = get_plan_version(tally.engine, tenant_id, "starter", 1)
    changed = CATALOG.replace("unit_price: 0.01", "unit_price: 0.02").replace("Starter", "Starter plan")
    planned = plan_catalog(tally.engine, tenant_id, _source(changed))
    assert _summary(planned) == [
        ("prices", "calls", "replace"),
        ("plans", "starter", "update"),
        ("plans", "starter", "new_version"),
    ]
    assert planned.changes[0].fields == ("unit_price",)
    assert planned.changes[2].version == 2
    apply_catalog(tally.engine, CLOCK, tenant_id, _source(changed))
    second = get_plan_version(tally.engine, tenant_id, "starter", 2)
    old_calls = next(item for item in first.items if item.price_code == "calls")
    new_calls = next(item for item in second.items if item.price_code == "calls")
    assert old_calls.price_id != new_calls.price_id
    # Version 1 still points at the old, now archived, price: it never changes.
    assert get_plan_version(tally.engine, tenant_id, "starter", 1).items == first.items
    with psycopg_transaction(tally.engine) as connection:
        old = store.get_price(connection, tenant_id, old_calls.price_id)
    assert old is not None and old.archived_at is not None
    assert plan_catalog(tally.engine, tenant_id, _source(changed)).empty

    # A price removed from the files, of a product the files declare, is archived; the plan must
    # stop referencing it first.
    without = changed.replace("prices: [base, calls]", "prices: [base]").replace(
        "  - {code: calls, product: api, model: per_unit, currency: USD, meter: calls, unit_price: 0.02}\n", ""
    )
    assert _summary(plan_catalog(tally.engine, tenant_id, _source(without))) == [
        ("plans", "starter", "new_version"),
        ("prices", "calls", "archive"),
    ]


def test_a_failing_apply_changes_nothing(tally: Tally, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*arguments: Any, **keywords: Any) -> None:
        raise RuntimeError("the database went away mid-apply")

    monkeypatch.setattr(apply_module.store, "publish_version", broken)
    before = plan_catalog(tally.engine, tenant_id, _source(CATALOG))
    with pytest.raises(RuntimeError):
        apply_catalog(tally.engine, CLOCK, tenant_id, _source(CATALOG))
    assert _summary(plan_catalog(tally.engine, tenant_id, _source(CATALOG))) == _summary(before)
    with psycopg_transaction(tally.engine) as connection:
        assert store.all_products(connection, tenant_id) == []
        assert store.active_prices(connection, tenant_id) == []


@pytest.mark.parametrize(
    ("limit", "text", "code"),
    [
        ("PRODUCTS_PER_TENANT_MAX", "products: [{code: a}, {code: b}, {code: c}]", "products_exceed_limit"),
        (
            "FEATURES_PER_TENANT_MAX",
            "features: [{code: a, kind: boolean}, {code: b, kind: limit}]",
            "features_exceed_limit",
        ),
        ("PLANS_PER_TENANT_MAX", "plans: [{code: a}, {code: b}]", "plans_exceed_limit"),
    ],
)
def test_an_apply_keeps_to_the_limits_the_api_keeps_to(
    tally: Tally, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch, limit: str, text: str, code: str
) -> None:
    monkeypatch.setattr(catalog_write, limit, 1)
    assert _code(lambda: apply_catalog(tally.engine, CLOCK, tenant_id, _source(text))) == code
    with psycopg_transaction(tally.engine) as connection:  # and nothing of it was written
        assert [store.count(connection, table, tenant_id) for table in ("products", "features", "plans")] == [0, 0, 0]


@pytest.mark.parametrize(
    ("text", "code", "field"),
    [
        ("products: [{code: api, colour: red}]", "catalog_field_unknown", "f.yaml: products[0].colour"),
        ("prodcts: []", "catalog_field_unknown", "f.yaml.prodcts"),
        ("products: [{code: api}, {code: api}]", "catalog_code_duplicated", "f.yaml: products[1].code"),
        ("products: [{code: Api}]", "product_code_invalid", "f.yaml: products[0].code"),
        (
            "prices: [{code: p, product: nope, model: flat_fee, currency: USD, amount: 1}]",
            "product_must_exist",
            "f.yaml: prices[0].product",
        ),
        (
            "products: [{code: api}]\nprices: [{code: p, product: api, model: per_unit, currency: USD, "
            "meter: nope, unit_price: 1}]",
            "meter_must_exist",
            "f.yaml: prices[0].meter",
        ),
        (
            "products: [{code: api}]\nprices: [{code: p, product: api, model: graduated, currency: USD, "
            "tiers: [{up_to: 10, unit_price: 1}, {up_to: 5, unit_price: 1}, {unit_price: 1}]}]",
            "tiers_must_be_increasing",
            "f.yaml: prices[0].tiers[1].up_to",
        ),
        (
            "products: [{code: api}]\nprices: [{code: p, product: api, model: flat_fee, currency: USD, amount: 1, "
            "colour: red}]",
            "price_field_unknown",
            "f.yaml: prices[0].colour",
        ),
        ("plans: [{code: p, prices: [nope]}]", "price_must_exist", "f.yaml: plans[0].items[0].price"),
        ("plans: [{code: p, entitlements: {sso: true}}]", "feature_must_exist", "f.yaml: plans[0].entitlements.sso"),
        (
            "features: [{code: seats, kind: limit}]\nplans: [{code: p, entitlements: {seats: true}}]",
            "entitlement_must_be_limit",
            "f.yaml: plans[0].entitlements.seats",
        ),
        ("products:\n  - code: a\n    code: b\n", "catalog_key_duplicated", "f.yaml"),
        ("products: [{code: api", "catalog_file_invalid", "f.yaml"),
    ],
)
def test_bad_catalog_files_name_the_file_and_path(
    tally: Tally, tenant_id: uuid.UUID, text: str, code: str, field: str
) -> None:
    with pytest.raises(Rejected) as raised:
        plan_catalog(tally.engine, tenant_id, _source(text, "f.yaml"))
    assert (raised.value.rejection.code, raised.value.rejection.field) == (code, field)


def test_a_feature_kind_never_changes(tally: Tally, tenant_id: uuid.UUID) -> None:
    apply_catalog(tally.engine, CLOCK, tenant_id, _source("features: [{code: sso, kind: boolean}]"))
    code = _code(lambda: plan_catalog(tally.engine, tenant_id, _source("features: [{code: sso, kind: limit}]")))
    assert code == "feature_kind_is_immutable"


def _seed(tally: Tally, tenant_id: uuid.UUID) -> tuple[str, str]:
    apply_catalog(tally.engine, CLOCK, tenant_id, _source(CATALOG))
    with psycopg_transaction(tally.engine) as connection:
        base = store.get_active_price(connection, tenant_id, "base")
        calls = store.get_active_price(connection, tenant_id, "calls")
    assert base is not None and calls is not None
    return format_id(PRICE, base.id), format_id(PRICE, calls.id)


def test_prices_are_immutable_and_need_their_meter(tally: Tally, tenant_id: uuid.UUID) -> None:
    base, _ = _seed(tally, tenant_id)
    document = {"model": "per_unit", "currency": "USD", "meter": "nope", "unit_price": "1"}
    assert (
        _code(lambda: create_price(tally.engine, CLOCK, tenant_id, PriceInput(code="x", product="api", price=document)))
        == "meter_must_exist"
    )
    flat = {"model": "flat_fee", "currency": "USD", "amount": "5"}
    assert (
        _code(lambda: create_price(tally.engine, CLOCK, tenant_id, PriceInput(code="base", product="api", price=flat)))
        == "price_code_taken"
    )
    assert (
        _code(lambda: create_price(tally.engine, CLOCK, tenant_id, PriceInput(code="y", product="nope", price=flat)))
        == "product_must_exist"
    )
    with pytest.raises(Rejected) as raised:
        create_price(
            tally.engine, CLOCK, tenant_id, PriceInput(code="y", product="api", price={**flat, "amount": "-1"})
        )
    assert (raised.value.rejection.code, raised.value.rejection.field) == ("price_must_not_be_negative", "price.amount")
    with psycopg_transaction(tally.engine) as connection, pytest.raises(psycopg.errors.IntegrityConstraintViolation):
        connection.execute("UPDATE prices SET document = '{}' WHERE tenant_id = %s", (tenant_id,))
    price_id = store_id(base)
    archived = archive_price(tally.engine, CLOCK, tenant_id, price_id)
    assert archived.archived_at is not None
    assert archive_price(tally.engine, CLOCK, tenant_id, price_id).archived_at == archived.archived_at
    replacement = create_price(tally.engine, CLOCK, tenant_id, PriceInput(code="base", product="api", price=flat))
    assert replacement.id != price_id and replacement.document["amount"] == "5"


def store_id(wire: str) -> uuid.UUID:
    from tally.adapters.ids import parse_id

    parsed = parse_id(PRICE, wire)
    assert parsed is not None
    return parsed


def test_plan_versions_draft_edit_publish_and_stay_immutable(tally: Tally, tenant_id: uuid.UUID) -> None:
    base, calls = _seed(tally, tenant_id)
    create_feature(tally.engine, CLOCK, tenant_id, FeatureInput(code="seats", kind="limit"))
    create_plan(tally.engine, CLOCK, tenant_id, PlanInput(code="growth", name="Growth"))
    draft = create_plan_version(
        tally.engine,
        CLOCK,
        tenant_id,
        "growth",
        PlanVersionInput(items=(PlanItem(price=base, quantity=2),), trial_days=7, entitlements={"seats": 5}),
    )
    assert (draft.version, draft.status, [item.quantity for item in draft.items]) == (1, "draft", [2])
    again = lambda: create_plan_version(tally.engine, CLOCK, tenant_id, "growth", PlanVersionInput())  # noqa: E731
    assert _code(again) == "plan_draft_version_exists"
    bad = PlanVersionUpdate(items=(PlanItem(price=calls, quantity=3),))
    assert _code(lambda: update_plan_version(tally.engine, CLOCK, tenant_id, "growth", number=1, update=bad)) == (
        "plan_item_quantity_needs_a_fixed_price"
    )
    updated = update_plan_version(
        tally.engine,
        CLOCK,
        tenant_id,
        "growth",
        number=1,
        update=PlanVersionUpdate(items=(PlanItem(price=base), PlanItem(price=calls))),
    )
    assert [item.quantity for item in updated.items] == [1, None] and updated.trial_days == 7
    published = publish_plan_version(tally.engine, CLOCK, tenant_id, "growth", 1)
    assert published.status == "published" and published.published_at is not None
    edit = PlanVersionUpdate(trial_days=30)
    assert _code(lambda: update_plan_version(tally.engine, CLOCK, tenant_id, "growth", number=1, update=edit)) == (
        "plan_version_immutable"
    )
    assert _code(lambda: publish_plan_version(tally.engine, CLOCK, tenant_id, "growth", 1)) == "plan_version_immutable"
    # The database refuses it too, whoever asks: subscriptions rely on it.
    for statement in (
        "UPDATE plan_versions SET trial_days = 30 WHERE tenant_id = %s",
        "DELETE FROM plan_versions WHERE tenant_id = %s",
        "UPDATE plan_version_prices SET quantity = 9 WHERE tenant_id = %s",
        "DELETE FROM plan_version_prices WHERE tenant_id = %s",
    ):
        with (
            psycopg_transaction(tally.engine) as connection,
            pytest.raises(psycopg.errors.IntegrityConstraintViolation),
        ):
            connection.execute(statement, (tenant_id,))
    second = create_plan_version(
        tally.engine, CLOCK, tenant_id, "growth", PlanVersionInput(items=(PlanItem(price=base),))
    )
    assert second.version == 2
    assert [version.status for version in list_plan_versions(tally.engine, tenant_id, "growth")] == [
        "published",
        "draft",
    ]
    # An archived price cannot be published into a version.
    archive_price(tally.engine, CLOCK, tenant_id, store_id(base))
    assert _code(lambda: publish_plan_version(tally.engine, CLOCK, tenant_id, "growth", 2)) == (
        "price_must_not_be_archived"
    )


def test_overrides_apply_in_their_window_in_the_customers_currency(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, calls = _seed(tally, tenant_id)
    price_id = store_id(calls)
    customer = create_customer(tally.engine, CLOCK, tenant_id, CustomerInput(external_id="acme", currency="USD"))
    euro = create_customer(tally.engine, CLOCK, tenant_id, CustomerInput(external_id="euro", currency="EUR"))
    negotiated = {"model": "per_unit", "currency": "USD", "unit_price": "0.005"}
    start, end = datetime(2030, 2, 1, tzinfo=UTC), datetime(2030, 3, 1, tzinfo=UTC)

    def override(customer_id: uuid.UUID, document: dict[str, Any], until: datetime | None = end) -> Any:
        return create_price_override(
            tally.engine,
            CLOCK,
            tenant_id,
            OverrideInput(
                customer_id=customer_id, price_id=price_id, price=document, effective_from=start, effective_until=until
            ),
        )

    assert _code(lambda: override(euro.id, negotiated)) == "price_currency_must_match_customer"
    assert _code(lambda: override(customer.id, {**negotiated, "interval": {"unit": "year", "count": 1}})) == (
        "override_interval_must_match_price"
    )
    created = override(customer.id, negotiated)
    assert created.document["meter"] == "calls"  # taken from the price
    assert _code(lambda: override(customer.id, negotiated, None)) == "price_override_overlaps"

    def unit_price(at: datetime) -> Decimal:
        found = effective_price(tally.engine, tenant_id, customer.id, price_id, at)
        return found.price.model.unit_price  # type: ignore[union-attr]

    assert unit_price(datetime(2030, 1, 31, tzinfo=UTC)) == Decimal("0.01")
    assert unit_price(start) == Decimal("0.005")
    assert unit_price(end) == Decimal("0.01")  # half-open
    ended = end_price_override(tally.engine, CLOCK, tenant_id, created.id, datetime(2030, 2, 15, tzinfo=UTC))
    assert ended.effective_until == datetime(2030, 2, 15, tzinfo=UTC)
    assert unit_price(datetime(2030, 2, 20, tzinfo=UTC)) == Decimal("0.01")
    later = datetime(2030, 2, 20, tzinfo=UTC)
    assert _code(lambda: end_price_override(tally.engine, CLOCK, tenant_id, created.id, later)) == (
        "price_override_already_ended"
    )
    assert _code(lambda: create_product(tally.engine, CLOCK, tenant_id, ProductInput(code="api"))) == (
        "product_code_taken"
    )
