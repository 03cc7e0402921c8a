"""JWT access tokens (RFC 9068), validated strictly (RFC 8725) and remembered once verified."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._jws import JWSVerifier, audience_matches, is_numeric_date
from ._token_cache import CachingValidator, Entry, VerifiedCache
from .access_token import DEFAULT_MAX_TOKEN_BYTES, AccessToken
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
_ABSENT: Any = object()  # a claim that is not there (None is JSON null: present, wrong type)
_INT_DATES = 2**53  # ints below this convert to float exactly: no overflow, no rounding


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
        self._required = frozenset(self.required_claims)
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
        # The pipeline's two steps inline (JWSVerifier.verified_key): with fresh keys in hand
        # the key comes without a coroutine; anything else (refresh, unknown kid) awaits.
        key = self.keys.ready_key(kid, alg)
        if key is None:
            key = await self.keys.get_key(kid, alg)
        if not key.verify(alg, signing_input, signature):
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
        """(not_before, expires) of claims that pass, InvalidToken otherwise.

        The refusals come in a fixed order (presence, token kind, issuer, audience, types,
        times); set operations and inline type tests keep it to a few dict look-ups.
        """
        names = claims.keys()
        if not profiled and not names >= self._required:
            raise InvalidToken(reason="missing_claim")
        if "events" in names:
            raise InvalidToken(reason="security_event_token")
        if not _ID_TOKEN_CLAIMS.isdisjoint(names):
            raise InvalidToken(reason="id_token")
        get = claims.get
        if get("iss") != self.issuer:
            raise InvalidToken(reason="bad_issuer")
        if self._audience_by_aud:
            aud = get("aud")
            # A string `aud` (the common case) is one set look-up; arrays take the full rule.
            if not (
                aud in self.audiences if type(aud) is str else audience_matches(aud, self.audiences)
            ):
                raise InvalidToken(reason="bad_audience")
        sub, client_id, jti = get("sub", _ABSENT), get("client_id", _ABSENT), get("jti", _ABSENT)
        if (
            (sub is not _ABSENT and (type(sub) is not str or not sub))
            or (client_id is not _ABSENT and (type(client_id) is not str or not client_id))
            or (jti is not _ABSENT and (type(jti) is not str or not jti))
        ):
            raise InvalidToken(reason="bad_claim_type")
        # Present-but-null is a wrong type too, not an absent claim: only _ABSENT is absent.
        exp: Any = get("exp")
        iat, nbf = get("iat", _ABSENT), get("nbf", _ABSENT)
        if (
            _not_a_date(exp)
            or (iat is not _ABSENT and _not_a_date(iat))
            or (nbf is not _ABSENT and _not_a_date(nbf))
        ):
            raise InvalidToken(reason="bad_claim_type")
        # `scope` is a space-delimited string when present (what `scopes_of` refuses); the
        # scopes themselves are read once, by `AccessToken`.
        scope = get("scope")
        if not profiled and scope is not None and type(scope) is not str:
            raise InvalidToken(reason="bad_claim_type")
        leeway = self.leeway
        if now >= exp + leeway:
            raise InvalidToken("The access token expired", reason="expired")
        if nbf is not _ABSENT and now < nbf - leeway:
            raise InvalidToken(reason="not_yet_valid")
        if iat is not _ABSENT and iat > now + leeway:
            raise InvalidToken(reason="issued_in_future")
        return (float(nbf) if nbf is not _ABSENT else -math.inf), float(exp)


def _not_a_date(value: Any) -> bool:
    """Whether a claim value is no NumericDate. An int well inside float range (the usual
    date) is answered here; anything else (floats, bools, huge ints) by `is_numeric_date`."""
    if type(value) is int and -_INT_DATES < value < _INT_DATES:
        return False
    return not is_numeric_date(value)
