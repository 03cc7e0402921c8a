"""CORS for the IdP endpoints that browser apps call directly (Swagger UI, single-page apps).

Starlette's CORSMiddleware, applied only to the browser routes of the route table and only to
requests that carry an Origin. /authorize is a top-level navigation and stays same-origin:
exposing its form to scripts would let any page read the form handle and approve a request on
the user's behalf.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_HEADER_LIST = re.compile(r"^" + _TOKEN + r"(?:[ \t]*,[ \t]*" + _TOKEN + r")*$")
_METHODS = ("GET", "POST")
_ASCII_SPACE = " \t\n\r\x0b\x0c"


class _AnyOriginCORS(CORSMiddleware):
    """Any origin, no cookies (none are used); preflights answered 204 with no body."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(
            app,
            allow_origins=("*",),
            allow_methods=_METHODS,
            expose_headers=("WWW-Authenticate", "Retry-After"),
            max_age=600,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        # Starlette answers "200 OK" with a text body and only listed headers; a browser app
        # sends Authorization and the like, so the requested names are echoed, but only when
        # they are a well-formed list of header names ("*" alone would not cover
        # Authorization).
        headers = {
            "access-control-allow-origin": "*",
            "access-control-allow-methods": ", ".join(_METHODS),
            "access-control-max-age": "600",
            "content-length": "0",
        }
        requested = request_headers.get("access-control-request-headers", "").strip(_ASCII_SPACE)
        if requested and _HEADER_LIST.match(requested):
            headers["access-control-allow-headers"] = requested
        return Response(status_code=204, headers=headers)


class BrowserCORS:
    """Route requests with an Origin to the browser paths through CORS, the rest straight."""

    def __init__(self, app: ASGIApp, paths: Iterable[str]) -> None:
        self.app = app
        self.cors = _AnyOriginCORS(app)
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] in self.paths
            and any(name == b"origin" for name, _ in scope["headers"])
        ):
            await self.cors(scope, receive, send)
            return
        await self.app(scope, receive, send)
