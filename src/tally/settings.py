"""Settings, read once at start-up from `TALLY_*` environment variables and an optional TOML file.

Precedence, highest first: environment variables, the file named by `TALLY_CONFIG_FILE` (or
`tally.toml` in the working directory), then the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the optional config file; keys are the setting names without the `TALLY_` prefix."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = Path(os.environ.get("TALLY_CONFIG_FILE", "tally.toml"))
        self._values: dict[str, Any] = tomllib.loads(path.read_text()) if path.is_file() else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {key: value for key, value in self._values.items() if key in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TALLY_", extra="ignore", frozen=True)

    # An external PostgreSQL 15+ (postgresql://user:pass@host:5432/db). Empty: the embedded server.
    database_url: str | None = None
    # Where the embedded PostgreSQL keeps its data.
    data_dir: Path = Path(".tally/pgdata")
    database_name: str = "tally"
    database_pool_size: int = Field(default=10, ge=1, le=200)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"

    # Requests larger than this are refused before they are read.
    request_body_bytes_max: int = Field(default=10 * 1024 * 1024, ge=1024)
    # How long a stored Idempotency-Key response is replayed, and when an in-flight one may be taken over.
    idempotency_retention_hours: int = Field(default=24, ge=1)
    idempotency_lock_seconds: int = Field(default=60, ge=1)

    # The ledger integrity check, run by the worker on this cron schedule.
    integrity_check_cron: str = "*/15 * * * *"
    # Expired Idempotency-Key responses are deleted by the worker on this cron schedule.
    idempotency_purge_cron: str = "7 * * * *"
    # The billing run (drafts brought up to what is due by each customer's clock), by the worker.
    billing_run_cron: str = "*/10 * * * *"
    # Threshold billing: how often the worker measures the usage so far of subscriptions with a
    # billing threshold and invoices those past it. The lag between a threshold being passed and its
    # invoice is at most this period (plus the event store's own lag).
    billing_threshold_cron: str = "*/5 * * * *"
    # The expiry of credit grants (their remainder to breakage), by the worker.
    credit_expiry_cron: str = "5 * * * *"
    # How long a draft waits after it closes (its earliest line fell due, by the customer's clock)
    # for late usage events before it is finalized automatically, and when the worker looks. 24 hours
    # leaves a day's slack to senders that batch or retry; 0 finalizes at the first run after closing.
    # Off: drafts wait to be finalized by hand (the worker job and the test clock hook do nothing).
    invoice_auto_finalize: bool = True
    invoice_grace_period_hours: int = Field(default=24, ge=0, le=720)
    invoice_finalization_cron: str = "*/10 * * * *"

    # The job runner (DBOS) keeps its checkpoints in a `dbos` schema of tally's own database, so a job
    # can be enqueued in the same transaction as the rows it is about; this moves them elsewhere.
    worker_system_database_url: str | None = None
    # A worker's name, stable across restarts: a restarted worker resumes what its killed predecessor
    # left unfinished. Several workers need one distinct, stable name each (e.g. a StatefulSet pod).
    worker_executor_id: str = Field(default="local", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    # Workers only resume workflows started by the same version. Empty: tally's package version.
    worker_application_version: str | None = None
    # How long a stopping worker lets running workflows finish before leaving them to the next start.
    worker_shutdown_grace_seconds: int = Field(default=10, ge=0, le=3600)
    # `tally worker` serves Prometheus metrics on this port (on `api_host`); 0 serves none.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)

    # Metering ingest: events whose timestamp is more than this far in the past, or further in the
    # future than the skew, are rejected (`timestamp_too_old`, `timestamp_in_future`).
    # At most 90: the billing run measures invoiced usage periods again for 92 days after they end
    # (tally.app._invoicing.LATE_USAGE_LOOKBACK), so every event accepted late reaches an invoice.
    ingest_horizon_days: int = Field(default=90, ge=1, le=90)
    ingest_future_skew_seconds: int = Field(default=300, ge=0, le=86400)
    # POST /v1/events: the largest body the JSON parser is handed, after gzip decompression (the
    # compressed body is bounded by request_body_bytes_max).
    ingest_body_bytes_max: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Raw events older than this many days are dropped, a whole monthly partition at a time; the
    # dedup registry is kept forever. Unset: keep raw events forever.
    event_retention_days: int | None = Field(default=None, ge=1)
    # When the worker creates the coming months' event partitions and drops expired ones.
    event_partitions_cron: str = "17 3 * * *"

    # Usage rollups: the worker's rollup loop polls rollup_queue this often when it is idle, and rolls
    # up at most this many batches / events per transaction. Off: queries read the raw tail.
    rollup_worker_enabled: bool = True
    rollup_poll_interval_ms: int = Field(default=200, ge=10, le=60_000)
    rollup_batches_per_transaction_max: int = Field(default=100, ge=1, le=10_000)
    rollup_events_per_transaction_max: int = Field(default=50_000, ge=1, le=1_000_000)
    # New meter versions are backfilled from raw events by the worker, checked this often.
    meter_backfill_poll_seconds: float = Field(default=2.0, ge=0.05, le=3600)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))
