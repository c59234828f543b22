"""Small ASGI helpers shared by the middlewares: replaying a read body, holding back a response."""

from __future__ import annotations

from starlette.types import Message, Receive, Send

# Responses larger than this are passed through instead of being held back (and are then neither
# stored for idempotent replay nor inspected for the audit log's object id).
RESPONSE_HELD_BYTES_MAX = 1024 * 1024


async def read_body(receive: Receive) -> bytes:
    """The whole request body. Bounded by the body-size middleware further out."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay_receive(body: bytes, receive: Receive) -> Receive:
    """A `receive` that first yields `body`, then defers to the real one (for disconnects)."""
    sent = False

    async def wrapped() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return wrapped


class HeldResponse:
    """Captures a response instead of sending it, up to `RESPONSE_HELD_BYTES_MAX` bytes.

    Past the limit it gives up holding: what it has is sent and the rest passes straight through
    (`overflowed`). Call `release()` once the downstream app has returned.
    """

    def __init__(self, send: Send, held_bytes_max: int = RESPONSE_HELD_BYTES_MAX) -> None:
        self._send = send
        self._held_bytes_max = held_bytes_max
        self._messages: list[Message] = []
        self._held_bytes = 0
        self.start: Message | None = None
        self.overflowed = False
        self.released = False

    @property
    def status(self) -> int | None:
        return None if self.start is None else int(self.start["status"])

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [] if self.start is None else list(self.start.get("headers", []))

    @property
    def body(self) -> bytes:
        return b"".join(
            message.get("body", b"") for message in self._messages if message["type"] == "http.response.body"
        )

    async def send(self, message: Message) -> None:
        if self.overflowed:
            await self._send(message)
            return
        if message["type"] == "http.response.start":
            self.start = message
        self._messages.append(message)
        self._held_bytes += len(message.get("body", b""))
        if self._held_bytes > self._held_bytes_max:
            self.overflowed = True
            await self.release()

    async def release(self) -> None:
        """Send everything held, in order."""
        messages, self._messages = self._messages, []
        for message in messages:
            await self._send(message)
        self.released = True


def header_value(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
