"""Bounded outbound GETs for documents the IdP must read (sector identifiers, metadata docs)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from .._net import is_non_public_address
from ._util import OAuthError, safe_split

if TYPE_CHECKING:
    from .app import IdP


def check_fetchable(idp: IdP, url: str, what: str, error: str, status: int = 400) -> None:
    """Refuse URLs the IdP must not fetch: non-https, fragments, credentials, private literals."""
    parts = safe_split(url)
    if parts is None or not parts[1] or "#" in url or "@" in urlsplit(url).netloc:
        raise OAuthError(error, f"{what} is not a valid URL", status)
    scheme, host = parts[0], parts[1]
    if scheme != "https" and not (idp.dev and scheme == "http"):
        raise OAuthError(error, f"{what} must use https", status)
    if not idp.dev and is_non_public_address(host):
        raise OAuthError(error, f"{what} points to a private or loopback address", status)


async def fetch_json(
    idp: IdP, url: str, *, limit: int, what: str, error: str, status: int = 400
) -> tuple[Any, httpx.Headers]:
    """GET a JSON document: no redirects, short timeout, at most `limit` bytes."""
    try:
        async with idp.outbound().stream(
            "GET",
            url,
            headers={"Accept": "application/json"},
            timeout=3.0,
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
    except httpx.HTTPError as exc:
        raise OAuthError(
            error, f"{what} could not be fetched ({type(exc).__name__})", status
        ) from None
    try:
        return json.loads(body), headers
    except (ValueError, RecursionError):
        raise OAuthError(error, f"{what} is not valid JSON", status) from None
