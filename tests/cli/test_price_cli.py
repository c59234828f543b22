"""`tally price preview`: specs from YAML, JSON files and inline JSON; exact numbers; custom units."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from typer.testing import CliRunner

from tally.app.ledger_accounts import create_unit
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app

YAML_SPEC = """\
model: graduated
currency: USD
tiers:
  - {up_to: 1000, unit_price: 0}
  - {up_to: 10000, unit_price: 0.002, flat_fee: 5}
  - {unit_price: 0.001}
"""


def _run(*arguments: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(arguments), env={"COLUMNS": "200", **(env or {})})
    return result.exit_code, result.output


def test_preview_a_yaml_spec(tmp_path: Path) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text(YAML_SPEC, encoding="utf-8")
    code, output = _run("price", "preview", str(spec), "--quantity", "15000")
    assert code == 0, output
    assert "tier_flat_fee" in output and "amount 28 USD → 2800 minor units" in output
    code, output = _run("price", "preview", str(spec), "-q", "15000", "--json")
    assert code == 0, output
    document = json.loads(output)
    assert (document["amount"], document["amount_minor"]) == ("28", 2800)
    assert document["price"]["tiers"][1]["unit_price"] == "0.002"  # YAML's 0.002 read as a decimal


def test_inline_json_events_and_summary() -> None:
    card = '{"model": "percentage", "currency": "USD", "rate_percent": 2.9, "fixed_fee_per_event": 0.30}'
    code, output = _run("price", "preview", card, "--events", "[100, 10, 0.5]", "--json")
    assert code == 0, output
    assert json.loads(output)["amount"] == "4.1045"
    code, output = _run("price", "preview", card, "--summary", "3:110.5", "--json")
    assert json.loads(output)["amount_minor"] == 410


def test_rejections_are_one_line_errors(tmp_path: Path) -> None:
    code, output = _run("price", "preview", '{"model": "graduated", "currency": "USD", "tiers": [{"up_to": 5}]}')
    assert code == 1 and "last_tier_must_be_unbounded" in output
    code, output = _run("price", "preview", str(tmp_path / "missing.json"))
    assert code == 1 and "price_spec_not_found" in output
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    code, output = _run("price", "preview", str(broken))
    assert code == 1 and "price_spec_invalid" in output
    spec = '{"model": "per_unit", "currency": "USD", "unit_price": 1}'
    code, output = _run("price", "preview", spec, "-q", "1", "--summary", "1:1")
    assert code == 1 and "usage_must_be_given_once" in output


def test_a_custom_unit_is_the_tenants(database_url: str, tally: Tally) -> None:
    tenant = f"price-cli-{uuid.uuid4().hex[:8]}"
    tenant_id = create_tenant(tally.engine, tenant)
    create_unit(tally.engine, tenant_id, "TOKENS", 0, "Tokens")
    spec = '{"model": "package", "currency": "TOKENS", "package_size": 1000, "package_price": 3}'
    env = {"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant}
    code, output = _run("price", "preview", spec, "-q", "2500", "--json", env=env)
    assert code == 0, output
    assert (json.loads(output)["amount"], json.loads(output)["currency"]) == ("9", "TOKENS")
    other = create_tenant(tally.engine, f"price-cli-{uuid.uuid4().hex[:8]}")
    code, output = _run("price", "preview", spec, "-q", "1", env={**env, "TALLY_TENANT": str(other)})
    assert code == 1 and "unit_must_be_known" in output
