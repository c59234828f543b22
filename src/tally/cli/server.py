"""`tally serve`: the HTTP API (and, with --with-worker, the job runner) in one process group."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

import typer
from rich.panel import Panel

from tally.adapters.ids import API_KEY, TENANT, format_id
from tally.adapters.logging import configure_logging
from tally.app.api_keys import create_api_key
from tally.app.audit import ACTOR_CLI, AuditEntry, record_audit
from tally.app.tenants import any_tenant_exists, create_tenant, find_tenants_by_name
from tally.bootstrap import Tally, build
from tally.cli._context import console
from tally.cli.demo import load_demo
from tally.settings import Settings
from tally.worker import runtime

logger = logging.getLogger("tally.serve")

# The API is served by import string, so each API process builds its own app.
APP_FACTORY = "tally.api.asgi:app_factory"
DEMO_TENANT = "demo"


def _seed_demo(tally: Tally, api_url: str) -> None:
    """On an empty database: a "demo" tenant and an admin key, printed once. Then the demo data."""
    if not any_tenant_exists(tally.engine):
        tenant_id = create_tenant(tally.engine, DEMO_TENANT)
        key, secret = create_api_key(tally.engine, tenant_id, "demo", ["admin"])
        for action, object_type, object_id in (
            ("tally tenants create", "tenant", format_id(TENANT, tenant_id)),
            ("tally api-keys create", "api_key", format_id(API_KEY, key.id)),
        ):
            record_audit(
                tally.engine,
                AuditEntry(
                    tenant_id=tenant_id, actor=ACTOR_CLI, action=action, object_type=object_type, object_id=object_id
                ),
            )
        console.print(
            Panel(
                "\n".join(
                    [
                        f"API        {api_url}/v1",
                        f"docs       {api_url}/docs",
                        f"admin key  [bold]{secret}[/bold]",
                        "",
                        "The key is shown once. Try:",
                        f"  curl -H 'Authorization: Bearer {secret}' {api_url}/v1/api_keys",
                    ]
                ),
                title="Tally demo",
                expand=False,
            ),
            highlight=False,
        )
    else:
        console.print(
            f"API at {api_url}/v1 (docs: {api_url}/docs). Demo key: shown on first start only; "
            f"make another with `tally api-keys create --tenant {DEMO_TENANT}`.",
            highlight=False,
        )
    if find_tenants_by_name(tally.engine, DEMO_TENANT):
        load_demo(tally)  # idempotent: on later starts it finds everything there and writes nothing


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the main app."""

    @app.command("serve")
    def serve(
        host: str | None = typer.Option(None, "--host", help="Interface to listen on (default: TALLY_API_HOST)."),
        port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Default: TALLY_API_PORT."),
        workers: int | None = typer.Option(
            None, "--workers", min=1, max=64, help="API processes (default: TALLY_API_WORKERS)."
        ),
        with_worker: bool = typer.Option(False, "--with-worker", help="Also run the job runner in this process."),
        demo: bool = typer.Option(False, "--demo", help="Seed a demo tenant, key and data on an empty database."),
    ) -> None:
        """Serve the HTTP API. Migrates the database first."""
        import uvicorn

        settings = Settings()
        configure_logging(settings.log_level, settings.log_format)
        host = host or settings.api_host
        port = port or settings.api_port
        workers = workers or settings.api_workers
        if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Several processes: metrics are summed through files in a directory they share.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tally-metrics-")
        tally = build(settings)  # migrates to head
        stop_worker: Callable[..., Any] | None = None
        try:
            if demo:
                _seed_demo(tally, f"http://{host}:{port}")
            if with_worker:
                runtime.start_in_background(tally)
                stop_worker = runtime.shutdown
                logger.info("job runner started in the API process")
            uvicorn.run(
                APP_FACTORY,
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_config=None,
                access_log=False,
                proxy_headers=True,
                server_header=False,
            )
        finally:
            if stop_worker is not None:
                stop_worker(exit_if_abandoned=True)
            tally.close()
