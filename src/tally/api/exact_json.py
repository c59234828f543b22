"""Routes whose JSON bodies keep numbers exact: a decimal in the body arrives as `Decimal`, never
as `float`, so amounts and quantities are exact from the wire on (prices, meters).

`NaN`, `Infinity` and `-Infinity` are not JSON, but Python's parser accepts them. A router chooses
what they become: `Decimal` (prices: the price's own rules then refuse them with a stable code,
`price_must_be_finite`) or Python's default (meters: the field's own validation sees a float).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def exact_json_route(*, nonfinite_as_decimal: bool) -> type[APIRoute]:
    """An `APIRoute` class for `APIRouter(route_class=…)` that parses bodies exactly."""
    parse_constant: Callable[[str], Any] | None = Decimal if nonfinite_as_decimal else None

    class ExactJsonRequest(Request):
        async def json(self) -> Any:
            if not hasattr(self, "_json"):
                self._json = json.loads(await self.body(), parse_float=Decimal, parse_constant=parse_constant)
            return self._json

    class ExactJsonRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def exact(request: Request) -> Response:
                return await handler(ExactJsonRequest(request.scope, request.receive))

            return exact

    return ExactJsonRoute
