"""The token endpoint as this service's own confidential client, shared by the outbound clients.

`TokenEndpointClient` posts grant requests (client authentication, one deadline, strict checks
of the answer); `TokenSource` caches what it obtains until shortly before it expires, one IdP
request however many callers ask at once; `BearerAuth` plugs a source into httpx as `auth=`.
`ClientCredentials` (client_credentials.py) and `TokenExchanger` (token_exchange.py) build on them.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Unpack
from urllib.parse import quote_plus

import httpx
from cachetools import TLRUCache

from .._async import SingleFlight
from .._http import FetchError, JSONAnswer, request_json
from .._scopes import split_scope
from ..dpop import DPoPAuth, DPoPKey, dpop_nonce_retry
from ..errors import ConfigurationError, TokenServiceUnavailable
from ..observe import Observer, emit
from ..server import IssuerOptions, locate_endpoint

_MAX_RESPONSE_BYTES = 64 * 1024
# Used when the IdP omits expires_in (RFC 6749 §5.1 only recommends it): assume a short life.
_DEFAULT_LIFETIME = 60.0

AuthMethod = Literal["client_secret_basic", "client_secret_post"]


class EndpointOptions(IssuerOptions, total=False):
    """How to reach the token endpoint; the keywords `ClientCredentials` and `TokenExchanger`
    pass on to `TokenEndpointClient`.

    The issuer (`server`, or `issuer` / `metadata` with `http_client`, see `IssuerOptions`) or
    the `token_endpoint` outright; `auth_method` ("client_secret_basic", or
    "client_secret_post"), `timeout` (5 s, the whole request), `refresh_margin` (30 s before
    expiry a cached token is renewed), `observer`, `clock` (`time.time`).
    """

    token_endpoint: str | None
    auth_method: AuthMethod
    timeout: float
    refresh_margin: float
    observer: Observer | None
    clock: Callable[[], float]
    dpop: DPoPKey | None


@dataclass(frozen=True)
class IssuedToken:
    """An access token obtained from the IdP and the (local clock) time to stop using it."""

    access_token: str
    usable_until: float
    scope: tuple[str, ...]

    def __repr__(self) -> str:
        # Never the token itself: reprs end up in logs.
        return f"IssuedToken(scope={self.scope!r}, usable_until={self.usable_until!r})"


class OAuthAnswer(Exception):
    """A 4xx OAuth error answer from the token endpoint (RFC 6749 §5.2)."""

    def __init__(self, error: str, status: int) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


def _ttu(_key: Any, value: IssuedToken, _now: float) -> float:
    return value.usable_until


def scope_key(scope: str | Sequence[str] | None) -> tuple[str, ...]:
    """A scope request as a cache key: the distinct scope tokens, sorted."""
    return tuple(sorted(split_scope(scope)))


def as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """One or many values (resource, audience) as a tuple."""
    return (value,) if isinstance(value, str) else tuple(value or ())


def _form_value(value: str) -> str:
    return quote_plus(value, safe="")


class TokenEndpointClient:
    """Posts grant requests to the IdP's token endpoint as an authenticated confidential client.

    Shared plumbing of `ClientCredentials` and `TokenExchanger`: endpoint discovery, client
    authentication, an overall deadline, and strict checks of the answer.
    """

    def __init__(
        self, *, client_id: str, client_secret: str, **options: Unpack[EndpointOptions]
    ) -> None:
        auth_method = options.get("auth_method", "client_secret_basic")
        self.dpop = options.get("dpop")  # RFC 9449 §5: ask for tokens bound to this key
        self.dpop_nonce: str | None = None
        if not client_id or not client_secret:
            raise ConfigurationError("a confidential client id and secret are required")
        if auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ConfigurationError(f"unsupported client authentication {auth_method!r}")
        self.client_id = client_id
        self._secret = client_secret
        self.auth_method = auth_method
        self.timeout = options.get("timeout", 5.0)
        self.refresh_margin = options.get("refresh_margin", 30.0)
        self.observer = options.get("observer")
        self.clock = options.get("clock", time.time)
        self.target = locate_endpoint(
            type(self).__name__,
            "token_endpoint",
            options,
            url=options.get("token_endpoint"),
            timeout=self.timeout,
            observer=self.observer,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r})"

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The client for calls to the IdP (the metadata's, or a default one made on first use)."""
        return self.target.http_client

    async def aclose(self) -> None:
        """Close the HTTP client this object created for itself, if any."""
        await self.target.aclose()

    async def endpoint(self) -> str:
        """The token endpoint URL (configured, or from the IdP's metadata)."""
        try:
            return await self.target.url()
        except FetchError as exc:
            emit(self.observer, "token_request_failed", reason=f"discovery_{exc}")
            raise TokenServiceUnavailable(reason="token_discovery_failed") from None

    async def request(
        self, form: dict[str, str | Sequence[str]], *, deadline: float | None = None
    ) -> IssuedToken:
        """Send one grant request; TokenServiceUnavailable or OAuthAnswer on failure.

        The whole request (discovery included) must finish by `deadline`, an event-loop time
        (`loop.time()`); by default `timeout` seconds from now. A caller with a budget of its
        own passes its deadline, so that the two never nest.
        """
        started = self.clock()
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                status, body = await self._post(await self.endpoint(), form)
        except TimeoutError:
            emit(self.observer, "token_request_failed", reason="timeout")
            raise TokenServiceUnavailable(reason="token_timeout") from None
        except FetchError as exc:
            emit(self.observer, "token_request_failed", reason=str(exc))
            raise TokenServiceUnavailable(reason=f"token_{exc}") from None
        if status != 200:
            error = body.get("error") if 400 <= status < 500 else None
            if not isinstance(error, str) or not error:
                emit(self.observer, "token_request_failed", reason=f"http_{status}")
                raise TokenServiceUnavailable(reason=f"token_http_{status}")
            emit(self.observer, "token_request_refused", error=error, status=status)
            raise OAuthAnswer(error, status)
        return self._issued(body, started)

    async def _post(
        self, url: str, form: dict[str, str | Sequence[str]]
    ) -> tuple[int, dict[str, Any]]:
        data: dict[str, str | Sequence[str]] = dict(form)
        headers = {"Accept": "application/json"}
        if self.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: both parts are form-urlencoded before the Basic encoding.
            creds = f"{_form_value(self.client_id)}:{_form_value(self._secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode("ascii")
        else:
            data["client_id"] = self.client_id
            data["client_secret"] = self._secret
        for _ in range(2 if self.dpop is not None else 1):
            if self.dpop is not None:
                headers["DPoP"] = self.dpop.proof("POST", url, nonce=self.dpop_nonce)
            answer = await self._send(url, data, headers)
            if not dpop_nonce_retry(self, answer.status, answer.headers, answer.body):
                break
        return answer.status, answer.body or {}

    async def _send(
        self, url: str, data: dict[str, str | Sequence[str]], headers: dict[str, str]
    ) -> JSONAnswer:
        # An error answer's body names the OAuth error (RFC 6749 §5.2); a 5xx body is not read.
        return await request_json(
            self.http_client,
            "POST",
            url,
            max_bytes=_MAX_RESPONSE_BYTES,
            read_statuses=range(200, 500),
            data=data,
            headers=headers,
        )

    def _issued(self, body: dict[str, Any], started: float) -> IssuedToken:
        token = body.get("access_token")
        token_type = body.get("token_type")
        expires_in = body.get("expires_in", _DEFAULT_LIFETIME)
        scope = body.get("scope", "")
        if (
            not isinstance(token, str)
            or not token
            or not isinstance(token_type, str)
            or token_type.lower() != ("bearer" if self.dpop is None else "dpop")
            or not isinstance(expires_in, int | float)
            or isinstance(expires_in, bool)
            or expires_in <= 0
            # 1e400 parses as infinity and 10**400 overflows float(): neither is a lifetime.
            or expires_in >= 1e12
            or not isinstance(scope, str)
        ):
            emit(self.observer, "token_request_failed", reason="bad_response")
            raise TokenServiceUnavailable(reason="token_garbage")
        lifetime = float(expires_in)
        # Stop using it a little early (measured from when the request was sent), so that a
        # token never expires on its way to the resource.
        margin = min(self.refresh_margin, lifetime / 2)
        return IssuedToken(token, started + lifetime - margin, tuple(s for s in scope.split() if s))


class BearerAuth(httpx.Auth):
    """httpx auth that sends a Bearer token and, after a 401, retries once with a fresh one."""

    def __init__(
        self,
        get_token: Callable[[], Awaitable[str]],
        invalidate: Callable[[str], None],
    ) -> None:
        self._get = get_token
        self._invalidate = invalidate

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("rs_guard token sources are async: use httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._get()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # The token may have been revoked or the keys rotated: one fresh try, no loop.
            self._invalidate(token)
            token = await self._get()
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


class TokenSource:
    """What `ClientCredentials` and `TokenExchanger` share: the token endpoint client, and a
    cache of issued tokens (until shortly before they expire) filled by one request per key
    however many callers ask at the same time."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        cache_size: int = 10_000,
        **endpoint: Unpack[EndpointOptions],
    ) -> None:
        self.endpoint = TokenEndpointClient(
            client_id=client_id, client_secret=client_secret, **endpoint
        )
        self._cache: TLRUCache[Any, IssuedToken] = TLRUCache(
            cache_size, _ttu, timer=self.endpoint.clock
        )
        self._flight: SingleFlight[Any, IssuedToken] = SingleFlight()
        self._observer = self.endpoint.observer

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.endpoint.client_id!r})"

    @property
    def client_id(self) -> str:
        """This service's client id."""
        return self.endpoint.client_id

    async def _cached(
        self, key: Hashable, fetch: Callable[[], Awaitable[IssuedToken]]
    ) -> IssuedToken:
        """The cached token for `key`, else the one `fetch` obtains (shared, then cached)."""
        hit = self._cache.get(key)
        if hit is not None:
            return hit

        async def fetch_and_keep() -> IssuedToken:
            issued = await fetch()
            self._cache[key] = issued
            return issued

        return await self._flight.run(key, fetch_and_keep)

    def _bearer(self, get_token: Callable[[], Awaitable[str]]) -> httpx.Auth:
        """An httpx `auth=` sending the tokens `get_token` gives, forgetting one refused."""
        if self.endpoint.dpop is not None:  # DPoP-bound tokens go with a proof (RFC 9449 §7)
            return DPoPAuth(self.endpoint.dpop, get_token, invalidate=self.invalidate)
        return BearerAuth(get_token, self.invalidate)

    def invalidate(self, token: str | None = None) -> None:
        """Forget a cached token (one that a resource refused), or all of them."""
        for key, issued in list(self._cache.items()):
            if token is None or issued.access_token == token:
                self._cache.pop(key, None)

    async def aclose(self) -> None:
        """Close the HTTP client created for the IdP, if this object made one."""
        await self.endpoint.aclose()
