"""`tally price preview`: rate some usage against a price spec, to try a pricing model before launch.

    tally price preview pricing/api.yaml --quantity 15000
    tally price preview '{"model": "per_unit", "currency": "USD", "unit_price": "0.002"}' -q 1200
    tally price preview card.json --events '[{"value": "100"}, {"value": "10"}]'
    tally price preview price_01jd… --customer acme -q 3000

The spec is a price document (docs/pricing.md) as a JSON or YAML file, or inline JSON. Numbers are
read exactly (YAML's 0.1 is the decimal 0.1, never a float). Nothing is stored; the database is
opened only for a price in a custom unit, which is the tenant's (`--tenant`), or for a stored price
by id (`price_…`), optionally as a customer pays it (`--customer`, by external id or `cus_…`: their
override applies).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tally.cli._context import console, fail, open_tally, rejections_as_errors, resolve_tenant

app = typer.Typer(help="Prices: try a price spec against some usage.", no_args_is_help=True)

TenantOption = typer.Option(
    None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name (only for prices in a custom unit)."
)
SPEC_TEXT_LENGTH_MAX = 1_000_000


def _exact_yaml(text: str) -> Any:
    """YAML with every float read as the decimal it spells (and no other surprises: safe loader)."""
    import yaml

    class ExactLoader(yaml.SafeLoader):  # type: ignore[misc]  # no stubs for PyYAML
        pass

    def decimal_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
        text = str(loader.construct_scalar(node)).replace("_", "")
        lowered = text.lower()
        if lowered in (".nan", ".inf", "+.inf", "-.inf"):
            return Decimal(lowered.replace(".", ""))
        return Decimal(text)

    ExactLoader.add_constructor("tag:yaml.org,2002:float", decimal_scalar)
    return yaml.load(text, Loader=ExactLoader)  # noqa: S506 - a SafeLoader subclass


def load_spec(spec: str) -> Any:
    """A price document from inline JSON, or from a .json / .yaml / .yml file."""
    if spec.lstrip().startswith("{"):
        text, is_yaml = spec, False
    else:
        path = Path(spec)
        if not path.is_file():
            fail("price_spec_not_found", f"{spec} is neither inline JSON nor a file")
        if path.stat().st_size > SPEC_TEXT_LENGTH_MAX:
            fail("price_spec_too_large", f"a price spec is at most {SPEC_TEXT_LENGTH_MAX} bytes")
        text, is_yaml = path.read_text(encoding="utf-8"), path.suffix.lower() in (".yaml", ".yml")
    try:
        if is_yaml:
            return _exact_yaml(text)
        return json.loads(text, parse_float=Decimal, parse_constant=Decimal)
    except ValueError as error:
        fail("price_spec_invalid", f"the spec is not valid {'YAML' if is_yaml else 'JSON'}: {error}")
    except Exception as error:  # yaml.YAMLError, without importing yaml for JSON specs
        fail("price_spec_invalid", f"the spec is not valid YAML: {error}")


def _events(text: str) -> list[tuple[Decimal, dict[str, str | None] | None]]:
    source = Path(text).read_text(encoding="utf-8") if not text.lstrip().startswith("[") else text
    try:
        items = json.loads(source, parse_float=Decimal, parse_constant=Decimal)
    except ValueError as error:
        fail("events_invalid", f"--events is not JSON: {error}")
    if not isinstance(items, list):
        fail("events_invalid", "--events is a JSON list of numbers or of {value, group} objects")
    events: list[tuple[Decimal, dict[str, str | None] | None]] = []
    for item in items:
        if isinstance(item, dict):
            events.append((_decimal(item.get("value"), "events"), item.get("group")))
        else:
            events.append((_decimal(item, "events"), None))
    return events


def _decimal(value: Any, option: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        fail("value_must_be_number", f"{option}: {value!r} is not a number")
    try:
        return Decimal(value)
    except ArithmeticError:
        fail("value_must_be_number", f"{option}: {value!r} is not a number")


def _stored_price(price_id: str, customer: str | None, tenant: str | None) -> Any:
    """The tenant's stored price, or what `customer` pays for it now (their clock's now)."""
    from tally.adapters.ids import CUSTOMER, PRICE, parse_id
    from tally.app.customer_queries import get_customer_by_external_id
    from tally.app.preview_price import stored_price_for_preview
    from tally.core.rejections import Rejected

    parsed = parse_id(PRICE, price_id)
    with open_tally() as tally, rejections_as_errors():
        if parsed is None:
            raise Rejected.because("price_not_found", f"no price {price_id!r}", "price")
        tenant_id = resolve_tenant(tally, tenant)
        customer_id = None
        if customer is not None:
            customer_id = (
                parse_id(CUSTOMER, customer) or get_customer_by_external_id(tally.engine, tenant_id, customer).id
            )
        found = stored_price_for_preview(tally.engine, tally.clock, tenant_id, parsed, customer_id=customer_id)
    return found.price


@app.command("preview")
def preview(
    spec: str = typer.Argument(..., help="A price spec: a .json/.yaml file, or inline JSON."),
    quantity: str | None = typer.Option(None, "--quantity", "-q", help="The usage as one quantity."),
    events: str | None = typer.Option(
        None, "--events", help='Event values as JSON (or a file): [12.5, 3] or [{"value": 1, "group": {...}}].'
    ),
    summary: str | None = typer.Option(None, "--summary", help="COUNT:SUM of event values, e.g. 3:110.5."),
    no_minimum: bool = typer.Option(False, "--no-minimum", help="Leave out the per-period minimum."),
    as_json: bool = typer.Option(False, "--json", help="Print the preview as JSON."),
    customer: str | None = typer.Option(
        None, "--customer", help="With a price id: the customer (external id or cus_…) whose rate applies."
    ),
    tenant: str | None = TenantOption,
) -> None:
    """Rate usage against a price spec and show the amount and how it was reached."""
    from tally.app.preview_price import (
        PreviewResult,
        PricePreview,
        matrix_dimensions,
        preview_price,
        preview_usage,
        rate_price,
        rating_document,
    )
    from tally.core import money

    stored = _stored_price(spec, customer, tenant) if spec.startswith("price_") else None
    if customer is not None and stored is None:
        fail("customer_needs_a_price_id", "--customer applies to a stored price (price_…)")
    document = stored.document() if stored is not None else load_spec(spec)
    summary_pair = None
    if summary is not None:
        count, separator, total = summary.partition(":")
        if not separator or not count.isdigit():
            fail("summary_invalid", "--summary is COUNT:SUM, e.g. 3:110.5")
        summary_pair = (int(count), _decimal(total, "--summary"))
    with rejections_as_errors():
        usage = preview_usage(
            matrix_dimensions(document) if isinstance(document, dict) else None,
            quantity=_decimal(quantity, "--quantity") if quantity is not None else None,
            events=_events(events) if events is not None else None,
            summary=summary_pair,
        )
        request = PricePreview(price=document, usage=usage, apply_minimum=not no_minimum)
        code = document.get("currency") if isinstance(document, dict) else None
        result: PreviewResult
        if stored is not None:
            result = rate_price(stored, usage, apply_minimum=not no_minimum)
        elif isinstance(code, str) and code not in money.ISO_4217_MINOR_UNITS:
            with open_tally() as tally:  # a custom unit is the tenant's: look it up
                result = preview_price(tally.engine, resolve_tenant(tally, tenant), request)
        else:
            result = preview_price(None, None, request)
    output = rating_document(result)
    if as_json:
        console.print_json(json.dumps(output))
        return
    table = Table("line", "tier / group", "quantity", "unit price", "amount")
    for line in output["breakdown"]:
        where = str(line.get("tier", "")) if "tier" in line else ""
        if "group" in line:
            where = ", ".join(f"{name}={value}" for name, value in line["group"].items())
        table.add_row(line["kind"], where, line["quantity"], line["unit_price"] or "", line["amount"])
    console.print(table)
    unit = result.rating.unit
    console.print(
        f"amount {output['amount']} {unit.code} → {output['amount_minor']} minor units "
        f"({money.decimal_from_minor(output['amount_minor'], unit)} {unit.code}, rounded {result.price.rounding})"
    )
