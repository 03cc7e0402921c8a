"""Opaque access tokens through RFC 7662 token introspection, with a bounded cache."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import httpx

from ._async import SingleFlight
from ._http import DEFAULT_TIMEOUT, fetch_json
from ._jws import is_numeric_date
from ._token_cache import CachingValidator, Entry, VerifiedCache
from .access_token import DEFAULT_MAX_TOKEN_BYTES, AccessToken
from .discovery import ServerEndpoint, ServerMetadata
from .errors import ConfigurationError, FetchError, IntrospectionUnavailable, InvalidToken
from .observe import Observer, emit, emit_hot
from .server import AuthorizationServer, refuse_beside_server

if TYPE_CHECKING:
    from .jwt import JWTValidator

__all__ = ["Introspection", "IntrospectionValidator"]


@dataclass(frozen=True, slots=True)
class Introspection:
    """How ResourceGuard introspects opaque tokens: this resource's client credentials at the
    IdP, and (optionally) the endpoint, when discovery does not name it."""

    client_id: str
    client_secret: str
    endpoint: str | None = None
    cache_ttl: float = 60.0

    def __repr__(self) -> str:
        return f"Introspection(client_id={self.client_id!r})"  # never the secret


class IntrospectionValidator(CachingValidator):
    """Validates opaque tokens through the IdP's RFC 7662 introspection endpoint, with a cache.

    Results are cached for at most `cache_ttl` seconds and never past the token's `exp`;
    inactive answers are not cached. The IdP being down or answering garbage is a 503.
    """

    def __init__(
        self,
        *,
        audience: str | Sequence[str],
        client_id: str,
        client_secret: str,
        server: AuthorizationServer | None = None,
        issuer: str | None = None,
        metadata: ServerMetadata | None = None,
        introspection_endpoint: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        cache_ttl: float = 60.0,
        cache_size: int = 10_000,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        timeout: float | None = None,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if server is not None:
            refuse_beside_server("IntrospectionValidator", server, issuer, metadata=metadata)
            issuer, metadata = server.issuer, server.metadata
        if issuer is None:
            raise ConfigurationError("IntrospectionValidator needs server= or issuer=")
        if introspection_endpoint is None and metadata is None:
            raise ConfigurationError("introspection needs an endpoint or the issuer's metadata")
        self.issuer = issuer
        self.audiences = frozenset([audience] if isinstance(audience, str) else audience)
        # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
        self._auth = httpx.BasicAuth(quote_plus(client_id), quote_plus(client_secret))
        self.target = ServerEndpoint(
            "introspection_endpoint",
            url=introspection_endpoint,
            metadata=metadata,
            http_client=http_client,
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        )
        self.cache_ttl = cache_ttl
        self.max_token_bytes = max_token_bytes
        self._timeout = timeout
        self._cache = VerifiedCache(cache_size)
        self._flight: SingleFlight[str, AccessToken] = SingleFlight()
        self._observer = observer
        self._clock = clock

    async def aclose(self) -> None:
        """Close the HTTP client made for introspection, if one was (no client, no metadata)."""
        await self.target.aclose()

    def cached(self, token: str) -> AccessToken | None:
        """The remembered active result for this exact token, if still fresh."""
        hit = self._cache.get(token)
        if hit is None:
            return None
        if self._clock() < hit.expires:
            if self._observer is not None:
                emit_hot(self._observer, "token_cache_hit")
            return hit.access
        self._cache.discard(token)
        return None

    async def validate(self, token: str) -> AccessToken:
        """The active token's view, or InvalidToken / IntrospectionUnavailable."""
        access = self._cached_or_miss(token)
        if access is not None:
            return access
        # One introspection call per token, however many requests carry it at the same time.
        return await self._flight.run(token, lambda: self._introspect(token))

    async def _introspect(self, token: str) -> AccessToken:
        now = self._clock()
        if len(token) > self.max_token_bytes:
            raise InvalidToken(reason="token_too_large")
        try:
            answer = await fetch_json(
                self.target.http_client,
                "POST",
                await self.target.url(),
                max_bytes=64 * 1024,
                timeout=self._timeout,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
                headers={"Accept": "application/json"},
            )
        except FetchError as exc:
            emit(self._observer, "introspection_failed", reason=str(exc))
            raise IntrospectionUnavailable(reason="introspection_" + str(exc)) from None
        active = answer.get("active")
        if active is not True:
            if active is not False:
                emit(self._observer, "introspection_failed", reason="no_active_member")
                raise IntrospectionUnavailable(reason="introspection_garbage")
            raise InvalidToken(reason="inactive")
        claims = self._check(answer, now)
        access = AccessToken(claims, raw=token)
        exp = claims.get("exp")
        until = now + self.cache_ttl
        if is_numeric_date(exp):
            until = min(until, float(exp))
        self._cache.put(token, Entry(access, -math.inf, until))
        return access

    def _check(self, answer: dict[str, Any], now: float) -> dict[str, Any]:
        if "iss" in answer and answer["iss"] != self.issuer:
            raise InvalidToken(reason="bad_issuer")
        aud = answer.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.audiences.isdisjoint(a for a in auds if isinstance(a, str)):
            raise InvalidToken(reason="bad_audience")
        exp = answer.get("exp")
        if exp is not None and (not is_numeric_date(exp) or now >= exp):
            raise InvalidToken("The access token expired", reason="expired")
        nbf = answer.get("nbf")
        if nbf is not None and (not is_numeric_date(nbf) or now < nbf):
            raise InvalidToken(reason="not_yet_valid")
        if not isinstance(answer.get("sub", ""), str) or not isinstance(
            answer.get("scope", ""), str
        ):
            raise InvalidToken(reason="bad_claim_type")
        token_type = answer.get("token_type")
        # "DPoP": a DPoP-bound token (RFC 9449 §6.2); its `cnf` binds it.
        if token_type is not None and str(token_type).lower() not in (
            "bearer",
            "access_token",
            "dpop",
        ):
            raise InvalidToken(reason="bad_token_type")
        if str(token_type).lower() == "dpop" and not isinstance(answer.get("cnf"), dict):
            raise InvalidToken(reason="bad_token_type")  # DPoP without a key to check
        return {k: v for k, v in answer.items() if k != "active"}


class CompositeValidator:
    """JWTs to the JWT validator, everything else (opaque tokens) to introspection."""

    def __init__(self, jwt: JWTValidator, opaque: IntrospectionValidator | None) -> None:
        self.jwt = jwt
        self.opaque = opaque

    def cached(self, token: str) -> AccessToken | None:
        """A cached result from whichever validator handles this token's format."""
        if self.opaque is not None and token.count(".") != 2:
            return self.opaque.cached(token)
        return self.jwt.cached(token)

    async def validate(self, token: str) -> AccessToken:
        """Route a token to the validator for its format."""
        if self.opaque is not None and token.count(".") != 2:
            return await self.opaque.validate(token)
        return await self.jwt.validate(token)
