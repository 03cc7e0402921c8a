"""Asynchronous plumbing shared by the core and the features: single flight, micro-batching,
`async with` for objects that close what they made."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, Self, TypeVar

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
        """Whether a call for `key` is under way (a finished one is not, even before the
        callback that forgets it has run)."""
        fut = self._running.get(key)
        return fut is not None and not fut.done()

    async def run(self, key: K, factory: Callable[[], Awaitable[V]]) -> V:
        """The outcome of the running call for `key`, starting `factory()` if there is none."""
        fut = self._running.get(key)
        if fut is None or fut.done():
            # Done but not yet forgotten (its callback runs at the next loop turn): awaiting it
            # would not yield, and a caller looping on fresh outcomes would spin.
            fut = asyncio.ensure_future(factory())
            self._running[key] = fut
            fut.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(fut)

    def _done(self, key: K, fut: asyncio.Future[V]) -> None:
        if self._running.get(key) is fut:
            del self._running[key]
        if not fut.cancelled():
            fut.exception()  # retrieved here too: every waiter may have gone away


G = TypeVar("G", bound=Hashable)
R = TypeVar("R")


class MicroBatcher(Generic[G, K, R]):
    """Collects keys for a short window, then settles them all with one call.

    `submit(group, key)` queues `key` in its group's open batch and returns a future for its
    own result. A batch is flushed `window` seconds after its first key (at the next loop turn
    for 0), or at once when it holds `max_size` keys: `flush(group, keys)` is called once and
    must return a result for every key; each submitter then gets the result for its key (a key
    missing from the answer is a LookupError for that submitter). If `flush` raises, every
    submitter of that batch gets the exception. Nothing is remembered: a failed key submitted
    again goes into a new batch, and caching results is the caller's business (do it inside
    `flush` to have it done before any submitter wakes up).

    A key submitted twice into one open batch is sent once and both submitters get its
    result. Cancelling a submitter's future withdraws only that submitter. `aclose()` (or a
    cancelled flush) gives the submitters still waiting the exception `cancelled()` makes.
    """

    __slots__ = ("_cancelled", "_flush", "_max_size", "_pending", "_tasks", "_timers", "_window")

    def __init__(
        self,
        flush: Callable[[G, list[K]], Awaitable[Mapping[K, R]]],
        *,
        window: float,
        max_size: int,
        cancelled: Callable[[], BaseException] = asyncio.CancelledError,
    ) -> None:
        if window < 0 or max_size < 1:
            raise ValueError("window must be >= 0 and max_size >= 1")
        self._flush = flush
        self._window = window
        self._max_size = max_size
        self._cancelled = cancelled
        self._pending: dict[G, dict[K, list[asyncio.Future[R]]]] = {}
        self._timers: dict[G, asyncio.Handle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, group: G, key: K) -> asyncio.Future[R]:
        """Queue `key` in `group`'s open batch; the future resolves to its own result."""
        loop = asyncio.get_running_loop()
        batch = self._pending.get(group)
        if batch is None:
            batch = self._pending[group] = {}
            if self._window > 0:
                self._timers[group] = loop.call_later(self._window, self.flush_now, group)
            else:
                self._timers[group] = loop.call_soon(self.flush_now, group)
        fut: asyncio.Future[R] = loop.create_future()
        waiting = batch.get(key)
        if waiting is None:
            batch[key] = [fut]
        else:
            waiting.append(fut)
        if len(batch) >= self._max_size:
            self.flush_now(group)
        return fut

    def flush_now(self, group: G) -> None:
        """Send `group`'s open batch now (a no-op when it has none)."""
        handle = self._timers.pop(group, None)
        if handle is not None:
            handle.cancel()
        batch = self._pending.pop(group, None)
        if not batch:
            return
        task = asyncio.get_running_loop().create_task(self._run(group, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, group: G, batch: dict[K, list[asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush(group, list(batch))
        except asyncio.CancelledError:
            self._fail(batch, self._cancelled())
            raise
        except Exception as exc:
            self._fail(batch, exc)
            return
        for key, futures in batch.items():
            for fut in futures:
                if fut.done():
                    continue  # that submitter went away
                if key in results:
                    fut.set_result(results[key])
                else:
                    fut.set_exception(LookupError(f"no result for {key!r}"))
                    fut.exception()  # a submitter that went away must not log "never retrieved"

    @staticmethod
    def _fail(batch: dict[K, list[asyncio.Future[R]]], error: BaseException) -> None:
        for futures in batch.values():
            for fut in futures:
                if not fut.done():
                    fut.set_exception(error)
                    fut.exception()  # seen by the submitters that still wait; no log noise

    async def aclose(self) -> None:
        """Fail the open batches and cancel the running ones; their submitters get the error."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        pending, self._pending = self._pending, {}
        for batch in pending.values():
            self._fail(batch, self._cancelled())
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class AsyncResource:
    """`async with obj:` for an object whose `aclose()` releases what it made (HTTP clients)."""

    async def aclose(self) -> None:
        """Release what this object made; subclasses say what."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
