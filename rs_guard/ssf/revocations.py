"""Revocation state: which subjects lost access since when, consulted on every request.

A *cut-off* is a time (seconds since the epoch). `Revocations.check` runs after a token was
authenticated (a cache hit included) and refuses it when one of its subject's cut-offs says so:

- `issued`: tokens issued (`iat`) at or before the cut-off -> 401 `invalid_token`;
- `authenticated`: tokens whose user authenticated (`auth_time`, else `iat`) at or before it;
- `session:<sid>`: tokens carrying that `sid` and issued at or before it;
- `step_up`: requests whose requirement asks for an `acr` get the RFC 9470 challenge when the
  token's authentication is not newer than the cut-off (the assurance level went down).

The common case, a subject nobody revoked, is one dict lookup. `MemoryRevocations` serves one
process; `RedisRevocations` (redis.py) shares the table between replicas.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from ..access_token import AccessToken
from ..errors import ConfigurationError, InsufficientUserAuthentication, InvalidToken, ServerError
from ..policy import Requirement

logger = logging.getLogger("rs_guard.ssf")

ISSUED = "issued"
AUTHENTICATED = "authenticated"
STEP_UP = "step_up"
SESSION = "session:"
EMAIL = "email:"
"""Prefix of a subject key naming a user by email address (matched with the `email` claim)."""
SID = "sid:"
"""Prefix of a subject key naming a session only (matched with the `sid` claim)."""
JTI = "jti:"
"""Prefix of a subject key naming one token (matched with the `jti` claim)."""
_INDIRECT = ((EMAIL, "email"), (SID, "sid"), (JTI, "jti"))
DEFAULT_MAX_TOKEN_LIFETIME = 24 * 3600.0
DEFAULT_MAX_ENTRIES = 100_000


class CacheOwner(Protocol):
    """A validator whose verified-token cache can drop entries (JWTValidator, ...)."""

    def forget_where(self, predicate: Callable[[AccessToken], bool]) -> int: ...


@dataclass(slots=True)
class Revocation:
    """The cut-offs of one subject; -inf means none."""

    issued: float = -math.inf
    authenticated: float = -math.inf
    step_up: float = -math.inf
    sessions: dict[str, float] = field(default_factory=dict)
    expires: float = -math.inf
    """When the entry may be forgotten: no token it refuses can still be valid then."""

    def raise_cutoff(self, kind: str, cutoff: float) -> bool:
        """Move one cut-off forward (never back); True if it changed."""
        if kind.startswith(SESSION):
            sid = kind[len(SESSION) :]
            if self.sessions.get(sid, -math.inf) >= cutoff:
                return False
            self.sessions[sid] = cutoff
            return True
        if kind not in (ISSUED, AUTHENTICATED, STEP_UP):
            raise ValueError(f"unknown cut-off kind {kind!r}")
        if getattr(self, kind) >= cutoff:
            return False
        setattr(self, kind, cutoff)
        return True

    def enforce(self, access: AccessToken, requirement: Requirement | None) -> None:
        """Raise the refusal this entry makes of `access`, if any."""
        iat = access.claims.get("iat")
        issued = float(iat) if isinstance(iat, (int, float)) else -math.inf
        if issued <= self.issued:
            raise InvalidToken("The access has been revoked", reason="subject_revoked")
        auth_time = access.auth_time
        authenticated = float(auth_time) if auth_time is not None else issued
        if authenticated <= self.authenticated:
            raise InvalidToken("The credentials have changed", reason="credential_changed")
        if self.sessions:
            sid = access.claims.get("sid")
            if isinstance(sid, str) and issued <= self.sessions.get(sid, -math.inf):
                raise InvalidToken("The session has been revoked", reason="session_revoked")
        if requirement is not None and requirement.acr_values and authenticated <= self.step_up:
            raise InsufficientUserAuthentication(
                "The authentication level has gone down",
                acr_values=requirement.acr_values,
                reason="assurance_lowered",
            )


class Revocations(Protocol):
    """What ResourceGuard consults (`revocations=`) after authenticating every request."""

    def check(self, access: AccessToken, requirement: Requirement | None) -> None:
        """Raise the refusal for `access` (a synchronous look-up: it runs on the hot path)."""
        ...

    def attach(self, validator: object) -> None:
        """Remember a validator whose cache `revalidate` must empty for a subject."""
        ...


def subject_of(access: AccessToken) -> str:
    """The subject a revocation names: this resource's own (translated) subject, else `sub`."""
    return access.local_subject or access.subject


class MemoryRevocations:
    """Revocation state for one process, bounded, never forgetting an entry before its time.

    `max_token_lifetime` is the longest lifetime of any token the guard accepts: an entry is
    kept that long past its latest cut-off, after which every token it refused has expired.
    When `max_entries` subjects are held, a new revocation raises `ServerError` (503: the
    transmitter retries) rather than evicting an entry and letting its tokens back in.
    """

    def __init__(
        self,
        *,
        max_token_lifetime: float = DEFAULT_MAX_TOKEN_LIFETIME,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_token_lifetime <= 0 or max_entries < 1:
            raise ConfigurationError("max_token_lifetime and max_entries must be positive")
        self.max_token_lifetime = max_token_lifetime
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, Revocation] = {}
        self._indirect = 0
        self._caches: list[CacheOwner] = []
        self.refuse_issued_before: float | None = None
        """Set while the shared store is unreachable with `on_outage="refuse"`."""

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, subject: str) -> Revocation | None:
        """The entry for a subject key (or `email:<address>`), if any."""
        return self._entries.get(subject)

    # ----- the hot path ---------------------------------------------------------------------

    def check(self, access: AccessToken, requirement: Requirement | None) -> None:
        """Refuse `access` if its subject was revoked; costs one dict lookup otherwise."""
        # `claims.get("sub")`, not `access.subject`: a property call and a str() fewer.
        entry = self._entries.get(access.local_subject or access.claims.get("sub"))  # type: ignore[arg-type]
        if entry is not None:
            entry.enforce(access, requirement)
        if self._indirect:
            self._check_indirect(access, requirement)
        cutoff = self.refuse_issued_before
        if cutoff is not None:
            iat = access.claims.get("iat")
            if not isinstance(iat, (int, float)) or iat <= cutoff:
                raise InvalidToken(
                    "Revocations cannot be checked right now", reason="revocations_unavailable"
                )

    def _check_indirect(self, access: AccessToken, requirement: Requirement | None) -> None:
        """Entries naming a user by email, a session by id alone, or one token."""
        claims = access.claims
        for prefix, claim in _INDIRECT:
            value = claims.get(claim)
            if isinstance(value, str):
                entry = self._entries.get(prefix + (value.lower() if claim == "email" else value))
                if entry is not None:
                    entry.enforce(access, requirement)

    # ----- changes --------------------------------------------------------------------------

    def attach(self, validator: object) -> None:
        """Remember `validator` (and a composite's parts) so `revalidate` can empty caches."""
        for part in (
            validator,
            getattr(validator, "jwt", None),
            getattr(validator, "opaque", None),
        ):
            usable = part is not None and callable(getattr(part, "forget_where", None))
            if usable and not any(part is known for known in self._caches):
                self._caches.append(part)  # type: ignore[arg-type]

    def apply(self, subject: str, kind: str, cutoff: float) -> bool:
        """Record one cut-off locally; True if it changed anything."""
        if not subject:
            raise ValueError("a revocation needs a subject")
        now = self.clock()
        entry = self._entries.get(subject)
        if entry is None:
            if len(self._entries) >= self.max_entries and not self._sweep(now):
                logger.error("revocation table full (%d subjects)", len(self._entries))
                raise ServerError(retry_after=30, reason="revocations_full")
            entry = self._entries[subject] = Revocation()
            if subject.startswith((EMAIL, SID, JTI)):
                self._indirect += 1
        changed = entry.raise_cutoff(kind, cutoff)
        entry.expires = max(entry.expires, cutoff + self.max_token_lifetime)
        if kind in (AUTHENTICATED, STEP_UP):
            # auth_time can be much older than iat: keep the entry as long as a token issued
            # after the event could still carry an older authentication.
            entry.expires = max(entry.expires, now + self.max_token_lifetime)
        return changed

    async def revoke(self, subject: str, kind: str, cutoff: float) -> bool:
        """Record a cut-off (in a shared store: for every replica); True if it was new."""
        return self.apply(subject, kind, cutoff)

    async def revalidate(self, subject: str) -> int:
        """Drop the cached validation results of a subject everywhere; how many were dropped."""
        return self.forget_cached(subject)

    def forget_cached(self, subject: str) -> int:
        """Drop this process's cached results whose subject (or `jti:<id>`) matches."""
        if subject.startswith(JTI):
            jti = subject[len(JTI) :]
            return sum(c.forget_where(lambda a: a.jti == jti) for c in self._caches)
        if subject.startswith(EMAIL):
            email = subject[len(EMAIL) :]

            def matches(access: AccessToken) -> bool:
                value = access.claims.get("email")
                return isinstance(value, str) and value.lower() == email

            return sum(c.forget_where(matches) for c in self._caches)
        return sum(
            c.forget_where(lambda a: a.subject == subject or a.local_subject == subject)
            for c in self._caches
        )

    def load(self, records: Iterable[tuple[str, str, float]]) -> None:
        """Apply (subject, kind, cut-off) records, e.g. read back from a shared store."""
        for subject, kind, cutoff in records:
            self.apply(subject, kind, cutoff)

    def _sweep(self, now: float) -> bool:
        expired = [s for s, e in self._entries.items() if e.expires <= now]
        for subject in expired:
            del self._entries[subject]
            if subject.startswith((EMAIL, SID, JTI)):
                self._indirect -= 1
        return bool(expired)
