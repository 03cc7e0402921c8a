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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
from rs_guard.testing import loopback_socket

ISSUER = "https://idp.bench"
RESOURCE = "https://api.bench/items"


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
    """Requests per second calling the ASGI app directly, one request at a time."""
    body = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return body

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    def scope(i: int) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "https",
            "path": "/hello",
            "raw_path": b"/hello",
            "root_path": "",
            "query_string": b"",
            "server": ("api.bench", 443),
            "client": ("127.0.0.1", 1),
            "headers": [
                (b"host", b"api.bench"),
                (b"authorization", b"Bearer " + tokens(i).encode()),
            ],
        }

    for i in range(200):  # warm-up: JWKS fetched, code paths hot
        await app(scope(i), receive, send)
    status.clear()
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            await app(scope(n), receive, send)
            n += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    bad = [s for s in status if s != 200]
    if bad:
        raise SystemExit(f"unexpected statuses in benchmark: {set(bad)}")
    return n / elapsed


# -- uvicorn ----------------------------------------------------------------------------------

SERVER = r"""
import json, signal, socket, sys
sys.path.insert(0, {bench_dir!r})
from throughput import build_apps, ISSUER
from rs_guard.idp import IdP
from rs_guard.testing import loopback_socket
from rs_guard.testing import serve
idp = IdP(ISSUER, signing_keys=json.load(open({keys!r})))
apps = build_apps(idp, idp.http_client())
# The socket was bound by the driver; the server thread inherits the blocked signals, and the
# driver's SIGTERM ends the wait. httptools/uvloop when installed, as in production.
stop = {{signal.SIGINT, signal.SIGTERM}}
signal.pthread_sigmask(signal.SIG_BLOCK, stop)
with serve(apps[{which!r}], sock=socket.socket(fileno={fd}), lifespan="off"):
    signal.sigwait(stop)
"""


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


WRK_SCRIPT = """
local tokens = {}
for line in io.lines(os.getenv("RS_GUARD_TOKENS")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/hello", {["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]})
end
"""


def run_wrk(port: int, tokens: list[str], seconds: float, connections: int) -> float:
    """Requests per second measured by wrk (C, one thread): the client costs the server little."""
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "tokens.lua")
        token_file = os.path.join(tmp, "tokens.txt")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        with open(token_file, "w") as f:
            f.write("\n".join(tokens) + "\n")
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "-s",
                script,
                f"http://127.0.0.1:{port}/hello",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "RS_GUARD_TOKENS": token_file},
            check=True,
        ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"unexpected statuses under wrk:\n{out}")
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"could not read wrk output:\n{out}")


async def run_uvicorn(
    which: str, keys_file: str, tokens: list[str], seconds: float, connections: int = 8
) -> float:
    sock = loopback_socket()  # handed to the server process: no port race
    port = sock.getsockname()[1]
    code = SERVER.format(
        bench_dir=os.path.dirname(os.path.abspath(__file__)),
        keys=keys_file,
        which=which,
        fd=sock.fileno(),
    )
    proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=[sock.fileno()])
    sock.close()
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                await asyncio.sleep(0.05)
        # Warm-up (JWKS fetch, imports) with a few requests, then measure.
        warm: list[int] = []
        await _client(port, tokens[:50], 0, 1, time.perf_counter() + 0.5, warm)
        if shutil.which("wrk"):
            return await asyncio.to_thread(run_wrk, port, tokens, seconds, connections)
        counts: list[int] = []
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()
        await asyncio.gather(
            *(_client(port, tokens, c, connections, deadline, counts) for c in range(connections))
        )
        return sum(counts) / (time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile

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
    print(f"  cold / pyjwt = {ratio(results, names[2], names[3]):.2f}x   (target >= 1.3)")

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
        print(f"  warm / bare  = {ratio(uresults, names[1], names[0]):.2f}x   (target >= 0.9)")
        print(f"  cold / pyjwt = {ratio(uresults, names[2], names[3]):.2f}x   (target >= 1.3)")
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
