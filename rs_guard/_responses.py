"""How a refused request is answered: status, challenge, JSON body, or a WebSocket close.

Hand-written ASGI messages, not `starlette.responses`: this runs for every refusal, and the
prebuilt headers measure faster than a Response object per request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import jwt
from starlette.types import Scope, Send

from ._asgi import send_response
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


_UNMET = ("insufficient_scope", "insufficient_user_authentication")


def facts(
    exc: RSGuardError,
    token: str | None,
    requirement: Requirement | None,
    issuer: str | None = None,
    audiences: Iterable[str] = (),
) -> dict[str, Any]:
    """The non-secret facts that explain a refusal: expected and received `iss` / `aud`, the
    requirement that failed. Never the token itself: only claims an IdP publishes anyway."""
    out: dict[str, Any] = {}
    if exc.reason in ("bad_issuer", "bad_audience") and token is not None:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except Exception:
            claims = {}
        if exc.reason == "bad_issuer":
            out["expected_iss"], out["received_iss"] = issuer, claims.get("iss")
        else:
            out["expected_aud"] = " ".join(sorted(audiences))
            out["received_aud"] = claims.get("aud")
    elif requirement is not None and exc.error in _UNMET:
        out["required_scopes"] = " ".join(requirement.scopes) or None
        out["required_acr"] = " ".join(requirement.acr_values) or None
        out["max_age"] = requirement.max_age
    return {k: v for k, v in out.items() if v is not None}


class Refusals:
    """Renders and reports the refusals of one protected resource."""

    __slots__ = ("_expected", "_observer", "dpop", "realm", "resource_metadata_url", "retry_after")

    def __init__(
        self,
        *,
        realm: str | None,
        resource_metadata_url: str | None,
        retry_after: int,
        observer: Observer | None,
        issuer: str | None = None,
        audiences: Iterable[str] = (),
        dpop: DPoPVerifier | None = None,
    ) -> None:
        self.dpop = dpop
        self.realm = realm
        self.resource_metadata_url = resource_metadata_url
        self.retry_after = retry_after
        self._observer = observer
        self._expected = (issuer, tuple(audiences))  # for the facts of iss / aud refusals

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

    def report(
        self,
        exc: RSGuardError,
        token: str | None = None,
        requirement: Requirement | None = None,
    ) -> None:
        """Log a refused request and tell the observer (`token_rejected`, `reason`, `status`,
        and the facts that explain it)."""
        extra = facts(exc, token, requirement, *self._expected)
        emit(self._observer, "token_rejected", reason=exc.reason, status=exc.status_code, **extra)

    async def send(
        self,
        exc: RSGuardError,
        scope: Scope,
        send: Send,
        requirement: Requirement | None = None,
        token: str | None = None,
    ) -> None:
        """Answer a failed request: HTTP status + challenge, or a WebSocket close."""
        self.report(exc, token, requirement)
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


_UNGUARDED_BODY = (
    b'{"error":"server_error","error_description":"The resource is not configured to check '
    b'access tokens"}'
)
_unguarded_logged: dict[str, float] = {}


def log_unguarded(owner: str) -> None:
    """Log (ERROR, at most once a minute per owner) that `owner` runs without a ResourceGuard."""
    now = time.monotonic()
    if now - _unguarded_logged.get(owner, -60.0) < 60.0:
        return
    _unguarded_logged[owner] = now
    logging.getLogger("rs_guard").error(
        "%s found no ResourceGuard in front of it, so no token can be checked and the request "
        "is refused. Fix: wrap the app, e.g. app = ResourceGuard(app, issuer=..., "
        "resource=...), or Starlette(middleware=[Middleware(ResourceGuard, ...)]), with %s "
        "inside it",
        owner,
        owner,
    )


async def send_unguarded(send: Send, owner: str) -> None:
    """Fail closed when a requirement is checked where no ResourceGuard authenticated."""
    log_unguarded(owner)
    await send_response(send, 500, _UNGUARDED_BODY, [_JSON_NO_STORE[0], _JSON_NO_STORE[1]])
