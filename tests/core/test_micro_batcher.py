"""rs_guard._async.MicroBatcher: one flush call per batch, each submitter its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from rs_guard._async import MicroBatcher

pytestmark = pytest.mark.anyio


class Recorder:
    """A flush function that records its batches and answers key -> key.upper()."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.fail: Exception | None = None
        self.omit: set[str] = set()
        self.gate: asyncio.Event | None = None

    async def __call__(self, group: str, keys: list[str]) -> Mapping[str, str]:
        self.batches.append((group, keys))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {k: k.upper() for k in keys if k not in self.omit}


async def test_keys_submitted_within_the_window_travel_in_one_batch_per_group() -> None:
    flush = Recorder()
    batcher: MicroBatcher[str, str, str] = MicroBatcher(flush, window=0.01, max_size=10)
    futures = [batcher.submit("g1", "a"), batcher.submit("g1", "b"), batcher.submit("g2", "c")]
    assert await asyncio.gather(*futures) == ["A", "B", "C"]
    assert sorted(flush.batches) == [("g1", ["a", "b"]), ("g2", ["c"])]


async def test_a_full_batch_is_sent_at_once_and_the_rest_waits_for_the_next() -> None:
    flush = Recorder()
    batcher: MicroBatcher[str, str, str] = MicroBatcher(flush, window=10.0, max_size=2)
    first = [batcher.submit("g", "a"), batcher.submit("g", "b")]
    assert await asyncio.wait_for(asyncio.gather(*first), 1) == ["A", "B"]
    third = batcher.submit("g", "c")
    await asyncio.sleep(0.01)
    assert not third.done()  # the window is 10 s and the batch is not full
    await batcher.aclose()
    with pytest.raises(asyncio.CancelledError):
        await third


async def test_window_zero_flushes_at_the_next_loop_turn() -> None:
    flush = Recorder()
    batcher: MicroBatcher[str, str, str] = MicroBatcher(flush, window=0, max_size=100)
    futures = [batcher.submit("g", k) for k in "xyz"]
    assert await asyncio.gather(*futures) == ["X", "Y", "Z"]
    assert flush.batches == [("g", ["x", "y", "z"])]


async def test_a_key_submitted_twice_is_sent_once_and_both_get_it() -> None:
    flush = Recorder()
    batcher: MicroBatcher[str, str, str] = MicroBatcher(flush, window=0.001, max_size=10)
    assert await asyncio.gather(batcher.submit("g", "a"), batcher.submit("g", "a")) == ["A", "A"]
    assert flush.batches == [("g", ["a"])]


async def test_a_failed_flush_reaches_every_submitter_and_is_not_remembered() -> None:
    flush = Recorder()
    flush.fail = RuntimeError("down")
    batcher: MicroBatcher[str, str, str] = MicroBatcher(flush, window=0.001, max_size=10)
    results = await asyncio.gather(
        batcher.submit("g", "a"), batcher.submit("g", "b"), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    flush.fail = None
    assert await batcher.submit("g", "a") == "A"  # a new batch, a new call
    assert len(flush.batches) == 2


async def test_a_key_missing_from_the_answer_fails_only_its_submitter() -> None:
    flush = Recorder()
    flush.omit = {"b"}
    batcher: MicroBatcher[str, str, str] = MicroBatcher(flush, window=0.001, max_size=10)
    a, b = batcher.submit("g", "a"), batcher.submit("g", "b")
    assert await a == "A"
    with pytest.raises(LookupError):
        await b


async def test_a_submitter_that_goes_away_does_not_disturb_the_others() -> None:
    flush = Recorder()
    batcher: MicroBatcher[str, str, str] = MicroBatcher(flush, window=0.001, max_size=10)
    gone, stays = batcher.submit("g", "a"), batcher.submit("g", "b")
    gone.cancel()
    assert await stays == "B"
    assert flush.batches == [("g", ["a", "b"])]


async def test_aclose_gives_waiting_submitters_the_cancelled_error() -> None:
    flush = Recorder()
    flush.gate = asyncio.Event()  # the flush never finishes on its own
    batcher: MicroBatcher[str, str, str] = MicroBatcher(
        flush, window=0, max_size=10, cancelled=lambda: ConnectionError("closed")
    )
    running = batcher.submit("g", "a")
    await asyncio.sleep(0.01)
    assert flush.batches == [("g", ["a"])]
    await batcher.aclose()
    with pytest.raises(ConnectionError):
        await running


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), window=-1, max_size=1)
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), window=0, max_size=0)
