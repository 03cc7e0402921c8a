"""Small ASGI helpers: a bounded request-body read that can be replayed, and raw responses."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Message, Receive, Send


class BodyTooLarge(Exception):
    """The request body is longer than the limit (nothing more is read)."""


class ClientDisconnected(Exception):
    """The client went away before the whole body arrived."""


async def read_body(receive: Receive, *, limit: int) -> bytes:
    """Read the whole HTTP request body, at most `limit` bytes.

    BodyTooLarge past the limit; ClientDisconnected when an `http.disconnect` arrives first,
    so a truncated body is never taken for a complete one.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnected()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields `body` once as the whole request, then delegates to `receive`."""
    replayed = False

    async def receive_again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def disconnected() -> Receive:
    """A `receive` that reports the client's disconnect (after a body read found it gone)."""

    async def receive_disconnect() -> Message:
        return {"type": "http.disconnect"}

    return receive_disconnect


async def send_response(
    send: Send,
    status: int,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    content_length: int | None = None,
) -> None:
    """Send a complete HTTP response; `content_length` differs from `len(body)` only for HEAD."""
    length = len(body) if content_length is None else content_length
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(length).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def has_header(scope_headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bool:
    """Whether a (lower-case) header name occurs in an ASGI header list."""
    return any(k == name for k, _ in scope_headers)
