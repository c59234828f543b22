"""What docs/catalog.md says about deletes and catalog files: `catalog apply` never deletes, and an
object deleted through the API that the files still declare is created again by the next apply, as
a new object. A plan that apply created is published, so it cannot be deleted at all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tally.adapters.clock import FixedClock
from tally.app.apply_catalog import apply_catalog
from tally.app.catalog_files import parse_catalog_text
from tally.app.catalog_queries import get_plan, get_product, list_plan_versions
from tally.app.create_plan import PlanInput, create_plan
from tally.app.delete_catalog_object import delete_catalog_object
from tally.app.update_catalog_labels import Labeled
from tally.bootstrap import Tally
from tally.core.rejections import Rejected

CLOCK = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
FILES = """
products:
  - {code: platform, name: Platform}
  - {code: spare, name: Nothing sold yet}
prices:
  - {code: monthly, product: platform, model: flat_fee, currency: USD, amount: 30}
plans:
  - {code: pro, name: Pro, prices: [monthly]}
"""


def _apply(tally: Tally, tenant_id: uuid.UUID, text: str = FILES) -> None:
    apply_catalog(tally.engine, CLOCK, tenant_id, [parse_catalog_text("catalog.yaml", text)])


def _code(call: object) -> str:
    with pytest.raises(Rejected) as raised:
        call()  # type: ignore[operator]
    return raised.value.rejection.code


def test_a_product_deleted_through_the_api_comes_back_on_the_next_apply(tally: Tally, tenant_id: uuid.UUID) -> None:
    _apply(tally, tenant_id)
    first = get_product(tally.engine, tenant_id, "spare")
    delete_catalog_object(tally.engine, tenant_id, kind=Labeled.PRODUCT, code="spare")
    assert _code(lambda: get_product(tally.engine, tenant_id, "spare")) == "product_not_found"
    _apply(tally, tenant_id)
    again = get_product(tally.engine, tenant_id, "spare")
    assert again.id != first.id and again.name == first.name


def test_a_plan_apply_created_is_published_and_cannot_be_deleted(tally: Tally, tenant_id: uuid.UUID) -> None:
    _apply(tally, tenant_id)
    assert _code(lambda: delete_catalog_object(tally.engine, tenant_id, kind=Labeled.PLAN, code="pro")) == (
        "plan_in_use"
    )


def test_a_never_published_plan_deleted_through_the_api_comes_back_published(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    created = create_plan(tally.engine, CLOCK, tenant_id, PlanInput(code="pro"))
    delete_catalog_object(tally.engine, tenant_id, kind=Labeled.PLAN, code="pro")
    _apply(tally, tenant_id)
    plan = get_plan(tally.engine, tenant_id, "pro")
    assert plan.id != created.id
    assert [(version.version, version.status) for version in list_plan_versions(tally.engine, tenant_id, "pro")] == [
        (1, "published")
    ]


def test_apply_leaves_what_the_files_no_longer_declare(tally: Tally, tenant_id: uuid.UUID) -> None:
    _apply(tally, tenant_id)
    _apply(tally, tenant_id, FILES.replace("  - {code: spare, name: Nothing sold yet}\n", ""))
    assert get_product(tally.engine, tenant_id, "spare").name == "Nothing sold yet"
