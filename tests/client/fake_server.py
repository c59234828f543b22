"""A stand-in for `POST /v1/events` behind an httpx MockTransport: stores each id once, answers
per-event results, and fails on command (503, 429, dropped connections) to exercise retries."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

Failure = Callable[[httpx.Request], httpx.Response | None]


class FakeIngestServer:
    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.bodies: list[bytes] = []
        self.failures: list[Failure] = []  # consumed one per request, first to last
        self._lock = threading.Lock()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def fail_next(self, *failures: Failure) -> None:
        self.failures.extend(failures)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests += 1
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            response = failure(request)
            if response is not None:
                return response
        return self.store(request)

    def store(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.bodies.append(body)
        events = json.loads(body, parse_float=Decimal)
        results = []
        with self._lock:
            for event in events:
                if event.get("customer") == "":
                    results.append(
                        {"id": event["id"], "result": "rejected", "code": "value_too_short", "field": "customer"}
                    )
                elif event["id"] not in self.stored:
                    self.stored[event["id"]] = event
                    results.append({"id": event["id"], "result": "accepted"})
                elif self.stored[event["id"]] == event:
                    results.append({"id": event["id"], "result": "duplicate"})
                else:
                    results.append({"id": event["id"], "result": "conflict", "code": "exists_with_different_content"})
        return httpx.Response(200, json={"results": results})


def status(code: int, **headers: str) -> Failure:
    return lambda _: httpx.Response(code, headers=headers, json={"code": "service_unavailable", "detail": "x"})


def connection_dropped(_: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("connection reset by peer")


def stored_then_dropped(server: FakeIngestServer) -> Failure:
    """The server stores the batch, then the connection dies before the answer arrives."""

    def fail(request: httpx.Request) -> httpx.Response:
        server.store(request)
        raise httpx.RemoteProtocolError("server disconnected without sending a response")

    return fail
