"""`tally catalog plan` and `apply` end to end on the example catalog."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from typer.testing import CliRunner

from tally.adapters.ids import PRICE, format_id
from tally.adapters.pagination import PageRequest
from tally.app import catalog_queries
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app
from tally.cli._context import resolve_tenant

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "catalog"


def test_plan_apply_then_nothing_to_do(database_url: str, tally: Tally, tmp_path: Path) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    create_tenant(tally.engine, tenant)
    runner = CliRunner()

    def run(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "200"}
        )
        return result.exit_code, result.output

    code, output = run("catalog", "plan", str(EXAMPLE))
    assert code == 0 and "pro_tokens" in output and "Plan:" in output, output
    code, output = run("catalog", "plan", str(EXAMPLE), "--json")
    planned = json.loads(output)
    assert planned["applied"] is False and planned["summary"]["create"] == 11, planned["summary"]
    code, output = run("catalog", "apply", str(EXAMPLE), "--json")
    assert code == 0 and json.loads(output)["changes"] == planned["changes"], output
    code, output = run("catalog", "apply", str(EXAMPLE))
    assert code == 0 and "No changes" in output, output

    # Preview a stored price by id: 20 started millions of tokens, the first 10 free, then $2 each.
    tenant_id = resolve_tenant(tally, tenant)
    price = catalog_queries.list_prices(tally.engine, tenant_id, PageRequest(), code="pro_tokens").items[0]
    code, output = run("price", "preview", format_id(PRICE, price.id), "-q", "19500000", "--json")
    assert code == 0 and json.loads(output)["amount"] == "20", output
    code, output = run("price", "preview", format_id(PRICE, price.id), "--customer", "nobody", "-q", "1")
    assert code == 1 and "customer_not_found" in output, output

    changed = tmp_path / "catalog.yaml"
    changed.write_text((EXAMPLE / "catalog.yaml").read_text().replace("amount: 49", "amount: 59"))
    code, output = run("catalog", "plan", str(changed))
    assert code == 0 and "replace" in output and "version 2" in output, output

    broken = tmp_path / "broken.yaml"
    broken.write_text("products:\n  - code: api\n    colour: red\n")
    code, output = run("catalog", "apply", str(broken))
    assert code == 1 and "catalog_field_unknown" in output and "products[0].colour" in output, output
    code, output = run("catalog", "plan", str(tmp_path / "missing.yaml"))
    assert code == 1 and "catalog_file_not_found" in output
