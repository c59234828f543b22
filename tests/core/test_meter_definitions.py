"""Meter definitions: validation codes in precedence, the stored document, what makes a new version."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.core.metering.meters import (
    FILTERS_MAX,
    GROUP_BY_MAX,
    Count,
    FilterOperator,
    Latest,
    MeterDefinitionInput,
    MeterLabels,
    Sum,
    TimeUnit,
    TimeWeightedSum,
    UniqueCount,
    definition_changes,
    definition_from_document,
)
from tally.core.rejections import Rejected


def _input(**overrides: Any) -> MeterDefinitionInput:
    fields: dict[str, Any] = {"event_type": "llm.call", "aggregation": "sum", "value_property": "tokens"}
    fields.update(overrides)
    return MeterDefinitionInput(**fields)


def _code(**overrides: Any) -> tuple[str, str | None]:
    with pytest.raises(Rejected) as caught:
        _input(**overrides).validate()
    return caught.value.rejection.code, caught.value.rejection.field


def test_a_valid_definition() -> None:
    definition = _input(
        filters=[
            {"property": "model", "operator": "in", "value": ["gpt", "o1"]},
            {"property": "tokens", "operator": "gt", "value": "10.5"},
            {"property": "cached", "operator": "equals", "value": False},
        ],
        group_by=["model", "region"],
    ).validate()
    assert definition.aggregation == Sum("tokens")
    assert definition.filters[0].values == ("gpt", "o1")
    assert definition.filters[1].values == (Decimal("10.5"),)
    assert definition.filters[1].operator is FilterOperator.GT
    assert definition.filters[2].values == (False,)
    assert definition.group_by == ("model", "region")


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"event_type": ""}, "event_type_invalid", "event_type"),
        ({"event_type": "x" * 256}, "event_type_invalid", "event_type"),
        ({"aggregation": "median"}, "aggregation_unknown", "aggregation"),
        ({"aggregation": "count"}, "value_property_not_allowed", "value_property"),
        ({"value_property": None}, "value_property_required", "value_property"),
        ({"value_property": "9lives"}, "property_name_invalid", "value_property"),
        ({"value_property": "a b"}, "property_name_invalid", "value_property"),
        ({"time_unit": "hour"}, "time_unit_not_allowed", "time_unit"),
        ({"aggregation": "time_weighted_sum", "time_unit": "week"}, "time_unit_unknown", "time_unit"),
        (
            {"filters": [{"property": "m", "operator": "eq", "value": "x"}]},
            "filter_operator_unknown",
            "filters[0].operator",
        ),
        (
            {"filters": [{"property": "", "operator": "equals", "value": "x"}]},
            "property_name_invalid",
            "filters[0].property",
        ),
        ({"filters": [{"property": "m", "operator": "in", "value": []}]}, "filter_value_invalid", "filters[0].value"),
        ({"filters": [{"property": "m", "operator": "in", "value": "x"}]}, "filter_value_invalid", "filters[0].value"),
        (
            {"filters": [{"property": "m", "operator": "in", "value": ["x"] * 101}]},
            "filter_values_exceed_limit",
            "filters[0].value",
        ),
        (
            {"filters": [{"property": "m", "operator": "in", "value": ["x", Decimal(1)]}]},
            "filter_values_must_share_a_type",
            "filters[0].value",
        ),
        (
            {"filters": [{"property": "m", "operator": "gt", "value": "ten"}]},
            "filter_value_invalid",
            "filters[0].value",
        ),
        ({"filters": [{"property": "m", "operator": "gt", "value": True}]}, "filter_value_invalid", "filters[0].value"),
        (
            {"filters": [{"property": "m", "operator": "equals", "value": None}]},
            "filter_value_invalid",
            "filters[0].value",
        ),
        (
            {"filters": [{"property": "m", "operator": "equals", "value": {"a": 1}}]},
            "filter_value_invalid",
            "filters[0].value",
        ),
        (
            {"filters": [{"property": "m", "operator": "equals", "value": "1", "value_type": "boolean"}]},
            "filter_value_invalid",
            "filters[0].value",
        ),
        (
            {"filters": [{"property": "m", "operator": "equals", "value": "1", "value_type": "date"}]},
            "filter_value_type_unknown",
            "filters[0].value_type",
        ),
        (
            {"filters": [{"property": "m", "operator": "equals", "value": "x"}] * (FILTERS_MAX + 1)},
            "filters_exceed_limit",
            "filters",
        ),
        ({"group_by": [f"k{index}" for index in range(GROUP_BY_MAX + 1)]}, "group_by_exceeds_limit", "group_by"),
        ({"group_by": ["model", "model"]}, "group_by_keys_must_be_distinct", "group_by"),
        ({"group_by": ["ok", "not ok"]}, "property_name_invalid", "group_by[1]"),
    ],
)
def test_rejections(overrides: dict[str, Any], code: str, field: str) -> None:
    assert _code(**overrides) == (code, field)


def test_precedence_is_fixed() -> None:
    # Everything is wrong: the event type is reported first, then the aggregation, and so on.
    assert _code(event_type="", aggregation="median", filters=[{"operator": "?"}], group_by=["a", "a"])[0] == (
        "event_type_invalid"
    )
    assert _code(aggregation="median", filters=[{"operator": "?"}])[0] == "aggregation_unknown"
    assert _code(filters=[{"property": "m", "operator": "?"}], group_by=["a", "a"])[0] == "filter_operator_unknown"


def test_numbers_may_come_as_text_when_typed() -> None:
    definition = _input(
        filters=[
            {"property": "m", "operator": "equals", "value": "12.50", "value_type": "number"},
            {"property": "n", "operator": "in", "value": ["1", 2], "value_type": "number"},
            {"property": "o", "operator": "equals", "value": "12.50"},
        ]
    ).validate()
    assert definition.filters[0].values == (Decimal("12.50"),)
    assert definition.filters[1].values == (Decimal(1), Decimal(2))
    assert definition.filters[2].values == ("12.50",)


def test_floats_never_enter() -> None:
    with pytest.raises(TypeError):
        _input(filters=[{"property": "m", "operator": "equals", "value": 0.1}]).validate()


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ({"aggregation": "count", "value_property": None}, Count()),
        ({"aggregation": "unique_count", "value_property": "user"}, UniqueCount("user")),
        ({"aggregation": "latest"}, Latest("tokens")),
        ({"aggregation": "time_weighted_sum"}, TimeWeightedSum("tokens", TimeUnit.HOUR)),
        ({"aggregation": "time_weighted_sum", "time_unit": "second"}, TimeWeightedSum("tokens", TimeUnit.SECOND)),
    ],
)
def test_aggregations(aggregation: dict[str, Any], expected: object) -> None:
    assert _input(**aggregation).validate().aggregation == expected


def test_labels() -> None:
    MeterLabels(code="a", name="A")
    MeterLabels(code="a" + "b" * 62, name="A")
    for code in ("", "A", "1a", "a-b", "a" * 64):
        with pytest.raises(Rejected) as caught:
            MeterLabels(code=code, name="x")
        assert caught.value.rejection.code == "meter_code_invalid"
    with pytest.raises(Rejected, match="meter_name_invalid"):
        MeterLabels(code="a", name="")
    with pytest.raises(Rejected, match="meter_description_too_long"):
        MeterLabels(code="a", name="x", description="d" * 1001)


_scalars = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-1000, max_value=1000),
)


@st.composite
def _definitions(draw: st.DrawFn) -> MeterDefinitionInput:
    aggregation = draw(st.sampled_from(["count", "sum", "max", "min", "unique_count", "latest", "time_weighted_sum"]))
    filters = []
    for index in range(draw(st.integers(0, 4))):
        operator = draw(st.sampled_from(["equals", "in", "gt", "lte"]))
        if operator == "in":
            kind = draw(st.sampled_from(["s", "b", "n"]))
            pool = {"s": st.text(max_size=3), "b": st.booleans(), "n": st.integers(-5, 5).map(Decimal)}[kind]
            value: object = draw(st.lists(pool, min_size=1, max_size=3))
        elif operator == "equals":
            value = draw(_scalars)
        else:
            value = draw(st.integers(-100, 100).map(Decimal))
        filters.append({"property": f"p{index}", "operator": operator, "value": value})
    return MeterDefinitionInput(
        event_type=draw(st.sampled_from(["a", "b.c"])),
        aggregation=aggregation,
        value_property=None if aggregation == "count" else "v",
        time_unit=draw(st.sampled_from([None, "second", "day"])) if aggregation == "time_weighted_sum" else None,
        filters=filters,
        group_by=draw(st.lists(st.sampled_from(["g1", "g2", "g3"]), unique=True, max_size=3)),
    )


@given(_definitions())
def test_documents_round_trip_and_inputs_rebuild(definition_input: MeterDefinitionInput) -> None:
    definition = definition_input.validate()
    assert definition_from_document(definition.document()) == definition
    assert MeterDefinitionInput.of(definition).validate() == definition
    assert definition_changes(definition, definition_from_document(definition.document())) == ()


def test_what_makes_a_new_version() -> None:
    base = _input(
        filters=[{"property": "m", "operator": "equals", "value": Decimal("1")}], group_by=["model"]
    ).validate()
    same_number = _input(filters=[{"property": "m", "operator": "equals", "value": Decimal("1.0")}], group_by=["model"])
    assert definition_changes(base, same_number.validate()) == ()
    boolean = _input(filters=[{"property": "m", "operator": "equals", "value": True}], group_by=["model"])
    assert definition_changes(base, boolean.validate()) == ("filters",)
    text = _input(filters=[{"property": "m", "operator": "equals", "value": "1"}], group_by=["model"])
    assert definition_changes(base, text.validate()) == ("filters",)
    assert definition_changes(base, _input(aggregation="max", group_by=["model"]).validate()) == (
        "aggregation",
        "filters",
    )
    regrouped = _input(filters=[{"property": "m", "operator": "equals", "value": Decimal(1)}], group_by=["region"])
    assert definition_changes(base, regrouped.validate()) == ("group_by",)
    hours = _input(aggregation="time_weighted_sum").validate()
    assert definition_changes(hours, _input(aggregation="time_weighted_sum", time_unit="day").validate()) == (
        "time_unit",
    )
