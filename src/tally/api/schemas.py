"""Shapes shared by every endpoint: strict request models, resources, lists, metadata."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

METADATA_KEYS_MAX = 50
METADATA_KEY_LENGTH_MAX = 40
METADATA_VALUE_LENGTH_MAX = 500

# Free-form labels a client attaches to an object (Stripe-style): string keys to string values.
Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=METADATA_KEY_LENGTH_MAX)],
        Annotated[str, StringConstraints(max_length=METADATA_VALUE_LENGTH_MAX)],
    ],
    Field(max_length=METADATA_KEYS_MAX),
]


class ApiModel(BaseModel):
    """Base of every request body: an unknown field is an error (`unknown_field`), never ignored."""

    model_config = ConfigDict(extra="forbid")


class Resource(BaseModel):
    """Base of every object the API returns. Subclasses narrow `object` to a `Literal`."""

    id: str = Field(description="Prefixed id, e.g. `key_01jd…`; ids sort by creation time.")
    object: str = Field(description="The type of object.")
    created_at: datetime
    metadata: dict[str, str] = Field(default_factory=dict)


ItemT = TypeVar("ItemT", bound=BaseModel)


class ListResponse(BaseModel, Generic[ItemT]):
    """One page of a list. Pass `next_cursor` back as `starting_after` (or, when paging with
    `ending_before`, as `ending_before`) to continue in the same direction."""

    object: Literal["list"] = "list"
    data: list[ItemT]
    has_more: bool
    next_cursor: str | None
    url: str
