"""Throughput of a bare endpoint vs ResourceGuard (warm / cold token) vs a PyJWT-per-request
middleware, in-process and through uvicorn on loopback, measured side by side in one run.

    .venv/bin/python benchmarks/throughput.py [--requests 20000] [--seconds 4] [--no-uvicorn]

In-process numbers call the ASGI app directly (no HTTP client in the way); the uvicorn numbers
use a small raw keep-alive HTTP/1.1 client so the client costs as little CPU as possible.
Ratios matter, not absolute figures: both sides share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rs_guard import ResourceGuard
from rs_guard.access_token import Limits
from rs_guard.idp import IdP

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    ISSUER,
    RESOURCE,
    auth_headers,
    call_app,
    drive,
    measure_server,
    serve_main,
    start_server,
    write_auths,
)


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


class PyJWTMiddleware:
    """What many services do: `jwt.decode` on every request with a key fetched once."""

    def __init__(self, app: ASGIApp, key: Any) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth = dict(scope["headers"]).get(b"authorization", b"")
        try:
            claims = jwt.decode(
                auth[7:].decode(),
                self.key,
                algorithms=["ES256"],
                audience=RESOURCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError:
            await PlainTextResponse("unauthorized", status_code=401)(scope, receive, send)
            return
        scope["auth"] = claims
        await self.app(scope, receive, send)


PROFILE = "rfc9068"  # --profile: the guard's token profile (the tokens fit rfc9068 and auth0)


def build_apps(idp: IdP, idp_http: httpx.AsyncClient) -> dict[str, ASGIApp]:
    routes = [Route("/hello", hello)]
    public = idp.keys.active().private_key.public_key()
    return {
        "bare": Starlette(routes=routes),
        "guard": Starlette(
            routes=routes,
            middleware=[
                Middleware(
                    ResourceGuard,
                    issuer=ISSUER,
                    resource=RESOURCE,
                    http_client=idp_http,
                    limits=Limits(cache_size=50_000),
                    profile=PROFILE,
                )
            ],
        ),
        "pyjwt": Starlette(routes=routes, middleware=[Middleware(PyJWTMiddleware, key=public)]),
    }


def mint(idp: IdP, n: int) -> list[str]:
    return [
        idp.issue_access_token(
            f"user-{i}", client_id="bench", audience=RESOURCE, scope="items:read", lifetime=3600
        )
        for i in range(n)
    ]


# -- in-process -------------------------------------------------------------------------------


async def run_inprocess(app: ASGIApp, tokens: Callable[[int], str], seconds: float) -> float:
    """Requests per second (of CPU time) calling the ASGI app directly, one request at a time:
    the shared harness's driver, over the tokens `tokens(i)` names."""
    warm = [tokens(i) for i in range(200)]
    for auth in auth_headers(warm):  # warm-up: JWKS fetched, code paths hot
        await call_app(app, auth)
    if len(set(warm)) == 1:  # one token again and again
        rate, _ = await drive(app, auth_headers(warm[:1]), seconds=seconds, limit=10**9)
        return rate
    # Distinct tokens, none of them seen before: the round ends early when they run out.
    seen, fresh = set(warm), []
    for i in range(200, 200 + int(seconds * 20_000)):
        token = tokens(i)
        if token in seen:
            break
        seen.add(token)
        fresh.append(token)
    rate, _ = await drive(app, auth_headers(fresh), seconds=seconds, limit=len(fresh))
    return rate


# -- uvicorn ----------------------------------------------------------------------------------


def server_main(args: argparse.Namespace) -> None:
    """The server process: one app of `build_apps` under uvicorn (the shared harness)."""
    idp = IdP(ISSUER, signing_keys=json.loads(Path(args.keys).read_text()))
    serve_main(build_apps(idp, idp.http_client())[args.serve], args.fd)


async def _client(
    port: int, tokens: list[str], offset: int, stride: int, deadline: float, counts: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    n = 0
    try:
        while time.perf_counter() < deadline:
            tok = tokens[i % len(tokens)]
            i += stride
            writer.write(
                b"GET /hello HTTP/1.1\r\nHost: api.bench\r\nAuthorization: Bearer "
                + tok.encode()
                + b"\r\n\r\n"
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected response: {head[:40]!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            n += 1
    finally:
        writer.close()
        counts.append(n)


async def run_uvicorn(
    which: str, keys_file: str, tokens: list[str], seconds: float, connections: int = 8
) -> float:
    """Requests/s of one app in a fresh uvicorn process: wrk when installed, else the small
    Python keep-alive client above."""
    server = start_server(
        Path(__file__).resolve(), ["--serve", which, "--keys", keys_file, "--profile", PROFILE]
    )
    try:
        if not server.ready():
            raise SystemExit(f"the {which} server did not start")
        auths = auth_headers(tokens)
        if shutil.which("wrk"):
            with tempfile.TemporaryDirectory() as tmp:
                auths_file = write_auths(os.path.join(tmp, "auths.txt"), auths)
                out = await asyncio.to_thread(
                    measure_server,
                    server,
                    auths_file,
                    auths[:50],
                    max(1, round(seconds)),
                    connections,
                )
            if out["non2xx"]:
                raise SystemExit(f"unexpected statuses under wrk ({which})")
            rate: float = out["rate"]
            return rate
        warm: list[int] = []  # JWKS fetch, imports
        await _client(server.port, tokens[:50], 0, 1, time.perf_counter() + 0.5, warm)
        counts: list[int] = []
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()
        await asyncio.gather(
            *(
                _client(server.port, tokens, c, connections, deadline, counts)
                for c in range(connections)
            )
        )
        return sum(counts) / (time.perf_counter() - start)
    finally:
        server.stop()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ratio(results: dict[str, float], a: str, b: str) -> float:
    return results[a] / results[b]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="per variant per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians kept")
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--no-uvicorn", action="store_true")
    parser.add_argument("--profile", default="rfc9068", help="token profile of the guard")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: the server process
    parser.add_argument("--keys", help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile
    if args.serve:
        server_main(args)
        return

    idp = IdP(ISSUER)
    idp_http = idp.http_client()
    apps = build_apps(idp, idp_http)
    t0 = time.perf_counter()
    tokens = mint(idp, args.tokens)
    print(f"minted {len(tokens)} ES256 tokens in {time.perf_counter() - t0:.1f}s")
    one = tokens[0]
    names = [
        "bare",
        "guard warm (reused token)",
        "guard cold (new token each request)",
        "pyjwt-per-request middleware",
    ]

    # Rounds are interleaved so that load drifting on the machine hits every variant alike.
    samples: dict[str, list[float]] = {n: [] for n in names}
    cursor = 0
    for _ in range(args.rounds):
        for name in names:
            if name == "bare":
                rate = await run_inprocess(apps["bare"], lambda i: one, args.seconds)
            elif name.startswith("guard warm"):
                rate = await run_inprocess(apps["guard"], lambda i: one, args.seconds)
            elif name.startswith("guard cold"):
                # Tokens never seen before by this guard: every request verifies a signature.
                base = cursor
                rate = await run_inprocess(
                    build_apps(idp, idp_http)["guard"],
                    lambda i, base=base: tokens[(base + i) % len(tokens)],
                    args.seconds,
                )
            else:
                rate = await run_inprocess(
                    apps["pyjwt"], lambda i: tokens[i % len(tokens)], args.seconds
                )
            samples[name].append(rate)
    results = {n: statistics.median(v) for n, v in samples.items()}
    print("\nin-process (ASGI app called directly; median of interleaved rounds), requests/s:")
    for n in names:
        print(f"  {n:40s} {results[n]:10.0f}   ({1e6 / results[n]:6.1f} us/request)")
    print(f"  warm / bare  = {ratio(results, names[1], names[0]):.2f}x")
    print(
        f"  cold / pyjwt = {ratio(results, names[2], names[3]):.2f}x   (peers.py compares every peer per algorithm)"
    )

    if not args.no_uvicorn:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(idp.private_jwks(), f)
            keys_file = f.name
        plan = [
            ("bare", "bare", [one]),
            (names[1], "guard", [one]),
            (names[2], "guard", tokens),
            (names[3], "pyjwt", tokens),
        ]
        usamples: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for name, which, toks in plan:
                usamples[name].append(await run_uvicorn(which, keys_file, toks, args.seconds))
        uresults = {n: statistics.median(v) for n, v in usamples.items()}
        client = "wrk" if shutil.which("wrk") else "a Python keep-alive client (install wrk)"
        print(f"\nuvicorn on loopback (1 worker, 8 connections, load from {client}), requests/s:")
        for n in names:
            print(f"  {n:40s} {uresults[n]:10.0f}")
        print(f"  warm / bare  = {ratio(uresults, names[1], names[0]):.2f}x   (#16 target >= 0.85)")
        print(
            f"  cold / pyjwt = {ratio(uresults, names[2], names[3]):.2f}x   (peers.py compares every peer per algorithm)"
        )
        os.unlink(keys_file)

    # Memory under a flood of distinct tokens: the verified-token cache is bounded.
    guard_app = Starlette(
        routes=[Route("/hello", hello)],
        middleware=[
            Middleware(
                ResourceGuard,
                issuer=ISSUER,
                resource=RESOURCE,
                http_client=idp_http,
                limits=Limits(cache_size=5_000),
            )
        ],
    )
    gc.collect()
    before = rss_mb()
    await run_inprocess(guard_app, lambda i: tokens[i % len(tokens)], args.seconds * 2)
    mid = rss_mb()
    await run_inprocess(guard_app, lambda i: tokens[(i * 7) % len(tokens)], args.seconds * 2)
    after = rss_mb()
    print(
        f"\nmemory (peak RSS) while {len(tokens)} distinct tokens pass a guard with "
        f"cache_size=5000: {before:.0f} MB -> {mid:.0f} MB -> {after:.0f} MB"
    )
    await idp_http.aclose()


if __name__ == "__main__":
    asyncio.run(main())
