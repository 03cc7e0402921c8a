"""Asynchronous plumbing shared by the core and the features: single flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """One running call per key; concurrent callers share its outcome.

    The shared call is shielded: a caller that is cancelled (a client that went away) stops
    waiting but does not cancel the call the others wait for. Outcomes are not remembered:
    once the call has finished, the next caller starts a new one, so a failure is retried
    by whoever asks next (caching successes is the caller's business).
    """

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    def running(self, key: K) -> bool:
        """Whether a call for `key` is under way."""
        return key in self._running

    async def run(self, key: K, factory: Callable[[], Awaitable[V]]) -> V:
        """The outcome of the running call for `key`, starting `factory()` if there is none."""
        fut = self._running.get(key)
        if fut is None:
            fut = asyncio.ensure_future(factory())
            self._running[key] = fut
            fut.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(fut)

    def _done(self, key: K, fut: asyncio.Future[V]) -> None:
        if self._running.get(key) is fut:
            del self._running[key]
        if not fut.cancelled():
            fut.exception()  # retrieved here too: every waiter may have gone away
