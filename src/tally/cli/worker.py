"""`tally worker`: the durable job runner, in the foreground."""

from __future__ import annotations

import typer

from tally.cli._context import error_console, open_tally


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the main app."""

    @app.command("worker")
    def worker(
        metrics_port: int | None = typer.Option(
            None,
            min=0,
            max=65535,
            help="Serve Prometheus metrics on this port (default: TALLY_WORKER_METRICS_PORT; 0: none).",
        ),
    ) -> None:
        """Run scheduled and queued jobs until SIGINT or SIGTERM, resuming any a killed worker left.

        Needs nothing but tally's PostgreSQL. Several workers may run at once, each with its own
        TALLY_WORKER_EXECUTOR_ID (see docs/jobs.md).
        """
        # Imported here: DBOS takes most of a second to import, which other commands need not pay.
        from prometheus_client import start_http_server

        from tally.adapters.logging import configure_logging
        from tally.worker import runtime

        with open_tally() as tally:
            settings = tally.settings
            configure_logging(settings.log_level, settings.log_format)
            port = settings.worker_metrics_port if metrics_port is None else metrics_port
            if port:
                start_http_server(port, addr=settings.api_host)
            config = runtime.worker_config(tally)
            error_console.print(
                f"tally worker: executor [bold]{config.executor_id}[/bold], version {config.application_version}"
                + (f", metrics on {settings.api_host}:{port}" if port else ""),
                highlight=False,
            )
            runtime.launch(tally)
