"""The /v1 routers.

Each module named in `ROUTERS` exposes `router = APIRouter(prefix="/<resource>", tags=[…])`;
`create_app` mounts it under `/v1`. A listed module that does not exist yet is skipped, so a router
can be listed before it is written. Adding one: create `tally/api/routers/<name>.py` and list it.
"""

from __future__ import annotations

import importlib
import logging

from fastapi import APIRouter

logger = logging.getLogger(__name__)

ROUTERS: tuple[str, ...] = (
    "api_keys",
    "charges",
    "customers",
    "events",
    "features",
    # Before "invoices": its /invoices/export and /invoices/{id}.pdf must not be read as an invoice id.
    "invoice_documents",
    "invoices",
    "late_usage",
    "ledger",
    "meters",
    "plans",
    "price_overrides",
    "prices",
    "products",
    "subscriptions",
    "terms",
    "test_clocks",
    "units",
    "usage",
)


def load_routers() -> list[APIRouter]:
    routers: list[APIRouter] = []
    for name in ROUTERS:
        module_name = f"{__name__}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise  # the router exists but imports something missing: a real error
            logger.debug("router module %s not present; skipped", module_name)
            continue
        router = getattr(module, "router", None)
        if not isinstance(router, APIRouter):
            raise TypeError(f"{module_name} must define `router = APIRouter(...)`")
        routers.append(router)
    return routers
