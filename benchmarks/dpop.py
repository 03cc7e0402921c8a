"""What DPoP (RFC 9449) costs per request at the resource server, next to Bearer.

    .venv/bin/python benchmarks/dpop.py [--requests 2000] [--rounds 7]

In-process: the guarded ASGI app is called directly with a prebuilt scope, so only the guard's
work is measured. Every variant uses a warm token (a verified-token cache hit), so the figure
for DPoP is the proof check itself: parse, typ/alg/jwk checks, thumbprint, htm/htu/iat/ath,
one ECDSA P-256 verify and the replay-store write. Each DPoP request carries a fresh proof
(signed beforehand, outside the timing: that is the client's cost, reported on its own).
Variants run in interleaved rounds and the medians are reported, so drift hits them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rs_guard import ResourceGuard
from rs_guard.dpop import DPoPKey, DPoPVerifier
from rs_guard.events import MemoryReplayStore
from rs_guard.idp import IdP

ISSUER = "https://idp.bench"
RESOURCE = "https://api.bench/items"
URL = "http://api.bench/items"


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def scope(authorization: str, proof: str | None = None) -> dict[str, Any]:
    headers = [(b"host", b"api.bench"), (b"authorization", authorization.encode())]
    if proof is not None:
        headers.append((b"dpop", proof.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items",
        "raw_path": b"/items",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("api.bench", 80),
        "client": ("127.0.0.1", 1234),
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def run(app: Any, scopes: list[dict[str, Any]]) -> float:
    """Seconds per request over `scopes` (each used once)."""
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for s in scopes:
        await app(s, receive, send)
    elapsed = time.perf_counter() - started
    assert all(code == 200 for code in statuses), set(statuses)
    return elapsed / len(scopes)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    idp = IdP(ISSUER)
    http = idp.http_client()
    key = DPoPKey()
    plain = idp.issue_access_token(None, client_id="svc", audience=RESOURCE)
    bound = idp.issue_access_token(
        None, client_id="svc", audience=RESOURCE, claims={"cnf": {"jkt": key.jkt}}
    )
    app = Starlette(routes=[Route("/items", hello)])

    def guard(**options: Any) -> ResourceGuard:
        return ResourceGuard(
            app, issuer=ISSUER, resource=RESOURCE, http_client=http, serve_metadata=False, **options
        )

    bearer_guard = guard()
    # A large store: the benchmark must not fill it (it refuses rather than evict).
    dpop_guard = guard(dpop=DPoPVerifier(replay_store=MemoryReplayStore(10_000_000)))
    n = args.requests
    # Warm both tokens in both guards (JWKS fetched, tokens cached).
    await run(bearer_guard, [scope(f"Bearer {plain}")])
    await run(dpop_guard, [scope(f"Bearer {plain}")])
    await run(dpop_guard, [scope(f"DPoP {bound}", key.proof("GET", URL, access_token=bound))])

    signed_at = time.perf_counter()
    proofs = [key.proof("GET", URL, access_token=bound) for _ in range(n * args.rounds)]
    sign_cost = (time.perf_counter() - signed_at) / len(proofs)

    variants: dict[str, Callable[[int], tuple[Any, list[dict[str, Any]]]]] = {
        "bearer (no dpop=)": lambda r: (bearer_guard, [scope(f"Bearer {plain}")] * n),
        "bearer (dpop allowed)": lambda r: (dpop_guard, [scope(f"Bearer {plain}")] * n),
        "dpop (fresh proof)": lambda r: (
            dpop_guard,
            [scope(f"DPoP {bound}", p) for p in proofs[r * n : (r + 1) * n]],
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, make in variants.items():
            target, scopes = make(r)
            results[name].append(await run(target, scopes))
    await http.aclose()

    medians = {name: statistics.median(values) for name, values in results.items()}
    base = medians["bearer (no dpop=)"]
    print(f"{n} requests x {args.rounds} interleaved rounds, in-process, warm token (medians)")
    for name, value in medians.items():
        print(f"  {name:24} {value * 1e6:8.1f} us/request  {1 / value:9.0f} req/s  "
              f"(+{(value - base) * 1e6:.1f} us)")
    print(f"  client: signing one proof {sign_cost * 1e6:.1f} us (DPoPKey.proof, ES256)")


if __name__ == "__main__":
    asyncio.run(main())
