"""Verifying IdP-signed Security Event Tokens (RFC 8417) for one receiver.

`EventVerifier` checks one token (RFC 8417 shape, signature with the IdP's keys through the same
`JWKSCache` as access tokens, issuer, audience, freshness) and holds its (iss, jti) in a replay
store while the handlers run (`claim`). `EventReceiver` (receiver.py) is the endpoint around it.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeGuard

import anyio
import httpx

from .._jws import (
    KEY_HEADERS,
    JWSVerifier,
    MalformedJWS,
    audience_matches,
    header_typ,
    is_numeric_date,
    split_compact,
)
from ..discovery import ServerMetadata
from ..errors import ConfigurationError, EventError, EventInProgress, InvalidToken, ServerError
from ..jwt import DEFAULT_ALGORITHMS
from ..keys import JWKSCache
from ..observe import Observer, emit
from ..server import AuthorizationServer, refuse_beside_server
from .replay import MemoryReplayStore, ReplayState, ReplayStore

SET_TYPE = "secevent+jwt"
DEFAULT_MAX_TOKEN_BYTES = 16 * 1024
_MAX_EVENTS = 32
_MAX_ID_LENGTH = 256
_MAX_EVENT_TYPE_LENGTH = 512
# RFC 8417 §2.2: event identifiers are URIs (scheme ":" then no whitespace).
EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+")
_UNSIGNED = frozenset({"", "none"})


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """A verified Security Event Token (RFC 8417): who sent what about whom, and when."""

    issuer: str
    audience: tuple[str, ...]
    subject: str | None
    jti: str
    issued_at: float
    publisher: str | None
    """The publisher's client id (`azp`), authenticated by the IdP's signature."""
    events: Mapping[str, Mapping[str, Any]]
    """Event type URI -> event payload."""
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def types(self) -> tuple[str, ...]:
        """The event type URIs this token carries."""
        return tuple(self.events)


def _is_id(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID_LENGTH


class EventVerifier:
    """Verifies Security Event Tokens signed by one IdP for one receiver (client id).

    Checks, in order: size and strict JWS syntax; header `typ` is exactly `secevent+jwt` (so an
    access token or ID token is never taken for an event), `alg` in the allow-list, no `crit`
    and no embedded keys; claims `iss` exact, `aud` contains `audience`, `events` is a non-empty
    object of URI -> object, no `nonce`, `sub`/`jti` strings, `iat` no older than `max_age` and
    no further in the future than `leeway`, `exp` (when present) not passed; then the signature
    with the IdP's keys (`JWKSCache`); then, when `publishers` is given, that `azp` is one of
    them. Replay protection (`claim`) keeps (`iss`, `jti`) for `max_age + 2 * leeway` seconds,
    longer than any token it accepted stays acceptable.

    The IdP is `server=` (an `AuthorizationServer`: its issuer and the key cache it shares with
    the guard), or `issuer=` with `keys=`, `jwks_uri=` or `http_client=`.
    """

    def __init__(
        self,
        *,
        server: AuthorizationServer | None = None,
        issuer: str | None = None,
        audience: str | Sequence[str],
        keys: JWKSCache | None = None,
        jwks_uri: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        max_age: float = 300.0,
        leeway: float = 30.0,
        replay_store: ReplayStore | None = None,
        publishers: Iterable[str] | None = None,
        require_subject: bool = True,
        lease: float = 60.0,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_age <= 0 or leeway < 0 or lease <= 0:
            raise ConfigurationError("max_age and lease must be positive, leeway non-negative")
        self.audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not self.audiences:
            raise ConfigurationError("an audience (this receiver's client id) is required")
        if server is not None:
            # The shared issuer context: its key cache, the one the guard verifies tokens with.
            refuse_beside_server(
                "EventVerifier",
                server,
                issuer,
                keys=keys,
                jwks_uri=jwks_uri,
                http_client=http_client,
            )
            issuer, keys = server.issuer, server.keys
        if issuer is None:
            raise ConfigurationError("give the server or the issuer whose events these are")
        self.issuer = issuer
        if keys is None:
            metadata = None if jwks_uri else ServerMetadata(issuer, http_client=http_client)
            keys = JWKSCache(jwks_uri, metadata=metadata, http_client=http_client)
        self.keys = keys
        self._jws = JWSVerifier(
            algorithms=algorithms, types=(SET_TYPE,), keys=keys, max_bytes=max_token_bytes
        )
        self.algorithms = self._jws.algorithms
        self.max_age = max_age
        self.leeway = leeway
        self.lease = lease
        self.replay_store: ReplayStore = (
            replay_store if replay_store is not None else MemoryReplayStore()
        )
        self.publishers = frozenset(publishers) if publishers is not None else None
        self.require_subject = require_subject
        self.max_token_bytes = max_token_bytes
        self._observer = observer
        self._clock = clock

    @property
    def retention(self) -> float:
        """How long an accepted (iss, jti) is remembered: past the end of any token's window."""
        # iat may be up to `leeway` ahead of now and is accepted until iat + max_age + leeway.
        return self.max_age + 2 * self.leeway

    async def check(self, token: str) -> SecurityEvent:
        """Every check except replay; EventError (400) or KeysUnavailable (503)."""
        try:
            # The one JWS pipeline (as for access tokens): size, syntax, header.
            _header, claims, signing_input, signature, alg, kid = self._jws.parse(token)
        except InvalidToken as exc:
            raise self._refusal(token, exc.reason) from None
        self._check_claims(claims)
        try:
            await self._jws.verified_key(kid, alg, signing_input, signature)
        except InvalidToken as exc:
            if exc.reason == "bad_signature":
                raise EventError("authentication_failed", reason="bad_signature") from None
            raise EventError("invalid_key", reason=exc.reason) from None
        publisher = claims.get("azp")
        if publisher is not None and not _is_id(publisher):
            raise EventError(reason="bad_azp")
        if self.publishers is not None and publisher not in self.publishers:
            raise EventError("access_denied", reason="publisher_not_allowed")
        aud = claims["aud"]
        return SecurityEvent(
            issuer=claims["iss"],
            audience=(aud,) if isinstance(aud, str) else tuple(aud),
            subject=claims.get("sub"),
            jti=claims["jti"],
            issued_at=float(claims["iat"]),
            publisher=publisher,
            events=MappingProxyType(claims["events"]),
            claims=MappingProxyType(claims),
        )

    def _refusal(self, token: str, reason: str) -> EventError:
        """The pipeline's refusal as an RFC 8935 error, as if the header checks ran in the
        order that picks the code: typ, unsigned, alg, embedded keys, other headers, kid.

        Only refused tokens come here, so parsing the header again costs nothing that counts.
        """
        if reason == "token_too_large":
            return EventError(description="The event token is too large", reason="too_large")
        try:
            header = split_compact(token)[0]
        except MalformedJWS:
            return EventError(reason="malformed")
        if header_typ(header) != SET_TYPE:
            # An access token or ID token must never be taken for an event.
            return EventError(
                description="The token is not a security event token", reason="bad_typ"
            )
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() in _UNSIGNED:
            return EventError("authentication_failed", "The event is not signed", reason="unsigned")
        if reason == "bad_alg":
            return EventError("invalid_key", reason="bad_alg")
        if KEY_HEADERS & header.keys():
            # A token must never choose its own verification key (RFC 8725 §3.10).
            return EventError("invalid_key", reason="embedded_key")
        if reason in ("crit", "malformed"):  # crit, or enc / zip: nothing here understands them
            return EventError(reason="unsupported_header")
        return EventError("invalid_key", reason="bad_kid")

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if "nonce" in claims:
            # OIDC Back-Channel Logout §2.4: a nonce marks an ID token, never an event.
            raise EventError(description="An event must not carry a nonce", reason="nonce")
        _check_events(claims.get("events"))
        if claims.get("iss") != self.issuer:
            raise EventError("invalid_issuer", reason="bad_issuer")
        if not audience_matches(claims.get("aud"), self.audiences):
            raise EventError("invalid_audience", reason="bad_audience")
        if not _is_id(claims.get("jti")):
            raise EventError(description="The event needs a jti", reason="bad_jti")
        sub = claims.get("sub")
        if (sub is not None or self.require_subject) and not (isinstance(sub, str) and sub):
            raise EventError(description="The event needs a subject", reason="bad_sub")
        iat = claims.get("iat")
        if not is_numeric_date(iat):
            raise EventError(description="The event needs an iat", reason="bad_iat")
        now = self._clock()
        if iat < now - self.max_age - self.leeway:
            raise EventError(description="The event is too old", reason="stale")
        if iat > now + self.leeway:
            raise EventError(description="The event is issued in the future", reason="future")
        exp = claims.get("exp")
        if exp is not None and (not is_numeric_date(exp) or now >= exp + self.leeway):
            raise EventError(description="The event has expired", reason="expired")

    @contextlib.asynccontextmanager
    async def claim(self, event: SecurityEvent) -> AsyncIterator[SecurityEvent]:
        """Hold the event's (iss, jti) while the body runs; recorded on success, freed on error.

        A replay raises EventError (400, `invalid_request`); a concurrent duplicate raises
        EventInProgress (503) so its sender retries after the first delivery has finished.
        """
        store = self.replay_store
        owner = secrets.token_urlsafe(12)
        state = await store.reserve(event.issuer, event.jti, owner, self.lease)
        if state is ReplayState.SEEN:
            raise EventError(description="The event was already received", reason="replayed")
        if state is ReplayState.IN_PROGRESS:
            raise EventInProgress(retry_after=max(1, math.ceil(self.lease / 4)))
        try:
            yield event
        except BaseException:
            # Not consumed: the sender's retry must be processed, not refused as a replay.
            with anyio.CancelScope(shield=True):
                try:
                    await store.release(event.issuer, event.jti, owner)
                except ServerError:
                    emit(self._observer, "event_release_failed", reason="replay_store")
            raise
        try:
            await store.commit(event.issuer, event.jti, owner, self.retention)
        except ServerError:
            # The handlers already ran: answering 5xx would make the sender deliver it again.
            # The lease still blocks duplicates for `lease` seconds.
            emit(self._observer, "event_commit_failed", reason="replay_store")

    @contextlib.asynccontextmanager
    async def accept(self, token: str) -> AsyncIterator[SecurityEvent]:
        """`check` then `claim`: `async with verifier.accept(token) as event: ...`."""
        event = await self.check(token)
        async with self.claim(event):
            yield event

    async def verify(self, token: str) -> SecurityEvent:
        """Verify a token and record it as seen at once (no handler to wait for)."""
        async with self.accept(token) as event:
            return event


def _check_events(events: Any) -> None:
    if not isinstance(events, dict) or not events or len(events) > _MAX_EVENTS:
        raise EventError(
            description="The events claim is missing or malformed", reason="bad_events"
        )
    for name, payload in events.items():
        if (
            len(name) > _MAX_EVENT_TYPE_LENGTH
            or not EVENT_TYPE.fullmatch(name)
            or not isinstance(payload, dict)
        ):
            raise EventError(
                description="The events claim is missing or malformed", reason="bad_events"
            )
