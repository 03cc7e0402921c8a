"""The IdP's own outbound HTTP: its client's lifecycle, and bounded GETs of documents it must
read (sector identifiers, client metadata documents, client JWK Sets).

Every URL here comes from a client, so two rules hold (docs/explanation/choices.md, "Outbound
address checks"): the IdP's own client connects only to public addresses, checked when the name
is resolved (`PublicAddressTransport`; dev mode allows loopback and private ones), and what a
caller is told about a failed fetch is one generic sentence, never what the server answered.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import httpx

from .._http import PublicAddressTransport
from .._json import JSONError, loads
from .._net import is_non_public_address
from ._errors import OAuthError
from ._util import safe_split

if TYPE_CHECKING:
    from ._settings import Settings

logger = logging.getLogger("rs_guard.idp")


class Fetcher:
    """The client the IdP fetches and delivers with: given, or made on first use and owned.

    A given client is the operator's choice, transport included; the one made here refuses
    non-public addresses at connect time (outside dev mode) and ignores proxy variables from
    the environment (a proxy would resolve the name itself, past the check)."""

    def __init__(self, settings: Settings, http_client: httpx.AsyncClient | None) -> None:
        self._settings = settings
        self._given = http_client
        self._owned: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        """The client used for the IdP's own fetches (created lazily: no I/O at start-up)."""
        if self._given is not None:
            return self._given
        if self._owned is None:
            settings = self._settings
            self._owned = httpx.AsyncClient(
                transport=PublicAddressTransport(allow_non_public=lambda: settings.dev),
                timeout=3.0,
                follow_redirects=False,
                trust_env=False,
            )
        return self._owned

    async def aclose(self) -> None:
        """Close the client made here, if any (a given one belongs to its giver)."""
        if self._owned is not None:
            await self._owned.aclose()
            self._owned = None

    def check(self, url: str, what: str, error: str, status: int = 400) -> None:
        """Refuse URLs the IdP must not fetch: non-https, fragments, credentials, private
        literals (http and private addresses only in dev mode). Names are checked again,
        resolved, when the IdP's own client connects."""
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
        # One generic answer for every failure: the caller must not learn what stands behind
        # the URL (its status, body, size or error text would make the IdP a scanner).
        failed = OAuthError(error, f"{what} could not be fetched", status)
        try:
            async with self.client().stream(
                "GET",
                url,
                headers={"Accept": "application/json"},
                timeout=self._settings.fetch_deadline,
                follow_redirects=False,
            ) as resp:
                if resp.status_code != 200:
                    logger.debug("fetching %s: HTTP %s", what, resp.status_code)
                    raise failed
                body = b""
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        logger.debug("fetching %s: more than %d bytes", what, limit)
                        raise failed
                headers = resp.headers
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
            logger.debug("fetching %s: %s", what, type(exc).__name__)
            raise failed from None
        try:
            return loads(body), headers
        except JSONError:
            logger.debug("fetching %s: not JSON", what)
            raise failed from None
