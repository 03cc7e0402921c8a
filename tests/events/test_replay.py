"""Replay stores: the same contract in memory and in Redis; bounded memory; shared Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from rs_guard.events import (
    MemoryReplayStore,
    RedisReplayStore,
    ReplayState,
    ReplayStore,
    ReplayStoreUnavailable,
    SecurityEvent,
)
from rs_guard.idp import IdP

from .conftest import UPDATED, Receiver, sign

pytestmark = pytest.mark.anyio

ISS = "https://idp.example"


async def test_store_contract(store: ReplayStore) -> None:
    assert await store.reserve(ISS, "j1", "owner-a", 5) is ReplayState.RESERVED
    assert await store.reserve(ISS, "j1", "owner-b", 5) is ReplayState.IN_PROGRESS
    # Only the lease holder may commit or release.
    await store.release(ISS, "j1", "owner-b")
    assert await store.reserve(ISS, "j1", "owner-b", 5) is ReplayState.IN_PROGRESS
    await store.commit(ISS, "j1", "owner-a", 60)
    assert await store.reserve(ISS, "j1", "owner-b", 5) is ReplayState.SEEN
    await store.release(ISS, "j1", "owner-a")  # too late: committed pairs stay
    assert await store.reserve(ISS, "j1", "owner-c", 5) is ReplayState.SEEN
    # Released leases free the pair for the retry.
    assert await store.reserve(ISS, "j2", "owner-a", 5) is ReplayState.RESERVED
    await store.release(ISS, "j2", "owner-a")
    assert await store.reserve(ISS, "j2", "owner-b", 5) is ReplayState.RESERVED


async def test_store_keys_by_issuer_and_jti(store: ReplayStore) -> None:
    assert await store.reserve(ISS, "same", "o", 5) is ReplayState.RESERVED
    assert await store.reserve("https://other.example", "same", "o", 5) is ReplayState.RESERVED
    # No ambiguity between ("a", "bc") and ("ab", "c").
    assert await store.reserve("a", "bc", "o", 5) is ReplayState.RESERVED
    assert await store.reserve("ab", "c", "o", 5) is ReplayState.RESERVED


async def test_store_entries_expire(store: ReplayStore) -> None:
    assert await store.reserve(ISS, "short", "o", 0.05) is ReplayState.RESERVED
    assert await store.reserve(ISS, "done", "o", 5) is ReplayState.RESERVED
    await store.commit(ISS, "done", "o", 0.05)
    await asyncio.sleep(0.12)
    # A lease that ran out (crashed handler) frees the pair; so does the end of retention.
    assert await store.reserve(ISS, "short", "p", 5) is ReplayState.RESERVED
    assert await store.reserve(ISS, "done", "p", 5) is ReplayState.RESERVED


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_memory_store_refuses_rather_than_forgets() -> None:
    clock = FakeClock()
    store = MemoryReplayStore(max_entries=3, clock=clock)
    for jti in ("a", "b", "c"):
        assert await store.reserve(ISS, jti, "o", 10) is ReplayState.RESERVED
        await store.commit(ISS, jti, "o", 100)
    with pytest.raises(ReplayStoreUnavailable) as info:
        await store.reserve(ISS, "d", "o", 10)
    assert info.value.status_code == 503
    # Nothing was evicted: every pair is still a replay.
    for jti in ("a", "b", "c"):
        assert await store.reserve(ISS, jti, "o", 10) is ReplayState.SEEN
    clock.now = 100.0
    assert await store.reserve(ISS, "d", "o", 10) is ReplayState.RESERVED
    assert len(store) == 1


async def test_memory_store_sweeps_expired_leases_behind_live_pairs() -> None:
    clock = FakeClock()
    store = MemoryReplayStore(max_entries=2, clock=clock)
    assert await store.reserve(ISS, "done", "o", 1) is ReplayState.RESERVED
    await store.commit(ISS, "done", "o", 100)
    # A handler that crashed never released its lease: it expires after 1 s...
    assert await store.reserve(ISS, "crashed", "o", 1) is ReplayState.RESERVED
    clock.now = 2.0
    # ...and makes room although a live pair sits before it.
    assert await store.reserve(ISS, "new", "o", 1) is ReplayState.RESERVED
    assert await store.reserve(ISS, "done", "p", 1) is ReplayState.SEEN


async def test_memory_store_full_is_a_503_at_the_endpoint(
    idp: IdP, make_receiver: Callable[..., Receiver]
) -> None:
    receiver = make_receiver(replay_store=MemoryReplayStore(max_entries=1))
    assert (await receiver.post(sign(idp))).status_code == 202
    token = sign(idp)
    resp = await receiver.post(token)
    assert resp.status_code == 503
    assert resp.headers["retry-after"].isdigit()
    assert len(receiver.handled) == 1


async def test_memory_store_does_not_grow_with_retried_leases() -> None:
    clock = FakeClock()
    store = MemoryReplayStore(max_entries=10, clock=clock)
    for i in range(1000):
        clock.now = float(i)
        assert await store.reserve(ISS, f"j{i}", "o", 0.5) is ReplayState.RESERVED
        await store.commit(ISS, f"j{i}", "o", 5)
    assert len(store) <= 6


# ----- Redis ------------------------------------------------------------------------------


@pytest.mark.redis
async def test_two_receivers_sharing_redis_accept_an_event_exactly_once(
    idp: IdP, make_receiver: Callable[..., Receiver], redis_url: str
) -> None:
    stores = [RedisReplayStore(url=redis_url, prefix="shared:") for _ in range(2)]
    await stores[0].client.flushdb()
    replicas = [make_receiver(replay_store=s) for s in stores]
    for replica in replicas:
        replica.delay = 0.05  # handlers still running while the duplicates arrive
    try:
        tokens = [sign(idp, user=u) for u in ("alice", "bob", "alice", "bob", "alice")]
        # Every event delivered 8 times at once, alternating between the replicas.
        deliveries = [(replicas[i % 2], token) for token in tokens for i in range(8)]
        answers = await asyncio.gather(*(r.post(t) for r, t in deliveries))
        statuses = Counter(a.status_code for a in answers)
        assert statuses[202] == len(tokens)
        # Duplicates arriving mid-processing are told to retry; later ones are replays.
        assert statuses[503] > 0
        assert set(statuses) <= {202, 400, 503}
        handled = Counter(e.jti for r in replicas for _, e, _ in r.handled)
        assert sorted(handled.values()) == [1] * len(tokens)
        # Afterwards both replicas refuse every one of them as a replay.
        for token in tokens:
            for replica in replicas:
                assert (await replica.post(token)).json()["err"] == "invalid_request"
    finally:
        for s in stores:
            await s.aclose()


@pytest.mark.redis
async def test_redis_handler_failure_then_retry_on_the_other_replica(
    idp: IdP, make_receiver: Callable[..., Receiver], redis_url: str
) -> None:
    stores = [RedisReplayStore(url=redis_url, prefix="retry:") for _ in range(2)]
    first, second = (make_receiver(replay_store=s) for s in stores)
    try:
        token = sign(idp)
        first.fail_next = 1
        assert (await first.post(token)).status_code == 500
        assert (await second.post(token)).status_code == 202
        assert (await first.post(token)).status_code == 400
        assert [e.jti for _, e, _ in first.handled + second.handled] == [second.handled[0][1].jti]
    finally:
        for s in stores:
            await s.aclose()


@pytest.mark.redis
async def test_redis_keeps_pairs_for_the_retention(
    idp: IdP, make_receiver: Callable[..., Receiver], redis_store: RedisReplayStore
) -> None:
    receiver = make_receiver(replay_store=redis_store)
    token = sign(idp)
    assert (await receiver.post(token)).status_code == 202
    event: SecurityEvent = receiver.handled[0][1]
    ttl_ms = await redis_store.client.pttl(redis_store.key(event.issuer, event.jti))
    retention = receiver.verifier.retention
    assert retention * 1000 - 2000 < ttl_ms <= retention * 1000
    assert retention >= receiver.verifier.max_age + 2 * receiver.verifier.leeway


@pytest.mark.redis
async def test_redis_unreachable_is_a_503(idp: IdP, make_receiver: Callable[..., Receiver]) -> None:
    # A loopback port nobody listens on.
    from tests.support import free_port

    store = RedisReplayStore(url=f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    receiver = make_receiver(replay_store=store)
    try:
        token = sign(idp)
        resp = await receiver.post(token)
        assert resp.status_code == 503
        assert resp.headers["retry-after"].isdigit()
        assert receiver.handled == []
    finally:
        await store.aclose()


def test_redis_store_needs_exactly_one_of_client_or_url() -> None:
    from rs_guard.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        RedisReplayStore()


def test_event_type_registry_checks() -> None:
    from rs_guard.errors import ConfigurationError
    from rs_guard.events import EventReceiver, EventVerifier

    verifier = EventVerifier(issuer=ISS, audience="r", jwks_uri=ISS + "/jwks")
    receiver = EventReceiver(verifier)
    receiver.add_handler(UPDATED, lambda e, p: None)
    with pytest.raises(ConfigurationError):
        receiver.add_handler(UPDATED, lambda e, p: None)
    with pytest.raises(ConfigurationError):
        receiver.add_handler("not a uri", lambda e, p: None)
    with pytest.raises(ConfigurationError):
        EventReceiver(verifier, handler_timeout=verifier.lease)
    with pytest.raises(ConfigurationError):
        EventVerifier(issuer=ISS, audience="r", jwks_uri=ISS + "/jwks", algorithms=["HS256"])
