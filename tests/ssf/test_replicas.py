"""Two replicas sharing a real redis-server: a revocation received by one is enforced by the
other within a second; a replica that starts late reads it back; an outage never gives a 500."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from rs_guard.idp import IdP
from rs_guard.ssf import PUSH, RedisRevocations
from tests.events.conftest import LocalNet
from tests.support import Clock, free_port

from .conftest import Service, access_token, connect

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

PROPAGATION: list[float] = []


@pytest.fixture
async def make_store(
    redis_url: str, clock: Clock
) -> AsyncIterator[Callable[..., RedisRevocations]]:
    """Stores on one test's own keys and channel, started; closed at the end."""
    namespace = uuid.uuid4().hex
    made: list[RedisRevocations] = []

    def make(**options: object) -> RedisRevocations:
        options.setdefault("url", redis_url)
        store = RedisRevocations(
            prefix=f"{namespace}:",
            channel=f"{namespace}:ch",
            clock=clock,
            **options,  # type: ignore[arg-type]
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


async def replica(idp: IdP, clock: Clock, store: RedisRevocations, host: str) -> Service:
    await store.start()
    return Service(idp, clock, store, host=host)


async def test_a_revocation_reaches_every_replica_within_a_second(
    idp: IdP, clock: Clock, net: LocalNet, make_store: Callable[..., RedisRevocations]
) -> None:
    a = await replica(idp, clock, make_store(), "a.api.example")
    b = await replica(idp, clock, make_store(), "b.api.example")
    net.add("api.example", a.app)  # the transmitter's pushes land on replica A
    await connect(
        idp, a, delivery={"method": PUSH, "endpoint_url": "https://api.example/ssf/events"}
    )
    token = access_token(idp)
    for service in (a, b):
        assert (await service.get(token)).status_code == 200  # cached on both
    started = time.perf_counter()
    idp.disable_user("alice")
    await idp.ssf.drain()
    assert (await a.get(token)).status_code == 401
    while (await b.get(token)).status_code != 401:
        assert time.perf_counter() - started < 1.0, "replica B still accepts the token"
        await _tick()
    elapsed = time.perf_counter() - started
    PROPAGATION.append(elapsed)
    print(f"\npropagation to the second replica: {elapsed * 1000:.1f} ms")
    # A replica started afterwards reads the key set back before serving.
    c = await replica(idp, clock, make_store(), "c.api.example")
    assert (await c.get(token)).status_code == 401
    clock.now += 1
    assert (await b.get(access_token(idp))).status_code == 200
    for service in (a, b, c):
        await service.aclose()


async def test_revalidation_is_shared(
    idp: IdP, clock: Clock, net: LocalNet, make_store: Callable[..., RedisRevocations]
) -> None:
    a = await replica(idp, clock, make_store(), "a.api.example")
    b = await replica(idp, clock, make_store(), "b.api.example")
    net.add("api.example", a.app)
    await connect(
        idp, a, delivery={"method": PUSH, "endpoint_url": "https://api.example/ssf/events"}
    )
    token = access_token(idp)
    for service in (a, b):
        assert (await service.get(token)).status_code == 200
    idp.ssf.emit(
        "https://schemas.openid.net/secevent/caep/event-type/token-claims-change",
        "alice",
        {"claims": {"role": "reader"}},
    )
    await idp.ssf.drain()
    started = time.perf_counter()
    while b.guard.validator.cached(token) is not None:  # type: ignore[attr-defined]
        assert time.perf_counter() - started < 1.0
        await _tick()
    for service in (a, b):
        await service.aclose()


async def test_redis_unreachable_keeps_serving_and_logs(
    idp: IdP,
    clock: Clock,
    make_store: Callable[..., RedisRevocations],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="rs_guard.ssf")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    store = make_store(url=dead, timeout=0.2, reconnect_delay=0.05)
    svc = await replica(idp, clock, store, "api.example")
    await store.start(wait=0.3)
    assert store.outage_since is not None
    assert any("revocation store unreachable" in r.getMessage() for r in caplog.records)
    token = access_token(idp)
    assert (await svc.get(token)).status_code == 200
    # An event received now is enforced here and answered 503 so the transmitter retries.
    event = idp.keys.sign(
        {
            "iss": idp.issuer,
            "aud": "api",
            "iat": idp.now(),
            "jti": "outage-1",
            "sub_id": {"format": "iss_sub", "iss": idp.issuer, "sub": "alice"},
            "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}},
        },
        typ="secevent+jwt",
    )
    answer = await svc.push(event)
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert (await svc.get(token)).status_code == 401
    await svc.aclose()


async def test_redis_unreachable_can_refuse_older_tokens(
    idp: IdP, clock: Clock, make_store: Callable[..., RedisRevocations]
) -> None:
    before = access_token(idp)
    clock.now += 10
    dead = f"redis://127.0.0.1:{free_port()}/0"
    store = make_store(url=dead, timeout=0.2, reconnect_delay=0.05, on_outage="refuse")
    svc = await replica(idp, clock, store, "api.example")
    await store.start(wait=0.3)
    answer = await svc.get(before)
    assert (
        answer.status_code == 401 and 'error="invalid_token"' in answer.headers["www-authenticate"]
    )
    clock.now += 1
    assert (await svc.get(access_token(idp))).status_code == 200
    await svc.aclose()


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.001)


async def test_recovery_after_redis_comes_back(
    idp: IdP, clock: Clock, make_store: Callable[..., RedisRevocations]
) -> None:
    import asyncio
    import shutil
    import subprocess

    binary = shutil.which("redis-server")
    assert binary is not None  # the redis_url fixture already skipped otherwise
    port = free_port()
    store = make_store(
        url=f"redis://127.0.0.1:{port}/0", timeout=0.2, reconnect_delay=0.05, on_outage="refuse"
    )
    await store.start(wait=0.3)
    assert store.outage_since is not None
    proc = await asyncio.create_subprocess_exec(
        *[binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = time.perf_counter()
        while store.outage_since is not None:
            assert time.perf_counter() - started < 10, "the listener never reconnected"
            await asyncio.sleep(0.02)
        svc = Service(idp, clock, store)
        assert (await svc.get(access_token(idp))).status_code == 200  # refusing no more
        await svc.aclose()
    finally:
        await store.aclose()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 5)


async def test_an_older_cutoff_never_moves_the_shared_one_back(
    clock: Clock, make_store: Callable[..., RedisRevocations]
) -> None:
    store = make_store()
    await store.start()
    assert await store.revoke("alice", "issued", clock.now)
    assert not await store.revoke("alice", "issued", clock.now - 100)
    late = make_store()
    await late.start()
    entry = late.get("alice")
    assert entry is not None and entry.issued == clock.now
    ttl = await store.client.pttl(store.key("alice", "issued"))
    assert ttl > (store.max_token_lifetime - 5) * 1000
