"""Tokens a service obtains for its own outbound calls: client credentials and RFC 8693 exchange.

A resource server that calls another one never forwards the token it received. For a call made
for the user it exchanges that token at the IdP (RFC 8693) for one addressed to the downstream
resource (`TokenExchanger`); for a call on its own behalf it uses the client-credentials grant
(`ClientCredentials`). Both cache what they obtain until shortly before it expires, make one
IdP request for many concurrent callers, and plug into httpx as `auth=`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote_plus

import httpx
from cachetools import TLRUCache

from ._http import FetchError, request_json
from .access_token import AccessToken
from .discovery import ServerEndpoint, ServerMetadata
from .errors import (
    ConfigurationError,
    InsufficientScope,
    InvalidToken,
    RSGuardError,
    ServerError,
)
from .observe import Observer, emit

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
_MAX_RESPONSE_BYTES = 64 * 1024
# Used when the IdP omits expires_in (RFC 6749 §5.1 only recommends it): assume a short life.
_DEFAULT_LIFETIME = 60.0

AuthMethod = Literal["client_secret_basic", "client_secret_post"]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TokenServiceUnavailable(ServerError):
    """The IdP's token endpoint is unreachable, too slow, or answered garbage."""

    reason = "token_service_unavailable"


class TokenRequestRefused(ServerError):
    """The IdP refused this service's own request (credentials, grant or target not allowed).

    That is a configuration problem of the service, not of the client's request, so the client
    gets a 503; `idp_error` holds the IdP's OAuth error code for the operator.
    """

    reason = "token_request_refused"

    def __init__(self, idp_error: str, *, reason: str | None = None) -> None:
        self.idp_error = idp_error
        super().__init__(reason=reason)


@dataclass(frozen=True)
class IssuedToken:
    """An access token obtained from the IdP and the (local clock) time to stop using it."""

    access_token: str
    usable_until: float
    scope: tuple[str, ...]

    def __repr__(self) -> str:
        # Never the token itself: reprs end up in logs.
        return f"IssuedToken(scope={self.scope!r}, usable_until={self.usable_until!r})"


class _OAuthAnswer(Exception):
    """A 4xx OAuth error answer from the token endpoint (RFC 6749 §5.2)."""

    def __init__(self, error: str, status: int) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


class _SingleFlight(Generic[K, V]):
    """One running computation per key; concurrent callers share its outcome."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, factory: Callable[[], Awaitable[V]]) -> V:
        fut = self._running.get(key)
        if fut is None:
            fut = asyncio.ensure_future(factory())
            self._running[key] = fut
            fut.add_done_callback(lambda f: self._done(key, f))
        # shield: one caller giving up (client disconnect) must not cancel the shared request.
        return await asyncio.shield(fut)

    def _done(self, key: K, fut: asyncio.Future[V]) -> None:
        if self._running.get(key) is fut:
            del self._running[key]
        if not fut.cancelled():
            fut.exception()  # mark retrieved; the callers see it through shield


def _ttu(_key: Any, value: IssuedToken, _now: float) -> float:
    return value.usable_until


def _scope_key(scope: str | Sequence[str] | None) -> tuple[str, ...]:
    if scope is None:
        return ()
    items = scope.split(" ") if isinstance(scope, str) else list(scope)
    return tuple(sorted({s for s in items if s}))


def _form_value(value: str) -> str:
    return quote_plus(value, safe="")


class TokenEndpointClient:
    """Posts grant requests to the IdP's token endpoint as an authenticated confidential client.

    Shared plumbing of `ClientCredentials` and `TokenExchanger`: endpoint discovery, client
    authentication, an overall deadline, and strict checks of the answer.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        issuer: str | None = None,
        token_endpoint: str | None = None,
        metadata: ServerMetadata | None = None,
        http_client: httpx.AsyncClient | None = None,
        auth_method: AuthMethod = "client_secret_basic",
        timeout: float = 5.0,
        refresh_margin: float = 30.0,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id or not client_secret:
            raise ConfigurationError("a confidential client id and secret are required")
        if auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ConfigurationError(f"unsupported client authentication {auth_method!r}")
        if token_endpoint is None and metadata is None:
            if issuer is None:
                raise ConfigurationError("give the issuer, its metadata, or the token endpoint")
            metadata = ServerMetadata(issuer, http_client=http_client, observer=observer)
        self.client_id = client_id
        self._secret = client_secret
        self.target = ServerEndpoint(
            "token_endpoint",
            url=token_endpoint,
            metadata=metadata,
            http_client=http_client,
            timeout=timeout,
        )
        self.auth_method = auth_method
        self.timeout = timeout
        self.refresh_margin = refresh_margin
        self._observer = observer
        self.clock = clock

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
            emit(self._observer, "token_request_failed", reason=f"discovery_{exc}")
            raise TokenServiceUnavailable(reason="token_discovery_failed") from None

    async def request(self, form: dict[str, str | Sequence[str]]) -> IssuedToken:
        """Send one grant request; TokenServiceUnavailable or _OAuthAnswer on failure."""
        started = self.clock()
        try:
            async with asyncio.timeout(self.timeout):
                status, body = await self._post(await self.endpoint(), form)
        except TimeoutError:
            emit(self._observer, "token_request_failed", reason="timeout")
            raise TokenServiceUnavailable(reason="token_timeout") from None
        except FetchError as exc:
            emit(self._observer, "token_request_failed", reason=str(exc))
            raise TokenServiceUnavailable(reason=f"token_{exc}") from None
        if status != 200:
            error = body.get("error") if 400 <= status < 500 else None
            if not isinstance(error, str) or not error:
                emit(self._observer, "token_request_failed", reason=f"http_{status}")
                raise TokenServiceUnavailable(reason=f"token_http_{status}")
            emit(self._observer, "token_request_refused", error=error, status=status)
            raise _OAuthAnswer(error, status)
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
        # An error answer's body names the OAuth error (RFC 6749 §5.2); a 5xx body is not read.
        answer = await request_json(
            self.http_client,
            "POST",
            url,
            max_bytes=_MAX_RESPONSE_BYTES,
            read_statuses=range(200, 500),
            data=data,
            headers=headers,
        )
        return answer.status, answer.body or {}

    def _issued(self, body: dict[str, Any], started: float) -> IssuedToken:
        token = body.get("access_token")
        token_type = body.get("token_type")
        expires_in = body.get("expires_in", _DEFAULT_LIFETIME)
        scope = body.get("scope", "")
        if (
            not isinstance(token, str)
            or not token
            or not isinstance(token_type, str)
            or token_type.lower() != "bearer"
            or not isinstance(expires_in, int | float)
            or isinstance(expires_in, bool)
            or expires_in <= 0
            # 1e400 parses as infinity and 10**400 overflows float(): neither is a lifetime.
            or expires_in >= 1e12
            or not isinstance(scope, str)
        ):
            emit(self._observer, "token_request_failed", reason="bad_response")
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


class _TokenSource:
    """What `ClientCredentials` and `TokenExchanger` share: the token endpoint client, and a
    cache of issued tokens (until shortly before they expire) filled by one request per key
    however many callers ask at the same time."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        issuer: str | None = None,
        token_endpoint: str | None = None,
        metadata: ServerMetadata | None = None,
        http_client: httpx.AsyncClient | None = None,
        auth_method: AuthMethod = "client_secret_basic",
        timeout: float = 5.0,
        refresh_margin: float = 30.0,
        cache_size: int = 10_000,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = TokenEndpointClient(
            client_id=client_id,
            client_secret=client_secret,
            issuer=issuer,
            token_endpoint=token_endpoint,
            metadata=metadata,
            http_client=http_client,
            auth_method=auth_method,
            timeout=timeout,
            refresh_margin=refresh_margin,
            observer=observer,
            clock=clock,
        )
        self._cache: TLRUCache[Any, IssuedToken] = TLRUCache(cache_size, _ttu, timer=clock)
        self._flight: _SingleFlight[Any, IssuedToken] = _SingleFlight()
        self._observer = observer

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

    def invalidate(self, token: str | None = None) -> None:
        """Forget a cached token (one that a resource refused), or all of them."""
        for key, issued in list(self._cache.items()):
            if token is None or issued.access_token == token:
                self._cache.pop(key, None)

    async def aclose(self) -> None:
        """Close the HTTP client created for the IdP, if this object made one."""
        await self.endpoint.aclose()


class ClientCredentials(_TokenSource):
    """Access tokens for calls made on the service's own behalf (client-credentials grant).

    Tokens are cached per (scope, resource) until shortly before they expire; concurrent
    callers share one request to the IdP.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        issuer: str | None = None,
        token_endpoint: str | None = None,
        metadata: ServerMetadata | None = None,
        http_client: httpx.AsyncClient | None = None,
        scope: str | Sequence[str] | None = None,
        resource: str | Sequence[str] | None = None,
        auth_method: AuthMethod = "client_secret_basic",
        timeout: float = 5.0,
        refresh_margin: float = 30.0,
        cache_size: int = 64,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            issuer=issuer,
            token_endpoint=token_endpoint,
            metadata=metadata,
            http_client=http_client,
            auth_method=auth_method,
            timeout=timeout,
            refresh_margin=refresh_margin,
            cache_size=cache_size,
            observer=observer,
            clock=clock,
        )
        self.scope = scope
        self.resource = resource

    async def token(
        self,
        *,
        scope: str | Sequence[str] | None = None,
        resource: str | Sequence[str] | None = None,
    ) -> str:
        """A usable access token for `scope` / `resource` (defaults: the constructor's)."""
        return (await self.issued(scope=scope, resource=resource)).access_token

    async def issued(
        self,
        *,
        scope: str | Sequence[str] | None = None,
        resource: str | Sequence[str] | None = None,
    ) -> IssuedToken:
        """Like `token()`, with the expiry and granted scope."""
        scope = self.scope if scope is None else scope
        resource = self.resource if resource is None else resource
        resources = (resource,) if isinstance(resource, str) else tuple(resource or ())
        scopes = _scope_key(scope)

        async def fetch() -> IssuedToken:
            form: dict[str, str | Sequence[str]] = {"grant_type": GRANT_CLIENT_CREDENTIALS}
            if scopes:
                form["scope"] = " ".join(scopes)
            if resources:
                form["resource"] = list(resources)
            try:
                return await self.endpoint.request(form)
            except _OAuthAnswer as exc:
                raise TokenRequestRefused(exc.error, reason=f"token_{exc.error}") from None

        return await self._cached((scopes, resources), fetch)

    def auth(
        self,
        *,
        scope: str | Sequence[str] | None = None,
        resource: str | Sequence[str] | None = None,
    ) -> httpx.Auth:
        """An httpx `auth=` that sends this service's own token (fresh one after a 401)."""

        async def get() -> str:
            return await self.token(scope=scope, resource=resource)

        return BearerAuth(get, self.invalidate)


class TokenExchanger(_TokenSource):
    """RFC 8693 token exchange: a token for a downstream resource from the one this service got.

    The received token goes only to the IdP (as `subject_token`); the downstream service sees
    a new token whose `client_id` is this service and whose `sub` is this service's PPID for
    the user. Results are cached per (received token, audience, resource, scope) until shortly
    before either token expires. Constructor arguments as `ClientCredentials` (without `scope`
    and `resource`, which are per exchange), `cache_size` 10000 by default.
    """

    async def exchange(
        self,
        access: AccessToken,
        *,
        resource: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        scope: str | Sequence[str] | None = None,
    ) -> str:
        """A token for `resource` / `audience` acting for the user of `access`.

        Raises InvalidToken when the IdP no longer accepts the received token (revoked),
        InsufficientScope when it does not cover `scope`, TokenRequestRefused when this
        service may not exchange, TokenServiceUnavailable when the IdP cannot answer.
        """
        return (
            await self.issued(access, resource=resource, audience=audience, scope=scope)
        ).access_token

    async def issued(
        self,
        access: AccessToken,
        *,
        resource: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        scope: str | Sequence[str] | None = None,
    ) -> IssuedToken:
        """Like `exchange()`, with the expiry and granted scope."""
        subject_token = access.token
        if not subject_token:
            raise ConfigurationError("the AccessToken carries no raw token to exchange")
        resources = (resource,) if isinstance(resource, str) else tuple(resource or ())
        audiences = (audience,) if isinstance(audience, str) else tuple(audience or ())
        if not resources and not audiences:
            raise ConfigurationError("token exchange needs a resource or an audience")
        scopes = _scope_key(scope)
        # Keyed by a hash: the cache never holds the received token itself.
        digest = hashlib.sha256(subject_token.encode("utf-8")).digest()
        subject_exp = access.expires_at

        async def fetch() -> IssuedToken:
            form: dict[str, str | Sequence[str]] = {
                "grant_type": GRANT_TOKEN_EXCHANGE,
                "subject_token": subject_token,
                "subject_token_type": TOKEN_TYPE_ACCESS,
                "requested_token_type": TOKEN_TYPE_ACCESS,
            }
            if resources:
                form["resource"] = list(resources)
            if audiences:
                form["audience"] = list(audiences)
            if scopes:
                form["scope"] = " ".join(scopes)
            try:
                issued = await self.endpoint.request(form)
            except _OAuthAnswer as exc:
                raise _exchange_error(exc, scopes) from None
            if subject_exp is not None and subject_exp < issued.usable_until:
                # Nothing derived from the received token should outlive it in our cache.
                issued = IssuedToken(issued.access_token, subject_exp, issued.scope)
            emit(self._observer, "token_exchanged", client_id=self.endpoint.client_id)
            return issued

        return await self._cached((digest, resources, audiences, scopes), fetch)

    def auth(
        self,
        access: AccessToken,
        *,
        resource: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        scope: str | Sequence[str] | None = None,
    ) -> httpx.Auth:
        """An httpx `auth=` that sends the exchanged token for `access` (re-exchanged on 401)."""

        async def get() -> str:
            return await self.exchange(access, resource=resource, audience=audience, scope=scope)

        return BearerAuth(get, self.invalidate)


def _exchange_error(exc: _OAuthAnswer, scopes: tuple[str, ...]) -> RSGuardError:
    if exc.error in ("invalid_grant", "invalid_request"):
        # The IdP no longer accepts the token we received (revoked, expired, deleted client):
        # the caller must get a new one, exactly as if we had rejected it ourselves. RFC 8693
        # §2.2.2 names this invalid_request; many servers say invalid_grant. One reason code.
        return InvalidToken(reason="exchange_invalid_grant")
    if exc.error == "invalid_scope":
        return InsufficientScope(scopes, reason="exchange_invalid_scope")
    return TokenRequestRefused(exc.error, reason=f"exchange_{exc.error}")
