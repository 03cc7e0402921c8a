"""Authorization-server metadata (RFC 8414 / OIDC Discovery 1.0), fetched once and cached."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._async import SingleFlight
from ._http import default_client, fetch_json
from .errors import FetchError
from .observe import Observer, emit

__all__ = ["ServerMetadata", "metadata_urls"]

_MAX_METADATA_BYTES = 256 * 1024


def metadata_urls(issuer: str) -> list[str]:
    """Where the metadata of `issuer` may live, in the order clients try them.

    RFC 8414 §3.1 inserts the well-known segment between host and path; OIDC Discovery §4
    appends it to the issuer. For an issuer without a path both forms are tried.
    """
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]
    if path:
        urls.append(f"{origin}/.well-known/openid-configuration{path}")
    return urls


class ServerMetadata:
    """The cached metadata document of one authorization server, checked against its issuer."""

    def __init__(
        self,
        issuer: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        max_age: float = 3600.0,
        timeout: float = 5.0,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._client = http_client
        self._owned_client: httpx.AsyncClient | None = None
        self._max_age = max_age
        self._timeout = timeout
        self._observer = observer
        self._clock = clock
        self._document: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._flight: SingleFlight[None, dict[str, Any]] = SingleFlight()

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The client used for all calls to this authorization server (given, or made once)."""
        if self._client is None:
            self._client = self._owned_client = default_client(self._timeout)
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client if it was made here; a given one is the giver's to close."""
        client, self._owned_client = self._owned_client, None
        if client is not None:
            self._client = None
            await client.aclose()

    async def get(self) -> dict[str, Any]:
        """The metadata document; raises FetchError when no valid document can be had."""
        doc = self._document
        if doc is not None and self._clock() - self._fetched_at < self._max_age:
            return doc
        try:
            return await self._flight.run(None, self._fetch)
        except FetchError:
            if doc is not None:
                # A stale but once-valid document beats none: endpoints rarely move.
                return doc
            raise

    async def _fetch(self) -> dict[str, Any]:
        last = FetchError("unreachable")
        for url in metadata_urls(self.issuer):
            try:
                doc = await fetch_json(self.http_client, "GET", url, max_bytes=_MAX_METADATA_BYTES)
            except FetchError as exc:
                last = exc
                continue
            # RFC 8414 §3.3: the issuer in the document must be identical to the one configured,
            # or an attacker's metadata could substitute its own keys.
            if doc.get("issuer") != self.issuer:
                emit(
                    self._observer,
                    "discovery_issuer_mismatch",
                    url=url,
                    expected=self.issuer,
                    received=doc.get("issuer"),
                )
                last = FetchError("issuer_mismatch")
                continue
            self._document = doc
            self._fetched_at = self._clock()
            emit(self._observer, "discovery_fetched", url=url)
            return doc
        tried = " ".join(metadata_urls(self.issuer))
        emit(self._observer, "discovery_failed", reason=str(last), issuer=self.issuer, tried=tried)
        raise last

    async def endpoint(self, name: str) -> str:
        """One endpoint URL from the metadata (e.g. `jwks_uri`); FetchError if absent."""
        value = (await self.get()).get(name)
        if not isinstance(value, str) or not value:
            raise FetchError(f"missing_{name}")
        return value


class ServerEndpoint:
    """One endpoint of an authorization server (configured, or named in its metadata) and the
    HTTP client to call it with: given, else the metadata's, else one made on first use."""

    def __init__(
        self,
        name: str,
        *,
        url: str | None = None,
        metadata: ServerMetadata | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        owns_metadata: bool = False,
    ) -> None:
        self.name = name
        self._url = url
        self.metadata = metadata
        self._client = http_client
        self._own_client: httpx.AsyncClient | None = None
        self._timeout = timeout
        # A document made for this endpoint alone (from an issuer) is closed with it.
        self._owns_metadata = owns_metadata

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The client for calls to this endpoint."""
        if self._client is not None:
            return self._client
        if self.metadata is not None:
            return self.metadata.http_client
        if self._own_client is None:
            self._own_client = default_client(self._timeout)
        return self._own_client

    async def url(self) -> str:
        """The endpoint's URL; FetchError when the metadata cannot be had or does not name it."""
        if self._url is not None:
            return self._url
        if self.metadata is None:
            raise FetchError(f"missing_{self.name}")
        return await self.metadata.endpoint(self.name)

    async def aclose(self) -> None:
        """Close the HTTP client made for this endpoint (or its own metadata), if one was."""
        if self._own_client is not None:
            await self._own_client.aclose()
            self._own_client = None
        if self._owns_metadata and self.metadata is not None:
            await self.metadata.aclose()
