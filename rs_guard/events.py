"""Receiving IdP-signed webhook events: Security Event Tokens verified and answered per RFC 8935.

`EventVerifier` checks one token (RFC 8417 shape, signature with the IdP's keys through the same
`JWKSCache` as access tokens, issuer, audience, freshness, replay). `EventReceiver` is the
Starlette/ASGI endpoint a sender POSTs to: it answers 202 with an empty body once the handlers
for the token's event types have run, 400 with `{"err": ..., "description": ...}` when the
token is refused, and 503 (with `Retry-After`) or 500 when the receiver itself cannot process
it now, so the sender retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeGuard, TypeVar

import anyio
import httpx
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._jws import (
    KEY_HEADERS,
    MalformedJWS,
    audience_matches,
    header_typ,
    is_numeric_date,
    refused_algorithms,
    split_compact,
    verify_signature,
)
from .discovery import ServerMetadata
from .errors import ConfigurationError, InvalidToken, RSGuardError, ServerError
from .jwt import DEFAULT_ALGORITHMS
from .keys import JWKSCache
from .observe import Observer, emit
from .replay import MemoryReplayStore, ReplayState, ReplayStore

__all__ = [
    "DEFAULT_ALGORITHMS",
    "SET_MEDIA_TYPE",
    "SET_TYPE",
    "EventError",
    "EventHandler",
    "EventInProgress",
    "EventReceiver",
    "EventVerifier",
    "SecurityEvent",
]

logger = logging.getLogger("rs_guard.events")

SET_TYPE = "secevent+jwt"
SET_MEDIA_TYPE = "application/secevent+jwt"
DEFAULT_MAX_TOKEN_BYTES = 16 * 1024
_MAX_EVENTS = 32
_MAX_ID_LENGTH = 256
_MAX_EVENT_TYPE_LENGTH = 512
# RFC 8417 §2.2: event identifiers are URIs (scheme ":" then no whitespace).
_EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+")
_UNSIGNED = frozenset({"", "none"})


_DESCRIPTIONS = {
    "invalid_request": "The request is not a valid security event token",
    "invalid_key": "The key that signed the event is not acceptable",
    "invalid_issuer": "The event was not issued by the expected issuer",
    "invalid_audience": "The event is not addressed to this receiver",
    "authentication_failed": "The event's signature could not be verified",
    "access_denied": "The publisher may not send events to this receiver",
}


class EventError(RSGuardError):
    """A refused event: `error` is an RFC 8935 §2.4 error code, answered with status 400.

    Codes: invalid_request, invalid_key, invalid_issuer, invalid_audience,
    authentication_failed, access_denied. A handler may raise it to refuse an event whose
    payload does not conform (the event is then not recorded as seen).
    """

    status_code = 400

    def __init__(
        self,
        error: str = "invalid_request",
        description: str | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        self.error = error
        description = description or _DESCRIPTIONS.get(error, "The event was refused")
        super().__init__(description, reason=reason or error)


class EventInProgress(ServerError):
    """Another delivery of the same event is being processed right now; retry later."""

    reason = "event_in_progress"
    default_description = "The event is being processed; retry later"


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """A verified Security Event Token (RFC 8417): who sent what about whom, and when."""

    issuer: str
    audience: tuple[str, ...]
    subject: str | None
    jti: str
    issued_at: float
    publisher: str | None
    """The publisher's client id (`azp`), authenticated by the IdP's signature."""
    events: Mapping[str, Mapping[str, Any]]
    """Event type URI -> event payload."""
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def types(self) -> tuple[str, ...]:
        """The event type URIs this token carries."""
        return tuple(self.events)


def _is_id(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID_LENGTH


class EventVerifier:
    """Verifies Security Event Tokens signed by one IdP for one receiver (client id).

    Checks, in order: size and strict JWS syntax; header `typ` is exactly `secevent+jwt` (so an
    access token or ID token is never taken for an event), `alg` in the allow-list, no `crit`
    and no embedded keys; claims `iss` exact, `aud` contains `audience`, `events` is a non-empty
    object of URI -> object, no `nonce`, `sub`/`jti` strings, `iat` no older than `max_age` and
    no further in the future than `leeway`, `exp` (when present) not passed; then the signature
    with the IdP's keys (`JWKSCache`); then, when `publishers` is given, that `azp` is one of
    them. Replay protection (`claim`) keeps (`iss`, `jti`) for `max_age + 2 * leeway` seconds,
    longer than any token it accepted stays acceptable.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Sequence[str],
        keys: JWKSCache | None = None,
        jwks_uri: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        max_age: float = 300.0,
        leeway: float = 30.0,
        replay_store: ReplayStore | None = None,
        publishers: Iterable[str] | None = None,
        require_subject: bool = True,
        lease: float = 60.0,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        bad = refused_algorithms(algorithms)
        if bad or not algorithms:
            raise ConfigurationError(f"unsupported or symmetric algorithms: {bad or 'empty'}")
        if max_age <= 0 or leeway < 0 or lease <= 0:
            raise ConfigurationError("max_age and lease must be positive, leeway non-negative")
        self.issuer = issuer
        self.audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not self.audiences:
            raise ConfigurationError("an audience (this receiver's client id) is required")
        if keys is None:
            metadata = None if jwks_uri else ServerMetadata(issuer, http_client=http_client)
            keys = JWKSCache(jwks_uri, metadata=metadata, http_client=http_client)
        self.keys = keys
        self.algorithms = frozenset(algorithms)
        self.max_age = max_age
        self.leeway = leeway
        self.lease = lease
        self.replay_store: ReplayStore = (
            replay_store if replay_store is not None else MemoryReplayStore()
        )
        self.publishers = frozenset(publishers) if publishers is not None else None
        self.require_subject = require_subject
        self.max_token_bytes = max_token_bytes
        self._observer = observer
        self._clock = clock

    @property
    def retention(self) -> float:
        """How long an accepted (iss, jti) is remembered: past the end of any token's window."""
        # iat may be up to `leeway` ahead of now and is accepted until iat + max_age + leeway.
        return self.max_age + 2 * self.leeway

    async def check(self, token: str) -> SecurityEvent:
        """Every check except replay; EventError (400) or KeysUnavailable (503)."""
        if len(token) > self.max_token_bytes:
            raise EventError(description="The event token is too large", reason="too_large")
        try:
            header, claims, signing_input, signature = split_compact(token)
        except MalformedJWS:
            raise EventError(reason="malformed") from None
        alg = self._check_header(header)
        self._check_claims(claims)
        kid = header.get("kid")
        try:
            key = await self.keys.get_key(kid, alg)
        except InvalidToken as exc:
            raise EventError("invalid_key", reason=exc.reason) from None
        if not verify_signature(key.key, alg, signing_input, signature):
            raise EventError("authentication_failed", reason="bad_signature")
        publisher = claims.get("azp")
        if publisher is not None and not _is_id(publisher):
            raise EventError(reason="bad_azp")
        if self.publishers is not None and publisher not in self.publishers:
            raise EventError("access_denied", reason="publisher_not_allowed")
        aud = claims["aud"]
        return SecurityEvent(
            issuer=claims["iss"],
            audience=(aud,) if isinstance(aud, str) else tuple(aud),
            subject=claims.get("sub"),
            jti=claims["jti"],
            issued_at=float(claims["iat"]),
            publisher=publisher,
            events=MappingProxyType(claims["events"]),
            claims=MappingProxyType(claims),
        )

    def _check_header(self, header: Mapping[str, Any]) -> str:
        if header_typ(header) != SET_TYPE:
            raise EventError(
                description="The token is not a security event token", reason="bad_typ"
            )
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() in _UNSIGNED:
            raise EventError("authentication_failed", "The event is not signed", reason="unsigned")
        if alg not in self.algorithms:
            raise EventError("invalid_key", reason="bad_alg")
        if KEY_HEADERS & header.keys():
            # A token must never choose its own verification key (RFC 8725 §3.10).
            raise EventError("invalid_key", reason="embedded_key")
        if "crit" in header or "enc" in header or "zip" in header:
            raise EventError(reason="unsupported_header")
        kid = header.get("kid")
        if kid is not None and not _is_id(kid):
            raise EventError("invalid_key", reason="bad_kid")
        return alg

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if "nonce" in claims:
            # OIDC Back-Channel Logout §2.4: a nonce marks an ID token, never an event.
            raise EventError(description="An event must not carry a nonce", reason="nonce")
        _check_events(claims.get("events"))
        if claims.get("iss") != self.issuer:
            raise EventError("invalid_issuer", reason="bad_issuer")
        if not audience_matches(claims.get("aud"), self.audiences):
            raise EventError("invalid_audience", reason="bad_audience")
        if not _is_id(claims.get("jti")):
            raise EventError(description="The event needs a jti", reason="bad_jti")
        sub = claims.get("sub")
        if (sub is not None or self.require_subject) and not (isinstance(sub, str) and sub):
            raise EventError(description="The event needs a subject", reason="bad_sub")
        iat = claims.get("iat")
        if not is_numeric_date(iat):
            raise EventError(description="The event needs an iat", reason="bad_iat")
        now = self._clock()
        if iat < now - self.max_age - self.leeway:
            raise EventError(description="The event is too old", reason="stale")
        if iat > now + self.leeway:
            raise EventError(description="The event is issued in the future", reason="future")
        exp = claims.get("exp")
        if exp is not None and (not is_numeric_date(exp) or now >= exp + self.leeway):
            raise EventError(description="The event has expired", reason="expired")

    @contextlib.asynccontextmanager
    async def claim(self, event: SecurityEvent) -> AsyncIterator[SecurityEvent]:
        """Hold the event's (iss, jti) while the body runs; recorded on success, freed on error.

        A replay raises EventError (400, `invalid_request`); a concurrent duplicate raises
        EventInProgress (503) so its sender retries after the first delivery has finished.
        """
        store = self.replay_store
        owner = secrets.token_urlsafe(12)
        state = await store.reserve(event.issuer, event.jti, owner, self.lease)
        if state is ReplayState.SEEN:
            raise EventError(description="The event was already received", reason="replayed")
        if state is ReplayState.IN_PROGRESS:
            raise EventInProgress(retry_after=max(1, math.ceil(self.lease / 4)))
        try:
            yield event
        except BaseException:
            # Not consumed: the sender's retry must be processed, not refused as a replay.
            with anyio.CancelScope(shield=True):
                try:
                    await store.release(event.issuer, event.jti, owner)
                except ServerError:
                    emit(self._observer, "event_release_failed", reason="replay_store")
            raise
        try:
            await store.commit(event.issuer, event.jti, owner, self.retention)
        except ServerError:
            # The handlers already ran: answering 5xx would make the sender deliver it again.
            # The lease still blocks duplicates for `lease` seconds.
            emit(self._observer, "event_commit_failed", reason="replay_store")

    @contextlib.asynccontextmanager
    async def accept(self, token: str) -> AsyncIterator[SecurityEvent]:
        """`check` then `claim`: `async with verifier.accept(token) as event: ...`."""
        event = await self.check(token)
        async with self.claim(event):
            yield event

    async def verify(self, token: str) -> SecurityEvent:
        """Verify a token and record it as seen at once (no handler to wait for)."""
        async with self.accept(token) as event:
            return event


def _check_events(events: Any) -> None:
    if not isinstance(events, dict) or not events or len(events) > _MAX_EVENTS:
        raise EventError(
            description="The events claim is missing or malformed", reason="bad_events"
        )
    for name, payload in events.items():
        if (
            len(name) > _MAX_EVENT_TYPE_LENGTH
            or not _EVENT_TYPE.fullmatch(name)
            or not isinstance(payload, dict)
        ):
            raise EventError(
                description="The events claim is missing or malformed", reason="bad_events"
            )


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
        if not _EVENT_TYPE.fullmatch(event_type):
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
            token = await self._read_token(request)
            event = await self.verifier.check(token)
            self._check_types(event)
            async with self.verifier.claim(event):
                await self._dispatch(event)
        except RSGuardError as exc:
            return self._refusal(exc)
        except ClientDisconnect:
            return Response(status_code=400)
        except _HandlerFailed:
            return _json(500, {"err": "server_error", "description": "The event handler failed"})
        emit(self._observer, "event_accepted", types=",".join(event.types))
        return Response(status_code=202)

    async def _read_token(self, request: Request) -> str:
        ctype = request.headers.get("content-type", "")
        if ctype.split(";", 1)[0].strip().lower() != SET_MEDIA_TYPE:
            raise EventError(
                description=f"The body must be {SET_MEDIA_TYPE}", reason="bad_content_type"
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                raise EventError(description="The event token is too large", reason="too_large")
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
            raise _HandlerFailed from exc

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


class _HandlerFailed(Exception):
    """A handler raised; the event was released and the answer is a 500."""


def _json(status: int, body: dict[str, str], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
