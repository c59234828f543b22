"""The body of a label update (`PATCH /v1/products/{code}`, features, plans): any subset of `name`,
`description` and `metadata`. A field that exists but never changes (a code, a feature's kind, a
plan's versions) is refused by name — 422 `field_immutable` with that field — rather than as an
unknown field, so a client learns why; anything else unknown is 422 `unknown_field`."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from tally.api.schemas import ApiModel, Metadata
from tally.app.update_catalog_labels import LabelUpdate
from tally.core.rejections import Rejected


class LabelsPatch(ApiModel):
    # Fields of the resource that never change through this body, and what changes them instead.
    IMMUTABLE: ClassVar[dict[str, str]] = {"code": "a code is the object's identity"}

    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    metadata: Metadata | None = Field(default=None, description="Replaces the metadata whole.")

    @model_validator(mode="before")
    @classmethod
    def _refuse_immutable(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for field, reason in cls.IMMUTABLE.items():
                if field in data:
                    raise Rejected.because("field_immutable", f"{field} never changes here: {reason}", field)
        return data

    def update(self) -> LabelUpdate:
        return LabelUpdate(name=self.name, description=self.description, metadata=self.metadata)
