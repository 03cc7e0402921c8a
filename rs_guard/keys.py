"""JWKS cache: fetch, parse once, refresh on unknown kid (rate limited), serve stale on outage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from ._async import SingleFlight
from ._http import default_client, fetch_json
from ._jws import ASYMMETRIC_ALGORITHMS, PublicKey, SignatureCheck, signature_check
from .discovery import ServerMetadata
from .errors import ConfigurationError, FetchError, InvalidToken, KeysUnavailable
from .observe import Observer, emit

__all__ = ["JWKSCache", "VerificationKey"]

_MAX_JWKS_BYTES = 512 * 1024
_MAX_KEYS = 100
_MAX_KID_LENGTH = 256
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One usable public key from a JWKS, with the key object built once.

    Which algorithms it may verify (its declared `alg`, its key type, curve and size) is
    decided once here, with the verify function for each: a request looks its algorithm up
    instead of re-testing the key.
    """

    kid: str | None
    kty: str
    alg: str | None
    key: PublicKey
    _checks: Mapping[str, SignatureCheck] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        checks: dict[str, SignatureCheck] = {}
        for alg in ASYMMETRIC_ALGORITHMS:
            if self._declared_for(alg):
                check = signature_check(self.key, alg)
                if check is not None:
                    checks[alg] = check
        object.__setattr__(self, "_checks", checks)

    def _declared_for(self, alg: str) -> bool:
        # EdDSA and Ed25519 name the same signature over an Ed25519 key (RFC 9864).
        return self.alg is None or self.alg == alg or {self.alg, alg} == {"EdDSA", "Ed25519"}

    def fits(self, alg: str) -> bool:
        """Whether a token signed with `alg` may be verified with this key."""
        return alg in self._checks

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """Whether `signature` over `signing_input` holds for `alg`; False when `alg` does
        not fit this key (so a caller cannot skip the alg/key confusion guard)."""
        check = self._checks.get(alg)
        return check is not None and check(signing_input, signature)


def parse_jwk(jwk: Any) -> VerificationKey | None:
    """Turn one JWK into a VerificationKey, or None when it is unusable for verifying JWS."""
    if not isinstance(jwk, dict):
        return None
    kty, kid, alg, use = jwk.get("kty"), jwk.get("kid"), jwk.get("alg"), jwk.get("use")
    if kid is not None and (not isinstance(kid, str) or len(kid) > _MAX_KID_LENGTH):
        return None
    if alg is not None and (not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS):
        return None
    if use is not None and use != "sig":
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    # A published private or symmetric key is a misconfiguration; never use it.
    if _PRIVATE_MEMBERS & jwk.keys():
        return None
    try:
        key: Any
        if kty == "EC":
            key = ECAlgorithm.from_jwk(json.dumps(jwk))
        elif kty == "RSA":
            key = RSAAlgorithm.from_jwk(json.dumps(jwk))
        elif kty == "OKP":
            key = OKPAlgorithm.from_jwk(json.dumps(jwk))
        else:
            return None
    except (InvalidKeyError, ValueError, TypeError, KeyError):
        return None
    vk = VerificationKey(kid=kid, kty=kty, alg=alg, key=key)
    if alg is not None and not vk.fits(alg):
        return None
    if not any(vk.fits(a) for a in ASYMMETRIC_ALGORITHMS):
        return None
    return vk


def parse_jwks(document: Any) -> list[VerificationKey]:
    """All usable keys of a JWK Set; unusable members are skipped, the rest keep working."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return []
    keys = []
    for jwk in document["keys"][:_MAX_KEYS]:
        vk = parse_jwk(jwk)
        if vk is not None:
            keys.append(vk)
    return keys


class JWKSCache:
    """The verification keys of one issuer, kept fresh without letting tokens hammer the IdP.

    - Keys are fetched on first use and re-fetched after `max_age` seconds.
    - A token with an unknown `kid` triggers at most one fetch per `cooldown` seconds, shared by
      every concurrent request (single flight), so random kids cannot flood the IdP. Only such
      refetches start the cooldown; a request arriving while any fetch is under way waits for
      it. An unknown kid while the next refetch is not yet allowed is held up to `hold`
      seconds for it, else answered 503 (`unknown_kid_pending`) with `Retry-After`: never
      a 401 for a key the IdP may just have started using.
    - A failed or garbage fetch never replaces good keys; they stay in use for `stale_for`
      seconds past `max_age`. With no usable keys at all, `KeysUnavailable` (503) is raised
      and the next request tries again: failures are not cached.
    """

    def __init__(
        self,
        jwks_uri: str | None = None,
        *,
        metadata: ServerMetadata | None = None,
        http_client: httpx.AsyncClient | None = None,
        max_age: float = 300.0,
        cooldown: float = 30.0,
        stale_for: float = 3600.0,
        hold: float = 1.0,
        timeout: float | None = None,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if jwks_uri is None and metadata is None:
            raise ConfigurationError("JWKSCache needs a jwks_uri or the issuer's metadata")
        self._jwks_uri = jwks_uri
        self._metadata = metadata
        self._client = http_client
        self._timeout = timeout
        self.max_age = max_age
        self.cooldown = cooldown
        self.stale_for = stale_for
        self.hold = hold
        """Longest wait for the next allowed unknown-kid refetch before answering 503."""
        self._observer = observer
        self._clock = clock
        self._by_kid: dict[str | None, list[VerificationKey]] = {}
        self._keys: list[VerificationKey] = []
        self._index: dict[str, dict[str | None, VerificationKey]] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._probed_at: float | None = None  # the last unknown-kid refetch: starts the cooldown
        self._completed = 0  # fetches ended (either way): tells a request whether it saw one
        self._flight: SingleFlight[None, None] = SingleFlight()
        self.generation = 0
        """Increases whenever a new key set is installed."""

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The client used to fetch the JWKS."""
        if self._client is None:
            self._client = (
                self._metadata.http_client if self._metadata is not None else default_client()
            )
        return self._client

    @property
    def keys(self) -> tuple[VerificationKey, ...]:
        """The keys currently in use (possibly stale)."""
        return tuple(self._keys)

    async def get_key(self, kid: str | None, alg: str) -> VerificationKey:
        """The key that verifies a token with this `kid` and `alg`.

        Raises InvalidToken when no such key exists after the allowed refresh, KeysUnavailable
        when there are no usable keys and the IdP cannot provide them, and KeysUnavailable
        (`unknown_kid_pending`, with `retry_after`) when the kid is unknown, the keys in hand
        predate the request and the next unknown-kid refetch is not yet allowed.
        """
        now = self._clock()
        arrived = self._completed  # fetches that ended before this request came
        if self._expired(now):
            await self._refresh_expired(now)
        elif self._flight.running(None):
            # A fetch is under way: its answer is newer than what we hold, so wait for it
            # rather than refuse a token signed with a key it is bringing.
            with contextlib.suppress(KeysUnavailable):
                await self._refresh()
        key = self._find(kid, alg)
        if key is not None:
            return key
        if kid is not None and kid in self._by_kid:
            # A known kid whose key cannot verify `alg` (RFC 8725 §3.1): no refetch changes that.
            emit(self._observer, "jwks_alg_mismatch")
            raise InvalidToken(reason="alg_key_mismatch")
        return await self._find_after_probe(kid, alg, arrived)

    async def _find_after_probe(self, kid: str | None, alg: str, arrived: int) -> VerificationKey:
        """Unknown kid: maybe the IdP rotated. Refetch, at most once per cooldown.

        Only these unknown-kid refetches ("probes") start the cooldown: the first fetch and
        the max_age refreshes do not, so a key the IdP starts using right after them is
        fetched at once. Any fetch that ends after the request arrived (one it started, or one
        under way that it joined) is the answer: its keys are as new as the token.
        """
        held = False
        while self._completed == arrived:
            if not self._flight.running(None):
                now = self._clock()
                wait = 0.0 if self._probed_at is None else self._probed_at + self.cooldown - now
                if wait > 0:
                    if held or wait > self.hold:
                        emit(self._observer, "jwks_unknown_kid_pending")
                        raise KeysUnavailable(
                            reason="unknown_kid_pending", retry_after=max(1, math.ceil(wait))
                        )
                    # The next probe is close: hold the request (once) rather than send a 503.
                    held = True
                    await asyncio.sleep(wait)
                    continue
                self._probed_at = now
            # Start the probe, or join the fetch under way. On failure the good keys we hold
            # still answer the question: this kid is unknown.
            with contextlib.suppress(KeysUnavailable):
                await self._refresh()
            key = self._find(kid, alg)
            if key is not None:
                return key
        emit(self._observer, "jwks_unknown_kid")
        raise InvalidToken(reason="unknown_kid")

    def ready_key(self, kid: str | None, alg: str) -> VerificationKey | None:
        """The key `get_key` would return, when it can answer without waiting on anything.

        With fresh keys held, no fetch under way and the kid known for `alg`, `get_key` has
        nothing to await; this gives a new token that answer without the coroutine. None
        means "ask `get_key`" (which refreshes, probes, or refuses), never "no such key".
        """
        if self._expired(self._clock()) or self._flight.running(None):
            return None
        return self._find(kid, alg)

    def _expired(self, now: float) -> bool:
        """No keys yet, or held `max_age` or longer: the next look-up refreshes them first."""
        fetched = self._fetched_at
        return fetched is None or now - fetched >= self.max_age

    def _find(self, kid: str | None, alg: str) -> VerificationKey | None:
        by_kid = self._index.get(alg)
        return None if by_kid is None else by_kid.get(kid)

    @staticmethod
    def _indexed(keys: list[VerificationKey]) -> dict[str, dict[str | None, VerificationKey]]:
        """alg -> kid -> the key a token with that alg and kid is verified with.

        A kid maps to the first of its keys that fits the alg; "no kid" maps to the one key
        that fits, and to nothing when several do (only an unambiguous key may be used).
        """
        index: dict[str, dict[str | None, VerificationKey]] = {}
        for alg in ASYMMETRIC_ALGORITHMS:
            fitting = [k for k in keys if k.fits(alg)]
            by_kid: dict[str | None, VerificationKey] = {}
            for key in fitting:
                if key.kid is not None:
                    by_kid.setdefault(key.kid, key)
            if len(fitting) == 1:
                by_kid[None] = fitting[0]
            index[alg] = by_kid
        return index

    async def _refresh_expired(self, now: float) -> None:
        try:
            since = None if self._attempted_at is None else now - self._attempted_at
            if (
                self._fetched_at is None
                or since is None
                or since >= min(self.cooldown, self.max_age)
            ):
                await self._refresh()
        except KeysUnavailable as exc:
            if self._fetched_at is None or now - self._fetched_at >= self.max_age + self.stale_for:
                self._keys, self._by_kid, self._index = [], {}, {}
                raise self._unavailable(exc.reason) from None
            emit(self._observer, "jwks_stale_served")
        if not self._keys:
            raise self._unavailable("keys_unavailable")

    def _unavailable(self, reason: str) -> KeysUnavailable:
        """KeysUnavailable whose Retry-After does not send clients back before the next fetch.

        Once keys were held, a refetch waits min(cooldown, max_age) after the last attempt;
        a client retrying sooner would only meet the same 503.
        """
        exc = KeysUnavailable(reason=reason)
        if self._fetched_at is not None and self._attempted_at is not None:
            pause = min(self.cooldown, self.max_age)
            wait = min(pause, self._attempted_at + pause - self._clock())
            if wait > 0:
                exc.retry_after = max(1, math.ceil(wait))
        return exc

    async def _refresh(self) -> None:
        """Fetch the JWKS once for all concurrent callers."""
        await self._flight.run(None, self._fetch)

    async def _fetch(self) -> None:
        try:
            await self._fetch_once()
        finally:
            self._completed += 1

    async def _fetch_once(self) -> None:
        self._attempted_at = self._clock()
        uri = self._jwks_uri
        try:
            if uri is None:
                assert self._metadata is not None
                uri = await self._metadata.endpoint("jwks_uri")
            document = await fetch_json(
                self.http_client, "GET", uri, max_bytes=_MAX_JWKS_BYTES, timeout=self._timeout
            )
        except FetchError as exc:
            emit(self._observer, "jwks_refresh_failed", reason=str(exc), url=uri or "(discovery)")
            raise KeysUnavailable(reason="jwks_" + str(exc)) from None
        keys = parse_jwks(document)
        if not keys:
            emit(self._observer, "jwks_refresh_failed", reason="no_usable_keys", url=uri)
            raise KeysUnavailable(reason="jwks_no_usable_keys")
        self._install(keys)
        emit(self._observer, "jwks_refreshed", keys=len(keys))

    def due(self) -> bool:
        """Whether the next look-up would re-fetch an expired key set (no I/O, cheap)."""
        if self._fetched_at is None or not self._keys:
            return True  # also: keys dropped after stale_for, so cached results must not serve
        now = self._clock()
        if now - self._fetched_at < self.max_age:
            return False
        since = None if self._attempted_at is None else now - self._attempted_at
        return since is None or since >= min(self.cooldown, self.max_age)

    def holds(self, key: VerificationKey | None) -> bool:
        """Whether `key` is still in the current key set (same kid and same public key)."""
        if key is None:
            return False
        return any(k.key == key.key for k in self._by_kid.get(key.kid, ()))

    def _install(self, keys: Iterable[VerificationKey]) -> None:
        self.generation += 1
        self._keys = list(keys)
        by_kid: dict[str | None, list[VerificationKey]] = {}
        for key in self._keys:
            by_kid.setdefault(key.kid, []).append(key)
        self._by_kid = by_kid
        self._index = self._indexed(self._keys)
        self._fetched_at = self._clock()

    @property
    def age(self) -> float | None:
        """Seconds since the keys in use were fetched; None before the first fetch."""
        return None if self._fetched_at is None else self._clock() - self._fetched_at

    async def ensure(self) -> None:
        """Fetch the keys now unless fresh ones are held (start-up prefetch, readiness probes).

        Same rules as a request's look-up (cooldown, stale keys kept); KeysUnavailable when
        there are no usable keys.
        """
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self.max_age:
            await self._refresh_expired(now)
