"""Bounded, redirect-free JSON fetching shared by discovery, JWKS and introspection."""

from __future__ import annotations

import asyncio
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

import httpx

from ._json import JSONError, loads_object
from .errors import FetchError as FetchError  # re-exported: fetch callers catch it here

DEFAULT_TIMEOUT = 5.0


def default_client(timeout: float = DEFAULT_TIMEOUT) -> httpx.AsyncClient:
    """An httpx client with the defaults a security library needs: short timeouts, no redirects."""
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False)


async def read_json_object(response: httpx.Response, max_bytes: int) -> dict[str, Any]:
    """Read a streamed response body up to `max_bytes` and parse it as a JSON object."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("response_too_large")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchError("response_too_large")
    try:
        return loads_object(bytes(body))
    except JSONError:
        raise FetchError("response_not_json") from None


@dataclass(frozen=True, slots=True)
class JSONAnswer:
    """An HTTP answer whose body, when it was read, is a JSON object."""

    status: int
    headers: httpx.Headers
    body: dict[str, Any] | None
    """None when the status was not one whose body was asked for."""


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    max_bytes: int,
    read_statuses: Container[int] = (200,),
    **kwargs: Any,
) -> JSONAnswer:
    """Send one request without following redirects; read the body (at most `max_bytes`, a
    JSON object) only for `read_statuses`. FetchError on network failure or a bad body.

    Only network reads are bounded here: callers put an overall deadline around it.
    """
    auth = kwargs.pop("auth", None)
    try:
        request = client.build_request(method, url, **kwargs)
        response = await client.send(
            request, stream=True, follow_redirects=False, auth=auth or httpx.USE_CLIENT_DEFAULT
        )
    except httpx.TimeoutException:
        raise FetchError("timeout") from None
    except httpx.HTTPError:
        raise FetchError("unreachable") from None
    try:
        body = None
        if response.status_code in read_statuses:
            body = await read_json_object(response, max_bytes)
        return JSONAnswer(response.status_code, response.headers, body)
    except httpx.TimeoutException:
        raise FetchError("timeout") from None
    except httpx.HTTPError:
        raise FetchError("unreachable") from None
    finally:
        await response.aclose()


async def fetch_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    max_bytes: int,
    timeout: float | None = None,
    ok_statuses: tuple[int, ...] = (200,),
    **kwargs: Any,
) -> dict[str, Any]:
    """Send one request and return its JSON object body; FetchError on any failure.

    The whole exchange is bounded by `timeout` (or the client's read timeout), not just each
    network read, so a server trickling bytes cannot hold a request forever.
    """
    deadline = timeout if timeout is not None else (client.timeout.read or DEFAULT_TIMEOUT)
    try:
        async with asyncio.timeout(deadline):
            answer = await request_json(
                client, method, url, max_bytes=max_bytes, read_statuses=ok_statuses, **kwargs
            )
    except TimeoutError:
        raise FetchError("timeout") from None
    if answer.body is None:
        raise FetchError(f"http_{answer.status}")
    return answer.body


def parse_retry_after(value: str | None, *, ceiling: int = 300) -> int | None:
    """The delay-seconds form of a Retry-After header (RFC 9110 §10.2.3), within [1, ceiling].

    ASCII digits only: `str.isdigit()` also accepts "²" or "٣", which `int()` then refuses or
    reads differently. The HTTP-date form is ignored (None), and the delay is bounded so that
    a server cannot park our clients for a day.
    """
    if value is None:
        return None
    value = value.strip(" \t")
    if not value or not value.isascii() or not value.isdigit():
        return None
    return max(1, min(int(value), ceiling))
