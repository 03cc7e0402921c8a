"""OAuth Client ID Metadata Documents: a client_id that is an https URL naming its metadata."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ._client_metadata import (
    GRANT_CODE,
    GRANT_REFRESH,
    RegistrationError,
    build_client,
    validate_metadata,
)
from ._errors import OAuthError
from ._util import safe_split

if TYPE_CHECKING:
    from ._clients import Client
    from ._fetch import Fetcher
    from ._settings import Settings

MAX_DOCUMENT_BYTES = 5 * 1024
DEFAULT_CACHE_SECONDS = 300
MAX_CACHE_SECONDS = 86_400
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


def looks_like_document_url(client_id: str) -> bool:
    """True when the client_id is meant as a metadata document URL."""
    return client_id.startswith(("https://", "http://"))


def _cache_seconds(cache_control: str | None) -> int:
    if cache_control is None:
        return DEFAULT_CACHE_SECONDS
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0
    m = _MAX_AGE.search(cache_control)
    return min(int(m.group(1)), MAX_CACHE_SECONDS) if m else DEFAULT_CACHE_SECONDS


class ClientDocuments:
    """Fetched, validated and cached (as the document's Cache-Control allows) clients."""

    def __init__(self, settings: Settings, fetcher: Fetcher) -> None:
        self._settings = settings
        self._fetcher = fetcher
        self._cache: dict[str, tuple[float, Client]] = {}

    def cached(self, url: str) -> Client | None:
        """The client cached for `url` (fresh or not), without fetching."""
        entry = self._cache.get(url)
        return entry[1] if entry else None

    def forget(self, url: str) -> None:
        """Drop the cached document (its client was deleted)."""
        self._cache.pop(url, None)

    async def resolve(self, url: str) -> Client | None:
        """The client the document at `url` describes; None when `url` is no document URL."""
        if not looks_like_document_url(url):
            return None
        cached = self._cache.get(url)
        if cached is not None and cached[0] > self._settings.time():
            return cached[1]
        error, status = "invalid_client", 401
        self._fetcher.check(url, "client_id metadata document URL", error, status)
        parts = safe_split(url)
        if parts is None or parts[3] in ("", "/") or "/./" in parts[3] or "/../" in parts[3]:
            raise OAuthError(error, "client_id URL must have a path without dot segments", status)
        doc, headers = await self._fetcher.get_json(
            url,
            limit=MAX_DOCUMENT_BYTES,
            what="client metadata document",
            error=error,
            status=status,
        )
        if not isinstance(doc, dict):
            raise OAuthError(error, "client metadata document must be a JSON object", status)
        if doc.get("client_id") != url:
            raise OAuthError(
                error, "client metadata document's client_id differs from its URL", status
            )
        if "client_secret" in doc or "client_secret_expires_at" in doc:
            raise OAuthError(
                error, "client metadata documents cannot carry a client secret", status
            )
        meta = {k: v for k, v in doc.items() if k != "client_id"}
        has_keys = "jwks" in meta or "jwks_uri" in meta
        meta.setdefault("token_endpoint_auth_method", "private_key_jwt" if has_keys else "none")
        if meta["token_endpoint_auth_method"] not in ("none", "private_key_jwt"):
            raise OAuthError(
                error, "metadata document clients use 'none' or 'private_key_jwt'", status
            )
        if meta.get("subject_type") == "pairwise" or "sector_identifier_uri" in meta:
            # Policy (docs/explanation/choices.md): a document anyone can publish could name
            # another client's sector and so receive that client's pairwise identifiers;
            # verifying it the OIDC Registration §5 way would still let the document's author
            # pick any sector that lists their redirect URI. Pairwise is for registered clients.
            raise OAuthError(
                error, "client metadata documents cannot use pairwise subjects", status
            )
        meta.setdefault("grant_types", [GRANT_CODE, GRANT_REFRESH])
        if not meta.get("redirect_uris"):
            raise OAuthError(error, "client metadata document has no redirect_uris", status)
        try:
            meta = validate_metadata(meta, dev=self._settings.dev)
        except RegistrationError as exc:
            raise OAuthError(
                error, f"client metadata document: {exc.description}", status
            ) from None
        client = build_client(
            url, None, meta, issued_at=self._settings.now(), from_metadata_document=True
        )
        ttl = _cache_seconds(headers.get("cache-control"))
        if ttl > 0:
            self._cache[url] = (self._settings.time() + ttl, client)
        else:
            self._cache.pop(url, None)
        return client
