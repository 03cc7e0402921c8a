"""Several issuers in one guard: each with its own discovery, keys, audience and token profile.

A token is routed by its `iss`, compared exactly against the configured list *before* anything
is fetched: a token naming an unlisted issuer is refused (`bad_issuer`) at the cost of one JSON
decode, and can make the guard contact no server. Entra ID style per-tenant issuers come from
a template (`https://login.microsoftonline.com/{tenant}/v2.0`) and an explicit tenant
allow-list; such a token's `tid` must name the same tenant as its `iss`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._jws import MalformedJWS, b64url_decode, parse_json_object
from ._net import is_loopback_host
from .access_token import DEFAULT_MAX_TOKEN_BYTES, AccessToken
from .errors import ConfigurationError, InvalidToken
from .jwt import DEFAULT_ALGORITHMS, DEFAULT_LEEWAY, JWTValidator
from .observe import Observer
from .profiles import TokenProfile, resolve_profile
from .server import AuthorizationServer

__all__ = ["Issuer", "MultiIssuerValidator"]

_TENANT = "{tenant}"


def check_issuer_url(issuer: str, option: str = "issuers=") -> None:
    """ConfigurationError naming `option` unless `issuer` is https (http only on loopback)."""
    parts = urlsplit(issuer)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host and is_loopback_host(host):
        return
    raise ConfigurationError(
        f"{option}: issuer must be an https URL (http only on loopback): {issuer!r}"
    )


@dataclass(frozen=True)
class Issuer:
    """One trusted issuer of a multi-issuer guard.

    `issuer`: the exact `iss` value (or an `AuthorizationServer` for full control over its
    HTTP client and key-cache timings); `audience`: what its tokens' `aud` must name (default:
    the guard's `resource`); `profile`: how its tokens are typed and read (`"rfc9068"`,
    `"keycloak"`, `"auth0"`, `"entra-v1"`, `"entra-v2"`, `"okta"`, `"cognito"` or a
    `TokenProfile`). With `{tenant}` in `issuer`, `tenants` lists the allowed tenant ids: one
    issuer per tenant, and a token's `tid` must be its tenant.
    """

    issuer: str | AuthorizationServer
    audience: str | Sequence[str] | None = None
    profile: str | TokenProfile | Mapping[str, Any] = "rfc9068"
    tenants: Sequence[str] | None = None
    jwks_uri: str | None = None

    @property
    def url(self) -> str:
        return self.issuer.issuer if isinstance(self.issuer, AuthorizationServer) else self.issuer


class _Route:
    __slots__ = ("tenant", "validator")

    def __init__(self, validator: JWTValidator, tenant: str | None) -> None:
        self.validator = validator
        self.tenant = tenant


class MultiIssuerValidator:
    """Routes each token by exact `iss` to the validator of that issuer (see the module doc)."""

    def __init__(
        self,
        issuers: Sequence[Issuer],
        *,
        resource: str,
        http_client: httpx.AsyncClient | None = None,
        algorithms: Sequence[str] | None = None,
        leeway: float | None = None,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        cache_size: int = 10_000,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(issuers, Issuer | str) or not issuers:
            raise ConfigurationError("issuers= must be a non-empty list of Issuer(...)")
        self._routes: dict[str, _Route] = {}
        self.servers: list[AuthorizationServer] = []
        for entry in issuers:
            if not isinstance(entry, Issuer):
                raise ConfigurationError("issuers=: every member must be an Issuer(...)")
            profile = resolve_profile(entry.profile)
            for url, tenant in _expand(entry):
                check_issuer_url(url)
                if url in self._routes:
                    raise ConfigurationError(f"issuers=: {url!r} is listed twice")
                server = (
                    entry.issuer
                    if isinstance(entry.issuer, AuthorizationServer)
                    else AuthorizationServer(
                        url, http_client=http_client, jwks_uri=entry.jwks_uri, observer=observer
                    )
                )
                validator = JWTValidator(
                    server=server,
                    audience=entry.audience if entry.audience is not None else resource,
                    algorithms=DEFAULT_ALGORITHMS if algorithms is None else algorithms,
                    leeway=DEFAULT_LEEWAY if leeway is None else leeway,
                    max_token_bytes=max_token_bytes,
                    cache_size=cache_size,
                    profile=profile,
                    observer=observer,
                    clock=clock,
                )
                self._routes[url] = _Route(validator, tenant)
                self.servers.append(server)
        self._validators = tuple(r.validator for r in self._routes.values())
        self.max_token_bytes = max_token_bytes

    @property
    def issuers(self) -> list[str]:
        """Every accepted `iss` value, in configuration order (tenants expanded)."""
        return list(self._routes)

    def cached(self, token: str) -> AccessToken | None:
        """A remembered result from whichever issuer's validator has seen this token."""
        for validator in self._validators:
            hit = validator.cached(token)
            if hit is not None:
                return hit
        return None

    async def validate(self, token: str) -> AccessToken:
        """The validated token; `bad_issuer` (401) for an unlisted `iss`, with no fetch."""
        route = self._route(token)
        return await route.validator.validate(token)

    def _route(self, token: str) -> _Route:
        if len(token) > self.max_token_bytes:
            raise InvalidToken(reason="token_too_large")
        segments = token.split(".")
        if len(segments) != 3:
            raise InvalidToken(reason="malformed")
        try:
            claims = parse_json_object(b64url_decode(segments[1]))
        except MalformedJWS as exc:
            raise InvalidToken(reason=str(exc)) from None
        iss = claims.get("iss")
        route = self._routes.get(iss) if isinstance(iss, str) else None
        if route is None:
            raise InvalidToken(reason="bad_issuer")
        if route.tenant is not None and claims.get("tid") != route.tenant:
            # A tenant's issuer with another tenant's id: not that tenant's token.
            raise InvalidToken(reason="bad_tenant")
        return route


def _expand(entry: Issuer) -> list[tuple[str, str | None]]:
    url = entry.url
    if _TENANT not in url:
        if entry.tenants is not None:
            raise ConfigurationError(f"issuers=: tenants= needs {_TENANT} in the issuer {url!r}")
        return [(url, None)]
    if isinstance(entry.issuer, AuthorizationServer):
        raise ConfigurationError("issuers=: a {tenant} template must be a string, not a server")
    if entry.tenants is None or isinstance(entry.tenants, str) or not entry.tenants:
        raise ConfigurationError(
            f"issuers=: the template {url!r} needs tenants=[...] (an explicit allow-list)"
        )
    for tenant in entry.tenants:
        if not tenant or not all(c.isalnum() or c in "-._" for c in tenant):
            raise ConfigurationError(f"issuers=: bad tenant id {tenant!r}")
    return [(url.replace(_TENANT, tenant), tenant) for tenant in entry.tenants]
