"""The RFC 8935 push endpoint: a sender POSTs a Security Event Token, the receiver answers.

`EventReceiver` answers 202 with an empty body once the handlers for the token's event types
have run, 400 with `{"err": ..., "description": ...}` when the token is refused, and 503 (with
`Retry-After`) or 500 when the receiver itself cannot process it now, so the sender retries.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .._asgi import BodyTooLarge, ClientDisconnected, read_body
from ..errors import ConfigurationError, EventError, RSGuardError, ServerError
from ..observe import Observer, emit
from .verifier import EVENT_TYPE, EventVerifier, SecurityEvent

logger = logging.getLogger("rs_guard.events")

SET_MEDIA_TYPE = "application/secevent+jwt"

EventHandler = Callable[[SecurityEvent, Mapping[str, Any]], Awaitable[None] | None]
"""Called with the verified event and the payload of one of its event types."""

H = TypeVar("H", bound=EventHandler)


class EventReceiver:
    """The RFC 8935 push endpoint: verify, run the handlers for each event type, answer.

    Mount it as an ASGI app (`Route("/events", receiver, methods=["POST"])`, or
    `receiver.route("/events")`). Answers:

    - 202, empty body: verified, handlers ran, (iss, jti) recorded;
    - 400 `{"err", "description"}`: refused (see `EventError`), including a replayed event, a
      body that is not `application/secevent+jwt`, and event types without a handler (unless
      `ignore_unknown_events`);
    - 503 with `Retry-After`: IdP keys unreachable, replay store unavailable or full, the same
      event being processed concurrently, or a handler running past `handler_timeout`;
    - 500: a handler raised. In every 5xx case the event is not recorded, so the retry counts.
    """

    def __init__(
        self,
        verifier: EventVerifier,
        *,
        handlers: Mapping[str, EventHandler] | None = None,
        ignore_unknown_events: bool = False,
        handler_timeout: float = 30.0,
        max_body_bytes: int | None = None,
        observer: Observer | None = None,
    ) -> None:
        if not 0 < handler_timeout < verifier.lease:
            # Past the lease a duplicate could start while the first handler still runs.
            raise ConfigurationError("handler_timeout must be positive and below verifier.lease")
        self.verifier = verifier
        self.handlers: dict[str, EventHandler] = dict(handlers or {})
        self.ignore_unknown_events = ignore_unknown_events
        self.handler_timeout = handler_timeout
        self.max_body_bytes = max_body_bytes or verifier.max_token_bytes + 2
        self._observer = observer

    def on(self, event_type: str) -> Callable[[H], H]:
        """Decorator registering a handler: `@receiver.on("https://.../account-updated")`."""

        def register(handler: H) -> H:
            self.add_handler(event_type, handler)
            return handler

        return register

    def add_handler(self, event_type: str, handler: EventHandler) -> None:
        """Register the handler for one event type URI (one handler per type)."""
        if not EVENT_TYPE.fullmatch(event_type):
            raise ConfigurationError(f"event types are URIs: {event_type!r}")
        if event_type in self.handlers:
            raise ConfigurationError(f"a handler for {event_type!r} is already registered")
        self.handlers[event_type] = handler

    def route(self, path: str = "/events") -> Route:
        """A Starlette route serving this endpoint for POST."""
        return Route(path, self, methods=["POST"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Mounted as the whole application: nothing to start or stop.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        """Process one delivery and build the RFC 8935 answer."""
        if request.method != "POST":
            return Response(status_code=405, headers={"Allow": "POST"})
        try:
            event = await self.process(await self._read_token(request))
        except RSGuardError as exc:
            return self._refusal(exc)
        except ClientDisconnected:
            return Response(status_code=400)
        except HandlerFailed:
            return _json(500, {"err": "server_error", "description": "The event handler failed"})
        emit(self._observer, "event_accepted", types=",".join(event.types))
        return Response(status_code=202)

    async def process(self, token: str) -> SecurityEvent:
        """Verify one token and run its handlers, as a push does (poll delivery calls this).

        Raises what the push answer is made from: `EventError` (refused), `ServerError`
        (retry later), or `HandlerFailed` (a handler raised; the event was not recorded).
        """
        event = await self.verifier.check(token)
        self._check_types(event)
        async with self.verifier.claim(event):
            await self._dispatch(event)
        return event

    async def _read_token(self, request: Request) -> str:
        ctype = request.headers.get("content-type", "")
        if ctype.split(";", 1)[0].strip().lower() != SET_MEDIA_TYPE:
            raise EventError(
                description=f"The body must be {SET_MEDIA_TYPE}", reason="bad_content_type"
            )
        try:
            body = await read_body(request.receive, limit=self.max_body_bytes)
        except BodyTooLarge:
            raise EventError(
                description="The event token is too large", reason="too_large"
            ) from None
        try:
            # A trailing newline from a hand-made request is harmless; nothing else is allowed.
            return body.decode("ascii").strip(" \t\r\n")
        except UnicodeDecodeError:
            raise EventError(reason="malformed") from None

    def _check_types(self, event: SecurityEvent) -> None:
        if self.ignore_unknown_events:
            return
        if any(t not in self.handlers for t in event.types):
            raise EventError(
                description="The receiver does not handle this event type",
                reason="unknown_event_type",
            )

    async def _dispatch(self, event: SecurityEvent) -> None:
        try:
            # asyncio.timeout, not anyio.fail_after: the latter costs ~100 us per event.
            async with asyncio.timeout(self.handler_timeout):
                for event_type, payload in event.events.items():
                    handler = self.handlers.get(event_type)
                    if handler is None:
                        continue
                    result = handler(event, MappingProxyType(payload))
                    if inspect.isawaitable(result):
                        await result
        except (RSGuardError, asyncio.CancelledError):
            raise
        except TimeoutError:
            raise ServerError(
                "The event handler timed out", retry_after=5, reason="handler_timeout"
            ) from None
        except Exception as exc:
            logger.exception("event handler failed for %s", ",".join(event.types))
            raise HandlerFailed from exc

    def _refusal(self, exc: RSGuardError) -> Response:
        emit(self._observer, "event_rejected", reason=exc.reason, status=exc.status_code)
        if isinstance(exc, ServerError):
            return _json(
                exc.status_code,
                {"err": "temporarily_unavailable", "description": exc.description or ""},
                {"Retry-After": str(exc.retry_after or 5)},
            )
        error = (exc.error if isinstance(exc, EventError) else None) or "invalid_request"
        return _json(400, {"err": error, "description": exc.description or ""})


class HandlerFailed(Exception):
    """A handler raised; the event was released (not recorded) and a push is answered 500."""


def _json(status: int, body: dict[str, str], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
