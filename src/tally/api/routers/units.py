"""/v1/units: custom units (credits, tokens) with a declared scale. ISO 4217 currencies need none."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import Field, StringConstraints

from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.problems import register_status
from tally.api.schemas import ApiModel
from tally.app.ledger_accounts import create_unit
from tally.bootstrap import Tally

router = APIRouter(prefix="/units", tags=["Ledger"])
register_status("unit_exists_with_different_scale", 409)


class CreateUnit(ApiModel):
    code: Annotated[str, StringConstraints(min_length=2, max_length=16)] = Field(
        description="Upper case, e.g. CREDITS; never an ISO 4217 code."
    )
    scale: int = Field(ge=0, le=18, description="Decimal places of the unit's smallest part.")
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class UnitResource(ApiModel):
    object: Literal["unit"] = "unit"
    code: str
    scale: int
    name: str


@router.post("", status_code=201, response_model=UnitResource, summary="Declare a custom unit (201), or get it (200)")
def create_custom_unit(
    body: CreateUnit,
    response: Response,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> UnitResource:
    record, created = create_unit(tally.engine, principal.tenant_id, body.code, body.scale, body.name)
    response.status_code = 201 if created else 200
    return UnitResource(code=record.code, scale=record.scale, name=record.name)
