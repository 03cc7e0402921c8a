"""AuthorizationServer: everything rs_guard knows about one issuer, shared by every feature."""

from __future__ import annotations

from typing import TypedDict

import httpx

from ._async import AsyncResource
from ._http import DEFAULT_TIMEOUT
from .discovery import ServerEndpoint, ServerMetadata
from .errors import ConfigurationError
from .keys import JWKSCache
from .observe import Observer

__all__ = ["AuthorizationServer"]


class AuthorizationServer(AsyncResource):
    """One issuer: its discovery document, its JWK Set cache and the HTTP client to reach it.

    Give the same object to ResourceGuard, PPIDTranslator, ClientCredentials, TokenExchanger
    and EventVerifier, and a service using all of them fetches discovery once and holds one key
    cache. The HTTP client is the one given (never closed here) or one made on first use with
    short timeouts and no redirects, which `aclose()` (or `async with`) closes.
    """

    def __init__(
        self,
        issuer: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        jwks_uri: str | None = None,
        jwks_max_age: float = 300.0,
        jwks_cooldown: float = 30.0,
        jwks_stale_for: float = 3600.0,
        jwks_hold: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        observer: Observer | None = None,
    ) -> None:
        self.issuer = issuer
        self.metadata = ServerMetadata(
            issuer, http_client=http_client, timeout=timeout, observer=observer
        )
        self.keys = JWKSCache(
            jwks_uri,
            metadata=self.metadata,
            max_age=jwks_max_age,
            cooldown=jwks_cooldown,
            stale_for=jwks_stale_for,
            hold=jwks_hold,
            observer=observer,
        )

    def __repr__(self) -> str:
        return f"AuthorizationServer({self.issuer!r})"

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The client for every call to this server: the one given, or one made on first use."""
        return self.metadata.http_client

    async def endpoint(self, name: str) -> str:
        """One endpoint URL from the discovery document (e.g. "token_endpoint").

        FetchError when the document cannot be had or does not name the endpoint.
        """
        return await self.metadata.endpoint(name)

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it (a given client stays open)."""
        await self.metadata.aclose()


def refuse_beside_server(
    owner: str, server: AuthorizationServer, issuer: str | None, **given: object
) -> None:
    """ConfigurationError when `owner` got `server=` and also what the server already gives."""
    if issuer is not None and issuer != server.issuer:
        raise ConfigurationError(f"{owner}: issuer= differs from server.issuer: give one of them")
    clash = [f"{name}=" for name, value in given.items() if value is not None]
    if clash:
        raise ConfigurationError(
            f"{owner}: server= cannot be combined with {', '.join(clash)}: the server gives them"
        )


class IssuerOptions(TypedDict, total=False):
    """How a feature names its issuer, the keywords PPIDTranslator, ClientCredentials and
    TokenExchanger share: the shared `server` (an `AuthorizationServer`), or `issuer` (its
    metadata is discovered) or its `metadata`, with the `http_client` to call it."""

    server: AuthorizationServer | None
    issuer: str | None
    metadata: ServerMetadata | None
    http_client: httpx.AsyncClient | None


def locate_endpoint(
    owner: str,
    name: str,
    where: IssuerOptions,
    *,
    url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    observer: Observer | None = None,
) -> ServerEndpoint:
    """The endpoint `name` (a metadata member such as "token_endpoint") of the issuer a
    feature (`owner`, for error messages) was configured with, the one way every feature reads
    its configuration: the shared server's metadata and client; else the metadata given, or one
    made for the issuer (closed with the endpoint); `url` overrides the member.

    ConfigurationError when `server=` comes with what it already gives, or nothing names the
    endpoint at all.
    """
    server, issuer = where.get("server"), where.get("issuer")
    metadata, http_client = where.get("metadata"), where.get("http_client")
    owned = False
    if server is not None:
        refuse_beside_server(owner, server, issuer, metadata=metadata, http_client=http_client)
        metadata = server.metadata
    elif metadata is None and issuer is not None:
        metadata = ServerMetadata(issuer, http_client=http_client, observer=observer)
        owned = True
    if url is None and metadata is None:
        raise ConfigurationError(f"{owner}: give server=, issuer=, metadata= or the {name}")
    return ServerEndpoint(
        name,
        url=url,
        metadata=metadata,
        http_client=http_client,
        timeout=timeout,
        owns_metadata=owned,
    )
