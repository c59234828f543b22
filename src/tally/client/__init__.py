"""The Python client for tally's HTTP API. It stands alone: it imports nothing else from tally.

- `Client(base_url, api_key).ingest(events)`: one request, per-event results, safe retries.
- `Ingestor(base_url, api_key)`: `track(...)` from application code; background batching, bounded
  memory, retries that re-send the same ids, flush at close and at exit.

See docs/metering.md, "Python client and bulk import".
"""

from __future__ import annotations

from tally.client._client import (
    EVENTS_PER_REQUEST_MAX,
    Client,
    Event,
    EventResult,
    EventStatus,
    IngestResponse,
    RequestRefusedError,
    ServerUnavailableError,
    TallyError,
)
from tally.client._encoding import encode_value
from tally.client._ids import new_event_id
from tally.client._ingestor import (
    BufferFullError,
    DeliveryFailedError,
    FailedBatch,
    Ingestor,
    IngestorClosedError,
    IngestStats,
)

__all__ = [
    "EVENTS_PER_REQUEST_MAX",
    "BufferFullError",
    "Client",
    "DeliveryFailedError",
    "Event",
    "EventResult",
    "EventStatus",
    "FailedBatch",
    "IngestResponse",
    "IngestStats",
    "Ingestor",
    "IngestorClosedError",
    "RequestRefusedError",
    "ServerUnavailableError",
    "TallyError",
    "encode_value",
    "new_event_id",
]
