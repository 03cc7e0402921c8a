"""JWT access tokens (RFC 9068), validated strictly (RFC 8725) and remembered once verified."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._jws import JWSVerifier, audience_matches, is_numeric_date, verify_signature
from ._token_cache import CachingValidator, Entry, VerifiedCache
from .access_token import DEFAULT_MAX_TOKEN_BYTES, AccessToken, scopes_of
from .errors import ConfigurationError, InvalidToken
from .keys import JWKSCache
from .observe import Observer, emit_hot
from .profiles import ID_TOKEN_CLAIMS, PROFILES, ProfileRules, TokenProfile, resolve_profile
from .server import AuthorizationServer, refuse_beside_server

__all__ = ["ACCESS_TOKEN_TYPES", "DEFAULT_ALGORITHMS", "JWTValidator"]

ACCESS_TOKEN_TYPES = frozenset({"at+jwt"})
# Ed25519: the fully-specified name RFC 9864 gives EdDSA over Ed25519 (same OKP key, same
# signature); IdPs such as oidc-provider now sign with it.
DEFAULT_ALGORITHMS = ("ES256", "ES384", "RS256", "PS256", "EdDSA", "Ed25519")
DEFAULT_LEEWAY = 30.0
_REQUIRED_RFC9068 = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
_ID_TOKEN_CLAIMS = ID_TOKEN_CLAIMS


class JWTValidator(CachingValidator):
    """Validates RFC 9068 JWT access tokens for one resource, strictly (RFC 8725 practices).

    The keys come from `server` (an `AuthorizationServer`) or from `issuer` + `keys`.
    A verified token is remembered by its exact string; a reuse re-checks only the time
    claims and whether its key is still published, without awaiting anything.
    """

    def __init__(
        self,
        *,
        audience: str | Sequence[str],
        server: AuthorizationServer | None = None,
        issuer: str | None = None,
        keys: JWKSCache | None = None,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway: float = DEFAULT_LEEWAY,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        cache_size: int = 10_000,
        accepted_types: Iterable[str] | None = None,
        required_claims: Sequence[str] | None = None,
        profile: str | TokenProfile | Mapping[str, Any] = "rfc9068",
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if server is not None:
            refuse_beside_server("JWTValidator", server, issuer, keys=keys)
            issuer, keys = server.issuer, server.keys
        if issuer is None or keys is None:
            raise ConfigurationError("JWTValidator needs server=, or issuer= and keys=")
        self.issuer = issuer
        self.audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not self.audiences:
            raise ConfigurationError("an audience (this resource's identifier) is required")
        self.keys = keys
        self.profile = resolve_profile(profile)
        # A relaxed profile is compiled once here; the strict default keeps its own path.
        self._rules: ProfileRules | None = None
        if self.profile is not PROFILES["rfc9068"]:
            if accepted_types is not None or required_claims is not None:
                raise ConfigurationError(
                    "profile= cannot be combined with accepted_types= or required_claims=: "
                    "set them on the TokenProfile"
                )
            self._rules = ProfileRules(self.profile, self.audiences)
        types: Iterable[str | None] = (
            self._rules.types
            if self._rules is not None
            else accepted_types
            if accepted_types is not None
            else ACCESS_TOKEN_TYPES
        )
        self._jws = JWSVerifier(
            algorithms=algorithms,
            types=types,
            keys=keys,
            max_bytes=max_token_bytes,
        )
        self.algorithms = self._jws.algorithms
        self.accepted_types = self._jws.types
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes
        self.required_claims = tuple(
            required_claims if required_claims is not None else _REQUIRED_RFC9068
        )
        # Cognito's access tokens carry no `aud`: the profile checks the client claim instead.
        self._audience_by_aud = self.profile.audience == "aud"
        self._cache = VerifiedCache(cache_size)
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
        access = self._cached_or_miss(token)
        if access is not None:
            return access
        now = self._clock()
        _header, claims, signing_input, signature, alg, kid = self._jws.parse(token)
        # Claims first: a token for another issuer or audience, or an expired one, is refused
        # without a key look-up, so it can neither trigger a JWKS refetch nor cost a verify.
        # Nothing is trusted from them until the signature below holds.
        rules = self._rules
        if rules is None:
            not_before, expires = self._check_claims(claims, now)
        else:
            client, scopes = rules.check(claims)
            not_before, expires = self._check_claims(claims, now, profiled=True)
        # The pipeline's two steps inline (JWSVerifier.verified_key): one coroutine fewer.
        key = await self.keys.get_key(kid, alg)
        if not verify_signature(key.key, alg, signing_input, signature):
            raise InvalidToken(reason="bad_signature")
        if rules is None:
            access = AccessToken.verified(claims, token)
        else:
            access = rules.access(claims, token, client, scopes)
        self._cache.put(token, Entry(access, not_before, expires, key, self.keys.generation))
        return access

    def _check_claims(
        self, claims: Mapping[str, Any], now: float, *, profiled: bool = False
    ) -> tuple[float, float]:
        if not profiled:
            for name in self.required_claims:
                if name not in claims:
                    raise InvalidToken(reason="missing_claim")
        if "events" in claims:
            raise InvalidToken(reason="security_event_token")
        if _ID_TOKEN_CLAIMS & claims.keys():
            raise InvalidToken(reason="id_token")
        if claims.get("iss") != self.issuer:
            raise InvalidToken(reason="bad_issuer")
        if self._audience_by_aud and not audience_matches(claims.get("aud"), self.audiences):
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
        if not profiled:
            scopes_of(claims.get("scope"))
        if now >= exp + self.leeway:
            raise InvalidToken("The access token expired", reason="expired")
        if nbf is not None and now < nbf - self.leeway:
            raise InvalidToken(reason="not_yet_valid")
        if iat is not None and iat > now + self.leeway:
            raise InvalidToken(reason="issued_in_future")
        return (float(nbf) if nbf is not None else -math.inf), float(exp)
