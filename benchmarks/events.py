"""Verified webhook events per second: the RFC 8935 receiver with the in-memory and the Redis
replay store, next to a bare endpoint and the verification alone, measured side by side.

    .venv/bin/python benchmarks/events.py [--events 4000] [--concurrency 32]

Tokens are signed by the bundled IdP before timing (each with its own jti, as in real traffic);
the receiver is called as an ASGI app directly, so the figures are the receiver's own cost.
The Redis rows need a `redis-server` binary; the script starts one on a free loopback port.
Ratios matter, not absolute figures: everything shares this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import socket
import subprocess
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from rs_guard.events import (
    EventReceiver,
    EventVerifier,
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStore,
    SecurityEvent,
)
from rs_guard.idp import IdP

ISSUER = "https://idp.bench"
RECEIVER = "receiver"
EVENT = "https://schemas.example/event/account-updated"


def make_tokens(idp: IdP, n: int) -> list[bytes]:
    return [
        idp.events.sign(
            RECEIVER, {EVENT: {"fields": ["email"]}}, user="alice", publisher="pub"
        ).encode()
        for _ in range(n)
    ]


def scope_for(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/events",
        "raw_path": b"/events",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"receiver.bench"),
            (b"content-type", b"application/secevent+jwt"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 443),
    }


async def call(app: ASGIApp, body: bytes) -> int:
    """One request straight into the ASGI app; returns the status."""
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope_for(body), receive, send)
    return status


async def measure(
    bodies: list[bytes], one: Callable[[bytes], Awaitable[int]], concurrency: int
) -> tuple[float, dict[int, int]]:
    """Seconds per event through `one` with `concurrency` requests in flight, and statuses."""
    gc.collect()
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    for i in range(0, len(bodies), concurrency):
        for status in await asyncio.gather(*(one(b) for b in bodies[i : i + concurrency])):
            statuses[status] = statuses.get(status, 0) + 1
    return (time.perf_counter() - start) / len(bodies), statuses


def build_receiver(idp: IdP, store: ReplayStore) -> tuple[ASGIApp, EventVerifier]:
    verifier = EventVerifier(
        issuer=ISSUER, audience=RECEIVER, http_client=idp.http_client(), replay_store=store
    )
    receiver = EventReceiver(verifier)

    async def handler(event: SecurityEvent, payload: Any) -> None:
        return None

    receiver.add_handler(EVENT, handler)
    return Starlette(routes=[receiver.route("/events")]), verifier


def bare_app() -> ASGIApp:
    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(status_code=202)

    return Starlette(routes=[Route("/events", endpoint, methods=["POST"])])


@contextmanager
def redis_server() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


async def memory_per_entry(n: int = 100_000) -> float:
    """Bytes the in-memory store holds per accepted event (typical 22-char jti)."""
    store = MemoryReplayStore(max_entries=n)
    jtis = [f"{i:022d}" for i in range(n)]
    # A fresh issuer string per event, as parsing each token produces.
    issuers = ["".join(ISSUER) for _ in range(n)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for iss, jti in zip(issuers, jtis, strict=True):
        await store.reserve(iss, jti, "owner-xxxxxxxxxxxxx", 60)
        await store.commit(iss, jti, "owner-xxxxxxxxxxxxx", 360)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1500, help="events per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs; best is kept")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    n, c = args.events, args.concurrency

    idp = IdP(ISSUER)
    idp.register_client(RECEIVER, "s")
    idp.add_user("alice")

    bare = bare_app()
    check_verifier = EventVerifier(issuer=ISSUER, audience=RECEIVER, http_client=idp.http_client())

    async def check_only(body: bytes) -> int:
        await check_verifier.check(body.decode())
        return 0

    mem_app, _ = build_receiver(idp, MemoryReplayStore())
    configs: list[tuple[str, str, Callable[[bytes], Awaitable[int]], int]] = [
        ("bare", "bare Starlette endpoint (reads body, 202)", lambda b: call(bare, b), 1),
        ("check", "EventVerifier.check only (no store, no HTTP)", check_only, 1),
        ("memory", "EventReceiver + MemoryReplayStore", lambda b: call(mem_app, b), 1),
        ("memory_c", f"  same, {c} in flight", lambda b: call(mem_app, b), c),
    ]
    with redis_server() as url:
        store = None
        if url is not None:
            store = RedisReplayStore(url=url)
            redis_app, _ = build_receiver(idp, store)
            configs += [
                (
                    "redis",
                    "EventReceiver + RedisReplayStore (loopback)",
                    lambda b: call(redis_app, b),
                    1,
                ),
                ("redis_c", f"  same, {c} in flight", lambda b: call(redis_app, b), c),
            ]
        for _, _, one, _ in configs:  # JWKS fetched and connections opened outside the timing
            await one(make_tokens(idp, 1)[0])
        best: dict[str, float] = {}
        statuses: dict[str, dict[int, int]] = {}
        print(f"signing {n * len(configs) * args.rounds} events ...")
        for _ in range(args.rounds):
            for key, _, one, conc in configs:
                seconds, seen = await measure(make_tokens(idp, n), one, conc)
                best[key] = min(best.get(key, seconds), seconds)
                statuses[key] = seen
        if store is not None:
            await store.aclose()

    print(
        f"\nreceiver throughput: {n} distinct ES256 events per run, best of {args.rounds} "
        "interleaved runs, ASGI app called directly"
    )
    for key, name, _, _ in configs:
        print(
            f"  {name:<46} {1 / best[key]:>8,.0f} /s  {best[key] * 1e6:>7.1f} us/event"
            f"  {statuses[key]}"
        )
    if url is None:
        print("  (redis-server not installed: Redis rows skipped)")

    def ratio(a: str, b: str) -> str:
        return f"{best[b] / best[a]:.2f}x"

    print("\nratios of events per second (same run)")
    print(f"  receiver+memory / bare endpoint          {ratio('memory', 'bare')}")
    print(f"  receiver+memory / verification alone     {ratio('memory', 'check')}")
    if "redis" in best:
        print(f"  receiver+redis  / receiver+memory        {ratio('redis', 'memory')}")
        print(f"  same, {c} in flight                      {ratio('redis_c', 'memory_c')}")
    per_entry = await memory_per_entry()
    print(
        f"\nMemoryReplayStore: ~{per_entry:.0f} bytes per remembered event "
        f"(default 200,000 entries ~ {per_entry * 200_000 / 1e6:.0f} MB)"
    )
    await idp.aclose()


if __name__ == "__main__":
    asyncio.run(main())
