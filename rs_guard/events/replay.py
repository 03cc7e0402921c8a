"""Replay stores: remember which (issuer, jti) pairs were accepted, in memory or in Redis.

A pair goes through two states. `reserve` takes a short *lease* on it while its handler runs
(a concurrent duplicate is told "in progress, retry later"); `commit` records it as seen for the
whole acceptance window; `release` forgets it so that the sender's retry after a handler failure
is processed instead of being refused as a replay. Only the owner of a lease may commit or
release it, so a slow first attempt can never erase a later one's record.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from .._redis import redis_client
from ..errors import ConfigurationError, ReplayStoreUnavailable

DEFAULT_MAX_ENTRIES = 200_000
DEFAULT_PREFIX = "rs_guard:set:"


class ReplayState(StrEnum):
    """What `reserve` found."""

    RESERVED = "reserved"
    """The pair was new; the caller now holds the lease."""
    IN_PROGRESS = "in_progress"
    """Another delivery of the same event holds the lease right now."""
    SEEN = "seen"
    """The event was already accepted."""


class ReplayStore(Protocol):
    """Where a receiver records accepted events; every method is atomic per (issuer, jti)."""

    async def reserve(self, issuer: str, jti: str, owner: str, lease: float) -> ReplayState:
        """Lease a new pair to `owner` for `lease` seconds, or say why not."""
        ...

    async def commit(self, issuer: str, jti: str, owner: str, ttl: float) -> None:
        """Record the pair as seen for `ttl` seconds (unless another owner holds it now)."""
        ...

    async def release(self, issuer: str, jti: str, owner: str) -> None:
        """Forget the pair if `owner` still holds its lease, so a retry is processed."""
        ...


@dataclass(slots=True)
class _Entry:
    owner: str | None  # None once committed
    expires: float


class MemoryReplayStore:
    """The default store: one process, bounded, never forgets a pair before its time.

    When `max_entries` unexpired pairs are held, new events are refused with
    `ReplayStoreUnavailable` (503, the sender retries later) instead of evicting a pair that
    could then be replayed. Size it for your peak rate times the retention (`max_age` plus twice
    the leeway): the default 200,000 pairs cover ~550 events/s with the default 360 s retention
    in about 40 MB (benchmarks/events.py measures it on your machine).
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ConfigurationError("max_entries must be positive")
        self.max_entries = max_entries
        self._clock = clock
        # Insertion-ordered: every write moves a pair to the end, so the oldest writes come
        # first and expired pairs are dropped from the front without an index of expiries.
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._issuers: dict[str, str] = {}
        self._swept_at = -math.inf

    def __len__(self) -> int:
        return len(self._entries)

    def _purge(self, now: float) -> None:
        entries = self._entries
        while entries:
            key = next(iter(entries))
            if entries[key].expires > now:
                # A lease written before a long-lived commit waits behind it; it is still
                # refused as expired on lookup and cannot outlive the retention.
                return
            del entries[key]

    def _sweep(self, now: float) -> bool:
        """Drop every expired pair (at most once a second: it is O(n)); True if room was made."""
        if now - self._swept_at < 1.0:
            return False
        self._swept_at = now
        expired = [k for k, e in self._entries.items() if e.expires <= now]
        for key in expired:
            del self._entries[key]
        return bool(expired)

    def _live(self, key: tuple[str, str], now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= now:
            del self._entries[key]
            return None
        return entry

    def _set(self, key: tuple[str, str], owner: str | None, expires: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = _Entry(owner, expires)

    def _key(self, issuer: str, jti: str) -> tuple[str, str]:
        # One copy of each issuer string, however many events it sent.
        if len(self._issuers) < 1000:
            issuer = self._issuers.setdefault(issuer, issuer)
        return (issuer, jti)

    async def reserve(self, issuer: str, jti: str, owner: str, lease: float) -> ReplayState:
        """Lease a new pair; refuses (503) rather than evict when full."""
        now = self._clock()
        self._purge(now)
        key = self._key(issuer, jti)
        entry = self._live(key, now)
        if entry is not None:
            return ReplayState.SEEN if entry.owner is None else ReplayState.IN_PROGRESS
        if len(self._entries) >= self.max_entries and not self._sweep(now):
            raise ReplayStoreUnavailable(reason="replay_store_full")
        self._set(key, owner, now + lease)
        return ReplayState.RESERVED

    async def commit(self, issuer: str, jti: str, owner: str, ttl: float) -> None:
        """Record the pair as seen for `ttl` seconds."""
        now = self._clock()
        key = self._key(issuer, jti)
        entry = self._live(key, now)
        if entry is None or entry.owner == owner:
            self._set(key, None, now + ttl)

    async def release(self, issuer: str, jti: str, owner: str) -> None:
        """Drop the lease held by `owner`."""
        key = (issuer, jti)
        entry = self._entries.get(key)
        if entry is not None and entry.owner == owner:
            del self._entries[key]


# Compare-and-set on the lease owner: plain SET/DEL could erase another delivery's state.
_COMMIT = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], 'seen', 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisReplayStore:
    """A store shared by every replica behind a load balancer (needs the `redis` extra).

    `reserve` is one atomic `SET key lease NX PX`; commit and release are compare-and-set
    scripts on the lease owner. Keys are `prefix` + SHA-256 of (issuer, jti), so their length
    is bounded whatever the sender puts in `jti`. Redis errors become `ReplayStoreUnavailable`
    (503): a receiver that cannot remember must not accept.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 2.0,
    ) -> None:
        client, self._owns_client, self._errors = redis_client(
            "RedisReplayStore", client, url, timeout
        )
        self.client = client
        self.prefix = prefix
        self._commit = client.register_script(_COMMIT)
        self._release = client.register_script(_RELEASE)

    def key(self, issuer: str, jti: str) -> str:
        """The Redis key of a pair."""
        digest = hashlib.sha256(f"{len(issuer)}:{issuer}{jti}".encode()).hexdigest()
        return self.prefix + digest

    async def reserve(self, issuer: str, jti: str, owner: str, lease: float) -> ReplayState:
        """Lease a new pair with SET NX PX."""
        key = self.key(issuer, jti)
        try:
            if await self.client.set(key, _lease(owner), nx=True, px=_ms(lease)):
                return ReplayState.RESERVED
            value = await self.client.get(key)
        except self._errors:
            raise ReplayStoreUnavailable(reason="replay_store_unreachable") from None
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        # Gone between SET and GET (a lease just ran out): in progress, so the sender retries.
        return ReplayState.SEEN if value == "seen" else ReplayState.IN_PROGRESS

    async def commit(self, issuer: str, jti: str, owner: str, ttl: float) -> None:
        """Record the pair as seen for `ttl` seconds."""
        try:
            await self._commit(keys=[self.key(issuer, jti)], args=[_lease(owner), _ms(ttl)])
        except self._errors:
            raise ReplayStoreUnavailable(reason="replay_store_unreachable") from None

    async def release(self, issuer: str, jti: str, owner: str) -> None:
        """Drop the lease held by `owner`."""
        try:
            await self._release(keys=[self.key(issuer, jti)], args=[_lease(owner)])
        except self._errors:
            raise ReplayStoreUnavailable(reason="replay_store_unreachable") from None

    async def aclose(self) -> None:
        """Close the connection pool if this store created it."""
        if self._owns_client:
            await self.client.aclose()


def _lease(owner: str) -> str:
    return "lease:" + owner


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
