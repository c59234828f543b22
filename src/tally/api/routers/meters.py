"""/v1/meters: billable metrics. Reading needs `read`; creating and changing need `admin`.

A meter's code is stable; what it measures lives in immutable versions. `POST /v1/meters/{code}`
(or PATCH) changes labels in place, and a changed definition (event_type, aggregation,
value_property, time_unit, filters, group_by) makes a new version — the answer says which
(`version`, `version_created`). History is never reinterpreted: earlier versions stay queryable.

JSON numbers in bodies are read exactly (as decimals, never floats). Filter values come back typed:
`{"value": "10", "value_type": "number"}`; sending that back means the same filter.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field, StrictBool, StrictStr

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.exact_json import exact_json_route
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.schemas import ApiModel, ListResponse, Metadata, Resource
from tally.app import meter_queries
from tally.app.create_meter import MeterInput, create_meter
from tally.app.meter_queries import MeterState, MeterVersionRow
from tally.app.update_meter import MeterUpdate, update_meter
from tally.bootstrap import Tally
from tally.core.metering.meters import (
    DEFINITION_FIELDS,
    FILTER_VALUES_MAX,
    FILTERS_MAX,
    GROUP_BY_MAX,
    MeterDefinition,
    MeterDefinitionInput,
    scalar_type,
)

router = APIRouter(prefix="/meters", tags=["Meters"], route_class=exact_json_route(nonfinite_as_decimal=False))

for _field in (*DEFINITION_FIELDS, "name", "description"):
    register_status(f"meter_exists_with_different_{_field}", 409)

Aggregation = Literal["count", "sum", "max", "min", "unique_count", "latest", "time_weighted_sum"]
Operator = Literal["equals", "in", "gt", "gte", "lt", "lte"]
TimeUnitName = Literal["second", "minute", "hour", "day"]
ValueType = Literal["string", "number", "boolean"]
Operand = StrictBool | Decimal | StrictStr


class FilterBody(ApiModel):
    property: str = Field(max_length=64, description="A top-level key of the event's properties.")
    operator: Operator
    value: Operand | Annotated[list[Operand], Field(max_length=FILTER_VALUES_MAX)] = Field(
        description='A string, number or boolean; a list for `in`. Equality is JSON equality (`"1"` is not `1`).'
    )
    value_type: ValueType | None = Field(
        default=None, description='Say "number" to give numbers as strings ("12.5"); default: the JSON type.'
    )


class DefinitionFields(ApiModel):
    event_type: str = Field(min_length=1, max_length=255, description="Events of this `type` are counted.")
    aggregation: Aggregation
    value_property: str | None = Field(
        default=None, max_length=64, description="The property aggregated (every aggregation but count)."
    )
    time_unit: TimeUnitName | None = Field(
        default=None, description="time_weighted_sum only: the time unit of the integral (default hour)."
    )
    filters: list[FilterBody] = Field(default_factory=list, max_length=FILTERS_MAX * 5)
    group_by: list[str] = Field(default_factory=list, max_length=GROUP_BY_MAX * 5)


class CreateMeter(DefinitionFields):
    code: str = Field(min_length=1, max_length=63, description="Stable identifier: ^[a-z][a-z0-9_]{0,62}$.")
    name: str | None = Field(default=None, max_length=200, description="Default: the code.")
    description: str = Field(default="", max_length=1000)
    metadata: Metadata = Field(default_factory=dict)


class UpdateMeter(ApiModel):
    """Any subset of fields. A definition field that differs from the latest version makes a new version."""

    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    metadata: Metadata | None = None
    event_type: str | None = Field(default=None, min_length=1, max_length=255)
    aggregation: Aggregation | None = None
    value_property: str | None = Field(default=None, max_length=64)
    time_unit: TimeUnitName | None = None
    filters: list[FilterBody] | None = Field(default=None, max_length=FILTERS_MAX * 5)
    group_by: list[str] | None = Field(default=None, max_length=GROUP_BY_MAX * 5)


class FilterResource(ApiModel):
    property: str
    operator: Operator
    value: str | bool | list[str | bool] = Field(description="Numbers as strings (see value_type).")
    value_type: ValueType


class DefinitionResource(ApiModel):
    event_type: str
    aggregation: Aggregation
    value_property: str | None
    time_unit: TimeUnitName | None
    filters: list[FilterResource]
    group_by: list[str]


class MeterVersionResource(DefinitionResource):
    object: Literal["meter_version"] = "meter_version"
    meter: str
    version: int
    created_at: datetime
    rollup_state: Literal["backfilling", "ready"] = Field(
        description="backfilling: rollups are being built from raw events (usage is computed from raw events)."
    )


class MeterResource(Resource):
    object: Literal["meter"] = "meter"
    code: str
    name: str
    description: str
    version: int = Field(description="The latest version: what usage queries use by default.")
    version_created: bool | None = Field(default=None, description="On update: whether this made a new version.")
    changed_fields: list[str] | None = Field(default=None, description="On update: the definition fields changed.")
    updated_at: datetime
    rollup_state: Literal["backfilling", "ready"]
    event_type: str
    aggregation: Aggregation
    value_property: str | None
    time_unit: TimeUnitName | None
    filters: list[FilterResource]
    group_by: list[str]


def _text(value: Any) -> str | bool:
    return value if isinstance(value, bool | str) else str(value)


def _definition(definition: MeterDefinition) -> dict[str, Any]:
    document = definition.document()
    return {
        "event_type": definition.event_type,
        "aggregation": definition.kind.value,
        "value_property": definition.value_property,
        "time_unit": document["time_unit"],
        "filters": [
            FilterResource(
                property=item.property,
                operator=item.operator.value,
                value=[_text(value) for value in item.values] if item.operator == "in" else _text(item.values[0]),
                value_type=scalar_type(item.values[0]),  # type: ignore[arg-type]
            )
            for item in definition.filters
        ],
        "group_by": list(definition.group_by),
    }


def _meter(state: MeterState) -> MeterResource:
    meter, version = state.meter, state.version
    return MeterResource(
        id=ids.format_id(ids.METER, meter.id),
        created_at=meter.created_at,
        metadata={str(key): str(value) for key, value in meter.metadata.items()},
        code=meter.code,
        name=meter.name,
        description=meter.description,
        version=version.version,
        updated_at=meter.updated_at,
        rollup_state=version.rollup_state,  # type: ignore[arg-type]
        **_definition(version.definition),
    )


def _version(row: MeterVersionRow) -> MeterVersionResource:
    return MeterVersionResource(
        meter=row.code,
        version=row.version,
        created_at=row.created_at,
        rollup_state=row.rollup_state,  # type: ignore[arg-type]
        **_definition(row.definition),
    )


def _filters(filters: list[FilterBody]) -> tuple[dict[str, object], ...]:
    return tuple(item.model_dump() for item in filters)


@router.post("", status_code=201, response_model=MeterResource, summary="Create a meter (version 1)")
def create(
    body: CreateMeter,
    response: Response,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> MeterResource:
    """Creating a meter that exists with the same definition and labels answers it (200); with a
    different one, 409 `meter_exists_with_different_<field>` (update it instead)."""
    created = create_meter(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        MeterInput(
            code=body.code,
            name=body.name,
            description=body.description,
            metadata=body.metadata,
            definition=MeterDefinitionInput(
                event_type=body.event_type,
                aggregation=body.aggregation,
                value_property=body.value_property,
                time_unit=body.time_unit,
                filters=_filters(body.filters),
                group_by=tuple(body.group_by),
            ),
        ),
    )
    response.status_code = 201 if created.created else 200
    return _meter(created.state)


@router.get("", response_model=ListResponse[MeterResource], summary="List meters, oldest first")
def list_meters(
    request: Request,
    page: PageRequest = Depends(page_request(ids.METER)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[MeterResource]:
    found = meter_queries.list_meters(tally.engine, principal.tenant_id, page)
    return list_response(found.map(_meter), request)


@router.get("/{code}", response_model=MeterResource, summary="Get a meter (its latest version)")
def get_meter(
    code: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> MeterResource:
    return _meter(meter_queries.get_meter(tally.engine, principal.tenant_id, code))


def _update(tally: Tally, principal: Principal, code: str, body: UpdateMeter) -> MeterResource:
    sent = body.model_fields_set
    definition: dict[str, Any] = {}
    for name in DEFINITION_FIELDS:
        if name in sent:
            value = getattr(body, name)
            if name == "filters":
                value = _filters(value or [])
            elif name == "group_by":
                value = tuple(value or ())
            definition[name] = value
    updated = update_meter(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        code,
        MeterUpdate(name=body.name, description=body.description, metadata=body.metadata, definition=definition),
    )
    resource = _meter(updated.state)
    resource.version_created = updated.version_created
    resource.changed_fields = list(updated.changed_fields)
    return resource


@router.patch("/{code}", response_model=MeterResource, summary="Update a meter")
def patch_meter(
    code: str,
    body: UpdateMeter,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> MeterResource:
    """Labels change in place; a changed definition makes version N+1 (its rollups are then backfilled
    from raw events). To drop `value_property` (e.g. to become a count), send it as null."""
    return _update(tally, principal, code, body)


@router.post("/{code}", response_model=MeterResource, summary="Update a meter (same as PATCH)")
def post_meter(
    code: str,
    body: UpdateMeter,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> MeterResource:
    return _update(tally, principal, code, body)


class VersionList(ApiModel):
    object: Literal["list"] = "list"
    data: list[MeterVersionResource]


@router.get("/{code}/versions", response_model=VersionList, summary="A meter's versions, oldest first")
def list_versions(
    code: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> VersionList:
    return VersionList(
        data=[_version(row) for row in meter_queries.list_versions(tally.engine, principal.tenant_id, code)]
    )
