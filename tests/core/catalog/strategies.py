"""Random catalog files (as parsed YAML) over a small alphabet of codes, so that successive
catalogs overlap: the same codes with changed prices, dropped prices, new plan content."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

PRODUCTS = ("api", "seats")
PRICE_CODES = ("p1", "p2", "p3", "p4")
AMOUNTS = ("1", "2.5", "10")


@st.composite
def catalog_files(draw: st.DrawFn) -> dict[str, Any]:
    products = draw(st.lists(st.sampled_from(PRODUCTS), min_size=1, unique=True))
    features = draw(st.lists(st.sampled_from(("sso", "limit")), unique=True))
    prices = []
    for code in draw(st.lists(st.sampled_from(PRICE_CODES), unique=True)):
        model = draw(st.sampled_from(("flat_fee", "per_unit", "metered")))
        price: dict[str, Any] = {"code": code, "product": draw(st.sampled_from(products)), "currency": "USD"}
        amount = draw(st.sampled_from(AMOUNTS))
        if model == "flat_fee":
            price.update(model="flat_fee", amount=amount)
        elif model == "per_unit":
            price.update(model="per_unit", unit_price=amount)
        else:
            price.update(model="per_unit", unit_price=amount, meter="calls")
        if draw(st.booleans()):
            price["metadata"] = {"tag": draw(st.sampled_from(("a", "b")))}
        prices.append(price)
    plans = []
    for code in draw(st.lists(st.sampled_from(("basic", "pro")), unique=True)):
        chosen = draw(st.lists(st.sampled_from([price["code"] for price in prices]), unique=True)) if prices else []
        items: list[Any] = []
        for item in chosen:
            metered = next(price for price in prices if price["code"] == item).get("meter") is not None
            quantity = None if metered else draw(st.sampled_from((None, 1, 3)))
            items.append(item if quantity is None else {"price": item, "quantity": quantity})
        entitlements: dict[str, Any] = {}
        if "sso" in features and draw(st.booleans()):
            entitlements["sso"] = draw(st.booleans())
        if "limit" in features and draw(st.booleans()):
            entitlements["limit"] = draw(st.sampled_from((0, 5)))
        plans.append(
            {
                "code": code,
                "name": draw(st.sampled_from(("Plan", "Renamed"))),
                "trial_days": draw(st.sampled_from((0, 14))),
                "prices": items,
                "entitlements": entitlements,
            }
        )
    return {
        "meters": [
            draw(
                st.sampled_from(
                    (
                        {"code": "calls", "event_type": "api.call", "aggregation": "count"},
                        {"code": "calls", "event_type": "api.call", "aggregation": "sum", "value_property": "n"},
                    )
                )
            )
        ],
        "products": [{"code": code, "name": code.upper()} for code in products],
        "features": [{"code": code, "kind": "boolean" if code == "sso" else "limit"} for code in features],
        "prices": prices,
        "plans": plans,
    }
