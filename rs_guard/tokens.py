"""Access tokens: the validated view, the JWT validator (RFC 9068) and introspection (RFC 7662)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import quote_plus

import httpx
from starlette.authentication import AuthCredentials, BaseUser

from ._async import SingleFlight
from ._http import DEFAULT_TIMEOUT, FetchError, fetch_json
from ._jws import (
    KEY_HEADERS,
    MalformedJWS,
    audience_matches,
    header_typ,
    is_numeric_date,
    refused_algorithms,
    split_compact,
    verify_signature,
)
from ._scopes import split_scope
from .discovery import ServerEndpoint, ServerMetadata
from .errors import ConfigurationError, IntrospectionUnavailable, InvalidToken
from .keys import JWKSCache, VerificationKey
from .observe import Observer, emit, emit_hot

ACCESS_TOKEN_TYPES = frozenset({"at+jwt"})
DEFAULT_ALGORITHMS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")
DEFAULT_MAX_TOKEN_BYTES = 8192
_REQUIRED_RFC9068 = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
# Claims that only an ID token carries; their presence means type confusion (RFC 9068 §4).
_ID_TOKEN_CLAIMS = frozenset({"nonce", "at_hash", "c_hash", "s_hash"})


def scopes_of(value: Any) -> tuple[str, ...]:
    """The scopes of a `scope` claim (RFC 8693 §4.2: space-delimited string)."""
    if value is None:
        return ()
    if not isinstance(value, str):
        raise InvalidToken(reason="bad_claim_type")
    return split_scope(value)


class AccessToken(AuthCredentials):
    """The validated access token: an immutable view of its claims.

    It is Starlette's `AuthCredentials`, so `request.auth.scopes` and `@requires(...)` work
    unchanged. `scopes` includes scopes implied by a configured hierarchy; `granted_scopes`
    is exactly what the token says.
    """

    __slots__ = (
        "_derived",
        "_raw",
        "_user",
        "claims",
        "granted_scopes",
        "local_subject",
        "user_id",
    )

    def __init__(
        self,
        claims: Mapping[str, Any],
        *,
        raw: str = "",
        scopes: Iterable[str] | None = None,
        local_subject: str | None = None,
        user_id: Any = None,
    ) -> None:
        granted = scopes_of(claims.get("scope"))
        super().__init__(list(scopes) if scopes is not None else list(granted))
        self.claims: Mapping[str, Any] = MappingProxyType(dict(claims))
        self.granted_scopes: tuple[str, ...] = granted
        self.local_subject = local_subject
        self.user_id = user_id
        self._raw = raw
        # What a guard derived from this validated token (implied scopes, own PPID), kept on
        # the cached object so that a reused token pays for the derivation once.
        self._derived: tuple[object, AccessToken] | None = None
        self._user: TokenUser | None = None

    def __repr__(self) -> str:
        # Never the token itself: reprs end up in logs and tracebacks.
        return (
            f"AccessToken(sub={self.subject!r}, client_id={self.client_id!r}, "
            f"scopes={self.scopes!r})"
        )

    @property
    def subject(self) -> str:
        """`sub` as received: for pairwise clients, the caller's PPID."""
        return str(self.claims.get("sub", ""))

    @property
    def client_id(self) -> str | None:
        """The OAuth client the token was issued to."""
        value = self.claims.get("client_id")
        return value if isinstance(value, str) else None

    @property
    def issuer(self) -> str:
        """`iss` of the token."""
        return str(self.claims.get("iss", ""))

    @property
    def audience(self) -> tuple[str, ...]:
        """`aud` as a tuple."""
        aud = self.claims.get("aud")
        if isinstance(aud, str):
            return (aud,)
        return tuple(a for a in aud if isinstance(a, str)) if isinstance(aud, list) else ()

    @property
    def acr(self) -> str | None:
        """Authentication context class reference, when it is a string."""
        value = self.claims.get("acr")
        return value if isinstance(value, str) else None

    @property
    def amr(self) -> tuple[str, ...]:
        """Authentication methods references."""
        value = self.claims.get("amr")
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

    @property
    def auth_time(self) -> int | None:
        """When the user authenticated (seconds since the epoch), when it is a number."""
        value = self.claims.get("auth_time")
        return int(value) if is_numeric_date(value) else None

    @property
    def expires_at(self) -> float | None:
        """`exp` of the token."""
        value = self.claims.get("exp")
        return float(value) if is_numeric_date(value) else None

    @property
    def jti(self) -> str | None:
        """The token's unique identifier."""
        value = self.claims.get("jti")
        return value if isinstance(value, str) else None

    @property
    def token(self) -> str:
        """The raw token; for RFC 8693 exchange only. Never forward it to another service."""
        return self._raw

    def replace(self, **changes: Any) -> AccessToken:
        """A copy with `scopes`, `local_subject` or `user_id` changed (claims are shared)."""
        # Built field by field: re-reading the claims costs more than the whole cache hit.
        new = AccessToken.__new__(AccessToken)
        new.scopes = list(changes.get("scopes", self.scopes))
        new.claims = self.claims
        new.granted_scopes = self.granted_scopes
        new.local_subject = changes.get("local_subject", self.local_subject)
        new.user_id = changes.get("user_id", self.user_id)
        new._raw = self._raw
        new._derived = None
        new._user = None
        return new

    @property
    def user(self) -> TokenUser:
        """The `request.user` for this token (made once; the token is immutable)."""
        user = self._user
        if user is None:
            user = self._user = TokenUser(self)
        return user


class TokenUser(BaseUser):
    """`request.user` for a request carrying a valid token."""

    def __init__(self, token: AccessToken) -> None:
        self.token = token

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.token.local_subject or self.token.subject

    @property
    def identity(self) -> str:
        return self.token.local_subject or self.token.subject

    def __repr__(self) -> str:
        return f"TokenUser({self.identity!r})"


class TokenValidator(Protocol):
    """Anything that turns a token string into an AccessToken or raises an RSGuardError."""

    async def validate(self, token: str) -> AccessToken: ...


class _Entry:
    """One remembered validation result."""

    __slots__ = ("access", "expires", "generation", "key", "not_before")

    def __init__(
        self,
        access: AccessToken,
        not_before: float,
        expires: float,
        key: VerificationKey | None = None,
        generation: int = 0,
    ) -> None:
        self.access = access
        self.not_before = not_before
        self.expires = expires
        self.key = key
        self.generation = generation


class _VerifiedCache:
    """Exact token string -> validation result, LRU-bounded; time claims re-checked on use."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._data: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, token: str) -> _Entry | None:
        entry = self._data.get(token)
        if entry is not None:
            self._data.move_to_end(token)
        return entry

    def put(self, token: str, entry: _Entry) -> None:
        if self._maxsize <= 0:
            return
        self._data[token] = entry
        self._data.move_to_end(token)
        while len(self._data) > self._maxsize:
            self._data.popitem(last=False)

    def discard(self, token: str) -> None:
        self._data.pop(token, None)

    def __len__(self) -> int:
        return len(self._data)


class JWTValidator:
    """Validates RFC 9068 JWT access tokens for one resource, strictly (RFC 8725 practices)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Sequence[str],
        keys: JWKSCache,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        accepted_types: Iterable[str] = ACCESS_TOKEN_TYPES,
        required_claims: Sequence[str] = _REQUIRED_RFC9068,
        cache_size: int = 10_000,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        bad = refused_algorithms(algorithms)
        if bad or not algorithms:
            raise ConfigurationError(
                f"unsupported or symmetric algorithms in allow-list: {bad or 'empty'}"
            )
        self.issuer = issuer
        self.audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not self.audiences:
            raise ConfigurationError("an audience (this resource's identifier) is required")
        self.keys = keys
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes
        self.accepted_types = frozenset(
            t.lower().removeprefix("application/") for t in accepted_types
        )
        self.required_claims = tuple(required_claims)
        self._cache = _VerifiedCache(cache_size)
        self._observer = observer
        self._clock = clock

    def cached(self, token: str) -> AccessToken | None:
        """The remembered result for this exact token, time claims re-checked; None if unknown."""
        hit = self._cache.get(token)
        if hit is None:
            return None
        now = self._clock()
        if now >= hit.expires + self.leeway:
            self._cache.discard(token)
            raise InvalidToken("The access token expired", reason="expired")
        if now < hit.not_before - self.leeway:
            raise InvalidToken(reason="not_yet_valid")
        if self.keys.due():
            # Take the full path once so the expired key set gets refreshed: otherwise a token
            # reused by itself would keep a retired key vouching for it until its own `exp`.
            return None
        if hit.generation != self.keys.generation:
            # The key set changed since: a retired key must stop vouching for its tokens.
            if not self.keys.holds(hit.key):
                self._cache.discard(token)
                raise InvalidToken(reason="key_retired")
            hit.generation = self.keys.generation
        if self._observer is not None:
            emit_hot(self._observer, "token_cache_hit")
        return hit.access

    async def validate(self, token: str) -> AccessToken:
        """The validated token, or InvalidToken (401) / KeysUnavailable (503)."""
        access = self.cached(token)
        if access is not None:
            return access
        if self._observer is not None:
            emit_hot(self._observer, "token_cache_miss")
        now = self._clock()
        if len(token) > self.max_token_bytes:
            raise InvalidToken(reason="token_too_large")
        try:
            header, claims, signing_input, signature = split_compact(token)
        except MalformedJWS as exc:
            raise InvalidToken(
                reason=str(exc) if str(exc) == "duplicate_member" else "malformed"
            ) from None
        alg = self._check_header(header)
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
            raise InvalidToken(reason="bad_kid")
        # Claims first: a token for another issuer or audience, or an expired one, is refused
        # without a key look-up, so it can neither trigger a JWKS refetch nor cost a verify.
        # Nothing is trusted from them until the signature below holds.
        not_before, expires = self._check_claims(claims, now)
        key = await self.keys.get_key(kid, alg)
        if not verify_signature(key.key, alg, signing_input, signature):
            raise InvalidToken(reason="bad_signature")
        access = AccessToken(claims, raw=token)
        self._cache.put(token, _Entry(access, not_before, expires, key, self.keys.generation))
        return access

    def _check_header(self, header: Mapping[str, Any]) -> str:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken(reason="bad_alg")
        if header_typ(header) not in self.accepted_types:
            raise InvalidToken(reason="bad_typ")
        if "crit" in header:
            # No extension is understood here: a critical one must be refused (RFC 7515 §4.1.11).
            raise InvalidToken(reason="crit")
        if KEY_HEADERS & header.keys():
            raise InvalidToken(reason="embedded_key")
        if "enc" in header or "zip" in header:
            raise InvalidToken(reason="malformed")
        return alg

    def _check_claims(self, claims: Mapping[str, Any], now: float) -> tuple[float, float]:
        for name in self.required_claims:
            if name not in claims:
                raise InvalidToken(reason="missing_claim")
        if "events" in claims:
            raise InvalidToken(reason="security_event_token")
        if _ID_TOKEN_CLAIMS & claims.keys():
            raise InvalidToken(reason="id_token")
        if claims.get("iss") != self.issuer:
            raise InvalidToken(reason="bad_issuer")
        if not audience_matches(claims.get("aud"), self.audiences):
            raise InvalidToken(reason="bad_audience")
        for name in ("sub", "client_id", "jti"):
            value = claims.get(name)
            if name in claims and (not isinstance(value, str) or not value):
                raise InvalidToken(reason="bad_claim_type")
        exp = claims.get("exp")
        iat = claims.get("iat")
        nbf = claims.get("nbf")
        if not is_numeric_date(exp):
            raise InvalidToken(reason="bad_claim_type")
        # Present-but-null is a wrong type too, not an absent claim.
        if "iat" in claims and not is_numeric_date(iat):
            raise InvalidToken(reason="bad_claim_type")
        if "nbf" in claims and not is_numeric_date(nbf):
            raise InvalidToken(reason="bad_claim_type")
        scopes_of(claims.get("scope"))
        if now >= exp + self.leeway:
            raise InvalidToken("The access token expired", reason="expired")
        if nbf is not None and now < nbf - self.leeway:
            raise InvalidToken(reason="not_yet_valid")
        if iat is not None and iat > now + self.leeway:
            raise InvalidToken(reason="issued_in_future")
        return (float(nbf) if nbf is not None else -math.inf), float(exp)


class IntrospectionValidator:
    """Validates opaque tokens through the IdP's RFC 7662 introspection endpoint, with a cache.

    Results are cached for at most `cache_ttl` seconds and never past the token's `exp`;
    inactive answers are not cached. The IdP being down or answering garbage is a 503.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Sequence[str],
        client_id: str,
        client_secret: str,
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
        self._cache = _VerifiedCache(cache_size)
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
        access = self.cached(token)
        if access is not None:
            return access
        if self._observer is not None:
            emit_hot(self._observer, "token_cache_miss")
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
        self._cache.put(token, _Entry(access, -math.inf, until))
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
        if token_type is not None and str(token_type).lower() not in ("bearer", "access_token"):
            raise InvalidToken(reason="bad_token_type")
        return {k: v for k, v in answer.items() if k != "active"}


class CompositeValidator:
    """JWTs to the JWT validator, everything else to introspection."""

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
