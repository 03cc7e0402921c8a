"""CORS for the IdP endpoints that browser apps call directly (Swagger UI, single-page apps)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Endpoints a public browser client fetches cross-origin. /authorize is a top-level navigation
# and must stay same-origin only: exposing its form to scripts would let any page read the
# form handle and approve a request on the user's behalf.
BROWSER_ENDPOINTS = (
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/jwks",
    "/token",
    "/userinfo",
    "/revoke",
)
_TOKEN = rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_HEADER_LIST = re.compile(rb"^" + _TOKEN + rb"(?:[ \t]*,[ \t]*" + _TOKEN + rb")*$")


class BrowserCORS:
    """Pure ASGI CORS for a fixed set of paths: any origin, no cookies (none are used)."""

    def __init__(self, app: ASGIApp, paths: Iterable[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"origin" not in headers:
            await self.app(scope, receive, send)
            return
        requested = headers.get(b"access-control-request-method")
        if scope["method"] == "OPTIONS" and requested is not None:
            allow_headers = headers.get(b"access-control-request-headers", b"").strip()
            out = [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-allow-methods", b"GET, POST"),
                (b"access-control-max-age", b"600"),
                (b"content-length", b"0"),
            ]
            if allow_headers and _HEADER_LIST.match(allow_headers):
                # Header names only (validated above); "*" alone would not cover Authorization.
                out.append((b"access-control-allow-headers", allow_headers))
            await send({"type": "http.response.start", "status": 204, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", b"*"),
                    (b"access-control-expose-headers", b"WWW-Authenticate, Retry-After"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)


def cors_paths(prefix: str) -> list[str]:
    """The browser endpoints of an IdP whose issuer has path `prefix`, both well-known forms."""
    paths = [prefix + p for p in BROWSER_ENDPOINTS]
    if prefix:
        paths += [f"/.well-known/oauth-authorization-server{prefix}"]
        paths += [f"/.well-known/openid-configuration{prefix}"]
    return paths
