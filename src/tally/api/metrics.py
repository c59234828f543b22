"""Prometheus metrics for the HTTP API.

Each app gets its own `CollectorRegistry`, so building many apps in one process (tests) never
collides on metric names. With several worker processes, set `PROMETHEUS_MULTIPROC_DIR` to an empty
directory before start (`tally serve --workers N` does it for you): every process then writes its
samples there and `/metrics` reports the sum over all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

UNMATCHED_ROUTE = "<unmatched>"
_DURATION_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class HttpMetrics:
    def __init__(self) -> None:
        # Per app, so that many apps in one process (tests) never collide. Process, platform and GC
        # figures come from the default registry, which `render` adds.
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tally_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "tally_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=_DURATION_BUCKETS_SECONDS,
        )

    def observe(self, method: str, route: str | None, status: int, duration_seconds: float) -> None:
        # Route templates, never raw paths: label values stay few whatever clients send.
        route_label = route or UNMATCHED_ROUTE
        self.requests.labels(method, route_label, str(status)).inc()
        self.duration.labels(method, route_label).observe(duration_seconds)

    def render(self) -> tuple[bytes, str]:
        if multiprocess_mode():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        # The process-wide default registry holds what is not per app: process figures and the job
        # runner's gauges when it runs inside this process (`tally serve --with-worker`).
        return generate_latest(self.registry) + generate_latest(REGISTRY), CONTENT_TYPE_LATEST
