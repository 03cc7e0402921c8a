"""Bounded, redirect-free JSON fetching shared by discovery, JWKS and introspection."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from ._json import JSONError, loads_object
from ._net import is_non_public_ip
from .errors import FetchError as FetchError  # re-exported: fetch callers catch it here

DEFAULT_TIMEOUT = 5.0

logger = logging.getLogger("rs_guard.http")

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Resolves (host, port) to IP addresses, in the order they should be tried."""


def default_client(timeout: float = DEFAULT_TIMEOUT) -> httpx.AsyncClient:
    """An httpx client with the defaults a security library needs: short timeouts, no redirects."""
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False)


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, without duplicates. getaddrinfo runs in a worker
    thread (anyio), so a slow resolver never blocks the event loop."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class AddressRefused(httpx.ConnectError):
    """The URL's host is, or resolves to, an address the transport must not connect to."""


class PublicAddressTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that connects only to public addresses, checked at connect time.

    Checking a URL's host before the fetch sees IP literals only: a DNS name can resolve to
    127.0.0.1 or 10.0.0.5, and can resolve differently a moment later (DNS rebinding). So
    this transport resolves the name itself, refuses the request (`AddressRefused`, before
    any connection) when *any* address is non-public (`is_non_public_ip`), and then connects
    to exactly the addresses it checked, in order. The request keeps the name in its Host
    header and TLS still verifies the certificate against the name (SNI via httpcore's
    `sni_hostname` extension). Connections are not kept alive: httpcore pools them by the
    address connected to, so a pooled connection could otherwise serve another name on the
    same address without its certificate being checked.

    `allow_non_public` is asked per request (True: loopback and private addresses are fine,
    as in the IdP's dev mode); `resolver` replaces DNS, for tests.
    """

    def __init__(
        self,
        *,
        allow_non_public: Callable[[], bool] = lambda: False,
        resolver: Resolver = resolve,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("limits", httpx.Limits(max_keepalive_connections=0))
        super().__init__(**kwargs)
        self._allow_non_public = allow_non_public
        self._resolve = resolver

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}", request=request)
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        last: httpx.ConnectError | None = None
        for address in await self._addresses(request, host, port):
            pinned = httpx.Request(
                request.method,
                url.copy_with(host=address),
                headers=request.headers,  # Host: still the name
                stream=request.stream,
                extensions={**request.extensions, "sni_hostname": host},
            )
            try:
                return await super().handle_async_request(pinned)
            except httpx.ConnectError as exc:  # nothing was sent: the next address may answer
                logger.debug("outbound: connecting to %s for %s failed: %s", address, host, exc)
                last = exc
        raise last or httpx.ConnectError("no address to connect to", request=request)

    async def _addresses(self, request: httpx.Request, host: str, port: int) -> list[str]:
        timeouts = request.extensions.get("timeout", {})
        try:
            with anyio.fail_after(timeouts.get("connect")):
                found = list(await self._resolve(host, port))
            addresses = [ipaddress.ip_address(a) for a in found]
        except TimeoutError:
            raise httpx.ConnectTimeout("name resolution timed out", request=request) from None
        except (OSError, UnicodeError, ValueError) as exc:
            logger.debug("outbound: resolving %s failed: %s", host, exc)
            raise httpx.ConnectError("name resolution failed", request=request) from None
        if not addresses:
            raise httpx.ConnectError("name resolution failed", request=request)
        if not self._allow_non_public():
            refused = [str(a) for a in addresses if is_non_public_ip(a)]
            if refused:
                logger.debug("outbound: refused %s: it resolves to %s", host, ", ".join(refused))
                raise AddressRefused("the host has a non-public address", request=request)
        return [str(a) for a in addresses]


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
