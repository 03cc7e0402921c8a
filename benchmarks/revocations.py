"""Continuous access evaluation: what `revocations=` costs on the warm path.

Two guards over the same app, tokens and cache state, one with `revocations=MemoryRevocations()`
holding `--revoked` other subjects (so the lookup is a real dict probe that misses), one
without. Each round calls both guards as ASGI apps (no HTTP client in the measured path) with
`--requests` cached tokens, alternating which goes first; the figure is the median difference
per request (requests interleaved one by one). Also times `MemoryRevocations.check` alone. Run:
`.venv/bin/python benchmarks/revocations.py [--requests 4000] [--rounds 30] [--revoked 10000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from starlette.types import Message, Receive, Scope, Send

from rs_guard import ResourceGuard
from rs_guard.idp import IdP
from rs_guard.ssf import MemoryRevocations

ISSUER = "https://idp.example"
API = "https://rs.example/api"


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def run(guard: ResourceGuard, scopes: list[Scope]) -> float:
    status: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    started = time.perf_counter()
    for scope in scopes:
        await guard(dict(scope), receive, send)
    elapsed = time.perf_counter() - started
    assert status.count(200) == len(scopes), "every request must succeed"
    return elapsed


async def interleaved(
    plain: ResourceGuard, checked: ResourceGuard, scopes: list[Scope]
) -> tuple[float, float]:
    """Seconds spent in each guard over the same requests, one of each at a time."""

    async def send(message: Message) -> None:
        pass

    clock = time.perf_counter
    spent = {id(plain): 0.0, id(checked): 0.0}
    for i, scope in enumerate(scopes):
        for guard in (plain, checked) if i % 2 else (checked, plain):
            started = clock()
            await guard(dict(scope), receive, send)
            spent[id(guard)] += clock() - started
    return spent[id(plain)], spent[id(checked)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--revoked", type=int, default=10_000)
    args = parser.parse_args()

    idp = IdP(ISSUER)
    idp.register_client("web", "web-secret", redirect_uris=["https://web.example/cb"])
    tokens = [
        idp.issue_access_token(f"user{i}", client_id="web", audience=API)
        for i in range(args.requests)
    ]
    store = MemoryRevocations(max_entries=args.revoked + 1)
    now = time.time()
    for i in range(args.revoked):
        store.apply(f"someone-else-{i}", "issued", now)
    plain = ResourceGuard(endpoint, resource=API, issuer=ISSUER, http_client=idp.http_client())
    checked = ResourceGuard(
        endpoint, resource=API, issuer=ISSUER, http_client=idp.http_client(), revocations=store
    )
    scopes: list[Scope] = [
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(b"authorization", f"Bearer {t}".encode())],
            "query_string": b"",
        }
        for t in tokens
    ]
    # The control: a second guard configured exactly like `plain`. What it "costs" is the
    # noise floor of this machine, against which the figure above is to be read.
    twin = ResourceGuard(endpoint, resource=API, issuer=ISSUER, http_client=idp.http_client())
    for guard in (plain, checked, twin):
        await run(guard, scopes)  # warm: every token validated and cached
    diffs: list[float] = []
    noise: list[float] = []
    plain_us: list[float] = []
    for _ in range(args.rounds):
        # Interleaved request by request, alternating which guard goes first, so that drift
        # in a machine shared with other work falls on both alike.
        p, c = await interleaved(plain, checked, scopes)
        plain_us.append(p / len(scopes) * 1e6)
        diffs.append((c - p) / len(scopes) * 1e6)
        p, t = await interleaved(plain, twin, scopes)
        noise.append((t - p) / len(scopes) * 1e6)

    access = plain.validator.cached(tokens[0])  # type: ignore[attr-defined]
    assert access is not None
    n = 200_000
    started = time.perf_counter()
    check = store.check
    for _ in range(n):
        check(access, None)
    alone = (time.perf_counter() - started) / n * 1e6

    print(f"warm path without revocations: {statistics.median(plain_us):.2f} us/request")
    print(
        f"revocations= on the warm path:  {statistics.median(diffs):+.3f} us/request "
        f"(median of {args.rounds} rounds; {args.revoked} other subjects revoked)"
    )
    print(f"identical guards (noise floor): {statistics.median(noise):+.3f} us/request")
    print(f"MemoryRevocations.check alone:  {alone:.3f} us/call")
    await idp.aclose()


if __name__ == "__main__":
    asyncio.run(main())
