"""How a refused request is answered: status, challenge, JSON body, or a WebSocket close.

Hand-written ASGI messages, not `starlette.responses`: this runs for every refusal, and the
prebuilt headers measure faster than a Response object per request.
"""

from __future__ import annotations

import json

from starlette.types import Scope, Send

from .challenge import challenge_for
from .dpop import DPoPVerifier
from .errors import RSGuardError, ServerError
from .observe import Observer, emit
from .policy import Requirement

_MISSING_TOKEN_BODY = b'{"error":"unauthorized","error_description":"An access token is required"}'
_JSON_NO_STORE = ((b"content-type", b"application/json"), (b"cache-control", b"no-store"))


def error_body(exc: RSGuardError) -> bytes:
    """A small JSON body mirroring the challenge; never a parser message or token material."""
    if isinstance(exc, ServerError):
        return json.dumps(
            {"error": "temporarily_unavailable", "error_description": exc.description}
        ).encode()
    if exc.error is None:
        return _MISSING_TOKEN_BODY
    return json.dumps({"error": exc.error, "error_description": exc.description}).encode()


class Refusals:
    """Renders and reports the refusals of one protected resource."""

    __slots__ = ("_observer", "dpop", "realm", "resource_metadata_url", "retry_after")

    def __init__(
        self,
        *,
        realm: str | None,
        resource_metadata_url: str | None,
        retry_after: int,
        observer: Observer | None,
        dpop: DPoPVerifier | None = None,
    ) -> None:
        self.dpop = dpop
        self.realm = realm
        self.resource_metadata_url = resource_metadata_url
        self.retry_after = retry_after
        self._observer = observer

    def headers(
        self, exc: RSGuardError, requirement: Requirement | None = None, scope: Scope | None = None
    ) -> list[tuple[bytes, bytes]]:
        """The response headers for an error: the challenge, or Retry-After for a 503."""
        if isinstance(exc, ServerError):
            return [(b"retry-after", str(exc.retry_after or self.retry_after).encode())]
        value = challenge_for(
            exc,
            realm=self.realm,
            resource_metadata=self.resource_metadata_url,
            scope=requirement.scopes if requirement is not None else None,
        )
        if self.dpop is not None and scope is not None:  # RFC 9449 §7.1, §9
            return self.dpop.refusal_headers(exc, scope, value)
        return [(b"www-authenticate", value.encode("latin-1"))]

    def report(self, exc: RSGuardError) -> None:
        """Log a refused request and tell the observer (`token_rejected`, `reason`, `status`)."""
        emit(self._observer, "token_rejected", reason=exc.reason, status=exc.status_code)

    async def send(
        self, exc: RSGuardError, scope: Scope, send: Send, requirement: Requirement | None = None
    ) -> None:
        """Answer a failed request: HTTP status + challenge, or a WebSocket close."""
        self.report(exc)
        body = error_body(exc)
        headers = self.headers(exc, requirement, scope)
        headers += [
            _JSON_NO_STORE[0],
            (b"content-length", str(len(body)).encode()),
            _JSON_NO_STORE[1],
        ]
        if scope["type"] == "websocket":
            if "websocket.http.response" in scope.get("extensions", {}):
                start = {"type": "websocket.http.response.start", "status": exc.status_code}
                await send({**start, "headers": headers})
                await send({"type": "websocket.http.response.body", "body": body})
            else:
                code = 1013 if isinstance(exc, ServerError) else 1008
                await send({"type": "websocket.close", "code": code, "reason": ""})
            return
        await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
