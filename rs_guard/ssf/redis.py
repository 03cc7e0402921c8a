"""Revocation state shared by replicas through Redis: publish/subscribe plus a key set with TTL.

Every replica keeps the whole table in memory (the request path stays one dict lookup). A
revocation is written as one key per (subject, kind) holding the latest cut-off, with a TTL of
the longest token lifetime, and published on a channel in the same script; every replica
applies what it hears. A replica that starts (or reconnects) reads the key set back first, so
it also enforces what was published while it was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Literal

from .._redis import redis_client
from ..errors import ConfigurationError, ServerError
from ..observe import Observer, emit
from .revocations import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_TOKEN_LIFETIME, MemoryRevocations

logger = logging.getLogger("rs_guard.ssf")

DEFAULT_PREFIX = "rs_guard:revoked:"
DEFAULT_CHANNEL = "rs_guard:revocations"

# Raise the stored cut-off only if the new one is later, refresh the TTL, then publish: one
# atomic step, so two replicas revoking the same subject at once end with the later cut-off.
_RAISE = """
local current = redis.call('GET', KEYS[1])
if current then
  local old = cjson.decode(current)
  if tonumber(old[3]) >= tonumber(ARGV[2]) then
    if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
      redis.call('PEXPIRE', KEYS[1], ARGV[3])  -- never shorten (no 'GT': Redis 6 too)
    end
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
"""

OnOutage = Literal["serve", "refuse"]


class RedisRevocations(MemoryRevocations):
    """Revocations every replica enforces within about a second (needs the `redis` extra).

    `await start()` (or `async with`) loads the key set and subscribes; `aclose()` stops.
    While Redis is unreachable, `on_outage` decides: `"serve"` (default) keeps enforcing what
    this replica knows and logs an error every `outage_log_interval` seconds; `"refuse"` also
    refuses every token issued before the outage began (401 `invalid_token`,
    `revocations_unavailable`) until the key set has been read back. A revocation received
    while Redis is down is enforced here and answered 503 so the transmitter delivers it again.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        channel: str = DEFAULT_CHANNEL,
        on_outage: OnOutage = "serve",
        max_token_lifetime: float = DEFAULT_MAX_TOKEN_LIFETIME,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        timeout: float = 2.0,
        reconnect_delay: float = 0.5,
        outage_log_interval: float = 10.0,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if on_outage not in ("serve", "refuse"):
            raise ConfigurationError('on_outage must be "serve" or "refuse"')
        super().__init__(
            max_token_lifetime=max_token_lifetime, max_entries=max_entries, clock=clock
        )
        client, self._owns_client, self._errors = redis_client(
            "RedisRevocations", client, url, timeout
        )
        self.client = client
        self.prefix, self.channel, self.on_outage = prefix, channel, on_outage
        self.reconnect_delay = reconnect_delay
        self.outage_log_interval = outage_log_interval
        self._observer = observer
        self._raise = client.register_script(_RAISE)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.outage_since: float | None = None
        """When Redis became unreachable (None: connected)."""
        self._logged_at = -math.inf

    async def __aenter__(self) -> RedisRevocations:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def key(self, subject: str, kind: str) -> str:
        """The Redis key of one cut-off (hashed: its length is bounded whatever the subject)."""
        digest = hashlib.sha256(f"{len(subject)}:{subject}{kind}".encode()).hexdigest()
        return self.prefix + digest

    async def start(self, *, wait: float = 5.0) -> None:
        """Subscribe and read the key set back; waits up to `wait` s for the first load."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="rs_guard-revocations")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), wait)

    async def aclose(self) -> None:
        """Stop listening; close the client if this store created it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_client:
            await self.client.aclose()

    async def revoke(self, subject: str, kind: str, cutoff: float) -> bool:
        """Enforce here at once, then write and publish for every replica (503 if Redis fails)."""
        changed = self.apply(subject, kind, cutoff)
        record = json.dumps([subject, kind, cutoff])
        ttl = max(1, int((cutoff + self.max_token_lifetime - self.clock()) * 1000))
        if kind != "issued" and not kind.startswith("session:"):
            ttl = max(ttl, int(self.max_token_lifetime * 1000))
        try:
            await self._raise(
                keys=[self.key(subject, kind)], args=[record, cutoff, ttl, self.channel]
            )
        except self._errors:
            self._outage("write")
            raise ServerError(
                "The revocation could not be shared",
                retry_after=5,
                reason="revocations_unreachable",
            ) from None
        return changed

    async def revalidate(self, subject: str) -> int:
        """Drop cached results for a subject here and, through the channel, on every replica."""
        dropped = self.forget_cached(subject)
        try:
            await self.client.publish(self.channel, json.dumps([subject, "revalidate", 0]))
        except self._errors:
            self._outage("write")
            raise ServerError(
                "The change could not be shared", retry_after=5, reason="revocations_unreachable"
            ) from None
        return dropped

    # ----- the listener ---------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                # Subscribed first, then read back: nothing published in between is missed.
                await self._load()
                self._recovered()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._receive(message.get("data"))
            except asyncio.CancelledError:
                raise
            except self._errors:
                self._outage("subscribe")
            except Exception:  # a bug must not stop enforcement for good
                logger.exception("revocation listener failed")
                self._outage("listener")
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(self.reconnect_delay)

    async def _load(self) -> None:
        keys: list[Any] = []
        async for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            keys.append(key)
        for start in range(0, len(keys), 500):
            for value in await self.client.mget(keys[start : start + 500]):
                if value is not None:
                    self._receive(value)

    def _receive(self, data: Any) -> None:
        try:
            subject, kind, cutoff = json.loads(data)
            if kind == "revalidate":
                self.forget_cached(subject)
            else:
                self.apply(str(subject), str(kind), float(cutoff))
        except ServerError:
            pass  # table full: already logged by apply
        except (ValueError, TypeError):
            logger.warning("ignored a malformed revocation record on %s", self.channel)

    def _outage(self, where: str) -> None:
        if self.outage_since is None:
            self.outage_since = self.clock()
            if self.on_outage == "refuse":
                self.refuse_issued_before = self.outage_since
            emit(self._observer, "revocations_unreachable", where=where, on_outage=self.on_outage)
        self._log_outage()

    def _log_outage(self) -> None:
        now = time.monotonic()
        if now - self._logged_at >= self.outage_log_interval:
            self._logged_at = now
            logger.error(
                "revocation store unreachable since %s (on_outage=%s): revocations from other "
                "replicas are not being received",
                self.outage_since,
                self.on_outage,
            )

    def _recovered(self) -> None:
        if self.outage_since is not None:
            emit(self._observer, "revocations_recovered", since=self.outage_since)
        self.outage_since = None
        self.refuse_issued_before = None
        self._ready.set()
