"""Load and soak: the example items service under uvicorn, driven hard for a bounded time.

The server process (`rs_guard.testing.serve`: uvicorn on a free loopback port) runs `examples.items_service` behind
ResourceGuard, with the bundled IdP in-process for discovery and JWKS. The driver shares the
IdP's signing keys (a private JWK Set in a temporary file) so it can mint tokens itself, and
sends a mix of valid (reused and always-new), expired, forged, unsigned, unknown-kid,
step-up-needing, under-scoped, tokenless and malformed requests from many concurrent httpx
clients. Each request has exactly one right answer, except an unknown kid: 401 `invalid_token`
once a JWKS refetch it caused or joined found no such key, or 503 `temporarily_unavailable` with
`Retry-After` while the next refetch is not yet allowed (#12: a key the IdP just started using
is never answered 401). Those 503s are expected and counted apart from the 5xx that must be 0.

Reported: requests, rate, statuses, unexpected answers (must be 0), 5xx (must be 0), transport
errors (must be 0), latency percentiles, and the server's resident memory sampled every second
(after warm-up it must stay flat: every cache is bounded). Exits 1 on any violation.

    .venv/bin/python benchmarks/soak.py                 # 60 s
    .venv/bin/python benchmarks/soak.py --seconds 20 --concurrency 16

Loopback only; every loop is bounded in time; the server is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _harness import cpu_seconds, rss_mb  # noqa: E402

ISSUER = "https://idp.example"

# --------------------------------------------------------------------------------------------
# server side


def serve(fd: int, keys_file: str, cache_size: int) -> None:
    """Serve the example service (and the IdP in-process) on the loopback socket `fd`."""
    from examples.items_service.app import create_app
    from rs_guard import AuthorizationServer
    from rs_guard.access_token import Limits
    from rs_guard.idp import IdP
    from rs_guard.testing import serve as serve_app
    from rs_guard.testing import socket_url

    sock = socket.socket(fileno=fd)  # bound by the driver, so it knows the URL already
    resource = f"{socket_url(sock)}/items"
    idp = IdP(ISSUER, signing_keys=json.loads(Path(keys_file).read_text()))
    app = create_app(
        ISSUER,
        resource,
        server=AuthorizationServer(ISSUER, http_client=idp.http_client(), jwks_cooldown=5.0),
        limits=Limits(cache_size=cache_size),
    )
    # The server thread inherits the blocked signals; the driver's SIGINT ends the wait below.
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    with serve_app(app, sock=sock):
        signal.sigwait(stop)


# --------------------------------------------------------------------------------------------
# driver side


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (the harness reads /proc in MB)."""
    return round(rss_mb(pid) * 1024)


@dataclass
class Stats:
    kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    held_kids: int = 0  # unknown-kid 503s with Retry-After (a right answer, see the docstring)
    unexpected: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0


class Mix:
    """Makes one request of each kind with the answer it must get."""

    def __init__(self, resource: str) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        from rs_guard.idp import IdP

        self.idp = IdP(ISSUER)
        self.resource = resource
        self.keys_json = json.dumps(self.idp.private_jwks())
        self.stranger = ec.generate_private_key(ec.SECP256R1())
        self.reused = [self.mint() for _ in range(200)]
        self.expired = [self.mint(lifetime=-3600) for _ in range(50)]
        self.step_up = [self.mint(scope="payments", acr="pwd") for _ in range(50)]
        self.paying = [self.mint(scope="payments", acr="mf") for _ in range(50)]
        self.weak_scope = [self.mint(scope="profile") for _ in range(50)]
        forged_base = self.mint()
        head, payload, _ = forged_base.split(".")
        self.forged = [
            # Someone else's key under the IdP's kid.
            self._sign_with_stranger(head, payload),
            # Signature of another token.
            f"{head}.{payload}.{self.mint().split('.')[2]}",
        ]
        self.kinds: list[tuple[str, int]] = [
            ("valid_reused", 30),
            ("valid_new", 15),
            ("expired", 10),
            ("forged", 10),
            ("alg_none", 5),
            ("unknown_kid", 5),
            ("step_up", 8),
            ("paid", 5),
            ("insufficient_scope", 5),
            ("no_token", 4),
            ("malformed_header", 3),
        ]
        self._names = [k for k, _ in self.kinds]
        self._weights = [w for _, w in self.kinds]

    def mint(self, *, scope: str = "items:read", lifetime: int = 3600, **kwargs: Any) -> str:
        now = int(time.time())
        return self.idp.issue_access_token(
            "alice",
            client_id="soak-client",
            audience=self.resource,
            scope=scope,
            lifetime=lifetime,
            auth_time=now,
            **kwargs,
        )

    def _sign_with_stranger(self, head: str, payload: str) -> str:
        import base64

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        der = self.stranger.sign(f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{head}.{payload}." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def pick(self) -> str:
        return random.choices(self._names, self._weights)[0]

    def request(self, kind: str) -> tuple[str, str, dict[str, str], Any, int, str | None]:
        """(method, path, headers, json body, expected status, expected error code)."""

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        if kind == "valid_reused":
            return "GET", "/items", bearer(random.choice(self.reused)), None, 200, None
        if kind == "valid_new":
            return "GET", "/items", bearer(self.mint()), None, 200, None
        if kind == "expired":
            return "GET", "/items", bearer(random.choice(self.expired)), None, 401, "invalid_token"
        if kind == "forged":
            return "GET", "/items", bearer(random.choice(self.forged)), None, 401, "invalid_token"
        if kind == "alg_none":
            head = "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0"  # {"alg":"none","typ":"at+jwt"}
            payload = random.choice(self.reused).split(".")[1]
            return "GET", "/items", bearer(f"{head}.{payload}.x"), None, 401, "invalid_token"
        if kind == "unknown_kid":
            token = self.mint(headers={"kid": secrets.token_urlsafe(8)})
            return "GET", "/items", bearer(token), None, 401, "invalid_token"
        if kind == "step_up":
            token = random.choice(self.step_up)
            body = {"amount": 10}
            return (
                "POST",
                "/payments",
                bearer(token),
                body,
                401,
                "insufficient_user_authentication",
            )
        if kind == "paid":
            return (
                "POST",
                "/payments",
                bearer(random.choice(self.paying)),
                {"amount": 10},
                200,
                None,
            )
        if kind == "insufficient_scope":
            token = random.choice(self.weak_scope)
            return "GET", "/items", bearer(token), None, 403, "insufficient_scope"
        if kind == "no_token":
            return "GET", "/items", {}, None, 401, None
        if kind == "malformed_header":
            return "GET", "/items", {"Authorization": "Bearer a b"}, None, 400, "invalid_request"
        raise ValueError(kind)


def error_code(www_authenticate: str | None) -> str | None:
    if not www_authenticate:
        return None
    marker = 'error="'
    start = www_authenticate.find(marker)
    if start < 0:
        return None
    start += len(marker)
    return www_authenticate[start : www_authenticate.index('"', start)]


async def worker(
    base_url: str, mix: Mix, stats: Stats, deadline: float, tls: ssl.SSLContext
) -> None:
    import httpx

    # One client (one keep-alive connection) per worker: a single pool shared by many
    # concurrent requests spends most of the driver's CPU scanning its connections. (Plain
    # http on loopback; the shared TLS context only spares loading CA certificates 32 times.)
    async with httpx.AsyncClient(
        base_url=base_url, limits=httpx.Limits(max_connections=1), timeout=10.0, verify=tls
    ) as client:
        await _work(client, mix, stats, deadline)


async def _work(client: Any, mix: Mix, stats: Stats, deadline: float) -> None:
    import httpx

    while time.monotonic() < deadline:
        kind = mix.pick()
        method, path, headers, body, want_status, want_error = mix.request(kind)
        started = time.perf_counter()
        try:
            resp = await client.request(method, path, headers=headers, json=body)
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
            continue
        stats.latencies.append(time.perf_counter() - started)
        stats.kinds[kind] += 1
        stats.statuses[resp.status_code] += 1
        got_error = error_code(resp.headers.get("www-authenticate"))
        if (
            kind == "unknown_kid"
            and resp.status_code == 503
            and resp.headers.get("retry-after", "").isascii()
            and resp.headers.get("retry-after", "").isdigit()
        ):
            stats.held_kids += 1
            continue
        if resp.status_code != want_status or got_error != want_error:
            stats.unexpected[f"{kind}: {resp.status_code} {got_error}"] += 1


async def sample_memory(pid: int, samples: list[tuple[float, int]], deadline: float) -> None:
    start = time.monotonic()
    while time.monotonic() < deadline:
        samples.append((time.monotonic() - start, rss_kib(pid)))
        await asyncio.sleep(1.0)
    samples.append((time.monotonic() - start, rss_kib(pid)))


async def wait_ready(base_url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"server exited early with code {proc.returncode}")
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("server did not start in time")


async def drive(args: argparse.Namespace) -> int:

    from rs_guard.testing import loopback_socket, socket_url

    sock = loopback_socket()  # handed to the server process: no port race, URL known now
    base_url = socket_url(sock)
    resource = f"{base_url}/items"
    mix = Mix(resource)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as keys:
        keys.write(mix.keys_json)
    cmd = [
        sys.executable,
        __file__,
        "--serve",
        "--fd",
        str(sock.fileno()),
        "--keys",
        keys.name,
        "--cache-size",
        str(args.cache_size),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, pass_fds=[sock.fileno()])
    sock.close()
    try:
        await wait_ready(base_url, proc)
        os.unlink(keys.name)
        stats = Stats()
        samples: list[tuple[float, int]] = []
        tls = ssl.create_default_context()
        cpu_before = cpu_seconds(proc.pid)
        started = time.monotonic()
        deadline = started + args.seconds
        await asyncio.gather(
            sample_memory(proc.pid, samples, deadline),
            *(worker(base_url, mix, stats, deadline, tls) for _ in range(args.concurrency)),
        )
        elapsed = time.monotonic() - started
        alive = proc.poll() is None
        if alive:
            stats.server_cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if os.path.exists(keys.name):
            os.unlink(keys.name)
    return report(args, stats, samples, elapsed, alive)


def report(
    args: argparse.Namespace,
    stats: Stats,
    samples: list[tuple[float, int]],
    elapsed: float,
    alive: bool,
) -> int:
    total = sum(stats.statuses.values())
    five_xx = sum(n for s, n in stats.statuses.items() if s >= 500) - stats.held_kids
    unexpected = sum(stats.unexpected.values())
    errors = sum(stats.errors.values())
    lat = sorted(stats.latencies) or [0.0]

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    warm_at = args.seconds * args.warmup
    warm = [kib for t, kib in samples if t >= warm_at] or [samples[-1][1]]
    rss_start, rss_warm, rss_end = samples[0][1], warm[0], samples[-1][1]
    growth_mib = (max(warm) - rss_warm) / 1024
    print(f"soak: {elapsed:.1f} s, concurrency {args.concurrency}, cache_size {args.cache_size}")
    print(f"requests: {total} ({total / elapsed:.0f}/s), transport errors: {errors}")
    print("statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(stats.statuses.items())))
    print("kinds: " + ", ".join(f"{k}: {n}" for k, n in sorted(stats.kinds.items())))
    print(
        f"unexpected: {unexpected}   5xx: {five_xx}   "
        f"unknown kid held (503 + Retry-After): {stats.held_kids}"
    )
    for what, n in stats.unexpected.most_common(10):
        print(f"  unexpected {n} x {what}")
    for what, n in stats.errors.most_common(10):
        print(f"  error {n} x {what}")
    if total:
        print(
            f"server CPU: {stats.server_cpu:.1f} s ({100 * stats.server_cpu / elapsed:.0f}% of one "
            f"core), {1e6 * stats.server_cpu / total:.0f} us per request (the httpx driver, "
            "not the server, is the bottleneck when the server stays well below 100%)"
        )
    print(
        f"latency ms: p50 {pct(0.50):.2f}  p90 {pct(0.90):.2f}  p99 {pct(0.99):.2f}  "
        f"max {lat[-1] * 1000:.1f}"
    )
    marks = samples[:: max(1, len(samples) // 12)]
    print("server RSS MiB over time: " + "  ".join(f"{t:.0f}s:{k / 1024:.1f}" for t, k in marks))
    print(
        f"RSS: start {rss_start / 1024:.1f} MiB, after warm-up ({warm_at:.0f} s) "
        f"{rss_warm / 1024:.1f} MiB, end {rss_end / 1024:.1f} MiB, "
        f"growth after warm-up {growth_mib:.1f} MiB (limit {args.max_growth_mib} MiB)"
    )
    violations = []
    if unexpected:
        violations.append(f"{unexpected} unexpected answers")
    if five_xx:
        violations.append(f"{five_xx} 5xx answers")
    if errors:
        violations.append(f"{errors} requests without an answer")
    if not alive:
        violations.append("the server died")
    if growth_mib > args.max_growth_mib:
        violations.append(f"RSS grew {growth_mib:.1f} MiB after warm-up")
    if total == 0:
        violations.append("no request was answered")
    print("RESULT: " + ("FAIL: " + "; ".join(violations) if violations else "OK"))
    return 1 if violations else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to drive (<= 240)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cache-size", type=int, default=1000, help="the guard's token cache")
    parser.add_argument("--warmup", type=float, default=0.4, help="fraction of the run")
    parser.add_argument("--max-growth-mib", type=float, default=16.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keys", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.fd, args.keys, args.cache_size)
        return 0
    if not 1 <= args.seconds <= 240:
        parser.error("--seconds must be between 1 and 240 (the run must end within 5 minutes)")
    return asyncio.run(drive(args))


if __name__ == "__main__":
    sys.exit(main())
