"""The IdP's own outbound HTTP: its client's lifecycle, and bounded GETs of documents it must
read (sector identifiers, client metadata documents, client JWK Sets)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import httpx

from .._json import JSONError, loads
from .._net import is_non_public_address
from ._errors import OAuthError
from ._util import safe_split

if TYPE_CHECKING:
    from ._settings import Settings


class Fetcher:
    """The client the IdP fetches and delivers with: given, or made on first use and owned."""

    def __init__(self, settings: Settings, http_client: httpx.AsyncClient | None) -> None:
        self._settings = settings
        self._given = http_client
        self._owned: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        """The client used for the IdP's own fetches (created lazily: no I/O at start-up)."""
        if self._given is not None:
            return self._given
        if self._owned is None:
            self._owned = httpx.AsyncClient(timeout=3.0, follow_redirects=False)
        return self._owned

    async def aclose(self) -> None:
        """Close the client made here, if any (a given one belongs to its giver)."""
        if self._owned is not None:
            await self._owned.aclose()
            self._owned = None

    def check(self, url: str, what: str, error: str, status: int = 400) -> None:
        """Refuse URLs the IdP must not fetch: non-https, fragments, credentials, private
        literals (http and private addresses only in dev mode)."""
        dev = self._settings.dev
        parts = safe_split(url)
        if parts is None or not parts[1] or "#" in url or "@" in urlsplit(url).netloc:
            raise OAuthError(error, f"{what} is not a valid URL", status)
        scheme, host = parts[0], parts[1]
        if scheme != "https" and not (dev and scheme == "http"):
            raise OAuthError(error, f"{what} must use https", status)
        if not dev and is_non_public_address(host):
            raise OAuthError(error, f"{what} points to a private or loopback address", status)

    async def get_json(
        self, url: str, *, limit: int, what: str, error: str, status: int = 400
    ) -> tuple[Any, httpx.Headers]:
        """GET a JSON document: no redirects, at most `limit` bytes, and one deadline
        (`IdP.fetch_deadline` seconds) for the whole fetch: httpx's timeout is per read, so a
        server trickling a byte at a time would otherwise hold the request for ever."""
        try:
            with anyio.fail_after(self._settings.fetch_deadline):
                return await self._get_json(url, limit=limit, what=what, error=error, status=status)
        except TimeoutError:
            raise OAuthError(error, f"{what} could not be fetched", status) from None

    async def _get_json(
        self, url: str, *, limit: int, what: str, error: str, status: int
    ) -> tuple[Any, httpx.Headers]:
        try:
            async with self.client().stream(
                "GET",
                url,
                headers={"Accept": "application/json"},
                timeout=self._settings.fetch_deadline,
                follow_redirects=False,
            ) as resp:
                if resp.status_code != 200:
                    raise OAuthError(error, f"{what} answered HTTP {resp.status_code}", status)
                body = b""
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise OAuthError(error, f"{what} is larger than {limit} bytes", status)
                headers = resp.headers
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError):
            # Generic on purpose: the caller must not learn what stands behind the URL.
            raise OAuthError(error, f"{what} could not be fetched", status) from None
        try:
            return loads(body), headers
        except JSONError:
            raise OAuthError(error, f"{what} is not valid JSON", status) from None
