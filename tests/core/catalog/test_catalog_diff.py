"""The catalog diff, pure: tables of what a change in the files means, and properties."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from tally.core.catalog.diff import Action, CatalogPlan, CurrentCatalog, CurrentPlan, diff_catalog
from tally.core.catalog.files import Catalog, CatalogSource, read_catalog
from tally.core.catalog.model import PlanSpec
from tests.core.catalog.strategies import catalog_files


def _read(content: dict[str, Any]) -> Catalog:
    return read_catalog([CatalogSource("c.yaml", content)])


def _stored(desired: Catalog, plan: CatalogPlan) -> CurrentCatalog:
    """What a correct apply leaves, as the store would report it: every plan at version 1."""
    return CurrentCatalog(
        meters=desired.meters,
        products=desired.products,
        features=desired.features,
        prices=desired.prices,
        plans={
            code: CurrentPlan(
                spec=PlanSpec(
                    code=code,
                    name=spec.name,
                    description=spec.description,
                    metadata=spec.metadata,
                    content=plan.plan_contents[code],
                ),
                published_version=1,
                draft_version=None,
                latest_version=1,
            )
            for code, spec in desired.plans.items()
        },
    )


@given(catalog_files())
def test_from_nothing_everything_is_created_and_then_nothing_differs(content: dict[str, Any]) -> None:
    desired = _read(content)
    plan = diff_catalog(desired, CurrentCatalog())
    assert all(change.action in (Action.CREATE, Action.NEW_VERSION) for change in plan.changes)
    created = {(change.section, change.code) for change in plan.changes if change.action is Action.CREATE}
    declared = {
        (section, code)
        for section in ("meters", "products", "features", "prices", "plans")
        for code in getattr(desired, section)
    }
    assert created == declared
    assert diff_catalog(desired, _stored(desired, plan)).empty


@given(catalog_files(), catalog_files())
def test_changes_are_ordered_and_each_names_a_declared_or_archived_code(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    before, after = _read(first), _read(second)
    current = _stored(before, diff_catalog(before, CurrentCatalog()))
    plan = diff_catalog(after, current)
    order = ["meters", "products", "features", "prices", "plans"]
    ranks = [5 if change.action is Action.ARCHIVE else order.index(change.section) for change in plan.changes]
    assert ranks == sorted(ranks)
    for change in plan.changes:
        if change.action is Action.ARCHIVE:
            assert change.code in current.prices and change.code not in after.prices
            assert current.prices[change.code].product in after.products
        else:
            assert change.code in getattr(after, change.section)
    assert plan == diff_catalog(after, current)  # deterministic


BASE = {
    "products": [{"code": "api"}],
    "prices": [{"code": "fee", "product": "api", "model": "flat_fee", "currency": "USD", "amount": "10"}],
    "plans": [{"code": "pro", "prices": ["fee"]}],
}


def _changes(edit: dict[str, Any]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    before = _read(BASE)
    current = _stored(before, diff_catalog(before, CurrentCatalog()))
    plan = diff_catalog(_read({**BASE, **edit}), current)
    return [(change.section, change.code, change.action.value, change.fields) for change in plan.changes]


def test_what_an_edit_of_the_files_means() -> None:
    fee = BASE["prices"][0]
    assert _changes({}) == []
    assert _changes({"prices": [{**fee, "amount": "10.00"}]}) == []  # the same decimal
    assert _changes({"prices": [{**fee, "amount": "12"}]}) == [
        ("prices", "fee", "replace", ("amount",)),
        ("plans", "pro", "new_version", ("prices",)),
    ]
    assert _changes({"prices": [{**fee, "metadata": {"a": "b"}}]}) == [("prices", "fee", "update", ("metadata",))]
    assert _changes({"plans": [{"code": "pro", "prices": ["fee"], "trial_days": 7}]}) == [
        ("plans", "pro", "new_version", ("trial_days",))
    ]
    assert _changes({"plans": [{"code": "pro", "name": "Pro", "prices": ["fee"]}]}) == [
        ("plans", "pro", "update", ("name",))
    ]
    assert _changes({"prices": [], "plans": [{"code": "pro"}]}) == [
        ("plans", "pro", "new_version", ("prices",)),
        ("prices", "fee", "archive", ()),
    ]
    # A plan in the store that no file declares is left alone, as is a product's price when the
    # product is not declared.
    assert _changes({"products": [{"code": "other"}], "prices": [], "plans": []}) == [
        ("products", "other", "create", ())
    ]
