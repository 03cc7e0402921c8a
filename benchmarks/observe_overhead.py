"""What the observability hook costs on the hot path: a cached token through ResourceGuard with
no observer, with `Counters`, with the `rs_guard` logger at DEBUG and with the OpenTelemetry
`MetricsObserver` (when the `otel` extra is installed), side by side in one run.

    .venv/bin/python benchmarks/observe_overhead.py [--requests 20000] [--rounds 5]

The ASGI app is called directly (no HTTP client in the way). Ratios matter, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rs_guard import ResourceGuard
from rs_guard.idp import IdP
from rs_guard.observe import Counters

ISSUER = "https://idp.bench"
RESOURCE = "https://api.bench/items"


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def make_guard(idp: IdP, observer: Any) -> ResourceGuard:
    app = Starlette(routes=[Route("/items", hello)])
    return ResourceGuard(
        app, issuer=ISSUER, resource=RESOURCE, http_client=idp.http_client(), observer=observer
    )


async def run(app: Any, token: str, n: int) -> float:
    """Seconds per request for `n` requests with the same (cached) token."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/items",
        "raw_path": b"/items",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"api.bench"), (b"authorization", f"Bearer {token}".encode())],
        "server": ("api.bench", 443),
        "client": ("127.0.0.1", 1),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - started
    assert set(statuses) == {200}, set(statuses)
    return elapsed / n


async def main(requests: int, rounds: int) -> None:
    idp = IdP(ISSUER)
    token = idp.issue_access_token("alice", client_id="bench", audience=RESOURCE)
    counters = Counters()
    variants = {
        "no observer": make_guard(idp, None),
        "Counters observer": make_guard(idp, counters),
        "logger at DEBUG": make_guard(idp, None),
    }
    try:  # the OpenTelemetry extra (rs_guard[otel]), with the SDK's in-memory reader
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        from rs_guard.otel import MetricsObserver

        provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        variants["OpenTelemetry"] = make_guard(idp, MetricsObserver(provider))
    except ModuleNotFoundError:
        print("note: OpenTelemetry SDK not installed; pip install 'rs_guard[otel]'")
    for guard in variants.values():
        await run(guard, token, 100)  # warm: discovery, keys, verified-token cache
    logger = logging.getLogger("rs_guard")
    results: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(rounds):
        # Rotate the order each round so no variant always runs first (or after a GC).
        for name in names[i % len(names) :] + names[: i % len(names)]:
            guard = variants[name]
            if name == "logger at DEBUG":
                handler = logging.NullHandler()
                logger.addHandler(handler)
                logger.setLevel(logging.DEBUG)
            try:
                results[name].append(await run(guard, token, requests))
            finally:
                logger.setLevel(logging.NOTSET)
                logger.handlers.clear()
    base = statistics.median(results["no observer"])
    print(f"cached-token request through ResourceGuard, {requests} x {rounds} rounds (median):")
    for name, values in results.items():
        median = statistics.median(values)
        extra = (median - base) * 1e6
        print(
            f"  {name:<18} {median * 1e6:7.2f} us/request   ratio {median / base:.3f}"
            f"   {extra:+.2f} us"
        )
    print(f"  (Counters saw {counters.get('token_cache_hit')} cache hits)")
    # The same costs without the noise of a whole request: what one warm request adds per
    # observer (two hot events: token_cache_hit and request_accepted), timed in a tight loop.
    import timeit

    observers: dict[str, Any] = {"Counters": Counters()}
    if "OpenTelemetry" in variants:
        observers["OpenTelemetry"] = MetricsObserver(
            MeterProvider(metric_readers=[InMemoryMetricReader()])
        )
    from rs_guard.observe import emit_hot

    loops = 200_000
    print(f"hot events per warm request, {loops} loops (min of 5):")
    for label, observer in observers.items():
        def warm_request_events(observer: Any = observer) -> None:
            emit_hot(observer, "token_cache_hit")
            emit_hot(observer, "request_accepted")

        best = min(timeit.repeat(warm_request_events, number=loops, repeat=5)) / loops
        print(f"  {label:<18} {best * 1e6:7.3f} us/request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
