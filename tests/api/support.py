"""Helpers for API tests."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from fastapi import FastAPI

from tally.api.app import create_app
from tally.bootstrap import Tally

with warnings.catch_warnings():
    # Starlette suggests httpx2 for its test client; httpx is what is installed and works.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = ["Headers", "TestClient", "app_with", "bearer"]

Headers = dict[str, str]


def bearer(secret: str) -> Headers:
    return {"Authorization": f"Bearer {secret}"}


def app_with(tally: Tally, **settings: Any) -> FastAPI:
    """A fresh app on the same database, optionally with some settings changed."""
    if settings:
        tally = dataclasses.replace(tally, settings=tally.settings.model_copy(update=settings))
    return create_app(tally)
