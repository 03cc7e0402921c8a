"""The IdP's one route table. The Starlette routes, the discovery document's endpoint URLs,
`IdP.endpoint(name)`, the CORS paths and the fault switch names all come from it."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._cors import BrowserCORS
from ._errors import OAuthError
from ._faults import FaultGate, Faults

# An endpoint takes the IdP's services (narrowed by its own Protocol) and the request.
Endpoint = Callable[[Any, Request], Awaitable[Response]]


class RouteSpec(NamedTuple):
    """One endpoint of the IdP (a NamedTuple: a fifth of a dataclass's import cost)."""

    name: str
    """What `IdP.endpoint(name)` takes."""
    path: str
    """Under the issuer's path."""
    endpoint: str
    """"module:function" in `endpoints/`, imported when the app is built (the IdP's import
    then stays light for tests that only mint tokens from Python)."""
    methods: tuple[str, ...] | None = None
    """None: any method (discovery and the JWKS answer whatever is asked)."""
    fault: str | None = None
    """The switch of `IdP.faults` that breaks this endpoint on purpose."""
    cors: bool = False
    """Called cross-origin by browser apps (Swagger UI, single-page apps)."""
    member: str | None = None
    """The discovery metadata member that names this endpoint's URL."""
    well_known: bool = False
    """Also served at /.well-known/<name><issuer path> (RFC 8414 §3.1 path insertion, and the
    same form for OIDC, used by MCP clients)."""


_GET_POST = ("GET", "POST")
_POST = ("POST",)
_MANAGE = ("GET", "PUT", "DELETE")
_ANY = None

# fmt: off
ROUTES: tuple[RouteSpec, ...] = (
    # Endpoints with a discovery member, in the order the discovery document lists them.
    # RouteSpec(name, path, "module:function", methods, fault switch, cors=, member=)
    RouteSpec("authorize", "/authorize", "authorize:authorize", _GET_POST, None,
              member="authorization_endpoint"),
    RouteSpec("token", "/token", "token:token", _POST, "token",
              cors=True, member="token_endpoint"),
    RouteSpec("userinfo", "/userinfo", "userinfo:userinfo", _GET_POST, None,
              cors=True, member="userinfo_endpoint"),
    RouteSpec("jwks", "/jwks", "metadata:jwks", _ANY, "jwks",
              cors=True, member="jwks_uri"),
    RouteSpec("register", "/register", "registration:register", _POST, None,
              member="registration_endpoint"),
    RouteSpec("introspect", "/introspect", "introspection:introspect", _POST, "introspection",
              member="introspection_endpoint"),
    RouteSpec("revoke", "/revoke", "revocation:revoke", _POST, None,
              cors=True, member="revocation_endpoint"),
    RouteSpec("ppid/convert", "/ppid/convert", "ppid:convert", _POST, "ppid",
              member="ppid_conversion_endpoint"),
    RouteSpec("events", "/events", "events:publish", _POST, "events",
              member="event_signing_endpoint"),
    RouteSpec("logout", "/logout", "logout:end_session", _GET_POST, None,
              member="end_session_endpoint"),
    # Discovery itself (also at the RFC 8414 §3.1 inserted paths), and RFC 7592 management.
    RouteSpec("openid-configuration", "/.well-known/openid-configuration",
              "metadata:openid_configuration", _ANY, None, cors=True, well_known=True),
    RouteSpec("oauth-authorization-server", "/.well-known/oauth-authorization-server",
              "metadata:oauth_metadata", _ANY, None, cors=True, well_known=True),
    RouteSpec("register/{client_id}", "/register/{client_id:path}", "registration:manage",
              _MANAGE, None),
    # SSF 1.0 transmitter (rs_guard.ssf is the receiver): metadata, management API, poll.
    RouteSpec("ssf-configuration", "/.well-known/ssf-configuration", "ssf:configuration",
              ("GET",), "ssf", well_known=True),
    RouteSpec("ssf/stream", "/ssf/stream", "ssf:stream",
              ("GET", "POST", "PATCH", "PUT", "DELETE"), None),
    RouteSpec("ssf/status", "/ssf/status", "ssf:status", _GET_POST, None),
    RouteSpec("ssf/verify", "/ssf/verify", "ssf:verify", _POST, None),
    RouteSpec("ssf/poll/{stream_id}", "/ssf/poll/{stream_id}", "ssf:poll", _POST, "ssf_poll"),
)
# fmt: on
FAULT_SWITCHES: tuple[str, ...] = tuple(r.fault for r in ROUTES if r.fault is not None)
_BY_NAME = {r.name: r for r in ROUTES}


class Urls:
    """Absolute URLs of the IdP's endpoints, from the route table."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def url(self, name: str) -> str:
        """The URL of endpoint `name` (e.g. "token"); other names are taken as a path."""
        spec = _BY_NAME.get(name)
        return f"{self.issuer}{spec.path}" if spec is not None else f"{self.issuer}/{name}"

    def metadata_members(self) -> dict[str, str]:
        """Discovery members naming endpoint URLs (authorization_endpoint, ...)."""
        return {r.member: self.url(r.name) for r in ROUTES if r.member is not None}


@functools.cache
def _layout(prefix: str) -> tuple[tuple[str, RouteSpec], ...]:
    """(path, route) for every path the table serves under the issuer path `prefix`."""
    out: list[tuple[str, RouteSpec]] = []
    for spec in ROUTES:
        out.append((prefix + spec.path, spec))
        if spec.well_known and prefix:
            out.append((spec.path + prefix, spec))
    return tuple(out)


def cors_paths(prefix: str) -> list[str]:
    """The browser paths of an IdP whose issuer has path `prefix`."""
    return [path for path, spec in _layout(prefix) if spec.cors]


def handler(
    endpoint: Endpoint, fault: str | None, context: object | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint: fault switch first, then the endpoint, OAuth errors rendered.

    The IdP's services and faults come from the app's state (`services`, `faults`), so one
    set of routes serves every IdP with the same issuer path; `context` overrides what the
    endpoint receives (`IdP.add_route` passes the IdP itself).
    """

    async def handle(request: Request) -> Response:
        state = request.app.state
        if fault is not None:
            faults: Faults = state.faults
            answer = await faults.intercept(faults.mode(fault))
            if answer is not None:
                return answer
        try:
            return await endpoint(state.services if context is None else context, request)
        except OAuthError as exc:
            return exc.response()

    return handle


@functools.cache
def _resolve(ref: str) -> Endpoint:
    module, _, name = ref.partition(":")
    endpoint: Endpoint = getattr(importlib.import_module(f"{__package__}.endpoints.{module}"), name)
    return endpoint


@functools.cache
def _routes(prefix: str) -> tuple[Route, ...]:
    # Route objects hold no IdP state (see `handler`), so they are built once per issuer path:
    # compiling their paths is most of what building an IdP's app costs.
    return tuple(
        Route(
            path,
            handler(_resolve(spec.endpoint), spec.fault),
            methods=list(spec.methods) if spec.methods is not None else None,
        )
        for path, spec in _layout(prefix)
    )


def build_app(prefix: str, services: object, faults: Faults) -> Starlette:
    """The IdP's Starlette app: the table's routes, CORS on the browser routes, and the
    whole-IdP fault gate outermost (so it also covers discovery and routes added later)."""
    middleware = [
        Middleware(FaultGate, faults=faults),
        Middleware(BrowserCORS, paths=cors_paths(prefix)),
    ]
    app = Starlette(routes=list(_routes(prefix)), middleware=middleware)
    app.state.services = services
    app.state.faults = faults
    return app
