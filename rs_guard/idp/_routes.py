"""The IdP's one route table. The Starlette routes, the discovery document's endpoint URLs,
`IdP.endpoint(name)`, the CORS paths and the fault switch names all come from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._errors import OAuthError
from ._faults import Faults
from .endpoints import (
    authorize,
    events,
    introspection,
    metadata,
    ppid,
    registration,
    revocation,
    token,
    userinfo,
)

# An endpoint takes the IdP's services (narrowed by its own Protocol) and the request.
Endpoint = Callable[[Any, Request], Awaitable[Response]]


@dataclass(frozen=True)
class RouteSpec:
    """One endpoint of the IdP."""

    name: str
    """What `IdP.endpoint(name)` takes."""
    path: str
    """Under the issuer's path."""
    endpoint: Endpoint
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


ROUTES: tuple[RouteSpec, ...] = (
    # Endpoints with a discovery member, in the order the discovery document lists them.
    RouteSpec(
        "authorize",
        "/authorize",
        authorize.authorize,
        ("GET", "POST"),
        member="authorization_endpoint",
    ),
    RouteSpec(
        "token", "/token", token.token, ("POST",), "token", cors=True, member="token_endpoint"
    ),
    RouteSpec(
        "userinfo",
        "/userinfo",
        userinfo.userinfo,
        ("GET", "POST"),
        cors=True,
        member="userinfo_endpoint",
    ),
    RouteSpec("jwks", "/jwks", metadata.jwks_endpoint, fault="jwks", cors=True, member="jwks_uri"),
    RouteSpec(
        "register",
        "/register",
        registration.register,
        ("POST",),
        member="registration_endpoint",
    ),
    RouteSpec(
        "introspect",
        "/introspect",
        introspection.introspect,
        ("POST",),
        "introspection",
        member="introspection_endpoint",
    ),
    RouteSpec(
        "revoke", "/revoke", revocation.revoke, ("POST",), cors=True, member="revocation_endpoint"
    ),
    RouteSpec(
        "ppid/convert",
        "/ppid/convert",
        ppid.convert,
        ("POST",),
        "ppid",
        member="ppid_conversion_endpoint",
    ),
    RouteSpec(
        "events",
        "/events",
        events.publish,
        ("POST",),
        "events",
        member="event_signing_endpoint",
    ),
    # Discovery itself, and client management (RFC 7592).
    RouteSpec(
        "openid-configuration",
        "/.well-known/openid-configuration",
        metadata.openid_configuration,
        cors=True,
        well_known=True,
    ),
    RouteSpec(
        "oauth-authorization-server",
        "/.well-known/oauth-authorization-server",
        metadata.oauth_metadata,
        cors=True,
        well_known=True,
    ),
    RouteSpec(
        "register/{client_id}",
        "/register/{client_id:path}",
        registration.manage,
        ("GET", "PUT", "DELETE"),
    ),
)
FAULT_SWITCHES: tuple[str, ...] = tuple(r.fault for r in ROUTES if r.fault is not None)


class Urls:
    """Absolute URLs of the IdP's endpoints, from the route table."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._by_name = {r.name: r for r in ROUTES}

    def url(self, name: str) -> str:
        """The URL of endpoint `name` (e.g. "token"); other names are taken as a path."""
        spec = self._by_name.get(name)
        return f"{self.issuer}{spec.path}" if spec is not None else f"{self.issuer}/{name}"

    def metadata_members(self) -> dict[str, str]:
        """Discovery members naming endpoint URLs (authorization_endpoint, ...)."""
        return {r.member: self.url(r.name) for r in ROUTES if r.member is not None}


def _paths(spec: RouteSpec, prefix: str) -> Iterator[str]:
    yield prefix + spec.path
    if spec.well_known and prefix:
        yield spec.path + prefix


def cors_paths(prefix: str) -> list[str]:
    """The browser paths of an IdP whose issuer has path `prefix`."""
    return [path for spec in ROUTES if spec.cors for path in _paths(spec, prefix)]


def handler(
    endpoint: Endpoint, context: object, faults: Faults, fault: str | None
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint: fault switch first, then the endpoint, OAuth errors rendered."""

    async def handle(request: Request) -> Response:
        if fault is not None:
            answer = await faults.intercept(faults.mode(fault))
            if answer is not None:
                return answer
        try:
            return await endpoint(context, request)
        except OAuthError as exc:
            return exc.response()

    return handle


def build_routes(prefix: str, context: object, faults: Faults) -> list[Route]:
    """Starlette routes for the whole table under the issuer path `prefix`."""
    return [
        Route(
            path,
            handler(spec.endpoint, context, faults, spec.fault),
            methods=list(spec.methods) if spec.methods is not None else None,
        )
        for spec in ROUTES
        for path in _paths(spec, prefix)
    ]
